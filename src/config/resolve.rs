//! The resolution helpers every command shares: a value from the flag (or its environment
//! variable), else the config file, else the default, checked into its type.

use super::cli::{CommonArgs, LogFormat};
use super::file::FileConfig;
use super::{units, ConfigError, LogConfig, DEFAULT_LEASE_TABLE};
use super::{DEFAULT_FLUSH_SIZE_BYTES, MAX_FLUSH_SIZE_BYTES, MIN_FLUSH_SIZE_BYTES};
use crate::archive::ArchiveUri;
use crate::encode::key_query::KeyQuery;
use crate::types::TableName;
use std::path::PathBuf;
use std::time::Duration;

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

pub(super) fn tables(
    cli: &[String],
    file: Option<&Vec<String>>,
) -> Result<Vec<TableName>, ConfigError> {
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
pub(super) fn optional_tables(
    cli: &[String],
    file: Option<&Vec<String>>,
) -> Result<Vec<TableName>, ConfigError> {
    match tables(cli, file) {
        Err(ConfigError::NoTable) => Ok(Vec::new()),
        other => other,
    }
}

pub(super) fn duration(
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

pub(super) fn lease_table(cli: Option<&String>, file: &FileConfig) -> Result<String, ConfigError> {
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

pub(super) fn load_file(common: &CommonArgs) -> Result<FileConfig, ConfigError> {
    match &common.config {
        Some(path) => FileConfig::load(path),
        None => Ok(FileConfig::default()),
    }
}

pub(super) fn log_config(common: &CommonArgs, file: &FileConfig) -> LogConfig {
    LogConfig {
        format: common
            .log_format
            .or(file.log_format)
            .unwrap_or(LogFormat::Json)
            .into(),
    }
}

pub(super) fn flush_size(cli: Option<&String>, file: &FileConfig) -> Result<u64, ConfigError> {
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

pub(super) fn spool_dir(cli: Option<&PathBuf>, file: &FileConfig) -> PathBuf {
    cli.cloned()
        .or(file.spool_dir.clone())
        .unwrap_or_else(|| std::env::temp_dir().join("dynamo-archiver"))
}

pub(super) fn required_archive(
    cli: Option<&String>,
    file: &FileConfig,
) -> Result<ArchiveUri, ConfigError> {
    match cli.or(file.archive.as_ref()) {
        Some(a) => Ok(ArchiveUri::parse(a)?),
        None => Err(ConfigError::BadValue {
            option: "--archive",
            message: "required: give s3://bucket/prefix or a local directory (or ARCHIVER_ARCHIVE)"
                .into(),
        }),
    }
}

pub(super) fn parallel(cli: Option<u32>, file: &FileConfig) -> Result<Option<usize>, ConfigError> {
    match cli.or(file.parallel) {
        None => Ok(None),
        Some(0) => Err(ConfigError::BadValue {
            option: "--parallel",
            message: "must be at least 1".into(),
        }),
        Some(n) => Ok(Some(n as usize)),
    }
}

/// A `YYYY-MM-DD` option, checked.
pub(super) fn date(
    option: &'static str,
    value: Option<&String>,
) -> Result<Option<String>, ConfigError> {
    let Some(d) = value else { return Ok(None) };
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(d, fmt).map_err(|_| ConfigError::BadValue {
        option,
        message: format!("`{d}` is not a date; write it as YYYY-MM-DD"),
    })?;
    Ok(Some(d.clone()))
}

/// `--key` parts (the flags, else the config file's `key`), parsed once; `None` when none are
/// given.
pub(super) fn key_query(
    cli: &[String],
    file: &FileConfig,
) -> Result<Option<KeyQuery>, ConfigError> {
    let parts = if cli.is_empty() {
        file.key.clone().unwrap_or_default()
    } else {
        cli.to_vec()
    };
    if parts.is_empty() {
        return Ok(None);
    }
    KeyQuery::parse(&parts)
        .map(Some)
        .map_err(|message| ConfigError::BadValue {
            option: "--key",
            message,
        })
}

/// `--as-of`, required, as milliseconds since the epoch.
pub(super) fn as_of(cli: Option<&String>, file: &FileConfig) -> Result<i64, ConfigError> {
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
pub(super) fn one_table(
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

/// `--key-attributes` (the flags, else the file's `key_attributes`): one or two names, partition
/// key first; `None` when none are given.
pub(super) fn key_attributes(
    cli: &[String],
    file: &FileConfig,
) -> Result<Option<Vec<String>>, ConfigError> {
    let given = if cli.is_empty() {
        file.key_attributes.clone().unwrap_or_default()
    } else {
        cli.to_vec()
    };
    let names: Vec<String> = given
        .iter()
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .collect();
    if names.len() > 2 {
        return Err(ConfigError::BadValue {
            option: "--key-attributes",
            message: "a DynamoDB key has one or two attributes: PARTITION_KEY[,SORT_KEY]".into(),
        });
    }
    Ok((!names.is_empty()).then_some(names))
}
