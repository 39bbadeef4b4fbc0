//! A proxy in front of DynamoDB Local that counts the writes a restore makes, independently of the
//! restore's own accounting: every BatchWriteItem request it forwards and DynamoDB answers with
//! 200 adds its put and delete requests (what DynamoDB wrote), and the ConsumedCapacity of each
//! answer is kept with the time it came, to measure the write rate. It also makes the faults the
//! restore must survive: every `throttle_every`-th BatchWriteItem is answered with DynamoDB's
//! throttling error without being forwarded, and every `partial_every`-th is forwarded with only
//! its first half, the rest answered as `UnprocessedItems` (what DynamoDB does when a partition is
//! throttled). Other calls pass untouched.

use super::wire::{self, read_message};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// 0: never.
    pub throttle_every: u64,
    pub partial_every: u64,
}

#[derive(Debug, Default)]
pub struct WriteStats {
    pub batch_calls: u64,
    /// Put and delete requests DynamoDB processed.
    pub writes: u64,
    pub throttled: u64,
    pub partial: u64,
    /// (when the answer came, its ConsumedCapacity), for every answered BatchWriteItem.
    pub consumed: Vec<(Instant, f64)>,
    pub first_request: Option<Instant>,
}

pub struct WriteCounter {
    pub port: u16,
    pub stats: Arc<Mutex<WriteStats>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WriteCounter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WriteCounter {
    pub async fn start(upstream_port: u16, faults: Faults) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stats = Arc::new(Mutex::new(WriteStats::default()));
        let st = stats.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let st = st.clone();
                connections.spawn(async move {
                    let _ = serve(client, upstream_port, faults, &st).await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Self { port, stats, task }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn writes(&self) -> u64 {
        self.stats.lock().unwrap().writes
    }
}

/// A message's head with one header replaced (or added) and some removed.
fn with_header(head: &[u8], name: &str, value: &str, drop: &[&str]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut lines: Vec<String> = Vec::new();
    for (i, line) in text.split("\r\n").enumerate() {
        if line.is_empty() {
            continue;
        }
        let header = line
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if i > 0 && (header == name || drop.contains(&header.as_str())) {
            continue;
        }
        lines.push(line.to_owned());
    }
    lines.push(format!("{name}: {value}"));
    format!("{}\r\n\r\n", lines.join("\r\n")).into_bytes()
}

fn throttled() -> Vec<u8> {
    let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"injected by the test"}"#;
    format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.0\r\nx-amzn-requestid: counter\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn serve(
    mut client: TcpStream,
    upstream_port: u16,
    faults: Faults,
    stats: &Mutex<WriteStats>,
) -> Option<()> {
    let mut upstream = TcpStream::connect(("127.0.0.1", upstream_port))
        .await
        .ok()?;
    let (mut cbuf, mut ubuf) = (Vec::new(), Vec::new());
    loop {
        let mut request = read_message(&mut client, &mut cbuf, wire::request).await?;
        let batch = request
            .header("x-amz-target")
            .is_some_and(|t| t.ends_with(".BatchWriteItem"));
        let mut held_back: Option<(String, Vec<Value>)> = None;
        let mut forwarded = 0u64;
        if batch {
            let n = {
                let mut s = stats.lock().unwrap();
                s.batch_calls += 1;
                s.first_request.get_or_insert_with(Instant::now);
                s.batch_calls
            };
            if faults.throttle_every > 0 && n % faults.throttle_every == 0 {
                stats.lock().unwrap().throttled += 1;
                client.write_all(&throttled()).await.ok()?;
                continue;
            }
            let mut body: Value = serde_json::from_slice(&request.body).ok()?;
            let items = body["RequestItems"].as_object_mut()?;
            let (table, writes) = items.iter_mut().next()?;
            let writes = writes.as_array_mut()?;
            if faults.partial_every > 0 && n % faults.partial_every == 0 && writes.len() > 1 {
                let rest = writes.split_off(writes.len() / 2);
                held_back = Some((table.clone(), rest));
                stats.lock().unwrap().partial += 1;
            }
            forwarded = writes.len() as u64;
            if held_back.is_some() {
                request.body = serde_json::to_vec(&body).ok()?;
                request.head = with_header(
                    &request.head,
                    "content-length",
                    &request.body.len().to_string(),
                    &[],
                );
            }
        }
        upstream.write_all(&request.head).await.ok()?;
        upstream.write_all(&request.body).await.ok()?;
        let mut response = read_message(&mut upstream, &mut ubuf, |_| false).await?;
        if batch && response.start().1 == "200" {
            let mut answer: Value = serde_json::from_slice(&response.body).ok()?;
            let consumed: f64 = answer["ConsumedCapacity"]
                .as_array()
                .map(|a| a.iter().filter_map(|c| c["CapacityUnits"].as_f64()).sum())
                .unwrap_or(0.0);
            {
                let mut s = stats.lock().unwrap();
                let left = answer["UnprocessedItems"]
                    .as_object()
                    .map(|m| m.values().filter_map(Value::as_array).map(Vec::len).sum())
                    .unwrap_or(0usize) as u64;
                s.writes += forwarded - left;
                s.consumed.push((Instant::now(), consumed));
            }
            if let Some((table, rest)) = held_back {
                let unprocessed = answer
                    .as_object_mut()?
                    .entry("UnprocessedItems")
                    .or_insert_with(|| Value::Object(Default::default()));
                let list = unprocessed
                    .as_object_mut()?
                    .entry(table)
                    .or_insert_with(|| Value::Array(Vec::new()));
                list.as_array_mut()?.extend(rest);
                response.body = serde_json::to_vec(&answer).ok()?;
                // The body changed: its checksum header no longer fits.
                response.head = with_header(
                    &response.head,
                    "content-length",
                    &response.body.len().to_string(),
                    &["x-amz-crc32"],
                );
            }
        }
        client.write_all(&response.head).await.ok()?;
        client.write_all(&response.body).await.ok()?;
    }
}
