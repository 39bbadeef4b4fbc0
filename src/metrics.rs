//! The worker's counters and gauges, rendered as Prometheus text on `/metrics`.
//!
//! Updates happen per page or per file, not per record, so one mutex is cheap here; it is never
//! held across an `.await`.

use crate::types::{ShardId, TableName};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

type Labels = Vec<(String, String)>;

/// Every metric the worker exports, with its help text.
pub const DESCRIPTIONS: &[(&str, &str, &str)] = &[
    ("archiver_records_read_total", "counter", "Stream records read, per table."),
    ("archiver_get_records_pages_total", "counter", "GetRecords pages read, per table and decoder: `direct` (the body straight into rows) or `sdk` (a body the direct decoder declined, read by the SDK)."),
    ("archiver_records_written_total", "counter", "Records made durable, per table: in published archive files, or (Firehose output) acknowledged by Firehose."),
    ("archiver_files_written_total", "counter", "Archive files published, per table."),
    ("archiver_bytes_written_total", "counter", "Bytes of archive files published (Firehose output: bytes of records acknowledged), per table."),
    ("archiver_files_already_present_total", "counter", "Files whose name already existed in the archive (a repeated write after a restart), per table."),
    ("archiver_checkpoints_total", "counter", "Checkpoints written to the lease table, per table."),
    ("archiver_trimmed_gaps_total", "counter", "Ranges of records trimmed from the stream before they were archived (data loss to investigate), per table and shard."),
    ("archiver_expired_iterators_total", "counter", "Shard iterators that expired and were reopened, per table."),
    ("archiver_errors_total", "counter", "Errors by kind (each retried unless the worker stops)."),
    ("archiver_shards_finished_total", "counter", "Shards read to their end, per table."),
    ("archiver_shards_owned", "gauge", "Shards this worker is reading (leases held), per table."),
    ("archiver_leases_taken_total", "counter", "Leases acquired, per table and how (create, take)."),
    ("archiver_leases_steal_requests_total", "counter", "Leases asked of a busier worker to balance the load, per table."),
    ("archiver_leases_lost_total", "counter", "Leases found owned by another worker at renewal, per table."),
    ("archiver_lease_renewal_failures_total", "counter", "Lease renewals that failed (throttling, errors), per table."),
    ("archiver_iterator_age_seconds", "gauge", "Now minus the creation time of the newest record read, per shard (absent once a read finds the shard caught up)."),
    ("archiver_flush_seconds_sum", "counter", "Total seconds spent publishing and checkpointing files."),
    ("archiver_flush_seconds_count", "counter", "Number of flushes (files published and checkpointed)."),
    ("archiver_firehose_records_total", "counter", "Firehose records acknowledged (each packs many JSON lines), per table."),
    ("archiver_firehose_bytes_total", "counter", "Bytes of Firehose records acknowledged, per table."),
    ("archiver_firehose_billed_bytes_total", "counter", "Billed-size estimate of the Firehose records acknowledged (each rounded up to 5 KB), per table."),
    ("archiver_firehose_calls_total", "counter", "PutRecordBatch calls made (retries included), per table."),
    ("archiver_firehose_retries_total", "counter", "PutRecordBatch calls repeated for failed entries or a failed call, per table."),
    ("archiver_firehose_failed_entries_total", "counter", "Entries Firehose refused inside an accepted call (sent again), per table and error code."),
    ("archiver_firehose_overflow_objects_total", "counter", "Records too big for one Firehose record, written whole to --overflow-archive."),
];

#[derive(Default)]
struct State {
    counters: BTreeMap<(&'static str, Labels), f64>,
    gauges: BTreeMap<(&'static str, Labels), f64>,
    /// Newest record creation time (ms) per shard, to compute the iterator age at render time.
    newest_record_ms: BTreeMap<(String, String), i64>,
    /// Last successful GetRecords per shard owned: what `/healthz` checks.
    last_poll: BTreeMap<(String, String), Instant>,
}

#[derive(Default)]
pub struct Metrics {
    state: Mutex<State>,
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn key(table: &TableName, shard: &ShardId) -> (String, String) {
    (table.as_str().to_owned(), shard.as_str().to_owned())
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps inconsistent in a way that matters
        // for metrics, so a poisoned lock is still used.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn inc(&self, name: &'static str, pairs: &[(&str, &str)], by: u64) {
        *self
            .lock()
            .counters
            .entry((name, labels(pairs)))
            .or_default() += by as f64;
    }

    pub fn add_seconds(&self, name: &'static str, d: Duration) {
        *self.lock().counters.entry((name, Vec::new())).or_default() += d.as_secs_f64();
    }

    pub fn set_gauge(&self, name: &'static str, pairs: &[(&str, &str)], value: f64) {
        self.lock().gauges.insert((name, labels(pairs)), value);
    }

    /// A counter summed over all its label sets (for the summary line at exit).
    pub fn total(&self, name: &'static str) -> f64 {
        self.lock()
            .counters
            .iter()
            .filter(|((n, _), _)| *n == name)
            .map(|(_, v)| v)
            .sum()
    }

    /// A counter summed per value of one of its labels (for CloudWatch EMF, see `emf`).
    pub fn totals_by(&self, name: &'static str, label: &str) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for ((n, l), v) in &self.lock().counters {
            if *n == name {
                if let Some((_, value)) = l.iter().find(|(k, _)| k == label) {
                    *out.entry(value.clone()).or_default() += v;
                }
            }
        }
        out
    }

    /// The largest iterator age (seconds) per table, at `now_ms`.
    pub fn iterator_age_by_table(&self, now_ms: i64) -> BTreeMap<String, f64> {
        let mut out: BTreeMap<String, f64> = BTreeMap::new();
        for ((table, _), t) in &self.lock().newest_record_ms {
            let age = (now_ms - t).max(0) as f64 / 1000.0;
            let e = out.entry(table.clone()).or_default();
            *e = e.max(age);
        }
        out
    }

    pub fn touch_shard(&self, table: &TableName, shard: &ShardId) {
        self.lock()
            .last_poll
            .insert(key(table, shard), Instant::now());
    }

    pub fn set_iterator_age(&self, table: &TableName, shard: &ShardId, newest_ms: i64) {
        self.lock()
            .newest_record_ms
            .insert(key(table, shard), newest_ms);
    }

    pub fn clear_iterator_age(&self, table: &TableName, shard: &ShardId) {
        self.lock().newest_record_ms.remove(&key(table, shard));
    }

    /// A shard this worker no longer reads: drop its per-shard series.
    pub fn forget_shard(&self, table: &TableName, shard: &ShardId) {
        let mut s = self.lock();
        s.newest_record_ms.remove(&key(table, shard));
        s.last_poll.remove(&key(table, shard));
    }

    /// Shards that have not completed a GetRecords call within `stuck_after` (by table, shard).
    pub fn stuck_shards(&self, stuck_after: Duration) -> Vec<(String, String)> {
        let now = Instant::now();
        self.lock()
            .last_poll
            .iter()
            .filter(|(_, t)| now.duration_since(**t) > stuck_after)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let s = self.lock();
        let now_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        let mut out = String::new();
        for (name, kind, help) in DESCRIPTIONS {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            let series = if *kind == "counter" {
                &s.counters
            } else {
                &s.gauges
            };
            for ((n, l), v) in series.iter().filter(|((n, _), _)| n == name) {
                let _ = writeln!(out, "{n}{} {v}", render_labels(l));
            }
            if *name == "archiver_iterator_age_seconds" {
                for ((table, shard), t) in &s.newest_record_ms {
                    let age = ((now_ms as i64 - t).max(0) as f64) / 1000.0;
                    let l = labels(&[("table", table), ("shard", shard)]);
                    let _ = writeln!(out, "{name}{} {age}", render_labels(&l));
                }
            }
        }
        out
    }
}

fn render_labels(l: &Labels) -> String {
    if l.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = l
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}=\"{}\"",
                v.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n")
            )
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.inc("archiver_records_read_total", &[("table", "users")], 3);
        m.inc("archiver_records_read_total", &[("table", "users")], 2);
        m.set_gauge("archiver_shards_owned", &[("table", "a\"b")], 4.0);
        let text = m.render();
        assert!(
            text.contains("archiver_records_read_total{table=\"users\"} 5\n"),
            "{text}"
        );
        assert!(
            text.contains("archiver_shards_owned{table=\"a\\\"b\"} 4\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE archiver_records_read_total counter"));
        m.inc("archiver_records_read_total", &[("table", "orders")], 1);
        assert_eq!(m.total("archiver_records_read_total"), 6.0);
    }

    #[test]
    fn stuck_shards_are_reported() {
        let m = Metrics::default();
        let (t, s) = (TableName::new("users"), ShardId::new("s1"));
        m.touch_shard(&t, &s);
        assert!(m.stuck_shards(Duration::from_secs(60)).is_empty());
        assert_eq!(m.stuck_shards(Duration::ZERO).len(), 1);
        m.forget_shard(&t, &s);
        assert!(m.stuck_shards(Duration::ZERO).is_empty());
    }
}
