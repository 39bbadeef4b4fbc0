//! `dynamo-archiver run`: the worker, its HTTP endpoint, and the signal handling around them.

use super::CommandError;
use crate::config::RunConfig;
use crate::metrics::{Metric, Metrics};
use crate::pipeline::worker::{self, RunError};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The contract: exit within 20 s of SIGTERM (ECS waits 30 s before SIGKILL).
const STOP_DEADLINE: Duration = Duration::from_secs(19);

pub async fn run(config: RunConfig, shutdown: CancellationToken) -> Result<(), CommandError> {
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let http_stop = CancellationToken::new();
    let http_task = match config.http {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                CommandError::Config(format!(
                    "cannot listen on --http {addr}: {e}; choose another address or `off`"
                ))
            })?;
            let bound = listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            tracing::info!(address = %bound, "serving /healthz, /readyz and /metrics");
            Some(tokio::spawn(crate::http::serve(
                listener,
                metrics.clone(),
                ready.clone(),
                crate::health::Thresholds::new(
                    config.worker.flush_interval,
                    config.stuck_after,
                    config.worker.failover_time,
                ),
                http_stop.clone(),
            )))
        }
        None => None,
    };
    let emf_task = config.emf_metrics.then(|| {
        tokio::spawn(crate::emf::run(
            metrics.clone(),
            config.worker.tables.iter().map(|t| t.to_string()).collect(),
            http_stop.clone(),
        ))
    });
    tracing::info!(worker_id = %config.worker.worker_id, tables = ?config.worker.tables.iter().map(|t| t.to_string()).collect::<Vec<_>>(), "starting dynamo-archiver {}", env!("CARGO_PKG_VERSION"));
    // The worker stops itself within SHUTDOWN_GRACE once its shards are running; this bound also
    // covers a stop that arrives during start-up (creating the lease table can take a while).
    let stop = shutdown.clone();
    let worker_metrics = metrics.clone();
    let span = tracing::info_span!("worker", worker = %config.worker.worker_id);
    let result = tokio::select! {
        r = tracing::Instrument::instrument(async move {
            let clients = crate::aws::load().await;
            worker::run(config.worker, clients, worker_metrics, shutdown, ready).await
        }, span) => r,
        _ = async {
            stop.cancelled().await;
            tokio::time::sleep(STOP_DEADLINE).await;
        } => Err(RunError::ShutdownTimeout),
    };
    http_stop.cancel();
    if let Some(t) = http_task {
        let _ = t.await;
    }
    if let Some(t) = emf_task {
        let _ = t.await;
    }
    tracing::info!(
        records_written = metrics.total(Metric::RecordsWritten) as u64,
        files_written = metrics.total(Metric::FilesWritten) as u64,
        "worker stopped"
    );
    result.map_err(|e: RunError| {
        if e.is_config() {
            CommandError::Config(e.to_string())
        } else {
            CommandError::Runtime(e.to_string())
        }
    })
}
