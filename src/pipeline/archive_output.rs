//! The Parquet archive as a shard's output: rows become files of one `dt` and a contiguous run of
//! the shard's records, each published create-only under the key of its first record, then
//! checkpointed. The shard's files form a chain: each begins with the record right after the
//! previous file's last and names that file's SHA-256.
//!
//! Two writers of one shard (one that lost its lease and does not know it yet, the one that took
//! it, a restarted one) compute the same key for the same position, so exactly one publish lands
//! there. The other finds the key taken, reads that file's footer, adopts it as the chain's
//! latest file, checkpoints it, and reads on right after its last record. The same happens
//! before anything is encoded after a start or an adoption: the key the next file would have is
//! probed first, so a writer that resumes behind another follows the existing chain (one ranged
//! read per file, however many days back) instead of encoding rows it would throw away. The
//! argument that no record lands twice is in `src/leases/design.md`, "Exactly once by
//! construction"; the states are in `src/pipeline/design.md`.

use super::archive_io::Io;
use super::budget::{OpenRowGroups, PendingBytes};
use super::checkpointer::Checkpointer;
use super::output::{report_gap, Flow, Gap, GapReason, Output};
use super::shard::{ShardError, ShardSettings};
use crate::archive::layout::{self, dt_of_millis, ArchiveKey};
use crate::archive::{ArchiveSink, Published, StoredFile};
use crate::encode::parquet::{meta, SpoolWriter, SCHEMA_VERSION};
use crate::encode::record::ChangeRecord;
use crate::leases::Checkpoint;
use crate::metrics::{Metric, Metrics};
use crate::stream::api::Position;
use crate::types::SequenceNumber;
use std::sync::Arc;
use std::time::Instant;

/// A rough ZSTD ratio for DynamoDB JSON, used only to guess a file's final size from its pending
/// rows so that files land near `--flush-size`.
const COMPRESSION_GUESS: u64 = 4;
/// A chain that starts with a record at least this old (and not the shard's first) starts after
/// a trim: the stream keeps records 24 hours, and one read within the last hour of them had its
/// predecessors trimmed, or nearly. A record younger than this cannot follow a trim.
const NEAR_TRIM_HORIZON_MS: i64 = 23 * 3600 * 1000;

/// The file being assembled.
struct OpenFile {
    writer: Option<SpoolWriter>,
    /// Its row groups in the worker's count of open row groups (`Budgets::open_row_groups`).
    groups: OpenRowGroups,
    dt: String,
    first: SequenceNumber,
    last: SequenceNumber,
    /// Rows waiting for the next row group, as pages: each vector is allocated once at the
    /// length of the page it holds rows of and never grows. (One growing vector per shard held
    /// up to twice its rows' structs in capacity, and regrew from empty after every row group;
    /// page-fault sampling of the 256-shard soak put that growth first among what the worker
    /// touched.)
    pending: Vec<Vec<ChangeRecord>>,
    /// The pending rows' bytes, in the worker's total (`Budgets::pending_bytes`).
    pending_bytes: PendingBytes,
    /// When the oldest unwritten record arrived: the flush deadline runs from here.
    since: Instant,
    /// The first row's creation time (ms).
    first_time_ms: i64,
}

impl OpenFile {
    /// Adds a row of a page that has `left` rows from this one on: to the current pending page
    /// while it has room, else to a new one sized for the rest of the page.
    fn add(&mut self, row: ChangeRecord, left: usize) {
        match self.pending.last_mut() {
            Some(page) if page.len() < page.capacity() => page.push(row),
            _ => {
                let mut page = Vec::with_capacity(left.max(1));
                page.push(row);
                self.pending.push(page);
            }
        }
    }
}

pub struct ArchiveOutput {
    io: Io,
    open: Option<OpenFile>,
    /// Whether the key of the next file has been looked for since this output started or
    /// adopted a file. After its own publish the next position is this writer's to fill: a
    /// concurrent writer is still caught by the create-only publish, at the price of one file
    /// encoded in vain.
    probed: bool,
    /// A gap to record in the next file's metadata.
    pending_gap: Option<Gap>,
    /// The shard's first record, from DescribeStream: a chain that starts at another record
    /// started after a trim (or after the records `--start-position latest` skipped).
    starting_sequence: Option<SequenceNumber>,
    spool_seq: u64,
}

impl ArchiveOutput {
    /// `starting_sequence`: the shard's first record, as DescribeStream gives it.
    pub fn new(
        store: ArchiveSink,
        metrics: Arc<Metrics>,
        settings: ShardSettings,
        starting_sequence: Option<SequenceNumber>,
    ) -> Self {
        Self {
            io: Io {
                store,
                metrics,
                settings,
            },
            open: None,
            probed: false,
            pending_gap: None,
            starting_sequence,
            spool_seq: 0,
        }
    }

    fn open_size_estimate(&self) -> u64 {
        self.open.as_ref().map_or(0, |o| {
            o.writer.as_ref().map_or(0, SpoolWriter::bytes_written)
                + o.pending_bytes.get() as u64 / COMPRESSION_GUESS
        })
    }

    /// Encodes the pending rows into a row group of the spool file, off the async workers.
    async fn encode_pending(&mut self, cp: &Checkpointer) -> Result<(), ShardError> {
        let Some(open) = self.open.as_mut() else {
            return Ok(());
        };
        if open.pending.iter().all(Vec::is_empty) {
            return Ok(());
        }
        let writer = match open.writer.take() {
            Some(w) => w,
            None => {
                self.spool_seq += 1;
                let lease = cp.lease();
                let path = self.io.settings.spool_dir.join(format!(
                    "{}_{}_{}.parquet.spool",
                    lease.table, lease.shard, self.spool_seq
                ));
                SpoolWriter::create(&path)?
            }
        };
        let pages = std::mem::take(&mut open.pending);
        let slot = self.io.settings.budgets.encode_slot().await;
        let (writer, result) = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let mut writer = writer;
            let r = writer.write(pages.iter().flatten(), crate::clock::now_ms());
            (writer, r)
        })
        .await
        .expect("encoding does not panic");
        open.writer = Some(writer);
        // The rows are gone only now: waiting for a slot and encoding, they still held memory.
        open.pending_bytes.clear();
        result?;
        open.groups.add_one();
        Ok(())
    }

    /// Metadata every file of this shard carries: who it is, the chain link to the file before it
    /// (from the lease), and the pending gap (consumed).
    fn base_metadata(&mut self, cp: &Checkpointer) -> Vec<(String, String)> {
        let lease = cp.lease();
        let parents = lease
            .parents
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut kv = vec![
            (meta::TABLE.into(), lease.table.to_string()),
            (meta::STREAM_ARN.into(), lease.stream.to_string()),
            (meta::SHARD_ID.into(), lease.shard.to_string()),
            (meta::PARENT_SHARD_ID.into(), parents),
            (meta::SCHEMA_VERSION.into(), SCHEMA_VERSION.into()),
            (meta::LAYOUT_VERSION.into(), layout::LAYOUT_VERSION.into()),
            (
                meta::ARCHIVER_VERSION.into(),
                env!("CARGO_PKG_VERSION").into(),
            ),
        ];
        match lease.last_file_sha256 {
            Some(sha) => {
                kv.push((meta::PREVIOUS_SHA256.into(), hex::encode(sha)));
                if let Some(key) = &lease.last_file_key {
                    kv.push((meta::PREVIOUS_FILE.into(), key.clone()));
                }
            }
            None => kv.push((
                meta::START_POSITION.into(),
                match &lease.checkpoint {
                    Checkpoint::TrimHorizon => "TRIM_HORIZON".into(),
                    Checkpoint::Latest => match lease.start_after_ms {
                        Some(t) => format!("AT_TIMESTAMP:{}", crate::clock::rfc3339(t)),
                        None => "LATEST".into(),
                    },
                    Checkpoint::At(s) => format!("AFTER_SEQUENCE_NUMBER:{s}"),
                    Checkpoint::ShardEnd => "SHARD_END".into(),
                },
            )),
        }
        if let Some(gap) = self.pending_gap.take() {
            let after = gap
                .after
                .map_or_else(|| "none".to_owned(), |s| s.to_string());
            kv.push((meta::GAP_AFTER_SEQUENCE.into(), after));
            kv.push((meta::GAP_REASON.into(), gap.reason.label().into()));
        }
        kv
    }

    /// Makes a file found in the archive the chain's latest file: it must be this shard's and
    /// begin at `first` (the position its key names), and the checkpoint moves to its last
    /// record with its stored hash. Returns that last record.
    async fn adopt(
        &mut self,
        found: &StoredFile,
        first: &SequenceNumber,
        cp: &mut Checkpointer,
    ) -> Result<SequenceNumber, ShardError> {
        let lease = cp.lease();
        let stated = |k: &str| found.meta(k).and_then(|v| SequenceNumber::parse(v).ok());
        let last = match (stated(meta::FIRST_SEQUENCE), stated(meta::LAST_SEQUENCE)) {
            (Some(f), Some(l))
                if &f == first
                    && l >= f
                    && found.meta(meta::SHARD_ID) == Some(lease.shard.as_str())
                    && found.meta(meta::LAYOUT_VERSION) == Some(layout::LAYOUT_VERSION) =>
            {
                l
            }
            _ => {
                return Err(ShardError::Archive(format!(
                    "{} is where shard {}'s file from sequence number {first} belongs, but its footer does not describe such a file (layout {}, shard {}, first {}, last {}); move it out of the archive",
                    found.key,
                    lease.shard,
                    found.meta(meta::LAYOUT_VERSION).unwrap_or("1"),
                    found.meta(meta::SHARD_ID).unwrap_or("?"),
                    found.meta(meta::FIRST_SEQUENCE).unwrap_or("?"),
                    found.meta(meta::LAST_SEQUENCE).unwrap_or("?"),
                )))
            }
        };
        cp.commit(
            Checkpoint::At(last.clone()),
            Some((&found.key, found.sha256)),
        )
        .await?;
        self.probed = false;
        Ok(last)
    }

    /// Before the first row of a file that starts a chain anew (after a start, an adoption or a
    /// trim): the file another writer may already have put at this position is adopted instead.
    /// Returns where to read from when one was.
    async fn follow_existing(
        &mut self,
        row: &ChangeRecord,
        seq: &SequenceNumber,
        cp: &mut Checkpointer,
    ) -> Result<Option<Position>, ShardError> {
        let lease = cp.lease();
        let dt = dt_of_millis(row.event_time_ms);
        let key = layout::stream_file_key(&lease.table, &dt, &lease.shard, seq);
        if let Some(found) = self.io.probe(&key).await? {
            let last = self.adopt(&found, seq, cp).await?;
            tracing::info!(table = %cp.lease().table, shard = %cp.lease().shard, file = %key, "the archive holds the file at this position already (written before a restart or by another worker); following the chain from it");
            return Ok(Some(Position::After(last)));
        }
        // The key of the first record read cannot find a file that begins before it: after a
        // trim (the reader jumped to the trim horizon), or when the lease names no file yet (a
        // shard's first file published and never checkpointed, or a lease table made anew) and
        // the first readable record is no longer that file's first.
        if self.pending_gap.is_some() || cp.lease().last_file_key.is_none() {
            if let Some(found) = self.io.listed_past_checkpoint(&dt, seq, cp).await? {
                let first = match layout::parse_key(&found.key) {
                    ArchiveKey::Stream { first, .. } => first,
                    _ => unreachable!("listed keys are stream files"),
                };
                let last = self.adopt(&found, &first, cp).await?;
                tracing::info!(table = %cp.lease().table, shard = %cp.lease().shard, file = %found.key, "the archive holds a file of this shard past the checkpoint that the first record read could not name; following the chain from it");
                // Read on right after it: the reader reports a trim there if records between it
                // and this one are gone, and that is the gap to record.
                return Ok(Some(Position::After(last)));
            }
            if cp.lease().last_file_key.is_none() {
                self.chain_starts_at(row, seq, cp);
            }
        }
        self.probed = true;
        Ok(None)
    }

    /// The shard's chain starts with `row` (nothing of the shard is in the archive). If the
    /// stream no longer holds the shard's first record, the records before this one were trimmed
    /// before anyone read them: a gap. "No longer holds" is told without trusting a clock alone:
    /// this is not the shard's first record (DescribeStream's starting sequence number), and it
    /// is about as old as the stream keeps records, so those before it are past the trim horizon.
    fn chain_starts_at(&mut self, row: &ChangeRecord, seq: &SequenceNumber, cp: &Checkpointer) {
        let first_of_shard = self.starting_sequence.as_ref().is_none_or(|s| s == seq);
        let age = crate::clock::now_ms().saturating_sub(row.event_time_ms);
        if first_of_shard || self.pending_gap.is_some() || age < NEAR_TRIM_HORIZON_MS {
            return;
        }
        let gap = Gap {
            after: None,
            reason: GapReason::Retention,
        };
        report_gap(&self.io.metrics, cp.lease(), &gap);
        self.pending_gap = Some(gap);
    }

    /// Publishes the open file (if it holds rows) and checkpoints its last record, or adopts the
    /// file another writer published at the same position.
    async fn publish_open(&mut self, cp: &mut Checkpointer) -> Result<Flow, ShardError> {
        if self.open.is_none() {
            return Ok(Flow::Continue);
        }
        self.encode_pending(cp).await?;
        let open = self.open.take().expect("checked above");
        let writer = open.writer.expect("encode_pending created the writer");
        let rows = writer.rows();
        let mut kv = self.base_metadata(cp);
        kv.push((meta::FIRST_SEQUENCE.into(), open.first.to_string()));
        kv.push((meta::LAST_SEQUENCE.into(), open.last.to_string()));
        kv.push((meta::RECORD_COUNT.into(), rows.to_string()));
        let spooled = self.io.finish(writer, kv).await?;
        // The footer is written and the writer with its row groups' metadata gone: they leave
        // the worker's count now, not after the upload.
        drop(open.groups);
        let lease = cp.lease();
        let key = layout::stream_file_key(&lease.table, &open.dt, &lease.shard, &open.first);
        let started = Instant::now();
        let published = self.io.publish(&key, &spooled).await?;
        let table = lease.table.clone();
        let labels = [("table", table.as_str())];
        match published {
            Published::Created => {
                self.io.metrics.inc(Metric::FilesWritten, &labels, 1);
                self.io
                    .metrics
                    .inc(Metric::BytesWritten, &labels, spooled.size_bytes);
                self.io
                    .metrics
                    .inc(Metric::RecordsWritten, &labels, spooled.rows);
            }
            // Our own earlier attempt landed and its answer was lost: the same bytes.
            Published::AlreadyExisted { sha256 } if sha256 == spooled.sha256 => {}
            Published::AlreadyExisted { .. } => {
                self.io.metrics.inc(Metric::PublishConflicts, &labels, 1);
                let found = self.io.probe(&key).await?.ok_or_else(|| {
                    ShardError::Archive(format!(
                        "{key} was there a moment ago and is gone: something deletes archive files"
                    ))
                })?;
                let last = self.adopt(&found, &open.first, cp).await?;
                tracing::info!(table = %table, shard = %cp.lease().shard, key, ours = %open.last, theirs = %last, "another writer published this position first (a worker that lost or took this shard's lease); adopted its file");
                return Ok(if last == open.last {
                    Flow::Continue
                } else {
                    Flow::ReadFrom(Position::After(last))
                });
            }
        }
        failpoint_after_publish();
        cp.commit(
            Checkpoint::At(open.last.clone()),
            Some((&key, spooled.sha256)),
        )
        .await?;
        self.probed = true;
        self.io
            .metrics
            .add_seconds(Metric::FlushSecondsSum, started.elapsed());
        self.io.metrics.inc(Metric::FlushSecondsCount, &[], 1);
        tracing::debug!(table = %table, shard = %cp.lease().shard, key, rows = spooled.rows, bytes = spooled.size_bytes, waited_ms = open.since.elapsed().as_millis() as u64, "file published and checkpointed");
        Ok(Flow::Continue)
    }
}

impl Output for ArchiveOutput {
    async fn push(
        &mut self,
        rows: Vec<ChangeRecord>,
        cp: &mut Checkpointer,
    ) -> Result<Flow, ShardError> {
        let mut left = rows.len();
        for row in rows {
            let Some(seq) = row.sequence_number.clone() else {
                return Err(ShardError::Archive(
                    "a stream record without a sequence number".into(),
                ));
            };
            let dt = dt_of_millis(row.event_time_ms);
            // A file holds one `dt` partition: a new day publishes what is open first.
            if self.open.as_ref().is_some_and(|o| o.dt != dt) {
                if let flow @ Flow::ReadFrom(_) = self.publish_open(cp).await? {
                    return Ok(flow);
                }
            }
            if self.open.is_none() && !self.probed {
                if let Some(from) = self.follow_existing(&row, &seq, cp).await? {
                    return Ok(Flow::ReadFrom(from));
                }
            }
            let first_time_ms = row.event_time_ms;
            let budgets = &self.io.settings.budgets;
            let open = self.open.get_or_insert_with(|| OpenFile {
                first_time_ms,
                writer: None,
                groups: budgets.open_row_groups(),
                dt,
                first: seq.clone(),
                last: seq.clone(),
                pending: Vec::new(),
                pending_bytes: budgets.pending_bytes(),
                since: Instant::now(),
            });
            open.last = seq;
            open.pending_bytes.add(row.approx_bytes());
            open.add(row, left);
            left -= 1;
            // Its share reached, or at the end of the page the worker's pending rows over their
            // cap (many shards: the argument that the total stays bounded is at
            // `budget::PendingBytes`).
            if self
                .io
                .settings
                .budgets
                .encode_now(&open.pending_bytes, left == 0)
            {
                self.encode_pending(cp).await?;
                // No await since the row group was counted: the worker's open files hold too
                // many row groups' metadata, and this shard, which just added one, publishes
                // (the bound's argument is at `budget::OpenRowGroups`).
                if self.io.settings.budgets.too_many_open_row_groups() {
                    if let flow @ Flow::ReadFrom(_) = self.publish_open(cp).await? {
                        return Ok(flow);
                    }
                }
            }
        }
        if self.open_size_estimate() >= self.io.settings.flush_size_bytes {
            return self.publish_open(cp).await;
        }
        Ok(Flow::Continue)
    }

    fn flush_deadline(&self) -> Option<Instant> {
        self.open
            .as_ref()
            .map(|o| o.since + self.io.settings.flush_interval)
    }

    fn oldest_pending_ms(&self) -> Option<i64> {
        self.open.as_ref().map(|o| o.first_time_ms)
    }

    async fn flush(&mut self, cp: &mut Checkpointer) -> Result<Flow, ShardError> {
        self.publish_open(cp).await
    }

    async fn gap(&mut self, gap: Gap, cp: &mut Checkpointer) -> Result<Flow, ShardError> {
        // The gap lies between what is open now and what comes next: no file spans it.
        if let flow @ Flow::ReadFrom(_) = self.publish_open(cp).await? {
            // Another writer's file was adopted: reading goes on after it, and the reader meets
            // the trim again there if it is still in the way.
            return Ok(flow);
        }
        // Of two gaps before one file, the first says where the loss begins.
        self.pending_gap.get_or_insert(gap);
        self.probed = false;
        Ok(Flow::Continue)
    }

    async fn end(&mut self, cp: &mut Checkpointer) -> Result<Flow, ShardError> {
        // The last records get an ordinary file; the end is always its own marker (which carries
        // the gap of a shard that expired unread).
        if let flow @ Flow::ReadFrom(_) = self.publish_open(cp).await? {
            return Ok(flow);
        }
        self.spool_seq += 1;
        let lease = cp.lease();
        let path = self.io.settings.spool_dir.join(format!(
            "{}_{}_{}.end.spool",
            lease.table, lease.shard, self.spool_seq
        ));
        let key = layout::end_marker_key(&lease.table, &lease.shard);
        let writer = SpoolWriter::create(&path)?;
        let mut kv = self.base_metadata(cp);
        kv.push((meta::RECORD_COUNT.into(), "0".into()));
        kv.push((meta::SHARD_END.into(), "true".into()));
        if let Checkpoint::At(s) = &cp.lease().checkpoint {
            kv.push((meta::LAST_SEQUENCE.into(), s.to_string()));
        }
        let spooled = self.io.finish(writer, kv).await?;
        // Already there: another writer (or this one before a restart) ended the shard; the
        // chain before the marker is the same one, so its marker is as good as ours.
        let sha = self
            .io
            .publish(&key, &spooled)
            .await?
            .stored_sha256(spooled.sha256);
        cp.commit(Checkpoint::ShardEnd, Some((&key, sha))).await?;
        self.io.metrics.inc(
            Metric::ShardsFinished,
            &[("table", cp.lease().table.as_str())],
            1,
        );
        Ok(Flow::Continue)
    }

    fn skipped_before_start(&mut self) {
        // The records before the chain's first are in the stream; they were skipped, not lost.
        self.starting_sequence = None;
    }

    fn discard(&mut self) {
        if let Some(open) = self.open.take() {
            if let Some(w) = open.writer {
                let _ = std::fs::remove_file(w.path());
            }
        }
    }
}

/// Test hook for crash tests: with `ARCHIVER_FAILPOINT_ABORT_AFTER_PUBLISH=N`, the process aborts
/// (no cleanup, like `kill -9`) right after its N-th published file, before the checkpoint. Inert
/// unless the variable is set.
fn failpoint_after_publish() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static LIMIT: OnceLock<Option<u64>> = OnceLock::new();
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let limit = LIMIT.get_or_init(|| {
        std::env::var("ARCHIVER_FAILPOINT_ABORT_AFTER_PUBLISH")
            .ok()
            .and_then(|v| v.parse().ok())
    });
    if let Some(n) = limit {
        if COUNT.fetch_add(1, Ordering::SeqCst) + 1 >= *n {
            eprintln!("failpoint: aborting after a publish, before its checkpoint");
            std::process::abort();
        }
    }
}
