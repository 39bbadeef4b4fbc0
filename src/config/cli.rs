//! The command line, as clap derive types. Every option is an `Option` without a clap default, so
//! that a value given by flag or environment can be told apart from one that should come from the
//! config file or the built-in default (precedence: flag > env > file > default). Each help text
//! names the default. Each command's arguments sit beside its configuration (`config/run.rs`,
//! …); here are the parser, the options every command shares and every value enum (the
//! arguments and the config file take them). clap's types stop in `config/`: each converts into its domain's own enum.

use super::{
    BackfillArgs, HistoryArgs, ImportExportArgs, LeasesArgs, RestoreArgs, RunArgs, SchemaArgs,
    SnapshotArgs, VerifyArgs,
};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "dynamo-archiver",
    version,
    about = "Archives every change of DynamoDB tables, read from DynamoDB Streams, into a lossless Parquet archive on S3.",
    long_about = None,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The worker: follow the streams of the configured tables until SIGTERM or SIGINT.
    Run(Box<RunArgs>),
    /// Print the lease table: table, shard, owner, checkpoint, state, parent, last renewal.
    Leases(LeasesArgs),
    /// Print the archive schema, the Athena/Glue DDL and a DuckDB view for a table.
    Schema(SchemaArgs),
    /// Copy a table's existing items into the archive as SNAPSHOT rows (parallel Scan, resumable).
    Backfill(BackfillArgs),
    /// Convert a DynamoDB Export to S3 (DYNAMODB_JSON, full or incremental) into the archive.
    ImportExport(ImportExportArgs),
    /// Check an archive: every shard's chain of files intact, lineage complete, no duplicates.
    /// Exit 1 on a problem.
    Verify(VerifyArgs),
    /// One item's timeline from the archive: when, what event, by whom, and what changed.
    History(HistoryArgs),
    /// A table's state at an instant, rebuilt from the archive, written as Parquet or as a
    /// DynamoDB import folder.
    Snapshot(SnapshotArgs),
    /// Put a table, or one item, back into DynamoDB as it stood at an instant.
    Restore(RestoreArgs),
}

/// Options every command shares.
#[derive(Debug, Args, Clone, Default)]
pub struct CommonArgs {
    /// TOML file with the same keys as the options (`flush_interval = "30s"`); unknown keys are errors.
    /// Precedence: flag > environment > file > default.
    #[arg(long, env = "ARCHIVER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log format. [default: json]
    #[arg(long, env = "ARCHIVER_LOG_FORMAT", value_name = "F")]
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

impl From<LogFormat> for crate::telemetry::LogFormat {
    fn from(v: LogFormat) -> Self {
        match v {
            LogFormat::Json => Self::Json,
            LogFormat::Text => Self::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProgressMode {
    Auto,
    Bar,
    Log,
    Off,
}

impl From<ProgressMode> for crate::progress::ProgressMode {
    fn from(v: ProgressMode) -> Self {
        match v {
            ProgressMode::Auto => Self::Auto,
            ProgressMode::Bar => Self::Bar,
            ProgressMode::Log => Self::Log,
            ProgressMode::Off => Self::Off,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartPosition {
    /// The oldest record still in the shard (up to 24 hours back): nothing is missed.
    TrimHorizon,
    /// Only records written after the worker starts.
    Latest,
}

impl From<StartPosition> for crate::stream::StartPosition {
    fn from(v: StartPosition) -> Self {
        match v {
            StartPosition::TrimHorizon => Self::TrimHorizon,
            StartPosition::Latest => Self::Latest,
        }
    }
}

/// `--metrics`: extra metric output besides `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MetricsMode {
    Off,
    Emf,
}

/// `schema --dialect`: which engine's SQL to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// Athena (Glue DDL in Hive's dialect, views and queries in Trino's).
    Athena,
    /// DuckDB.
    Duckdb,
}

impl From<Dialect> for crate::views::render::Dialect {
    fn from(v: Dialect) -> Self {
        match v {
            Dialect::Athena => Self::Athena,
            Dialect::Duckdb => Self::Duckdb,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotFormat {
    Parquet,
    DynamodbJson,
}

impl From<SnapshotFormat> for crate::audit::snapshot_out::SnapshotFormat {
    fn from(v: SnapshotFormat) -> Self {
        match v {
            SnapshotFormat::Parquet => Self::Parquet,
            SnapshotFormat::DynamodbJson => Self::DynamodbJson,
        }
    }
}
