//! `dynamo-archiver backfill`: its arguments and their validation.

use super::cli::CommonArgs;
use super::cli::ProgressMode;
use super::resolve::*;
use super::{ConfigError, LogConfig};
use crate::archive::ArchiveUri;
use crate::types::TableName;
use clap::Args;
use std::path::PathBuf;

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
    pub progress: crate::progress::ProgressMode,
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
                .unwrap_or(ProgressMode::Auto)
                .into(),
            log: log_config(&args.common, &file),
        })
    }
}
