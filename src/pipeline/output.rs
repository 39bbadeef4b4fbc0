//! Where a shard's rows go: the one interface the shard loop (`shard_task`) talks to, with two
//! peers behind it, the Parquet archive (`archive_output`) and Firehose (`firehose_output`). The
//! loop knows neither; each output owns its buffered rows and checkpoints through the shard's
//! [`Checkpointer`] only what it made durable.

use super::checkpointer::Checkpointer;
use super::shard_task::ShardError;
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
}

/// Records that can no longer be read, found by the reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gap {
    /// Trimmed from the stream (older than its 24 hours) before they were read: the gap begins
    /// after `after` (`None`: at the shard's start) and reading goes on at the trim horizon.
    Trimmed { after: Option<SequenceNumber> },
}

pub trait Output {
    /// Where reading begins, once the output has brought what it knows up to date.
    fn start_position(&self, checkpointer: &Checkpointer) -> Position;

    /// Takes one page of rows in stream order, publishing and checkpointing whatever fills up.
    async fn push(
        &mut self,
        rows: Vec<ChangeRecord>,
        checkpointer: &mut Checkpointer,
    ) -> Result<Flow, ShardError>;

    /// When the oldest buffered row must be written (`--flush-interval` after it arrived).
    fn flush_deadline(&self) -> Option<Instant>;

    /// Makes everything buffered durable and checkpoints it.
    async fn flush(&mut self, checkpointer: &mut Checkpointer) -> Result<Flow, ShardError>;

    /// Records a gap before the next row.
    async fn gap(&mut self, gap: Gap, checkpointer: &mut Checkpointer) -> Result<Flow, ShardError>;

    /// The shard is read to its end (`gone`: it expired first, and what was unread is lost):
    /// flush, record the end, checkpoint `SHARD_END`. `Continue` means the shard is finished.
    async fn end(
        &mut self,
        gone: bool,
        checkpointer: &mut Checkpointer,
    ) -> Result<Flow, ShardError>;

    /// Drops what is buffered and not yet durable (the task is ending; those records lie after
    /// the checkpoint and are read again by the next owner).
    fn discard(&mut self);
}
