//! The pure parts of a backfill: how many segments, what files and markers are called, which scan
//! a run continues, and where each segment resumes.
//!
//! ```text
//! <table>/dt=<scan date>/snapshot-<scan id>-<segment>-<file>.parquet   SNAPSHOT rows
//! <table>/_backfill/<scan id>.started.json                             the scan's parameters
//! <table>/_backfill/<scan id>.finished.json                            its totals, once complete
//! ```
//!
//! `_backfill` starts with an underscore, which Athena, Trino and Spark treat as hidden.

use crate::archive::layout::{self, ArchiveKey};
use crate::encode::parquet::meta;
use crate::types::TableName;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// One segment per this many bytes of table: AWS suggests a segment per 2 GB of data for a
/// parallel Scan
/// (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Scan.html#Scan.ParallelScan>);
/// half that keeps files and restarts finer at little cost.
pub const BYTES_PER_SEGMENT: u64 = 1 << 30;
/// Small tables still get a few segments, so that a laptop reads them in parallel.
pub const MIN_DEFAULT_SEGMENTS: u32 = 4;
/// Past this the listing of a scan's files and the footers read on resume grow for no speed gain
/// (one process reads at most `--parallel` segments at a time).
pub const MAX_DEFAULT_SEGMENTS: u32 = 1000;

/// The default `--segments` for a table of `size_bytes`.
pub fn default_segments(size_bytes: u64) -> u32 {
    let n = size_bytes.div_ceil(BYTES_PER_SEGMENT);
    (n.min(u64::from(MAX_DEFAULT_SEGMENTS)) as u32).max(MIN_DEFAULT_SEGMENTS)
}

/// A scan's id: its start time, `YYYYMMDDTHHMMSSZ`, which also sorts scans by age.
pub fn scan_id(now_ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(now_ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The `dt` partition of a scan: the date it started, whenever its pages are read (a resumed scan
/// keeps its rows in one partition).
pub fn scan_dt(scan_id: &str) -> Option<String> {
    let d = scan_id.get(..8)?;
    if !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..8]))
}

/// `(segment, file number)` of a snapshot file of `scan_id`.
pub fn parse_file_key(key: &str, scan_id: &str) -> Option<(u32, u32)> {
    match layout::parse_key(key) {
        ArchiveKey::Snapshot {
            scan,
            segment,
            number,
        } if scan == scan_id => Some((segment, number)),
        _ => None,
    }
}

/// The newest file (highest number) of each segment among `keys`.
pub fn latest_files(keys: &[String], scan_id: &str) -> BTreeMap<u32, (u32, String)> {
    let mut out: BTreeMap<u32, (u32, String)> = BTreeMap::new();
    for key in keys {
        if let Some((seg, n)) = parse_file_key(key, scan_id) {
            if out.get(&seg).is_none_or(|(m, _)| n > *m) {
                out.insert(seg, (n, key.clone()));
            }
        }
    }
    out
}

/// What a run does with a table, given the markers found under `_backfill/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanChoice {
    /// No earlier scan (or `--new-scan`): start one.
    Start,
    /// The newest scan has not finished: continue it.
    Resume(String),
    /// The newest scan finished: nothing to do.
    Finished(String),
}

pub fn choose_scan(marker_keys: &[String], new_scan: bool) -> ScanChoice {
    let mut started = BTreeSet::new();
    let mut finished = BTreeSet::new();
    for key in marker_keys {
        let name = key.rsplit('/').next().unwrap_or(key);
        if let Some(id) = name.strip_suffix(".started.json") {
            started.insert(id.to_owned());
        } else if let Some(id) = name.strip_suffix(".finished.json") {
            finished.insert(id.to_owned());
        }
    }
    match started.last() {
        _ if new_scan => ScanChoice::Start,
        None => ScanChoice::Start,
        Some(id) if finished.contains(id) => ScanChoice::Finished(id.clone()),
        Some(id) => ScanChoice::Resume(id.clone()),
    }
}

/// A SNAPSHOT row's event id: the same for the same item in the same scan, whoever reads it.
pub fn snapshot_event_id(scan_id: &str, table: &TableName, keys_json: &str) -> String {
    let mut h = Sha256::new();
    h.update(table.as_str().as_bytes());
    h.update([0]);
    h.update(keys_json.as_bytes());
    let digest = h.finalize();
    format!("snapshot-{scan_id}-{}", hex::encode(&digest[..16]))
}

/// Where a segment stands, as read from its newest file's footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentState {
    /// The number the segment's next file gets.
    pub next_file: u32,
    /// ExclusiveStartKey of the next page (DynamoDB JSON); `None` from the segment's start.
    pub resume_key: Option<String>,
    pub finished: bool,
    /// Rows archived by the segment so far.
    pub rows: u64,
}

impl SegmentState {
    pub const FRESH: SegmentState = SegmentState {
        next_file: 0,
        resume_key: None,
        finished: false,
        rows: 0,
    };
}

/// Reads a segment's state from the metadata of its file number `file`.
pub fn state_from_metadata(
    file: u32,
    metadata: &BTreeMap<String, String>,
) -> Result<SegmentState, String> {
    let rows = metadata
        .get(meta::BACKFILL_SEGMENT_ROWS)
        .ok_or_else(|| format!("no `{}` in its metadata", meta::BACKFILL_SEGMENT_ROWS))?
        .parse::<u64>()
        .map_err(|e| format!("`{}` is not a count: {e}", meta::BACKFILL_SEGMENT_ROWS))?;
    let finished = metadata.get(meta::BACKFILL_SEGMENT_END).map(String::as_str) == Some("true");
    let resume_key = metadata.get(meta::BACKFILL_RESUME_KEY).cloned();
    if !finished && resume_key.is_none() {
        return Err(format!(
            "neither `{}` nor `{}` in its metadata",
            meta::BACKFILL_RESUME_KEY,
            meta::BACKFILL_SEGMENT_END
        ));
    }
    Ok(SegmentState {
        next_file: file + 1,
        resume_key,
        finished,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_segments_follow_size() {
        let gib = 1u64 << 30;
        let cases = [
            (0, 4),
            (10 << 20, 4),
            (4 * gib, 4),
            (5 * gib, 5),
            (100 * gib + 1, 101),
            (10_000 * gib, 1000),
        ];
        for (size, want) in cases {
            assert_eq!(default_segments(size), want, "{size}");
        }
    }

    #[test]
    fn scan_ids_sort_by_time_and_give_the_partition() {
        let a = scan_id(1_763_769_600_000);
        assert_eq!(a, "20251122T000000Z");
        assert_eq!(scan_dt(&a).as_deref(), Some("2025-11-22"));
        assert!(scan_id(1_763_769_601_000) > a);
        assert_eq!(scan_dt("garbage"), None);
    }

    #[test]
    fn file_keys_parse_back_and_never_look_like_stream_files() {
        let t = TableName::new("users");
        let key = layout::snapshot_file_key(&t, "2026-11-22", "20261122T101500Z", 3, 12);
        assert_eq!(
            key,
            "users/dt=2026-11-22/snapshot-20261122T101500Z-000003-000012.parquet"
        );
        assert_eq!(parse_file_key(&key, "20261122T101500Z"), Some((3, 12)));
        assert_eq!(parse_file_key(&key, "20261122T101501Z"), None);
        assert!(matches!(
            layout::parse_key(&key),
            ArchiveKey::Snapshot { .. }
        ));
        assert!(key.starts_with(&layout::snapshot_files_prefix(
            &t,
            "2026-11-22",
            "20261122T101500Z"
        )));
    }

    #[test]
    fn the_newest_file_of_each_segment_wins() {
        let t = TableName::new("users");
        let id = "20261122T101500Z";
        let keys: Vec<String> = [(0, 0), (0, 2), (0, 1), (5, 0), (5, 10), (5, 9)]
            .iter()
            .map(|&(s, f)| layout::snapshot_file_key(&t, "2026-11-22", id, s, f))
            .chain(["users/dt=2026-11-22/snapshot-20261121T000000Z-000000-000009.parquet".into()])
            .collect();
        let latest = latest_files(&keys, id);
        assert_eq!(latest.len(), 2);
        assert_eq!(latest[&0].0, 2);
        assert_eq!(latest[&5].0, 10);
    }

    #[test]
    fn scan_choice() {
        let k = |n: &str| format!("users/_backfill/{n}");
        let cases: Vec<(Vec<String>, bool, ScanChoice)> = vec![
            (vec![], false, ScanChoice::Start),
            (
                vec![k("20261101T000000Z.started.json")],
                false,
                ScanChoice::Resume("20261101T000000Z".into()),
            ),
            (
                vec![
                    k("20261101T000000Z.started.json"),
                    k("20261101T000000Z.finished.json"),
                ],
                false,
                ScanChoice::Finished("20261101T000000Z".into()),
            ),
            (
                vec![
                    k("20261101T000000Z.started.json"),
                    k("20261101T000000Z.finished.json"),
                ],
                true,
                ScanChoice::Start,
            ),
            // An older unfinished scan is superseded by a newer one.
            (
                vec![
                    k("20261101T000000Z.started.json"),
                    k("20261102T000000Z.started.json"),
                    k("20261102T000000Z.finished.json"),
                ],
                false,
                ScanChoice::Finished("20261102T000000Z".into()),
            ),
            (
                vec![
                    k("20261101T000000Z.started.json"),
                    k("20261101T000000Z.finished.json"),
                    k("20261102T000000Z.started.json"),
                ],
                false,
                ScanChoice::Resume("20261102T000000Z".into()),
            ),
        ];
        for (keys, new_scan, want) in cases {
            assert_eq!(choose_scan(&keys, new_scan), want, "{keys:?} {new_scan}");
        }
    }

    #[test]
    fn event_ids_are_stable_per_scan_and_item() {
        let t = TableName::new("users");
        let a = snapshot_event_id("S1", &t, r#"{"id":{"N":"1"}}"#);
        assert_eq!(a, snapshot_event_id("S1", &t, r#"{"id":{"N":"1"}}"#));
        assert_ne!(a, snapshot_event_id("S2", &t, r#"{"id":{"N":"1"}}"#));
        assert_ne!(a, snapshot_event_id("S1", &t, r#"{"id":{"N":"2"}}"#));
        assert!(a.starts_with("snapshot-S1-"));
    }

    #[test]
    fn segment_state_from_footers() {
        let m = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let mid = m(&[
            (meta::BACKFILL_SEGMENT_ROWS, "120"),
            (meta::BACKFILL_RESUME_KEY, r#"{"id":{"N":"7"}}"#),
        ]);
        assert_eq!(
            state_from_metadata(4, &mid).unwrap(),
            SegmentState {
                next_file: 5,
                resume_key: Some(r#"{"id":{"N":"7"}}"#.into()),
                finished: false,
                rows: 120
            }
        );
        let end = m(&[
            (meta::BACKFILL_SEGMENT_ROWS, "121"),
            (meta::BACKFILL_SEGMENT_END, "true"),
        ]);
        assert!(state_from_metadata(5, &end).unwrap().finished);
        let broken = m(&[(meta::BACKFILL_SEGMENT_ROWS, "1")]);
        assert!(state_from_metadata(0, &broken).is_err());
        assert!(state_from_metadata(0, &m(&[])).is_err());
    }
}
