//! The configuration's error: exit status 2, with a message that names the option and the fix.

use crate::archive::uri::BadArchiveUri;
use std::path::PathBuf;

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

impl From<BadArchiveUri> for ConfigError {
    fn from(e: BadArchiveUri) -> Self {
        Self::BadArchive {
            uri: e.uri,
            message: e.message,
        }
    }
}
