//! What a restore is given ([`Settings`]: the validated options, the archive opened) and what it
//! reports ([`Report`]).

use super::plan::Counts;
use crate::archive::ArchiveSink;
use crate::encode::key_query::KeyQuery;
use crate::progress::ProgressMode;
use crate::types::TableName;
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// What a restore needs (the validated configuration, and the archive opened).
#[derive(Debug, Clone)]
pub struct Settings {
    pub sink: ArchiveSink,
    /// The archive's location, for the record.
    pub archive: String,
    pub table: TableName,
    pub as_of_ms: i64,
    pub to_table: TableName,
    pub create: bool,
    pub key_attributes: Option<Vec<String>>,
    pub in_place: bool,
    pub dry_run: bool,
    /// `--key`: one item; `None`: the whole table.
    pub keys: Option<KeyQuery>,
    pub max_wcu: Option<f64>,
    pub parallel: usize,
    pub spool_dir: PathBuf,
    pub progress: ProgressMode,
}

impl Settings {
    pub(super) fn mode(&self) -> &'static str {
        if self.keys.is_some() {
            "key"
        } else if self.in_place {
            "in-place"
        } else {
            "table"
        }
    }

    /// Deletes belong to the plan when the target is made equal to the state: in place, or for
    /// one item ("undo that write": an item that did not exist then is deleted).
    pub(super) fn deletes(&self) -> bool {
        self.in_place || self.keys.is_some()
    }

    /// The `--key` parts as given; empty for the whole table.
    pub(super) fn key_given(&self) -> Vec<String> {
        self.keys
            .as_ref()
            .map_or(Vec::new(), |q| q.given().to_vec())
    }

    /// The same for every run of the same restore: names its journal.
    pub(super) fn plan_id(&self) -> String {
        let mut h = Sha256::new();
        for part in [
            self.archive.as_str(),
            self.table.as_str(),
            &self.as_of_ms.to_string(),
            self.to_table.as_str(),
            self.mode(),
            &self.key_given().join("\u{0}"),
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        hex::encode(&h.finalize()[..6])
    }
}

/// What the restore did.
#[derive(Debug, Clone)]
pub struct Report {
    pub run_id: Option<String>,
    pub answers_from_ms: i64,
    /// Items of the state at the instant (in the partitions restored).
    pub items_at_instant: u64,
    pub planned: Counts,
    pub written: Counts,
    pub already_done: u64,
    pub confirmed: u64,
    pub wcu: f64,
    pub elapsed_seconds: f64,
    pub stopped: bool,
    pub dry_run: bool,
    pub created: bool,
    /// Files of the archive that record lost stream records.
    pub gaps: usize,
}
