//! What one archive file says about itself: its name, its footer, its rows, and its hash.

use crate::archive::layout::{self, ArchiveKey};
use crate::encode::parquet::meta;
use crate::encode::read::ArchiveRows;
use crate::types::SequenceNumber;
use arrow_array::Array;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The facts of one file, as read back from the archive.
#[derive(Debug, Clone)]
pub struct FileFacts {
    pub key: String,
    pub dt: Option<String>,
    pub kind: ArchiveKey,
    pub sha256: [u8; 32],
    /// The hash recorded when it was written (S3 metadata), if any.
    pub recorded_sha256: Option<[u8; 32]>,
    pub metadata: BTreeMap<String, String>,
    /// `Err`: the file cannot be read as the archive's Parquet.
    pub rows: Result<RowFacts, String>,
}

/// What the rows hold, for the checks.
#[derive(Debug, Clone, Default)]
pub struct RowFacts {
    pub count: u64,
    pub first_sequence: Option<SequenceNumber>,
    pub last_sequence: Option<SequenceNumber>,
    /// Sequence numbers rise strictly from row to row.
    pub ordered: bool,
    /// Shard ids other than the one the name states.
    pub foreign_shards: u64,
    /// Rows whose `event_time` falls on another day than the `dt` folder.
    pub outside_dt: u64,
    /// 128-bit digests of the event ids (for finding duplicates at bounded memory).
    pub event_ids: Vec<u128>,
    /// Quarantined rows: (sequence number, reason).
    pub quarantined: Vec<(String, String)>,
}

fn event_id_digest(id: &str) -> u128 {
    let d = Sha256::digest(id.as_bytes());
    u128::from_be_bytes(d[..16].try_into().expect("16 bytes"))
}

/// The columns `verify` needs of a row: never the images.
const FACT_COLUMNS: &[&str] = &[
    "event_id",
    "event_time",
    "shard_id",
    "sequence_number",
    "quarantine_reason",
];

/// Reads a stored file's bytes into its facts.
pub fn read_facts(key: &str, bytes: bytes::Bytes, recorded_sha256: Option<[u8; 32]>) -> FileFacts {
    let sha256: [u8; 32] = Sha256::digest(&bytes).into();
    let dt = layout::dt_of_key(key).map(str::to_owned);
    let kind = layout::parse_key(key);
    let mut metadata = BTreeMap::new();
    let rows = (|| {
        let reader = ArchiveRows::open(bytes, FACT_COLUMNS, None)?;
        metadata.extend(reader.metadata().clone());
        let named_shard = match &kind {
            ArchiveKey::Stream { shard, .. } => Some(shard.as_str().to_owned()),
            _ => None,
        };
        let mut facts = RowFacts {
            ordered: true,
            ..RowFacts::default()
        };
        for batch in reader {
            let batch = batch?;
            let ids = batch.text("event_id")?;
            let shards = batch.text("shard_id")?;
            let seqs = batch.text("sequence_number")?;
            let times = batch.event_times()?;
            // Absent from files written before quarantine existed.
            let reasons = batch.optional_text("quarantine_reason");
            for i in 0..batch.len() {
                facts.count += 1;
                if let Some(reasons) = reasons.as_ref().filter(|r| !r.is_null(i)) {
                    let seq = if seqs.is_null(i) { "" } else { seqs.value(i) };
                    facts
                        .quarantined
                        .push((seq.to_owned(), reasons.value(i).to_owned()));
                }
                facts.event_ids.push(event_id_digest(ids.value(i)));
                if let (Some(named), false) = (&named_shard, shards.is_null(i)) {
                    if shards.value(i) != named {
                        facts.foreign_shards += 1;
                    }
                }
                if let Some(dt) = &dt {
                    if !times.is_null(i) && layout::dt_of_millis(times.value(i)) != *dt {
                        facts.outside_dt += 1;
                    }
                }
                if !seqs.is_null(i) {
                    let seq = SequenceNumber::parse(seqs.value(i))
                        .map_err(|e| format!("row {}: {e}", facts.count))?;
                    if facts
                        .last_sequence
                        .as_ref()
                        .is_some_and(|last| seq <= *last)
                    {
                        facts.ordered = false;
                    }
                    if facts.first_sequence.is_none() {
                        facts.first_sequence = Some(seq.clone());
                    }
                    facts.last_sequence = Some(seq);
                }
            }
        }
        Ok(facts)
    })();
    FileFacts {
        key: key.to_owned(),
        dt,
        kind,
        sha256,
        recorded_sha256,
        metadata,
        rows,
    }
}

impl FileFacts {
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    pub fn previous_sha256(&self) -> Option<&str> {
        self.meta(meta::PREVIOUS_SHA256)
    }

    pub fn sha_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}
