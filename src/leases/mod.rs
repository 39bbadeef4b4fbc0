//! The lease table: one item per shard, KCL-style, holding the shard's owner and checkpoint.
//!
//! Several workers share a table's shards through it: `item` is one lease and its attributes,
//! `table` creates the lease table and probes the worker's permissions on it, [`store`] makes
//! every write conditional
//! (on the counter a taker read, or on the owner), and [`plan`] decides, as a pure function, which
//! leases a worker creates, takes or asks for. The protocol, its timing and why the archive's
//! exactly-once guarantee does not depend on it are in `design.md` beside this module.

mod item;
pub mod plan;
pub mod store;
mod table;

pub use store::{Checkpoint, Lease, LeaseError, LeaseKey, LeaseStore};
