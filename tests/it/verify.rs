//! `verify`: an intact archive from a run with rollovers (and a backfill) passes; each fault,
//! injected on a copy, is caught with exit 1 and a report that names the file.

use crate::support::*;
use arrow_array::RecordBatch;
use aws_sdk_dynamodb::types::StreamViewType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn verify(stack: &Stack, archive: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec![
        "verify",
        "--archive",
        archive.to_str().unwrap(),
        "--log-format",
        "text",
    ];
    args.extend_from_slice(extra);
    Archiver::output(stack, &args)
}

fn copy_tree(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .args(["-a", from.to_str().unwrap(), to.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Stream files of the archive, by shard, in sequence order (end markers left out).
fn stream_files(archive: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut by_shard: BTreeMap<String, Vec<(u128, PathBuf)>> = BTreeMap::new();
    for p in archive_files(archive) {
        let name = p.file_name().unwrap().to_str().unwrap().to_owned();
        let in_ends = p.parent().unwrap().file_name().unwrap() == "_ends";
        if name.starts_with("snapshot-") || in_ends {
            continue;
        }
        // Layout 2: `<shard>_<first>.parquet`.
        let stem = name.trim_end_matches(".parquet");
        let (shard, first) = stem.rsplit_once('_').unwrap();
        let first: u128 = first.parse().unwrap();
        let shard = shard.to_owned();
        by_shard.entry(shard).or_default().push((first, p));
    }
    by_shard
        .into_iter()
        .map(|(s, mut v)| {
            v.sort();
            (s, v.into_iter().map(|(_, p)| p).collect())
        })
        .collect()
}

/// Rewrites a Parquet file without its last row, keeping its metadata.
fn remove_last_row(path: &Path) {
    let file = std::fs::File::open(path).unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let kv = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .cloned()
        .unwrap_or_default();
    let schema = builder.schema().clone();
    let batches: Vec<RecordBatch> = builder.build().unwrap().map(Result::unwrap).collect();
    let all = arrow_select::concat::concat_batches(&schema, &batches).unwrap();
    let fewer = all.slice(0, all.num_rows() - 1);
    let out = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(out, schema, None).unwrap();
    w.write(&fewer).unwrap();
    for e in kv.into_iter().filter(|e| e.key != "ARROW:schema") {
        w.append_key_value_metadata(e);
    }
    w.close().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_passes_an_intact_archive_and_names_each_fault() {
    let stack = Arc::new(Stack::start().await);
    stack
        .create_table("ledger", "id", Some(StreamViewType::NewAndOldImages))
        .await;
    let (archive, written, rollovers) =
        archive_with_rollovers(&stack, "ledger", 80, 2_400, 3).await;
    assert!(rollovers >= 2, "the run had rollovers");
    // A backfill into the same archive: its snapshot files are verified too.
    let (code, out, err) = Archiver::output(
        &stack,
        &[
            "backfill",
            "--table",
            "ledger",
            "--archive",
            archive.to_str().unwrap(),
            "--flush-size",
            "64KiB",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");

    // history: each key's timeline is what the workload did to it, in order, across rollovers.
    for (key, ops) in written.iter().take(5) {
        let (code, json, err) = Archiver::output(
            &stack,
            &[
                "history",
                "--archive",
                archive.to_str().unwrap(),
                "--table",
                "ledger",
                "--key",
                &format!("id={key}"),
                "--json",
                "--log-format",
                "text",
            ],
        );
        assert_eq!(code, 0, "{err}");
        let events: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
        let changes: Vec<&str> = events
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .filter(|e| *e != "SNAPSHOT")
            .collect();
        let want: Vec<&str> = ops.iter().map(|(op, _)| op.as_str()).collect();
        assert_eq!(changes, want, "history of id={key}");
        // Each MODIFY names `v` going up by one.
        for e in events.iter().filter(|e| e["event"] == "MODIFY") {
            let v = e["changes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["attribute"] == "v")
                .expect("v changed");
            let n = |x: &serde_json::Value| -> u64 {
                let inner: serde_json::Value = serde_json::from_str(x.as_str().unwrap()).unwrap();
                inner["N"].as_str().unwrap().parse().unwrap()
            };
            assert_eq!(n(&v["to"]), n(&v["from"]) + 1, "{e}");
        }
    }
    let (code, text, _) = Archiver::output(
        &stack,
        &[
            "history",
            "--archive",
            archive.to_str().unwrap(),
            "--table",
            "ledger",
            "--key",
            "id=N:0",
        ],
    );
    assert_eq!(code, 0);
    assert!(text.starts_with("history of id=N:0:"), "{text}");

    let (code, out, err) = verify(&stack, &archive, &[]);
    assert_eq!(code, 0, "an intact archive passes:\n{out}\n{err}");
    assert!(out.contains("intact"), "{out}");
    let (code, json, _) = verify(&stack, &archive, &["--json"]);
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report[0]["table"], "ledger");
    assert!(report[0]["ended_shards"].as_u64().unwrap() >= 2, "{json}");
    assert_eq!(report[0]["problems"].as_array().unwrap().len(), 0);

    // A shard with at least three files, so a middle one has a neighbour on each side.
    let shards = stream_files(&archive);
    let (shard, files) = shards
        .iter()
        .max_by_key(|(_, f)| f.len())
        .map(|(s, f)| (s.clone(), f.clone()))
        .unwrap();
    assert!(files.len() >= 3, "shard {shard} has {} files", files.len());
    let middle = files[1].strip_prefix(&archive).unwrap().to_owned();
    let name = middle.file_name().unwrap().to_str().unwrap().to_owned();

    type Fault = fn(&Path, &Path);
    let faults: [(&str, Fault); 4] = [
        ("a file deleted", |root, f| {
            std::fs::remove_file(root.join(f)).unwrap()
        }),
        ("a byte flipped", |root, f| {
            let p = root.join(f);
            let mut bytes = std::fs::read(&p).unwrap();
            let i = bytes.len() / 3;
            bytes[i] ^= 0x01;
            std::fs::write(&p, bytes).unwrap();
        }),
        ("a row removed", |root, f| remove_last_row(&root.join(f))),
        ("a file duplicated under another name", |root, f| {
            let p = root.join(f);
            let name = p.file_name().unwrap().to_str().unwrap().to_owned();
            // Same records, filed under the next day.
            let dt = p.parent().unwrap();
            let other = dt.with_file_name("dt=2099-01-01");
            std::fs::create_dir_all(&other).unwrap();
            std::fs::copy(&p, other.join(name)).unwrap();
        }),
    ];
    for (i, (what, inject)) in faults.iter().enumerate() {
        let copy = stack.dir.path().join(format!("copy{i}"));
        copy_tree(&archive, &copy);
        inject(&copy, &middle);
        let (code, out, err) = verify(&stack, &copy, &[]);
        assert_eq!(code, 1, "{what} is caught:\n{out}\n{err}");
        assert!(
            out.contains(&name),
            "{what}: the report names {name}:\n{out}"
        );
        assert!(out.contains("PROBLEM"), "{out}");
    }
}
