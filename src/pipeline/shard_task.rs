//! One shard, from records to durable files: the task that owns a shard's open file, its lease
//! and its place in the shard's file chain. Its reader runs beside it as a separate task and hands
//! it pages over a bounded channel (see `stream::reader`).
//!
//! A file is published, then the checkpoint moves to the file's last record: a crash between the
//! two re-reads records that are already archived, and the deterministic, create-only file name
//! turns that second write into a no-op (see docs/ARCHITECTURE.md, "Exactly once").

use super::recover::{listing_days, resume_point, Resume};
use super::shard_firehose::LineBatch;
use super::Destination;
use crate::backoff::Backoff;
use crate::encode::parquet::{meta, SpoolWriter, SpooledFile, WriteError, SCHEMA_VERSION};
use crate::encode::record::{ChangeRecord, RecordError};
use crate::leases::{Checkpoint, Lease, LeaseError, LeaseStore};
use crate::metrics::Metrics;
use crate::sink::firehose::FirehoseError;
use crate::sink::naming::{dt_of_key, dt_of_millis, shard_end_key, stream_file_key};
use crate::sink::{ArchiveSink, Published, SinkError};
use crate::stream::api::Position;
use crate::stream::reader::{ReadEvent, ShardReader};
use crate::types::SequenceNumber;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Rows are encoded into a row group once this many (raw) bytes are pending: the unit of memory
/// a shard holds besides the page being read.
pub const ROW_GROUP_BYTES: usize = 8 << 20;
/// Raw row bytes all shard tasks of one worker may hold pending together: with many shards each
/// gets a smaller row group (64 shards × 8 MiB would be 512 MiB, far over a 512 MiB Fargate task).
pub const PENDING_BUDGET_BYTES: usize = 32 << 20;
/// The smallest row group a shard writes under the budget.
const MIN_ROW_GROUP_BYTES: usize = 256 << 10;
use crate::stream::reader::MANY_SHARDS;
/// A rough ZSTD ratio for DynamoDB JSON, used only to guess a file's final size from its pending
/// rows so that files land near `--flush-size`.
const COMPRESSION_GUESS: u64 = 4;
/// Pages read ahead of the writer.
const READ_AHEAD_PAGES: usize = 2;
const RETRY_BASE: Duration = Duration::from_millis(200);
const RETRY_CAP: Duration = Duration::from_secs(10);

/// Settings every shard task shares.
#[derive(Clone)]
pub struct ShardSettings {
    pub flush_interval: Duration,
    pub flush_size_bytes: u64,
    pub spool_dir: PathBuf,
    /// `--failover-time`: a task publishes only while its lease was renewed within 2/3 of it.
    pub failover_time: Duration,
    /// Shard tasks running in this worker: their share of [`PENDING_BUDGET_BYTES`].
    pub running: Arc<std::sync::atomic::AtomicUsize>,
    /// Row groups encoded at once, across the worker's shards (see [`encode_slots`]).
    pub encode_slots: Arc<tokio::sync::Semaphore>,
}

/// The encode semaphore is never closed, so acquiring a slot only waits.
const SLOTS_OPEN: &str = "the encode semaphore is never closed";

/// One encoding slot per core. Encoding is CPU-bound, so more at once gains nothing, and each
/// encoding row group creates a ZSTD compression and decompression context per column (in C,
/// outside the Rust allocator); page-fault sampling of the soak showed 64 shards creating and
/// touching them at once.
pub fn encode_slots() -> Arc<tokio::sync::Semaphore> {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    Arc::new(tokio::sync::Semaphore::new(cores))
}

impl ShardSettings {
    /// Pending bytes at which a shard encodes a row group: the budget shared by the running
    /// shards, between 256 KiB and [`ROW_GROUP_BYTES`].
    pub fn row_group_bytes(&self) -> usize {
        let n = self
            .running
            .load(std::sync::atomic::Ordering::Relaxed)
            .max(1);
        (PENDING_BUDGET_BYTES / n).clamp(MIN_ROW_GROUP_BYTES, ROW_GROUP_BYTES)
    }
}

/// Counts a shard task as running for as long as it lives (held by its spawned future).
pub struct RunningShard(Arc<std::sync::atomic::AtomicUsize>);

impl RunningShard {
    pub fn new(counter: &Arc<std::sync::atomic::AtomicUsize>) -> Self {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(counter.clone())
    }
}

impl Drop for RunningShard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

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

/// What the worker (which renews leases) tells a running shard task about its lease.
#[derive(Debug)]
pub struct LeaseControl {
    mode: std::sync::atomic::AtomicU8,
    renewed_at: std::sync::Mutex<Instant>,
}

impl Default for LeaseControl {
    fn default() -> Self {
        Self {
            mode: std::sync::atomic::AtomicU8::new(StopMode::Release as u8),
            renewed_at: std::sync::Mutex::new(Instant::now()),
        }
    }
}

impl LeaseControl {
    pub fn set_mode(&self, mode: StopMode) {
        self.mode
            .store(mode as u8, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn mode(&self) -> StopMode {
        match self.mode.load(std::sync::atomic::Ordering::SeqCst) {
            1 => StopMode::HandOver,
            2 => StopMode::Lost,
            _ => StopMode::Release,
        }
    }

    pub fn renewed(&self) {
        *self.renewed_at.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// Whether the lease is surely still ours: renewed within 2/3 of the failover time. Another
    /// worker takes a lease only after seeing no renewal for the whole failover time, so a task
    /// that stops publishing at 2/3 leaves a third as margin for a publish in flight.
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

/// How a shard task ended.
#[derive(Debug, PartialEq, Eq)]
pub enum ShardOutcome {
    /// Read to its end (or gone from the stream) and checkpointed as SHARD_END.
    Finished,
    /// Stopped by shutdown after flushing and checkpointing; the lease was released.
    Stopped,
    /// Handed over to the worker that asked for it, after flushing and checkpointing.
    HandedOver,
    /// Another worker holds the lease now; nothing more was written.
    Lost,
}

#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Firehose(#[from] FirehoseError),
    #[error(transparent)]
    Lease(LeaseError),
    #[error("the shard reader stopped unexpectedly")]
    ReaderGone,
}

impl ShardError {
    /// An error no retry can fix (the archive refuses writes): the worker stops.
    pub fn is_fatal(&self) -> bool {
        match self {
            Self::Sink(e) => !e.is_retryable(),
            Self::Firehose(e) => !e.is_retryable(),
            _ => false,
        }
    }
}

/// The file being assembled.
struct OpenFile {
    writer: Option<SpoolWriter>,
    dt: String,
    first: SequenceNumber,
    last: SequenceNumber,
    pending: Vec<ChangeRecord>,
    pending_bytes: usize,
    /// When the oldest unwritten record arrived: the flush deadline runs from here.
    since: Instant,
}

pub struct ShardTask {
    reader: Option<ShardReader>,
    pub(super) lease: Lease,
    leases: LeaseStore,
    pub(super) sink: Destination,
    pub(super) metrics: Arc<Metrics>,
    pub(super) settings: ShardSettings,
    pub(super) control: Arc<LeaseControl>,
    open: Option<OpenFile>,
    /// Firehose output: the JSON lines not yet acknowledged.
    pub(super) lines: Option<LineBatch>,
    /// The task's stop token (Firehose deliveries give up a few attempts after it).
    pub(super) stop: CancellationToken,
    /// A trimmed range to record in the next file's metadata.
    pending_gap: Option<String>,
    spool_seq: u64,
    /// Set when a conditional lease write failed: the shard belongs to another worker now.
    pub(super) lost: bool,
}

impl ShardTask {
    pub fn new(
        reader: ShardReader,
        lease: Lease,
        leases: LeaseStore,
        sink: Destination,
        metrics: Arc<Metrics>,
        settings: ShardSettings,
        control: Arc<LeaseControl>,
    ) -> Self {
        Self {
            control,
            reader: Some(reader),
            lease,
            leases,
            sink,
            metrics,
            settings,
            open: None,
            lines: None,
            stop: CancellationToken::new(),
            pending_gap: None,
            spool_seq: 0,
            lost: false,
        }
    }

    pub async fn run(mut self, stop: CancellationToken) -> Result<ShardOutcome, ShardError> {
        self.stop = stop.clone();
        // Pages read ahead are memory too: one each when many shards run.
        let read_ahead = if self
            .settings
            .running
            .load(std::sync::atomic::Ordering::Relaxed)
            >= MANY_SHARDS
        {
            1
        } else {
            READ_AHEAD_PAGES
        };
        let (tx, mut rx) = mpsc::channel(read_ahead);
        let reader_stop = stop.child_token();
        let table = self.lease.table.clone();
        let shard = self.lease.shard.clone();
        match self.recover().await {
            Ok(true) => return Ok(ShardOutcome::Finished),
            Ok(false) => {}
            Err(ShardError::Lease(LeaseError::Lost(_))) => return Ok(ShardOutcome::Lost),
            Err(e) => return Err(e),
        }
        // The reader is owned by its own task from here on; this task awaits it below.
        let reader = self.reader.take().expect("a shard task runs once");
        let reader_task = tokio::spawn(tracing::Instrument::in_current_span(
            reader.run(tx, reader_stop.clone()),
        ));
        let result = self.follow(&mut rx, &stop).await;
        reader_stop.cancel();
        drop(rx);
        let _ = reader_task.await;
        self.metrics.forget_shard(&table, &shard);
        // Spool files of this task are gone once published; anything left is an unpublished file
        // whose records will be read again from the checkpoint.
        if let Some(open) = self.open.take() {
            if let Some(w) = open.writer {
                let _ = std::fs::remove_file(w.path());
            }
        }
        result
    }

    async fn follow(
        &mut self,
        rx: &mut mpsc::Receiver<ReadEvent>,
        stop: &CancellationToken,
    ) -> Result<ShardOutcome, ShardError> {
        loop {
            let deadline = self
                .open
                .as_ref()
                .map(|o| o.since)
                .or(self.lines.as_ref().map(|l| l.since))
                .map(|since| since + self.settings.flush_interval);
            tokio::select! {
                biased;
                _ = stop.cancelled() => {
                    let mode = self.control.mode();
                    if mode == StopMode::Lost {
                        return Ok(ShardOutcome::Lost);
                    }
                    return match self.publish_open().await {
                        Ok(()) if mode == StopMode::HandOver => {
                            match self.leases.hand_over(&self.lease).await {
                                Ok(()) => {
                                    tracing::info!(table = %self.lease.table, shard = %self.lease.shard, "lease handed over to the worker that asked for it, after a final flush and checkpoint");
                                    Ok(ShardOutcome::HandedOver)
                                }
                                Err(LeaseError::Lost(_)) => Ok(ShardOutcome::Lost),
                                Err(e) => {
                                    tracing::warn!(shard = %self.lease.shard, "could not hand the lease over: {e}");
                                    Ok(ShardOutcome::Stopped)
                                }
                            }
                        }
                        Ok(()) => {
                            if let Err(e) = self.leases.release(&self.lease).await {
                                tracing::warn!(shard = %self.lease.shard, "could not release the lease on shutdown: {e}");
                            }
                            Ok(ShardOutcome::Stopped)
                        }
                        Err(ShardError::Lease(LeaseError::Lost(_))) => Ok(ShardOutcome::Lost),
                        Err(e) => Err(e),
                    };
                }
                _ = sleep_until_opt(deadline) => {
                    { let r = self.publish_open().await; self.fenced(r)?; }
                }
                event = rx.recv() => match event {
                    Some(ReadEvent::Records(rows)) => {
                        for row in rows {
                            self.push(row).await?;
                            if self.lost {
                                return Ok(ShardOutcome::Lost);
                            }
                        }
                        if self.open_size_estimate() >= self.settings.flush_size_bytes {
                            { let r = self.publish_open().await; self.fenced(r)?; }
                        }
                    }
                    Some(ReadEvent::Invalid(e)) => return Err(e.into()),
                    Some(ReadEvent::Trimmed { after }) => {
                        // The gap lies between what is open now and what comes next.
                        { let r = self.publish_open().await; self.fenced(r)?; }
                        self.pending_gap =
                            Some(after.map_or_else(|| "none".to_owned(), |s| s.to_string()));
                    }
                    Some(event @ (ReadEvent::End | ReadEvent::Gone)) => {
                        let r = self.finish_shard(matches!(event, ReadEvent::Gone)).await;
                        self.fenced(r)?;
                        // A fenced end wrote no SHARD_END: the shard is not finished, and its
                        // children must not start before its new owner ends it.
                        return Ok(if self.lost {
                            ShardOutcome::Lost
                        } else {
                            ShardOutcome::Finished
                        });
                    }
                    None => return Err(ShardError::ReaderGone),
                },
            }
            if self.lost {
                return Ok(ShardOutcome::Lost);
            }
        }
    }
}

impl ShardTask {
    /// Brings the checkpoint up to the archive after a crash (see `recover`). Returns true when the
    /// archive shows the shard already ended.
    async fn recover(&mut self) -> Result<bool, ShardError> {
        // Firehose output leaves nothing to list: its checkpoint is the whole truth.
        let Destination::Archive(sink) = &self.sink else {
            return Ok(false);
        };
        let sink = sink.clone();
        let today = dt_of_millis(crate::clock::now_ms());
        let mut keys = Vec::new();
        for day in listing_days(self.lease.last_file_key.as_deref(), &today) {
            let prefix = format!("{}/dt={day}/{}_", self.lease.table, self.lease.shard);
            keys.extend(sink.list(&prefix).await?);
        }
        let (key, checkpoint) = match resume_point(&self.lease.shard, &self.lease.checkpoint, &keys)
        {
            Resume::FromCheckpoint => return Ok(false),
            Resume::AfterFile { key, last } => (key, Checkpoint::At(last)),
            Resume::ShardEnded { key } => (key, Checkpoint::ShardEnd),
        };
        tracing::info!(table = %self.lease.table, shard = %self.lease.shard, file = %key, checkpoint = %self.lease.checkpoint, "the archive holds a file past the checkpoint (a crash between publishing and checkpointing); resuming after it");
        let sha = sink.stored_sha256(&key).await?;
        self.checkpoint_with_retry(checkpoint.clone(), Some((&key, sha)))
            .await?;
        match checkpoint {
            Checkpoint::At(last) => {
                if let Some(reader) = self.reader.as_mut() {
                    reader.position = Position::After(last);
                }
                Ok(false)
            }
            _ => Ok(true),
        }
    }

    /// A lost lease ends the task quietly (another worker owns the shard now).
    pub(super) fn fenced(&mut self, r: Result<(), ShardError>) -> Result<(), ShardError> {
        match r {
            Err(ShardError::Lease(LeaseError::Lost(key))) => {
                tracing::warn!(lease = %key, "lease lost: this worker stops reading the shard");
                self.lost = true;
                Ok(())
            }
            other => other,
        }
    }

    /// Adds one row, publishing the open file first when the row belongs to another day: a file
    /// holds one `dt` partition and a contiguous run of the shard's sequence numbers.
    async fn push(&mut self, row: ChangeRecord) -> Result<(), ShardError> {
        if matches!(self.sink, Destination::Firehose(_)) {
            return self.push_line(row).await;
        }
        let dt = dt_of_millis(row.event_time_ms);
        if self.open.as_ref().is_some_and(|o| o.dt != dt) {
            let r = self.publish_open().await;
            self.fenced(r)?;
            if self.lost {
                return Ok(());
            }
        }
        let seq = row
            .sequence_number
            .clone()
            .expect("stream rows carry a sequence number");
        let open = self.open.get_or_insert_with(|| OpenFile {
            writer: None,
            dt,
            first: seq.clone(),
            last: seq.clone(),
            pending: Vec::new(),
            pending_bytes: 0,
            since: Instant::now(),
        });
        open.last = seq;
        open.pending_bytes += row.approx_bytes();
        open.pending.push(row);
        if open.pending_bytes >= self.settings.row_group_bytes() {
            self.encode_pending().await?;
        }
        Ok(())
    }

    fn open_size_estimate(&self) -> u64 {
        self.open.as_ref().map_or(0, |o| {
            o.writer.as_ref().map_or(0, SpoolWriter::bytes_written)
                + o.pending_bytes as u64 / COMPRESSION_GUESS
        })
    }

    /// Encodes the pending rows into a row group of the spool file, off the async workers.
    async fn encode_pending(&mut self) -> Result<(), ShardError> {
        let Some(open) = self.open.as_mut() else {
            return Ok(());
        };
        if open.pending.is_empty() {
            return Ok(());
        }
        let writer = match open.writer.take() {
            Some(w) => w,
            None => {
                self.spool_seq += 1;
                let path = self.settings.spool_dir.join(format!(
                    "{}_{}_{}.parquet.spool",
                    self.lease.table, self.lease.shard, self.spool_seq
                ));
                SpoolWriter::create(&path)?
            }
        };
        let rows = std::mem::take(&mut open.pending);
        open.pending_bytes = 0;
        let slot = self
            .settings
            .encode_slots
            .clone()
            .acquire_owned()
            .await
            .expect(SLOTS_OPEN);
        let (writer, result) = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let mut writer = writer;
            let r = writer.write(&rows, crate::clock::now_ms());
            (writer, r)
        })
        .await
        .expect("encoding does not panic");
        open.writer = Some(writer);
        result?;
        Ok(())
    }

    /// Publishes the open file (if it holds rows) and checkpoints its last record.
    async fn publish_open(&mut self) -> Result<(), ShardError> {
        let Destination::Archive(sink) = self.sink.clone() else {
            return self.ship_lines().await;
        };
        if self.open.is_none() {
            return Ok(());
        }
        self.encode_pending().await?;
        let open = self.open.take().expect("checked above");
        let writer = open.writer.expect("encode_pending created the writer");
        let rows = writer.rows();
        let mut kv = self.base_metadata();
        kv.push((meta::FIRST_SEQUENCE.into(), open.first.to_string()));
        kv.push((meta::LAST_SEQUENCE.into(), open.last.to_string()));
        kv.push((meta::RECORD_COUNT.into(), rows.to_string()));
        let spooled = finish(writer, kv, &self.settings.encode_slots).await?;
        let key = stream_file_key(
            &self.lease.table,
            &open.dt,
            &self.lease.shard,
            &open.first,
            &open.last,
        );
        let checkpoint = Checkpoint::At(open.last.clone());
        self.publish_and_checkpoint(&sink, &key, spooled, checkpoint, open.since)
            .await
    }

    /// The shard has ended: publish what is open as its last file, or an empty end marker, and
    /// checkpoint SHARD_END so its children may start.
    async fn finish_shard(&mut self, gone: bool) -> Result<(), ShardError> {
        // Gone: records between the last one read and the shard's end can no longer be read.
        let gap = gone.then(|| {
            self.open
                .as_ref()
                .map(|o| o.last.to_string())
                .or_else(|| match &self.lease.checkpoint {
                    Checkpoint::At(s) => Some(s.to_string()),
                    _ => None,
                })
                .unwrap_or_else(|| "none".into())
        });
        if let Some(after) = &gap {
            tracing::error!(table = %self.lease.table, shard = %self.lease.shard, gap_after = %after, "RECORDS MAY BE LOST: the shard expired from the stream before it was read to its end");
        }
        // The last records get an ordinary file; the end is always its own marker, so that
        // recovery (which reads names, not metadata) can tell an ended shard by name alone.
        self.publish_open().await?;
        let Destination::Archive(sink) = self.sink.clone() else {
            // No file to mark the end: the SHARD_END checkpoint alone lets the children start.
            self.checkpoint_with_retry(Checkpoint::ShardEnd, None)
                .await?;
            self.finished_metric();
            return Ok(());
        };
        if gap.is_some() {
            self.pending_gap = gap;
        }
        self.spool_seq += 1;
        let path = self.settings.spool_dir.join(format!(
            "{}_{}_{}.end.spool",
            self.lease.table, self.lease.shard, self.spool_seq
        ));
        let writer = SpoolWriter::create(&path)?;
        let mut kv = self.base_metadata();
        kv.push((meta::RECORD_COUNT.into(), "0".into()));
        kv.push((meta::SHARD_END.into(), "true".into()));
        if let Checkpoint::At(s) = &self.lease.checkpoint {
            kv.push((meta::LAST_SEQUENCE.into(), s.to_string()));
        }
        let spooled = finish(writer, kv, &self.settings.encode_slots).await?;
        // The marker's day is the day of the shard's last file when there is one, so that a retry
        // after a crash (on a later day) names the same object.
        let dt = self
            .lease
            .last_file_key
            .as_deref()
            .and_then(dt_of_key)
            .map_or_else(|| dt_of_millis(crate::clock::now_ms()), str::to_owned);
        let key = shard_end_key(&self.lease.table, &dt, &self.lease.shard);
        self.publish_and_checkpoint(&sink, &key, spooled, Checkpoint::ShardEnd, Instant::now())
            .await?;
        self.finished_metric();
        Ok(())
    }

    fn finished_metric(&self) {
        self.metrics.inc(
            "archiver_shards_finished_total",
            &[("table", self.lease.table.as_str())],
            1,
        );
    }

    /// Metadata every file of this shard carries; consumes the pending gap.
    fn base_metadata(&mut self) -> Vec<(String, String)> {
        let mut kv = vec![
            (meta::TABLE.into(), self.lease.table.to_string()),
            (meta::STREAM_ARN.into(), self.lease.stream.to_string()),
            (meta::SHARD_ID.into(), self.lease.shard.to_string()),
            (
                meta::PARENT_SHARD_ID.into(),
                self.lease
                    .parents
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            (meta::SCHEMA_VERSION.into(), SCHEMA_VERSION.into()),
            (
                meta::ARCHIVER_VERSION.into(),
                env!("CARGO_PKG_VERSION").into(),
            ),
        ];
        match self.lease.last_file_sha256 {
            Some(sha) => {
                kv.push((meta::PREVIOUS_SHA256.into(), hex::encode(sha)));
                if let Some(key) = &self.lease.last_file_key {
                    kv.push((meta::PREVIOUS_FILE.into(), key.clone()));
                }
            }
            None => kv.push((
                meta::START_POSITION.into(),
                match &self.lease.checkpoint {
                    Checkpoint::TrimHorizon => "TRIM_HORIZON".into(),
                    Checkpoint::Latest => "LATEST".into(),
                    Checkpoint::At(s) => format!("AFTER_SEQUENCE_NUMBER:{s}"),
                    Checkpoint::ShardEnd => "SHARD_END".into(),
                },
            )),
        }
        if let Some(gap) = self.pending_gap.take() {
            kv.push((meta::GAP_AFTER_SEQUENCE.into(), gap));
        }
        kv
    }

    async fn publish_and_checkpoint(
        &mut self,
        sink: &ArchiveSink,
        key: &str,
        spooled: SpooledFile,
        checkpoint: Checkpoint,
        since: Instant,
    ) -> Result<(), ShardError> {
        let started = Instant::now();
        let table = self.lease.table.clone();
        let labels = [("table", table.as_str())];
        let mut backoff = Backoff::new(RETRY_BASE, RETRY_CAP);
        let published = loop {
            // Fencing before every attempt, not only at the checkpoint: a task whose lease may
            // already be someone else's publishes nothing (the new owner reads these records
            // again), also after a retry wait.
            if !self.control.still_held(self.settings.failover_time) {
                let _ = std::fs::remove_file(&spooled.path);
                return Err(ShardError::Lease(LeaseError::Lost(
                    self.lease.key.as_str().to_owned(),
                )));
            }
            match sink.publish(key, &spooled).await {
                Ok(p) => break p,
                Err(e) if e.is_retryable() => {
                    let delay = backoff.next_delay();
                    self.metrics
                        .inc("archiver_errors_total", &[("kind", "publish")], 1);
                    tracing::warn!(table = %table, shard = %self.lease.shard, key, "publishing failed; retrying in {delay:?}: {e}");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&spooled.path);
                    return Err(e.into());
                }
            }
        };
        let _ = std::fs::remove_file(&spooled.path);
        let sha = published.stored_sha256(spooled.sha256);
        match published {
            Published::Created => {
                self.metrics.inc("archiver_files_written_total", &labels, 1);
                self.metrics
                    .inc("archiver_bytes_written_total", &labels, spooled.size_bytes);
                self.metrics
                    .inc("archiver_records_written_total", &labels, spooled.rows);
            }
            Published::AlreadyExisted { .. } => {
                tracing::info!(table = %table, shard = %self.lease.shard, key, "file already in the archive (written before a restart); not written again");
                self.metrics
                    .inc("archiver_files_already_present_total", &labels, 1);
            }
        }
        failpoint_after_publish();
        self.checkpoint_with_retry(checkpoint.clone(), Some((key, sha)))
            .await?;
        self.metrics
            .add_seconds("archiver_flush_seconds_sum", started.elapsed());
        self.metrics.inc("archiver_flush_seconds_count", &[], 1);
        tracing::debug!(table = %table, shard = %self.lease.shard, key, rows = spooled.rows, bytes = spooled.size_bytes, waited_ms = since.elapsed().as_millis() as u64, checkpoint = %checkpoint, "file published and checkpointed");
        Ok(())
    }
}

impl ShardTask {
    /// Moves the checkpoint (and, for a file, the chain's last file), retrying transient failures
    /// until they pass; a lost lease ends the task.
    pub(super) async fn checkpoint_with_retry(
        &mut self,
        checkpoint: Checkpoint,
        file: Option<(&str, [u8; 32])>,
    ) -> Result<(), ShardError> {
        let mut backoff = Backoff::new(RETRY_BASE, RETRY_CAP);
        loop {
            match self
                .leases
                .checkpoint(&mut self.lease, checkpoint.clone(), file)
                .await
            {
                Ok(()) => break,
                Err(e) if e.is_retryable() => {
                    let delay = backoff.next_delay();
                    self.metrics
                        .inc("archiver_errors_total", &[("kind", "checkpoint")], 1);
                    tracing::warn!(table = %self.lease.table, shard = %self.lease.shard, "checkpoint failed; retrying in {delay:?}: {e}");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(ShardError::Lease(e)),
            }
        }
        self.metrics.inc(
            "archiver_checkpoints_total",
            &[("table", self.lease.table.as_str())],
            1,
        );
        Ok(())
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

async fn finish(
    writer: SpoolWriter,
    kv: Vec<(String, String)>,
    slots: &Arc<tokio::sync::Semaphore>,
) -> Result<SpooledFile, WriteError> {
    let slot = slots.clone().acquire_owned().await.expect(SLOTS_OPEN);
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        writer.finish(kv)
    })
    .await
    .expect("finishing a file does not panic")
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}
