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
