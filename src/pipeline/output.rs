//! Where a shard's rows go: the one interface the shard loop (`shard_task`) talks to, with two
//! peers behind it, the Parquet archive (`archive_output`) and Firehose (`firehose_output`). The
//! loop knows neither; each output owns its buffered rows and checkpoints through the shard's
//! [`Checkpointer`] only what it made durable.

use super::checkpointer::Checkpointer;
use super::shard::ShardError;
use crate::encode::record::ChangeRecord;
use crate::stream::api::Position;
use crate::types::SequenceNumber;
use std::time::Instant;

/// What the loop does next after an output call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    /// Go on reading where the reader is.
    Continue,
    /// Read from this position instead: the archive holds records up to it already (another
    /// writer's file was found at this output's next position and adopted). Pages read ahead
    /// are dropped.
    ReadFrom(Position),
    /// The shard is finished: its end is recorded and `SHARD_END` checkpointed (the loop's own
    /// answer to a `Continue` from [`Output::end`]).
    Finished,
}

/// Records that can no longer be read: where the gap begins (`after`; `None`: at the shard's
/// start) and why. It is written into the chain (the next file's metadata), logged as
/// `RECORDS LOST` and counted in `archiver_records_lost_total`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub after: Option<SequenceNumber>,
    pub reason: GapReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GapReason {
    /// Trimmed from the stream (older than its 24 hours) before they were read; reading goes on
    /// at the trim horizon.
    Trimmed,
    /// The shard expired from the stream before it was read to its end.
    Expired,
    /// A shard whose chain starts here was first read when its oldest records were near the end
    /// of the stream's 24 hours, and the first record read is not the shard's first: the records
    /// before it were trimmed before anyone read them.
    Retention,
}

impl GapReason {
    /// The `gap_reason` metadata value and the `reason` label of `archiver_records_lost_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Trimmed => "trimmed",
            Self::Expired => "expired",
            Self::Retention => "retention",
        }
    }
}

impl std::fmt::Display for GapReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Trimmed => f.write_str("trimmed from the stream (older than 24 hours) before they were read"),
            Self::Expired => f.write_str("the shard expired from the stream before it was read to its end"),
            Self::Retention => f.write_str("the shard was first read when its oldest records had been trimmed (older than 24 hours)"),
        }
    }
}

/// Makes a gap loud: `RECORDS LOST` at error level and `archiver_records_lost_total{table,
/// reason}`. (Writing it into the chain is the output's part.)
pub fn report_gap(metrics: &crate::metrics::Metrics, lease: &crate::leases::Lease, gap: &Gap) {
    tracing::error!(
        table = %lease.table,
        shard = %lease.shard,
        gap_after = gap.after.as_ref().map_or("the shard's start".to_owned(), ToString::to_string),
        reason = gap.reason.label(),
        "RECORDS LOST: {}; the gap is written into the archive (gap_after_sequence_number and gap_reason in the next file) and verify reports it",
        gap.reason
    );
    metrics.inc(
        crate::metrics::Metric::RecordsLost,
        &[
            ("table", lease.table.as_str()),
            ("reason", gap.reason.label()),
        ],
        1,
    );
}

pub trait Output {
    /// Takes one page of rows in stream order, publishing and checkpointing whatever fills up.
    async fn push(
        &mut self,
        rows: Vec<ChangeRecord>,
        checkpointer: &mut Checkpointer,
    ) -> Result<Flow, ShardError>;

    /// When the oldest buffered row must be written (`--flush-interval` after it arrived).
    fn flush_deadline(&self) -> Option<Instant>;

    /// The creation time (ms) of the oldest row read and not yet durable, if any: how far behind
    /// the stream the output is (the iterator age), and whether records are waiting (health).
    fn oldest_pending_ms(&self) -> Option<i64>;

    /// Makes everything buffered durable and checkpoints it.
    async fn flush(&mut self, checkpointer: &mut Checkpointer) -> Result<Flow, ShardError>;

    /// Records a gap before the next row.
    async fn gap(&mut self, gap: Gap, checkpointer: &mut Checkpointer) -> Result<Flow, ShardError>;

    /// The shard is read to its end (or gone, after a [`Gap`] of reason `Expired`): flush,
    /// record the end, checkpoint `SHARD_END`. `Continue` means the shard is finished.
    async fn end(&mut self, checkpointer: &mut Checkpointer) -> Result<Flow, ShardError>;

    /// The loop dropped records created before `--start-position latest` took effect, right
    /// before the next row: the shard's chain starts after them on purpose, not after a trim.
    fn skipped_before_start(&mut self) {}

    /// Drops what is buffered and not yet durable (the task is ending; those records lie after
    /// the checkpoint and are read again by the next owner).
    fn discard(&mut self);
}
