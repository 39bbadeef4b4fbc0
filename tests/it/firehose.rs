//! `run --firehose`: JSON lines through Firehose (moto, and the fault-injecting endpoint in front
//! of it), compared with what the Parquet path writes for the same stream records.

use crate::sim::firehose::{FaultFirehose, Faults};
use crate::support::*;
use aws_sdk_dynamodb::types::{AttributeValue as A, StreamViewType};
use aws_sdk_firehose::types::{BufferingHints, ExtendedS3DestinationConfiguration};
use std::collections::HashSet;
use std::time::Duration;

const BUCKET: &str = "firehose-out";

/// Every schema v1 field: the Parquet columns, which a line must carry exactly.
fn schema_fields() -> HashSet<String> {
    dynamo_archiver::encode::parquet::arrow_schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

async fn delivery_stream(stack: &Stack, name: &str, prefix: &str) {
    stack.create_bucket(BUCKET).await;
    stack
        .firehose
        .as_ref()
        .unwrap()
        .create_delivery_stream()
        .delivery_stream_name(name)
        .extended_s3_destination_configuration(
            ExtendedS3DestinationConfiguration::builder()
                .role_arn("arn:aws:iam::123456789012:role/firehose")
                .bucket_arn(format!("arn:aws:s3:::{BUCKET}"))
                .prefix(prefix)
                .buffering_hints(BufferingHints::builder().interval_in_seconds(60).build())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

/// Every line Firehose delivered under `prefix`, parsed, with its object's key.
async fn delivered_lines(stack: &Stack, prefix: &str) -> Vec<(String, serde_json::Value)> {
    let s3 = stack.s3.as_ref().unwrap();
    let mut out = Vec::new();
    for key in s3_keys(s3, BUCKET, prefix).await.unwrap() {
        let body = s3_body(s3, BUCKET, &key).await.unwrap();
        let text = String::from_utf8(body.to_vec()).expect("lines are UTF-8");
        assert!(text.ends_with('\n'), "an object ends with a whole line");
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("a delivered line does not parse ({e}): {line}"));
            out.push((key.clone(), v));
        }
    }
    out
}

/// A delivered line as the row the Parquet path would hold.
fn as_row(file: &str, v: &serde_json::Value) -> Row {
    let names: HashSet<String> = v.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        names,
        schema_fields(),
        "a line has exactly the schema v1 fields"
    );
    let s = |k: &str| v[k].as_str().map(str::to_owned);
    Row {
        file: file.to_owned(),
        event_id: s("event_id").unwrap(),
        event_name: s("event_name").unwrap(),
        event_time_ms: v["event_time"].as_i64().unwrap(),
        table_name: s("table_name").unwrap(),
        shard_id: s("shard_id"),
        sequence_number: s("sequence_number"),
        keys: s("keys").unwrap(),
        new_image: s("new_image"),
        old_image: s("old_image"),
        size_bytes: v["size_bytes"].as_i64(),
        user_identity: s("user_identity"),
        quarantine_reason: s("quarantine_reason"),
        quarantined_record: s("quarantined_record").map(|b| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(b).unwrap()
        }),
    }
}

async fn wait_for_lines(
    stack: &Stack,
    prefix: &str,
    n: usize,
    a: &Archiver,
) -> Vec<(String, serde_json::Value)> {
    poll(
        &format!("{n} lines delivered through Firehose"),
        Duration::from_secs(120),
        || async {
            let lines = delivered_lines(stack, prefix).await;
            if lines.len() < n && a.log_text().contains("ERROR") {
                panic!("the worker logged an error:\n{}", a.log_text());
            }
            (lines.len() >= n).then_some(lines)
        },
    )
    .await
}

fn firehose_args<'a>(
    table: &'a str,
    stream: &'a str,
    lease_table: &'a str,
    spool: &'a str,
    http: &'a str,
) -> Vec<&'a str> {
    let mut args = worker_args(table, "--firehose", stream, spool, http);
    args.extend(["--lease-table", lease_table, "--log-format", "text"]);
    args
}

fn without_file(mut rows: Vec<Row>) -> Vec<Row> {
    for r in &mut rows {
        r.file.clear();
    }
    rows.sort_by(|a, b| {
        (a.shard_id.clone(), a.seq_u128()).cmp(&(b.shard_id.clone(), b.seq_u128()))
    });
    rows
}

#[tokio::test(flavor = "multi_thread")]
async fn firehose_lines_equal_the_parquet_rows() {
    let stack = Stack::start_with_s3().await;
    let table = "orders";
    stack
        .create_table(table, "id", Some(StreamViewType::NewAndOldImages))
        .await;
    workload(&stack, table, 30, 300, 2).await;
    // Two shards in a parent-child chain: the Firehose path must end the parent (a SHARD_END
    // checkpoint without a marker file) before its child starts. The hostile corpus (ids clear
    // of the workload's) goes to the child.
    stack.control("rollover");
    let corpus = crate::support::corpus()
        .into_iter()
        .map(|mut item| {
            let id: u64 = match &item["id"] {
                A::N(n) => n.parse().unwrap(),
                _ => unreachable!("corpus ids are numbers"),
            };
            item.insert("id".into(), n(1_000 + id));
            item
        })
        .collect();
    put_items(&stack, table, corpus, 2).await;
    // The Parquet path (tested against an independent read of the stream elsewhere) is the
    // reference here: the corpus's empty maps need the worker's repair of DynamoDB Local's answers.
    let expected = 300 + crate::support::corpus().len();
    let (mut parquet, archive) = Archiver::start_local(&stack, table);
    let rows = wait_for_rows(&archive, expected, Duration::from_secs(120)).await;
    parquet.stop();
    assert_eq!(rows.len(), expected);

    delivery_stream(&stack, "archive-lines", "lines/").await;
    let spool = stack.dir.path().join("spool-fh");
    let port = free_port();
    let http = format!("127.0.0.1:{port}");
    let mut a = Archiver::start(
        &stack,
        &firehose_args(
            table,
            "archive-lines",
            "fh-leases",
            spool.to_str().unwrap(),
            &http,
        ),
    );
    let lines = wait_for_lines(&stack, "lines/", expected, &a).await;
    // Lines land in S3 inside Firehose's answer; the worker counts them when the answer is back.
    let metrics = poll(
        "the worker to count every line written",
        Duration::from_secs(30),
        || async {
            let (_, m) = http_get(port, "/metrics")?;
            (metric_total(&m, "archiver_records_written_total") >= expected as f64).then_some(m)
        },
    )
    .await;
    a.stop();

    let line_rows: Vec<Row> = lines.iter().map(|(k, v)| as_row(k, v)).collect();
    let ids: HashSet<&str> = line_rows.iter().map(|r| r.event_id.as_str()).collect();
    let parquet_ids: HashSet<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!(ids.len(), line_rows.len(), "no line twice");
    assert_eq!(ids, parquet_ids, "every stream record, and only those");
    assert_eq!(
        without_file(line_rows),
        without_file(rows),
        "the lines hold exactly what the Parquet files hold"
    );
    for (_, v) in &lines {
        assert!(v["stream_arn"].as_str().unwrap().contains("/stream/"));
        assert_eq!(v["stream_view_type"], "NEW_AND_OLD_IMAGES");
        assert!(v["archived_at"].as_i64().unwrap() >= v["event_time"].as_i64().unwrap());
    }

    // Aggregation: many lines per Firehose record, and the metrics say so.
    let records = metric_total(&metrics, "archiver_firehose_records_total");
    let written_lines = metric_total(&metrics, "archiver_records_written_total");
    let billed = metric_total(&metrics, "archiver_firehose_billed_bytes_total");
    let bytes = metric_total(&metrics, "archiver_firehose_bytes_total");
    assert_eq!(written_lines as usize, expected, "{metrics}");
    assert!(
        records >= 1.0 && records < written_lines / 10.0,
        "{records} records for {written_lines} lines"
    );
    assert!(
        billed >= bytes && billed < bytes + records * 5120.0,
        "billed {billed} for {bytes} bytes in {records} records"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn firehose_faults_lose_nothing_and_resend_only_failed_entries() {
    let stack = Stack::start_with_s3().await;
    let table = "events";
    stack
        .create_table(table, "id", Some(StreamViewType::NewAndOldImages))
        .await;
    delivery_stream(&stack, "faulty", "faulty/").await;
    let fault = FaultFirehose::start(
        stack.firehose.clone().unwrap(),
        Faults {
            seed: 20261122,
            script: vec!["throttle", "500", "reset", "partial"],
            throttle: 0.1,
            server_error: 0.05,
            reset: 0.05,
            entry_failure: 0.25,
        },
    )
    .await;
    // Lines of about 40-80 KB: a dozen or more per Firehose record and several records per
    // call, so that single entries can fail inside a call.
    let written = workload_sized(&stack, table, 40, 400, 2, 40_000).await;
    let truth = stack.stream_truth(table).await;

    let spool = stack.dir.path().join("spool");
    let endpoint = fault.endpoint();
    let mut a = Archiver::start_env(
        &stack,
        &firehose_args(table, "faulty", "leases", spool.to_str().unwrap(), "off"),
        &[("AWS_ENDPOINT_URL_FIREHOSE", endpoint.as_str())],
    );
    let lines = poll(
        "every record delivered through the faults",
        Duration::from_secs(180),
        || async {
            let lines = delivered_lines(&stack, "faulty/").await;
            (lines.len() >= truth.len()).then_some(lines)
        },
    )
    .await;
    a.stop();

    {
        let stats = fault.stats.lock().unwrap();
        assert!(
            stats.throttled >= 1 && stats.server_errors >= 1 && stats.resets >= 1,
            "{stats:?}"
        );
        assert!(
            stats.entries_failed >= 1,
            "single entries failed: {stats:?}"
        );
        assert_eq!(
            stats.limit_violations, 0,
            "no call over an AWS limit: {stats:?}"
        );
        assert_eq!(
            stats.resent_after_success, 0,
            "only failed entries are sent again: {stats:?}"
        );
        assert_eq!(
            stats.entries_received,
            stats.entries_accepted + stats.entries_failed
        );
        assert!(
            stats.max_records_per_call > 1,
            "several records per call: {stats:?}"
        );
    }
    // Nothing lost, nothing twice; and sorting by sequence number restores each key's order,
    // whatever order the retries delivered the lines in.
    let rows: Vec<Row> = lines.iter().map(|(k, v)| as_row(k, v)).collect();
    assert_exactly_once_in_order(&stack, table, &rows, &written).await;
}

/// An item of about 395 KB of binary, then the same item replaced: the MODIFY record's two images
/// make a JSON line over 1 MB, more than one Firehose record holds.
async fn oversize_changes(stack: &Stack, table: &str) {
    stack
        .create_table(table, "id", Some(StreamViewType::NewAndOldImages))
        .await;
    let blob = |seed: u8| {
        A::B(aws_smithy_types::Blob::new(
            (0..395_000u32)
                .map(|i| (i as u8) ^ seed)
                .collect::<Vec<_>>(),
        ))
    };
    for (id, seed) in [(1, 1u8), (1, 2), (2, 3)] {
        stack
            .dynamodb
            .put_item()
            .table_name(table)
            .item("id", n(id))
            .item("blob", blob(seed))
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversize_record_goes_whole_to_the_overflow_archive() {
    let stack = Stack::start_with_s3().await;
    let table = "blobs";
    oversize_changes(&stack, table).await;
    delivery_stream(&stack, "blobs", "blobs/").await;
    let spool = stack.dir.path().join("spool");
    let mut args = firehose_args(table, "blobs", "leases", spool.to_str().unwrap(), "off");
    let overflow = format!("s3://{BUCKET}/overflow");
    args.extend(["--overflow-archive", overflow.as_str()]);
    let mut a = Archiver::start(&stack, &args);
    let lines = wait_for_lines(&stack, "blobs/", 3, &a).await;
    a.stop();
    assert_eq!(lines.len(), 3);
    let pointer = lines
        .iter()
        .map(|(_, v)| v)
        .find(|v| v["event_name"] == "MODIFY")
        .expect("the MODIFY line");
    assert!(pointer["new_image"].is_null() && pointer["old_image"].is_null());
    let uri = pointer["overflow_object"]
        .as_str()
        .expect("a pointer line names its object");
    let key = uri
        .strip_prefix(&format!("s3://{BUCKET}/"))
        .unwrap_or_else(|| panic!("{uri} is in the overflow archive"));
    let body = s3_body(stack.s3.as_ref().unwrap(), BUCKET, key)
        .await
        .unwrap();
    assert!(
        body.len() > 1_000 * 1024,
        "the whole line, {} bytes",
        body.len()
    );
    let whole: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(whole["event_id"], pointer["event_id"]);
    assert_eq!(whole["sequence_number"], pointer["sequence_number"]);
    // The images are whole: the item as DynamoDB holds it now, byte for byte.
    let item = stack
        .dynamodb
        .get_item()
        .table_name(table)
        .key("id", n(1))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(
        whole["new_image"].as_str().unwrap(),
        dynamo_archiver::encode::ddb_json::encode_item(&item).unwrap()
    );
    assert!(whole["old_image"].as_str().unwrap().len() > 500_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversize_record_without_an_overflow_archive_stops_the_worker_unacknowledged() {
    let stack = Stack::start_with_s3().await;
    let table = "blobs";
    oversize_changes(&stack, table).await;
    let truth = stack.stream_truth(table).await;
    let modify_seq: u128 = truth[1].2.parse().unwrap();
    delivery_stream(&stack, "blobs", "blobs/").await;
    let spool = stack.dir.path().join("spool");
    let mut a = Archiver::start(
        &stack,
        &firehose_args(table, "blobs", "leases", spool.to_str().unwrap(), "off"),
    );
    let status = a.wait(Duration::from_secs(60));
    let log = a.log_text();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains("--overflow-archive"),
        "the error names the fix: {log}"
    );
    // The INSERT before it was delivered and checkpointed; the MODIFY and what follows were not.
    let lines = delivered_lines(&stack, "blobs/").await;
    assert_eq!(lines.len(), 1, "only the record before the oversize one");
    assert_eq!(lines[0].1["event_name"], "INSERT");
    let (code, out, err) =
        Archiver::output(&stack, &["leases", "--lease-table", "leases", "--json"]);
    assert_eq!(code, 0, "{err}");
    let leases: serde_json::Value = serde_json::from_str(&out).unwrap();
    let checkpoint = leases
        .as_array()
        .unwrap()
        .iter()
        .find_map(|l| l["checkpoint"].as_str().map(str::to_owned))
        .expect("a checkpoint");
    let at: u128 = checkpoint
        .parse()
        .unwrap_or_else(|_| panic!("checkpoint {checkpoint}"));
    assert!(
        at < modify_seq,
        "checkpoint {at} stops before the oversize record {modify_seq}"
    );
}
