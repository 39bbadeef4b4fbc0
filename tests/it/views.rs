//! `schema --infer`: the typed views, run by DuckDB on real archives and parsed for Athena.
//!
//! - On an archive of the hostile corpus, a backfill and a workload with updates and deletes:
//!   `<t>_latest` equals the table's final Scan, `<t>_as_of(ts)` equals `snapshot --as-of ts` at
//!   two instants, and every typed column of every row equals the value decoded from the JSON
//!   (tests/it/views.py decodes it independently). The Athena SQL parses as Trino's dialect.
//! - Attribute names with spaces, quotes, control characters, unicode and case-only
//!   differences give distinct, valid columns in both dialects.
//! - The options: `--dialect`, `--sample`, `--infer`, their environment variables and file keys,
//!   and bad values (exit 2).
//!
//! DynamoDB Local truncates event times to the minute; as in tests/it/snapshot.rs, its `dilate`
//! hook moves phase A's events two minutes back so the instants are unambiguous.

use crate::support::*;
use aws_sdk_dynamodb::types::{AttributeValue as A, StreamViewType};
use dynamo_archiver::clock::now_ms;
use dynamo_archiver::encode::ddb_json::encode_item;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// tests/it/views.py with the test venv's Python: its stdout as JSON.
fn views_py(args: &[&str]) -> Value {
    let python = repo().join(".local/venv/bin/python");
    let out = Command::new(python)
        .arg(repo().join("tests/it/views.py"))
        .args(args)
        .output()
        .expect("the test venv's python (scripts/local-stack install)");
    assert!(
        out.status.success(),
        "views.py {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("views.py prints JSON")
}

/// `schema --infer` of one table, in one dialect (or both), written to `file`.
fn schema(
    stack: &Stack,
    archive: &Path,
    table: &str,
    dialect: Option<&str>,
    file: &Path,
) -> String {
    let mut args = vec!["schema", "--infer", "--table", table, "--archive"];
    args.push(archive.to_str().unwrap());
    if let Some(d) = dialect {
        args.extend(["--dialect", d]);
    }
    let (code, out, err) = Archiver::output(stack, &args);
    assert_eq!(code, 0, "schema --infer: {err}");
    std::fs::write(file, &out).unwrap();
    out
}

fn canonical(truth: HashMap<String, HashMap<String, A>>) -> BTreeMap<String, String> {
    truth
        .into_iter()
        .map(|(k, item)| (k, encode_item(&item).unwrap()))
        .collect()
}

fn as_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

/// `keys` -> `item` of `snapshot --as-of`'s output.
fn snapshot_as_of(
    stack: &Stack,
    archive: &Path,
    table: &str,
    as_of: &str,
) -> BTreeMap<String, String> {
    use arrow_array::{Array, StringArray};
    let out = stack
        .dir
        .path()
        .join(format!("snap-{}", as_of.replace(':', "")));
    let (code, stdout, err) = Archiver::output(
        stack,
        &[
            "snapshot",
            "--archive",
            archive.to_str().unwrap(),
            "--table",
            table,
            "--as-of",
            as_of,
            "--out",
            out.to_str().unwrap(),
            "--log-format",
            "text",
        ],
    );
    assert_eq!(code, 0, "{stdout}{err}");
    let mut items = BTreeMap::new();
    for p in archive_files(&out) {
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(&p).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
        for b in reader {
            let b = b.unwrap();
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
                assert!(!k.is_null(i) && !v.is_null(i));
                items.insert(k.value(i).to_owned(), v.value(i).to_owned());
            }
        }
    }
    items
}

/// The hostile corpus under ids 1000 and up.
fn hostile_items() -> Vec<HashMap<String, A>> {
    corpus()
        .into_iter()
        .map(|mut it| {
            let id = match &it["id"] {
                A::N(n) => n.parse::<u64>().unwrap(),
                _ => unreachable!(),
            };
            it.insert("id".into(), n(1000 + id));
            it
        })
        .collect()
}

async fn update(stack: &Stack, table: &str, id: u64, set: &str, values: &[(&str, A)]) {
    let mut req = stack
        .dynamodb
        .update_item()
        .table_name(table)
        .key("id", n(id))
        .update_expression(set);
    for (k, v) in values {
        req = req.expression_attribute_values(*k, v.clone());
    }
    req.send().await.unwrap();
}

async fn put(stack: &Stack, table: &str, item: HashMap<String, A>) {
    stack
        .dynamodb
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

async fn delete(stack: &Stack, table: &str, id: u64) {
    stack
        .dynamodb
        .delete_item()
        .table_name(table)
        .key("id", n(id))
        .send()
        .await
        .unwrap();
}

/// Phase A beyond the workload: the hostile corpus goes through the stream as well.
async fn hostile_phase_a(stack: &Stack, t: &str) {
    let mut again = hostile_items()[0].clone();
    again.insert("id".into(), n(2000));
    put(stack, t, again).await;
    update(
        stack,
        t,
        1001,
        "SET big = :b, frac = :f",
        &[
            (":b", A::N("-99999999999999999999999999999999999999".into())),
            (":f", A::N("0.0000000000000000000000000000000000001".into())),
        ],
    )
    .await;
    update(
        stack,
        t,
        1003,
        "SET ss = :s, bs = :b",
        &[
            (":s", A::Ss(vec!["only".into(), "two".into()])),
            (
                ":b",
                A::Bs(vec![aws_smithy_types::Blob::new(vec![7u8, 8, 9])]),
            ),
        ],
    )
    .await;
}

async fn phase_b(stack: &Stack, t: &str) {
    for i in 0..30u64 {
        update(stack, t, i, "SET phase = :p", &[(":p", s("B"))]).await;
    }
    for i in 30..45u64 {
        delete(stack, t, i).await;
    }
    for i in 300..305u64 {
        update(stack, t, i, "SET v = :v", &[(":v", n(1))]).await;
    }
    // Two changes after phase A: as of then, the first one's old image is the state.
    for i in 300..303u64 {
        update(stack, t, i, "SET v = :v", &[(":v", n(2))]).await;
    }
    for i in 305..310u64 {
        delete(stack, t, i).await;
    }
    for i in 100..120u64 {
        put(
            stack,
            t,
            HashMap::from([("id".to_owned(), n(i)), ("phase".to_owned(), s("B"))]),
        )
        .await;
    }
    delete(stack, t, 1002).await;
    update(
        stack,
        t,
        1006,
        "SET emoji = :e, t = :t",
        &[(":e", s("🦀 new")), (":t", A::Bool(false))],
    )
    .await;
    let mut sets = hostile_items()[2].clone();
    sets.insert("id".into(), n(2001));
    put(stack, t, sets).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn typed_views_equal_the_scan_the_snapshot_and_the_json() {
    let t = "shop";
    let stack = Stack::start().await;
    stack.create_table(t, "id", None).await;
    // Before the stream: the hostile corpus, 200..230 (only SNAPSHOT rows know them), 300..310
    // (changed in phase B only: as of phase A, their state is the old image of that change).
    let mut before = hostile_items();
    before.extend(
        (200..230u64)
            .chain(300..310)
            .map(|i| HashMap::from([("id".to_owned(), n(i)), ("v".to_owned(), n(0))])),
    );
    put_items(&stack, t, before, 4).await;
    stack.enable_stream(t).await;
    let archive = stack.dir.path().join("archive");
    let (code, out, err) = Archiver::output(
        &stack,
        &[
            "backfill",
            "--table",
            t,
            "--archive",
            archive.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");

    workload(&stack, t, 80, 400, 4).await;
    hostile_phase_a(&stack, t).await;
    let truth_a = canonical(scan_table(&stack, t, &["id"]).await);
    let end_a = now_ms();
    stack.control("dilate 120000");
    phase_b(&stack, t).await;
    let truth_b = canonical(scan_table(&stack, t, &["id"]).await);
    assert_ne!(truth_a, truth_b, "phase B changed the table");

    let (mut worker, archive) = Archiver::start_local(&stack, t);
    let changes = stack.stream_truth(t).await.len();
    poll("every change archived", Duration::from_secs(120), || {
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

    // DuckDB: the script as printed, run whole.
    let sql_file = stack.dir.path().join("views-duckdb.sql");
    let sql = schema(&stack, &archive, t, Some("duckdb"), &sql_file);
    assert!(!sql.contains("-- Athena"), "one dialect alone");
    let instants = [rfc3339(end_a - 90_000), rfc3339(now_ms() + 3_600_000)];
    let got = views_py(&[
        "duckdb",
        sql_file.to_str().unwrap(),
        t,
        &instants[0],
        &instants[1],
    ]);
    assert_eq!(
        got["mismatch_count"], 0,
        "typed columns equal the JSON they came from; first mismatches: {}",
        got["mismatches"]
    );
    assert!(
        got["values"].as_u64().unwrap() > 2_000,
        "the check saw many values: {}",
        got["values"]
    );

    // The type mapping, on the corpus's hard cases (DuckDB's own column types).
    let types: HashMap<String, String> = got["columns"]["shop_changes_typed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c[0].as_str().unwrap().to_owned(),
                c[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mapping: HashMap<(String, String), String> = got["mapping"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let s = |i: usize| m[i].as_str().unwrap().to_owned();
            ((s(0), s(1)), s(2))
        })
        .collect();
    for (attr, tag, want) in [
        ("id", "N", "DECIMAL(38,0)"),
        ("big", "N", "DECIMAL(38,0)"),
        ("neg", "N", "DECIMAL(38,0)"),
        ("frac", "N", "DECIMAL(38,37)"),
        ("tiny", "N", "VARCHAR"),
        ("huge", "N", "VARCHAR"),
        ("bytes", "B", "BLOB"),
        ("ss", "SS", "VARCHAR[]"),
        ("ns", "NS", "VARCHAR[]"),
        ("bs", "BS", "BLOB[]"),
        ("deep", "L", "JSON[]"),
        ("nested", "M", "JSON"),
        ("inlist", "L", "JSON[]"),
        ("t", "BOOL", "BOOLEAN"),
        ("null", "NULL", "BOOLEAN"),
        ("ключ ü", "S", "VARCHAR"),
        ("v", "N", "DECIMAL(38,0)"),
        ("payload", "S", "VARCHAR"),
    ] {
        let column = mapping
            .get(&(attr.to_owned(), tag.to_owned()))
            .unwrap_or_else(|| panic!("a column for {attr} {tag}: {mapping:?}"));
        assert_eq!(types[column], want, "{attr} {tag} -> {column}");
    }

    assert_eq!(
        as_map(&got["latest"]),
        truth_b,
        "<t>_latest equals the final Scan"
    );
    for (instant, truth) in instants.iter().zip([&truth_a, &truth_b]) {
        let view = as_map(&got["as_of"][instant.as_str()]);
        let snapshot = snapshot_as_of(&stack, &archive, t, instant);
        assert_eq!(
            view, snapshot,
            "<t>_as_of({instant}) equals snapshot --as-of"
        );
        assert_eq!(&view, truth, "and the table as it was then");
    }

    // Athena: Glue DDL as Hive, the views and the template as Trino, every statement parsed.
    let athena_file = stack.dir.path().join("views-athena.sql");
    let athena = schema(&stack, &archive, t, Some("athena"), &athena_file);
    assert!(!athena.contains("-- DuckDB"), "one dialect alone");
    let parsed = views_py(&[
        "athena",
        athena_file.to_str().unwrap(),
        sql_file.to_str().unwrap(),
        t,
        &instants[0],
        &instants[1],
    ]);
    let kinds: Vec<(String, String)> = parsed["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s[0].as_str().unwrap().to_owned(),
                s[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want = [
        ("hive", "Create"),
        ("trino", "Create"),
        ("trino", "Create"),
        ("trino", "Select"),
    ];
    assert_eq!(
        kinds,
        want.map(|(a, b)| (a.to_owned(), b.to_owned())),
        "the Glue table, two views and the as-of template"
    );
    // The Athena SQL's logic, run by DuckDB after sqlglot translated it from Trino's dialect.
    assert_eq!(
        parsed["mismatch_count"], 0,
        "Athena's typed columns equal the JSON: {}",
        parsed["mismatches"]
    );
    assert_eq!(parsed["checked"], got["checked"], "the same columns");
    assert_eq!(parsed["latest"], got["latest"], "Athena's <t>_latest");
    assert_eq!(
        parsed["as_of"], got["as_of"],
        "Athena's as-of template at both instants"
    );

    // Without --dialect: both, as before.
    let both = schema(
        &stack,
        &archive,
        t,
        None,
        &stack.dir.path().join("both.sql"),
    );
    assert!(
        both.contains("-- Athena / Glue: table `shop`") && both.contains("-- DuckDB: table `shop`")
    );
}

/// Attribute names an engine could trip on, each with its own value in every item.
fn hostile_names() -> Vec<String> {
    let mut names: Vec<String> = [
        "first name",
        "quote\"d",
        "it's",
        "ключ ü",
        "emoji 😀",
        "Email",
        "email",
        "EMAIL",
        "old_email",
        "event_id",
        "keys",
        "item",
        "dt",
        "__rn",
        "__n",
        "tab\there",
        "line\nbreak",
        "a/b~c",
        "$.x[0]",
        "\u{212A}elvin",
        "kelvin",
        "-- not a comment",
        "semi;colon",
        "back\\slash",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    names.push("long".repeat(80));
    names.push(format!("{}tail", "long".repeat(80)));
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_attribute_names_make_distinct_typed_columns() {
    let t = "names";
    let stack = Stack::start().await;
    stack
        .create_table(t, "id", Some(StreamViewType::NewAndOldImages))
        .await;
    let names = hostile_names();
    for i in 0..6u64 {
        let mut item: HashMap<String, A> = names
            .iter()
            .enumerate()
            .map(|(j, name)| (name.clone(), s(format!("{j}:{i}"))))
            .collect();
        item.insert("id".into(), n(i));
        // One attribute of two types: a column per type.
        item.insert("mixed".into(), if i % 2 == 0 { s("text") } else { n(i) });
        put(&stack, t, item).await;
    }
    // A MODIFY, so old images with these names are checked too.
    stack
        .dynamodb
        .update_item()
        .table_name(t)
        .key("id", n(0))
        .update_expression("SET #a = :v")
        .expression_attribute_names("#a", "quote\"d")
        .expression_attribute_values(":v", s("changed"))
        .send()
        .await
        .unwrap();
    let (mut worker, archive) = Archiver::start_local(&stack, t);
    wait_for_rows(&archive, 7, Duration::from_secs(90)).await;
    worker.stop();

    let duck_file = stack.dir.path().join("names-duckdb.sql");
    schema(&stack, &archive, t, Some("duckdb"), &duck_file);
    let got = views_py(&["duckdb", duck_file.to_str().unwrap(), t]);
    assert_eq!(
        got["mismatch_count"], 0,
        "each column holds its own attribute: {}",
        got["mismatches"]
    );
    let mapping = got["mapping"].as_array().unwrap();
    let columns: Vec<&str> = mapping
        .iter()
        .flat_map(|m| [m[2].as_str(), m[3].as_str()])
        .flatten()
        .collect();
    for name in &names {
        assert!(
            mapping.iter().any(|m| m[0] == name.as_str() && m[1] == "S"),
            "a column for {name:?}"
        );
    }
    assert!(
        mapping.iter().any(|m| m[0] == "mixed" && m[1] == "S")
            && mapping.iter().any(|m| m[0] == "mixed" && m[1] == "N"),
        "one column per type of `mixed`"
    );
    for view in ["names_changes_typed", "names_latest"] {
        let described: Vec<String> = got["columns"][view]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c[0].as_str().unwrap().to_owned())
            .collect();
        let folded: HashSet<String> = described.iter().map(|c| c.to_lowercase()).collect();
        assert_eq!(
            folded.len(),
            described.len(),
            "{view}: distinct once lower-cased: {described:?}"
        );
        assert!(
            described
                .iter()
                .all(|c| !c.contains('\n') && c.len() <= 255),
            "{view}: one-line names of at most 255 bytes"
        );
    }
    let folded: HashSet<String> = columns.iter().map(|c| c.to_lowercase()).collect();
    assert_eq!(
        folded.len(),
        columns.len(),
        "every typed column distinct: {columns:?}"
    );
    assert_eq!(got["latest"].as_object().unwrap().len(), 6);

    let athena_file = stack.dir.path().join("names-athena.sql");
    schema(&stack, &archive, t, Some("athena"), &athena_file);
    let parsed = views_py(&[
        "athena",
        athena_file.to_str().unwrap(),
        duck_file.to_str().unwrap(),
        t,
    ]);
    assert_eq!(parsed["statements"].as_array().unwrap().len(), 4);
    assert_eq!(parsed["mismatch_count"], 0, "{}", parsed["mismatches"]);
    assert_eq!(parsed["checked"], got["checked"]);
    assert_eq!(parsed["latest"], got["latest"]);
}

/// Runs the binary with only `env` set: (exit code, stdout, stderr).
fn archiver(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dynamo-archiver"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn schema_options_flags_environment_file_and_bad_values() {
    let dir = tempfile::tempdir().unwrap();
    let base = ["schema", "--table", "users"];
    fn with<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        [&["schema", "--table", "users"][..], extra].concat()
    }

    // Without --infer, as before: both dialects; --dialect (flag, environment, file) picks one.
    let (code, both, _) = archiver(&base, &[]);
    assert_eq!(code, 0);
    assert!(both.contains("CREATE EXTERNAL TABLE IF NOT EXISTS `users_changes`"));
    assert!(both.contains("CREATE OR REPLACE VIEW \"users_changes\" AS"));
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "dialect = \"athena\"\n").unwrap();
    for (args, env, athena) in [
        (with(&["--dialect", "duckdb"]), vec![], false),
        (with(&["--dialect", "athena"]), vec![], true),
        (base.to_vec(), vec![("ARCHIVER_DIALECT", "duckdb")], false),
        (with(&["--config", cfg.to_str().unwrap()]), vec![], true),
        (
            with(&["--config", cfg.to_str().unwrap(), "--dialect", "duckdb"]),
            vec![],
            false,
        ),
    ] {
        let (code, out, err) = archiver(&args, &env);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert_eq!(
            out.contains("CREATE EXTERNAL TABLE"),
            athena,
            "{args:?} {env:?}"
        );
        assert_eq!(
            out.contains("CREATE OR REPLACE VIEW \"users_changes\" AS"),
            !athena,
            "{args:?} {env:?}"
        );
    }

    // Bad values: exit 2, a message naming the option.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = empty.to_str().unwrap();
    let bad_cfg = dir.path().join("bad.toml");
    std::fs::write(&bad_cfg, "sample = \"many\"\n").unwrap();
    for (args, env, needle) in [
        (with(&["--dialect", "oracle"]), vec![], "oracle"),
        (base.to_vec(), vec![("ARCHIVER_DIALECT", "mysql")], "mysql"),
        (with(&["--infer"]), vec![], "--infer reads the archive"),
        (
            with(&["--infer", "--archive", e, "--sample", "0"]),
            vec![],
            "--sample",
        ),
        (
            with(&["--infer", "--archive", e, "--sample", "lots"]),
            vec![],
            "lots",
        ),
        (
            with(&["--archive", e]),
            vec![("ARCHIVER_INFER", "true"), ("ARCHIVER_SAMPLE", "0")],
            "--sample",
        ),
        (
            with(&["--infer", "--archive", e]),
            vec![],
            "no archive files for table `users`",
        ),
        (
            with(&[
                "--infer",
                "--archive",
                e,
                "--config",
                bad_cfg.to_str().unwrap(),
            ]),
            vec![],
            "sample",
        ),
    ] {
        let (code, out, err) = archiver(&args, &env);
        assert_eq!(code, 2, "{args:?} {env:?}: {out}{err}");
        assert!(err.contains(needle), "{args:?}: `{needle}` in {err}");
    }

    // --help names each option's default and environment variable.
    let (code, help, _) = archiver(&["schema", "--help"], &[]);
    assert_eq!(code, 0);
    for needle in [
        "--infer",
        "ARCHIVER_INFER",
        "--sample",
        "ARCHIVER_SAMPLE",
        "[default: 100000]",
        "--dialect",
        "ARCHIVER_DIALECT",
        "[default: both]",
    ] {
        assert!(help.contains(needle), "--help mentions {needle}:\n{help}");
    }
}

/// `schema --infer` reads an S3 archive (ranged reads of footers and column chunks) and infers
/// exactly what it infers from a local copy of the same files.
#[tokio::test(flavor = "multi_thread")]
async fn inference_on_s3_equals_inference_on_a_local_copy() {
    let t = "orders";
    let stack = Stack::start_with_s3().await;
    stack.create_bucket("views").await;
    stack.create_table(t, "id", None).await;
    let items: Vec<HashMap<String, A>> = (0..3_000u64)
        .map(|i| {
            HashMap::from([
                ("id".to_owned(), n(i)),
                (
                    "status".to_owned(),
                    s(["placed", "paid", "shipped"][(i % 3) as usize]),
                ),
                ("total".to_owned(), n(format!("{}.{:02}", i * 7, i % 100))),
                ("big".to_owned(), n(format!("{}{:08}", "1".repeat(30), i))),
                ("note".to_owned(), s("n".repeat(200 + (i % 50) as usize))),
            ])
        })
        .collect();
    put_items(&stack, t, items, 4).await;
    let spool = stack.dir.path().join("spool");
    let (code, out, err) = Archiver::output(
        &stack,
        &[
            "backfill",
            "--table",
            t,
            "--archive",
            "s3://views/a",
            "--segments",
            "6",
            "--flush-size",
            "64KiB",
            "--spool-dir",
            spool.to_str().unwrap(),
            "--log-format",
            "text",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");

    let s3 = stack.s3.clone().unwrap();
    let local = stack.dir.path().join("copy");
    let keys = s3_keys(&s3, "views", "a/").await.unwrap();
    assert!(
        keys.iter().filter(|k| k.ends_with(".parquet")).count() >= 6,
        "{keys:?}"
    );
    for key in &keys {
        let path = local.join(key.strip_prefix("a/").unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, s3_body(&s3, "views", key).await.unwrap()).unwrap();
    }
    let infer = |archive: &str, sample: &str| {
        let (code, out, err) = Archiver::output(
            &stack,
            &[
                "schema",
                "--infer",
                "--table",
                t,
                "--archive",
                archive,
                "--dialect",
                "duckdb",
                "--sample",
                sample,
            ],
        );
        assert_eq!(code, 0, "{archive}: {err}");
        out
    };
    // From the inference's first line on; the raw view above it names the location.
    let typed = |sql: &str| sql[sql.find("-- Inferred by").expect("an inference")..].to_owned();
    for sample in ["1000", "100000"] {
        let on_s3 = infer("s3://views/a", sample);
        let on_disk = infer(local.to_str().unwrap(), sample);
        assert!(on_s3.contains("CREATE OR REPLACE SECRET") && !on_disk.contains("SECRET"));
        assert!(on_s3.contains("read_parquet('s3://views/a/orders/dt=*/*.parquet'"));
        assert_eq!(typed(&on_s3), typed(&on_disk), "--sample {sample}");
        for line in [
            r#"--   "total" N -> "total" and "old_total", DECIMAL(38, 2)"#,
            r#"--   "big" N -> "big" and "old_big", DECIMAL(38, 0)"#,
            r#"--   "id" N -> "id", DECIMAL(38, 0) (key, from `keys`)"#,
        ] {
            assert!(on_s3.contains(line), "{line} in\n{on_s3}");
        }
    }
    let (code, _, err) = Archiver::output(
        &stack,
        &[
            "schema",
            "--infer",
            "--table",
            t,
            "--archive",
            "s3://views/nothing-here",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no archive files for table `orders` under s3://views/nothing-here/orders/"),
        "{err}"
    );
}
