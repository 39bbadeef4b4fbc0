//! A fault proxy in front of moto's S3 (or DynamoDB Local: see [`Refusal`]) for tests. It reads
//! each HTTP request whole, then by script or by seeded rate answers `503 SlowDown` (or
//! DynamoDB's throttling error) without forwarding, closes the connection without
//! forwarding, or forwards the request to moto and closes the connection before relaying the
//! answer (the write happened; the client cannot know). Faults apply to the requests a filter
//! selects (UploadPart, PutObject, ...), so a test can break a multipart upload in its middle.
//! A scripted stall holds a request unanswered, so a test can crash a writer at a known point; a
//! scripted hold keeps it until the test releases it (an upload that lands late). At run time a
//! test can black-hole every request (a network partition) or delay every answer after the
//! request was done upstream ([`Control`]).

use crate::sim::wire::{self, read_message};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// What happens to one selected request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Fault {
    Pass,
    SlowDown,
    ResetBefore,
    ResetAfter,
    /// Never answered (script only): the writer is stuck here until the test drops it.
    Stall,
    /// Held (script only) until [`Control::release`], then forwarded and answered as usual.
    Hold,
}

/// What a test switches while the proxy runs.
#[derive(Debug)]
pub struct Control {
    /// Every request from now on is held, never forwarded: the client is cut off.
    blackhole: AtomicBool,
    /// Every answer is relayed this many milliseconds after the upstream gave it.
    answer_delay_ms: AtomicU64,
    released: tokio::sync::watch::Sender<bool>,
    /// Requests this selects are refused as an authorisation failure (the credentials lack a
    /// permission), never forwarded.
    deny: Mutex<Option<Deny>>,
}

/// Selects the requests to refuse as unauthorised.
pub type Deny = fn(&wire::Message) -> bool;

impl Control {
    /// Refuses the requests `which` selects with AccessDenied from now on (`None`: none).
    pub fn deny(&self, which: Option<Deny>) {
        *self.deny.lock().unwrap() = which;
    }

    pub fn blackhole(&self, on: bool) {
        self.blackhole.store(on, Ordering::SeqCst);
    }

    pub fn delay_answers(&self, by: Duration) {
        self.answer_delay_ms
            .store(by.as_millis() as u64, Ordering::SeqCst);
    }

    /// Lets every held request (and every later one scripted to be held) through.
    pub fn release(&self) {
        self.released.send_replace(true);
    }
}

#[derive(Debug, Clone)]
pub struct S3Faults {
    pub seed: u64,
    /// Faults for the first selected requests, in order; then by rate.
    pub script: Vec<S3Fault>,
    pub slow_down: f64,
    pub reset_before: f64,
    pub reset_after: f64,
    /// Which requests faults apply to: (method, path with query).
    pub select: fn(&str, &str) -> bool,
    /// How a `SlowDown` is answered: the upstream service's own throttling error.
    pub refusal: Refusal,
}

/// The throttling answer of the service behind the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// S3: `503 SlowDown`.
    S3SlowDown,
    /// DynamoDB: `400 ProvisionedThroughputExceededException`.
    DynamoThrottle,
}

/// Every request (DynamoDB's JSON protocol sends every operation as `POST /`).
pub fn every_request(_method: &str, _path: &str) -> bool {
    true
}

#[derive(Debug, Default, Clone)]
pub struct S3Stats {
    pub requests: u64,
    pub selected: u64,
    pub slow_downs: u64,
    pub resets_before: u64,
    pub resets_after: u64,
    pub stalls: u64,
    pub holds: u64,
    /// Requests held by the black hole.
    pub blackholed: u64,
}

pub struct FaultS3 {
    pub port: u16,
    pub stats: Arc<Mutex<S3Stats>>,
    pub control: Arc<Control>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultS3 {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// UploadPart: `PUT /bucket/key?partNumber=N&uploadId=...`.
pub fn upload_part(method: &str, path: &str) -> bool {
    method == "PUT" && path.contains("partNumber=")
}

/// CompleteMultipartUpload: `POST /bucket/key?uploadId=...`.
pub fn complete_multipart(method: &str, path: &str) -> bool {
    method == "POST" && path.contains("uploadId=")
}

/// Any object write: PutObject, UploadPart, CompleteMultipartUpload.
pub fn object_writes(method: &str, path: &str) -> bool {
    (method == "PUT" && !path.ends_with('/')) || (method == "POST" && path.contains("uploadId="))
}

impl FaultS3 {
    pub async fn start(upstream_port: u16, faults: S3Faults) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stats = Arc::new(Mutex::new(S3Stats::default()));
        let control = Arc::new(Control {
            blackhole: AtomicBool::new(false),
            answer_delay_ms: AtomicU64::new(0),
            released: tokio::sync::watch::Sender::new(false),
            deny: Mutex::new(None),
        });
        let shared = Arc::new((
            faults.clone(),
            Mutex::new(StdRng::seed_from_u64(faults.seed)),
        ));
        let (st, ctl) = (stats.clone(), control.clone());
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let (shared, st, ctl) = (shared.clone(), st.clone(), ctl.clone());
                connections.spawn(async move {
                    let _ = serve(client, upstream_port, &shared.0, &shared.1, &st, &ctl).await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Self {
            port,
            stats,
            control,
            task,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

async fn serve(
    mut client: TcpStream,
    upstream_port: u16,
    faults: &S3Faults,
    rng: &Mutex<StdRng>,
    stats: &Mutex<S3Stats>,
    control: &Control,
) -> Option<()> {
    let mut upstream = TcpStream::connect(("127.0.0.1", upstream_port))
        .await
        .ok()?;
    let (mut cbuf, mut ubuf) = (Vec::new(), Vec::new());
    loop {
        let request = read_message(&mut client, &mut cbuf, wire::request).await?;
        let (method, path) = request.start();
        if control.blackhole.load(Ordering::SeqCst) {
            stats.lock().unwrap().blackholed += 1;
            std::future::pending::<()>().await;
        }
        let denied = control.deny.lock().unwrap().is_some_and(|d| d(&request));
        if denied {
            // JSON services (DynamoDB, Streams, Firehose) name the operation in a header; S3 does
            // not and answers in XML.
            let text = if request.header("x-amz-target").is_some() {
                let body = r#"{"__type":"com.amazon.coral.service#AccessDeniedException","message":"denied by the test's policy"}"#;
                format!("HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.0\r\nx-amzn-requestid: fault\r\ncontent-length: {}\r\n\r\n{body}", body.len())
            } else {
                let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>denied by the test's policy</Message><RequestId>fault</RequestId></Error>";
                format!("HTTP/1.1 403 Forbidden\r\ncontent-type: application/xml\r\ncontent-length: {}\r\n\r\n{body}", body.len())
            };
            client.write_all(text.as_bytes()).await.ok()?;
            continue;
        }
        let fault = {
            let mut s = stats.lock().unwrap();
            s.requests += 1;
            if (faults.select)(&method, &path) {
                let n = s.selected as usize;
                s.selected += 1;
                let fault = faults.script.get(n).copied().unwrap_or_else(|| {
                    let roll: f64 = rng.lock().unwrap().random();
                    if roll < faults.slow_down {
                        S3Fault::SlowDown
                    } else if roll < faults.slow_down + faults.reset_before {
                        S3Fault::ResetBefore
                    } else if roll < faults.slow_down + faults.reset_before + faults.reset_after {
                        S3Fault::ResetAfter
                    } else {
                        S3Fault::Pass
                    }
                });
                match fault {
                    S3Fault::SlowDown => s.slow_downs += 1,
                    S3Fault::ResetBefore => s.resets_before += 1,
                    S3Fault::ResetAfter => s.resets_after += 1,
                    S3Fault::Stall => s.stalls += 1,
                    S3Fault::Hold => s.holds += 1,
                    S3Fault::Pass => {}
                }
                fault
            } else {
                S3Fault::Pass
            }
        };
        match fault {
            S3Fault::SlowDown => {
                let text = match faults.refusal {
                    Refusal::S3SlowDown => {
                        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>fault</RequestId></Error>";
                        format!(
                            "HTTP/1.1 503 Slow Down\r\ncontent-type: application/xml\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        )
                    }
                    Refusal::DynamoThrottle => {
                        let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"injected"}"#;
                        format!(
                            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.0\r\nx-amzn-requestid: fault\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        )
                    }
                };
                client.write_all(text.as_bytes()).await.ok()?;
                continue;
            }
            S3Fault::ResetBefore => return None,
            S3Fault::Stall => std::future::pending::<()>().await,
            S3Fault::Hold => {
                let mut released = control.released.subscribe();
                released.wait_for(|r| *r).await.ok()?;
            }
            S3Fault::Pass | S3Fault::ResetAfter => {}
        }
        upstream.write_all(&request.head).await.ok()?;
        upstream.write_all(&request.body).await.ok()?;
        let response = read_message(&mut upstream, &mut ubuf, |status| {
            method == "HEAD" || status == "204" || status == "304"
        })
        .await?;
        if fault == S3Fault::ResetAfter {
            return None;
        }
        let delay = control.answer_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        client.write_all(&response.head).await.ok()?;
        client.write_all(&response.body).await.ok()?;
    }
}
