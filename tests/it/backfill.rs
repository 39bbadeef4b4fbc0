//! `backfill`: a table's items into the archive as SNAPSHOT rows — complete and byte for byte,
//! resumable after `kill -9`, within `--max-rcu`, and gap-free together with the stream.

use crate::support::*;
use aws_sdk_dynamodb::types::{AttributeValue as A, StreamViewType};
use dynamo_archiver::encode::ddb_json::{decode_item, encode_item};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn items(from: u64, n: u64, pad: usize) -> Vec<HashMap<String, A>> {
    (from..from + n)
        .map(|i| {
            HashMap::from([
                ("id".to_owned(), A::N(i.to_string())),
                ("v".to_owned(), A::N(format!("{i}.{i}"))),
                ("pad".to_owned(), A::S(format!("{i:08}{}", "p".repeat(pad)))),
                (
                    "tags".to_owned(),
                    A::Ss(vec![format!("t{}", i % 7), format!("u{}", i % 11)]),
                ),
            ])
        })
        .collect()
}

/// SNAPSHOT rows of the archive equal `truth` item for item, byte for byte.
fn assert_snapshot_equals(rows: &[Row], truth: &HashMap<String, HashMap<String, A>>) {
    let snapshot: Vec<&Row> = rows.iter().filter(|r| r.event_name == "SNAPSHOT").collect();
    let ids: HashSet<&str> = snapshot.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!(ids.len(), snapshot.len(), "no item archived twice");
    assert_eq!(snapshot.len(), truth.len(), "one SNAPSHOT row per item");
    for r in &snapshot {
        let image = r
            .new_image
            .as_deref()
            .expect("a SNAPSHOT row holds the item");
        let item = truth
            .get(&r.keys)
            .unwrap_or_else(|| panic!("archived key {} is not in the table", r.keys));
        assert_eq!(&decode_item(image).unwrap(), item, "item {}", r.keys);
        assert_eq!(
            image,
            encode_item(item).unwrap(),
            "canonical bytes of {}",
            r.keys
        );
        assert!(r.sequence_number.is_none() && r.shard_id.is_none());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_thousand_items_in_four_segments_byte_for_byte() {
    let stack = Stack::start().await;
    stack
        .create_table("catalog", "id", Some(StreamViewType::NewAndOldImages))
        .await;
    let mut all = corpus();
    all.extend(items(100, 50_000 - all.len() as u64, 40));
    put_items(&stack, "catalog", all, 8).await;
    let truth = scan_table(&stack, "catalog", &["id"]).await;
    assert_eq!(truth.len(), 50_000);

    let archive = stack.dir.path().join("archive");
    let args = [
        "backfill",
        "--table",
        "catalog",
        "--archive",
        archive.to_str().unwrap(),
        "--segments",
        "4",
        "--log-format",
        "text",
    ];
    let (code, out, err) = Archiver::output(&stack, &args);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("50,000 items"), "{out}");
    let rows = read_archive(&archive);
    assert_snapshot_equals(&rows, &truth);
    let segments: HashSet<&str> = rows
        .iter()
        .map(|r| {
            r.file
                .rsplit('/')
                .next()
                .unwrap()
                .split('-')
                .nth(2)
                .unwrap()
        })
        .collect();
    assert_eq!(segments.len(), 4, "four segments, each its own files");
    // One partition per scan: the scan's date.
    let dts: HashSet<&str> = rows
        .iter()
        .map(|r| {
            r.file
                .split("/dt=")
                .nth(1)
                .unwrap()
                .split('/')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(dts.len(), 1, "{dts:?}");

    // A finished backfill says so and writes nothing more.
    let files_before = archive_files(&archive);
    let (code, out, _) = Archiver::output(&stack, &args);
    assert_eq!(code, 0);
    assert!(out.contains("already finished"), "{out}");
    assert_eq!(archive_files(&archive), files_before);
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_backfill_resumes_without_duplicates_on_s3() {
    let stack = Stack::start_with_s3().await;
    stack.create_bucket("snapshots").await;
    stack.create_table("orders", "id", None).await;
    put_items(&stack, "orders", items(0, 12_000, 900), 4).await;
    let truth = scan_table(&stack, "orders", &["id"]).await;
    let spool = stack.dir.path().join("spool");
    let args = [
        "backfill",
        "--table",
        "orders",
        "--archive",
        "s3://snapshots/a",
        "--segments",
        "4",
        "--parallel",
        "2",
        "--flush-size",
        "64KiB",
        "--max-rcu",
        "200",
        "--spool-dir",
        spool.to_str().unwrap(),
        "--log-format",
        "text",
    ];
    let s3 = stack.s3.clone().unwrap();
    let files = |s3: aws_sdk_s3::Client| async move {
        let listed = s3
            .list_objects_v2()
            .bucket("snapshots")
            .prefix("a/orders/")
            .send()
            .await
            .ok()?;
        let keys: Vec<String> = listed
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect();
        Some(keys)
    };
    let mut stops = 0;
    for round in 0..4 {
        let mut a = Archiver::start(&stack, &args);
        // Stop it once two more files have landed than before this round.
        let before = files(s3.clone()).await.unwrap().len();
        poll("files to land", Duration::from_secs(60), || {
            let s3 = s3.clone();
            async move { (files(s3).await?.len() >= before + 2).then_some(()) }
        })
        .await;
        if a.exited_within(Duration::ZERO).is_some() {
            break;
        }
        if round == 0 {
            // SIGTERM: the segments publish what they hold and the run says how to go on.
            a.signal("TERM");
            let status = a.wait(Duration::from_secs(20));
            assert!(status.success(), "{}", a.log_text());
            assert!(
                a.log_text().contains("stopped; run the same command again"),
                "{}",
                a.log_text()
            );
        } else {
            a.signal("KILL");
            a.wait(Duration::from_secs(10));
        }
        let keys = files(s3.clone()).await.unwrap();
        if keys.iter().any(|k| k.ends_with(".finished.json")) {
            break;
        }
        stops += 1;
        if round > 0 {
            assert!(
                a.log_text().contains("continuing the unfinished backfill"),
                "{}",
                a.log_text()
            );
        }
    }
    assert!(
        stops >= 3,
        "the backfill was stopped once and killed twice in the middle ({stops})"
    );
    let (code, out, err) = Archiver::output(&stack, &args);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("12,000 items"), "{out}");
    let rows = read_s3_archive(&s3, "snapshots", "a/orders/")
        .await
        .unwrap();
    assert_snapshot_equals(&rows, &truth);
    let markers = s3
        .list_objects_v2()
        .bucket("snapshots")
        .prefix("a/orders/_backfill/")
        .send()
        .await
        .unwrap();
    assert_eq!(markers.contents().len(), 2, "started and finished markers");
    // The resumed scan's files verify on S3: every segment one intact chain, each object's bytes
    // as recorded when it was written.
    let (code, out, err) = Archiver::output(
        &stack,
        &[
            "verify",
            "--archive",
            "s3://snapshots/a",
            "--log-format",
            "text",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("table orders:") && out.contains("1 snapshot scans"),
        "{out}"
    );
}

/// The read capacity a plain Scan of the whole table costs (what the backfill must spend).
async fn scan_cost(stack: &Stack, table: &str) -> f64 {
    let mut total = 0.0;
    let mut start = None;
    loop {
        let out = stack
            .dynamodb
            .scan()
            .table_name(table)
            .return_consumed_capacity(aws_sdk_dynamodb::types::ReturnConsumedCapacity::Total)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        total += out.consumed_capacity().unwrap().capacity_units().unwrap();
        start = out.last_evaluated_key().cloned();
        if start.is_none() {
            return total;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn max_rcu_is_honoured() {
    let stack = Stack::start().await;
    stack.create_table("metered", "id", None).await;
    put_items(&stack, "metered", items(0, 6_000, 1_500), 8).await;
    let cost = scan_cost(&stack, "metered").await;
    let cap = 100.0;
    assert!(
        cost / cap > 8.0,
        "the scan needs several seconds at the cap ({cost} RCU)"
    );
    let archive = stack.dir.path().join("archive");
    let started = Instant::now();
    let (code, out, err) = Archiver::output(
        &stack,
        &[
            "backfill",
            "--table",
            "metered",
            "--archive",
            archive.to_str().unwrap(),
            "--segments",
            "4",
            "--max-rcu",
            "100",
            "--log-format",
            "text",
        ],
    );
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(code, 0, "{out}\n{err}");
    let rate = cost / elapsed;
    assert!(
        rate <= cap * 1.1,
        "{rate:.1} RCU/s is over the cap of {cap}"
    );
    // Not far below either: the bound leaves room for a busy CI machine, whose DynamoDB Local may
    // answer more slowly than the pacer allows (pages then grow, see `segment::page_budget`).
    assert!(
        rate >= cap * 0.7,
        "{rate:.1} RCU/s is far below the cap of {cap}: {out}"
    );
    assert_eq!(read_archive(&archive).len(), 6_000);
    // The run logged its progress (not a terminal: a line every few seconds).
    assert!(
        err.contains("backfill metered")
            && err.contains("RCU/s")
            && err.contains("items of ~6,000"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_and_stream_together_rebuild_the_final_state() {
    let stack = Arc::new(Stack::start().await);
    // Items written before the stream exists are only in the snapshot.
    stack.create_table("accounts", "id", None).await;
    put_items(&stack, "accounts", items(0, 400, 100), 4).await;
    stack.enable_stream("accounts").await;
    // The documented order: the worker first, then the backfill, while writes go on.
    let (mut worker, archive) = Archiver::start_local(&stack, "accounts");
    let st = stack.clone();
    let load = tokio::spawn(async move { workload(&st, "accounts", 600, 3_000, 4).await });
    let (code, out, err) = Archiver::output(
        &stack,
        &[
            "backfill",
            "--table",
            "accounts",
            "--archive",
            archive.to_str().unwrap(),
            "--max-rcu",
            "20",
            "--log-format",
            "text",
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!load.is_finished(), "the backfill ran while writes went on");
    load.await.unwrap();
    let truth = scan_table(&stack, "accounts", &["id"]).await;
    let changes = stack.stream_truth("accounts").await.len();
    let rows = poll("every change archived", Duration::from_secs(60), || {
        let archive = archive.clone();
        async move {
            let rows = read_archive(&archive);
            (rows.iter().filter(|r| r.event_name != "SNAPSHOT").count() >= changes).then_some(rows)
        }
    })
    .await;
    worker.stop();

    // Rebuild: an item's latest change wins; an item never changed since the stream began is
    // its SNAPSHOT row.
    let depth = shard_depths(&stack, "accounts").await;
    let mut latest: HashMap<String, (usize, u128, Option<String>)> = HashMap::new();
    for r in rows.iter().filter(|r| r.event_name != "SNAPSHOT") {
        let order = (depth[r.shard_id.as_deref().unwrap()], r.seq_u128());
        let image = (r.event_name != "REMOVE").then(|| r.new_image.clone().unwrap());
        let e = latest.entry(r.keys.clone()).or_insert((0, 0, None));
        if (order.0, order.1) >= (e.0, e.1) {
            *e = (order.0, order.1, image);
        }
    }
    let mut state: HashMap<String, String> = HashMap::new();
    for r in rows.iter().filter(|r| r.event_name == "SNAPSHOT") {
        state.insert(r.keys.clone(), r.new_image.clone().unwrap());
    }
    for (k, (_, _, image)) in latest {
        match image {
            Some(i) => state.insert(k, i),
            None => state.remove(&k),
        };
    }
    let expected: HashMap<String, String> = truth
        .iter()
        .map(|(k, item)| (k.clone(), encode_item(item).unwrap()))
        .collect();
    let wrong: Vec<_> = expected
        .iter()
        .filter(|(k, v)| state.get(*k) != Some(v))
        .map(|(k, _)| key_of(k))
        .take(5)
        .collect();
    assert!(wrong.is_empty(), "items rebuilt wrong, e.g. {wrong:?}");
    assert_eq!(state.len(), expected.len(), "no deleted item rebuilt");
    assert!(
        rows.iter()
            .any(|r| r.event_name == "SNAPSHOT" && key_of(&r.keys) < 400),
        "pre-stream items come from the snapshot"
    );

    // The rebuild query of docs/ARCHIVE.md, run by DuckDB, gives the same state.
    let doc = std::fs::read_to_string(repo().join("docs/ARCHIVE.md")).unwrap();
    let section = doc
        .split("**Rebuilding an item's current state.**")
        .nth(1)
        .expect("the section exists");
    let sql = section
        .split("```sql")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("the section holds a query");
    let scan_id = rows
        .iter()
        .find(|r| r.event_name == "SNAPSHOT")
        .map(|r| r.event_id.split('-').nth(1).unwrap().to_owned())
        .unwrap();
    assert!(sql.contains("snapshot-20261122T101500Z-") && sql.contains("users_changes"));
    let sql = sql
        .replace(
            "users_changes",
            &format!(
                "read_parquet('{}/accounts/dt=*/*.parquet', hive_partitioning = true)",
                archive.display()
            ),
        )
        .replace("$.userid.N", "$.id.N")
        .replace("20261122T101500Z", &scan_id);
    let sql: String = sql
        .lines()
        .map(|l| l.split("--").next().unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let got: Vec<Vec<String>> =
        serde_json::from_str(&crate::analyst::duckdb(sql.trim().trim_end_matches(';'))).unwrap();
    let got: HashMap<String, String> = got
        .into_iter()
        .map(|r| (format!(r#"{{"id":{{"N":"{}"}}}}"#, r[0]), r[1].clone()))
        .collect();
    assert_eq!(got, expected, "the documented query rebuilds the table");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_backfill_input_is_named() {
    let stack = Stack::start().await;
    let archive = stack.dir.path().join("archive");
    let a = archive.to_str().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (&["--table", "nosuch", "--archive", a], "does not exist"),
        (
            &["--table", "nosuch", "--archive", a, "--segments", "0"],
            "--segments",
        ),
        (
            &["--table", "nosuch", "--archive", a, "--max-rcu", "0"],
            "--max-rcu",
        ),
        (&["--table", "nosuch"], "--archive"),
    ];
    for (args, needle) in cases {
        let mut full = vec!["backfill", "--log-format", "text"];
        full.extend_from_slice(args);
        let (code, out, err) = Archiver::output(&stack, &full);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    stack.create_table("resumed", "id", None).await;
    put_items(&stack, "resumed", items(0, 10, 10), 1).await;
    // An unfinished scan (its started marker alone) is resumed with its own segment count.
    std::fs::create_dir_all(archive.join("resumed/_backfill")).unwrap();
    std::fs::write(
        archive.join("resumed/_backfill/20261122T000000Z.started.json"),
        r#"{"scan_id":"20261122T000000Z","table":"resumed","segments":2,"consistent_read":false,"started_at":"2026-11-22T00:00:00Z","item_count_estimate":10,"table_size_bytes":100,"archiver_version":"0.1.0"}"#,
    )
    .unwrap();
    let (code, _, err) = Archiver::output(
        &stack,
        &[
            "backfill",
            "--table",
            "resumed",
            "--archive",
            a,
            "--segments",
            "3",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--segments 2"), "{err}");
    let (code, out, err) =
        Archiver::output(&stack, &["backfill", "--table", "resumed", "--archive", a]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("scan 20261122T000000Z finished: 10 items"),
        "{out}"
    );
    // --new-scan takes a second snapshot beside the first, with its own segment count.
    let (code, _, err) = Archiver::output(
        &stack,
        &[
            "backfill",
            "--table",
            "resumed",
            "--archive",
            a,
            "--new-scan",
            "--segments",
            "3",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let rows = read_archive(&archive);
    assert_eq!(rows.len(), 20, "two snapshots of 10 items");
    let scans: HashSet<&str> = rows
        .iter()
        .map(|r| r.event_id.split('-').nth(1).unwrap())
        .collect();
    assert_eq!(scans.len(), 2);
}
