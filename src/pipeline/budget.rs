//! A worker's memory budgets, shared by the shards it runs, so memory stays bounded whatever the
//! shard count: pending rows (`PENDING_BUDGET_BYTES` shared out, [`PENDING_CAP_BYTES`] in all), pages (the read budget, a semaphore every
//! page takes its expected bytes from: `stream::reader::PageTicket`), and row groups encoded at
//! once (one per core), and row groups held by open files ([`OPEN_ROW_GROUPS_BUDGET`]). Streams
//! calls in flight, and with them HTTP connections and their buffers, are capped by the Streams
//! client itself (`stream::repair::MAX_CALLS_IN_FLIGHT`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Rows are encoded into a row group once this many (raw) bytes are pending: the unit of memory
/// a shard holds besides the page being read.
pub const ROW_GROUP_BYTES: usize = 8 << 20;
/// Raw row bytes all shard tasks of one worker may hold pending together: with many shards each
/// gets a smaller row group (64 shards × 8 MiB would be 512 MiB, far over a 512 MiB Fargate task).
pub const PENDING_BUDGET_BYTES: usize = 32 << 20;
/// The smallest row group a shard writes under the budget. Smaller was tried twice, before open
/// row groups were bounded ([`OPEN_ROW_GROUPS_BUDGET`]), and raised the 256-shard soak's peak
/// RSS each time (128 KiB: 496 MiB; rows counted with their 264-byte structs, row groups about a
/// fifth smaller: 352 MiB), because every row group kept its metadata in its open file. With that
/// bound, 128 KiB kept the peak (226 and 229 MiB) for 14% more CPU per record and a larger
/// archive. Above 128 shards the floor exceeds a shard's share of the budget; what bounds the
/// worker's pending rows then is [`PENDING_CAP_BYTES`].
const MIN_ROW_GROUP_BYTES: usize = 256 << 10;
/// Pending rows a worker may hold in all, whatever the shard count: twice the budget, which the
/// row-group floor reaches at 256 shards. Over it, a shard that adds rows encodes what it holds
/// at once, however little (see [`PendingBytes`]): row groups shrink instead of memory growing.
pub const PENDING_CAP_BYTES: usize = 2 * PENDING_BUDGET_BYTES;
/// Row groups a worker's open files (written, not yet published) may hold together. A file being
/// written keeps each row group's metadata in memory until it is finished: 10–20 KiB per row
/// group of the archive's 16 columns, statistics or not (measured:
/// `encode::parquet::tests::memory_retained_per_row_group_of_an_open_file`). Bounded by
/// nothing else, that grew with every row group of a file's flush interval: at 256 shards the
/// soak's 60 s files held about 8,000 row groups, over 100 MiB, by the end of the backlog, and
/// smaller row groups made it worse. 2,048 row groups hold 20–40 MiB.
pub const OPEN_ROW_GROUPS_BUDGET: usize = 2_048;
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
    open_row_groups: Arc<AtomicUsize>,
    pending: Arc<AtomicUsize>,
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
            open_row_groups: Arc::default(),
            pending: Arc::default(),
        }
    }

    /// A count of one open file's pending bytes, part of this worker's total for as long as the
    /// returned value lives.
    pub fn pending_bytes(&self) -> PendingBytes {
        PendingBytes {
            total: self.pending.clone(),
            mine: 0,
        }
    }

    /// Whether an open file holding `file` pending rows encodes them now, checked after each row
    /// it adds (`page_done`: the last row of its page): its share of the budget reached, or, at
    /// the end of a page, the worker's pending rows over [`PENDING_CAP_BYTES`] (then the shard
    /// encodes what it holds, however little: the argument is at [`PendingBytes`]). Only at the
    /// end of a page, so that over the cap a row group holds at least the page: checked after
    /// every row, rows that idle shards hold made every busy shard write one-row row groups
    /// until their flush intervals ran out.
    pub fn encode_now(&self, file: &PendingBytes, page_done: bool) -> bool {
        file.get() >= self.row_group_bytes()
            || (page_done
                && file.get() > 0
                && self.pending.load(Ordering::Relaxed) > PENDING_CAP_BYTES)
    }

    /// A count of the row groups one open file holds, part of this worker's total for as long as
    /// the returned value lives (the file's [`OpenRowGroups`]).
    pub fn open_row_groups(&self) -> OpenRowGroups {
        OpenRowGroups {
            total: self.open_row_groups.clone(),
            mine: 0,
        }
    }

    /// Whether the worker's open files hold more row groups than [`OPEN_ROW_GROUPS_BUDGET`]: the
    /// shard that just added one publishes its file.
    pub fn too_many_open_row_groups(&self) -> bool {
        self.open_row_groups.load(Ordering::Relaxed) > OPEN_ROW_GROUPS_BUDGET
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

/// The pending bytes of one open file, counted in its worker's total until their encode is done
/// (or the file dropped).
///
/// Why the total stays bounded whatever the shard count. Rows enter only through `push`, a page
/// at a time, and a page is pushed only while its reader's ticket is held
/// (`stream::reader::PageTicket`), so the rows of the pages being pushed at any instant are
/// within the read budget. Bytes leave the total only when their encode is done, and the shard
/// is still inside `push` until then. At the end of each page a shard checks the total; over
/// [`PENDING_CAP_BYTES`], it encodes all it holds. (A push that ends early publishes its file
/// first or holds none; one that fails drops the file, and with it its count.)
///
/// Take any instant, and among the shards not inside `push` that hold bytes, the one whose last
/// push of rows ended last, at t (a push of no rows changes nothing and is not counted). It did not encode, so the total at t was at most the cap. Every byte held
/// now was either held at t (shards outside `push` only lose bytes), so within that total, or
/// added after t by a push that has not ended (one that ended after t either left its shard
/// empty or would be later than t's), so within a page being pushed. Hence the total is at most
/// `PENDING_CAP_BYTES + READ_BUDGET_BYTES` (the second in expected bytes), rows waiting for an
/// encode slot included. No shard outside `push` holding bytes: the total is what pushes add.
pub struct PendingBytes {
    total: Arc<AtomicUsize>,
    mine: usize,
}

impl PendingBytes {
    pub fn add(&mut self, bytes: usize) {
        self.mine += bytes;
        self.total.fetch_add(bytes, Ordering::Relaxed);
    }

    /// This file's pending bytes.
    pub fn get(&self) -> usize {
        self.mine
    }

    /// The rows were taken to be encoded.
    pub fn clear(&mut self) {
        self.total.fetch_sub(self.mine, Ordering::Relaxed);
        self.mine = 0;
    }
}

impl Drop for PendingBytes {
    fn drop(&mut self) {
        self.clear();
    }
}

/// The row groups of one open file, counted in its worker's total until dropped (published,
/// discarded or abandoned alike: the count cannot outlive the file it counts).
///
/// Why the total stays bounded: a shard adds a row group only by encoding one, counts it when the
/// encoding returns, and checks the total right after, with no await between (so no other task
/// of its thread runs in between); over the budget, it publishes its file, which drops this
/// count, its new row group included, once the footer is written. So at any instant the total
/// exceeds the budget by at most one row group per runtime thread (counted, check not yet run),
/// plus the last row group of files being finished (encoded at publish, released right after).
pub struct OpenRowGroups {
    total: Arc<AtomicUsize>,
    mine: usize,
}

impl OpenRowGroups {
    pub fn add_one(&mut self) {
        self.mine += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for OpenRowGroups {
    fn drop(&mut self) {
        self.total.fetch_sub(self.mine, Ordering::Relaxed);
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

    #[test]
    fn pending_bytes_count_until_encoded_or_dropped() {
        let b = Budgets::new();
        let mut a = b.pending_bytes();
        let mut c = b.pending_bytes();
        c.add(1);
        assert!(
            !b.encode_now(&c, true),
            "one byte, under its share and the cap"
        );
        a.add(PENDING_CAP_BYTES - 1);
        assert!(!b.encode_now(&c, true), "at the cap, not over it");
        c.add(1);
        assert!(
            !b.encode_now(&c, false),
            "over the cap, but within a page: the page's rows go into one row group"
        );
        assert!(
            b.encode_now(&c, true),
            "over the cap at the end of a page: a file of 2 bytes encodes"
        );
        let empty = b.pending_bytes();
        assert!(
            !b.encode_now(&empty, true),
            "a file without rows has nothing to encode"
        );
        a.clear();
        assert_eq!((a.get(), c.get()), (0, 2));
        assert!(
            !b.encode_now(&c, true),
            "rows whose encode is done leave the total"
        );
        a.add(b.row_group_bytes());
        assert!(
            b.encode_now(&a, false),
            "a file's share reached, within a page too"
        );
        drop((a, c));
        assert_eq!(
            b.pending.load(Ordering::Relaxed),
            0,
            "a dropped file leaves it too"
        );
    }

    #[test]
    fn open_row_groups_count_until_their_file_is_gone() {
        let b = Budgets::new();
        let mut big = b.open_row_groups();
        for _ in 0..OPEN_ROW_GROUPS_BUDGET {
            big.add_one();
        }
        assert!(!b.too_many_open_row_groups(), "at the budget, not over it");
        let mut small = b.open_row_groups();
        small.add_one();
        assert!(b.too_many_open_row_groups(), "one over");
        drop(small);
        assert!(
            !b.too_many_open_row_groups(),
            "a published file leaves the count"
        );
        drop(big);
        assert_eq!(b.open_row_groups.load(Ordering::Relaxed), 0);
    }
}
