//! The worker's counters and gauges, rendered as Prometheus text on `/metrics`.
//!
//! Updates happen per page or per file, not per record, so one mutex is cheap here; it is never
//! held across an `.await`.

use crate::types::{ShardId, TableName};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

type Labels = Vec<(String, String)>;

/// Whether a metric only goes up or is set to a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// Declares [`Metric`]: one variant per exported metric, with its name, kind and help text, so a
/// metric that is not declared here cannot be updated (a misspelt name does not compile).
macro_rules! metrics {
    ($($variant:ident => ($name:literal, $kind:ident, $help:literal),)*) => {
        /// Every metric the worker exports.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Metric {
            $($variant,)*
        }

        impl Metric {
            /// In the order `/metrics` renders them.
            pub const ALL: &'static [Metric] = &[$(Metric::$variant,)*];

            pub const fn name(self) -> &'static str {
                match self {
                    $(Metric::$variant => $name,)*
                }
            }

            pub const fn kind(self) -> Kind {
                match self {
                    $(Metric::$variant => Kind::$kind,)*
                }
            }

            pub const fn help(self) -> &'static str {
                match self {
                    $(Metric::$variant => $help,)*
                }
            }
        }
    };
}

metrics! {
    RecordsRead => ("archiver_records_read_total", Counter, "Stream records read, per table."),
    GetRecordsPages => ("archiver_get_records_pages_total", Counter, "GetRecords pages read, per table and decoder: `direct` (the body straight into rows) or `sdk` (a body the direct decoder declined, read by the SDK)."),
    RecordsWritten => ("archiver_records_written_total", Counter, "Records made durable, per table: in published archive files, or (Firehose output) acknowledged by Firehose."),
    FilesWritten => ("archiver_files_written_total", Counter, "Archive files published, per table."),
    BytesWritten => ("archiver_bytes_written_total", Counter, "Bytes of archive files published (Firehose output: bytes of records acknowledged), per table."),
    PublishConflicts => ("archiver_publish_conflicts_total", Counter, "Publishes that found their key taken by another writer of the same shard (a worker that lost or took its lease) and adopted that file instead, per table."),
    FilesAdopted => ("archiver_files_adopted_total", Counter, "Files found in the archive at the position a writer was about to write (after a restart or a takeover) and adopted as the shard's latest file, per table."),
    RecordsQuarantined => ("archiver_records_quarantined_total", Counter, "Stream records that could not become rows (an unknown attribute type, a missing field, invalid UTF-8) and were archived verbatim as QUARANTINED rows in their place, per table."),
    Checkpoints => ("archiver_checkpoints_total", Counter, "Checkpoints written to the lease table, per table."),
    RecordsLost => ("archiver_records_lost_total", Counter, "Gaps: ranges of records that can no longer be archived (data loss to investigate), per table and reason (trimmed, expired, retention). Each is also written into the archive and logged as RECORDS LOST; how many records a range held is not known."),
    ExpiredIterators => ("archiver_expired_iterators_total", Counter, "Shard iterators that expired and were reopened, per table."),
    Errors => ("archiver_errors_total", Counter, "Errors by kind (each retried unless the worker stops)."),
    ShardsFinished => ("archiver_shards_finished_total", Counter, "Shards read to their end, per table."),
    ShardsOwned => ("archiver_shards_owned", Gauge, "Shards this worker is reading (leases held), per table."),
    ShardsUnread => ("archiver_shards_unread", Gauge, "Shards ready to be read that no live worker has held for the failover time and this worker's last lease cycle did not take, per table. Above zero, nobody reads those shards (every worker at --max-leases, a shard task that keeps failing, or a lease that cannot be taken) and their records age towards the stream's trim."),
    LeasesTaken => ("archiver_leases_taken_total", Counter, "Leases acquired, per table and how (create, take)."),
    LeasesStealRequests => ("archiver_leases_steal_requests_total", Counter, "Leases asked of a busier worker to balance the load, per table."),
    LeasesLost => ("archiver_leases_lost_total", Counter, "Leases found owned by another worker at renewal, per table."),
    LeaseRenewalFailures => ("archiver_lease_renewal_failures_total", Counter, "Lease renewals that failed (throttling, errors), per table."),
    IteratorAgeSeconds => ("archiver_iterator_age_seconds", Gauge, "Per shard, now minus the older of two creation times: the newest record read while a backlog is read, and the oldest record read but not yet durable (absent when caught up with nothing waiting)."),
    FlushSecondsSum => ("archiver_flush_seconds_sum", Counter, "Total seconds spent publishing and checkpointing files."),
    FlushSecondsCount => ("archiver_flush_seconds_count", Counter, "Number of flushes (files published and checkpointed)."),
    FirehoseRecords => ("archiver_firehose_records_total", Counter, "Firehose records acknowledged (each packs many JSON lines), per table."),
    FirehoseBytes => ("archiver_firehose_bytes_total", Counter, "Bytes of Firehose records acknowledged, per table."),
    FirehoseBilledBytes => ("archiver_firehose_billed_bytes_total", Counter, "Billed-size estimate of the Firehose records acknowledged (each rounded up to 5 KB), per table."),
    FirehoseCalls => ("archiver_firehose_calls_total", Counter, "PutRecordBatch calls made (retries included), per table."),
    FirehoseRetries => ("archiver_firehose_retries_total", Counter, "PutRecordBatch calls repeated for failed entries or a failed call, per table."),
    FirehoseFailedEntries => ("archiver_firehose_failed_entries_total", Counter, "Entries Firehose refused inside an accepted call (sent again), per table and error code."),
    FirehoseOverflowObjects => ("archiver_firehose_overflow_objects_total", Counter, "Records too big for one Firehose record, written whole to --overflow-archive."),
}

#[derive(Default)]
struct State {
    counters: BTreeMap<(Metric, Labels), f64>,
    gauges: BTreeMap<(Metric, Labels), f64>,
    /// Newest record creation time (ms) per shard, to compute the iterator age at render time.
    newest_record_ms: BTreeMap<(String, String), i64>,
}

#[derive(Default)]
pub struct Metrics {
    state: Mutex<State>,
    /// What `/healthz` answers from.
    pub health: crate::health::Health,
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

    pub fn inc(&self, name: Metric, pairs: &[(&str, &str)], by: u64) {
        *self
            .lock()
            .counters
            .entry((name, labels(pairs)))
            .or_default() += by as f64;
    }

    pub fn add_seconds(&self, name: Metric, d: Duration) {
        *self.lock().counters.entry((name, Vec::new())).or_default() += d.as_secs_f64();
    }

    pub fn set_gauge(&self, name: Metric, pairs: &[(&str, &str)], value: f64) {
        self.lock().gauges.insert((name, labels(pairs)), value);
    }

    /// A counter summed over all its label sets (for the summary line at exit).
    pub fn total(&self, name: Metric) -> f64 {
        self.lock()
            .counters
            .iter()
            .filter(|((n, _), _)| *n == name)
            .map(|(_, v)| v)
            .sum()
    }

    /// A gauge summed over its labels (for CloudWatch EMF, see `emf`).
    pub fn gauge_total(&self, name: Metric) -> f64 {
        self.lock()
            .gauges
            .iter()
            .filter(|((n, _), _)| *n == name)
            .map(|(_, v)| v)
            .sum()
    }

    /// A counter summed per value of one of its labels (for CloudWatch EMF, see `emf`).
    pub fn totals_by(&self, name: Metric, label: &str) -> BTreeMap<String, f64> {
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

    /// Each shard's iterator age (seconds) at `now_ms`: how far behind the stream the archive
    /// is, the older of the newest record read (while a backlog is read) and the oldest record
    /// read but not yet durable (which grows while a shard is stuck, whatever it reads).
    pub fn iterator_ages(&self, now_ms: i64) -> BTreeMap<(String, String), f64> {
        let mut out: BTreeMap<(String, String), f64> = BTreeMap::new();
        let newest = self.lock().newest_record_ms.clone();
        for (k, t) in newest.into_iter().chain(self.health.oldest_waiting()) {
            let age = (now_ms - t).max(0) as f64 / 1000.0;
            let e = out.entry(k).or_default();
            *e = e.max(age);
        }
        out
    }

    /// The largest iterator age (seconds) per table, at `now_ms` (for alarms).
    pub fn iterator_age_by_table(&self, now_ms: i64) -> BTreeMap<String, f64> {
        let mut out: BTreeMap<String, f64> = BTreeMap::new();
        for ((table, _), age) in self.iterator_ages(now_ms) {
            let e = out.entry(table).or_default();
            *e = e.max(age);
        }
        out
    }

    pub fn touch_shard(&self, table: &TableName, shard: &ShardId) {
        self.health.read_ok(table.as_str(), shard.as_str());
    }

    /// Records arrived at a shard (the first one created at `oldest_ms`).
    pub fn shard_waiting(&self, table: &TableName, shard: &ShardId, oldest_ms: i64) {
        self.health
            .records_waiting(table.as_str(), shard.as_str(), oldest_ms);
    }

    /// What a shard still holds that is not durable (`None`: nothing).
    pub fn shard_still_waiting(&self, table: &TableName, shard: &ShardId, oldest_ms: Option<i64>) {
        self.health
            .still_waiting(table.as_str(), shard.as_str(), oldest_ms);
    }

    /// A shard's checkpoint moved.
    pub fn shard_progress(&self, table: &TableName, shard: &ShardId) {
        self.health.progress(table.as_str(), shard.as_str());
    }

    /// A shard's task failed (it will be restarted): its reader is gone, its waiting stays.
    pub fn shard_reading_paused(&self, table: &TableName, shard: &ShardId) {
        self.lock().newest_record_ms.remove(&key(table, shard));
        self.health.reader_stopped(table.as_str(), shard.as_str());
    }

    /// A listing of a table's stream succeeded or failed.
    pub fn discovery_done(&self, table: &str, ok: bool) {
        self.health.listing(table, ok);
    }

    /// A round of lease renewals ended; whether every renewal succeeded.
    pub fn renewals_done(&self, all_ok: bool) {
        self.health.renewals(all_ok);
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
        self.lock().newest_record_ms.remove(&key(table, shard));
        self.health.forget(table.as_str(), shard.as_str());
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        let ages = self.iterator_ages(now_ms);
        let s = self.lock();
        let mut out = String::new();
        for &metric in Metric::ALL {
            let (name, help) = (metric.name(), metric.help());
            let (kind, series) = match metric.kind() {
                Kind::Counter => ("counter", &s.counters),
                Kind::Gauge => ("gauge", &s.gauges),
            };
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for ((_, l), v) in series.iter().filter(|((m, _), _)| *m == metric) {
                let _ = writeln!(out, "{name}{} {v}", render_labels(l));
            }
            if metric == Metric::IteratorAgeSeconds {
                for ((table, shard), age) in &ages {
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
        m.inc(Metric::RecordsRead, &[("table", "users")], 3);
        m.inc(Metric::RecordsRead, &[("table", "users")], 2);
        m.set_gauge(Metric::ShardsOwned, &[("table", "a\"b")], 4.0);
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
        m.inc(Metric::RecordsRead, &[("table", "orders")], 1);
        assert_eq!(m.total(Metric::RecordsRead), 6.0);
    }

    #[test]
    fn a_stuck_shard_ages_and_is_forgotten_when_it_ends() {
        let m = Metrics::default();
        let (t, s) = (TableName::new("users"), ShardId::new("s1"));
        m.touch_shard(&t, &s);
        m.shard_waiting(&t, &s, 1_000);
        // The oldest record waiting decides the age, whatever was read since.
        m.set_iterator_age(&t, &s, 50_000);
        assert_eq!(m.iterator_age_by_table(61_000).get("users"), Some(&60.0));
        let stalled = crate::health::Thresholds {
            stall: Duration::ZERO,
            stuck_read: Duration::ZERO,
            renewals: Duration::ZERO,
            discovery: Duration::ZERO,
        };
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(m.health.problems(&stalled).len(), 2);
        m.forget_shard(&t, &s);
        assert!(m.health.problems(&stalled).is_empty());
        assert!(m.iterator_age_by_table(61_000).is_empty());
    }
}
