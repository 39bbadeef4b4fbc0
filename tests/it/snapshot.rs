//! `snapshot --as-of`: the table rebuilt from SNAPSHOT rows and changes equals a Scan of DynamoDB
//! Local taken at that time, item for item.
//!
//! DynamoDB Local truncates event times to the minute, so the instants are made unambiguous with
//! its `dilate` hook: after phase A, every stream event so far is moved two minutes into the past;
//! phase B's events then lie at least a minute after any of phase A's. The worker starts only
//! after both phases, so it archives the dilated times.

use crate::support::*;
use arrow_array::{Array, RecordBatch, StringArray};
use dynamo_archiver::clock::now_ms;
use dynamo_archiver::encode::ddb_json::encode_item;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// `keys` → `item` of the snapshot's output file(s) under `out`.
fn read_output(out: &Path) -> HashMap<String, String> {
    let mut items = HashMap::new();
    for p in archive_files(out) {
        let batches: Vec<RecordBatch> =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&p).unwrap())
                .unwrap()
                .build()
                .unwrap()
                .map(Result::unwrap)
                .collect();
        for b in batches {
            let col = |n: &str| {
                b.column_by_name(n)
                    .unwrap()
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .unwrap()
                    .clone()
            };
            let (k, v) = (col("keys"), col("item"));
            for i in 0..b.num_rows() {
                assert!(!k.is_null(i));
                items.insert(k.value(i).to_owned(), v.value(i).to_owned());
            }
        }
    }
    items
}

fn canonical(
    truth: HashMap<String, HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>,
) -> HashMap<String, String> {
    truth
        .into_iter()
        .map(|(k, item)| (k, encode_item(&item).unwrap()))
        .collect()
}

async fn phase_b(stack: &Stack) {
    let ddb = &stack.dynamodb;
    for i in 0..30u64 {
        ddb.update_item()
            .table_name("wallets")
            .key("id", n(i))
            .update_expression("SET phase = :p")
            .expression_attribute_values(":p", s("B"))
            .send()
            .await
            .unwrap();
    }
    for i in 30..45u64 {
        ddb.delete_item()
            .table_name("wallets")
            .key("id", n(i))
            .send()
            .await
            .unwrap();
    }
    for i in 300..305u64 {
        ddb.update_item()
            .table_name("wallets")
            .key("id", n(i))
            .update_expression("SET v = :v")
            .expression_attribute_values(":v", n(1))
            .send()
            .await
            .unwrap();
    }
    for i in 305..310u64 {
        ddb.delete_item()
            .table_name("wallets")
            .key("id", n(i))
            .send()
            .await
            .unwrap();
    }
    for i in 100..120u64 {
        ddb.put_item()
            .table_name("wallets")
            .item("id", n(i))
            .item("phase", s("B"))
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_as_of_equals_a_scan_taken_then() {
    let stack = Arc::new(Stack::start().await);
    stack.create_table("wallets", "id", None).await;
    // Before the stream: 0..50 (phase A rewrites them), 200..230 (never changed again: only
    // the SNAPSHOT rows know them), 300..310 (changed in phase B only: as of phase A, their
    // state is the old image of their first change).
    let before: Vec<_> = (0..50u64)
        .chain(200..230)
        .chain(300..310)
        .map(|i| HashMap::from([("id".to_owned(), n(i)), ("v".to_owned(), n(0))]))
        .collect();
    put_items(&stack, "wallets", before, 4).await;
    stack.enable_stream("wallets").await;
    let archive = stack.dir.path().join("archive");
    let (code, out, err) = Archiver::output(
        &stack,
        &[
            "backfill",
            "--table",
            "wallets",
            "--archive",
            archive.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");

    // Phase A, then the table as it stood.
    workload(&stack, "wallets", 80, 400, 4).await;
    let truth_a = canonical(scan_table(&stack, "wallets", &["id"]).await);
    let end_a = now_ms();
    stack.control("dilate 120000");
    // Phase B: updates, deletes and new items.
    phase_b(&stack).await;
    let truth_b = canonical(scan_table(&stack, "wallets", &["id"]).await);
    assert!(truth_a != truth_b, "phase B changed the table");

    let (mut worker, archive) = Archiver::start_local(&stack, "wallets");
    let changes = stack.stream_truth("wallets").await.len();
    poll("every change archived", Duration::from_secs(90), || {
        let archive = archive.clone();
        async move {
            let n = read_archive(&archive)
                .iter()
                .filter(|r| r.event_name != "SNAPSHOT")
                .count();
            (n >= changes).then_some(())
        }
    })
    .await;
    worker.stop();

    for (name, as_of, truth) in [
        ("after phase A", end_a - 90_000, &truth_a),
        ("now", now_ms() + 3_600_000, &truth_b),
    ] {
        let out = stack.dir.path().join(format!("out-{}", as_of));
        let (code, stdout, err) = Archiver::output(
            &stack,
            &[
                "snapshot",
                "--archive",
                archive.to_str().unwrap(),
                "--table",
                "wallets",
                "--as-of",
                &rfc3339(as_of),
                "--out",
                out.to_str().unwrap(),
                "--log-format",
                "text",
            ],
        );
        assert_eq!(code, 0, "{stdout}{err}");
        assert!(
            stdout.contains(&format!("{} items", truth.len())),
            "{name}: {stdout}"
        );
        let got = read_output(&out);
        let wrong: Vec<_> = truth
            .iter()
            .filter(|(k, v)| got.get(*k) != Some(v))
            .map(|(k, _)| k.clone())
            .take(5)
            .collect();
        assert!(
            wrong.is_empty(),
            "{name}: items rebuilt wrong, e.g. {wrong:?}"
        );
        assert_eq!(
            got.len(),
            truth.len(),
            "{name}: no item that was absent then"
        );
    }
}
