//! dynamo-archiver: archives every change of DynamoDB tables, read from DynamoDB Streams, into a
//! lossless, Hive-partitioned Parquet archive on S3 (or a local directory).
//!
//! # Layout
//!
//! The crate is split by domain; each module has one job.
//!
//! - [`config`]: the command line (clap), the TOML file and their validation into typed configs,
//!   one file per command; clap's types stop there (the domain has its own enums).
//! - [`types`]: newtypes for tables, streams, shards and sequence numbers (ordered by value).
//! - [`lineage`]: the pure decision of which shards may be read, given their parents.
//! - [`stream`]: typed DynamoDB Streams calls and the per-shard reader task.
//! - [`encode`]: canonical DynamoDB JSON, the schema v1 row (from an SDK record, or straight from a
//!   GetRecords body), Parquet files, JSON lines, Athena/DuckDB SQL.
//! - [`archive`]: the archive's storage (S3 or a local directory, create-only) and its
//!   [`archive::layout`], the one place where keys are built and parsed.
//! - [`sink`]: the Firehose output (lines packed into records, PutRecordBatch until
//!   acknowledged).
//! - [`leases`]: the lease table, holding each shard's owner and checkpoint.
//! - [`pipeline`]: the worker that owns the shard map and one task per shard.
//! - [`backfill`]: a table's existing items by parallel Scan, resumable, as SNAPSHOT rows.
//! - [`audit`]: `verify`, `history`, `snapshot`: the archive checked, one item's timeline, a
//!   table as of an instant (the state computation `restore` shares).
//! - [`restore`]: a table, or one item, written back into DynamoDB as it stood at an instant
//!   (the state from [`audit`]), paced, journalled, recorded in the archive.
//! - [`export`]: a DynamoDB Export to S3 (full or incremental) converted into the archive.
//! - [`views`]: typed views for analysts (`schema --infer`): a sample of the archive's images
//!   becomes typed columns, the latest state and the state at an instant, for Athena and DuckDB.
//! - [`metrics`], [`health`], [`http`], [`emf`]: Prometheus metrics, what `/healthz` judges by,
//!   the `/healthz`, `/readyz`, `/metrics` endpoint, and CloudWatch embedded metric format lines
//!   (`--metrics emf`).
//! - [`backoff`]: exponential backoff with jitter for the archiver's retry loops.
//! - [`spool`]: the local volume files are assembled on: its free space pauses reading.
//! - [`progress`]: counters of a long copy (backfill, import-export, restore), drawn as a bar on
//!   a terminal (indicatif) or logged every few seconds.
//! - [`clock`]: wall-clock time in the archive's units.
//! - [`aws`]: SDK clients from the standard credential and endpoint chain.
//! - [`dynamo`]: the one DescribeTable wrapper, the wait for ACTIVE, DynamoDB errors classified.
//! - [`cmd`]: one module per command; `main.rs` only parses and dispatches.
//!
//! The data flow, end to end, is told in `docs/ARCHITECTURE.md`; the archive's layout and schema
//! in `docs/ARCHIVE.md`.

pub mod archive;
pub mod audit;
pub mod aws;
pub mod backfill;
pub mod backoff;
pub mod clock;
pub mod cmd;
pub mod config;
pub mod dynamo;
pub mod emf;
pub mod encode;
pub mod export;
pub mod health;
pub mod http;
pub mod leases;
pub mod lineage;
pub mod metrics;
pub mod pipeline;
pub mod progress;
pub mod restore;
pub mod sink;
pub mod spool;
pub mod stream;
pub mod telemetry;
pub mod types;
pub mod views;
