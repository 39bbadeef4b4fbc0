//! The pipeline that wires readers, encoders, sinks and checkpoints: the [`worker`] owns the shard
//! map and spawns one [`shard_task`] per shard it reads. A shard task writes Parquet files to the
//! archive, or (in [`shard_firehose`]) packs JSON lines into Firehose records.

pub mod lease_cycle;
pub mod recover;
pub mod shard_firehose;
pub mod shard_task;
pub mod worker;

use crate::sink::firehose::FirehoseSink;
use crate::sink::ArchiveSink;
use std::sync::Arc;

/// Where a shard's records go.
#[derive(Debug, Clone)]
pub enum Destination {
    /// Parquet files, published create-only under deterministic names.
    Archive(ArchiveSink),
    /// JSON lines through Firehose PutRecordBatch.
    Firehose(Arc<FirehoseSink>),
}
