//! `/healthz`, `/readyz` and `/metrics` over a minimal HTTP/1.1 responder. Three read-only GET
//! routes do not justify an HTTP framework's build time; requests are small and bounded.

use crate::metrics::Metrics;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

const MAX_REQUEST_BYTES: usize = 8 << 10;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    health: crate::health::Thresholds,
    stop: CancellationToken,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    let (m, r) = (metrics.clone(), ready.clone());
                    connections.spawn(async move {
                        let _ = tokio::time::timeout(REQUEST_TIMEOUT, handle(stream, &m, &r, health)).await;
                    });
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

async fn handle(
    mut stream: TcpStream,
    metrics: &Metrics,
    ready: &AtomicBool,
    health: crate::health::Thresholds,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < MAX_REQUEST_BYTES {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&buf);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, content_type, body) = route(method, path, metrics, ready, health);
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

fn route(
    method: &str,
    path: &str,
    metrics: &Metrics,
    ready: &AtomicBool,
    health: crate::health::Thresholds,
) -> (&'static str, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    if method != "GET" {
        return ("405 Method Not Allowed", TEXT, "only GET\n".into());
    }
    match path.split('?').next().unwrap_or("") {
        "/healthz" => {
            let problems = metrics.health.problems(&health);
            if problems.is_empty() {
                ("200 OK", TEXT, "ok\n".into())
            } else {
                (
                    "503 Service Unavailable",
                    TEXT,
                    format!("unhealthy:\n{}\n", problems.join("\n")),
                )
            }
        }
        "/readyz" => {
            if ready.load(Ordering::SeqCst) {
                ("200 OK", TEXT, "ready\n".into())
            } else {
                ("503 Service Unavailable", TEXT, "starting\n".into())
            }
        }
        "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics.render()),
        _ => (
            "404 Not Found",
            TEXT,
            "routes: /healthz /readyz /metrics\n".into(),
        ),
    }
}
