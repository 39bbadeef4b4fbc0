//! `dynamo-archiver history`: its arguments and their validation.

use super::cli::CommonArgs;
use super::resolve::*;
use super::{ConfigError, LogConfig};
use crate::archive::ArchiveUri;
use crate::encode::key_query::KeyQuery;
use crate::types::TableName;
use clap::Args;

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

/// The validated configuration of `dynamo-archiver history`.
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    pub archive: ArchiveUri,
    pub table: TableName,
    pub keys: KeyQuery,
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
        let keys = key_query(&args.keys, &file)?.ok_or_else(|| ConfigError::BadValue {
            option: "--key",
            message: "required: give the item's key as one or two --key NAME=VALUE (partition key, and the sort key of a composite key)".into(),
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
