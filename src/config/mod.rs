//! Configuration: clap arguments and an optional TOML file, merged with the precedence
//! flag > environment > file > default, then validated into types that cannot hold a bad value.

pub mod cli;
pub mod file;
pub mod units;

use crate::types::TableName;
use cli::{
    BackfillArgs, CommonArgs, HistoryArgs, ImportExportArgs, LeasesArgs, LogFormat, ProgressMode,
    RestoreArgs, RunArgs, SchemaArgs, SnapshotArgs, SnapshotFormat, StartPosition, VerifyArgs,
};
use file::FileConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_LEASE_TABLE: &str = "dynamo-archiver-leases";
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(60);
/// The longest `--flush-interval`: half the stream's 24-hour retention (see the check).
pub const MAX_FLUSH_INTERVAL: Duration = Duration::from_secs(12 * 3600);
pub const DEFAULT_FLUSH_SIZE_BYTES: u64 = 128 << 20;
pub const DEFAULT_HTTP: &str = "0.0.0.0:9464";
pub const DEFAULT_FAILOVER_TIME: Duration = Duration::from_secs(10);
pub const DEFAULT_DISCOVERY_INTERVAL: Duration = Duration::from_secs(30);
/// A shard with no successful read for this long makes `/healthz` fail: idle shards are read every
/// second and retries back off to at most 20 s, so two minutes means stuck.
pub const DEFAULT_STUCK_AFTER: Duration = Duration::from_secs(120);
/// Below this a file would hold too few rows to be worth an S3 object.
pub const MIN_FLUSH_SIZE_BYTES: u64 = 64 << 10;
/// S3's largest single object is 5 TiB, but files past a few GiB make Athena scans and restarts
/// slow; this is the product's own ceiling.
pub const MAX_FLUSH_SIZE_BYTES: u64 = 4 << 30;

/// A configuration problem: exit status 2, with a message that names the thing and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    ParseFile { path: PathBuf, message: String },
    #[error("no table given: name one with --table NAME, ARCHIVER_TABLES or `tables` in the config file")]
    NoTable,
    #[error("`{0}` is not a valid DynamoDB table name (3-255 characters of a-z, A-Z, 0-9, _ - .)")]
    BadTableName(String),
    #[error("invalid {option}: {message}")]
    BadValue {
        option: &'static str,
        message: String,
    },
    #[error("give exactly one output: --archive URI (Parquet) or --firehose NAME (JSON lines)")]
    OutputChoice,
    #[error("invalid --archive `{uri}`: {message}")]
    BadArchive { uri: String, message: String },
}

/// Where Parquet files go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveUri {
    S3 { bucket: String, prefix: String },
    Local(PathBuf),
}

impl ArchiveUri {
    pub fn parse(uri: &str) -> Result<Self, ConfigError> {
        let bad = |message: &str| ConfigError::BadArchive {
            uri: uri.to_owned(),
            message: message.to_owned(),
        };
        if uri.trim().is_empty() {
            return Err(bad(
                "it is empty; give s3://bucket/prefix or a local directory",
            ));
        }
        if let Some(rest) = uri.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            validate_bucket(bucket).map_err(|m| bad(&m))?;
            let prefix = prefix.trim_matches('/').to_owned();
            return Ok(Self::S3 {
                bucket: bucket.to_owned(),
                prefix,
            });
        }
        if let Some(path) = uri.strip_prefix("file://") {
            return Ok(Self::Local(PathBuf::from(path)));
        }
        if let Some((scheme, _)) = uri.split_once("://") {
            return Err(bad(&format!(
                "the scheme `{scheme}://` is not supported; give s3://bucket/prefix or a local directory"
            )));
        }
        if uri.starts_with("s3:") || uri.starts_with("S3:") {
            return Err(bad("write S3 locations as s3://bucket/prefix"));
        }
        Ok(Self::Local(PathBuf::from(uri)))
    }

    /// The location of one object or file below the archive root, from a `/`-separated key.
    pub fn describe(&self, key: &str) -> String {
        match self {
            Self::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}/{key}"),
            Self::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}/{key}"),
            Self::Local(dir) => dir.join(key).display().to_string(),
        }
    }
}

impl std::fmt::Display for ArchiveUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Self::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            Self::Local(dir) => write!(f, "{}", dir.display()),
        }
    }
}

/// S3 bucket naming rules: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html>
fn validate_bucket(bucket: &str) -> Result<(), String> {
    if bucket.is_empty() {
        return Err("no bucket name; write it as s3://bucket/prefix".into());
    }
    let ok_chars = bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let ok_ends = bucket.as_bytes()[0].is_ascii_alphanumeric()
        && bucket.as_bytes()[bucket.len() - 1].is_ascii_alphanumeric();
    if !(3..=63).contains(&bucket.len()) || !ok_chars || !ok_ends {
        return Err(format!(
            "`{bucket}` is not a valid bucket name (3-63 characters of a-z, 0-9, '-' and '.', starting and ending with a letter or digit)"
        ));
    }
    Ok(())
}

/// Firehose delivery stream names: 1-64 characters of a-z, A-Z, 0-9, `_`, `.` and `-`.
/// <https://docs.aws.amazon.com/firehose/latest/APIReference/API_CreateDeliveryStream.html>
fn firehose_stream(name: &str) -> Result<String, ConfigError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !ok {
        return Err(ConfigError::BadValue {
            option: "--firehose",
            message: format!("`{name}` is not a delivery stream name (1-64 characters of a-z, A-Z, 0-9, _ . -); give the name, not the ARN"),
        });
    }
    Ok(name.to_owned())
}

/// DynamoDB table naming rules: <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html>
pub fn validate_table(name: &str) -> Result<TableName, ConfigError> {
    let ok = (3..=255).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(TableName::new(name))
    } else {
        Err(ConfigError::BadTableName(name.to_owned()))
    }
}

fn tables(cli: &[String], file: Option<&Vec<String>>) -> Result<Vec<TableName>, ConfigError> {
    let raw: Vec<String> = if cli.is_empty() {
        file.cloned().unwrap_or_default()
    } else {
        cli.to_vec()
    };
    let mut out: Vec<TableName> = Vec::new();
    for name in raw.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let t = validate_table(name)?;
        if !out.contains(&t) {
            out.push(t);
        }
    }
    if out.is_empty() {
        return Err(ConfigError::NoTable);
    }
    Ok(out)
}

/// Tables for commands where none means all.
fn optional_tables(
    cli: &[String],
    file: Option<&Vec<String>>,
) -> Result<Vec<TableName>, ConfigError> {
    match tables(cli, file) {
        Err(ConfigError::NoTable) => Ok(Vec::new()),
        other => other,
    }
}

fn duration(
    option: &'static str,
    cli: Option<&String>,
    file: Option<&String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match cli.or(file) {
        None => Ok(default),
        Some(text) => {
            units::parse_duration(text).map_err(|message| ConfigError::BadValue { option, message })
        }
    }
}

fn lease_table(cli: Option<&String>, file: &FileConfig) -> Result<String, ConfigError> {
    let name = cli
        .or(file.lease_table.as_ref())
        .cloned()
        .unwrap_or_else(|| DEFAULT_LEASE_TABLE.to_owned());
    validate_table(&name).map_err(|_| ConfigError::BadValue {
        option: "--lease-table",
        message: format!("`{name}` is not a valid DynamoDB table name"),
    })?;
    Ok(name)
}

/// How the worker logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    pub format: LogFormat,
}

fn load_file(common: &CommonArgs) -> Result<FileConfig, ConfigError> {
    match &common.config {
        Some(path) => FileConfig::load(path),
        None => Ok(FileConfig::default()),
    }
}

fn log_config(common: &CommonArgs, file: &FileConfig) -> LogConfig {
    LogConfig {
        format: common
            .log_format
            .or(file.log_format)
            .unwrap_or(LogFormat::Json),
    }
}

/// Output of `run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Archive(ArchiveUri),
    /// A Firehose delivery stream, and where lines too long for one Firehose record go.
    Firehose {
        stream: String,
        overflow: Option<ArchiveUri>,
    },
}

/// The validated configuration of `dynamo-archiver run`.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub tables: Vec<TableName>,
    pub output: Output,
    pub lease_table: String,
    pub worker_id: String,
    pub start_position: StartPosition,
    pub flush_interval: Duration,
    pub flush_size_bytes: u64,
    pub http: Option<SocketAddr>,
    pub log: LogConfig,
    pub failover_time: Duration,
    pub sse_kms_key: Option<String>,
    pub spool_dir: PathBuf,
    pub discovery_interval: Duration,
    pub stuck_after: Duration,
    /// `--max-leases`: `None` is no cap.
    pub max_leases: Option<usize>,
    pub metrics: cli::MetricsMode,
}

impl RunConfig {
    pub fn resolve(args: &RunArgs) -> Result<Self, ConfigError> {
        let file = load_file(&args.common)?;
        let tables = tables(&args.tables, file.tables.as_ref())?;
        let archive = args.archive.as_ref().or(file.archive.as_ref());
        let firehose = args.firehose.as_ref().or(file.firehose.as_ref());
        let overflow = args
            .overflow_archive
            .as_ref()
            .or(file.overflow_archive.as_ref());
        let output = match (archive, firehose) {
            (Some(_), None) if overflow.is_some() => {
                return Err(ConfigError::BadValue {
                    option: "--overflow-archive",
                    message: "it is for --firehose output only (Parquet files hold records of any size); remove it".into(),
                })
            }
            (Some(a), None) => Output::Archive(ArchiveUri::parse(a)?),
            (None, Some(stream)) => Output::Firehose {
                stream: firehose_stream(stream)?,
                overflow: overflow
                    .map(|o| {
                        ArchiveUri::parse(o).map_err(|e| ConfigError::BadValue {
                            option: "--overflow-archive",
                            message: match e {
                                ConfigError::BadArchive { uri, message } => {
                                    format!("`{uri}`: {message}")
                                }
                                other => other.to_string(),
                            },
                        })
                    })
                    .transpose()?,
            },
            _ => return Err(ConfigError::OutputChoice),
        };
        let lease_table = lease_table(args.lease_table.as_ref(), &file)?;
        let worker_id = args
            .worker_id
            .clone()
            .or(file.worker_id.clone())
            .unwrap_or_else(default_worker_id);
        if worker_id.trim().is_empty() {
            return Err(ConfigError::BadValue {
                option: "--worker-id",
                message: "it is empty".into(),
            });
        }
        let flush_interval = duration(
            "--flush-interval",
            args.flush_interval.as_ref(),
            file.flush_interval.as_ref(),
            DEFAULT_FLUSH_INTERVAL,
        )?;
        if flush_interval < Duration::from_millis(100) {
            return Err(ConfigError::BadValue {
                option: "--flush-interval",
                message: "must be at least 100ms".into(),
            });
        }
        if flush_interval > MAX_FLUSH_INTERVAL {
            return Err(ConfigError::BadValue {
                option: "--flush-interval",
                message: "must be at most 12h: a record waits this long before it is written, and the stream keeps records only 24 hours, so a crash near the end of a longer wait could leave too little time to read them again".into(),
            });
        }
        let flush_size_bytes = flush_size(args.flush_size.as_ref(), &file)?;
        let http_text = args
            .http
            .clone()
            .or(file.http.clone())
            .unwrap_or_else(|| DEFAULT_HTTP.to_owned());
        let http = if http_text == "off" {
            None
        } else {
            Some(
                http_text
                    .parse::<SocketAddr>()
                    .map_err(|_| ConfigError::BadValue {
                        option: "--http",
                        message: format!(
                            "`{http_text}` is not an address; write it like 0.0.0.0:9464, or `off`"
                        ),
                    })?,
            )
        };
        let failover_time = duration(
            "--failover-time",
            args.failover_time.as_ref(),
            file.failover_time.as_ref(),
            DEFAULT_FAILOVER_TIME,
        )?;
        if failover_time < Duration::from_secs(1) {
            return Err(ConfigError::BadValue {
                option: "--failover-time",
                message: "must be at least 1s (leases are renewed three times per failover time)"
                    .into(),
            });
        }
        let discovery_interval = duration(
            "--discovery-interval",
            args.discovery_interval.as_ref(),
            file.discovery_interval.as_ref(),
            DEFAULT_DISCOVERY_INTERVAL,
        )?;
        if discovery_interval < Duration::from_secs(1) {
            return Err(ConfigError::BadValue {
                option: "--discovery-interval",
                message:
                    "must be at least 1s (DescribeStream allows 10 calls per second per account)"
                        .into(),
            });
        }
        let stuck_after = duration(
            "--stuck-after",
            args.stuck_after.as_ref(),
            file.stuck_after.as_ref(),
            DEFAULT_STUCK_AFTER,
        )?;
        if stuck_after < Duration::from_secs(2) {
            return Err(ConfigError::BadValue {
                option: "--stuck-after",
                message: "must be at least 2s (idle shards are read every second); keep it above 60s in production, where retries wait up to 20s".into(),
            });
        }
        let max_leases = match args.max_leases.or(file.max_leases) {
            Some(0) => {
                return Err(ConfigError::BadValue {
                    option: "--max-leases",
                    message: "must be at least 1 (leave it unset for no cap)".into(),
                })
            }
            n => n.map(|n| n as usize),
        };
        Ok(Self {
            stuck_after,
            max_leases,
            metrics: args
                .metrics
                .or(file.metrics)
                .unwrap_or(cli::MetricsMode::Off),
            tables,
            output,
            lease_table,
            worker_id,
            start_position: args
                .start_position
                .or(file.start_position)
                .unwrap_or(StartPosition::TrimHorizon),
            flush_interval,
            flush_size_bytes,
            http,
            log: log_config(&args.common, &file),
            failover_time,
            sse_kms_key: args.sse_kms_key.clone().or(file.sse_kms_key.clone()),
            spool_dir: spool_dir(args.spool_dir.as_ref(), &file),
            discovery_interval,
        })
    }
}

/// The validated configuration of `dynamo-archiver leases`.
#[derive(Debug, Clone)]
pub struct LeasesConfig {
    /// Empty: every table.
    pub tables: Vec<TableName>,
    pub lease_table: String,
    pub json: bool,
    pub log: LogConfig,
}

impl LeasesConfig {
    pub fn resolve(args: &LeasesArgs) -> Result<Self, ConfigError> {
        let file = load_file(&args.common)?;
        let tables = optional_tables(&args.tables, file.tables.as_ref())?;
        let lease_table = lease_table(args.lease_table.as_ref(), &file)?;
        Ok(Self {
            tables,
            lease_table,
            json: args.json,
            log: log_config(&args.common, &file),
        })
    }
}

/// `schema --sample` when not given: enough rows to see rare attributes and the widest numbers
/// of most tables, read in seconds (docs/PERFORMANCE.md).
pub const DEFAULT_SAMPLE_ROWS: u64 = 100_000;

/// The validated configuration of `dynamo-archiver schema`.
#[derive(Debug, Clone)]
pub struct SchemaConfig {
    pub tables: Vec<TableName>,
    pub archive: ArchiveUri,
    /// `Some(rows to sample)` with `--infer`.
    pub infer: Option<u64>,
    /// `None`: both dialects.
    pub dialect: Option<cli::Dialect>,
    pub log: LogConfig,
}

impl SchemaConfig {
    pub fn resolve(args: &SchemaArgs) -> Result<Self, ConfigError> {
        let file = load_file(&args.common)?;
        let given = args.archive.as_ref().or(file.archive.as_ref());
        let infer = args.infer || file.infer.unwrap_or(false);
        let sample = args.sample.or(file.sample).unwrap_or(DEFAULT_SAMPLE_ROWS);
        if sample == 0 {
            return Err(ConfigError::BadValue {
                option: "--sample",
                message: "0 rows cannot show any attribute; give at least 1 (default 100000)"
                    .into(),
            });
        }
        if infer && given.is_none() {
            return Err(ConfigError::BadValue {
                option: "--archive",
                message: "--infer reads the archive: give s3://bucket/prefix or a local directory (or ARCHIVER_ARCHIVE)".into(),
            });
        }
        let archive = given
            .map(|a| ArchiveUri::parse(a))
            .transpose()?
            .unwrap_or(ArchiveUri::S3 {
                bucket: "your-bucket".into(),
                prefix: "archive".into(),
            });
        Ok(Self {
            tables: tables(&args.tables, file.tables.as_ref())?,
            archive,
            infer: infer.then_some(sample),
            dialect: args.dialect.or(file.dialect),
            log: log_config(&args.common, &file),
        })
    }
}

fn flush_size(cli: Option<&String>, file: &FileConfig) -> Result<u64, ConfigError> {
    let bytes = match cli.or(file.flush_size.as_ref()) {
        None => DEFAULT_FLUSH_SIZE_BYTES,
        Some(text) => units::parse_size(text).map_err(|message| ConfigError::BadValue {
            option: "--flush-size",
            message,
        })?,
    };
    if !(MIN_FLUSH_SIZE_BYTES..=MAX_FLUSH_SIZE_BYTES).contains(&bytes) {
        return Err(ConfigError::BadValue {
            option: "--flush-size",
            message: "must be between 64KiB and 4GiB".into(),
        });
    }
    Ok(bytes)
}

fn spool_dir(cli: Option<&PathBuf>, file: &FileConfig) -> PathBuf {
    cli.cloned()
        .or(file.spool_dir.clone())
        .unwrap_or_else(|| std::env::temp_dir().join("dynamo-archiver"))
}

fn required_archive(cli: Option<&String>, file: &FileConfig) -> Result<ArchiveUri, ConfigError> {
    match cli.or(file.archive.as_ref()) {
        Some(a) => ArchiveUri::parse(a),
        None => Err(ConfigError::BadValue {
            option: "--archive",
            message: "required: give s3://bucket/prefix or a local directory (or ARCHIVER_ARCHIVE)"
                .into(),
        }),
    }
}

fn parallel(cli: Option<u32>, file: &FileConfig) -> Result<Option<usize>, ConfigError> {
    match cli.or(file.parallel) {
        None => Ok(None),
        Some(0) => Err(ConfigError::BadValue {
            option: "--parallel",
            message: "must be at least 1".into(),
        }),
        Some(n) => Ok(Some(n as usize)),
    }
}

/// A parallel Scan has at most 1,000,000 segments:
/// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_Scan.html#DDB-Scan-request-TotalSegments>
pub const MAX_SCAN_SEGMENTS: u32 = 1_000_000;

/// The validated configuration of `dynamo-archiver backfill`.
#[derive(Debug, Clone)]
pub struct BackfillConfig {
    pub tables: Vec<TableName>,
    pub archive: ArchiveUri,
    /// `None`: chosen from the table's size (or kept from the scan being resumed).
    pub segments: Option<u32>,
    /// `None`: as many as segments, at most 16.
    pub parallel: Option<usize>,
    pub max_rcu: Option<f64>,
    pub consistent_read: bool,
    pub new_scan: bool,
    pub flush_size_bytes: u64,
    pub sse_kms_key: Option<String>,
    pub spool_dir: PathBuf,
    pub progress: ProgressMode,
    pub log: LogConfig,
}

impl BackfillConfig {
    pub fn resolve(args: &BackfillArgs) -> Result<Self, ConfigError> {
        let file = load_file(&args.common)?;
        let segments = args.segments.or(file.segments);
        if let Some(n) = segments {
            if !(1..=MAX_SCAN_SEGMENTS).contains(&n) {
                return Err(ConfigError::BadValue {
                    option: "--segments",
                    message: format!("{n} is outside 1..={MAX_SCAN_SEGMENTS} (DynamoDB's limit)"),
                });
            }
        }
        let max_rcu = args.max_rcu.or(file.max_rcu);
        if let Some(r) = max_rcu {
            if !(r.is_finite() && r >= 1.0) {
                return Err(ConfigError::BadValue {
                    option: "--max-rcu",
                    message: format!(
                        "{r} is not a rate; give read capacity units per second, at least 1"
                    ),
                });
            }
        }
        Ok(Self {
            tables: tables(&args.tables, file.tables.as_ref())?,
            archive: required_archive(args.archive.as_ref(), &file)?,
            segments,
            parallel: parallel(args.parallel, &file)?,
            max_rcu,
            consistent_read: args.consistent_read || file.consistent_read.unwrap_or(false),
            new_scan: args.new_scan || file.new_scan.unwrap_or(false),
            flush_size_bytes: flush_size(args.flush_size.as_ref(), &file)?,
            sse_kms_key: args.sse_kms_key.clone().or(file.sse_kms_key.clone()),
            spool_dir: spool_dir(args.spool_dir.as_ref(), &file),
            progress: args
                .progress
                .or(file.progress)
                .unwrap_or(ProgressMode::Auto),
            log: log_config(&args.common, &file),
        })
    }
}

/// The validated configuration of `dynamo-archiver import-export`.
#[derive(Debug, Clone)]
pub struct ImportExportConfig {
    pub export: String,
    /// The table the export must be of, when not `table`.
    pub from_table: Option<TableName>,
    /// Key attribute names for full exports; `None`: from DescribeTable.
    pub key_attributes: Option<Vec<String>>,
    pub table: TableName,
    pub archive: ArchiveUri,
    pub parallel: usize,
    pub sse_kms_key: Option<String>,
    pub spool_dir: PathBuf,
    pub progress: ProgressMode,
    pub log: LogConfig,
}

impl ImportExportConfig {
    pub fn resolve(args: &ImportExportArgs) -> Result<Self, ConfigError> {
        let file = load_file(&args.common)?;
        let export = args
            .export
            .clone()
            .or(file.export.clone())
            .filter(|e| !e.trim().is_empty())
            .ok_or_else(|| ConfigError::BadValue {
                option: "--export",
                message: "required: give s3://bucket/prefix/AWSDynamoDB/<export-id>/ or a local folder holding manifest-summary.json".into(),
            })?;
        let mut tables = tables(&args.tables, file.tables.as_ref())?;
        if tables.len() != 1 {
            return Err(ConfigError::BadValue {
                option: "--table",
                message: "an export holds one table: give exactly one --table".into(),
            });
        }
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let key_attributes: Vec<String> = if args.key_attributes.is_empty() {
            file.key_attributes.clone().unwrap_or_default()
        } else {
            args.key_attributes.clone()
        };
        let key_attributes: Vec<String> = key_attributes
            .iter()
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
            .collect();
        if key_attributes.len() > 2 {
            return Err(ConfigError::BadValue {
                option: "--key-attributes",
                message: "a DynamoDB key has one or two attributes: PARTITION_KEY[,SORT_KEY]"
                    .into(),
            });
        }
        let from_table = args
            .from_table
            .as_ref()
            .or(file.from_table.as_ref())
            .map(|t| validate_table(t.trim()))
            .transpose()?;
        Ok(Self {
            export,
            from_table,
            key_attributes: (!key_attributes.is_empty()).then_some(key_attributes),
            table: tables.remove(0),
            archive: required_archive(args.archive.as_ref(), &file)?,
            parallel: parallel(args.parallel, &file)?.unwrap_or(cpus.min(8)),
            sse_kms_key: args.sse_kms_key.clone().or(file.sse_kms_key.clone()),
            spool_dir: spool_dir(args.spool_dir.as_ref(), &file),
            progress: args
                .progress
                .or(file.progress)
                .unwrap_or(ProgressMode::Auto),
            log: log_config(&args.common, &file),
        })
    }
}

/// The validated configuration of `dynamo-archiver verify`.
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    pub archive: ArchiveUri,
    /// Empty: every table folder.
    pub tables: Vec<TableName>,
    pub since: Option<String>,
    pub json: bool,
    /// Recorded gaps do not fail the run.
    pub accept_known_gaps: bool,
    pub log: LogConfig,
}

impl VerifyConfig {
    pub fn resolve(args: &VerifyArgs) -> Result<Self, ConfigError> {
        let file = load_file(&args.common)?;
        let tables = optional_tables(&args.tables, file.tables.as_ref())?;
        let since = date("--since", args.since.as_ref().or(file.since.as_ref()))?;
        Ok(Self {
            archive: required_archive(args.archive.as_ref(), &file)?,
            tables,
            since,
            json: args.json,
            accept_known_gaps: args.accept_known_gaps || file.accept_known_gaps.unwrap_or(false),
            log: log_config(&args.common, &file),
        })
    }
}

/// A `YYYY-MM-DD` option, checked.
fn date(option: &'static str, value: Option<&String>) -> Result<Option<String>, ConfigError> {
    let Some(d) = value else { return Ok(None) };
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(d, fmt).map_err(|_| ConfigError::BadValue {
        option,
        message: format!("`{d}` is not a date; write it as YYYY-MM-DD"),
    })?;
    Ok(Some(d.clone()))
}

/// The validated configuration of `dynamo-archiver history`.
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    pub archive: ArchiveUri,
    pub table: TableName,
    pub keys: Vec<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub json: bool,
    pub log: LogConfig,
}

impl HistoryConfig {
    pub fn resolve(args: &HistoryArgs) -> Result<Self, ConfigError> {
        let file = load_file(&args.common)?;
        let mut tables = tables(&args.tables, file.tables.as_ref())?;
        if tables.len() != 1 {
            return Err(ConfigError::BadValue {
                option: "--table",
                message: "give the one table the item is in".into(),
            });
        }
        let keys = key_parts(&args.keys, &file);
        crate::audit::history::KeyQuery::parse(&keys).map_err(|message| ConfigError::BadValue {
            option: "--key",
            message,
        })?;
        Ok(Self {
            archive: required_archive(args.archive.as_ref(), &file)?,
            table: tables.remove(0),
            keys,
            from: date("--from", args.from.as_ref().or(file.from.as_ref()))?,
            to: date("--to", args.to.as_ref().or(file.to.as_ref()))?,
            json: args.json,
            log: log_config(&args.common, &file),
        })
    }
}

/// `--key` parts: the flags, else the config file's `key`.
fn key_parts(cli: &[String], file: &FileConfig) -> Vec<String> {
    if cli.is_empty() {
        file.key.clone().unwrap_or_default()
    } else {
        cli.to_vec()
    }
}

/// `--as-of`, required, as milliseconds since the epoch.
fn as_of(cli: Option<&String>, file: &FileConfig) -> Result<i64, ConfigError> {
    let text = cli
        .or(file.as_of.as_ref())
        .ok_or_else(|| ConfigError::BadValue {
            option: "--as-of",
            message: "required: the instant, e.g. 2026-11-21T12:00:00Z".into(),
        })?;
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| ConfigError::BadValue {
            option: "--as-of",
            message: format!(
                "`{text}` is not an RFC 3339 time; write it like 2026-11-21T12:00:00Z"
            ),
        })?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// The one table a command works on.
fn one_table(
    cli: &[String],
    file: &FileConfig,
    what: &'static str,
) -> Result<TableName, ConfigError> {
    let mut tables = tables(cli, file.tables.as_ref())?;
    if tables.len() != 1 {
        return Err(ConfigError::BadValue {
            option: "--table",
            message: what.into(),
        });
    }
    Ok(tables.remove(0))
}

/// The validated configuration of `dynamo-archiver snapshot`.
#[derive(Debug, Clone)]
pub struct SnapshotConfig {
    pub archive: ArchiveUri,
    pub table: TableName,
    pub as_of_ms: i64,
    pub out: ArchiveUri,
    pub format: SnapshotFormat,
    pub spool_dir: PathBuf,
    pub log: LogConfig,
}

impl SnapshotConfig {
    pub fn resolve(args: &SnapshotArgs) -> Result<Self, ConfigError> {
        let file = load_file(&args.common)?;
        let table = one_table(&args.tables, &file, "give the one table to rebuild")?;
        let out = match args.out.as_ref().or(file.out.as_ref()) {
            Some(o) => ArchiveUri::parse(o)?,
            None => {
                return Err(ConfigError::BadValue {
                    option: "--out",
                    message: "required: s3://bucket/prefix or a local directory".into(),
                })
            }
        };
        Ok(Self {
            archive: required_archive(args.archive.as_ref(), &file)?,
            table,
            as_of_ms: as_of(args.as_of.as_ref(), &file)?,
            out,
            format: args
                .format
                .or(file.format)
                .unwrap_or(SnapshotFormat::Parquet),
            spool_dir: spool_dir(args.spool_dir.as_ref(), &file),
            log: log_config(&args.common, &file),
        })
    }
}

/// BatchWriteItem calls a restore keeps in flight when `--parallel` is not given.
pub const DEFAULT_RESTORE_PARALLEL: usize = 4;
/// The most BatchWriteItem calls in flight: more only queue in the SDK's connection pool.
pub const MAX_RESTORE_PARALLEL: u32 = 64;

/// The validated configuration of `dynamo-archiver restore`.
#[derive(Debug, Clone)]
pub struct RestoreConfig {
    pub archive: ArchiveUri,
    /// SRC: the archived table.
    pub table: TableName,
    pub as_of_ms: i64,
    /// DST.
    pub to_table: TableName,
    pub create: bool,
    /// With `create`: the key attributes, partition key first.
    pub key_attributes: Option<Vec<String>>,
    pub in_place: bool,
    pub dry_run: bool,
    /// `--key` parts (checked by `KeyQuery::parse`); empty: the whole table.
    pub keys: Vec<String>,
    pub max_wcu: Option<f64>,
    pub parallel: usize,
    pub spool_dir: PathBuf,
    pub progress: ProgressMode,
    pub log: LogConfig,
}

impl RestoreConfig {
    pub fn resolve(args: &RestoreArgs) -> Result<Self, ConfigError> {
        let file = load_file(&args.common)?;
        let table = one_table(
            &args.tables,
            &file,
            "give the one archived table to restore from",
        )?;
        let to_table = args
            .to_table
            .as_ref()
            .or(file.to_table.as_ref())
            .ok_or_else(|| ConfigError::BadValue {
                option: "--to-table",
                message: "required: the table to write (a new one with --create; the source itself only with --in-place)".into(),
            })?;
        let to_table = validate_table(to_table.trim()).map_err(|_| ConfigError::BadValue {
            option: "--to-table",
            message: format!("`{to_table}` is not a valid DynamoDB table name"),
        })?;
        let create = args.create || file.create.unwrap_or(false);
        let in_place = args.in_place || file.in_place.unwrap_or(false);
        if to_table == table && !in_place {
            return Err(ConfigError::BadValue {
                option: "--to-table",
                message: format!("`{to_table}` is the archived table itself: restoring into the live table overwrites items and deletes those that did not exist then; add --in-place to do that (see what it would change first with --dry-run), or restore into a new table"),
            });
        }
        if create && in_place {
            return Err(ConfigError::BadValue {
                option: "--create",
                message: "--create makes a new table, --in-place changes an existing one: give one of them".into(),
            });
        }
        let keys = key_parts(&args.keys, &file);
        if !keys.is_empty() {
            crate::audit::history::KeyQuery::parse(&keys).map_err(|message| {
                ConfigError::BadValue {
                    option: "--key",
                    message,
                }
            })?;
        }
        let max_wcu = args.max_wcu.or(file.max_wcu);
        if let Some(w) = max_wcu {
            if !(w.is_finite() && w >= 1.0) {
                return Err(ConfigError::BadValue {
                    option: "--max-wcu",
                    message: format!(
                        "{w} is not a rate; give write capacity units per second, at least 1"
                    ),
                });
            }
        }
        let parallel = match args.parallel.or(file.parallel) {
            None => DEFAULT_RESTORE_PARALLEL,
            Some(n) if (1..=MAX_RESTORE_PARALLEL).contains(&n) => n as usize,
            Some(n) => {
                return Err(ConfigError::BadValue {
                    option: "--parallel",
                    message: format!("{n} is outside 1..={MAX_RESTORE_PARALLEL}"),
                })
            }
        };
        let key_attributes: Vec<String> = if args.key_attributes.is_empty() {
            file.key_attributes.clone().unwrap_or_default()
        } else {
            args.key_attributes.clone()
        }
        .into_iter()
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .collect();
        if key_attributes.len() > 2 {
            return Err(ConfigError::BadValue {
                option: "--key-attributes",
                message: "a DynamoDB key has one or two attributes: PARTITION_KEY[,SORT_KEY]"
                    .into(),
            });
        }
        Ok(Self {
            archive: required_archive(args.archive.as_ref(), &file)?,
            table,
            as_of_ms: as_of(args.as_of.as_ref(), &file)?,
            to_table,
            create,
            key_attributes: (!key_attributes.is_empty()).then_some(key_attributes),
            in_place,
            dry_run: args.dry_run || file.dry_run.unwrap_or(false),
            keys,
            max_wcu,
            parallel,
            spool_dir: spool_dir(args.spool_dir.as_ref(), &file),
            progress: args
                .progress
                .or(file.progress)
                .unwrap_or(ProgressMode::Auto),
            log: log_config(&args.common, &file),
        })
    }
}

/// On ECS, the last segment of `ECS_CONTAINER_METADATA_URI_V4` (`<task id>-<container id>`,
/// unique per container of a task, which is what a lease owner must be); elsewhere `hostname:pid`.
fn default_worker_id() -> String {
    if let Ok(uri) = std::env::var("ECS_CONTAINER_METADATA_URI_V4") {
        // .../v4/<task-id>-<container-id>: the segment identifies this container of this task.
        if let Some(last) = uri.trim_end_matches('/').rsplit('/').next() {
            if !last.is_empty() {
                return last.to_owned();
            }
        }
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(tables: &[&str], archive: Option<&str>) -> RunArgs {
        RunArgs {
            tables: tables.iter().map(|s| s.to_string()).collect(),
            archive: archive.map(str::to_owned),
            ..Default::default()
        }
    }

    #[test]
    fn archive_uris() {
        assert_eq!(
            ArchiveUri::parse("s3://my-bucket/a/b/").unwrap(),
            ArchiveUri::S3 {
                bucket: "my-bucket".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(
            ArchiveUri::parse("s3://my-bucket").unwrap(),
            ArchiveUri::S3 {
                bucket: "my-bucket".into(),
                prefix: "".into()
            }
        );
        assert_eq!(
            ArchiveUri::parse("/tmp/x").unwrap(),
            ArchiveUri::Local("/tmp/x".into())
        );
        for bad in [
            "",
            "s3://",
            "s3:/bucket/x",
            "s3://Bad_Bucket/x",
            "http://x/y",
            "s3://ab",
        ] {
            assert!(ArchiveUri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn firehose_output_and_its_overflow_location() {
        let args =
            |firehose: Option<&str>, archive: Option<&str>, overflow: Option<&str>| RunArgs {
                firehose: firehose.map(str::to_owned),
                overflow_archive: overflow.map(str::to_owned),
                ..run_args(&["users"], archive)
            };
        let c = RunConfig::resolve(&args(
            Some("archive-lines"),
            None,
            Some("s3://big-items/over"),
        ))
        .unwrap();
        assert_eq!(
            c.output,
            Output::Firehose {
                stream: "archive-lines".into(),
                overflow: Some(ArchiveUri::S3 {
                    bucket: "big-items".into(),
                    prefix: "over".into()
                })
            }
        );
        let err = |a| RunConfig::resolve(&a).unwrap_err().to_string();
        assert!(err(args(Some("x"), Some("/tmp/a"), None)).contains("exactly one output"));
        assert!(err(args(None, None, None)).contains("exactly one output"));
        assert!(
            err(args(None, Some("/tmp/a"), Some("s3://b/o"))).contains("--firehose output only")
        );
        let arn = err(args(
            Some("arn:aws:firehose:us-east-1:1:deliverystream/x"),
            None,
            None,
        ));
        assert!(
            arn.contains("--firehose") && arn.contains("not the ARN"),
            "{arn}"
        );
        let bad = err(args(Some("x"), None, Some("s3://B_ad/o")));
        assert!(
            bad.starts_with("invalid --overflow-archive: `s3://B_ad/o`"),
            "{bad}"
        );
    }

    #[test]
    fn defaults_apply() {
        let c = RunConfig::resolve(&run_args(&["users"], Some("/tmp/a"))).unwrap();
        assert_eq!(c.flush_interval, DEFAULT_FLUSH_INTERVAL);
        assert_eq!(c.flush_size_bytes, DEFAULT_FLUSH_SIZE_BYTES);
        assert_eq!(c.lease_table, DEFAULT_LEASE_TABLE);
        assert_eq!(c.start_position, StartPosition::TrimHorizon);
        assert_eq!(c.http, Some("0.0.0.0:9464".parse().unwrap()));
    }

    #[test]
    fn flag_beats_file_beats_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "tables = [\"fromfile\"]\nflush_interval = \"5s\"\nflush_size = \"1MiB\"\narchive = \"/tmp/f\"",
        )
        .unwrap();
        let mut args = run_args(&[], None);
        args.common.config = Some(path);
        args.flush_interval = Some("7s".into());
        let c = RunConfig::resolve(&args).unwrap();
        assert_eq!(c.tables, vec![TableName::new("fromfile")]);
        assert_eq!(c.flush_interval, Duration::from_secs(7), "flag wins");
        assert_eq!(c.flush_size_bytes, 1 << 20, "file beats default");
        assert_eq!(
            c.output,
            Output::Archive(ArchiveUri::Local("/tmp/f".into()))
        );
    }

    #[test]
    fn bad_values_name_the_option() {
        let mut a = run_args(&["users"], Some("/tmp/a"));
        a.flush_interval = Some("10".into());
        let e = RunConfig::resolve(&a).unwrap_err().to_string();
        assert!(e.contains("--flush-interval"), "{e}");

        let e = RunConfig::resolve(&run_args(&[], Some("/tmp/a")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--table"), "{e}");

        let e = RunConfig::resolve(&run_args(&["users"], None))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--archive"), "{e}");

        let e = RunConfig::resolve(&run_args(&["x"], Some("/tmp/a")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`x`"), "{e}");
    }

    fn restore_args(table: &str, to: &str) -> RestoreArgs {
        RestoreArgs {
            archive: Some("/tmp/a".into()),
            tables: vec![table.into()],
            as_of: Some("2026-11-21T12:00:00Z".into()),
            to_table: Some(to.into()),
            ..Default::default()
        }
    }

    #[test]
    fn restore_options_are_checked() {
        let ok = RestoreConfig::resolve(&restore_args("users", "users-restored")).unwrap();
        assert_eq!(ok.as_of_ms, 1_795_262_400_000);
        assert_eq!(ok.parallel, DEFAULT_RESTORE_PARALLEL);
        assert!(!ok.in_place && !ok.create && ok.keys.is_empty());
        // (what, change, option named in the message)
        type Change = fn(&mut RestoreArgs);
        let cases: Vec<(&str, Change, &str)> = vec![
            (
                "into the live table",
                |a| a.to_table = Some("users".into()),
                "--in-place",
            ),
            (
                "create and in place",
                |a| {
                    a.create = true;
                    a.in_place = true
                },
                "--create",
            ),
            ("no target", |a| a.to_table = None, "--to-table"),
            (
                "bad target",
                |a| a.to_table = Some("x".into()),
                "--to-table",
            ),
            ("no instant", |a| a.as_of = None, "--as-of"),
            (
                "bad instant",
                |a| a.as_of = Some("yesterday".into()),
                "--as-of",
            ),
            ("zero rate", |a| a.max_wcu = Some(0.0), "--max-wcu"),
            ("bad key", |a| a.keys = vec!["id".into()], "--key"),
            ("no parallelism", |a| a.parallel = Some(0), "--parallel"),
            (
                "three key attributes",
                |a| a.key_attributes = vec!["a".into(), "b".into(), "c".into()],
                "--key-attributes",
            ),
        ];
        for (what, change, option) in cases {
            let mut a = restore_args("users", "users-restored");
            change(&mut a);
            let e = RestoreConfig::resolve(&a).unwrap_err().to_string();
            assert!(e.contains(option), "{what}: {e}");
        }
        let mut live = restore_args("users", "users");
        live.in_place = true;
        assert!(RestoreConfig::resolve(&live).unwrap().in_place);
    }

    #[test]
    fn schema_infer_sample_and_dialect() {
        let args = |infer: bool, archive: Option<&str>, sample: Option<u64>| SchemaArgs {
            tables: vec!["users".into()],
            archive: archive.map(str::to_owned),
            infer,
            sample,
            ..Default::default()
        };
        let c = SchemaConfig::resolve(&args(false, None, None)).unwrap();
        assert_eq!(
            (c.infer, c.dialect),
            (None, None),
            "as before: no sample, both dialects"
        );
        let c = SchemaConfig::resolve(&args(true, Some("/a"), None)).unwrap();
        assert_eq!(c.infer, Some(DEFAULT_SAMPLE_ROWS));
        let c = SchemaConfig::resolve(&args(true, Some("/a"), Some(7))).unwrap();
        assert_eq!(c.infer, Some(7));
        let err = |a| SchemaConfig::resolve(&a).unwrap_err().to_string();
        assert!(err(args(true, None, None)).contains("--infer reads the archive"));
        assert!(err(args(true, Some("/a"), Some(0))).contains("--sample"));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "infer = true\nsample = 5\ndialect = \"duckdb\"\narchive = \"/f\"",
        )
        .unwrap();
        let mut a = args(false, None, None);
        a.common.config = Some(path);
        let c = SchemaConfig::resolve(&a).unwrap();
        assert_eq!((c.infer, c.dialect), (Some(5), Some(cli::Dialect::Duckdb)));
        a.dialect = Some(cli::Dialect::Athena);
        a.sample = Some(9);
        let c = SchemaConfig::resolve(&a).unwrap();
        assert_eq!(
            (c.infer, c.dialect),
            (Some(9), Some(cli::Dialect::Athena)),
            "flags win"
        );
    }

    #[test]
    fn tables_are_deduplicated() {
        let c = RunConfig::resolve(&run_args(&["users", "users", "orders"], Some("/a"))).unwrap();
        assert_eq!(c.tables.len(), 2);
    }
}
