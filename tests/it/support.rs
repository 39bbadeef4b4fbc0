//! Test support: real servers on 127.0.0.1 (DynamoDB Local with its test hooks, the moto server),
//! the archiver run as a real process, and a reader for the archive it writes.
//!
//! Each test starts its own servers on free ports, so tests never share state (DynamoDB Local's
//! time-dilation hook would trim every other test's streams) and can run in parallel.

#![allow(dead_code)]

use arrow_array::{
    Array, BinaryArray, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, StreamSpecification, StreamViewType,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::reader::FileReader;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn local_bin(name: &str) -> PathBuf {
    let p = repo().join(".local/bin").join(name);
    assert!(
        p.exists(),
        "{} is missing: run `scripts/local-stack install` (the README's test command does)",
        p.display()
    );
    p
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` until it returns `Some`, or panics with `what` at the deadline.
pub async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A child process killed when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_logged(mut cmd: Command, log: &Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    cmd.stdout(out.try_clone().unwrap())
        .stderr(out)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
}

fn wait_port(port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            panic!(
                "{what} did not listen on 127.0.0.1:{port}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// DynamoDB Local (with Streams) and, optionally, moto for S3.
pub struct Stack {
    pub dir: tempfile::TempDir,
    pub ddb: Server,
    pub control_port: u16,
    pub moto: Option<Server>,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub streams: aws_sdk_dynamodbstreams::Client,
    pub s3: Option<aws_sdk_s3::Client>,
    /// Firehose on moto (with S3).
    pub firehose: Option<aws_sdk_firehose::Client>,
}

impl Stack {
    pub async fn start() -> Self {
        Self::start_with(false).await
    }

    pub async fn start_with_s3() -> Self {
        Self::start_with(true).await
    }

    async fn start_with(with_moto: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (port, control_port) = (free_port(), free_port());
        let log = dir.path().join("ddb.log");
        let mut cmd = Command::new(local_bin("ddb-local"));
        cmd.args([
            "--port",
            &port.to_string(),
            "--control-port",
            &control_port.to_string(),
        ]);
        let ddb = Server {
            child: spawn_logged(cmd, &log),
            port,
            log: log.clone(),
        };
        let moto = with_moto.then(|| {
            let port = free_port();
            let log = dir.path().join("moto.log");
            let mut cmd = Command::new(local_bin("moto-server"));
            cmd.args(["--port", &port.to_string()]);
            Server {
                child: spawn_logged(cmd, &log),
                port,
                log,
            }
        });
        wait_port(port, "DynamoDB Local", &log);
        wait_port(control_port, "DynamoDB Local's control port", &log);
        if let Some(m) = &moto {
            wait_port(m.port, "moto", &m.log);
        }
        let config = sdk_config().await;
        let dynamodb = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&config)
                .endpoint_url(format!("http://127.0.0.1:{port}"))
                .build(),
        );
        let streams = aws_sdk_dynamodbstreams::Client::from_conf(
            aws_sdk_dynamodbstreams::config::Builder::from(&config)
                .endpoint_url(format!("http://127.0.0.1:{port}"))
                .build(),
        );
        let s3 = moto.as_ref().map(|m| {
            aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&config)
                    .endpoint_url(format!("http://127.0.0.1:{}", m.port))
                    .force_path_style(true)
                    .build(),
            )
        });
        let firehose = moto.as_ref().map(|m| {
            aws_sdk_firehose::Client::from_conf(
                aws_sdk_firehose::config::Builder::from(&config)
                    .endpoint_url(format!("http://127.0.0.1:{}", m.port))
                    .build(),
            )
        });
        let stack = Self {
            dir,
            ddb,
            control_port,
            moto,
            dynamodb,
            streams,
            s3,
            firehose,
        };
        // Listening is not serving: wait until a real call answers.
        let c = stack.dynamodb.clone();
        poll("DynamoDB Local to answer", Duration::from_secs(60), || {
            let c = c.clone();
            async move { c.list_tables().send().await.ok().map(|_| ()) }
        })
        .await;
        stack
    }

    /// Environment for an archiver process talking to this stack.
    pub fn env(&self) -> Vec<(String, String)> {
        let ddb = format!("http://127.0.0.1:{}", self.ddb.port);
        let mut env = vec![
            ("AWS_ACCESS_KEY_ID".into(), "test".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_ENDPOINT_URL_DYNAMODB".into(), ddb.clone()),
            ("AWS_ENDPOINT_URL_DYNAMODB_STREAMS".into(), ddb),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ];
        if let Some(m) = &self.moto {
            env.push((
                "AWS_ENDPOINT_URL_S3".into(),
                format!("http://127.0.0.1:{}", m.port),
            ));
            env.push((
                "AWS_ENDPOINT_URL_FIREHOSE".into(),
                format!("http://127.0.0.1:{}", m.port),
            ));
            env.push((
                "AWS_ENDPOINT_URL_STS".into(),
                format!("http://127.0.0.1:{}", m.port),
            ));
        } else {
            // No STS here: a closed port, so a caller-identity lookup fails at once instead of
            // trying the real endpoint.
            env.push(("AWS_ENDPOINT_URL_STS".into(), "http://127.0.0.1:1".into()));
        }
        env
    }

    /// Sends a line to DynamoDB Local's test-hook control port (`rollover`, `dilate <ms>`).
    pub fn control(&self, line: &str) {
        let mut s = TcpStream::connect(("127.0.0.1", self.control_port)).unwrap();
        writeln!(s, "{line}").unwrap();
        let mut answer = String::new();
        BufReader::new(s).read_line(&mut answer).unwrap();
        assert_eq!(answer.trim(), "ok", "control `{line}` answered {answer}");
    }

    /// Creates a table with a stream (NEW_AND_OLD_IMAGES by default) and a numeric hash key.
    pub async fn create_table(&self, name: &str, key: &str, view: Option<StreamViewType>) {
        let mut req = self
            .dynamodb
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(key)
                    .attribute_type(ScalarAttributeType::N)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(key)
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            );
        if let Some(v) = view {
            req = req.stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(v)
                    .build()
                    .unwrap(),
            );
        }
        req.send().await.unwrap();
    }

    /// Enables a NEW_AND_OLD_IMAGES stream on an existing table.
    pub async fn enable_stream(&self, table: &str) {
        self.dynamodb
            .update_table()
            .table_name(table)
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }

    pub async fn create_bucket(&self, bucket: &str) {
        let s3 = self.s3.as_ref().expect("stack started with S3");
        s3.create_bucket().bucket(bucket).send().await.unwrap();
    }

    /// The table's current stream ARN.
    pub async fn stream_arn(&self, table: &str) -> String {
        self.dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .unwrap()
            .table
            .unwrap()
            .latest_stream_arn
            .unwrap()
    }

    /// Every record of a table's stream, read independently of the archiver (all shards, from
    /// TRIM_HORIZON to the current end), as (event_id, sequence number) by shard.
    pub async fn stream_truth(&self, table: &str) -> Vec<(String, String, String)> {
        let arn = self.stream_arn(table).await;
        let desc = self
            .streams
            .describe_stream()
            .stream_arn(&arn)
            .send()
            .await
            .unwrap();
        let mut out = Vec::new();
        for shard in desc.stream_description.unwrap().shards.unwrap_or_default() {
            let sid = shard.shard_id.unwrap();
            let mut it = self
                .streams
                .get_shard_iterator()
                .stream_arn(&arn)
                .shard_id(&sid)
                .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
                .send()
                .await
                .unwrap()
                .shard_iterator;
            while let Some(i) = it {
                let page = self
                    .streams
                    .get_records()
                    .shard_iterator(i)
                    .send()
                    .await
                    .unwrap();
                let records = page.records.unwrap_or_default();
                let empty = records.is_empty();
                for r in records {
                    out.push((
                        sid.clone(),
                        r.event_id.unwrap(),
                        r.dynamodb.unwrap().sequence_number.unwrap(),
                    ));
                }
                it = page.next_shard_iterator;
                if empty {
                    break; // an open shard at its current end
                }
            }
        }
        out
    }
}

async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await
}

pub fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// The archiver binary, run as a real process.
pub struct Archiver {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Archiver {
    pub fn start(stack: &Stack, args: &[&str]) -> Self {
        Self::start_env(stack, args, &[])
    }

    pub fn start_env(stack: &Stack, args: &[&str], extra_env: &[(&str, &str)]) -> Self {
        let log = stack
            .dir
            .path()
            .join(format!("archiver-{}.log", free_port()));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dynamo-archiver"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .envs(stack.env())
            .envs(
                extra_env
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string())),
            );
        Self {
            child: Some(spawn_logged(cmd, &log)),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGTERM, then a clean exit (status 0) within the contract's 20 s (plus slack).
    pub fn stop(&mut self) {
        self.signal("TERM");
        let status = self.wait(Duration::from_secs(25));
        assert!(
            status.success(),
            "clean exit after SIGTERM; log:\n{}",
            self.log_text()
        );
    }

    /// Starts `run` on one table with a local archive in the stack's directory (see
    /// [`run_args`]); returns the worker and the archive directory.
    pub fn start_local(stack: &Stack, table: &str) -> (Self, PathBuf) {
        let archive = stack.dir.path().join("archive");
        let spool = stack.dir.path().join("spool");
        let a = Self::start(
            stack,
            &run_args(table, archive.to_str().unwrap(), spool.to_str().unwrap()),
        );
        (a, archive)
    }

    /// The exit status if the process exits within `timeout`, else `None` (still running).
    pub fn exited_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "archiver did not exit within {timeout:?}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs a short command to completion: (exit code, stdout, stderr).
    pub fn output(stack: &Stack, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_dynamo-archiver"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(stack.env())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs to completion and returns (exit code, log).
    pub fn run_to_exit(stack: &Stack, args: &[&str], timeout: Duration) -> (i32, String) {
        let mut a = Self::start(stack, args);
        let status = a.wait(timeout);
        (status.code().unwrap_or(-1), a.log_text())
    }
}

impl Drop for Archiver {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One row read back from the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub file: String,
    pub event_id: String,
    pub event_name: String,
    pub event_time_ms: i64,
    pub table_name: String,
    pub shard_id: Option<String>,
    pub sequence_number: Option<String>,
    pub keys: String,
    pub new_image: Option<String>,
    pub old_image: Option<String>,
    pub size_bytes: Option<i64>,
    pub user_identity: Option<String>,
    /// A quarantined row's reason and exact bytes.
    pub quarantine_reason: Option<String>,
    pub quarantined_record: Option<Vec<u8>>,
}

impl Row {
    pub fn seq_u128(&self) -> u128 {
        self.sequence_number.as_ref().unwrap().parse().unwrap()
    }
}

/// Every `.parquet` file under `dir`, relative paths sorted.
pub fn archive_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

/// The key-value metadata of one file.
pub fn file_metadata(path: &Path) -> HashMap<String, String> {
    let reader =
        parquet::file::reader::SerializedFileReader::new(std::fs::File::open(path).unwrap())
            .unwrap();
    reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .map(|k| (k.key.clone(), k.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

pub fn read_parquet_bytes(name: &str, bytes: bytes::Bytes) -> Vec<Row> {
    let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut rows = Vec::new();
    for b in batches {
        let col = |n: &str| {
            b.column_by_name(n)
                .unwrap_or_else(|| panic!("column {n}"))
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone()
        };
        let opt = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_owned());
        let (id, name_, keys, new, old, shard, seq, who, table) = (
            col("event_id"),
            col("event_name"),
            col("keys"),
            col("new_image"),
            col("old_image"),
            col("shard_id"),
            col("sequence_number"),
            col("user_identity"),
            col("table_name"),
        );
        let time = b
            .column_by_name("event_time")
            .unwrap()
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .unwrap()
            .clone();
        let size = b
            .column_by_name("size_bytes")
            .unwrap()
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .clone();
        let reason = b
            .column_by_name("quarantine_reason")
            .map(|c| c.as_any().downcast_ref::<StringArray>().unwrap().clone());
        let raw = b
            .column_by_name("quarantined_record")
            .map(|c| c.as_any().downcast_ref::<BinaryArray>().unwrap().clone());
        for i in 0..b.num_rows() {
            rows.push(Row {
                quarantine_reason: reason.as_ref().and_then(|r| opt(r, i)),
                quarantined_record: raw
                    .as_ref()
                    .and_then(|r| (!r.is_null(i)).then(|| r.value(i).to_vec())),
                file: name.to_owned(),
                event_id: id.value(i).to_owned(),
                event_name: name_.value(i).to_owned(),
                event_time_ms: time.value(i),
                table_name: table.value(i).to_owned(),
                shard_id: opt(&shard, i),
                sequence_number: opt(&seq, i),
                keys: keys.value(i).to_owned(),
                new_image: opt(&new, i),
                old_image: opt(&old, i),
                size_bytes: (!size.is_null(i)).then(|| size.value(i)),
                user_identity: opt(&who, i),
            });
        }
    }
    rows
}

/// Every row of every file under `dir`, in file order.
pub fn read_archive(dir: &Path) -> Vec<Row> {
    archive_files(dir)
        .iter()
        .flat_map(|p| {
            let name = p.strip_prefix(dir).unwrap().display().to_string();
            read_parquet_bytes(&name, bytes::Bytes::from(std::fs::read(p).unwrap()))
        })
        .collect()
}

/// Every row of every Parquet object under `s3://bucket/prefix` (`None` if a call fails, for
/// polling while a writer is busy).
pub async fn read_s3_archive(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Option<Vec<Row>> {
    let mut rows = Vec::new();
    for key in s3_keys(s3, bucket, prefix).await? {
        if key.ends_with(".parquet") {
            let body = s3_body(s3, bucket, &key).await?;
            rows.extend(read_parquet_bytes(&key, body));
        }
    }
    Some(rows)
}

/// Every key under `s3://bucket/prefix`, in listing order (`None` if a call fails).
pub async fn s3_keys(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Option<Vec<String>> {
    let mut keys = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        keys.extend(
            page.ok()?
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
    }
    Some(keys)
}

/// How many multipart uploads are open in `bucket`.
pub async fn open_uploads(s3: &aws_sdk_s3::Client, bucket: &str) -> usize {
    s3.list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .unwrap()
        .uploads()
        .len()
}

/// One object's bytes (`None` if the call fails).
pub async fn s3_body(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Option<bytes::Bytes> {
    Some(
        s3.get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .ok()?
            .body
            .collect()
            .await
            .ok()?
            .into_bytes(),
    )
}

/// Writes `items` with BatchWriteItem, `parallel` batches at a time.
pub async fn put_items(
    stack: &Stack,
    table: &str,
    items: Vec<HashMap<String, AttributeValue>>,
    parallel: usize,
) {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut tasks = Vec::new();
    for chunk in items.chunks(25) {
        let requests: Vec<WriteRequest> = chunk
            .iter()
            .map(|item| {
                WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(item.clone()))
                            .build()
                            .unwrap(),
                    )
                    .build()
            })
            .collect();
        let ddb = stack.dynamodb.clone();
        let table = table.to_owned();
        let permit = sem.clone().acquire_owned().await.unwrap();
        tasks.push(tokio::spawn(async move {
            let mut pending = requests;
            while !pending.is_empty() {
                let out = ddb
                    .batch_write_item()
                    .request_items(&table, pending)
                    .send()
                    .await
                    .unwrap();
                pending = out
                    .unprocessed_items()
                    .and_then(|m| m.get(&table))
                    .cloned()
                    .unwrap_or_default();
            }
            drop(permit);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Every item of a table (a plain Scan), keyed by its canonical DynamoDB JSON key.
pub async fn scan_table(
    stack: &Stack,
    table: &str,
    key_names: &[&str],
) -> HashMap<String, HashMap<String, AttributeValue>> {
    use dynamo_archiver::encode::ddb_json::encode_item;
    let mut out = HashMap::new();
    let mut pages = stack
        .dynamodb
        .scan()
        .table_name(table)
        .consistent_read(true)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for item in page.unwrap().items() {
            let keys: HashMap<String, AttributeValue> = key_names
                .iter()
                .map(|k| (k.to_string(), item[*k].clone()))
                .collect();
            out.insert(encode_item(&keys).unwrap(), item.clone());
        }
    }
    out
}

/// Waits until the archive under `archive` holds at least `n` rows; returns them.
pub async fn wait_for_rows(archive: &Path, n: usize, timeout: Duration) -> Vec<Row> {
    let archive = archive.to_owned();
    poll(&format!("{n} rows in the archive"), timeout, || {
        let archive = archive.clone();
        async move {
            let rows = read_archive(&archive);
            (rows.len() >= n).then_some(rows)
        }
    })
    .await
}

/// Common `run` arguments for tests: fast flushes, no HTTP port clash, text logs.
pub fn run_args<'a>(table: &'a str, archive: &'a str, spool: &'a str) -> Vec<&'a str> {
    let mut args = worker_args(table, "--archive", archive, spool, "off");
    args.extend(["--log-format", "text"]);
    args
}

/// `run` on one table with fast flushes, to `output_flag output` (`--archive URI` or
/// `--firehose NAME`), serving HTTP on `http` (or `off`); no `--log-format`, so callers choose.
pub fn worker_args<'a>(
    table: &'a str,
    output_flag: &'a str,
    output: &'a str,
    spool: &'a str,
    http: &'a str,
) -> Vec<&'a str> {
    vec![
        "run",
        "--table",
        table,
        output_flag,
        output,
        "--flush-interval",
        "1s",
        "--http",
        http,
        "--spool-dir",
        spool,
        "--discovery-interval",
        "2s",
        // Leases of a killed worker are taken after this long (default 10s).
        "--failover-time",
        "3s",
    ]
}

/// A plain HTTP/1.1 GET on 127.0.0.1 (the worker's own endpoint): (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::Read;
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

/// The value of a Prometheus sample, summed over its label sets (`name{...} value` lines).
pub fn metric_total(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// An S3 client (test credentials, path-style) for another endpoint, e.g. a fault proxy.
pub async fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let config = sdk_config().await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .endpoint_url(endpoint)
            .force_path_style(true)
            .build(),
    )
}
