//! `dynamo-archiver snapshot`: its arguments and their validation.

use super::cli::{CommonArgs, SnapshotFormat};
use super::resolve::*;
use super::{ConfigError, LogConfig};
use crate::archive::ArchiveUri;
use crate::types::TableName;
use clap::Args;
use std::path::PathBuf;

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

/// The validated configuration of `dynamo-archiver snapshot`.
#[derive(Debug, Clone)]
pub struct SnapshotConfig {
    pub archive: ArchiveUri,
    pub table: TableName,
    pub as_of_ms: i64,
    pub out: ArchiveUri,
    pub format: crate::audit::snapshot_out::SnapshotFormat,
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
                .unwrap_or(SnapshotFormat::Parquet)
                .into(),
            spool_dir: spool_dir(args.spool_dir.as_ref(), &file),
            log: log_config(&args.common, &file),
        })
    }
}
