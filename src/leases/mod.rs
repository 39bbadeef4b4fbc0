//! The lease table: one item per shard, KCL-style, holding the shard's owner and checkpoint.
//!
//! In this version one worker owns every shard it reads; the item's `leaseCounter` and
//! conditional writes are already in place for several workers sharing shards (see
//! `design.md` beside this module).

pub mod plan;
pub mod store;

pub use store::{Checkpoint, Lease, LeaseError, LeaseKey, LeaseStore};
