//! Archive keys. Stream files are named from their shard and sequence range, so the same records
//! always get the same name:
//!
//! ```text
//! <table>/dt=<YYYY-MM-DD>/<shard-id>_<first-sequence>_<last-sequence>.parquet
//! <table>/dt=<YYYY-MM-DD>/<shard-id>_end.parquet     (an empty file: the shard was read to its end)
//! ```
//!
//! The shard id comes first so one listing of `<table>/dt=<day>/<shard-id>_` finds a shard's
//! files of that day.

use crate::types::{SequenceNumber, ShardId, TableName};
use time::OffsetDateTime;

/// `YYYY-MM-DD` (UTC) of a millisecond timestamp: the `dt` partition of a record.
pub fn dt_of_millis(ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let d = t.date();
    format!("{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day())
}

pub fn stream_file_key(
    table: &TableName,
    dt: &str,
    shard: &ShardId,
    first: &SequenceNumber,
    last: &SequenceNumber,
) -> String {
    format!("{table}/dt={dt}/{shard}_{first}_{last}.parquet")
}

pub fn shard_end_key(table: &TableName, dt: &str, shard: &ShardId) -> String {
    format!("{table}/dt={dt}/{shard}_end.parquet")
}

/// What a file name in a `dt` folder says about the records it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileName {
    /// `<shard>_<first>_<last>.parquet`
    Records {
        shard: ShardId,
        first: SequenceNumber,
        last: SequenceNumber,
    },
    /// `<shard>_end.parquet`
    End { shard: ShardId },
}

/// Parses the last path segment of an archive key; `None` for names the archiver does not write.
pub fn parse_file_name(key: &str) -> Option<FileName> {
    let name = key.rsplit('/').next()?.strip_suffix(".parquet")?;
    if let Some(shard) = name.strip_suffix("_end") {
        return Some(FileName::End {
            shard: ShardId::new(shard),
        });
    }
    // Shard ids may hold '_' in principle; sequence numbers never do: split from the right.
    let mut parts = name.rsplitn(3, '_');
    let last = SequenceNumber::parse(parts.next()?).ok()?;
    let first = SequenceNumber::parse(parts.next()?).ok()?;
    let shard = ShardId::new(parts.next()?);
    Some(FileName::Records { shard, first, last })
}

/// The `YYYY-MM-DD` of a key's `dt=` folder.
pub fn dt_of_key(key: &str) -> Option<&str> {
    key.split("/dt=").nth(1)?.split('/').next()
}

/// The `n` days from `dt` onward (`YYYY-MM-DD`), for listing a shard's recent folders.
pub fn days_from(dt: &str, n: u32) -> Vec<String> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let Ok(start) = time::Date::parse(dt, fmt) else {
        return Vec::new();
    };
    (0..n)
        .filter_map(|i| start.checked_add(time::Duration::days(i64::from(i))))
        .filter_map(|d| d.format(fmt).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dt_is_the_utc_date() {
        assert_eq!(dt_of_millis(0), "1970-01-01");
        assert_eq!(dt_of_millis(1_763_769_599_999), "2025-11-21");
        assert_eq!(dt_of_millis(1_763_769_600_000), "2025-11-22");
    }

    #[test]
    fn names_parse_back() {
        let t = TableName::new("users");
        let s = ShardId::new("shardId-0001_odd");
        let a = SequenceNumber::parse("1").unwrap();
        let b = SequenceNumber::parse("99").unwrap();
        let key = stream_file_key(&t, "2026-11-21", &s, &a, &b);
        assert_eq!(
            parse_file_name(&key),
            Some(FileName::Records {
                shard: s.clone(),
                first: a,
                last: b
            })
        );
        assert_eq!(
            parse_file_name(&shard_end_key(&t, "2026-11-21", &s)),
            Some(FileName::End { shard: s })
        );
        assert_eq!(parse_file_name("users/dt=2026-11-21/.x.tmp"), None);
        assert_eq!(parse_file_name("users/dt=2026-11-21/notes.parquet"), None);
        assert_eq!(dt_of_key(&key), Some("2026-11-21"));
    }

    #[test]
    fn days_run_across_month_ends() {
        assert_eq!(
            days_from("2026-12-31", 3),
            vec!["2026-12-31", "2027-01-01", "2027-01-02"]
        );
        assert!(days_from("garbage", 3).is_empty());
    }

    #[test]
    fn names_are_deterministic() {
        let t = TableName::new("users");
        let s = ShardId::new("shardId-0001-ab");
        let a = SequenceNumber::parse("000000000000000000001").unwrap();
        let b = SequenceNumber::parse("000000000000000000099").unwrap();
        assert_eq!(
            stream_file_key(&t, "2026-11-21", &s, &a, &b),
            "users/dt=2026-11-21/shardId-0001-ab_000000000000000000001_000000000000000000099.parquet"
        );
        assert_eq!(
            shard_end_key(&t, "2026-11-21", &s),
            "users/dt=2026-11-21/shardId-0001-ab_end.parquet"
        );
    }
}
