//! What an operator sees: `/metrics` moving as records flow, `/healthz` failing while a shard
//! reader is stuck (a proxy holds every Streams call) and passing again after, JSON log lines that
//! name the worker, table and shard but never a credential or an item's contents, and CloudWatch
//! EMF lines on stdout.

use crate::sim::stall::StallProxy;
use crate::support::*;
use aws_sdk_dynamodb::types::StreamViewType;
use std::time::Duration;

async fn table_with_items(stack: &Stack, table: &str, from: u64, count: u64, marker: &str) {
    for id in from..from + count {
        stack
            .dynamodb
            .put_item()
            .table_name(table)
            .item("id", n(id))
            .item("payload", s(format!("{marker}-{id}")))
            .send()
            .await
            .unwrap();
    }
}

async fn metric(port: u16, name: &str) -> f64 {
    let (status, body) = http_get(port, "/metrics").expect("/metrics answers");
    assert_eq!(status, 200);
    metric_total(&body, name)
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_move_and_healthz_follows_a_stuck_reader() {
    let stack = Stack::start().await;
    let table = "ops";
    stack
        .create_table(table, "id", Some(StreamViewType::NewAndOldImages))
        .await;
    // Streams calls go through the proxy; DynamoDB (leases) does not.
    let proxy = StallProxy::start(stack.ddb.port).await;
    let archive = stack.dir.path().join("archive");
    let spool = stack.dir.path().join("spool");
    let port = free_port();
    let http = format!("127.0.0.1:{port}");
    let mut args = worker_args(
        table,
        "--archive",
        archive.to_str().unwrap(),
        spool.to_str().unwrap(),
        &http,
    );
    args.extend(["--stuck-after", "3s", "--log-format", "text"]);
    let endpoint = proxy.endpoint();
    let mut a = Archiver::start_env(
        &stack,
        &args,
        &[("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", endpoint.as_str())],
    );

    poll("/readyz to pass", Duration::from_secs(60), || async {
        (http_get(port, "/readyz").map(|r| r.0) == Some(200)).then_some(())
    })
    .await;
    table_with_items(&stack, table, 0, 40, "p").await;
    // Written counts at publish, the checkpoint comes right after it: wait for both.
    poll(
        "40 records written and checkpointed",
        Duration::from_secs(60),
        || async {
            (metric(port, "archiver_records_written_total").await >= 40.0
                && metric(port, "archiver_checkpoints_total").await >= 1.0)
                .then_some(())
        },
    )
    .await;
    assert_eq!(metric(port, "archiver_records_read_total").await, 40.0);
    // DynamoDB Local's pages (after the repair of its empty maps) are decoded straight into rows,
    // never declined to the SDK's deserializer.
    let (_, text) = http_get(port, "/metrics").unwrap();
    let pages = |decoder: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with("archiver_get_records_pages_total{"))
            .filter(|l| l.contains(&format!("decoder=\"{decoder}\"")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert!(pages("direct") >= 1.0, "{text}");
    assert_eq!(pages("sdk"), 0.0, "{text}");
    assert!(metric(port, "archiver_files_written_total").await >= 1.0);
    assert_eq!(metric(port, "archiver_shards_owned").await, 1.0);
    assert_eq!(http_get(port, "/healthz").unwrap().0, 200);

    // Every Streams call hangs: the shard's reads stop succeeding.
    proxy.stall(true);
    let body = poll("/healthz to fail", Duration::from_secs(60), || async {
        http_get(port, "/healthz").and_then(|(status, body)| (status == 503).then_some(body))
    })
    .await;
    assert!(
        body.contains("no successful read") && body.contains(&format!("of table {table}")),
        "{body}"
    );
    assert_eq!(
        http_get(port, "/readyz").unwrap().0,
        200,
        "stuck is not unready"
    );

    proxy.stall(false);
    poll(
        "/healthz to pass again",
        Duration::from_secs(90),
        || async { (http_get(port, "/healthz").map(|r| r.0) == Some(200)).then_some(()) },
    )
    .await;
    table_with_items(&stack, table, 40, 20, "p").await;
    // Written counts at publish, the flush's duration once its checkpoint is stored: wait for both.
    poll(
        "60 records written and a second flush timed",
        Duration::from_secs(60),
        || async {
            (metric(port, "archiver_records_written_total").await >= 60.0
                && metric(port, "archiver_flush_seconds_count").await >= 2.0)
                .then_some(())
        },
    )
    .await;
    let (_, text) = http_get(port, "/metrics").unwrap();
    assert!(
        text.contains("# TYPE archiver_iterator_age_seconds gauge"),
        "{text}"
    );
    assert!(
        metric_total(&text, "archiver_flush_seconds_sum") > 0.0,
        "{text}"
    );
    a.stop();
    assert_eq!(read_archive(&archive).len(), 60);
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_name_worker_table_and_shard_and_emf_goes_to_stdout() {
    let stack = Stack::start().await;
    let table = "logs";
    stack
        .create_table(table, "id", Some(StreamViewType::NewAndOldImages))
        .await;
    let archive = stack.dir.path().join("archive");
    let spool = stack.dir.path().join("spool");
    let mut args = worker_args(
        table,
        "--archive",
        archive.to_str().unwrap(),
        spool.to_str().unwrap(),
        "off",
    );
    args.extend([
        "--log-format",
        "json",
        "--worker-id",
        "task-7",
        "--metrics",
        "emf",
    ]);
    // A distinctive secret: DynamoDB Local accepts any key.
    let secret = "Sekr3tAccessKeyValue/Not+For+Logs";
    let mut a = Archiver::start_env(&stack, &args, &[("AWS_SECRET_ACCESS_KEY", secret)]);
    table_with_items(&stack, table, 0, 25, "PRIVATE-ITEM-CONTENT").await;
    wait_for_rows(&archive, 25, Duration::from_secs(60)).await;
    // A rollover makes shard-level log lines (the parent ends, the child starts).
    stack.control("rollover");
    poll(
        "the parent shard to end",
        Duration::from_secs(60),
        || async { a.log_text().contains("shard read to its end").then_some(()) },
    )
    .await;
    a.stop();

    let log = a.log_text();
    assert!(!log.contains(secret), "a credential in the log");
    assert!(
        !log.contains("PRIVATE-ITEM-CONTENT"),
        "item contents at info level"
    );
    let mut shard_lines = 0;
    let mut emf = Vec::new();
    for line in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        if v.get("_aws").is_some() {
            emf.push(v);
            continue;
        }
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        if v.get("shard").is_some() {
            shard_lines += 1;
            assert_eq!(v["table"], table, "{line}");
            assert_eq!(v["span"]["worker"], "task-7", "{line}");
        }
    }
    assert!(shard_lines >= 1, "no line named a shard:\n{log}");
    // The final EMF flush at shutdown counts everything read.
    let read: f64 = emf
        .iter()
        .filter(|v| v["Table"] == table)
        .map(|v| v["RecordsRead"].as_f64().unwrap())
        .sum();
    assert_eq!(read, 25.0, "{emf:?}");
    assert!(emf.iter().any(|v| v.get("Errors").is_some()));
}
