//! The archive's layout: every key the archiver writes or reads is built and parsed here, and
//! nowhere else (the worker's writers, `backfill`, `import-export`, `verify`, `history`,
//! `snapshot` and the Firehose overflow all go through this module).
//!
//! ```text
//! <table>/dt=<day>/<shard>_<first sequence>.parquet                  stream records (layout 2)
//! <table>/_ends/<shard>.parquet                                      a shard read to its end (0 rows)
//! <table>/dt=<scan day>/snapshot-<scan>-<segment>-<n>.parquet        backfill SNAPSHOT rows
//! <table>/_backfill/<scan>.started.json, <scan>.finished.json        backfill markers
//! <table>/dt=<day>/export-<export id>-<data file>.parquet            rows of a DynamoDB Export
//! <table>/_imports/<export id>/<data file>.done.json, finished.json  import-export markers
//! <table>/_restores/<run id>.started.json, .finished.json            restore records
//! ```
//!
//! Under `snapshot --out`: `<table>/as-of-<stamp>.parquet`, or with `--format dynamodb-json` the
//! folder `<table>/as-of-<stamp>-dynamodb-json/` (`data/part-<n>.json.gz` and two manifests).
//!
//! **Why a stream file is named by its first record only.** A shard's files are contiguous: the
//! next file begins with the record right after the previous file's last. The key of a file is
//! therefore a function of where it starts in the shard, never of where a writer chose to cut
//! it, so any two writers of the same position (a worker that lost its lease, the one that took
//! it, a restarted one) compute the same key whatever their clocks, and the create-only publish
//! lets exactly one of them land. The last sequence number, the row count and the hash-chain
//! links live in the footer metadata. The argument is written out in `src/leases/design.md`,
//! "Exactly once by construction".
//!
//! `dt` is the UTC day of the file's first record (a file never spans two days). End markers
//! hold no records and so belong to no day: they live in `_ends/`, where their key depends on
//! the shard alone. Folders whose names start with `_` are ignored by Athena and by the DuckDB
//! view (which reads `dt=*/*.parquet`).
//!
//! Layout 1 (before this version) named stream files `<shard>_<first>_<last>.parquet` and put end
//! markers in `dt` folders; its files carry no `layout_version` metadata, and `verify` names them.

use crate::types::{SequenceNumber, ShardId, TableName};
use time::OffsetDateTime;

/// The layout written into every file's `layout_version` metadata.
pub const LAYOUT_VERSION: &str = "2";

/// The folder of end markers below a table's folder.
const ENDS_DIR: &str = "_ends";

/// `YYYY-MM-DD` (UTC) of a millisecond timestamp: the `dt` partition of a record.
pub fn dt_of_millis(ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let d = t.date();
    format!("{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day())
}

/// The `YYYY-MM-DD` of a key's `dt=` folder.
pub fn dt_of_key(key: &str) -> Option<&str> {
    key.split("/dt=").nth(1)?.split('/').next()
}

/// The folder of one table: every key of the table starts with it.
pub fn table_dir(table: &str) -> String {
    format!("{table}/")
}

/// A stream file: the records of `shard` from `first` on, all of day `dt`.
pub fn stream_file_key(
    table: &TableName,
    dt: &str,
    shard: &ShardId,
    first: &SequenceNumber,
) -> String {
    format!("{table}/dt={dt}/{shard}_{first}.parquet")
}

/// The prefix of one shard's stream files in one `dt` folder.
pub fn shard_files_prefix(table: &TableName, dt: &str, shard: &ShardId) -> String {
    format!("{table}/dt={dt}/{shard}_")
}

/// The days from `from` to `to` (`YYYY-MM-DD`, both included), at most the last `max` of them;
/// empty when either is not a date.
pub fn days_between(from: &str, to: &str, max: i64) -> Vec<String> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let (Ok(from), Ok(to)) = (time::Date::parse(from, fmt), time::Date::parse(to, fmt)) else {
        return Vec::new();
    };
    let from = from.max(to - time::Duration::days(max.max(1) - 1));
    let mut out = Vec::new();
    let mut day = from;
    while day <= to {
        out.extend(day.format(fmt).ok());
        match day.next_day() {
            Some(next) => day = next,
            None => break,
        }
    }
    out
}

/// The end marker of a shard: written once the shard was read to its end (or expired).
pub fn end_marker_key(table: &TableName, shard: &ShardId) -> String {
    format!("{table}/{ENDS_DIR}/{shard}.parquet")
}

/// The folder of a table's backfill markers.
pub fn backfill_dir(table: &TableName) -> String {
    format!("{table}/_backfill/")
}

pub fn backfill_started_key(table: &TableName, scan_id: &str) -> String {
    format!("{table}/_backfill/{scan_id}.started.json")
}

pub fn backfill_finished_key(table: &TableName, scan_id: &str) -> String {
    format!("{table}/_backfill/{scan_id}.finished.json")
}

/// Prefix of every file of one scan (all in the scan's `dt` folder).
pub fn snapshot_files_prefix(table: &TableName, dt: &str, scan_id: &str) -> String {
    format!("{table}/dt={dt}/snapshot-{scan_id}-")
}

pub fn snapshot_file_key(
    table: &TableName,
    dt: &str,
    scan_id: &str,
    segment: u32,
    file: u32,
) -> String {
    format!("{table}/dt={dt}/snapshot-{scan_id}-{segment:06}-{file:06}.parquet")
}

/// The archive key of the file made from an export's data file (`stem`) for day `dt`.
pub fn export_file_key(table: &TableName, dt: &str, export_id: &str, stem: &str) -> String {
    format!("{table}/dt={dt}/export-{export_id}-{stem}.parquet")
}

/// A record too big for Firehose, written whole under `--overflow-archive` (not a Parquet file:
/// the pointer line in Firehose names it).
pub fn overflow_key(table: &TableName, dt: &str, shard: &ShardId, seq: &SequenceNumber) -> String {
    format!("{table}/dt={dt}/{shard}_{seq}.json")
}

/// The output of `snapshot --as-of` under `--out` (`stamp`: the instant, `YYYYMMDDTHHMMSSmmmZ`).
pub fn as_of_key(table: &str, stamp: &str) -> String {
    format!("{table}/as-of-{stamp}.parquet")
}

/// The folder of every export's import markers of a table.
pub fn imports_root(table: &TableName) -> String {
    format!("{table}/_imports/")
}

/// `snapshot --format dynamodb-json` under `--out`: the folder of one state, laid out as a
/// DynamoDB Export's `data/` folder is (what ImportTable reads), with manifests beside it.
pub fn as_of_export_dir(table: &str, stamp: &str) -> String {
    format!("{table}/as-of-{stamp}-dynamodb-json/")
}

/// One data file of [`as_of_export_dir`]: gzip JSON lines of `{"Item": …}`.
pub fn as_of_export_data_key(table: &str, stamp: &str, n: usize) -> String {
    format!("{}data/part-{n:05}.json.gz", as_of_export_dir(table, stamp))
}

/// The folder of a table's restore records (a restore changes the data the archive watches).
pub fn restores_dir(table: &TableName) -> String {
    format!("{table}/_restores/")
}

/// A restore's record, written before its first write (`started`) and when it ends (`finished`
/// or `stopped`).
pub fn restore_record_key(table: &TableName, run_id: &str, phase: &str) -> String {
    format!("{table}/_restores/{run_id}.{phase}.json")
}

/// The folder of one export's import markers.
pub fn imports_dir(table: &TableName, export_id: &str) -> String {
    format!("{table}/_imports/{export_id}/")
}

/// What a key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveKey {
    /// `<table>/dt=<day>/<shard>_<first>.parquet`
    Stream {
        shard: ShardId,
        first: SequenceNumber,
    },
    /// `<table>/_ends/<shard>.parquet`
    End { shard: ShardId },
    /// `<table>/dt=<day>/snapshot-<scan>-<segment>-<n>.parquet`
    Snapshot {
        scan: String,
        segment: u32,
        number: u32,
    },
    /// `<table>/dt=<day>/export-<export id>-<data file>.parquet`
    Export,
    /// Anything else (a JSON marker, a file the archiver does not write).
    Foreign,
}

impl ArchiveKey {
    /// Whether the key holds rows a query reads: a `.parquet` file in a `dt` folder.
    pub fn holds_rows(key: &str) -> bool {
        key.ends_with(".parquet") && dt_of_key(key).is_some()
    }
}

/// Parses an archive key (relative to the archive root).
pub fn parse_key(key: &str) -> ArchiveKey {
    let mut parts = key.rsplit('/');
    let (Some(name), Some(folder)) = (parts.next(), parts.next()) else {
        return ArchiveKey::Foreign;
    };
    let Some(stem) = name.strip_suffix(".parquet") else {
        return ArchiveKey::Foreign;
    };
    if folder == ENDS_DIR {
        return ArchiveKey::End {
            shard: ShardId::new(stem),
        };
    }
    if !folder.starts_with("dt=") {
        return ArchiveKey::Foreign;
    }
    if let Some((scan, segment, number)) = parse_snapshot_name(stem) {
        return ArchiveKey::Snapshot {
            scan,
            segment,
            number,
        };
    }
    if stem.starts_with("export-") {
        return ArchiveKey::Export;
    }
    // Shard ids hold no '_' (`shardId-<digits>-<hex>`); sequence numbers never do: split from the
    // right.
    match stem.rsplit_once('_') {
        Some((shard, first)) if !shard.is_empty() => match SequenceNumber::parse(first) {
            Ok(first) => ArchiveKey::Stream {
                shard: ShardId::new(shard),
                first,
            },
            Err(_) => ArchiveKey::Foreign,
        },
        _ => ArchiveKey::Foreign,
    }
}

/// `(scan id, segment, file number)` of a snapshot file's name without `.parquet`.
fn parse_snapshot_name(stem: &str) -> Option<(String, u32, u32)> {
    let rest = stem.strip_prefix("snapshot-")?;
    let mut parts = rest.rsplitn(3, '-');
    let (file, segment, scan) = (parts.next()?, parts.next()?, parts.next()?);
    Some((scan.to_owned(), segment.parse().ok()?, file.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(s: &str) -> SequenceNumber {
        SequenceNumber::parse(s).unwrap()
    }

    #[test]
    fn dt_is_the_utc_date() {
        assert_eq!(dt_of_millis(0), "1970-01-01");
        assert_eq!(dt_of_millis(1_763_769_599_999), "2025-11-21");
        assert_eq!(dt_of_millis(1_763_769_600_000), "2025-11-22");
    }

    #[test]
    fn keys_are_deterministic_and_parse_back() {
        let t = TableName::new("users");
        let s = ShardId::new("shardId-00000001700000000000-ab12");
        let key = stream_file_key(&t, "2026-11-21", &s, &seq("000000000000000000001"));
        assert_eq!(
            key,
            "users/dt=2026-11-21/shardId-00000001700000000000-ab12_000000000000000000001.parquet"
        );
        assert_eq!(
            parse_key(&key),
            ArchiveKey::Stream {
                shard: s.clone(),
                first: seq("1")
            }
        );
        assert_eq!(dt_of_key(&key), Some("2026-11-21"));
        let end = end_marker_key(&t, &s);
        assert_eq!(end, "users/_ends/shardId-00000001700000000000-ab12.parquet");
        assert_eq!(parse_key(&end), ArchiveKey::End { shard: s });
        assert!(ArchiveKey::holds_rows(&key));
        assert!(!ArchiveKey::holds_rows(&end));
    }

    #[test]
    fn days_run_across_month_ends_and_stop_at_the_bound() {
        assert_eq!(
            days_between("2026-12-31", "2027-01-02", 7),
            vec!["2026-12-31", "2027-01-01", "2027-01-02"]
        );
        assert_eq!(
            days_between("2026-01-01", "2026-03-01", 2),
            vec!["2026-02-28", "2026-03-01"]
        );
        assert_eq!(
            days_between("2026-01-02", "2026-01-01", 7),
            Vec::<String>::new()
        );
        assert!(days_between("garbage", "2026-01-01", 3).is_empty());
    }

    #[test]
    fn every_kind_is_told_apart() {
        let t = TableName::new("users");
        let cases = [
            (
                snapshot_file_key(&t, "2026-11-22", "20261122T101500Z", 3, 12),
                ArchiveKey::Snapshot {
                    scan: "20261122T101500Z".into(),
                    segment: 3,
                    number: 12,
                },
            ),
            (
                export_file_key(&t, "2026-11-22", "01763-ab", "x1"),
                ArchiveKey::Export,
            ),
            (
                backfill_started_key(&t, "20261122T101500Z"),
                ArchiveKey::Foreign,
            ),
            ("users/dt=2026-11-21/.x.tmp".into(), ArchiveKey::Foreign),
            (
                "users/dt=2026-11-21/notes.parquet".into(),
                ArchiveKey::Foreign,
            ),
            ("users/elsewhere/s_1.parquet".into(), ArchiveKey::Foreign),
            ("s_1.parquet".into(), ArchiveKey::Foreign),
        ];
        for (key, want) in cases {
            assert_eq!(parse_key(&key), want, "{key}");
        }
    }
}
