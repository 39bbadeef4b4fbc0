//! The pipeline that wires readers, outputs and checkpoints. The [`worker`] owns every table's
//! shard map and runs the lease cycle (`lease_cycle`), which starts one shard task
//! (`shard_task`) per lease acquired. A shard task owns its lease (`checkpointer`), its reader
//! and one output: the Parquet archive (`archive_output`, whose retried store calls are in
//! `archive_io`) or Firehose (`firehose_output`), two peers behind one interface (`output`).
//! What the worker tells a running task about its lease is in `lease_control`; the memory
//! budgets the tasks share are in [`budget`].

mod archive_io;
mod archive_output;
pub mod budget;
mod checkpointer;
mod discovery;
mod error;
mod firehose_output;
mod lease_control;
mod lease_cycle;
mod output;
mod preflight;
mod renewer;
mod shard;
mod shard_task;
pub mod worker;

use crate::archive::ArchiveSink;
use crate::sink::firehose::FirehoseSink;
use std::sync::Arc;

/// Where a worker's shards write.
#[derive(Debug, Clone)]
pub enum Destination {
    /// Parquet files, published create-only under keys that name their position in the shard.
    Archive(ArchiveSink),
    /// JSON lines through Firehose PutRecordBatch.
    Firehose(Arc<FirehoseSink>),
}
