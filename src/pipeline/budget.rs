//! A worker's memory budgets, shared by the shards it runs, so memory stays bounded whatever the
//! shard count: pending rows (`PENDING_BUDGET_BYTES`), pages (the read budget, a semaphore every
//! page takes its expected bytes from: `stream::reader::PageTicket`), and row groups encoded at
//! once (one per core). Streams calls in flight, and with them HTTP connections and their
//! buffers, are capped by the Streams client itself (`stream::repair::MAX_CALLS_IN_FLIGHT`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Rows are encoded into a row group once this many (raw) bytes are pending: the unit of memory
/// a shard holds besides the page being read.
pub const ROW_GROUP_BYTES: usize = 8 << 20;
/// Raw row bytes all shard tasks of one worker may hold pending together: with many shards each
/// gets a smaller row group (64 shards × 8 MiB would be 512 MiB, far over a 512 MiB Fargate task).
pub const PENDING_BUDGET_BYTES: usize = 32 << 20;
/// The smallest row group a shard writes under the budget. Smaller was tried twice and raised the
/// 256-shard soak's peak RSS each time, for reasons not yet found: 128 KiB row groups nearly
/// doubled it (496 MiB), and counting each row's 264-byte struct (row groups about a fifth
/// smaller) took it from about 220 to 352 MiB. So above 128 shards the floor, not the budget,
/// bounds pending rows (docs/ARCHITECTURE.md, "Not yet").
const MIN_ROW_GROUP_BYTES: usize = 256 << 10;
/// Pages read ahead of the writer, below [`MANY_SHARDS`] running shards.
const READ_AHEAD_PAGES: usize = 2;
pub use crate::stream::reader::MANY_SHARDS;

/// The encode semaphore is never closed, so acquiring a slot only waits.
const SLOTS_OPEN: &str = "the encode semaphore is never closed";

/// The budgets of one worker; cheap to clone (every shard task holds one).
#[derive(Clone)]
pub struct Budgets {
    running: Arc<AtomicUsize>,
    encode_slots: Arc<Semaphore>,
    pages: Arc<Semaphore>,
}

impl Default for Budgets {
    fn default() -> Self {
        Self::new()
    }
}

impl Budgets {
    /// One encoding slot per core. Encoding is CPU-bound, so more at once gains nothing, and
    /// each encoding row group creates a ZSTD compression and decompression context per column
    /// (in C, outside the Rust allocator); page-fault sampling of the soak showed 64 shards
    /// creating and touching them at once.
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Self {
            running: Arc::default(),
            encode_slots: Arc::new(Semaphore::new(cores)),
            pages: crate::stream::reader::page_budget(),
        }
    }

    /// The read budget every reader of this worker takes its pages' bytes from.
    pub fn page_budget(&self) -> Arc<Semaphore> {
        self.pages.clone()
    }

    /// The count of running shard tasks, which the readers' page budget divides by.
    pub fn running_counter(&self) -> Arc<AtomicUsize> {
        self.running.clone()
    }

    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    /// Counts a shard task as running for as long as the returned value lives.
    pub fn count_running(&self) -> RunningShard {
        self.running.fetch_add(1, Ordering::Relaxed);
        RunningShard(self.running.clone())
    }

    /// Pending bytes at which a shard encodes a row group: the budget shared by the running
    /// shards, between 256 KiB and [`ROW_GROUP_BYTES`].
    pub fn row_group_bytes(&self) -> usize {
        (PENDING_BUDGET_BYTES / self.running().max(1)).clamp(MIN_ROW_GROUP_BYTES, ROW_GROUP_BYTES)
    }

    /// Pages a shard's reader may hold ahead of its writer: pages read ahead are memory too, one
    /// each when many shards run.
    pub fn read_ahead(&self) -> usize {
        if self.running() >= MANY_SHARDS {
            1
        } else {
            READ_AHEAD_PAGES
        }
    }

    /// Waits for an encoding slot; the row group is encoded while the permit lives.
    pub async fn encode_slot(&self) -> OwnedSemaphorePermit {
        self.encode_slots
            .clone()
            .acquire_owned()
            .await
            .expect(SLOTS_OPEN)
    }
}

/// Counts a shard task as running for as long as it lives (held by its spawned future).
pub struct RunningShard(Arc<AtomicUsize>);

impl Drop for RunningShard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_shrink_with_the_shards_running_within_bounds() {
        let b = Budgets::new();
        assert_eq!(
            b.row_group_bytes(),
            ROW_GROUP_BYTES,
            "alone: a full row group"
        );
        assert_eq!(b.read_ahead(), READ_AHEAD_PAGES);
        let held: Vec<RunningShard> = (0..MANY_SHARDS).map(|_| b.count_running()).collect();
        assert_eq!(b.row_group_bytes(), PENDING_BUDGET_BYTES / MANY_SHARDS);
        assert_eq!(b.read_ahead(), 1);
        let more: Vec<RunningShard> = (0..1000).map(|_| b.count_running()).collect();
        assert_eq!(b.row_group_bytes(), MIN_ROW_GROUP_BYTES);
        drop((held, more));
        assert_eq!(b.running(), 0, "every running shard uncounted when it ends");
    }
}
