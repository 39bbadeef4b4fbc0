//! What the worker, which renews the leases, tells a running shard task about its lease: how to
//! stop when its token is cancelled ([`StopMode`]) and when the lease was last renewed.
//!
//! The Parquet archive does not depend on the renewal time for its guarantee: two writers of one
//! shard compute the same key for the same position and only one create-only publish lands
//! (`src/leases/design.md`, "Exactly once by construction"). Firehose has no create-only write,
//! so its deliveries are fenced by [`LeaseControl::still_held`] before every attempt; that fence
//! narrows the at-least-once window, it does not close it.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How a shard task stops when its token is cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StopMode {
    /// Shutdown: flush, checkpoint, release the lease.
    Release = 0,
    /// Another worker asked for the lease: flush, checkpoint, hand it over.
    HandOver = 1,
    /// The lease belongs to another worker already: write nothing more.
    Lost = 2,
}

#[derive(Debug)]
pub struct LeaseControl {
    mode: AtomicU8,
    /// When the newest successful renewal was *sent*: DynamoDB applied it at some instant after
    /// that, so measuring from the send never overstates how fresh the lease is, however late
    /// the answer arrived.
    renewed_at: Mutex<Instant>,
}

impl LeaseControl {
    /// A control for a lease acquired by a write sent at `acquired_at`.
    pub fn new(acquired_at: Instant) -> Self {
        Self {
            mode: AtomicU8::new(StopMode::Release as u8),
            renewed_at: Mutex::new(acquired_at),
        }
    }

    pub fn set_mode(&self, mode: StopMode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    pub fn mode(&self) -> StopMode {
        match self.mode.load(Ordering::SeqCst) {
            1 => StopMode::HandOver,
            2 => StopMode::Lost,
            _ => StopMode::Release,
        }
    }

    /// A renewal sent at `sent_at` succeeded. Renewals may answer out of order; the newest send
    /// wins.
    pub fn renewed(&self, sent_at: Instant) {
        let mut at = self.renewed_at.lock().unwrap_or_else(|p| p.into_inner());
        if sent_at > *at {
            *at = sent_at;
        }
    }

    /// Whether the lease is surely still ours: not lost, and a renewal sent within 2/3 of the
    /// failover time succeeded. Another worker takes a lease only after seeing its counter
    /// unchanged for the whole failover time, on its own clock, from a read after our last
    /// renewal was applied; our renewal was applied after we sent it, so a task that stops at
    /// 2/3 of the failover time since the send stops at least a third of it before any take.
    pub fn still_held(&self, failover: Duration) -> bool {
        self.mode() != StopMode::Lost
            && self
                .renewed_at
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .elapsed()
                < failover * 2 / 3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_is_as_fresh_as_the_newest_renewal_sent() {
        let failover = Duration::from_secs(30);
        let long_ago = Instant::now() - Duration::from_secs(60);
        let c = LeaseControl::new(long_ago);
        assert!(
            !c.still_held(failover),
            "acquired a minute ago, never renewed"
        );
        let sent = Instant::now();
        c.renewed(sent);
        assert!(c.still_held(failover));
        // A slow answer to an older renewal does not move the stamp back.
        c.renewed(long_ago);
        assert!(c.still_held(failover));
        c.set_mode(StopMode::Lost);
        assert!(!c.still_held(failover), "a lost lease is never held");
        assert_eq!(c.mode(), StopMode::Lost);
    }
}
