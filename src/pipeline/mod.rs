//! The pipeline that wires readers, encoders, sinks and checkpoints: the [`worker`] owns the shard
//! map and spawns one [`shard_task`] per shard it reads.

pub mod lease_cycle;
pub mod recover;
pub mod shard_task;
pub mod worker;
