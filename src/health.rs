//! What `/healthz` answers: whether the worker is doing its job, told by what it does rather than
//! by whether it runs. It fails (503) when
//!
//! - a shard has had records waiting (read, not yet durable) with no checkpoint for
//!   [`Thresholds::stall`] (3 × `--flush-interval`, at least 5 minutes), including a shard whose
//!   task keeps failing and restarting: the waiting survives the restarts;
//! - a shard being read has had no successful GetRecords for `--stuck-after` (a reader stuck on
//!   throttling or a dead endpoint, or a writer that does not drain its pages);
//! - a stream's shards could not be listed for [`DISCOVERY_FAILING`] (or since start);
//! - lease renewals have kept failing for the failover time.
//!
//! Each part is recorded by its one owner (the shard loop, the reader, discovery, the renewer)
//! and read here; nothing else decides.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A stream whose listing has failed this long (or never succeeded since start) fails
/// `/healthz`: new shards are not found and finished ones do not release their children.
pub const DISCOVERY_FAILING: Duration = Duration::from_secs(300);
/// The shortest stall that fails `/healthz`: a quiet shard's file waits up to one flush
/// interval, and a publish through throttling can take minutes.
pub const MIN_STALL: Duration = Duration::from_secs(300);

/// The limits `/healthz` applies.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Records waiting this long without a checkpoint.
    pub stall: Duration,
    /// No successful read for this long (`--stuck-after`).
    pub stuck_read: Duration,
    /// Renewals failing this long (`--failover-time`).
    pub renewals: Duration,
    /// A stream's listing failing this long.
    pub discovery: Duration,
}

impl Thresholds {
    pub fn new(flush_interval: Duration, stuck_read: Duration, failover: Duration) -> Self {
        // Test hook: `ARCHIVER_TEST_MIN_STALL_MS` lowers the 5-minute floor, so that a test sees
        // a stall within seconds; inert unless set.
        let min_stall = std::env::var("ARCHIVER_TEST_MIN_STALL_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(MIN_STALL, Duration::from_millis);
        Self {
            stall: (flush_interval * 3).max(min_stall),
            stuck_read,
            renewals: failover,
            discovery: DISCOVERY_FAILING,
        }
    }
}

type ShardKey = (String, String);

#[derive(Default)]
struct State {
    /// Per shard with records read and not yet durable: since when (reset by each checkpoint)
    /// and the oldest such record's creation time (ms), for the iterator age.
    waiting: BTreeMap<ShardKey, (Instant, i64)>,
    /// Last successful GetRecords per shard being read.
    last_read: BTreeMap<ShardKey, Instant>,
    /// Per table: the last successful listing, or when the worker started listing.
    listed: BTreeMap<String, (Instant, bool)>,
    /// Since when lease renewals have been failing (cleared by a round where all succeed).
    renewals_failing_since: Option<Instant>,
}

#[derive(Default)]
pub struct Health {
    state: Mutex<State>,
}

fn key(table: &str, shard: &str) -> ShardKey {
    (table.to_owned(), shard.to_owned())
}

impl Health {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records arrived at a shard; `oldest_ms` is the first one's creation time. Kept if records
    /// were already waiting.
    pub fn records_waiting(&self, table: &str, shard: &str, oldest_ms: i64) {
        self.lock()
            .waiting
            .entry(key(table, shard))
            .or_insert((Instant::now(), oldest_ms));
    }

    /// After an output call: what is still waiting (`None`: everything read is durable).
    pub fn still_waiting(&self, table: &str, shard: &str, oldest_ms: Option<i64>) {
        let mut s = self.lock();
        match oldest_ms {
            None => {
                s.waiting.remove(&key(table, shard));
            }
            Some(ms) => {
                let e = s
                    .waiting
                    .entry(key(table, shard))
                    .or_insert((Instant::now(), ms));
                e.1 = ms;
            }
        }
    }

    /// A checkpoint moved: the shard is making progress.
    pub fn progress(&self, table: &str, shard: &str) {
        if let Some(e) = self.lock().waiting.get_mut(&key(table, shard)) {
            e.0 = Instant::now();
        }
    }

    pub fn read_ok(&self, table: &str, shard: &str) {
        self.lock()
            .last_read
            .insert(key(table, shard), Instant::now());
    }

    /// The shard's reader stopped (its task ended in a failure and will be restarted): no read
    /// is expected, but its waiting records still count.
    pub fn reader_stopped(&self, table: &str, shard: &str) {
        self.lock().last_read.remove(&key(table, shard));
    }

    /// The worker no longer reads the shard (finished, handed over, lost, stopped).
    pub fn forget(&self, table: &str, shard: &str) {
        let mut s = self.lock();
        s.waiting.remove(&key(table, shard));
        s.last_read.remove(&key(table, shard));
    }

    pub fn listing(&self, table: &str, ok: bool) {
        let mut s = self.lock();
        let e = s
            .listed
            .entry(table.to_owned())
            .or_insert((Instant::now(), ok));
        if ok {
            *e = (Instant::now(), true);
        }
    }

    pub fn renewals(&self, all_ok: bool) {
        let mut s = self.lock();
        if all_ok {
            s.renewals_failing_since = None;
        } else {
            s.renewals_failing_since.get_or_insert_with(Instant::now);
        }
    }

    /// The oldest waiting record's creation time (ms) per shard, for the iterator age.
    pub fn oldest_waiting(&self) -> BTreeMap<ShardKey, i64> {
        self.lock()
            .waiting
            .iter()
            .map(|(k, (_, ms))| (k.clone(), *ms))
            .collect()
    }

    /// Why the worker is not healthy; empty when it is.
    pub fn problems(&self, t: &Thresholds) -> Vec<String> {
        let s = self.lock();
        let mut out = Vec::new();
        for ((table, shard), (since, _)) in &s.waiting {
            let d = since.elapsed();
            if d > t.stall {
                out.push(format!(
                    "shard {shard} of table {table}: records waiting for {}s without a checkpoint",
                    d.as_secs()
                ));
            }
        }
        for ((table, shard), at) in &s.last_read {
            let d = at.elapsed();
            if d > t.stuck_read {
                out.push(format!(
                    "shard {shard} of table {table}: no successful read for {}s",
                    d.as_secs()
                ));
            }
        }
        for (table, (at, ever_ok)) in &s.listed {
            let d = at.elapsed();
            if d > t.discovery {
                let what = if *ever_ok { "for" } else { "since start, for" };
                out.push(format!(
                    "the shards of table {table}'s stream could not be listed {what} {}s",
                    d.as_secs()
                ));
            }
        }
        if let Some(since) = s.renewals_failing_since {
            let d = since.elapsed();
            if d > t.renewals {
                out.push(format!(
                    "lease renewals have been failing for {}s",
                    d.as_secs()
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(stall_s: u64) -> Thresholds {
        Thresholds {
            stall: Duration::from_secs(stall_s),
            stuck_read: Duration::from_secs(stall_s),
            renewals: Duration::from_secs(stall_s),
            discovery: Duration::from_secs(stall_s),
        }
    }

    #[test]
    fn each_failure_is_named_and_progress_clears_a_stall() {
        let h = Health::default();
        assert!(h.problems(&t(0)).is_empty(), "a fresh worker is healthy");
        h.records_waiting("users", "s1", 5);
        h.read_ok("users", "s1");
        h.listing("users", false);
        h.renewals(false);
        std::thread::sleep(Duration::from_millis(5));
        let p = h.problems(&t(0));
        assert!(p.iter().any(|m| m.contains("records waiting")), "{p:?}");
        assert!(p.iter().any(|m| m.contains("no successful read")), "{p:?}");
        assert!(p.iter().any(|m| m.contains("renewals")), "{p:?}");
        assert!(p.iter().any(|m| m.contains("since start")), "{p:?}");
        assert!(h.problems(&t(3600)).is_empty(), "within the limits");
        h.renewals(true);
        h.reader_stopped("users", "s1");
        h.still_waiting("users", "s1", None);
        h.listing("users", true);
        std::thread::sleep(Duration::from_millis(5));
        let p = h.problems(&t(0));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("could not be listed for"), "{p:?}");
        assert!(h.problems(&t(1)).is_empty());
        assert_eq!(h.oldest_waiting().len(), 0);
        h.still_waiting("users", "s2", Some(7));
        assert_eq!(h.oldest_waiting().get(&key("users", "s2")), Some(&7));
    }
}
