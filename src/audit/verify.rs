//! The checks of `verify`, as a pure function of the files' facts (see `facts`): what the archive
//! proves about itself, and where it does not hold.
//!
//! Per file: readable; written for this archive layout; row count as its footer says; a stream
//! file's rows are its shard's, in rising sequence order, from the first sequence number its name
//! states to the last its footer states, on the day of its `dt` folder; the bytes hash to what S3
//! recorded at write time.
//! Per shard: the files form one hash chain (each names the SHA-256 of the one before) from a
//! `start_position` to the newest file or the end marker, with sequence ranges that follow on
//! without overlap. Lineage: a child's parent is in the archive and was read to its end (or the
//! archive began after it). Per table: no event id twice. Recorded trims are known gaps.

use super::facts::FileFacts;
use crate::archive::layout::{dt_of_key, ArchiveKey, LAYOUT_VERSION};
use crate::encode::parquet::meta;
use crate::types::SequenceNumber;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub check: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KnownGap {
    pub file: String,
    pub message: String,
    /// Records the archiver knows it lost (written into the chain): these fail `verify` unless
    /// accepted. A parent older than the archive is not a loss of the archiver's.
    pub lost: bool,
}

/// A stream record archived verbatim because it could not become a row: listed, not a problem
/// (nothing is lost; docs/OPERATIONS.md says how to re-process it).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct QuarantinedRecord {
    pub file: String,
    pub sequence_number: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    pub table: String,
    pub files: u64,
    pub rows: u64,
    pub shards: u64,
    pub ended_shards: u64,
    pub snapshot_scans: u64,
    pub problems: Vec<Problem>,
    pub known_gaps: Vec<KnownGap>,
    pub quarantined: Vec<QuarantinedRecord>,
}

impl Report {
    /// Gaps the archiver recorded (records lost).
    pub fn lost(&self) -> usize {
        self.known_gaps.iter().filter(|g| g.lost).count()
    }

    fn problem(&mut self, file: &str, check: &'static str, message: impl Into<String>) {
        self.problems.push(Problem {
            file: file.to_owned(),
            check,
            message: message.into(),
        });
    }
}

/// A shard's files: its record files in sequence order, and its end marker.
#[derive(Default)]
struct Shard<'a> {
    records: Vec<(&'a FileFacts, SequenceNumber, SequenceNumber)>,
    end: Option<&'a FileFacts>,
}

/// Creation time (ms) in a shard id `shardId-<20 digits>-<hex>`; an observed convention.
fn created_ms(shard: &str) -> Option<u128> {
    shard.split('-').nth(1)?.parse().ok()
}

/// Checks one table's files. `since`: files in `dt` folders before it were left out, so a chain
/// may begin with a file whose predecessor is not in the set.
pub fn verify_table(table: &str, files: &[FileFacts], since: Option<&str>) -> Report {
    let mut r = Report {
        table: table.to_owned(),
        files: files.len() as u64,
        ..Report::default()
    };
    let mut shards: BTreeMap<String, Shard> = BTreeMap::new();
    let mut scans: BTreeMap<(String, u32), BTreeMap<u32, &FileFacts>> = BTreeMap::new();
    // (event id digest, file index): sorted once, duplicates are neighbours. A flat vector costs
    // 24 bytes per row; a hash map of the same cost about three times that.
    let mut ids: Vec<(u128, u32)> = Vec::new();
    for (index, f) in files.iter().enumerate() {
        if let Some(rec) = f.recorded_sha256 {
            if rec != f.sha256 {
                r.problem(&f.key, "hash", format!("its bytes hash to {}, but {} was recorded when it was written: the file was altered", f.sha_hex(), hex::encode(rec)));
            }
        }
        let rows = match &f.rows {
            Ok(rows) => rows,
            Err(e) => {
                r.problem(&f.key, "readable", e.clone());
                continue;
            }
        };
        r.rows += rows.count;
        r.quarantined.extend(
            rows.quarantined
                .iter()
                .map(|(seq, reason)| QuarantinedRecord {
                    file: f.key.clone(),
                    sequence_number: seq.clone(),
                    reason: reason.clone(),
                }),
        );
        match f.meta(meta::RECORD_COUNT).map(str::parse::<u64>) {
            Some(Ok(n)) if n == rows.count => {}
            Some(Ok(n)) => r.problem(
                &f.key,
                "row count",
                format!(
                    "holds {} rows, its metadata says {n}: rows were removed or added",
                    rows.count
                ),
            ),
            _ => r.problem(&f.key, "row count", "no valid record_count in its metadata"),
        }
        if f.meta(meta::TABLE) != Some(table) {
            r.problem(
                &f.key,
                "table",
                format!("its metadata names table {:?}", f.meta(meta::TABLE)),
            );
        }
        ids.extend(rows.event_ids.iter().map(|id| (*id, index as u32)));
        if let Some(gap) = f.meta(meta::GAP_AFTER_SEQUENCE) {
            let why = match f.meta(meta::GAP_REASON) {
                Some("expired") => {
                    "the shard expired from the stream before it was read to its end"
                }
                Some("retention") => {
                    "the shard's oldest records were trimmed from the stream before its first read"
                }
                _ => "records trimmed from the stream before they were read",
            };
            let from = if gap == "none" {
                "from the shard's start".to_owned()
            } else {
                format!("after sequence number {gap}")
            };
            r.known_gaps.push(KnownGap {
                file: f.key.clone(),
                message: format!("RECORDS LOST {from}: {why}"),
                lost: true,
            });
        }
        if f.meta(meta::TABLE).is_some() && f.meta(meta::LAYOUT_VERSION) != Some(LAYOUT_VERSION) {
            r.problem(
                &f.key,
                "layout",
                format!(
                    "written for archive layout {} (dynamo-archiver {}), which this version does not read; verify it with that version, or archive again into a new location",
                    f.meta(meta::LAYOUT_VERSION).unwrap_or("1"),
                    f.meta(meta::ARCHIVER_VERSION).unwrap_or("0.1")
                ),
            );
            continue;
        }
        match &f.kind {
            ArchiveKey::Stream { shard, first } => {
                let stated = |key: &str| f.meta(key).and_then(|v| SequenceNumber::parse(v).ok());
                let Some(last) = stated(meta::LAST_SEQUENCE) else {
                    r.problem(
                        &f.key,
                        "name",
                        "no valid last_sequence_number in its metadata",
                    );
                    continue;
                };
                if stated(meta::FIRST_SEQUENCE).as_ref() != Some(first) {
                    r.problem(
                        &f.key,
                        "name",
                        "its metadata's first sequence number differs from its name's",
                    );
                }
                if rows.first_sequence.as_ref() != Some(first)
                    || rows.last_sequence.as_ref() != Some(&last)
                {
                    r.problem(
                        &f.key,
                        "name",
                        format!(
                            "its rows run from {:?} to {:?}, not from the first sequence number its name states to the last its metadata states",
                            rows.first_sequence.as_ref().map(|s| s.as_str()),
                            rows.last_sequence.as_ref().map(|s| s.as_str())
                        ),
                    );
                }
                if !rows.ordered {
                    r.problem(&f.key, "order", "its rows are not in rising sequence order");
                }
                if rows.foreign_shards > 0 || f.meta(meta::SHARD_ID) != Some(shard.as_str()) {
                    r.problem(&f.key, "shard", "holds rows or metadata of another shard");
                }
                if rows.outside_dt > 0 {
                    r.problem(
                        &f.key,
                        "dt",
                        format!(
                            "{} rows have an event_time outside its dt folder",
                            rows.outside_dt
                        ),
                    );
                }
                shards
                    .entry(shard.as_str().to_owned())
                    .or_default()
                    .records
                    .push((f, first.clone(), last));
            }
            ArchiveKey::End { shard } => {
                if rows.count != 0 || f.meta(meta::SHARD_END) != Some("true") {
                    r.problem(
                        &f.key,
                        "end marker",
                        "an end marker must be empty and say shard_end=true",
                    );
                }
                if f.meta(meta::SHARD_ID) != Some(shard.as_str()) {
                    r.problem(&f.key, "shard", "its metadata names another shard");
                }
                shards.entry(shard.as_str().to_owned()).or_default().end = Some(f);
            }
            ArchiveKey::Snapshot {
                scan,
                segment,
                number,
            } => {
                scans
                    .entry((scan.clone(), *segment))
                    .or_default()
                    .insert(*number, f);
            }
            ArchiveKey::Export => {}
            ArchiveKey::Foreign => r.problem(
                &f.key,
                "name",
                "not a file dynamo-archiver writes (moved, renamed or foreign)",
            ),
        }
    }
    check_duplicates(&mut r, files, ids);
    r.shards = shards.len() as u64;
    r.ended_shards = shards.values().filter(|s| s.end.is_some()).count() as u64;
    r.snapshot_scans = scans
        .keys()
        .map(|(scan, _)| scan)
        .collect::<std::collections::BTreeSet<_>>()
        .len() as u64;
    check_chains(&mut r, &mut shards, since);
    check_lineage(&mut r, &shards);
    check_snapshots(&mut r, &scans);
    r
}

fn check_duplicates(r: &mut Report, files: &[FileFacts], mut ids: Vec<(u128, u32)>) {
    ids.sort_unstable();
    let mut reported = std::collections::BTreeSet::new();
    for w in ids.windows(2) {
        if w[0].0 == w[1].0 && reported.insert((w[0].1, w[1].1)) {
            let (a, b) = (&files[w[0].1 as usize].key, &files[w[1].1 as usize].key);
            if a == b {
                r.problem(b, "duplicates", "holds one event id twice");
            } else {
                r.problem(
                    b,
                    "duplicates",
                    format!("holds an event id that {a} holds too"),
                );
            }
        }
    }
}

fn check_chains(r: &mut Report, shards: &mut BTreeMap<String, Shard>, since: Option<&str>) {
    for (shard, s) in shards.iter_mut() {
        s.records.sort_by(|a, b| a.1.cmp(&b.1));
        let mut previous: Option<&FileFacts> = None;
        let mut last_seq: Option<&SequenceNumber> = None;
        for (f, first, last) in &s.records {
            if let Some(prev_last) = last_seq {
                if first <= prev_last {
                    r.problem(
                        &f.key,
                        "overlap",
                        format!(
                            "its range overlaps the previous file of shard {shard} ({})",
                            previous.map_or("", |p| &p.key)
                        ),
                    );
                }
            }
            link(r, f, previous, since);
            previous = Some(f);
            last_seq = Some(last);
        }
        if let Some(end) = s.end {
            link(r, end, previous, since);
        }
    }
}

/// Checks that `f` names `previous`'s hash (or starts a chain when there is none).
fn link(r: &mut Report, f: &FileFacts, previous: Option<&FileFacts>, since: Option<&str>) {
    let named_file = f.meta(meta::PREVIOUS_FILE);
    match (previous, f.previous_sha256()) {
        (Some(p), Some(named)) if named == p.sha_hex() && named_file.is_none_or(|n| n == p.key) => {}
        (Some(p), Some(named)) if named_file.is_some_and(|n| n != p.key) => r.problem(&f.key, "chain", format!("names previous file {} (SHA-256 {named}), which is not in the archive; the file before it is {}: a file is missing", named_file.unwrap_or_default(), p.key)),
        (Some(p), Some(named)) => r.problem(&f.key, "chain", format!("names previous file hash {named}, but the file before it, {}, hashes to {}: that file was altered or replaced", p.key, p.sha_hex())),
        (Some(p), None) => r.problem(&f.key, "chain", format!("starts a new chain although {} comes before it", p.key)),
        (None, None) if f.meta(meta::START_POSITION).is_some() || f.meta(meta::SHARD_END).is_some() => {}
        (None, None) => r.problem(&f.key, "chain", "names neither a previous file nor a start position"),
        (None, Some(_)) => {
            // Left out by `--since`: the named predecessor lies in a `dt` folder before it.
            let cut_by_since = since.is_some_and(|s| {
                named_file.and_then(dt_of_key).is_some_and(|dt| dt < s)
            });
            if !cut_by_since {
                r.problem(&f.key, "chain", format!("names previous file {}, which is not in the archive: a file is missing", named_file.unwrap_or("(unnamed)")));
            }
        }
    }
}

fn check_lineage(r: &mut Report, shards: &BTreeMap<String, Shard>) {
    // The archive of a stream begins with its oldest archived shard; a parent older than that
    // was trimmed before the archiver first read the stream.
    let mut oldest: HashMap<&str, u128> = HashMap::new();
    for (shard, s) in shards {
        let Some(first) = s.records.first().map(|x| x.0).or(s.end) else {
            continue;
        };
        if let (Some(stream), Some(t)) = (first.meta(meta::STREAM_ARN), created_ms(shard)) {
            let e = oldest.entry(stream).or_insert(t);
            *e = (*e).min(t);
        }
    }
    for (shard, s) in shards {
        let Some(first) = s.records.first().map(|x| x.0).or(s.end) else {
            continue;
        };
        let parents = first.meta(meta::PARENT_SHARD_ID).unwrap_or("");
        for parent in parents.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match shards.get(parent) {
                Some(p) if p.end.is_some() => {}
                Some(_) => r.problem(&first.key, "lineage", format!("its parent {parent} was not read to its end (no end marker) before shard {shard} began")),
                None => {
                    let before_archive = first
                        .meta(meta::STREAM_ARN)
                        .and_then(|stream| oldest.get(stream))
                        .zip(created_ms(parent))
                        .is_some_and(|(oldest, p)| p < *oldest);
                    if before_archive {
                        r.known_gaps.push(KnownGap {
                            file: first.key.clone(),
                            message: format!("parent {parent} of shard {shard} is older than the archive of its stream (the archive begins after it)"),
                            lost: false,
                        });
                    } else {
                        r.problem(&first.key, "lineage", format!("its parent {parent} is not in the archive"));
                    }
                }
            }
        }
    }
}

fn check_snapshots(r: &mut Report, scans: &BTreeMap<(String, u32), BTreeMap<u32, &FileFacts>>) {
    for ((scan, segment), files) in scans {
        let mut previous: Option<&FileFacts> = None;
        for (expected, (number, f)) in files.iter().enumerate() {
            if *number as usize != expected {
                r.problem(
                    &f.key,
                    "chain",
                    format!("file {expected} of scan {scan} segment {segment} is missing"),
                );
            }
            match (previous, f.previous_sha256()) {
                (None, None) => {}
                (Some(p), Some(named)) if named == p.sha_hex() => {}
                _ => r.problem(&f.key, "chain", format!("does not name the hash of the previous file of scan {scan} segment {segment}")),
            }
            previous = Some(f);
        }
    }
}

/// The human report.
pub fn render_text(reports: &[Report]) -> String {
    let mut out = String::new();
    for r in reports {
        out.push_str(&format!(
            "table {}: {} files, {} rows, {} shards ({} read to their end), {} snapshot scans\n",
            r.table, r.files, r.rows, r.shards, r.ended_shards, r.snapshot_scans
        ));
        for g in &r.known_gaps {
            out.push_str(&format!("  known gap  {}: {}\n", g.file, g.message));
        }
        for q in &r.quarantined {
            out.push_str(&format!(
                "  quarantined {} sequence number {}: {}\n",
                q.file, q.sequence_number, q.reason
            ));
        }
        for p in &r.problems {
            out.push_str(&format!(
                "  PROBLEM    {} [{}]: {}\n",
                p.file, p.check, p.message
            ));
        }
        if r.problems.is_empty() {
            out.push_str("  intact: every check passed\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::layout::parse_key;
    use crate::audit::facts::RowFacts;

    const STREAM: &str = "arn:aws:dynamodb:r:1:table/t/stream/L";

    /// A stream file of `shard` holding `first..=last`, chained to `prev` (or starting a chain).
    fn file(
        shard: &str,
        first: u64,
        last: u64,
        prev: Option<&FileFacts>,
        parent: &str,
    ) -> FileFacts {
        let key = format!("t/dt=2026-11-22/{shard}_{first:021}.parquet");
        let mut metadata: BTreeMap<String, String> = [
            (meta::TABLE, "t".to_owned()),
            (meta::STREAM_ARN, STREAM.to_owned()),
            (meta::SHARD_ID, shard.to_owned()),
            (meta::PARENT_SHARD_ID, parent.to_owned()),
            (meta::RECORD_COUNT, "2".to_owned()),
            (meta::FIRST_SEQUENCE, format!("{first:021}")),
            (meta::LAST_SEQUENCE, format!("{last:021}")),
            (meta::LAYOUT_VERSION, LAYOUT_VERSION.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        chain(&mut metadata, prev);
        let seq = |n: u64| SequenceNumber::parse(&n.to_string()).unwrap();
        FileFacts {
            kind: parse_key(&key),
            dt: Some("2026-11-22".into()),
            sha256: sha2::Digest::finalize(sha2::Digest::chain_update(
                <sha2::Sha256 as sha2::Digest>::new(),
                key.as_bytes(),
            ))
            .into(),
            key,
            recorded_sha256: None,
            metadata,
            rows: Ok(RowFacts {
                count: 2,
                first_sequence: Some(seq(first)),
                last_sequence: Some(seq(last)),
                ordered: true,
                event_ids: vec![u128::from(first) << 64 | 1, u128::from(last) << 64 | 2],
                ..RowFacts::default()
            }),
        }
    }

    fn chain(metadata: &mut BTreeMap<String, String>, prev: Option<&FileFacts>) {
        match prev {
            Some(p) => {
                metadata.insert(meta::PREVIOUS_SHA256.into(), p.sha_hex());
                metadata.insert(meta::PREVIOUS_FILE.into(), p.key.clone());
            }
            None => {
                metadata.insert(meta::START_POSITION.into(), "TRIM_HORIZON".into());
            }
        }
    }

    fn end(shard: &str, prev: &FileFacts) -> FileFacts {
        let key = format!("t/_ends/{shard}.parquet");
        let mut f = file(shard, 0, 0, None, "");
        f.metadata.remove(meta::START_POSITION);
        chain(&mut f.metadata, Some(prev));
        f.metadata.insert(meta::SHARD_END.into(), "true".into());
        f.metadata.insert(meta::RECORD_COUNT.into(), "0".into());
        f.kind = parse_key(&key);
        f.key = key;
        f.dt = None;
        f.rows = Ok(RowFacts {
            ordered: true,
            ..RowFacts::default()
        });
        f
    }

    /// The checks that failed, as (file name, check) pairs.
    fn failures(files: &[FileFacts]) -> Vec<(String, &'static str)> {
        verify_table("t", files, None)
            .problems
            .into_iter()
            .map(|p| (p.file.rsplit('/').next().unwrap().to_owned(), p.check))
            .collect()
    }

    const A: &str = "shardId-00000001700000000000-aaaa";
    const B: &str = "shardId-00000001700000900000-bbbb";

    #[test]
    fn scenarios() {
        let a1 = file(A, 10, 20, None, "");
        let a2 = file(A, 30, 40, Some(&a1), "");
        let a3 = file(A, 50, 60, Some(&a2), "");
        let a_end = end(A, &a3);
        let b1 = file(B, 70, 80, None, A);
        let name = |f: &FileFacts| f.key.rsplit('/').next().unwrap().to_owned();

        // An intact parent read to its end, then its child.
        let intact = vec![
            a1.clone(),
            a2.clone(),
            a3.clone(),
            a_end.clone(),
            b1.clone(),
        ];
        assert_eq!(failures(&intact), vec![]);

        // A middle file deleted: its successor names it.
        let r = verify_table(
            "t",
            &[a1.clone(), a3.clone(), a_end.clone(), b1.clone()],
            None,
        );
        assert_eq!(r.problems.len(), 1);
        assert!(
            r.problems[0].message.contains(&name(&a2)),
            "{:?}",
            r.problems
        );

        // A file altered: the next one's link breaks.
        let mut altered = a2.clone();
        altered.sha256[0] ^= 1;
        assert_eq!(
            failures(&[a1.clone(), altered, a3.clone(), a_end.clone(), b1.clone()]),
            vec![(name(&a3), "chain")]
        );

        // Overlapping ranges.
        let overlap = file(A, 35, 45, Some(&a2), "");
        assert!(failures(&[a1.clone(), a2.clone(), overlap])
            .contains(&(name(&file(A, 35, 45, None, "")), "overlap")));

        // A child whose parent was not read to its end.
        assert_eq!(
            failures(&[a1.clone(), a2.clone(), b1.clone()]),
            vec![(name(&b1), "lineage")]
        );

        // A parent older than the archive is a known gap; a newer missing parent is a problem.
        let r = verify_table("t", std::slice::from_ref(&b1), None);
        assert!(r.problems.is_empty() && r.known_gaps.len() == 1, "{r:?}");
        let c1 = file("shardId-00000001700000000001-cccc", 1, 2, None, B);
        let r = verify_table("t", &[a1.clone(), c1], None);
        assert_eq!(r.problems.len(), 1, "{r:?}");

        // A row count that differs from the footer; the same event id in two files.
        let mut short = a2.clone();
        short.metadata.insert(meta::RECORD_COUNT.into(), "3".into());
        assert!(failures(&[a1.clone(), short]).contains(&(name(&a2), "row count")));
        let mut twin = a2.clone();
        twin.rows.as_mut().unwrap().event_ids = a1.rows.as_ref().unwrap().event_ids.clone();
        assert!(failures(&[a1.clone(), twin]).contains(&(name(&a2), "duplicates")));

        // --since: a chain may begin inside the window, when its predecessor lies before it.
        let mut early = file(A, 10, 20, None, "");
        early.key = early.key.replace("dt=2026-11-22", "dt=2026-11-21");
        let late = file(A, 30, 40, Some(&early), "");
        assert!(
            verify_table("t", std::slice::from_ref(&late), Some("2026-11-22"))
                .problems
                .is_empty()
        );
        assert!(!verify_table("t", &[late], None).problems.is_empty());
        // A predecessor inside the window is missing, not cut.
        assert!(!verify_table("t", &[a2, a3], Some("2026-11-22"))
            .problems
            .is_empty());
    }

    #[test]
    fn a_layout_1_file_is_named_not_misread() {
        // Layout 1 named files `<shard>_<first>_<last>.parquet` and wrote no layout_version.
        let mut old = file(A, 10, 20, None, "");
        old.metadata.remove(meta::LAYOUT_VERSION);
        old.key = format!("t/dt=2026-11-22/{A}_{:021}_{:021}.parquet", 10, 20);
        old.kind = parse_key(&old.key);
        let r = verify_table("t", &[old], None);
        assert_eq!(r.problems.len(), 1, "{r:?}");
        assert_eq!(r.problems[0].check, "layout");
        assert!(r.problems[0].message.contains("layout 1"), "{r:?}");
    }
}
