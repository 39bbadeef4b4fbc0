//! Which instants the archive can answer for: the first instant from which `snapshot --as-of` and
//! `restore` give the table's true state (pure; the facts come from the spill of pass one).
//!
//! The rule for one key (see [`super::snapshot`]) is exact at an instant T when three things hold:
//!
//! 1. **Every change since the stream began is archived.** A stream's root shards (no parent)
//!    each have a chain that starts at `TRIM_HORIZON` with no recorded gap, and every other shard
//!    descends from an archived one. The stream began at the time in its label (the end of its
//!    ARN, `…/stream/2026-11-21T12:00:00.000`, which DynamoDB documents as the stream's creation
//!    time); a first record stamped earlier than that (clocks disagree; DynamoDB Local's time
//!    dilation in tests) moves the start back to that record, so that the start is on the
//!    records' own clock, which is the clock `--as-of` is compared with. When the chains do not
//!    start that way (`LATEST`, a retention gap, a parent never archived), coverage begins where
//!    the last of them begins: its first archived record. Several streams (a stream disabled and
//!    enabled again) leave a hole between them: only the newest counts.
//! 2. **Items that never changed since are known**: a complete snapshot (a finished backfill scan,
//!    or a converted full export) taken at or after the stream began. Without one the archive
//!    cannot know the items written before the stream and never changed since, whatever T.
//! 3. **T is at or after the stream began.** Before it, a change the stream never saw may lie
//!    between T and the first archived change of a key.
//!
//! So the first instant is the start of the newest stream, provided a complete snapshot was taken
//! after it. Recorded gaps (records trimmed before they were read) are not refused here: they are
//! listed so that the caller can warn, since the items of the lost changes may be wrong at any T.

use std::collections::{BTreeMap, BTreeSet};

/// A shard's first archived file: where its chain begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainStart {
    pub stream_arn: String,
    pub shard: String,
    /// `parent_shard_id` (empty for a root shard).
    pub parent: String,
    /// `start_position`: `TRIM_HORIZON`, `LATEST` or `AFTER_SEQUENCE_NUMBER:<n>`.
    pub start_position: String,
    /// The file records a gap (a retention gap: reading began after the stream trimmed records).
    pub gap: bool,
    /// The earliest `event_time` of the file's rows.
    pub first_time_ms: Option<i64>,
}

/// What one file told about the archive's coverage.
#[derive(Debug, Default)]
pub struct FileFacts {
    pub chain_start: Option<ChainStart>,
    /// `(stream ARN, shard)` of a stream file.
    pub stream: Option<(String, String)>,
    /// The file's key, when it records a gap.
    pub gap: Option<String>,
    pub earliest_ms: Option<i64>,
    pub newest_change_ms: Option<i64>,
    /// `snapshot-<scan id>` or `export-<export id>` → the earliest time of its SNAPSHOT rows.
    pub snapshot_sources: BTreeMap<String, i64>,
    /// The key attributes and their types, e.g. `id:N` or `pk:S,sk:N`.
    pub key_shape: Option<String>,
}

/// A stream seen in the archive.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StreamSeen {
    pub shards: BTreeSet<String>,
    pub earliest_ms: Option<i64>,
}

/// What the whole archive of a table says about itself, gathered file by file.
#[derive(Debug, Default, Clone)]
pub struct ArchiveFacts {
    pub files: usize,
    pub chain_starts: Vec<ChainStart>,
    pub by_stream: BTreeMap<String, StreamSeen>,
    /// Files that record a gap.
    pub gaps: Vec<String>,
    pub snapshot_sources: BTreeMap<String, i64>,
    pub key_shapes: BTreeSet<String>,
    pub newest_change_ms: Option<i64>,
}

impl ArchiveFacts {
    pub fn add_file(&mut self, f: FileFacts) {
        if let Some((arn, shard)) = f.stream {
            let s = self.by_stream.entry(arn).or_default();
            s.shards.insert(shard);
            s.earliest_ms = min_opt(s.earliest_ms, f.earliest_ms);
        }
        self.chain_starts.extend(f.chain_start);
        self.gaps.extend(f.gap);
        for (source, t) in f.snapshot_sources {
            let e = self.snapshot_sources.entry(source).or_insert(t);
            *e = (*e).min(t);
        }
        self.key_shapes.extend(f.key_shape);
        self.newest_change_ms = match (self.newest_change_ms, f.newest_change_ms) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A complete snapshot in the archive: `snapshot-<scan id>` (a finished backfill scan, timed by
/// its start) or `export-<export id>` (a converted full export, timed by its export time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Baseline {
    pub source: String,
    pub time_ms: i64,
}

/// From when the archive answers, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    pub from_ms: i64,
    pub stream_arn: String,
    pub baseline: String,
}

/// Why the archive answers for no instant at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uncovered {
    /// No stream records: nothing says what changed after a snapshot.
    NoStream,
    /// No complete snapshot taken at or after the stream began.
    NoBaseline { stream_start_ms: i64 },
}

/// The creation time in a stream ARN's label (`…/stream/2026-11-21T12:00:00.000`, UTC).
pub fn stream_label_ms(arn: &str) -> Option<i64> {
    let label = arn.rsplit_once("/stream/")?.1;
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]"
    );
    let t = time::PrimitiveDateTime::parse(label, fmt)
        .ok()?
        .assume_utc();
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// When one stream's archived chains begin to cover every change.
fn stream_start(arn: &str, seen: &StreamSeen, starts: &[&ChainStart]) -> Option<i64> {
    // Chains whose parent is not archived: where coverage of their part of the keys begins.
    let roots: Vec<&&ChainStart> = starts
        .iter()
        .filter(|c| c.parent.is_empty() || !seen.shards.contains(&c.parent))
        .collect();
    if roots.is_empty() {
        // Files, but no shard's first file: the archive does not show where reading began.
        return seen.earliest_ms;
    }
    let clean = roots
        .iter()
        .all(|c| c.parent.is_empty() && c.start_position == "TRIM_HORIZON" && !c.gap);
    let first = roots.iter().filter_map(|c| c.first_time_ms).min();
    if clean {
        match (stream_label_ms(arn), first) {
            (Some(label), Some(first)) => Some(label.min(first)),
            (label, first) => label.or(first),
        }
    } else {
        roots.iter().filter_map(|c| c.first_time_ms).max()
    }
}

/// The first instant the archive answers for (module docs), given its complete snapshots.
pub fn coverage(facts: &ArchiveFacts, baselines: &[Baseline]) -> Result<Coverage, Uncovered> {
    let newest = facts
        .by_stream
        .iter()
        .filter_map(|(arn, seen)| {
            let starts: Vec<&ChainStart> = facts
                .chain_starts
                .iter()
                .filter(|c| &c.stream_arn == arn)
                .collect();
            stream_start(arn, seen, &starts).map(|t| (t, arn))
        })
        .max();
    let Some((start, arn)) = newest else {
        return Err(Uncovered::NoStream);
    };
    let baseline = baselines
        .iter()
        .filter(|b| b.time_ms >= start)
        .min_by_key(|b| b.time_ms)
        .ok_or(Uncovered::NoBaseline {
            stream_start_ms: start,
        })?;
    Ok(Coverage {
        from_ms: start,
        stream_arn: arn.clone(),
        baseline: baseline.source.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:dynamodb:us-east-1:1:table/users/stream/2026-11-21T12:00:00.000";
    const ARN2: &str = "arn:aws:dynamodb:us-east-1:1:table/users/stream/2026-12-01T00:00:00.000";
    const LABEL: i64 = 1_795_262_400_000; // 2026-11-21T12:00:00Z
    const LABEL2: i64 = 1_796_083_200_000; // 2026-12-01T00:00:00Z

    fn chain(arn: &str, shard: &str, parent: &str, start: &str, gap: bool, t: i64) -> ChainStart {
        ChainStart {
            stream_arn: arn.into(),
            shard: shard.into(),
            parent: parent.into(),
            start_position: start.into(),
            gap,
            first_time_ms: Some(t),
        }
    }

    fn facts(chains: Vec<ChainStart>) -> ArchiveFacts {
        let mut f = ArchiveFacts::default();
        for c in chains {
            let t = c.first_time_ms;
            f.add_file(FileFacts {
                stream: Some((c.stream_arn.clone(), c.shard.clone())),
                earliest_ms: t,
                chain_start: Some(c),
                ..FileFacts::default()
            });
        }
        f
    }

    fn scan(t: i64) -> Baseline {
        Baseline {
            source: format!("snapshot-{t}"),
            time_ms: t,
        }
    }

    #[test]
    fn labels_parse() {
        assert_eq!(stream_label_ms(ARN), Some(LABEL));
        assert_eq!(
            stream_label_ms("arn:aws:dynamodb:ddblocal:0:table/t/stream/2026-12-03T12:17:16.655"),
            Some(1_796_300_236_655)
        );
        assert_eq!(stream_label_ms("arn:aws:dynamodb:x:0:table/t"), None);
        assert_eq!(stream_label_ms("x/stream/yesterday"), None);
    }

    #[test]
    fn the_first_instant() {
        let h = 3_600_000;
        let clean = || chain(ARN, "s1", "", "TRIM_HORIZON", false, LABEL + h);
        // (what, chains, baselines, expected)
        type Case = (
            &'static str,
            Vec<ChainStart>,
            Vec<Baseline>,
            Result<i64, Uncovered>,
        );
        let cases: Vec<Case> = vec![
            (
                "clean chain and a later scan: from the stream's creation",
                vec![
                    clean(),
                    chain(ARN, "s2", "s1", "TRIM_HORIZON", false, LABEL + 5 * h),
                ],
                vec![scan(LABEL + 60_000)],
                Ok(LABEL),
            ),
            (
                "a record stamped before the label moves the start back",
                vec![chain(ARN, "s1", "", "TRIM_HORIZON", false, LABEL - 120_000)],
                vec![scan(LABEL)],
                Ok(LABEL - 120_000),
            ),
            (
                "a scan from before the stream is no baseline",
                vec![clean()],
                vec![scan(LABEL - 1)],
                Err(Uncovered::NoBaseline {
                    stream_start_ms: LABEL,
                }),
            ),
            (
                "no snapshot at all",
                vec![clean()],
                vec![],
                Err(Uncovered::NoBaseline {
                    stream_start_ms: LABEL,
                }),
            ),
            (
                "a LATEST start: from the last chain's first record",
                vec![
                    chain(ARN, "s1", "", "LATEST", false, LABEL + h),
                    chain(ARN, "s3", "", "TRIM_HORIZON", false, LABEL + 2 * h),
                ],
                vec![scan(LABEL + 3 * h)],
                Ok(LABEL + 2 * h),
            ),
            (
                "a retention gap at the start: from its first record",
                vec![chain(ARN, "s1", "", "TRIM_HORIZON", true, LABEL + 30 * h)],
                vec![scan(LABEL + 40 * h)],
                Ok(LABEL + 30 * h),
            ),
            (
                "a parent never archived: from the child's first record",
                vec![chain(
                    ARN,
                    "s2",
                    "s1",
                    "TRIM_HORIZON",
                    false,
                    LABEL + 30 * h,
                )],
                vec![scan(LABEL + 31 * h)],
                Ok(LABEL + 30 * h),
            ),
            (
                "two streams: only the newest counts",
                vec![
                    clean(),
                    chain(ARN2, "t1", "", "TRIM_HORIZON", false, LABEL2 + h),
                ],
                vec![scan(LABEL + h), scan(LABEL2 + 2 * h)],
                Ok(LABEL2),
            ),
            (
                "two streams, a snapshot only between them",
                vec![
                    clean(),
                    chain(ARN2, "t1", "", "TRIM_HORIZON", false, LABEL2 + h),
                ],
                vec![scan(LABEL + h)],
                Err(Uncovered::NoBaseline {
                    stream_start_ms: LABEL2,
                }),
            ),
            (
                "no stream files",
                vec![],
                vec![scan(LABEL)],
                Err(Uncovered::NoStream),
            ),
        ];
        for (what, chains, baselines, want) in cases {
            let got = coverage(&facts(chains), &baselines).map(|c| c.from_ms);
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn facts_accumulate() {
        let mut f = ArchiveFacts::default();
        f.add_file(FileFacts {
            snapshot_sources: BTreeMap::from([("snapshot-a".into(), 5)]),
            newest_change_ms: Some(10),
            key_shape: Some("id:N".into()),
            gap: Some("k1".into()),
            ..FileFacts::default()
        });
        f.add_file(FileFacts {
            snapshot_sources: BTreeMap::from([("snapshot-a".into(), 3)]),
            newest_change_ms: Some(7),
            key_shape: Some("id:S".into()),
            ..FileFacts::default()
        });
        assert_eq!(f.snapshot_sources["snapshot-a"], 3);
        assert_eq!(f.newest_change_ms, Some(10));
        assert_eq!(f.key_shapes.len(), 2);
        assert_eq!(f.gaps, vec!["k1".to_owned()]);
    }
}
