//! `dynamo-archiver import-export`: its arguments and their validation.

use super::cli::CommonArgs;
use super::cli::ProgressMode;
use super::resolve::*;
use super::{ConfigError, LogConfig};
use crate::archive::ArchiveUri;
use crate::types::TableName;
use clap::Args;
use std::path::PathBuf;

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
    pub progress: crate::progress::ProgressMode,
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
        let key_attributes = key_attributes(&args.key_attributes, &file)?;
        let from_table = args
            .from_table
            .as_ref()
            .or(file.from_table.as_ref())
            .map(|t| validate_table(t.trim()))
            .transpose()?;
        Ok(Self {
            export,
            from_table,
            key_attributes,
            table: tables.remove(0),
            archive: required_archive(args.archive.as_ref(), &file)?,
            parallel: parallel(args.parallel, &file)?.unwrap_or(cpus.min(8)),
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
