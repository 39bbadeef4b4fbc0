//! The command line, as clap derive types. Every option is an `Option` without a clap default, so
//! that a value given by flag or environment can be told apart from one that should come from the
//! config file or the built-in default (precedence: flag > env > file > default). Each help text
//! names the default.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// `--metrics`: extra metric output besides `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MetricsMode {
    Off,
    Emf,
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartPosition {
    /// The oldest record still in the shard (up to 24 hours back): nothing is missed.
    TrimHorizon,
    /// Only records written after the worker starts.
    Latest,
}

#[derive(Debug, Args, Clone, Default)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Table whose stream to archive (repeat for several tables). [required]
    #[arg(
        long = "table",
        env = "ARCHIVER_TABLES",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub tables: Vec<String>,

    /// Parquet output: `s3://bucket/prefix` or a local directory. [required: this or --firehose]
    #[arg(long, env = "ARCHIVER_ARCHIVE", value_name = "URI")]
    pub archive: Option<String>,

    /// Firehose delivery stream: JSON-lines output instead of Parquet. [required: this or
    /// --archive]
    #[arg(long, env = "ARCHIVER_FIREHOSE", value_name = "NAME")]
    pub firehose: Option<String>,

    /// With --firehose: where a stream record too big for one Firehose record (1,000 KiB as a
    /// JSON line) is written whole, `s3://bucket/prefix`, with a pointer line sent to Firehose.
    /// Without it such a record stops the worker (it is never dropped). [default: none]
    #[arg(long, env = "ARCHIVER_OVERFLOW_ARCHIVE", value_name = "URI")]
    pub overflow_archive: Option<String>,

    /// DynamoDB table holding leases and checkpoints; created (on-demand billing) if missing.
    /// [default: dynamo-archiver-leases]
    #[arg(long, env = "ARCHIVER_LEASE_TABLE", value_name = "NAME")]
    pub lease_table: Option<String>,

    /// This worker's name in the lease table. [default: the ECS task id, else hostname:pid]
    #[arg(long, env = "ARCHIVER_WORKER_ID", value_name = "ID")]
    pub worker_id: Option<String>,

    /// Where a shard with no checkpoint starts. [default: trim-horizon]
    #[arg(long, env = "ARCHIVER_START_POSITION", value_name = "P")]
    pub start_position: Option<StartPosition>,

    /// The longest a record waits before it is written, e.g. 500ms, 10s, 5m. [default: 60s]
    #[arg(long, env = "ARCHIVER_FLUSH_INTERVAL", value_name = "D")]
    pub flush_interval: Option<String>,

    /// Target size of one archive file, e.g. 64MiB. [default: 128MiB]
    #[arg(long, env = "ARCHIVER_FLUSH_SIZE", value_name = "BYTES")]
    pub flush_size: Option<String>,

    /// Address for /healthz, /readyz and /metrics; `off` disables it. [default: 0.0.0.0:9464]
    #[arg(long, env = "ARCHIVER_HTTP", value_name = "ADDR")]
    pub http: Option<String>,

    /// A lease not renewed for this long may be taken by another worker. [default: 10s]
    #[arg(long, env = "ARCHIVER_FAILOVER_TIME", value_name = "D")]
    pub failover_time: Option<String>,

    /// KMS key (id or ARN) for SSE-KMS on archive objects. [default: the bucket's default encryption]
    #[arg(long, env = "ARCHIVER_SSE_KMS_KEY", value_name = "KEY")]
    pub sse_kms_key: Option<String>,

    /// Local folder where files are assembled before upload (bounded memory, see docs).
    /// [default: <system temp dir>/dynamo-archiver]
    #[arg(long, env = "ARCHIVER_SPOOL_DIR", value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,

    /// How often the streams are listed for new shards (a shard that ends triggers a listing at
    /// once). [default: 30s]
    #[arg(long, env = "ARCHIVER_DISCOVERY_INTERVAL", value_name = "D")]
    pub discovery_interval: Option<String>,

    /// The most shard leases this worker holds; the rest are left to other workers (each worker's
    /// memory and spool disk grow with the shards it holds). [default: unbounded]
    #[arg(long, env = "ARCHIVER_MAX_LEASES", value_name = "N")]
    pub max_leases: Option<u32>,

    /// `/healthz` fails when a shard this worker owns has had no successful read for this long
    /// (idle shards are read every second; retries wait up to 20 s). [default: 120s]
    #[arg(long, env = "ARCHIVER_STUCK_AFTER", value_name = "D")]
    pub stuck_after: Option<String>,

    /// Metrics also as CloudWatch embedded metric format lines on stdout, once a minute
    /// (`emf`), for alarms without a Prometheus scraper; or `off`. [default: off]
    #[arg(long, env = "ARCHIVER_METRICS", value_name = "M")]
    pub metrics: Option<MetricsMode>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct LeasesArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Only the leases of these tables (repeatable). [default: every table in the lease table]
    #[arg(
        long = "table",
        env = "ARCHIVER_TABLES",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub tables: Vec<String>,

    /// DynamoDB table holding leases and checkpoints. [default: dynamo-archiver-leases]
    #[arg(long, env = "ARCHIVER_LEASE_TABLE", value_name = "NAME")]
    pub lease_table: Option<String>,

    /// Print JSON (one array of objects) for scripts instead of a table. [default: false]
    #[arg(long, env = "ARCHIVER_JSON")]
    pub json: bool,
}

#[derive(Debug, Args, Clone, Default)]
pub struct SchemaArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Table whose Athena DDL and DuckDB view to print. [required]
    #[arg(
        long = "table",
        env = "ARCHIVER_TABLES",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub tables: Vec<String>,

    /// Archive location the DDL points at (`s3://bucket/prefix` or a local directory); with
    /// --infer, the archive that is read. [default: s3://your-bucket/archive; required with
    /// --infer]
    #[arg(long, env = "ARCHIVER_ARCHIVE", value_name = "URI")]
    pub archive: Option<String>,

    /// Read a sample of the archive and also print typed views: `<table>_changes_typed` (every
    /// change, one typed column per attribute and type), `<table>_latest` (each item's newest
    /// state) and `<table>_as_of` (the table at an instant: a DuckDB macro, an Athena query
    /// template). [default: false]
    #[arg(long, env = "ARCHIVER_INFER")]
    pub infer: bool,

    /// With --infer: rows to sample, spread over the table's files and days (at least 1).
    /// [default: 100000]
    #[arg(long, env = "ARCHIVER_SAMPLE", value_name = "N")]
    pub sample: Option<u64>,

    /// Print only this engine's SQL, runnable as a script (`duckdb my.db < views.sql`):
    /// `athena` or `duckdb`. [default: both]
    #[arg(long, env = "ARCHIVER_DIALECT", value_name = "D")]
    pub dialect: Option<Dialect>,
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

#[derive(Debug, Args, Clone, Default)]
pub struct BackfillArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Table whose items to copy (repeat for several tables; they are scanned one after another).
    /// [required]
    #[arg(
        long = "table",
        env = "ARCHIVER_TABLES",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub tables: Vec<String>,

    /// Parquet output: `s3://bucket/prefix` or a local directory. [required]
    #[arg(long, env = "ARCHIVER_ARCHIVE", value_name = "URI")]
    pub archive: Option<String>,

    /// Parallel Scan segments (1-1000000). A resumed backfill keeps the number it started with.
    /// [default: one per GiB of table, at least 4, at most 1000]
    #[arg(long, env = "ARCHIVER_SEGMENTS", value_name = "N")]
    pub segments: Option<u32>,

    /// Segments scanned at the same time; each holds up to one 8 MiB row group in memory.
    /// [default: the number of segments, at most 16]
    #[arg(long, env = "ARCHIVER_PARALLEL", value_name = "N")]
    pub parallel: Option<u32>,

    /// Read capacity units per second the scan may consume, over all segments (measured from
    /// ConsumedCapacity). [default: no limit]
    #[arg(long, env = "ARCHIVER_MAX_RCU", value_name = "R")]
    pub max_rcu: Option<f64>,

    /// Strongly consistent reads (twice the read capacity). [default: false]
    #[arg(long, env = "ARCHIVER_CONSISTENT_READ")]
    pub consistent_read: bool,

    /// Start a new snapshot even if an earlier backfill of the table finished. [default: false]
    #[arg(long, env = "ARCHIVER_NEW_SCAN")]
    pub new_scan: bool,

    /// Target size of one archive file, e.g. 64MiB. [default: 128MiB]
    #[arg(long, env = "ARCHIVER_FLUSH_SIZE", value_name = "BYTES")]
    pub flush_size: Option<String>,

    /// KMS key (id or ARN) for SSE-KMS on archive objects. [default: the bucket's default encryption]
    #[arg(long, env = "ARCHIVER_SSE_KMS_KEY", value_name = "KEY")]
    pub sse_kms_key: Option<String>,

    /// Local folder where files are assembled before upload.
    /// [default: <system temp dir>/dynamo-archiver]
    #[arg(long, env = "ARCHIVER_SPOOL_DIR", value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,

    /// Progress output: `auto` (a bar on a terminal, else a log line every few seconds), `bar`,
    /// `log` or `off`. [default: auto]
    #[arg(long, env = "ARCHIVER_PROGRESS", value_name = "P")]
    pub progress: Option<ProgressMode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProgressMode {
    Auto,
    Bar,
    Log,
    Off,
}

#[derive(Debug, Args, Clone, Default)]
pub struct ImportExportArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// The export: `s3://bucket/prefix/AWSDynamoDB/<export-id>/` or a local folder holding
    /// `manifest-summary.json`. [required]
    #[arg(long, env = "ARCHIVER_EXPORT", value_name = "URI")]
    pub export: Option<String>,

    /// The exported table: the archive folder its rows go to. [required]
    #[arg(
        long = "table",
        env = "ARCHIVER_TABLES",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub tables: Vec<String>,

    /// Parquet output: `s3://bucket/prefix` or a local directory. [required]
    #[arg(long, env = "ARCHIVER_ARCHIVE", value_name = "URI")]
    pub archive: Option<String>,

    /// The table the export was taken of, when it is archived under another name (a renamed
    /// table): the export's manifest must name this table. [default: --table]
    #[arg(long, env = "ARCHIVER_FROM_TABLE", value_name = "NAME")]
    pub from_table: Option<String>,

    /// Key attribute names of a full export's table, partition key first (`pk` or `pk,sk`).
    /// [default: read from DescribeTable on --table]
    #[arg(
        long,
        env = "ARCHIVER_KEY_ATTRIBUTES",
        value_delimiter = ',',
        value_name = "NAMES"
    )]
    pub key_attributes: Vec<String>,

    /// Data files converted at the same time. [default: the number of CPUs, at most 8]
    #[arg(long, env = "ARCHIVER_PARALLEL", value_name = "N")]
    pub parallel: Option<u32>,

    /// KMS key (id or ARN) for SSE-KMS on archive objects. [default: the bucket's default encryption]
    #[arg(long, env = "ARCHIVER_SSE_KMS_KEY", value_name = "KEY")]
    pub sse_kms_key: Option<String>,

    /// Local folder where files are assembled before upload.
    /// [default: <system temp dir>/dynamo-archiver]
    #[arg(long, env = "ARCHIVER_SPOOL_DIR", value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,

    /// Progress output: `auto`, `bar`, `log` or `off`. [default: auto]
    #[arg(long, env = "ARCHIVER_PROGRESS", value_name = "P")]
    pub progress: Option<ProgressMode>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// The archive to check: `s3://bucket/prefix` or a local directory. [required]
    #[arg(long, env = "ARCHIVER_ARCHIVE", value_name = "URI")]
    pub archive: Option<String>,

    /// Only these tables (repeatable). [default: every table folder in the archive]
    #[arg(
        long = "table",
        env = "ARCHIVER_TABLES",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub tables: Vec<String>,

    /// Only `dt` folders from this day on (YYYY-MM-DD); chains may then begin inside the window.
    /// [default: the whole archive]
    #[arg(long, env = "ARCHIVER_SINCE", value_name = "DATE")]
    pub since: Option<String>,

    /// Print the report as JSON. [default: false]
    #[arg(long, env = "ARCHIVER_JSON")]
    pub json: bool,

    /// Exit 0 although the archive records gaps (records the stream trimmed or expired before
    /// they were read): once they are investigated and accepted. They are still listed.
    /// [default: false]
    #[arg(long, env = "ARCHIVER_ACCEPT_KNOWN_GAPS")]
    pub accept_known_gaps: bool,
}

#[derive(Debug, Args, Clone, Default)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// The archive: `s3://bucket/prefix` or a local directory. [required]
    #[arg(long, env = "ARCHIVER_ARCHIVE", value_name = "URI")]
    pub archive: Option<String>,

    /// The item's table. [required]
    #[arg(
        long = "table",
        env = "ARCHIVER_TABLES",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub tables: Vec<String>,

    /// One key attribute, `NAME=VALUE` (`userid=42`); repeat it for the sort key of a composite
    /// key. Every key attribute must be given. A value may name its type: `N:42`, `S:42`, `B:AAE=`.
    /// [required]
    #[arg(long = "key", env = "ARCHIVER_KEY", value_name = "NAME=VALUE")]
    pub keys: Vec<String>,

    /// Only `dt` folders from this day (YYYY-MM-DD). [default: the archive's first day]
    #[arg(long, env = "ARCHIVER_FROM", value_name = "DATE")]
    pub from: Option<String>,

    /// Only `dt` folders up to this day (YYYY-MM-DD). [default: the archive's last day]
    #[arg(long, env = "ARCHIVER_TO", value_name = "DATE")]
    pub to: Option<String>,

    /// Print the timeline as JSON. [default: false]
    #[arg(long, env = "ARCHIVER_JSON")]
    pub json: bool,
}

#[derive(Debug, Args, Clone, Default)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// The archive: `s3://bucket/prefix` or a local directory. [required]
    #[arg(long, env = "ARCHIVER_ARCHIVE", value_name = "URI")]
    pub archive: Option<String>,

    /// The table to rebuild. [required]
    #[arg(
        long = "table",
        env = "ARCHIVER_TABLES",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub tables: Vec<String>,

    /// The instant, RFC 3339 (`2026-11-21T12:00:00Z`). [required]
    #[arg(long, env = "ARCHIVER_AS_OF", value_name = "TIME")]
    pub as_of: Option<String>,

    /// Where the Parquet file goes: `s3://bucket/prefix` or a local directory. [required]
    #[arg(long, env = "ARCHIVER_OUT", value_name = "URI")]
    pub out: Option<String>,

    /// Local folder for the spill files (a copy of the table's rows, partitioned by key) and the
    /// output before upload. [default: <system temp dir>/dynamo-archiver]
    #[arg(long, env = "ARCHIVER_SPOOL_DIR", value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,

    /// Output format: `parquet` (one file: keys, item, source row) or `dynamodb-json` (a folder of
    /// gzip JSON lines of `{"Item": …}`, what `aws dynamodb import-table` reads). [default: parquet]
    #[arg(long, env = "ARCHIVER_FORMAT", value_name = "F")]
    pub format: Option<SnapshotFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotFormat {
    Parquet,
    DynamodbJson,
}

#[derive(Debug, Args, Clone, Default)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// The archive: `s3://bucket/prefix` or a local directory. [required]
    #[arg(long, env = "ARCHIVER_ARCHIVE", value_name = "URI")]
    pub archive: Option<String>,

    /// The archived table whose state to restore (SRC). [required]
    #[arg(
        long = "table",
        env = "ARCHIVER_TABLES",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub tables: Vec<String>,

    /// The instant, RFC 3339 (`2026-11-21T12:00:00Z`). [required]
    #[arg(long, env = "ARCHIVER_AS_OF", value_name = "TIME")]
    pub as_of: Option<String>,

    /// The table written (DST). It must exist with SRC's key schema, unless --create; SRC itself
    /// only with --in-place. [required]
    #[arg(long, env = "ARCHIVER_TO_TABLE", value_name = "NAME")]
    pub to_table: Option<String>,

    /// Create --to-table (on-demand billing, SRC's key schema) if it does not exist.
    /// [default: false]
    #[arg(long, env = "ARCHIVER_CREATE")]
    pub create: bool,

    /// With --create, when SRC no longer exists and its key has two attributes: the key
    /// attribute names, partition key first (`pk,sk`). [default: from DescribeTable on SRC]
    #[arg(
        long,
        env = "ARCHIVER_KEY_ATTRIBUTES",
        value_delimiter = ',',
        value_name = "NAMES"
    )]
    pub key_attributes: Vec<String>,

    /// Make --to-table exactly the state at the instant: also delete the items that did not
    /// exist then. Required when --to-table is SRC. [default: false]
    #[arg(long, env = "ARCHIVER_IN_PLACE")]
    pub in_place: bool,

    /// Print how many items would be put, overwritten and deleted, and change nothing.
    /// [default: false]
    #[arg(long, env = "ARCHIVER_DRY_RUN")]
    pub dry_run: bool,

    /// Restore one item: `NAME=VALUE` (`userid=42`), repeated for the sort key; a value may name
    /// its type (`N:42`, `S:42`, `B:AAE=`). It is put back as it was, or deleted if it did not
    /// exist then. [default: the whole table]
    #[arg(long = "key", env = "ARCHIVER_KEY", value_name = "NAME=VALUE")]
    pub keys: Vec<String>,

    /// Write capacity units per second the restore may consume (1 WCU per started KB of each
    /// item written or deleted). [default: no limit]
    #[arg(long, env = "ARCHIVER_MAX_WCU", value_name = "W")]
    pub max_wcu: Option<f64>,

    /// BatchWriteItem calls in flight at once. [default: 4]
    #[arg(long, env = "ARCHIVER_PARALLEL", value_name = "N")]
    pub parallel: Option<u32>,

    /// Local folder for the spill files and the restore's progress journal (a killed restore
    /// continues from it when run again with the same options). [default: <system temp
    /// dir>/dynamo-archiver]
    #[arg(long, env = "ARCHIVER_SPOOL_DIR", value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,

    /// Progress output: `auto`, `bar`, `log` or `off`. [default: auto]
    #[arg(long, env = "ARCHIVER_PROGRESS", value_name = "P")]
    pub progress: Option<ProgressMode>,
}
