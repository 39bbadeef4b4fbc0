//! A fault-injecting DynamoDB Streams server for tests: it speaks enough of the Streams JSON
//! protocol (DescribeStream with paging, GetShardIterator, GetRecords) for the real SDK, serves a
//! scripted shard graph that DynamoDB Local cannot make (a split into two children, many open
//! shards, chains of rollovers, a parent trimmed while it is read), and injects faults from a
//! seeded random source: LimitExceededException, HTTP 500 and 503, a reset connection, a 200 whose
//! body is cut off, latency, empty pages with data further on, a page cap in bytes (AWS's 1 MB),
//! and iterators that expire.
//!
//! Every record's item carries its key `id` and a per-key version `v`, so a test can check from
//! the archive alone that nothing was lost or repeated and that each key's versions come in
//! order (lineage first, then sequence number).

use crate::sim::wire::{self, read_message};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// One stream record as the server holds it.
#[derive(Debug, Clone)]
pub struct Rec {
    pub seq: u128,
    pub key: u64,
    pub version: u64,
    pub event: &'static str,
    pub event_id: String,
    pub time_s: f64,
    pub payload: usize,
    /// Served only from this instant (epoch ms; 0: from the start): records that "happen" while
    /// the worker runs, for latency measurements.
    pub visible_ms: i64,
    /// Served verbatim in place of the rendered record (bytes that need not be valid JSON values
    /// or UTF-8: a record the archiver must quarantine).
    pub raw: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct Shard {
    pub id: String,
    pub parent: Option<String>,
    pub records: Vec<Rec>,
    pub closed: bool,
    /// Records below this index are trimmed (no longer readable).
    pub trimmed_below: usize,
    /// Once a read reaches this index, everything below `trim_to` is trimmed (a trim while the
    /// shard is read: the records between are lost, the gap must be reported).
    pub trim_when_read_to: Option<(usize, usize)>,
    /// The records a scripted trim made unreadable before they were read: [from, to).
    pub lost: Option<(usize, usize)>,
}

/// The scripted stream.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    pub shards: Vec<Shard>,
}

/// Fault rates (each per call, in [0, 1]) and shapes.
#[derive(Debug, Clone)]
pub struct Faults {
    pub seed: u64,
    pub throttle: f64,
    /// A 500 InternalServerError or a 503 ServiceUnavailable, one or the other at random.
    pub server_error: f64,
    pub reset: f64,
    /// A 200 whose body is cut off halfway (a proxy or a broken connection can do this).
    pub garbage: f64,
    /// An answer delayed by up to this long.
    pub max_latency: Duration,
    /// Every DescribeStream answered this much later (a slow listing).
    pub describe_delay: Duration,
    /// An empty page (with the iterator unchanged) although records follow.
    pub empty_page: f64,
    /// Every Nth GetRecords call with an iterator fails with ExpiredIteratorException.
    pub expire_every: Option<u64>,
    /// Most bytes of records in one page (AWS: 1 MB).
    pub page_bytes: usize,
    /// Most shards in one DescribeStream page (AWS allows up to 100; smaller pages exercise paging).
    pub describe_page: usize,
    /// The first GetRecords calls answer with these faults, one each, before the rates apply:
    /// every kind a scenario asserts on then happens whatever the order of the calls (a rate of
    /// 1% over a few hundred calls can otherwise miss, and did).
    pub script: Vec<Injected>,
}

/// A fault to answer one call with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    Throttle,
    ServerError,
    Unavailable,
    Reset,
    Garbage,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            seed: 1,
            throttle: 0.0,
            server_error: 0.0,
            reset: 0.0,
            garbage: 0.0,
            max_latency: Duration::ZERO,
            describe_delay: Duration::ZERO,
            empty_page: 0.0,
            expire_every: None,
            page_bytes: 1 << 20,
            describe_page: 100,
            script: Vec::new(),
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub calls: u64,
    pub get_records: u64,
    pub throttled: u64,
    pub server_errors: u64,
    pub unavailable: u64,
    pub resets: u64,
    pub garbage: u64,
    pub empty_pages: u64,
    pub expired: u64,
    pub trimmed_answers: u64,
    pub capped_pages: u64,
    pub describe_pages: u64,
}

struct State {
    graph: Graph,
    rng: StdRng,
    stats: Stats,
    /// Entries of `Faults::script` used so far.
    scripted: usize,
}

pub struct FaultStreams {
    pub port: u16,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultStreams {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const SEQ_BASE: u128 = 400_000_000_000_000_000_000;

impl Graph {
    /// Records for `keys` keys, versions 1..=`versions` each, spread over shards in the order of
    /// `route(key, version) -> shard index`; sequence numbers rise per shard.
    pub fn fill(
        mut shards: Vec<Shard>,
        keys: u64,
        versions: u64,
        payload: usize,
        route: impl Fn(u64, u64) -> usize,
    ) -> Self {
        let now = (dynamo_archiver::clock::now_ms() / 1000) as f64;
        for v in 1..=versions {
            for k in 0..keys {
                let s = route(k, v);
                let shard = &mut shards[s];
                let i = shard.records.len() as u128;
                shard.records.push(Rec {
                    seq: SEQ_BASE + (s as u128) * 1_000_000_000 + i * 7 + 3,
                    key: k,
                    version: v,
                    event: if v == 1 { "INSERT" } else { "MODIFY" },
                    event_id: format!("{s:04}-{k:08}-{v:06}"),
                    time_s: now - 60.0,
                    payload,
                    visible_ms: 0,
                    raw: None,
                });
            }
        }
        Self { shards }
    }

    pub fn shard(id: &str, parent: Option<&str>, closed: bool) -> Shard {
        Shard {
            id: id.to_owned(),
            parent: parent.map(str::to_owned),
            records: Vec::new(),
            closed,
            trimmed_below: 0,
            trim_when_read_to: None,
            lost: None,
        }
    }

    /// Depth of each shard in its lineage (roots 0), for ordering rows.
    pub fn depth(&self, id: &str) -> usize {
        let mut d = 0;
        let mut cur = id.to_owned();
        while let Some(p) = self
            .shards
            .iter()
            .find(|s| s.id == cur)
            .and_then(|s| s.parent.clone())
        {
            d += 1;
            cur = p;
        }
        d
    }
}

/// Marks where a verbatim record goes in a page (spliced in by [`splice_raw`] as the answer is
/// written: a page is built as text, and verbatim records need not be).
const RAW_MARK: &str = "\"@@RAW:";

/// One record as GetRecords JSON, written directly (the soak serves millions of them).
fn record_text(r: &Rec) -> String {
    if r.raw.is_some() {
        return format!("{RAW_MARK}{}@@\"", r.seq);
    }
    let image = |v: u64| {
        format!(
            r#"{{"id":{{"N":"{}"}},"v":{{"N":"{v}"}},"payload":{{"S":"{}"}}}}"#,
            r.key,
            "p".repeat(r.payload)
        )
    };
    let old = if r.version > 1 {
        format!(r#","OldImage":{}"#, image(r.version - 1))
    } else {
        String::new()
    };
    format!(
        r#"{{"eventID":"{id}","eventName":"{ev}","eventVersion":"1.1","eventSource":"aws:dynamodb","awsRegion":"us-east-1","dynamodb":{{"ApproximateCreationDateTime":{t:.3},"Keys":{{"id":{{"N":"{k}"}}}},"NewImage":{new}{old},"SequenceNumber":"{seq}","SizeBytes":{size},"StreamViewType":"NEW_AND_OLD_IMAGES"}}}}"#,
        id = r.event_id,
        ev = r.event,
        t = r.time_s,
        k = r.key,
        new = image(r.version),
        seq = r.seq,
        size = 40 + r.payload,
    )
}

/// Iterators name the shard, the index of the next record and a serial (for expiry).
fn iterator(shard: &str, index: usize, serial: u64) -> String {
    format!("fault|{shard}|{index}|{serial}")
}

fn parse_iterator(it: &str) -> Option<(String, usize, u64)> {
    let mut p = it.split('|');
    (p.next()? == "fault").then_some(())?;
    Some((
        p.next()?.to_owned(),
        p.next()?.parse().ok()?,
        p.next()?.parse().ok()?,
    ))
}

fn error(code: &str, message: &str) -> (u16, String) {
    let status = match code {
        "InternalServerError" => 500,
        "ServiceUnavailable" => 503,
        _ => 400,
    };
    (
        status,
        json!({"__type": format!("com.amazonaws.dynamodb.v20120810#{code}"), "message": message})
            .to_string(),
    )
}

impl FaultStreams {
    pub async fn start(graph: Graph, faults: Faults) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            graph,
            rng: StdRng::seed_from_u64(faults.seed),
            stats: Stats::default(),
            scripted: 0,
        }));
        let shared = state.clone();
        let faults = Arc::new(faults);
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((socket, _)) = listener.accept().await {
                let (state, faults) = (shared.clone(), faults.clone());
                connections.spawn(async move {
                    let _ = serve(socket, &state, &faults).await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Self { port, state, task }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn stats(&self) -> Stats {
        self.state.lock().unwrap().stats.clone()
    }

    /// Appends records to an open shard, or closes it (new data while the worker runs).
    pub fn with_graph<T>(&self, f: impl FnOnce(&mut Graph) -> T) -> T {
        f(&mut self.state.lock().unwrap().graph)
    }
}

enum Answer {
    Reply(u16, String),
    Reset,
}

async fn serve(mut socket: TcpStream, state: &Mutex<State>, faults: &Faults) -> Option<()> {
    let mut buf = Vec::new();
    loop {
        let request = read_message(&mut socket, &mut buf, wire::request).await?;
        let target = request.header("x-amz-target").unwrap_or_default();
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let (answer, delay) = {
            let mut st = state.lock().unwrap();
            st.stats.calls += 1;
            let delay = if faults.max_latency.is_zero() {
                Duration::ZERO
            } else {
                let ms = faults.max_latency.as_millis() as u64;
                Duration::from_millis(st.rng.random_range(0..=ms))
            };
            let delay = if target.ends_with(".DescribeStream") {
                delay + faults.describe_delay
            } else {
                delay
            };
            let scripted = if target.ends_with(".GetRecords") {
                faults.script.get(st.scripted).copied()
            } else {
                None
            };
            let kind = if let Some(kind) = scripted {
                st.scripted += 1;
                Some(kind)
            } else {
                let roll: f64 = st.rng.random();
                let throttle = faults.throttle;
                let server_error = throttle + faults.server_error;
                let reset = server_error + faults.reset;
                let garbage = reset + faults.garbage;
                if roll < throttle {
                    Some(Injected::Throttle)
                } else if roll < server_error {
                    Some(if st.rng.random::<bool>() {
                        Injected::ServerError
                    } else {
                        Injected::Unavailable
                    })
                } else if roll < reset {
                    Some(Injected::Reset)
                } else if roll < garbage {
                    Some(Injected::Garbage)
                } else {
                    None
                }
            };
            let answer = match kind {
                Some(Injected::Throttle) => {
                    st.stats.throttled += 1;
                    let (s, v) = error("LimitExceededException", "Rate exceeded for shard");
                    Answer::Reply(s, v)
                }
                Some(k @ (Injected::ServerError | Injected::Unavailable)) => {
                    let code = if k == Injected::ServerError {
                        st.stats.server_errors += 1;
                        "InternalServerError"
                    } else {
                        st.stats.unavailable += 1;
                        "ServiceUnavailable"
                    };
                    let (s, v) = error(code, "injected");
                    Answer::Reply(s, v)
                }
                Some(Injected::Reset) => {
                    st.stats.resets += 1;
                    Answer::Reset
                }
                Some(Injected::Garbage) => {
                    // The real answer (with its effects on the graph), cut off halfway.
                    let (s, mut v) = handle(&mut st, faults, &target, &body);
                    if s == 200 {
                        st.stats.garbage += 1;
                        v.truncate(v.len() / 2);
                    }
                    Answer::Reply(s, v)
                }
                None => {
                    let (s, v) = handle(&mut st, faults, &target, &body);
                    Answer::Reply(s, v)
                }
            };
            (answer, delay)
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match answer {
            Answer::Reset => return None,
            Answer::Reply(status, body) => {
                let body = splice_raw(&body, &state.lock().unwrap().graph);
                let head = format!(
                    "HTTP/1.1 {status} {}\r\ncontent-type: application/x-amz-json-1.0\r\nx-amzn-requestid: fault\r\ncontent-length: {}\r\n\r\n",
                    if status == 200 { "OK" } else { "Error" },
                    body.len()
                );
                socket.write_all(head.as_bytes()).await.ok()?;
                socket.write_all(&body).await.ok()?;
            }
        }
    }
}

/// The answer's bytes, with each verbatim record's mark replaced by its bytes.
fn splice_raw(body: &str, graph: &Graph) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut rest = body;
    while let Some(at) = rest.find(RAW_MARK) {
        out.extend_from_slice(&rest.as_bytes()[..at]);
        let after = &rest[at + RAW_MARK.len()..];
        let end = after.find("@@\"").expect("a closed mark");
        let seq: u128 = after[..end].parse().expect("a sequence number");
        let raw = graph
            .shards
            .iter()
            .flat_map(|s| &s.records)
            .find(|r| r.seq == seq)
            .and_then(|r| r.raw.as_ref())
            .expect("the marked record is verbatim");
        out.extend_from_slice(raw);
        rest = &after[end + 3..];
    }
    out.extend_from_slice(rest.as_bytes());
    out
}

fn handle(st: &mut State, faults: &Faults, target: &str, body: &Value) -> (u16, String) {
    let op = target.rsplit('.').next().unwrap_or("");
    match op {
        "DescribeStream" => {
            st.stats.describe_pages += 1;
            let arn = body["StreamArn"].as_str().unwrap_or("").to_owned();
            let limit = body["Limit"].as_u64().map_or(faults.describe_page, |l| {
                (l as usize).min(faults.describe_page)
            });
            let start = body["ExclusiveStartShardId"].as_str();
            let all = &st.graph.shards;
            let from = match start {
                Some(id) => all
                    .iter()
                    .position(|s| s.id == id)
                    .map_or(all.len(), |i| i + 1),
                None => 0,
            };
            let page: Vec<Value> = all
                .iter()
                .skip(from)
                .take(limit)
                .map(|s| {
                    let mut range = json!({"StartingSequenceNumber":
                        s.records.first().map_or(SEQ_BASE, |r| r.seq).to_string()});
                    if s.closed {
                        range["EndingSequenceNumber"] =
                            json!(s.records.last().map_or(SEQ_BASE, |r| r.seq).to_string());
                    }
                    let mut v = json!({"ShardId": s.id, "SequenceNumberRange": range});
                    if let Some(p) = &s.parent {
                        v["ParentShardId"] = json!(p);
                    }
                    v
                })
                .collect();
            let mut desc = json!({
                "StreamArn": arn,
                "StreamLabel": "2026-11-22T00:00:00.000",
                "StreamStatus": "ENABLED",
                "StreamViewType": "NEW_AND_OLD_IMAGES",
                "CreationRequestDateTime": 1.7637e9,
                "TableName": arn.split('/').nth(1).unwrap_or("t"),
                "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                "Shards": page,
            });
            if from + limit < all.len() {
                desc["LastEvaluatedShardId"] = json!(all[from + limit - 1].id);
            }
            (200, json!({"StreamDescription": desc}).to_string())
        }
        "GetShardIterator" => {
            let id = body["ShardId"].as_str().unwrap_or("");
            let Some(shard) = st.graph.shards.iter_mut().find(|s| s.id == id) else {
                return error("ResourceNotFoundException", "no such shard");
            };
            let index = match body["ShardIteratorType"].as_str().unwrap_or("") {
                "TRIM_HORIZON" => shard.trimmed_below,
                "LATEST" => shard.records.len(),
                kind @ ("AFTER_SEQUENCE_NUMBER" | "AT_SEQUENCE_NUMBER") => {
                    let seq: u128 = body["SequenceNumber"]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    let Some(at) = shard.records.iter().position(|r| r.seq == seq) else {
                        return error("ValidationException", "no record with that sequence number");
                    };
                    let index = if kind == "AFTER_SEQUENCE_NUMBER" {
                        at + 1
                    } else {
                        at
                    };
                    if at < shard.trimmed_below {
                        // A reader that restarts behind a scripted trim (its records read but
                        // never made durable) loses from where it restarts.
                        if let Some((from, _)) = &mut shard.lost {
                            *from = (*from).min(index);
                        }
                        st.stats.trimmed_answers += 1;
                        return error(
                            "TrimmedDataAccessException",
                            "the requested sequence number is beyond the trim horizon",
                        );
                    }
                    index
                }
                _ => return error("ValidationException", "bad iterator type"),
            };
            (
                200,
                json!({"ShardIterator": iterator(id, index, 0)}).to_string(),
            )
        }
        "GetRecords" => {
            st.stats.get_records += 1;
            let Some((id, index, serial)) = body["ShardIterator"].as_str().and_then(parse_iterator)
            else {
                return error("ValidationException", "bad iterator");
            };
            if let Some(n) = faults.expire_every {
                if st.stats.get_records % n == 0 {
                    st.stats.expired += 1;
                    return error("ExpiredIteratorException", "Iterator expired");
                }
            }
            let limit = body["Limit"].as_u64().unwrap_or(1000) as usize;
            let empty_roll: f64 = st.rng.random();
            let Some(shard) = st.graph.shards.iter_mut().find(|s| s.id == id) else {
                return error("ResourceNotFoundException", "no such shard");
            };
            if let Some((at, to)) = shard.trim_when_read_to {
                // A read that serves a record at or past `at` (a read at LATEST, as the worker's
                // permission probe makes, serves none and trims nothing).
                if index >= at && index < shard.records.len() {
                    shard.trimmed_below = shard.trimmed_below.max(to);
                    shard.trim_when_read_to = None;
                    shard.lost = Some((index, to));
                }
            }
            if index < shard.trimmed_below {
                if let Some((from, _)) = &mut shard.lost {
                    *from = (*from).min(index);
                }
                st.stats.trimmed_answers += 1;
                return error(
                    "TrimmedDataAccessException",
                    "the iterator points to trimmed records",
                );
            }
            let now_ms = dynamo_archiver::clock::now_ms();
            // Records not yet "written" are not served (they are sorted by visibility per shard).
            let end = shard.records.len()
                - shard
                    .records
                    .iter()
                    .rev()
                    .take_while(|r| r.visible_ms > now_ms)
                    .count();
            if index < end && empty_roll < faults.empty_page {
                st.stats.empty_pages += 1;
                return (
                    200,
                    json!({"Records": [], "NextShardIterator": iterator(&id, index, serial + 1)})
                        .to_string(),
                );
            }
            let mut page = String::from(r#"{"Records":["#);
            let mut count = 0;
            let mut bytes = 0;
            let mut next = index;
            while next < end && count < limit {
                let text = record_text(&shard.records[next]);
                if count > 0 && bytes + text.len() > faults.page_bytes {
                    st.stats.capped_pages += 1;
                    break;
                }
                if count > 0 {
                    page.push(',');
                }
                bytes += text.len();
                page.push_str(&text);
                count += 1;
                next += 1;
            }
            page.push(']');
            if !(shard.closed && next >= shard.records.len()) {
                page.push_str(&format!(
                    r#","NextShardIterator":"{}""#,
                    iterator(&id, next, serial + 1)
                ));
            }
            page.push('}');
            (200, page)
        }
        "ListStreams" => (200, r#"{"Streams":[]}"#.to_owned()),
        _ => error("UnknownOperationException", op),
    }
}
