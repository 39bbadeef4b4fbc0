//! Configuration: clap arguments and an optional TOML file, merged with the precedence
//! flag > environment > file > default, then validated into types that cannot hold a bad value.
//!
//! # Layout
//!
//! - [`cli`]: the parser, the options every command shares, the value enums several commands take.
//! - One file per command ([`run`], [`leases`], [`schema`], [`backfill`], [`import_export`],
//!   [`verify`], [`history`], [`snapshot`], [`restore`]): its clap arguments beside its validated
//!   configuration and the `resolve` that turns one into the other.
//! - `resolve`: the helpers they share (tables, durations, sizes, the archive, `--key`, `--as-of`).
//! - [`file`]: the TOML file; [`units`]: durations and sizes; `error`: [`ConfigError`].
//!
//! clap's types stop here: a command's configuration holds the domain's own types
//! ([`crate::archive::ArchiveUri`], [`crate::encode::key_query::KeyQuery`],
//! [`crate::progress::ProgressMode`], …), each parsed once.

pub mod backfill;
pub mod cli;
mod error;
pub mod file;
pub mod history;
pub mod import_export;
pub mod leases;
mod resolve;
pub mod restore;
pub mod run;
pub mod schema;
pub mod snapshot;
pub mod units;
pub mod verify;

pub use backfill::{BackfillArgs, BackfillConfig};
pub use error::ConfigError;
pub use history::{HistoryArgs, HistoryConfig};
pub use import_export::{ImportExportArgs, ImportExportConfig};
pub use leases::{LeasesArgs, LeasesConfig};
pub use resolve::validate_table;
pub use restore::{RestoreArgs, RestoreConfig};
pub use run::{RunArgs, RunConfig};
pub use schema::{SchemaArgs, SchemaConfig};
pub use snapshot::{SnapshotArgs, SnapshotConfig};
pub use verify::{VerifyArgs, VerifyConfig};

pub const DEFAULT_LEASE_TABLE: &str = "dynamo-archiver-leases";
pub const DEFAULT_FLUSH_SIZE_BYTES: u64 = 128 << 20;
/// Below this a file would hold too few rows to be worth an S3 object.
pub const MIN_FLUSH_SIZE_BYTES: u64 = 64 << 10;
/// S3's largest single object is 5 TiB, but files past a few GiB make Athena scans and restarts
/// slow; this is the product's own ceiling.
pub const MAX_FLUSH_SIZE_BYTES: u64 = 4 << 30;

/// How a command logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    pub format: crate::telemetry::LogFormat,
}

#[cfg(test)]
mod tests;
