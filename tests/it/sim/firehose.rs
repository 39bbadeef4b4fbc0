//! A fault-injecting Firehose endpoint for tests: it speaks enough of the Firehose JSON protocol
//! (PutRecordBatch, DescribeDeliveryStream) for the real SDK, injects faults from a seeded random
//! source, enforces the limits moto does not (500 records, 4 MiB per call, 1,000 KiB per record),
//! and forwards the entries it accepts to moto's Firehose with the SDK, so moto's S3 holds exactly
//! what "Firehose" acknowledged.
//!
//! Faults: a whole call throttled (ServiceUnavailableException), a whole call failing with HTTP
//! 500, the connection closed without an answer, and single entries failing inside an accepted
//! call (FailedPutCount > 0 with a per-entry ErrorCode). A fault never forwards anything, so a
//! record found twice in S3 was sent twice after a success: the statistics count that.

use crate::sim::wire::{self, read_message};
use base64::Engine;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

const MAX_RECORD_BYTES: usize = 1_000 * 1024;
const MAX_BATCH_RECORDS: usize = 500;
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// Faults: first the script, one entry per PutRecordBatch call (`throttle`, `500`, `reset`,
/// `partial` = the first entry fails, `ok`), then by rate, each in [0, 1].
#[derive(Debug, Clone, Default)]
pub struct Faults {
    pub seed: u64,
    pub script: Vec<&'static str>,
    pub throttle: f64,
    pub server_error: f64,
    pub reset: f64,
    /// Per entry of an accepted call.
    pub entry_failure: f64,
}

#[derive(Debug, Default)]
pub struct Stats {
    pub calls: u64,
    pub throttled: u64,
    pub server_errors: u64,
    pub resets: u64,
    pub entries_received: u64,
    pub entries_failed: u64,
    pub entries_accepted: u64,
    /// Entries whose exact bytes were accepted before: sent again after a success.
    pub resent_after_success: u64,
    /// Calls or records over an AWS limit (answered with InvalidArgumentException).
    pub limit_violations: u64,
    pub max_records_per_call: usize,
    pub max_bytes_per_call: usize,
    pub max_record_bytes: usize,
    accepted: HashSet<[u8; 32]>,
}

pub struct FaultFirehose {
    pub port: u16,
    pub stats: Arc<Mutex<Stats>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultFirehose {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultFirehose {
    pub async fn start(upstream: aws_sdk_firehose::Client, faults: Faults) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stats = Arc::new(Mutex::new(Stats::default()));
        let rng = Arc::new(Mutex::new(StdRng::seed_from_u64(faults.seed)));
        let shared = (stats.clone(), rng);
        let faults = Arc::new(faults);
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let (stats, rng) = (shared.0.clone(), shared.1.clone());
                let upstream = upstream.clone();
                let (faults, calls) = (faults.clone(), calls.clone());
                connections.spawn(async move {
                    let _ = serve(socket, upstream, &faults, &calls, stats, rng).await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Self { port, stats, task }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

async fn respond(socket: &mut TcpStream, status: u16, body: &serde_json::Value) -> bool {
    let body = body.to_string();
    let reason = if status == 200 { "OK" } else { "Error" };
    let text = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/x-amz-json-1.1\r\nx-amzn-requestid: fault-{}\r\ncontent-length: {}\r\n\r\n{body}",
        rand::random::<u32>(),
        body.len()
    );
    socket.write_all(text.as_bytes()).await.is_ok()
}

async fn serve(
    mut socket: TcpStream,
    upstream: aws_sdk_firehose::Client,
    faults: &Faults,
    calls: &std::sync::atomic::AtomicUsize,
    stats: Arc<Mutex<Stats>>,
    rng: Arc<Mutex<StdRng>>,
) -> Option<()> {
    let mut buf = Vec::new();
    loop {
        let request = read_message(&mut socket, &mut buf, wire::request).await?;
        let target = request.header("x-amz-target").unwrap_or_default();
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let stream = body["DeliveryStreamName"].as_str().unwrap_or("").to_owned();
        let (status, answer) = match target.as_str() {
            "Firehose_20150804.DescribeDeliveryStream" => (
                200,
                serde_json::json!({"DeliveryStreamDescription": {
                    "DeliveryStreamName": stream,
                    "DeliveryStreamARN": format!("arn:aws:firehose:us-east-1:123456789012:deliverystream/{stream}"),
                    "DeliveryStreamStatus": "ACTIVE",
                    "DeliveryStreamType": "DirectPut",
                    "VersionId": "1",
                    "Destinations": [],
                    "HasMoreDestinations": false
                }}),
            ),
            "Firehose_20150804.PutRecordBatch" => {
                let records: Vec<Vec<u8>> = body["Records"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|r| {
                                base64::engine::general_purpose::STANDARD
                                    .decode(r["Data"].as_str().unwrap_or(""))
                                    .unwrap_or_default()
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                // Decide the call's fate first (seeded), then act.
                let call = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (fate, entry_fails) = {
                    let mut rng = rng.lock().unwrap();
                    let roll: f64 = rng.random();
                    let fate = if let Some(scripted) = faults.script.get(call) {
                        *scripted
                    } else if roll < faults.throttle {
                        "throttle"
                    } else if roll < faults.throttle + faults.server_error {
                        "500"
                    } else if roll < faults.throttle + faults.server_error + faults.reset {
                        "reset"
                    } else {
                        "ok"
                    };
                    let mut fails: Vec<bool> = records
                        .iter()
                        .map(|_| rng.random::<f64>() < faults.entry_failure)
                        .collect();
                    match fate {
                        "partial" => {
                            fails.iter_mut().for_each(|f| *f = false);
                            if let Some(f) = fails.first_mut() {
                                *f = true;
                            }
                        }
                        "ok" => fails.iter_mut().for_each(|f| *f = false),
                        _ => {}
                    }
                    (fate, fails)
                };
                let bytes: usize = records.iter().map(Vec::len).sum();
                {
                    let mut s = stats.lock().unwrap();
                    s.calls += 1;
                    s.max_records_per_call = s.max_records_per_call.max(records.len());
                    s.max_bytes_per_call = s.max_bytes_per_call.max(bytes);
                    s.max_record_bytes = s
                        .max_record_bytes
                        .max(records.iter().map(Vec::len).max().unwrap_or(0));
                }
                let over_limit = records.len() > MAX_BATCH_RECORDS
                    || bytes > MAX_BATCH_BYTES
                    || records
                        .iter()
                        .any(|r| r.len() > MAX_RECORD_BYTES || r.is_empty());
                if over_limit {
                    stats.lock().unwrap().limit_violations += 1;
                    (
                        400,
                        serde_json::json!({"__type": "InvalidArgumentException", "message": "over a PutRecordBatch limit"}),
                    )
                } else {
                    match fate {
                        "throttle" => {
                            stats.lock().unwrap().throttled += 1;
                            (
                                400,
                                serde_json::json!({"__type": "ServiceUnavailableException", "message": "Slow down."}),
                            )
                        }
                        "500" => {
                            stats.lock().unwrap().server_errors += 1;
                            (
                                500,
                                serde_json::json!({"__type": "InternalFailure", "message": "injected"}),
                            )
                        }
                        "reset" => {
                            stats.lock().unwrap().resets += 1;
                            // Closed without an answer: the client cannot know what happened.
                            return None;
                        }
                        _ => {
                            let mut accepted = Vec::new();
                            let mut responses = Vec::new();
                            for (record, fail) in records.iter().zip(&entry_fails) {
                                if *fail {
                                    responses.push(serde_json::json!({"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "injected entry failure"}));
                                } else {
                                    accepted.push(record.clone());
                                    responses.push(serde_json::json!({"RecordId": format!("r{}", rand::random::<u64>())}));
                                }
                            }
                            if !accepted.is_empty() {
                                let entries = accepted
                                    .iter()
                                    .map(|r| {
                                        aws_sdk_firehose::types::Record::builder()
                                            .data(aws_sdk_firehose::primitives::Blob::new(
                                                r.clone(),
                                            ))
                                            .build()
                                            .unwrap()
                                    })
                                    .collect::<Vec<_>>();
                                upstream
                                    .put_record_batch()
                                    .delivery_stream_name(&stream)
                                    .set_records(Some(entries))
                                    .send()
                                    .await
                                    .expect("moto accepts the forwarded entries");
                            }
                            let failed = records.len() - accepted.len();
                            {
                                let mut s = stats.lock().unwrap();
                                s.entries_received += records.len() as u64;
                                s.entries_failed += failed as u64;
                                s.entries_accepted += accepted.len() as u64;
                                for r in &accepted {
                                    if !s.accepted.insert(Sha256::digest(r).into()) {
                                        s.resent_after_success += 1;
                                    }
                                }
                            }
                            (
                                200,
                                serde_json::json!({"FailedPutCount": failed, "Encrypted": false, "RequestResponses": responses}),
                            )
                        }
                    }
                }
            }
            other => (
                400,
                serde_json::json!({"__type": "UnknownOperationException", "message": other}),
            ),
        };
        if !respond(&mut socket, status, &answer).await {
            return None;
        }
    }
}
