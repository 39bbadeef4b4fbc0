//! `dynamo-archiver schema`: its arguments and their validation.

use super::cli::{CommonArgs, Dialect};
use super::resolve::*;
use super::{ConfigError, LogConfig};
use crate::archive::ArchiveUri;
use crate::types::TableName;
use clap::Args;

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
    pub dialect: Option<crate::views::render::Dialect>,
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
            dialect: args.dialect.or(file.dialect).map(Into::into),
            log: log_config(&args.common, &file),
        })
    }
}
