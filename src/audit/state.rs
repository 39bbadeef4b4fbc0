//! A table's state at an instant, in bounded memory: the machinery behind `snapshot --as-of` and
//! `restore`. Pass one ([`spill_table`]) reads every file of the table and spills each row's
//! essentials to one of [`PARTITIONS`] files by a hash of its key, noting on the way what the
//! archive says about its own coverage ([`ArchiveFacts`]); pass two ([`Spilled::fold`]) folds one
//! partition at a time (only its keys in memory) with the rule of [`super::snapshot`], and yields
//! its items sorted by key. The callers decide what to do with each partition: write it as Parquet
//! or as DynamoDB JSON (`cmd::snapshot`), or write it back into a table (`restore`).

use super::coverage::{ArchiveFacts, Baseline, ChainStart, FileFacts};
use super::history::order_key;
use super::snapshot::{partition_of, KeyState, Row};
use crate::archive::layout::{self, ArchiveKey};
use crate::archive::{ArchiveSink, SinkError};
use crate::encode::key_query::key_shape;
use crate::encode::parquet::meta;
use crate::encode::read::{opt_str, ArchiveRows};
use crate::encode::record::{QUARANTINED, SNAPSHOT};
use arrow_array::{Array, StringArray};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Spill partitions: pass two holds one sixty-fourth of the table's keys at a time.
pub const PARTITIONS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("{location}: {message}")]
    File { location: String, message: String },
    #[error("spool folder {path}: {source}; free space there or choose another --spool-dir")]
    Spool {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn spool(path: &Path) -> impl Fn(std::io::Error) -> StateError + '_ {
    move |source| StateError::Spool {
        path: path.to_owned(),
        source,
    }
}

/// One item of the state: its key, the item (canonical DynamoDB JSON) and the archive row the
/// state comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateItem {
    pub keys: String,
    pub item: String,
    pub source_event_id: String,
    pub source_time_ms: i64,
    /// From a change (a stream or incremental export row), not from a SNAPSHOT row.
    pub from_change: bool,
}

/// One partition's state at the instant: its items sorted by `keys`, and how many of its keys
/// were absent then.
#[derive(Debug, Default)]
pub struct PartitionState {
    pub items: Vec<StateItem>,
    pub absent: u64,
}

/// The spill files of pass one, removed when dropped.
#[derive(Debug)]
pub struct Spilled {
    dir: PathBuf,
    paths: Vec<PathBuf>,
    /// Archive files read.
    pub files: usize,
    pub facts: ArchiveFacts,
}

impl Drop for Spilled {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Spilled {
    pub fn partitions(&self) -> usize {
        self.paths.len()
    }

    /// Folds partition `index` as of `as_of_ms` (blocking: call it off the async workers).
    pub fn fold(&self, index: usize, as_of_ms: i64) -> Result<PartitionState, StateError> {
        fold_partition(&self.paths[index], as_of_ms)
    }
}

/// The files of pass one being written.
struct Spill {
    paths: Vec<PathBuf>,
    writers: Vec<BufWriter<std::fs::File>>,
}

impl Spill {
    fn create(dir: &Path) -> Result<Self, StateError> {
        std::fs::create_dir_all(dir).map_err(spool(dir))?;
        let paths: Vec<PathBuf> = (0..PARTITIONS)
            .map(|i| dir.join(format!("part-{i:03}.jsonl")))
            .collect();
        let writers = paths
            .iter()
            .map(|p| {
                std::fs::File::create(p)
                    .map(|f| BufWriter::with_capacity(64 << 10, f))
                    .map_err(spool(p))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { paths, writers })
    }

    fn push(&mut self, row: &Row) -> std::io::Result<()> {
        let w = &mut self.writers[partition_of(&row.keys, PARTITIONS)];
        serde_json::to_writer(&mut *w, row)?;
        w.write_all(b"\n")
    }

    fn finish(self, dir: &Path) -> Result<Vec<PathBuf>, StateError> {
        for mut w in self.writers {
            w.flush().map_err(spool(dir))?;
        }
        Ok(self.paths)
    }
}

/// Pass one: every row file of `table` in `source`, spilled under `dir` (created; removed when the
/// result is dropped). With `only`, just the rows of those `keys` strings are kept (one item's
/// restore), though every file is still read for the archive's facts.
pub async fn spill_table(
    source: &ArchiveSink,
    table: &str,
    dir: &Path,
    only: Option<Arc<HashSet<String>>>,
) -> Result<Spilled, StateError> {
    let keys: Vec<String> = source
        .list_tree(&layout::table_dir(table))
        .await?
        .into_iter()
        .filter(|k| ArchiveKey::holds_rows(k))
        .collect();
    let mut spill = Some(Spill::create(dir)?);
    let mut facts = ArchiveFacts::default();
    for key in &keys {
        let bytes = source.read(key, None).await?;
        let mut s = spill.take().expect("spill files");
        let (key2, only) = (key.clone(), only.clone());
        let (s, r) = tokio::task::spawn_blocking(move || {
            let r = spill_file(&key2, bytes::Bytes::from(bytes), &mut s, only.as_deref());
            (s, r)
        })
        .await
        .expect("spilling does not panic");
        facts.add_file(r?);
        spill = Some(s);
    }
    let paths = spill.expect("spill files").finish(dir)?;
    facts.files = keys.len();
    Ok(Spilled {
        dir: dir.to_owned(),
        paths,
        files: keys.len(),
        facts,
    })
}

/// The columns the state needs of a row (not the stream's ARN, view type, size or who).
const STATE_COLUMNS: &[&str] = &[
    "event_id",
    "event_name",
    "event_time",
    "keys",
    "new_image",
    "old_image",
    "shard_id",
    "sequence_number",
];

fn spill_file(
    key: &str,
    bytes: bytes::Bytes,
    spill: &mut Spill,
    only: Option<&HashSet<String>>,
) -> Result<FileFacts, StateError> {
    let bad = |e: &dyn std::fmt::Display| StateError::File {
        location: key.to_owned(),
        message: e.to_string(),
    };
    let reader = ArchiveRows::open(bytes, STATE_COLUMNS, None).map_err(|e| bad(&e))?;
    let metadata = reader.metadata().clone();
    let mut facts = FileFacts::default();
    for batch in reader {
        let batch = batch.map_err(|e| bad(&e))?;
        let text = |name: &str| batch.text(name).map_err(|e| bad(&e));
        let (ids, names, keys, news, olds, shards, seqs) = (
            text("event_id")?,
            text("event_name")?,
            text("keys")?,
            text("new_image")?,
            text("old_image")?,
            text("shard_id")?,
            text("sequence_number")?,
        );
        let times = batch.event_times().map_err(|e| bad(&e))?;
        let opt = |a: &StringArray, i: usize| opt_str(a, i).map(str::to_owned);
        for i in 0..batch.len() {
            let name = names.value(i);
            if name == QUARANTINED {
                // Not a change of any known item: listed by `verify`, re-processed by hand.
                continue;
            }
            let time_ms = times.value(i);
            facts.earliest_ms = Some(facts.earliest_ms.map_or(time_ms, |t| t.min(time_ms)));
            let snapshot = name == SNAPSHOT;
            if snapshot {
                let source = snapshot_source(ids.value(i));
                let t = facts.snapshot_sources.entry(source).or_insert(time_ms);
                *t = (*t).min(time_ms);
            } else {
                facts.newest_change_ms =
                    Some(facts.newest_change_ms.map_or(time_ms, |t| t.max(time_ms)));
            }
            if facts.key_shape.is_none() {
                facts.key_shape = key_shape(keys.value(i));
            }
            if only.is_some_and(|o| !o.contains(keys.value(i))) {
                continue;
            }
            let row = Row {
                keys: keys.value(i).to_owned(),
                time_ms,
                order: order_key(opt_str(shards, i), opt_str(seqs, i)),
                snapshot,
                // A change without a new image deletes the item (REMOVE, and the name DynamoDB
                // Local gives TTL deletions).
                remove: name == "REMOVE" || (!snapshot && news.is_null(i)),
                new_image: opt(news, i),
                old_image: opt(olds, i),
                event_id: ids.value(i).to_owned(),
            };
            spill.push(&row).map_err(|e| bad(&e))?;
        }
    }
    if let ArchiveKey::Stream { shard, .. } = layout::parse_key(key) {
        let arn = metadata.get(meta::STREAM_ARN).cloned().unwrap_or_default();
        facts.stream = Some((arn.clone(), shard.to_string()));
        facts.gap = metadata
            .get(meta::GAP_AFTER_SEQUENCE)
            .map(|_| key.to_owned());
        if let Some(start) = metadata.get(meta::START_POSITION) {
            facts.chain_start = Some(ChainStart {
                stream_arn: arn,
                shard: shard.to_string(),
                parent: metadata
                    .get(meta::PARENT_SHARD_ID)
                    .cloned()
                    .unwrap_or_default(),
                start_position: start.clone(),
                gap: facts.gap.is_some(),
                first_time_ms: facts.earliest_ms,
            });
        }
    }
    Ok(facts)
}

/// The complete snapshots of `table` in the archive (see [`super::coverage`]): every finished
/// backfill scan, timed by its start, and every converted full export, timed by its export time
/// (the `event_time` of its rows, from the spill's `facts`).
pub async fn baselines(
    source: &ArchiveSink,
    table: &crate::types::TableName,
    facts: &ArchiveFacts,
) -> Result<Vec<Baseline>, SinkError> {
    let mut out = Vec::new();
    let markers = source.list(&layout::backfill_dir(table)).await?;
    for key in &markers {
        let Some(id) = key
            .rsplit('/')
            .next()
            .and_then(|n| n.strip_suffix(".finished.json"))
        else {
            continue;
        };
        let started: crate::backfill::job::StartedMarker = source
            .read_json(&layout::backfill_started_key(table, id))
            .await?;
        let parsed = time::OffsetDateTime::parse(
            &started.started_at,
            &time::format_description::well_known::Rfc3339,
        );
        if let Ok(t) = parsed {
            out.push(Baseline {
                source: format!("snapshot-{id}"),
                time_ms: (t.unix_timestamp_nanos() / 1_000_000) as i64,
            });
        }
    }
    for key in source.list(&layout::imports_root(table)).await? {
        let Some(folder) = key.strip_suffix("/finished.json") else {
            continue;
        };
        let export_id = folder.rsplit('/').next().unwrap_or_default();
        let marker: crate::export::job::FinishedMarker = source.read_json(&key).await?;
        let source_id = format!("export-{export_id}");
        if marker.export_type == "FULL_EXPORT" {
            // An export of an empty table has no rows, hence no time: it cannot serve.
            if let Some(t) = facts.snapshot_sources.get(&source_id) {
                out.push(Baseline {
                    source: source_id,
                    time_ms: *t,
                });
            }
        }
    }
    Ok(out)
}

/// `snapshot-<scan id>` or `export-<export id>`: which scan or export a SNAPSHOT row comes from.
/// Both ids end in `-<32 hex digits>` after the source's own id.
fn snapshot_source(event_id: &str) -> String {
    event_id
        .rsplit_once('-')
        .map_or(event_id, |(source, _)| source)
        .to_owned()
}

/// Pass two for one partition: each key's rows folded by the rule, its items sorted by key.
pub fn fold_partition(path: &Path, as_of_ms: i64) -> Result<PartitionState, StateError> {
    let mut states: HashMap<String, KeyState> = HashMap::new();
    let reader = std::io::BufReader::new(std::fs::File::open(path).map_err(spool(path))?);
    for line in reader.lines() {
        let line = line.map_err(spool(path))?;
        let row: Row = serde_json::from_str(&line).map_err(|e| StateError::File {
            location: path.display().to_string(),
            message: e.to_string(),
        })?;
        states
            .entry(row.keys.clone())
            .or_default()
            .add(row, as_of_ms);
    }
    let mut out = PartitionState::default();
    for (keys, s) in states {
        match s.resolve() {
            Some((item, row)) => out.items.push(StateItem {
                keys,
                item,
                source_event_id: row.event_id,
                source_time_ms: row.time_ms,
                from_change: !row.snapshot,
            }),
            None => out.absent += 1,
        }
    }
    out.items.sort_by(|a, b| a.keys.cmp(&b.keys));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_sources() {
        assert_eq!(
            snapshot_source("snapshot-20261122T101500Z-0123456789abcdef0123456789abcdef"),
            "snapshot-20261122T101500Z"
        );
        assert_eq!(
            snapshot_source("export-01763596800000-abcd1234-0123456789abcdef0123456789abcdef"),
            "export-01763596800000-abcd1234"
        );
    }

    #[test]
    fn a_partition_folds_to_sorted_items() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.jsonl");
        let row = |keys: &str, t: i64, kind: &str, new: Option<&str>| Row {
            keys: keys.into(),
            time_ms: t,
            order: (1, format!("{t:040}")),
            snapshot: kind == "SNAPSHOT",
            remove: kind == "REMOVE",
            new_image: new.map(str::to_owned),
            old_image: None,
            event_id: format!("{kind}-{keys}-{t}"),
        };
        let rows = [
            row("b", 10, "INSERT", Some("b1")),
            row("a", 10, "SNAPSHOT", Some("a0")),
            row("c", 10, "INSERT", Some("c1")),
            row("c", 20, "REMOVE", None),
            row("b", 30, "MODIFY", Some("b2")),
        ];
        let text: String = rows
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect();
        std::fs::write(&path, text).unwrap();
        let state = fold_partition(&path, 25).unwrap();
        let got: Vec<(&str, &str, bool)> = state
            .items
            .iter()
            .map(|i| (i.keys.as_str(), i.item.as_str(), i.from_change))
            .collect();
        assert_eq!(got, vec![("a", "a0", false), ("b", "b1", true)]);
        assert_eq!(state.absent, 1, "c was removed at 20");
    }
}
