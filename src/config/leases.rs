//! `dynamo-archiver leases`: its arguments and their validation.

use super::cli::CommonArgs;
use super::resolve::*;
use super::{ConfigError, LogConfig};
use crate::types::TableName;
use clap::Args;

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
