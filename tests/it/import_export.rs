//! `import-export`: exports written by a test helper in the documented AWS layout (full and
//! incremental, gzip, manifests with MD5s), converted from a local folder and from S3.

use crate::support::*;
use aws_sdk_dynamodb::types::AttributeValue as A;
use base64::Engine;
use dynamo_archiver::encode::ddb_json::{decode_item, encode_item};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

type Item = HashMap<String, A>;

fn md5_b64(bytes: &[u8]) -> String {
    use md5::Digest;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(bytes))
}

fn gzip(text: &str) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(text.as_bytes()).unwrap();
    enc.finish().unwrap()
}

/// An item as an export writes it: DynamoDB JSON, attributes in no canonical order.
fn export_json(item: &Item) -> String {
    let mut names: Vec<&String> = item.keys().collect();
    names.sort();
    names.reverse();
    let attrs: Vec<String> = names
        .iter()
        .map(|n| {
            let one = encode_item(&HashMap::from([((*n).clone(), item[*n].clone())])).unwrap();
            one[1..one.len() - 1].to_owned()
        })
        .collect();
    format!("{{{}}}", attrs.join(","))
}

/// One incremental export line.
struct Change {
    micros: i64,
    keys: Item,
    new: Option<Item>,
    old: Option<Item>,
}

enum Kind {
    Full { export_time: &'static str },
    Incremental,
}

/// Writes an export under `root` (the bucket root) as `exports/AWSDynamoDB/<id>/...` and returns
/// the export's folder. `files` holds each data file's lines.
fn write_export(root: &Path, id: &str, kind: &Kind, files: &[Vec<String>]) -> PathBuf {
    let folder = root.join("exports/AWSDynamoDB").join(id);
    let data_dir = match kind {
        Kind::Full { .. } => folder.join("data"),
        Kind::Incremental => root.join("exports/AWSDynamoDB/data"),
    };
    std::fs::create_dir_all(&data_dir).unwrap();
    std::fs::create_dir_all(&folder).unwrap();
    let mut manifest_files = String::new();
    let mut total = 0;
    for (i, lines) in files.iter().enumerate() {
        let name = format!("{id}{i:04}ABCDEFGHIJKLMNOPQRSTUV.json.gz");
        let body = if lines.is_empty() {
            gzip("")
        } else {
            gzip(&(lines.join("\n") + "\n"))
        };
        std::fs::write(data_dir.join(&name), &body).unwrap();
        let rel = data_dir.strip_prefix(root).unwrap().join(&name);
        manifest_files.push_str(&format!(
            "{{\"itemCount\":{},\"md5Checksum\":\"{}\",\"etag\":\"0-1\",\"dataFileS3Key\":\"{}\"}}\n",
            lines.len(),
            md5_b64(&body),
            rel.display()
        ));
        total += lines.len();
    }
    let arn = format!("arn:aws:dynamodb:us-east-1:123456789012:table/things/export/{id}");
    let summary = match kind {
        Kind::Full { export_time } => format!(
            r#"{{"version":"2020-06-30","exportArn":"{arn}","startTime":"{export_time}","endTime":"{export_time}","tableArn":"arn:aws:dynamodb:us-east-1:123456789012:table/things","tableId":"x","exportTime":"{export_time}","s3Bucket":"exports-bucket","s3Prefix":"exports","s3SseAlgorithm":"AES256","s3SseKmsKeyId":null,"manifestFilesS3Key":"exports/AWSDynamoDB/{id}/manifest-files.json","billedSizeBytes":1,"itemCount":{total},"outputFormat":"DYNAMODB_JSON"}}"#
        ),
        Kind::Incremental => format!(
            r#"{{"version":"2023-08-01","exportArn":"{arn}","startTime":"2026-11-20T00:00:00Z","endTime":"2026-11-20T00:05:00Z","tableArn":"arn:aws:dynamodb:us-east-1:123456789012:table/things","tableId":"x","exportFromTime":"2026-11-18T00:00:00Z","exportToTime":"2026-11-20T00:00:00Z","s3Bucket":"exports-bucket","s3Prefix":"exports","s3SseAlgorithm":"AES256","s3SseKmsKeyId":null,"manifestFilesS3Key":"exports/AWSDynamoDB/{id}/manifest-files.json","billedSizeBytes":1,"itemCount":{total},"outputFormat":"DYNAMODB_JSON","outputView":"NEW_AND_OLD_IMAGES","exportType":"INCREMENTAL_EXPORT"}}"#
        ),
    };
    for (name, body) in [
        ("manifest-summary", summary + "\n"),
        ("manifest-files", manifest_files),
    ] {
        std::fs::write(folder.join(format!("{name}.json")), &body).unwrap();
        std::fs::write(folder.join(format!("{name}.md5")), md5_b64(body.as_bytes())).unwrap();
    }
    std::fs::write(folder.join("_started"), "").unwrap();
    folder
}

fn items(n: u64) -> Vec<Item> {
    let mut all = corpus();
    all.extend((1000..1000 + n).map(|i| {
        HashMap::from([
            ("id".to_owned(), A::N(i.to_string())),
            ("name".to_owned(), A::S(format!("item {i}"))),
            ("price".to_owned(), A::N(format!("{i}.99"))),
        ])
    }));
    all
}

fn full_lines(items: &[Item], files: usize) -> Vec<Vec<String>> {
    let mut out = vec![Vec::new(); files];
    for (i, item) in items.iter().enumerate() {
        // The last file stays empty, as for an empty partition.
        out[i % (files - 1)].push(format!("{{\"Item\":{}}}", export_json(item)));
    }
    out
}

const FULL_ID: &str = "01763596800000-abcd1234";

/// A full export of `items` in four data files (the last one empty), taken 2026-11-20 12:00.
fn full_export(root: &Path, items: &[Item]) -> PathBuf {
    write_export(
        root,
        FULL_ID,
        &Kind::Full {
            export_time: "2026-11-20T12:00:00.000Z",
        },
        &full_lines(items, 4),
    )
}

fn import(stack: &Stack, export: &str, archive: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec![
        "import-export",
        "--export",
        export,
        "--table",
        "things",
        "--archive",
        archive.to_str().unwrap(),
        "--log-format",
        "text",
    ];
    args.extend_from_slice(extra);
    Archiver::output(stack, &args)
}

fn assert_snapshot_rows(rows: &[Row], items: &[Item]) {
    assert_eq!(rows.len(), items.len(), "one row per exported item");
    let by_key: HashMap<String, &Item> = items
        .iter()
        .map(|i| {
            let keys = encode_item(&HashMap::from([("id".to_owned(), i["id"].clone())])).unwrap();
            (keys, i)
        })
        .collect();
    let ids: HashSet<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!(ids.len(), rows.len(), "event ids are unique");
    for r in rows {
        assert_eq!(r.event_name, "SNAPSHOT");
        let want = by_key[&r.keys];
        let image = r.new_image.as_deref().unwrap();
        assert_eq!(&decode_item(image).unwrap(), want);
        assert_eq!(image, encode_item(want).unwrap(), "canonical bytes");
        assert!(
            r.file
                .contains("/dt=2026-11-20/export-01763596800000-abcd1234-"),
            "{}",
            r.file
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_export_from_a_folder_and_from_s3() {
    let stack = Stack::start_with_s3().await;
    let root = stack.dir.path().join("bucket");
    let all = items(3_000);
    let id = FULL_ID;
    let folder = full_export(&root, &all);
    let archive = stack.dir.path().join("archive");
    let (code, out, err) = import(
        &stack,
        folder.to_str().unwrap(),
        &archive,
        &["--key-attributes", "id"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let count = dynamo_archiver::progress::thousands(all.len() as u64);
    assert!(
        out.contains(&format!("{count} items from 4 data files")),
        "{out}"
    );
    let rows = read_archive(&archive);
    assert_snapshot_rows(&rows, &all);
    assert_eq!(
        archive_files(&archive).len(),
        3,
        "one file per non-empty data file"
    );

    let (code, out, _) = import(
        &stack,
        folder.to_str().unwrap(),
        &archive,
        &["--key-attributes", "id"],
    );
    assert_eq!(code, 0);
    assert!(out.contains("already converted"), "{out}");

    // The same export in S3, the key attributes learned from the table.
    stack.create_table("things", "id", None).await;
    stack.create_bucket("exports-bucket").await;
    let s3 = stack.s3.clone().unwrap();
    for path in walk(&root) {
        let key = path.strip_prefix(&root).unwrap().display().to_string();
        s3.put_object()
            .bucket("exports-bucket")
            .key(key)
            .body(std::fs::read(&path).unwrap().into())
            .send()
            .await
            .unwrap();
    }
    let archive2 = stack.dir.path().join("archive2");
    let uri = format!("s3://exports-bucket/exports/AWSDynamoDB/{id}/");
    let (code, out, err) = import(&stack, &uri, &archive2, &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    let rows2 = read_archive(&archive2);
    assert_snapshot_rows(&rows2, &all);
    let ids = |rows: &[Row]| {
        rows.iter()
            .map(|r| r.event_id.clone())
            .collect::<HashSet<_>>()
    };
    assert_eq!(
        ids(&rows),
        ids(&rows2),
        "the same export gives the same event ids"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn an_incremental_export_becomes_changes_by_day() {
    let stack = Stack::start().await;
    let key = |i: u64| HashMap::from([("id".to_owned(), A::N(i.to_string()))]);
    let image = |i: u64, v: &str| {
        let mut m = key(i);
        m.insert("v".into(), A::S(v.into()));
        m
    };
    // 2026-11-18 and 2026-11-19, microseconds.
    let day1 = 1_794_960_000_000_000i64 + 5_000_123;
    let day2 = day1 + 86_400_000_000;
    let changes = [
        Change {
            micros: day1,
            keys: key(1),
            new: Some(image(1, "a")),
            old: None,
        },
        Change {
            micros: day1 + 1,
            keys: key(2),
            new: Some(image(2, "b2")),
            old: Some(image(2, "b1")),
        },
        Change {
            micros: day2,
            keys: key(3),
            new: None,
            old: Some(image(3, "c")),
        },
        Change {
            micros: day2 + 7,
            keys: key(4),
            new: Some(image(4, "d2")),
            old: Some(image(4, "d1")),
        },
    ];
    let line = |c: &Change| {
        let mut parts = vec![
            format!(
                "\"Metadata\":{{\"WriteTimestampMicros\":{{\"N\":\"{}\"}}}}",
                c.micros
            ),
            format!("\"Keys\":{}", export_json(&c.keys)),
        ];
        if let Some(o) = &c.old {
            parts.push(format!("\"OldImage\":{}", export_json(o)));
        }
        if let Some(n) = &c.new {
            parts.push(format!("\"NewImage\":{}", export_json(n)));
        }
        format!("{{{}}}", parts.join(","))
    };
    let files = vec![
        changes[..2].iter().map(line).collect(),
        changes[2..].iter().map(line).collect(),
        changes[..0].iter().map(line).collect(),
    ];
    let root = stack.dir.path().join("bucket");
    let folder = write_export(&root, "01763600000000-inc00001", &Kind::Incremental, &files);
    let archive = stack.dir.path().join("archive");
    let (code, out, err) = import(&stack, folder.to_str().unwrap(), &archive, &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    let rows = read_archive(&archive);
    let got: BTreeMap<&str, &Row> = rows.iter().map(|r| (r.keys.as_str(), r)).collect();
    let want_name = ["INSERT", "MODIFY", "REMOVE", "MODIFY"];
    assert_eq!(got.len(), 4);
    for (c, name) in changes.iter().zip(want_name) {
        let r = got[encode_item(&c.keys).unwrap().as_str()];
        let (n, t, new, old) = (&r.event_name, r.event_time_ms, &r.new_image, &r.old_image);
        let dt = &r.file.split("/dt=").nth(1).unwrap()[..10];
        assert_eq!(n, name);
        assert_eq!(t, c.micros / 1000);
        let want_dt = if c.micros < day2 {
            "2026-11-18"
        } else {
            "2026-11-19"
        };
        assert_eq!(dt, want_dt);
        assert_eq!(
            new.as_deref(),
            c.new.as_ref().map(|i| encode_item(i).unwrap()).as_deref()
        );
        assert_eq!(
            old.as_deref(),
            c.old.as_ref().map(|i| encode_item(i).unwrap()).as_deref()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_or_missing_files_are_named_and_nothing_half_done_looks_complete() {
    let stack = Stack::start().await;
    let root = stack.dir.path().join("bucket");
    let all = items(600);
    let id = FULL_ID;
    let folder = full_export(&root, &all);
    let data = folder.join("data");
    let mut names: Vec<PathBuf> = walk(&data);
    names.sort();
    let victim = names[1].clone();
    let good = std::fs::read(&victim).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x40;
    std::fs::write(&victim, &bad).unwrap();
    let archive = stack.dir.path().join("archive");
    let extra = ["--key-attributes", "id", "--parallel", "1"];
    let (code, out, err) = import(&stack, folder.to_str().unwrap(), &archive, &extra);
    assert_eq!(code, 1, "{out}\n{err}");
    let victim_name = victim.file_name().unwrap().to_str().unwrap();
    assert!(err.contains(victim_name) && err.contains("MD5"), "{err}");
    let stem = victim_name.trim_end_matches(".json.gz");
    let outputs: Vec<String> = archive_files(&archive)
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        !outputs.iter().any(|p| p.contains(stem)),
        "nothing of the corrupt file: {outputs:?}"
    );
    let imports = archive.join("things/_imports").join(id);
    assert!(
        !imports.join("finished.json").exists(),
        "not marked finished"
    );
    assert!(!imports.join(format!("{stem}.done.json")).exists());

    // A file with a good checksum but fewer lines than its manifest says.
    let short = gzip("{\"Item\":{\"id\":{\"N\":\"1\"}}}\n");
    std::fs::write(&victim, &short).unwrap();
    let manifest = std::fs::read_to_string(folder.join("manifest-files.json")).unwrap();
    let fixed = manifest.replace(&md5_b64(&good), &md5_b64(&short));
    std::fs::write(folder.join("manifest-files.json"), &fixed).unwrap();
    std::fs::write(folder.join("manifest-files.md5"), md5_b64(fixed.as_bytes())).unwrap();
    let (code, _, err) = import(&stack, folder.to_str().unwrap(), &archive, &extra);
    assert_eq!(code, 1);
    assert!(
        err.contains(victim_name) && err.contains("holds 1 items"),
        "{err}"
    );

    // Restored: the run continues and finishes with every item once.
    std::fs::write(&victim, &good).unwrap();
    std::fs::write(folder.join("manifest-files.json"), &manifest).unwrap();
    std::fs::write(
        folder.join("manifest-files.md5"),
        md5_b64(manifest.as_bytes()),
    )
    .unwrap();
    // A missing data file is named.
    std::fs::rename(&victim, folder.join("moved")).unwrap();
    let (code, _, err) = import(&stack, folder.to_str().unwrap(), &archive, &extra);
    assert_eq!(code, 1);
    assert!(
        err.contains(victim_name) && err.contains("missing"),
        "{err}"
    );
    std::fs::rename(folder.join("moved"), &victim).unwrap();
    let (code, out, err) = import(&stack, folder.to_str().unwrap(), &archive, &extra);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains("continuing an unfinished conversion"), "{err}");
    assert_snapshot_rows(&read_archive(&archive), &all);

    // A manifest that does not match its checksum file.
    std::fs::write(
        folder.join("manifest-summary.md5"),
        "AAAAAAAAAAAAAAAAAAAAAA==",
    )
    .unwrap();
    let (code, _, err) = import(&stack, folder.to_str().unwrap(), &archive, &extra);
    assert_eq!(code, 1);
    assert!(err.contains("manifest-summary.json"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_export_of_another_table_is_refused_unless_the_rename_is_named() {
    let stack = Stack::start().await;
    let root = stack.dir.path().join("bucket");
    let all = items(20);
    let folder = full_export(&root, &all);
    let archive = stack.dir.path().join("archive");
    let run = |table: &str, extra: &[&str]| {
        let mut args = vec![
            "import-export",
            "--export",
            folder.to_str().unwrap(),
            "--table",
            table,
            "--archive",
            archive.to_str().unwrap(),
            "--key-attributes",
            "id",
            "--log-format",
            "text",
        ];
        args.extend_from_slice(extra);
        Archiver::output(&stack, &args)
    };
    let (code, out, err) = run("renamed", &[]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(
        err.contains("`things`") && err.contains("`renamed`"),
        "names both: {err}"
    );
    assert!(err.contains("--from-table things"), "says the fix: {err}");
    assert!(archive_files(&archive).is_empty(), "nothing was archived");
    let (code, _, err) = run("renamed", &["--from-table", "someother"]);
    assert_eq!(code, 2, "{err}");
    let (code, out, err) = run("renamed", &["--from-table", "things"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let rows = read_archive(&archive);
    assert_eq!(rows.len(), all.len());
    assert!(rows
        .iter()
        .all(|r| r.table_name == "renamed" && r.file.starts_with("renamed/")));
}
