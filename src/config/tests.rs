//! The configuration's resolution, table-driven where it can be.

use super::restore::DEFAULT_RESTORE_PARALLEL;
use super::run::*;
use super::schema::DEFAULT_SAMPLE_ROWS;
use super::*;
use crate::archive::ArchiveUri;
use crate::types::TableName;
use std::time::Duration;

fn run_args(tables: &[&str], archive: Option<&str>) -> RunArgs {
    RunArgs {
        tables: tables.iter().map(|s| s.to_string()).collect(),
        archive: archive.map(str::to_owned),
        ..Default::default()
    }
}

#[test]
fn firehose_output_and_its_overflow_location() {
    let args = |firehose: Option<&str>, archive: Option<&str>, overflow: Option<&str>| RunArgs {
        firehose: firehose.map(str::to_owned),
        overflow_archive: overflow.map(str::to_owned),
        ..run_args(&["users"], archive)
    };
    let c = RunConfig::resolve(&args(
        Some("archive-lines"),
        None,
        Some("s3://big-items/over"),
    ))
    .unwrap();
    assert_eq!(
        c.worker.output,
        crate::pipeline::worker::Output::Firehose {
            stream: "archive-lines".into(),
            overflow: Some(ArchiveUri::S3 {
                bucket: "big-items".into(),
                prefix: "over".into()
            })
        }
    );
    let err = |a| RunConfig::resolve(&a).unwrap_err().to_string();
    assert!(err(args(Some("x"), Some("/tmp/a"), None)).contains("exactly one output"));
    assert!(err(args(None, None, None)).contains("exactly one output"));
    assert!(err(args(None, Some("/tmp/a"), Some("s3://b/o"))).contains("--firehose output only"));
    let arn = err(args(
        Some("arn:aws:firehose:us-east-1:1:deliverystream/x"),
        None,
        None,
    ));
    assert!(
        arn.contains("--firehose") && arn.contains("not the ARN"),
        "{arn}"
    );
    let bad = err(args(Some("x"), None, Some("s3://B_ad/o")));
    assert!(
        bad.starts_with("invalid --overflow-archive: `s3://B_ad/o`"),
        "{bad}"
    );
}

#[test]
fn defaults_apply() {
    let c = RunConfig::resolve(&run_args(&["users"], Some("/tmp/a"))).unwrap();
    assert_eq!(c.worker.flush_interval, DEFAULT_FLUSH_INTERVAL);
    assert_eq!(c.worker.flush_size_bytes, DEFAULT_FLUSH_SIZE_BYTES);
    assert_eq!(c.worker.lease_table, DEFAULT_LEASE_TABLE);
    assert_eq!(
        c.worker.start_position,
        crate::stream::StartPosition::TrimHorizon
    );
    assert_eq!(c.http, Some("0.0.0.0:9464".parse().unwrap()));
}

#[test]
fn flag_beats_file_beats_default() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "tables = [\"fromfile\"]\nflush_interval = \"5s\"\nflush_size = \"1MiB\"\narchive = \"/tmp/f\"",
    )
    .unwrap();
    let mut args = run_args(&[], None);
    args.common.config = Some(path);
    args.flush_interval = Some("7s".into());
    let c = RunConfig::resolve(&args).unwrap();
    assert_eq!(c.worker.tables, vec![TableName::new("fromfile")]);
    assert_eq!(c.worker.flush_interval, Duration::from_secs(7), "flag wins");
    assert_eq!(c.worker.flush_size_bytes, 1 << 20, "file beats default");
    assert_eq!(
        c.worker.output,
        crate::pipeline::worker::Output::Archive(ArchiveUri::Local("/tmp/f".into()))
    );
}

#[test]
fn bad_values_name_the_option() {
    let mut a = run_args(&["users"], Some("/tmp/a"));
    a.flush_interval = Some("10".into());
    let e = RunConfig::resolve(&a).unwrap_err().to_string();
    assert!(e.contains("--flush-interval"), "{e}");

    let e = RunConfig::resolve(&run_args(&[], Some("/tmp/a")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("--table"), "{e}");

    let e = RunConfig::resolve(&run_args(&["users"], None))
        .unwrap_err()
        .to_string();
    assert!(e.contains("--archive"), "{e}");

    let e = RunConfig::resolve(&run_args(&["x"], Some("/tmp/a")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`x`"), "{e}");
}

fn restore_args(table: &str, to: &str) -> RestoreArgs {
    RestoreArgs {
        archive: Some("/tmp/a".into()),
        tables: vec![table.into()],
        as_of: Some("2026-11-21T12:00:00Z".into()),
        to_table: Some(to.into()),
        ..Default::default()
    }
}

#[test]
fn restore_options_are_checked() {
    let ok = RestoreConfig::resolve(&restore_args("users", "users-restored")).unwrap();
    assert_eq!(ok.as_of_ms, 1_795_262_400_000);
    assert_eq!(ok.parallel, DEFAULT_RESTORE_PARALLEL);
    assert!(!ok.in_place && !ok.create && ok.keys.is_none());
    // (what, change, option named in the message)
    type Change = fn(&mut RestoreArgs);
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "into the live table",
            |a| a.to_table = Some("users".into()),
            "--in-place",
        ),
        (
            "create and in place",
            |a| {
                a.create = true;
                a.in_place = true
            },
            "--create",
        ),
        ("no target", |a| a.to_table = None, "--to-table"),
        (
            "bad target",
            |a| a.to_table = Some("x".into()),
            "--to-table",
        ),
        ("no instant", |a| a.as_of = None, "--as-of"),
        (
            "bad instant",
            |a| a.as_of = Some("yesterday".into()),
            "--as-of",
        ),
        ("zero rate", |a| a.max_wcu = Some(0.0), "--max-wcu"),
        ("bad key", |a| a.keys = vec!["id".into()], "--key"),
        ("no parallelism", |a| a.parallel = Some(0), "--parallel"),
        (
            "three key attributes",
            |a| a.key_attributes = vec!["a".into(), "b".into(), "c".into()],
            "--key-attributes",
        ),
    ];
    for (what, change, option) in cases {
        let mut a = restore_args("users", "users-restored");
        change(&mut a);
        let e = RestoreConfig::resolve(&a).unwrap_err().to_string();
        assert!(e.contains(option), "{what}: {e}");
    }
    let mut live = restore_args("users", "users");
    live.in_place = true;
    assert!(RestoreConfig::resolve(&live).unwrap().in_place);
}

#[test]
fn schema_infer_sample_and_dialect() {
    let args = |infer: bool, archive: Option<&str>, sample: Option<u64>| SchemaArgs {
        tables: vec!["users".into()],
        archive: archive.map(str::to_owned),
        infer,
        sample,
        ..Default::default()
    };
    let c = SchemaConfig::resolve(&args(false, None, None)).unwrap();
    assert_eq!(
        (c.infer, c.dialect),
        (None, None),
        "as before: no sample, both dialects"
    );
    let c = SchemaConfig::resolve(&args(true, Some("/a"), None)).unwrap();
    assert_eq!(c.infer, Some(DEFAULT_SAMPLE_ROWS));
    let c = SchemaConfig::resolve(&args(true, Some("/a"), Some(7))).unwrap();
    assert_eq!(c.infer, Some(7));
    let err = |a| SchemaConfig::resolve(&a).unwrap_err().to_string();
    assert!(err(args(true, None, None)).contains("--infer reads the archive"));
    assert!(err(args(true, Some("/a"), Some(0))).contains("--sample"));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "infer = true\nsample = 5\ndialect = \"duckdb\"\narchive = \"/f\"",
    )
    .unwrap();
    let mut a = args(false, None, None);
    a.common.config = Some(path);
    let c = SchemaConfig::resolve(&a).unwrap();
    assert_eq!(
        (c.infer, c.dialect),
        (Some(5), Some(crate::views::render::Dialect::Duckdb))
    );
    a.dialect = Some(cli::Dialect::Athena);
    a.sample = Some(9);
    let c = SchemaConfig::resolve(&a).unwrap();
    assert_eq!(
        (c.infer, c.dialect),
        (Some(9), Some(crate::views::render::Dialect::Athena)),
        "flags win"
    );
}

#[test]
fn tables_are_deduplicated() {
    let c = RunConfig::resolve(&run_args(&["users", "users", "orders"], Some("/a"))).unwrap();
    assert_eq!(c.worker.tables.len(), 2);
}
