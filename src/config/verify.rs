//! `dynamo-archiver verify`: its arguments and their validation.

use super::cli::CommonArgs;
use super::resolve::*;
use super::{ConfigError, LogConfig};
use crate::archive::ArchiveUri;
use crate::types::TableName;
use clap::Args;

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
