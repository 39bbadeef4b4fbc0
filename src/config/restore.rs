//! `dynamo-archiver restore`: its arguments and their validation.

use super::cli::CommonArgs;
use super::cli::ProgressMode;
use super::resolve::*;
use super::{ConfigError, LogConfig};
use crate::archive::ArchiveUri;
use crate::encode::key_query::KeyQuery;
use crate::types::TableName;
use clap::Args;
use std::path::PathBuf;

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
    /// `--key`: one item; `None`: the whole table.
    pub keys: Option<KeyQuery>,
    pub max_wcu: Option<f64>,
    pub parallel: usize,
    pub spool_dir: PathBuf,
    pub progress: crate::progress::ProgressMode,
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
        let keys = key_query(&args.keys, &file)?;
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
        let key_attributes = key_attributes(&args.key_attributes, &file)?;
        Ok(Self {
            archive: required_archive(args.archive.as_ref(), &file)?,
            table,
            as_of_ms: as_of(args.as_of.as_ref(), &file)?,
            to_table,
            create,
            key_attributes,
            in_place,
            dry_run: args.dry_run || file.dry_run.unwrap_or(false),
            keys,
            max_wcu,
            parallel,
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
