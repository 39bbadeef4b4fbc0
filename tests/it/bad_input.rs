//! Bad input gets a non-zero exit and a message that names the thing and the fix.

use crate::support::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn assert_config_error(code: i32, log: &str, needles: &[&str]) {
    assert_eq!(
        code, 2,
        "exit status 2 for a configuration error; log:\n{log}"
    );
    for n in needles {
        assert!(log.contains(n), "message should contain `{n}`; log:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_table_and_table_without_stream() {
    let stack = Stack::start().await;
    let spool = stack.dir.path().join("spool");
    let archive = stack.dir.path().join("archive");
    let (a, sp) = (archive.to_str().unwrap(), spool.to_str().unwrap());

    let (code, log) = Archiver::run_to_exit(&stack, &run_args("nosuchtable", a, sp), T);
    assert_config_error(code, &log, &["`nosuchtable` does not exist"]);

    stack.create_table("nostream", "id", None).await;
    let (code, log) = Archiver::run_to_exit(&stack, &run_args("nostream", a, sp), T);
    assert_config_error(
        code,
        &log,
        &["`nostream` has no stream", "NEW_AND_OLD_IMAGES"],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_options_and_config_files() {
    let stack = Stack::start().await;
    let dir = stack.dir.path();
    let spool = dir.join("spool");
    let sp = spool.to_str().unwrap();
    stack
        .create_table(
            "users",
            "id",
            Some(aws_sdk_dynamodb::types::StreamViewType::NewAndOldImages),
        )
        .await;

    let cfg = dir.join("bad.toml");
    std::fs::write(&cfg, "tables = [\"users\"]\nflush_intervall = \"5s\"\n").unwrap();
    let (code, log) = Archiver::run_to_exit(
        &stack,
        &[
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--archive",
            "/tmp/x",
        ],
        T,
    );
    assert_config_error(code, &log, &["flush_intervall", "bad.toml"]);

    let (code, log) = Archiver::run_to_exit(&stack, &run_args("users", "s3:/bucket/x", sp), T);
    assert_config_error(
        code,
        &log,
        &["--archive `s3:/bucket/x`", "s3://bucket/prefix"],
    );

    let (code, log) =
        Archiver::run_to_exit(&stack, &run_args("users", "/proc/archive-here", sp), T);
    assert_config_error(code, &log, &["/proc/archive-here", "not writable"]);

    let (code, log) = Archiver::run_to_exit(
        &stack,
        &[
            "run",
            "--table",
            "users",
            "--archive",
            "/tmp/x",
            "--flush-interval",
            "10",
        ],
        T,
    );
    assert_config_error(code, &log, &["--flush-interval", "10s"]);

    let (code, log) = Archiver::run_to_exit(&stack, &["run", "--archive", "/tmp/x"], T);
    assert_config_error(code, &log, &["--table NAME", "ARCHIVER_TABLES"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_bucket_is_named() {
    let stack = Stack::start_with_s3().await;
    stack
        .create_table(
            "users",
            "id",
            Some(aws_sdk_dynamodb::types::StreamViewType::NewAndOldImages),
        )
        .await;
    let spool = stack.dir.path().join("spool");
    let (code, log) = Archiver::run_to_exit(
        &stack,
        &run_args(
            "users",
            "s3://no-such-bucket/archive",
            spool.to_str().unwrap(),
        ),
        T,
    );
    assert_config_error(code, &log, &["no-such-bucket", "does not exist"]);
}

#[test]
fn help_documents_every_option_with_default_and_variable() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dynamo-archiver"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for (flag, env, default) in [
        ("--table", "ARCHIVER_TABLES", "required"),
        ("--archive", "ARCHIVER_ARCHIVE", ""),
        ("--firehose", "ARCHIVER_FIREHOSE", ""),
        (
            "--lease-table",
            "ARCHIVER_LEASE_TABLE",
            "dynamo-archiver-leases",
        ),
        ("--worker-id", "ARCHIVER_WORKER_ID", "hostname:pid"),
        (
            "--start-position",
            "ARCHIVER_START_POSITION",
            "trim-horizon",
        ),
        ("--flush-interval", "ARCHIVER_FLUSH_INTERVAL", "60s"),
        ("--flush-size", "ARCHIVER_FLUSH_SIZE", "128MiB"),
        ("--http", "ARCHIVER_HTTP", "0.0.0.0:9464"),
        ("--log-format", "ARCHIVER_LOG_FORMAT", "json"),
        ("--failover-time", "ARCHIVER_FAILOVER_TIME", "10s"),
        ("--config", "ARCHIVER_CONFIG", ""),
        ("--sse-kms-key", "ARCHIVER_SSE_KMS_KEY", ""),
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
        assert!(help.contains(env), "{env} missing from --help:\n{help}");
        assert!(
            help.contains(default),
            "default {default} missing from --help"
        );
    }
}

/// Every option of every command names its environment variable (the SPEC's one pattern:
/// `--some-option` / `ARCHIVER_SOME_OPTION`) and its default, or says it is required.
#[test]
fn every_command_documents_each_option_the_same_way() {
    for command in ["run", "leases", "schema", "backfill", "import-export"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_dynamo-archiver"))
            .args([command, "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8(out.stdout).unwrap();
        let mut blocks: Vec<String> = Vec::new();
        for line in help
            .lines()
            .skip_while(|l| !l.starts_with("Options:"))
            .skip(1)
        {
            let indent = line.len() - line.trim_start().len();
            if indent <= 6 && line.trim_start().starts_with('-') {
                blocks.push(line.trim().to_owned());
            } else if let Some(b) = blocks.last_mut() {
                b.push(' ');
                b.push_str(line.trim());
            }
        }
        assert!(blocks.len() > 3, "{command}: {help}");
        for block in blocks {
            let flag = block
                .split_whitespace()
                .find(|w| w.starts_with("--"))
                .unwrap()
                .trim_end_matches(',');
            if flag == "--help" || flag == "--version" {
                continue;
            }
            let mut env = format!("ARCHIVER_{}", flag[2..].replace('-', "_").to_uppercase());
            if env == "ARCHIVER_TABLE" {
                env.push('S');
            }
            assert!(
                block.contains(&format!("[env: {env}=")),
                "{command} {flag} does not name {env}: {block}"
            );
            let documented = block.contains("[default:") || block.contains("[required");
            assert!(
                documented || flag == "--config",
                "{command} {flag} names no default: {block}"
            );
        }
    }
}
