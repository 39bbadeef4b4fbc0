//! `restore`: the archive's state at an instant written back into DynamoDB Local, compared with a
//! Scan taken at that instant; resumed after `kill -9`; paced by `--max-wcu`; in place; one item;
//! and `snapshot --format dynamodb-json` read back. Every archive here is made by the real
//! archiver (`run` and `backfill`), in the documented order: stream, worker, backfill.
//!
//! DynamoDB Local truncates event times to the minute, so two phases are set apart with its
//! `dilate` hook (as in `snapshot.rs`): after phase A every stream event so far moves two minutes
//! into the past, and the instant restored lies between the phases.

use crate::sim::write_counter::{Faults, WriteCounter};
use crate::support::*;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue as A, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, StreamViewType,
};
use dynamo_archiver::clock::now_ms;
use dynamo_archiver::encode::ddb_json::{decode_item_value, encode_item};
use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

type Item = HashMap<String, A>;
type Table = HashMap<String, Item>;

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// `backfill` of `table` into `archive`, to completion.
fn backfill(stack: &Stack, table: &str, archive: &Path) {
    let (code, out, err) = Archiver::output(
        stack,
        &[
            "backfill",
            "--table",
            table,
            "--archive",
            archive.to_str().unwrap(),
            "--progress",
            "off",
            "--log-format",
            "text",
        ],
    );
    assert_eq!(code, 0, "backfill: {out}{err}");
}

/// Runs the worker on `table` until the change of item `last_id` (the last write) is in the
/// archive (a shard's files are published in order, so every change before it is too), then
/// stops it. (The stream is not read here directly: the plain SDK fails on DynamoDB Local's
/// typeless empty maps, which the archiver repairs.)
async fn archive_stream(stack: &Stack, table: &str, last_id: i64) -> PathBuf {
    let (mut worker, archive) = Archiver::start_local(stack, table);
    let last = format!(r#"{{"id":{{"N":"{last_id}"}}}}"#);
    poll("the last change archived", Duration::from_secs(120), || {
        let (archive, last) = (archive.clone(), last.clone());
        async move {
            read_archive(&archive)
                .iter()
                .any(|r| r.event_name != "SNAPSHOT" && r.table_name == table && r.keys == last)
                .then_some(())
        }
    })
    .await;
    worker.stop();
    archive
}

/// `restore` with `args` after the common ones, to completion: (exit code, stdout, stderr).
fn restore(stack: &Stack, archive: &Path, table: &str, args: &[&str]) -> (i32, String, String) {
    let spool = stack.dir.path().join("restore-spool");
    let mut all = vec![
        "restore",
        "--archive",
        archive.to_str().unwrap(),
        "--table",
        table,
        "--spool-dir",
        spool.to_str().unwrap(),
        "--progress",
        "log",
        "--log-format",
        "text",
    ];
    all.extend_from_slice(args);
    Archiver::output(stack, &all)
}

fn scan_canonical(t: &Table) -> HashMap<String, String> {
    t.iter()
        .map(|(k, v)| (k.clone(), encode_item(v).unwrap()))
        .collect()
}

/// Asserts two Scans hold the same items, byte for byte (as the SDK gives them, and as canonical
/// DynamoDB JSON).
fn assert_same(what: &str, got: &Table, want: &Table) {
    let wrong: Vec<&String> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(v))
        .map(|(k, _)| k)
        .take(5)
        .collect();
    assert!(wrong.is_empty(), "{what}: items differ, e.g. {wrong:?}");
    let extra: Vec<&String> = got
        .keys()
        .filter(|k| !want.contains_key(*k))
        .take(5)
        .collect();
    assert!(
        extra.is_empty(),
        "{what}: items that should not be there: {extra:?}"
    );
    assert_eq!(scan_canonical(got), scan_canonical(want), "{what}");
}

/// The restore records of `table` in the archive: (name, JSON).
fn records(archive: &Path, table: &str) -> Vec<(String, serde_json::Value)> {
    let dir = archive.join(table).join("_restores");
    let mut out: Vec<(String, serde_json::Value)> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let v = serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
                    (name, v)
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

async fn phase_b(stack: &Stack, table: &str) {
    let ddb = &stack.dynamodb;
    // Overwrite some corpus items and some workload items, delete others, add new ones.
    for id in [1i64, 3, 1000, 1001, 1002] {
        ddb.update_item()
            .table_name(table)
            .key("id", n(id))
            .update_expression("SET phase = :p, big = :b")
            .expression_attribute_values(":p", s("B"))
            .expression_attribute_values(
                ":b",
                A::N("-0.000000000000000000000000000000000001".into()),
            )
            .send()
            .await
            .unwrap();
    }
    for id in [2i64, 5, 1003, 1004] {
        ddb.delete_item()
            .table_name(table)
            .key("id", n(id))
            .send()
            .await
            .unwrap();
    }
    for id in 5000..5010i64 {
        ddb.put_item()
            .table_name(table)
            .item("id", n(id))
            .item("phase", s("B"))
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_as_of_an_instant_equals_a_scan_taken_then() {
    let stack = Stack::start_with_s3().await;
    let t = "hostile";
    // Before the stream: part of the hostile corpus (only the backfill knows it).
    stack.create_table(t, "id", None).await;
    let items = corpus();
    for it in items
        .iter()
        .filter(|i| matches!(&i["id"], A::N(n) if n.as_str() <= "4"))
    {
        stack
            .dynamodb
            .put_item()
            .table_name(t)
            .set_item(Some(it.clone()))
            .send()
            .await
            .unwrap();
    }
    stack.enable_stream(t).await;
    let archive = stack.dir.path().join("archive");
    backfill(&stack, t, &archive);
    // Phase A: the rest of the corpus through the stream, and a workload of puts, updates and
    // deletes.
    for it in items
        .iter()
        .filter(|i| matches!(&i["id"], A::N(n) if n.as_str() > "4"))
    {
        stack
            .dynamodb
            .put_item()
            .table_name(t)
            .set_item(Some(it.clone()))
            .send()
            .await
            .unwrap();
    }
    workload_a(&stack, t).await;
    let truth_a = scan_table(&stack, t, &["id"]).await;
    let end_a = now_ms();
    stack.control("dilate 120000");
    phase_b(&stack, t).await;
    let truth_b = scan_table(&stack, t, &["id"]).await;
    assert_ne!(scan_canonical(&truth_a), scan_canonical(&truth_b));
    let archive = archive_stream(&stack, t, 5009).await;

    let as_of = rfc3339(end_a - 90_000);
    let (code, out, err) = restore(
        &stack,
        &archive,
        t,
        &[
            "--as-of",
            &as_of,
            "--to-table",
            "hostile-restored",
            "--create",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("(created)"), "{out}");
    let got = scan_table(&stack, "hostile-restored", &["id"]).await;
    assert_same("restored as of the instant", &got, &truth_a);
    assert!(
        out.contains(&format!("wrote {} items", truth_a.len())),
        "{out}"
    );

    // The audit trail: who (moto's STS answers), when, as of, target, counts.
    let recs = records(&archive, t);
    assert_eq!(recs.len(), 2, "{recs:?}");
    let (started, finished) = (&recs[1].1, &recs[0].1);
    assert!(recs[1].0.ends_with(".started.json") && recs[0].0.ends_with(".finished.json"));
    assert!(
        started["caller"]["arn"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:"),
        "{started}"
    );
    assert_eq!(started["as_of"], as_of.as_str());
    assert_eq!(started["to_table"], "hostile-restored");
    assert_eq!(finished["outcome"], "finished");
    assert_eq!(finished["written"]["puts"], truth_a.len() as u64);

    // The same state as a DynamoDB import folder, read back line by line.
    let out_dir = stack.dir.path().join("exports");
    let (code, o, e) = Archiver::output(
        &stack,
        &[
            "snapshot",
            "--archive",
            archive.to_str().unwrap(),
            "--table",
            t,
            "--as-of",
            &as_of,
            "--out",
            out_dir.to_str().unwrap(),
            "--format",
            "dynamodb-json",
            "--log-format",
            "text",
        ],
    );
    assert_eq!(code, 0, "{o}{e}");
    let imported = read_import_folder(&out_dir.join(t));
    assert_eq!(
        imported,
        scan_canonical(&truth_a),
        "the import folder holds the state"
    );
}

/// Phase A's workload, on ids from 1000 (the corpus has 1-8): puts, updates, deletes and whole
/// overwrites.
async fn workload_a(stack: &Stack, table: &str) {
    let ddb = &stack.dynamodb;
    let rows: Vec<Item> = (1000..1060)
        .map(|i| {
            HashMap::from([
                ("id".to_owned(), n(i)),
                ("v".to_owned(), n(i)),
                ("s".to_owned(), s("a")),
            ])
        })
        .collect();
    put_items(stack, table, rows, 4).await;
    for i in 1000..1020 {
        ddb.update_item()
            .table_name(table)
            .key("id", n(i))
            .update_expression("SET v = v + :one, tags = :t")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":t", A::Ss(vec!["z".into(), "a".into()]))
            .send()
            .await
            .unwrap();
    }
    for i in 1040..1050 {
        ddb.delete_item()
            .table_name(table)
            .key("id", n(i))
            .send()
            .await
            .unwrap();
    }
    for i in 1020..1025 {
        ddb.put_item()
            .table_name(table)
            .item("id", n(i))
            .item("again", A::Bool(true))
            .send()
            .await
            .unwrap();
    }
}

/// Every item of an import folder: the manifest's files, checked by MD5, gunzipped, each line's
/// `Item` decoded and encoded canonically, keyed by its `id`.
fn read_import_folder(table_dir: &Path) -> HashMap<String, String> {
    let folder = std::fs::read_dir(table_dir)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with("-dynamodb-json"))
        .expect("an import folder")
        .path();
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("manifest-summary.json")).unwrap())
            .unwrap();
    let manifest = std::fs::read_to_string(folder.join("manifest-files.json")).unwrap();
    let mut out = HashMap::new();
    let root = table_dir.parent().unwrap();
    for line in manifest.lines() {
        let f: serde_json::Value = serde_json::from_str(line).unwrap();
        let bytes = std::fs::read(root.join(f["dataFileS3Key"].as_str().unwrap())).unwrap();
        assert_eq!(
            dynamo_archiver::export::manifest::md5_base64(&bytes),
            f["md5Checksum"].as_str().unwrap()
        );
        let mut lines = 0;
        for l in std::io::BufReader::new(flate2::read::GzDecoder::new(&bytes[..])).lines() {
            let v: serde_json::Value = serde_json::from_str(&l.unwrap()).unwrap();
            let item = decode_item_value(&v["Item"]).unwrap();
            let keys: Item = HashMap::from([("id".to_owned(), item["id"].clone())]);
            out.insert(encode_item(&keys).unwrap(), encode_item(&item).unwrap());
            lines += 1;
        }
        assert_eq!(lines, f["itemCount"].as_u64().unwrap());
    }
    assert_eq!(summary["itemCount"].as_u64().unwrap(), out.len() as u64);
    out
}

/// A table of `items` small items archived the documented way: items first, then the stream, a
/// backfill, one change through the stream, and the worker until it is archived.
async fn archived_bulk(stack: &Stack, table: &str, items: usize, payload: usize) -> PathBuf {
    stack.create_table(table, "id", None).await;
    let rows: Vec<Item> = (0..items)
        .map(|i| {
            HashMap::from([
                ("id".to_owned(), n(i)),
                ("name".to_owned(), s(format!("item {i}"))),
                ("pad".to_owned(), s("x".repeat(payload))),
                (
                    "n".to_owned(),
                    A::N("12345678901234567890123456789012345678".into()),
                ),
            ])
        })
        .collect();
    put_items(stack, table, rows, 8).await;
    stack.enable_stream(table).await;
    let archive = stack.dir.path().join("archive");
    backfill(stack, table, &archive);
    stack
        .dynamodb
        .put_item()
        .table_name(table)
        .item("id", n(items + 1))
        .item("name", s("after the backfill"))
        .send()
        .await
        .unwrap();
    archive_stream(stack, table, items as i64 + 1).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_restore_goes_on_and_writes_each_item_at_most_once_more() {
    let stack = Stack::start().await;
    let t = "bulk";
    let archive = archived_bulk(&stack, t, 20_000, 60).await;
    let truth = scan_table(&stack, t, &["id"]).await;
    assert_eq!(truth.len(), 20_001);
    // Every write goes through the counter, which also throttles and half-processes batches.
    let counter = WriteCounter::start(
        stack.ddb.port,
        Faults {
            throttle_every: 11,
            partial_every: 7,
        },
    )
    .await;
    let endpoint = counter.endpoint();
    let spool = stack.dir.path().join("restore-spool");
    let as_of = rfc3339(now_ms());
    let args = [
        "restore",
        "--archive",
        archive.to_str().unwrap(),
        "--table",
        t,
        "--as-of",
        &as_of,
        "--to-table",
        "bulk-restored",
        "--create",
        "--max-wcu",
        "2000",
        "--spool-dir",
        spool.to_str().unwrap(),
        "--progress",
        "log",
        "--log-format",
        "text",
    ];
    let env = [("AWS_ENDPOINT_URL_DYNAMODB", endpoint.as_str())];
    let mut first = Archiver::start_env(&stack, &args, &env);
    poll("the restore half way", Duration::from_secs(120), || {
        let w = counter.writes();
        async move { (w >= 8_000).then_some(()) }
    })
    .await;
    first.signal("KILL");
    let status = first.wait(Duration::from_secs(10));
    assert!(!status.success());
    let at_kill = counter.writes();
    assert!(at_kill < 20_001, "killed before the end: {at_kill}");

    let mut second = Archiver::start_env(&stack, &args, &env);
    let status = second.wait(Duration::from_secs(180));
    let log = second.log_text();
    assert!(status.success(), "{log}");
    let got = scan_table(&stack, "bulk-restored", &["id"]).await;
    assert_same("after kill -9 and a second run", &got, &truth);
    let total = counter.writes();
    let stats = counter.stats.lock().unwrap();
    assert!(
        total <= 20_001 + 25,
        "{total} writes for 20,001 items (killed at {at_kill})"
    );
    assert!(total >= 20_001, "{total}");
    assert!(stats.throttled > 0 && stats.partial > 0, "{stats:?}");
    assert!(log.contains("already written by an earlier run"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn max_wcu_is_honoured_over_thirty_seconds() {
    let stack = Stack::start().await;
    let t = "paced";
    // About 1.5 KB an item: 2 WCU a write.
    let archive = archived_bulk(&stack, t, 700, 1400).await;
    let counter = WriteCounter::start(stack.ddb.port, Faults::default()).await;
    let endpoint = counter.endpoint();
    let spool = stack.dir.path().join("restore-spool");
    let cap = 40.0;
    let as_of = rfc3339(now_ms());
    let args = [
        "restore",
        "--archive",
        archive.to_str().unwrap(),
        "--table",
        t,
        "--as-of",
        &as_of,
        "--to-table",
        "paced-restored",
        "--create",
        "--max-wcu",
        "40",
        "--spool-dir",
        spool.to_str().unwrap(),
        "--progress",
        "log",
        "--log-format",
        "text",
    ];
    let mut run = Archiver::start_env(&stack, &args, &[("AWS_ENDPOINT_URL_DYNAMODB", &endpoint)]);
    let status = run.wait(Duration::from_secs(180));
    assert!(status.success(), "{}", run.log_text());
    let stats = counter.stats.lock().unwrap();
    let first = stats.first_request.unwrap();
    let last = stats.consumed.last().unwrap().0;
    let span = (last - first).as_secs_f64();
    let consumed: f64 = stats.consumed.iter().map(|(_, c)| c).sum();
    assert!(span >= 30.0, "the run lasted {span:.1} s");
    let rate = consumed / span;
    assert!(
        rate <= cap * 1.1,
        "{rate:.1} WCU/s over {span:.1} s ({consumed} WCU) with --max-wcu {cap}"
    );
    assert!(rate >= cap * 0.7, "{rate:.1} WCU/s: the budget was used");
    assert_eq!(stats.writes, 701);
    // The command's own accounting says the same.
    let log = run.log_text();
    let own: f64 = log
        .split(" WCU/s)")
        .next()
        .and_then(|l| l.rsplit('(').next())
        .and_then(|r| r.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rate in {log}"));
    assert!(own <= cap * 1.1, "the command reports {own} WCU/s");
}

/// A table whose phase A state is kept, then phase B changes it: (archive, truth at A, the
/// instant between the phases).
async fn two_phases(stack: &Stack, t: &str) -> (PathBuf, Table, String) {
    stack
        .create_table(t, "id", Some(StreamViewType::NewAndOldImages))
        .await;
    let archive = stack.dir.path().join("archive");
    // The stream began with the table; a backfill of the empty table is the baseline.
    backfill(stack, t, &archive);
    let rows: Vec<Item> = (0..60)
        .map(|i| HashMap::from([("id".to_owned(), n(i)), ("v".to_owned(), s("A"))]))
        .collect();
    put_items(stack, t, rows, 4).await;
    let truth_a = scan_table(stack, t, &["id"]).await;
    let end_a = now_ms();
    stack.control("dilate 120000");
    let ddb = &stack.dynamodb;
    for i in 0..10 {
        ddb.put_item()
            .table_name(t)
            .item("id", n(i))
            .item("v", s("B"))
            .send()
            .await
            .unwrap();
    }
    for i in 10..20 {
        ddb.delete_item()
            .table_name(t)
            .key("id", n(i))
            .send()
            .await
            .unwrap();
    }
    for i in 100..110 {
        ddb.put_item()
            .table_name(t)
            .item("id", n(i))
            .item("v", s("B"))
            .send()
            .await
            .unwrap();
    }
    let archive = {
        let a = archive_stream(stack, t, 109).await;
        assert_eq!(a, archive);
        a
    };
    (archive, truth_a, rfc3339(end_a - 90_000))
}

#[tokio::test(flavor = "multi_thread")]
async fn in_place_dry_run_changes_nothing_then_in_place_restores_the_instant() {
    let stack = Stack::start().await;
    let t = "live";
    let (archive, truth_a, as_of) = two_phases(&stack, t).await;
    let before = scan_table(&stack, t, &["id"]).await;

    let (code, out, err) = restore(&stack, &archive, t, &["--as-of", &as_of, "--to-table", t]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("--in-place"), "{err}");

    let (code, out, err) = restore(
        &stack,
        &archive,
        t,
        &[
            "--as-of",
            &as_of,
            "--to-table",
            t,
            "--in-place",
            "--dry-run",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("10 puts (absent now), 10 overwrites, 10 deletes, 40 unchanged"),
        "{out}"
    );
    assert!(out.contains("dry run"), "{out}");
    assert_same(
        "a dry run changes nothing",
        &scan_table(&stack, t, &["id"]).await,
        &before,
    );
    assert!(
        records(&archive, t).is_empty(),
        "a dry run records no restore"
    );

    let (code, out, err) = restore(
        &stack,
        &archive,
        t,
        &["--as-of", &as_of, "--to-table", t, "--in-place"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("10 puts (absent now), 10 overwrites, 10 deletes"),
        "{out}"
    );
    assert!(
        out.contains("wrote 30 items (10 puts, 10 overwrites, 10 deletes)"),
        "{out}"
    );
    assert_same("in place", &scan_table(&stack, t, &["id"]).await, &truth_a);
    let recs = records(&archive, t);
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1].1["mode"], "in-place");
    assert_eq!(
        recs[1].1["caller"]["arn"], "unknown",
        "no STS on this stack"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn key_restores_one_deleted_and_one_overwritten_item() {
    let stack = Stack::start().await;
    let t = "items";
    let (archive, truth_a, as_of) = two_phases(&stack, t).await;
    let before = scan_table(&stack, t, &["id"]).await;
    let key = |i: i64| encode_item(&HashMap::from([("id".to_owned(), n(i))])).unwrap();
    // 3 was overwritten in phase B, 15 deleted, 105 created: undo each.
    for (id, what) in [(3, "overwrites"), (15, "puts"), (105, "deletes")] {
        let k = format!("id={id}");
        let (code, out, err) = restore(
            &stack,
            &archive,
            t,
            &[
                "--as-of",
                &as_of,
                "--to-table",
                t,
                "--in-place",
                "--key",
                &k,
            ],
        );
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains(&format!("1 {what}")), "{id}: {out}");
    }
    let now = scan_table(&stack, t, &["id"]).await;
    assert_eq!(now.get(&key(3)), truth_a.get(&key(3)));
    assert_eq!(now.get(&key(15)), truth_a.get(&key(15)));
    assert!(now.contains_key(&key(15)));
    assert!(!now.contains_key(&key(105)));
    // Nothing else moved.
    for (k, v) in &before {
        if ![key(3), key(15), key(105)].contains(k) {
            assert_eq!(now.get(k), Some(v), "{k} untouched");
        }
    }
    assert_eq!(now.len(), before.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_refuses_bad_input() {
    let stack = Stack::start().await;
    let t = "guarded";
    let (archive, _, as_of) = two_phases(&stack, t).await;
    // No such target, without --create.
    let (code, out, err) = restore(
        &stack,
        &archive,
        t,
        &["--as-of", &as_of, "--to-table", "nowhere"],
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("`nowhere` does not exist") && err.contains("--create"),
        "{err}"
    );
    // Before the archive began: the message names the first instant it answers for.
    let (code, out, err) = restore(
        &stack,
        &archive,
        t,
        &[
            "--as-of",
            "2020-01-01T00:00:00Z",
            "--to-table",
            "t-copy",
            "--create",
        ],
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("answers only from 20"), "{err}");
    let first = err
        .split("answers only from ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert!(
        time::OffsetDateTime::parse(first, &time::format_description::well_known::Rfc3339).is_ok(),
        "an RFC 3339 instant: {first}"
    );
    // ...and restoring at that very instant is accepted.
    let (code, out, err) = restore(
        &stack,
        &archive,
        t,
        &[
            "--as-of",
            first,
            "--to-table",
            "t-copy",
            "--create",
            "--dry-run",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    // A target whose key is a string, while the archived key is a number.
    stack
        .dynamodb
        .create_table()
        .table_name("wrong-key")
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let (code, out, err) = restore(
        &stack,
        &archive,
        t,
        &["--as-of", &as_of, "--to-table", "wrong-key"],
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("id:S") && err.contains("id:N"), "{err}");
    assert_eq!(
        scan_table(&stack, "wrong-key", &["id"]).await.len(),
        0,
        "nothing written before the check"
    );
    // No such archived table.
    let (code, out, err) = restore(
        &stack,
        &archive,
        "absent",
        &["--as-of", &as_of, "--to-table", "t-copy2", "--create"],
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("holds no files of table `absent`"), "{err}");
}
