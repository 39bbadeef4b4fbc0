//! The soak (not part of the suite: `scripts/soak` runs it in release mode): millions of records
//! over 64 shards from the fault server into a local archive, measuring end-to-end throughput per
//! CPU-second of the worker, its peak RSS, and change-to-durable latency; then the same backlog
//! shared by two workers through one lease table; then through the Python/boto3/pyarrow baseline
//! (`scripts/baseline_consumer.py`), side by side.
//!
//! `SOAK_RECORDS` (default 2,000,000), `SOAK_SHARDS` (64), `SOAK_RATE` records/s and
//! `SOAK_SECONDS` for the latency phase (2,000 and 60), `SOAK_FLUSH_INTERVAL` (10s) for it and
//! `SOAK_BACKLOG_FLUSH_INTERVAL` (60s) for the backlog;
//! `SOAK_SHARED=0` skips the two-worker phase, `SOAK_BASELINE=0` the Python baseline. `MIMALLOC_*`
//! variables reach the workers (`MIMALLOC_SHOW_STATS=1` adds the allocator's statistics at exit of
//! the backlog worker to the report).

use crate::sim::streams::{FaultStreams, Faults, Graph};
use crate::support::*;
use aws_sdk_dynamodb::types::StreamViewType;
use std::time::{Duration, Instant};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// (CPU seconds, peak RSS MiB) of a live process, from /proc.
fn usage(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let hz: f64 = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm_kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    (ticks / hz, hwm_kb / 1024.0)
}

fn worker(
    stack: &Stack,
    server: &FaultStreams,
    name: &str,
    flush_interval: &str,
    port: u16,
) -> (Archiver, std::path::PathBuf) {
    worker_in(stack, server, name, name, flush_interval, port)
}

/// A worker of `group`: the workers of one group share its lease table and archive.
fn worker_in(
    stack: &Stack,
    server: &FaultStreams,
    name: &str,
    group: &str,
    flush_interval: &str,
    port: u16,
) -> (Archiver, std::path::PathBuf) {
    let archive = stack.dir.path().join(format!("archive-{group}"));
    let spool = stack.dir.path().join(format!("spool-{name}"));
    let http = format!("127.0.0.1:{port}");
    let lease_table = format!("leases-{group}");
    let endpoint = server.endpoint();
    let args = [
        "run",
        "--table",
        "soak",
        "--archive",
        archive.to_str().unwrap(),
        "--lease-table",
        &lease_table,
        "--flush-interval",
        flush_interval,
        "--flush-size",
        "128MiB",
        "--http",
        &http,
        "--spool-dir",
        spool.to_str().unwrap(),
        "--log-format",
        "text",
    ];
    let a = Archiver::start_env(
        stack,
        &args,
        &[("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", endpoint.as_str())],
    );
    (a, archive)
}

async fn written(port: u16) -> f64 {
    http_get(port, "/metrics").map_or(0.0, |(_, m)| {
        metric_total(&m, "archiver_records_written_total")
    })
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "the soak takes minutes: run it with scripts/soak"]
async fn soak() {
    let records: u64 = env_or("SOAK_RECORDS", 2_000_000);
    let shards: usize = env_or("SOAK_SHARDS", 64);
    let rate: u64 = env_or("SOAK_RATE", 2_000);
    let seconds: u64 = env_or("SOAK_SECONDS", 60);
    let flush: String = env_or("SOAK_FLUSH_INTERVAL", "10s".to_owned());
    let versions = 4;
    let stack = Stack::start().await;
    stack
        .create_table("soak", "id", Some(StreamViewType::NewAndOldImages))
        .await;
    let mut report = vec![format!(
        "soak: machine {} cores; {records} records over {shards} shards; worker and fault server built in {} mode",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if cfg!(debug_assertions) { "debug (figures not comparable)" } else { "release" }
    )];

    // Phase 1: a backlog of closed shards, read as fast as the worker can.
    let make = |closed: bool| {
        let list = (0..shards)
            .map(|i| {
                Graph::shard(
                    &format!("shardId-00000001763769600000-{i:08x}"),
                    None,
                    closed,
                )
            })
            .collect();
        Graph::fill(list, records / versions, versions, 300, move |k, _| {
            (k % shards as u64) as usize
        })
    };
    let server = FaultStreams::start(make(true), Faults::default()).await;
    let port = free_port();
    let started = Instant::now();
    let backlog_flush: String = env_or("SOAK_BACKLOG_FLUSH_INTERVAL", "60s".to_owned());
    let (mut a, archive) = worker(&stack, &server, "backlog", &backlog_flush, port);
    let pid = a.pid();
    poll(
        "the backlog archived",
        Duration::from_secs(3600),
        || async { (written(port).await >= records as f64).then_some(()) },
    )
    .await;
    let wall = started.elapsed().as_secs_f64();
    let (cpu, rss) = usage(pid);
    a.stop();
    if std::env::var_os("MIMALLOC_SHOW_STATS").is_some() {
        // mimalloc prints its statistics to stderr at exit: after the worker's last log line.
        let log = a.log_text();
        let stats = log.lines().skip_while(|l| !l.starts_with("subproc "));
        report.extend(stats.map(|l| format!("  {l}")));
    }
    let bytes: u64 = archive_files(&archive)
        .iter()
        .map(|f| std::fs::metadata(archive.join(f)).map_or(0, |m| m.len()))
        .sum();
    report.push(format!(
        "backlog: {records} records in {wall:.1} s wall = {:.0} records/s; worker CPU {cpu:.1} s = {:.0} records per CPU-second; peak RSS {rss:.0} MiB; archive {:.1} MiB",
        records as f64 / wall,
        records as f64 / cpu,
        bytes as f64 / (1 << 20) as f64
    ));
    drop(server);

    // Phase 1b: the same backlog shared by two workers through one lease table, as two ECS
    // tasks would share it (SOAK_SHARED=0 skips it).
    if std::env::var("SOAK_SHARED").as_deref() == Ok("0") {
        report.push("shared: skipped (SOAK_SHARED=0)".into());
    } else {
        let server = FaultStreams::start(make(true), Faults::default()).await;
        let ports = [free_port(), free_port()];
        let started = Instant::now();
        let mut workers: Vec<(Archiver, std::path::PathBuf)> = ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                worker_in(
                    &stack,
                    &server,
                    &format!("shared-{i}"),
                    "shared",
                    "60s",
                    *port,
                )
            })
            .collect();
        let pids: Vec<u32> = workers.iter().map(|(a, _)| a.pid()).collect();
        let total_written = || async {
            let mut sum = 0.0;
            for port in ports {
                sum += written(port).await;
            }
            sum
        };
        poll(
            "the backlog archived by two workers",
            Duration::from_secs(3600),
            || async { (total_written().await >= records as f64).then_some(()) },
        )
        .await;
        let wall = started.elapsed().as_secs_f64();
        let usages: Vec<(f64, f64)> = pids.iter().map(|pid| usage(*pid)).collect();
        let each = [written(ports[0]).await, written(ports[1]).await];
        for (a, _) in &mut workers {
            a.stop();
        }
        assert_eq!(
            each[0] + each[1],
            records as f64,
            "every record written once between the two workers"
        );
        assert!(
            each[0] > 0.0 && each[1] > 0.0,
            "both workers took shards: {each:?}"
        );
        let cpu: f64 = usages.iter().map(|u| u.0).sum();
        report.push(format!(
            "shared: {records} records by two workers with one lease table in {wall:.1} s wall = {:.0} records/s; workers' CPU {cpu:.1} s = {:.0} records per CPU-second; records written {:.0} + {:.0}; peak RSS {:.0} and {:.0} MiB",
            records as f64 / wall,
            records as f64 / cpu,
            each[0],
            each[1],
            usages[0].1,
            usages[1].1
        ));
        drop(server);
    }

    // Phase 2: the Python baseline on the same backlog (SOAK_BASELINE=0 skips it).
    if std::env::var("SOAK_BASELINE").as_deref() == Ok("0") {
        report.push("baseline: skipped (SOAK_BASELINE=0)".into());
    } else {
        let server = FaultStreams::start(make(true), Faults::default()).await;
        let arn = stack.stream_arn("soak").await;
        let out = stack.dir.path().join("baseline");
        let python = repo().join(".local/venv/bin/python");
        let result = std::process::Command::new(&python)
            .arg(repo().join("scripts/baseline_consumer.py"))
            .args([
                "--endpoint",
                &server.endpoint(),
                "--stream-arn",
                &arn,
                "--table",
                "soak",
            ])
            .arg("--out")
            .arg(&out)
            .output()
            .expect("the baseline runs");
        let line = String::from_utf8_lossy(&result.stdout).trim().to_owned();
        assert!(
            result.status.success(),
            "baseline failed: {}",
            String::from_utf8_lossy(&result.stderr)
        );
        let b: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            b["records"].as_u64(),
            Some(records),
            "the baseline read everything"
        );
        let (bwall, bcpu) = (b["wall_s"].as_f64().unwrap(), b["cpu_s"].as_f64().unwrap());
        report.push(format!(
        "baseline (Python, boto3 + pyarrow): {records} records in {bwall:.1} s wall = {:.0} records/s; CPU {bcpu:.1} s = {:.0} records per CPU-second; peak RSS {} MiB",
        records as f64 / bwall,
        records as f64 / bcpu,
        b["peak_rss_mib"]
    ));
        report.push(format!(
        "ratio: dynamo-archiver does {:.1}x the records per CPU-second of the baseline, {:.1}x its wall-clock rate",
        (records as f64 / cpu) / (records as f64 / bcpu),
        bwall / wall
    ));
        drop(server);
    }

    // Phase 3: records that happen while the worker runs, at a steady rate; latency from the
    // record's creation to its file in the archive.
    let total = rate * seconds;
    let start_ms = dynamo_archiver::clock::now_ms() + 5_000;
    let mut graph = Graph::fill(
        (0..shards)
            .map(|i| {
                Graph::shard(
                    &format!("shardId-00000001763769600000-{i:08x}"),
                    None,
                    false,
                )
            })
            .collect(),
        total,
        1,
        300,
        move |k, _| (k % shards as u64) as usize,
    );
    for s in &mut graph.shards {
        for r in &mut s.records {
            // Record k of the whole stream happens at start + k / rate.
            r.visible_ms = start_ms + (r.key * 1000 / rate) as i64;
            r.time_s = r.visible_ms as f64 / 1000.0;
        }
    }
    let server = FaultStreams::start(graph, Faults::default()).await;
    let port = free_port();
    let (mut a, archive) = worker(&stack, &server, "steady", &flush, port);
    poll(
        "the steady phase archived",
        Duration::from_secs(seconds + 300),
        || async { (written(port).await >= total as f64).then_some(()) },
    )
    .await;
    a.stop();
    let mut latencies: Vec<i64> = Vec::new();
    for f in archive_files(&archive) {
        let path = archive.join(&f);
        let mtime = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .map(|t| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64)
            .unwrap();
        for r in read_parquet_bytes(
            &f.to_string_lossy(),
            bytes::Bytes::from(std::fs::read(&path).unwrap()),
        ) {
            latencies.push(mtime - r.event_time_ms);
        }
    }
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize] as f64 / 1000.0;
    report.push(format!(
        "steady: {total} records at {rate}/s over {shards} shards, --flush-interval {flush}: change-to-durable latency p50 {:.1} s, p99 {:.1} s, max {:.1} s",
        pct(0.5),
        pct(0.99),
        pct(1.0)
    ));
    let text = report.join("\n");
    println!("{text}");
    std::fs::write(repo().join("target/soak-report.txt"), format!("{text}\n")).unwrap();
}
