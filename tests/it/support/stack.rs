//! The local AWS stack of one test: DynamoDB Local (with its test hooks) and, when asked, the
//! moto server, each on a free port, each killed when the test ends.

use super::*;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    StreamSpecification, StreamViewType,
};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

pub(crate) fn spawn_logged(mut cmd: Command, log: &Path) -> Child {
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
