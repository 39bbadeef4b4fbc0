//! The TOML config file: the same keys as the options, in snake_case. Unknown keys are errors, so a
//! typo never silently falls back to a default. Keys of every command are accepted in one file, so
//! one file can serve the worker and the CLI tools.

use super::cli::{Dialect, LogFormat, MetricsMode, ProgressMode, SnapshotFormat, StartPosition};
use super::ConfigError;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(alias = "table")]
    pub tables: Option<Vec<String>>,
    pub archive: Option<String>,
    pub firehose: Option<String>,
    pub overflow_archive: Option<String>,
    pub lease_table: Option<String>,
    pub worker_id: Option<String>,
    pub start_position: Option<StartPosition>,
    pub flush_interval: Option<String>,
    pub flush_size: Option<String>,
    pub http: Option<String>,
    pub log_format: Option<LogFormat>,
    pub failover_time: Option<String>,
    pub sse_kms_key: Option<String>,
    pub spool_dir: Option<PathBuf>,
    pub discovery_interval: Option<String>,
    pub stuck_after: Option<String>,
    pub max_leases: Option<u32>,
    pub metrics: Option<MetricsMode>,
    pub segments: Option<u32>,
    pub parallel: Option<u32>,
    pub max_rcu: Option<f64>,
    pub consistent_read: Option<bool>,
    pub new_scan: Option<bool>,
    pub progress: Option<ProgressMode>,
    pub export: Option<String>,
    pub from_table: Option<String>,
    pub key_attributes: Option<Vec<String>>,
    pub since: Option<String>,
    pub accept_known_gaps: Option<bool>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub as_of: Option<String>,
    pub out: Option<String>,
    pub infer: Option<bool>,
    pub sample: Option<u64>,
    pub dialect: Option<Dialect>,
    pub format: Option<SnapshotFormat>,
    pub to_table: Option<String>,
    pub create: Option<bool>,
    pub in_place: Option<bool>,
    pub dry_run: Option<bool>,
    /// `--key` of `history` and `restore`: `["userid=42"]`.
    #[serde(alias = "keys")]
    pub key: Option<Vec<String>>,
    pub max_wcu: Option<f64>,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::ParseFile {
            path: path.to_owned(),
            message,
        })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_errors() {
        let err = FileConfig::parse("flush_intervall = \"10s\"").unwrap_err();
        assert!(err.contains("flush_intervall"), "{err}");
    }

    #[test]
    fn keys_parse() {
        let f = FileConfig::parse(
            "tables = [\"users\", \"orders\"]\nflush_interval = \"10s\"\nstart_position = \"latest\"\nlog_format = \"text\"",
        )
        .unwrap();
        assert_eq!(f.tables.unwrap(), ["users", "orders"]);
        assert_eq!(f.start_position, Some(StartPosition::Latest));
        assert_eq!(f.log_format, Some(LogFormat::Text));
    }

    #[test]
    fn table_is_an_alias_of_tables() {
        let f = FileConfig::parse("table = [\"users\"]").unwrap();
        assert_eq!(f.tables.unwrap(), ["users"]);
    }
}
