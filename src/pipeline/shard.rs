//! What a shard task is given and what it gives back: the settings every task shares, the
//! readers' ingredients, how a task ended, and its errors. Kept apart from the loop
//! (`shard_task`) so that the loop, its checkpointer and its outputs all depend on it and not
//! on each other.

use super::budget::Budgets;
use crate::archive::SinkError;
use crate::encode::parquet::WriteError;
use crate::encode::record::RecordError;
use crate::leases::LeaseError;
use crate::metrics::Metrics;
use crate::sink::firehose::FirehoseError;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Settings every shard task shares.
#[derive(Clone)]
pub struct ShardSettings {
    pub flush_interval: Duration,
    pub flush_size_bytes: u64,
    pub spool_dir: PathBuf,
    /// `--failover-time`: Firehose deliveries go out only while the lease was renewed within 2/3
    /// of it (see `lease_control`).
    pub failover_time: Duration,
    pub budgets: Budgets,
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
    /// Another worker holds the lease now; nothing more was checkpointed.
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
    /// Another worker owns the lease now (a conditional lease write failed, or the lease was
    /// not renewed in time for a Firehose delivery).
    #[error("lease {0} is held by another worker now")]
    Fenced(String),
    #[error("{0}")]
    Archive(String),
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

/// How a task ended, for the worker.
pub struct TaskEnd {
    pub result: Result<ShardOutcome, ShardError>,
    /// It moved the checkpoint before it ended.
    pub progressed: bool,
}

/// Makes the readers of one shard, each from a position (the first from where the output
/// resumes, later ones after a file adopted from the archive).
pub struct ReaderSpec {
    pub streams: aws_sdk_dynamodbstreams::Client,
    pub metrics: Arc<Metrics>,
    pub running: Arc<std::sync::atomic::AtomicUsize>,
    /// The worker's read budget, shared by every reader (`stream::reader::PageTicket`).
    pub page_budget: Arc<tokio::sync::Semaphore>,
    /// The spool volume readers wait for room on (Parquet output).
    pub spool: Option<crate::spool::SpoolRoom>,
}
