//! `--metrics emf`: the worker's key metrics as CloudWatch embedded metric format (EMF) lines on
//! stdout, once a minute. On ECS with the awslogs driver, CloudWatch Logs turns each line into
//! metrics, so alarms need no Prometheus scraper (infra/ alarms on these names).
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>
//!
//! Per table (dimension `Table`): `IteratorAgeSeconds` (the largest of its shards), `RecordsRead`
//! and `RecordsWritten` (counts since the previous line). Once, without dimensions: `Errors`
//! (since the previous line) and `UnreadShards` (ready shards no live worker holds, summed over
//! the tables, as this worker's last lease cycle saw them).

use crate::metrics::{Metric, Metrics};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const NAMESPACE: &str = "DynamoArchiver";
pub const INTERVAL: Duration = Duration::from_secs(60);

/// Counter totals at one instant, to turn into per-interval counts.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Totals {
    pub read: BTreeMap<String, f64>,
    pub written: BTreeMap<String, f64>,
    pub errors: f64,
    /// `archiver_shards_unread` summed over the tables: a level, not a count to difference.
    pub unread: f64,
}

impl Totals {
    pub fn of(metrics: &Metrics) -> Self {
        Self {
            read: metrics.totals_by(Metric::RecordsRead, "table"),
            written: metrics.totals_by(Metric::RecordsWritten, "table"),
            errors: metrics.total(Metric::Errors),
            unread: metrics.gauge_total(Metric::ShardsUnread),
        }
    }
}

/// The EMF lines for one interval (pure): `now` and `before` are counter totals, `ages` the
/// iterator age per table, `tables` every followed table (a table with nothing read still reports
/// zeros, so an alarm on it sees data).
pub fn lines(
    tables: &[String],
    now: &Totals,
    before: &Totals,
    ages: &BTreeMap<String, f64>,
    timestamp_ms: i64,
) -> Vec<String> {
    let delta = |m: &BTreeMap<String, f64>, p: &BTreeMap<String, f64>, t: &str| {
        (m.get(t).copied().unwrap_or(0.0) - p.get(t).copied().unwrap_or(0.0)).max(0.0)
    };
    let mut out = Vec::new();
    for t in tables {
        out.push(
            serde_json::json!({
                "_aws": {
                    "Timestamp": timestamp_ms,
                    "CloudWatchMetrics": [{
                        "Namespace": NAMESPACE,
                        "Dimensions": [["Table"]],
                        "Metrics": [
                            {"Name": "IteratorAgeSeconds", "Unit": "Seconds"},
                            {"Name": "RecordsRead", "Unit": "Count"},
                            {"Name": "RecordsWritten", "Unit": "Count"}
                        ]
                    }]
                },
                "Table": t,
                "IteratorAgeSeconds": ages.get(t).copied().unwrap_or(0.0),
                "RecordsRead": delta(&now.read, &before.read, t),
                "RecordsWritten": delta(&now.written, &before.written, t),
            })
            .to_string(),
        );
    }
    out.push(
        serde_json::json!({
            "_aws": {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [[]],
                    "Metrics": [
                        {"Name": "Errors", "Unit": "Count"},
                        {"Name": "UnreadShards", "Unit": "Count"}
                    ]
                }]
            },
            "Errors": (now.errors - before.errors).max(0.0),
            "UnreadShards": now.unread,
        })
        .to_string(),
    );
    out
}

/// Prints the lines every [`INTERVAL`] until `stop`, and once more at the end.
pub async fn run(metrics: std::sync::Arc<Metrics>, tables: Vec<String>, stop: CancellationToken) {
    let mut before = Totals::default();
    let mut tick = tokio::time::interval(INTERVAL);
    tick.tick().await;
    loop {
        let last = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.cancelled() => true,
        };
        let now = Totals::of(&metrics);
        let ms = crate::clock::now_ms();
        let ages = metrics.iterator_age_by_table(ms);
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            for line in lines(&tables, &now, &before, &ages, ms) {
                let _ = writeln!(out, "{line}");
            }
        }
        before = now;
        if last {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_per_interval_counts_and_the_largest_age() {
        let m = Metrics::default();
        m.inc(Metric::RecordsRead, &[("table", "users")], 10);
        m.inc(Metric::RecordsWritten, &[("table", "users")], 4);
        m.inc(Metric::Errors, &[("kind", "publish")], 2);
        let first = Totals::of(&m);
        m.inc(Metric::RecordsRead, &[("table", "users")], 5);
        m.inc(Metric::Errors, &[("kind", "checkpoint")], 1);
        m.set_gauge(Metric::ShardsUnread, &[("table", "users")], 2.0);
        m.set_gauge(Metric::ShardsUnread, &[("table", "orders")], 1.0);
        let second = Totals::of(&m);
        let ages = BTreeMap::from([("users".to_owned(), 42.5)]);
        let tables = vec!["users".to_owned(), "orders".to_owned()];
        let out = lines(&tables, &second, &first, &ages, 1_000);
        let v: Vec<serde_json::Value> = out
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(v.len(), 3);
        assert_eq!(v[0]["Table"], "users");
        assert_eq!(v[0]["RecordsRead"], 5.0);
        assert_eq!(v[0]["RecordsWritten"], 0.0);
        assert_eq!(v[0]["IteratorAgeSeconds"], 42.5);
        assert_eq!(v[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"], NAMESPACE);
        assert_eq!(v[0]["_aws"]["Timestamp"], 1_000);
        assert_eq!(v[1]["Table"], "orders");
        assert_eq!(v[1]["RecordsRead"], 0.0);
        assert_eq!(v[2]["Errors"], 1.0);
        assert_eq!(v[2]["UnreadShards"], 3.0, "a level, summed over the tables");
        assert_eq!(
            v[2]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([[]])
        );
        // Every metric named in a directive is a member of its line (EMF's own rule).
        for line in &v {
            for metric in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
            {
                assert!(line.get(metric["Name"].as_str().unwrap()).is_some());
            }
        }
    }
}
