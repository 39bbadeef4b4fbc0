//! The worker: one task that owns every table's shard map, decides (through the pure lineage
//! module) which shards start, spawns a task per shard, and awaits them all on shutdown.

use super::lease_cycle::{self, Ctx, StreamState};
use super::shard_task::{ShardError, ShardOutcome, ShardSettings};
use super::Destination;
use crate::archive::{ArchiveSink, SinkError};
use crate::aws::Clients;
use crate::config::{Output, RunConfig};
use crate::leases::{LeaseError, LeaseStore};
use crate::metrics::{Metric, Metrics};
use crate::sink::firehose::{FirehoseError, FirehoseSink, Overflow};
use crate::stream::api::{self, TableError};
use crate::types::ShardId;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Time the shard tasks get to flush, checkpoint and release after a stop signal. ECS waits 30 s
/// (stopTimeout) before SIGKILL; the contract promises an exit within 20 s.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(18);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("the archive cannot be written: {0}")]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Lease(#[from] LeaseError),
    #[error(transparent)]
    Firehose(#[from] FirehoseError),
    #[error(
        "cannot prepare the spool directory {path}: {source}; choose another with --spool-dir"
    )]
    Spool {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("shard {shard} of table `{table}` failed: {message}")]
    Shard {
        table: String,
        shard: String,
        message: String,
    },
    #[error("shutdown did not finish in time; unflushed records will be read again from the checkpoint on restart")]
    ShutdownTimeout,
}

impl RunError {
    /// Exit status 2: the configuration (or the AWS account) must be fixed.
    pub fn is_config(&self) -> bool {
        match self {
            Self::Table(e) => e.is_config(),
            Self::Sink(e) => !e.is_retryable(),
            Self::Spool { .. } => true,
            Self::Firehose(e) => !e.is_retryable(),
            _ => false,
        }
    }
}

pub(super) type TaskResult = (usize, ShardId, Result<ShardOutcome, ShardError>);

/// Runs the worker until `shutdown` is cancelled (or a fatal error), then stops every shard
/// cleanly.
pub async fn run(
    config: RunConfig,
    clients: Clients,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    ready: Arc<std::sync::atomic::AtomicBool>,
) -> Result<(), RunError> {
    let sink = match &config.output {
        Output::Archive(uri) => {
            let sink = ArchiveSink::new(uri, clients.s3.clone(), config.sse_kms_key.clone());
            sink.check_writable().await?;
            Destination::Archive(sink)
        }
        Output::Firehose { stream, overflow } => {
            let overflow = overflow.as_ref().map(|uri| Overflow {
                sink: ArchiveSink::new(uri, clients.s3.clone(), config.sse_kms_key.clone()),
                uri: uri.clone(),
            });
            let firehose = FirehoseSink::new(
                clients.firehose.clone(),
                stream.clone(),
                overflow,
                metrics.clone(),
            );
            firehose.check_ready().await?;
            if !firehose.has_overflow() {
                tracing::info!(stream = %stream, "no --overflow-archive: a stream record too big for one Firehose record will stop the worker (it is never dropped)");
            }
            Destination::Firehose(Arc::new(firehose))
        }
    };

    let mut streams = Vec::new();
    for table in &config.tables {
        let stream = api::table_stream(&clients.dynamodb, table).await?;
        if stream.view_type != "NEW_AND_OLD_IMAGES" {
            tracing::warn!(table = %table, view_type = %stream.view_type, "the stream's view type is not NEW_AND_OLD_IMAGES: the archive will lack {}; enable NEW_AND_OLD_IMAGES for a full audit trail",
            match stream.view_type.as_str() {
                "KEYS_ONLY" => "every item image (only keys are recorded)",
                "NEW_IMAGE" => "the item before each change (old_image)",
                "OLD_IMAGE" => "the item after each change (new_image)",
                _ => "item images",
            });
        }
        tracing::info!(table = %table, stream = %stream.arn, "following the table's stream");
        streams.push(stream);
    }

    let leases = LeaseStore::new(
        clients.dynamodb.clone(),
        config.lease_table.clone(),
        config.worker_id.clone(),
    );
    leases.ensure_table().await?;

    let spool_dir = prepare_spool(&config.spool_dir)?;
    let settings = ShardSettings {
        flush_interval: config.flush_interval,
        flush_size_bytes: config.flush_size_bytes,
        spool_dir: spool_dir.clone(),
        budgets: super::budget::Budgets::new(),
        failover_time: config.failover_time,
    };
    let mut states: Vec<StreamState> = streams.into_iter().map(StreamState::new).collect();
    let ctx = Ctx {
        clients,
        leases,
        sink,
        metrics,
        settings,
        start: config.start_position,
    };
    ready.store(true, std::sync::atomic::Ordering::SeqCst);
    // Renew three times per failover time, as the KCL does: one lost or slow renewal never lets
    // a lease expire in others' eyes.
    let cycle_every = config.failover_time / 3;
    let stop = shutdown.child_token();
    let mut tasks: JoinSet<TaskResult> = JoinSet::new();
    let mut fatal: Option<RunError> = None;
    let mut next_discovery = Instant::now();
    let mut next_cycle = Instant::now();
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            joined = tasks.join_next(), if !tasks.is_empty() => {
                let Some(joined) = joined else { continue };
                match joined {
                    Ok((i, shard, outcome)) => {
                        let st = &mut states[i];
                        match outcome {
                            Ok(ShardOutcome::Finished) => {
                                tracing::info!(table = %st.stream.table, shard = %shard, "shard read to its end; its children may start");
                                st.task_ended(&shard, false);
                                st.finished.insert(shard.clone());
                                // Children are usually listed already: look now, not in 30 s.
                                next_discovery = Instant::now();
                            }
                            Ok(ShardOutcome::Stopped | ShardOutcome::Lost | ShardOutcome::HandedOver) => {
                                st.task_ended(&shard, false);
                            }
                            Err(e) if e.is_fatal() => {
                                tracing::error!(table = %st.stream.table, shard = %shard, "stopping: {e}");
                                st.task_ended(&shard, false);
                                fatal = Some(RunError::Shard { table: st.stream.table.to_string(), shard: shard.to_string(), message: e.to_string() });
                                stop.cancel();
                            }
                            Err(e) => {
                                ctx.metrics.inc(Metric::Errors, &[("kind", "shard_task")], 1);
                                let delay = st.task_ended(&shard, true);
                                tracing::error!(table = %st.stream.table, shard = %shard, "shard task failed; restarting it from its checkpoint in about {delay:?}: {e}");
                                next_cycle = next_cycle.min(Instant::now() + delay);
                            }
                        }
                        update_owned_gauge(&ctx.metrics, &states);
                    }
                    Err(join_error) => {
                        // A panic is a bug; stop cleanly rather than run with a shard unread.
                        tracing::error!("a shard task panicked: {join_error}");
                        fatal = Some(RunError::Shard { table: "?".into(), shard: "?".into(), message: join_error.to_string() });
                        stop.cancel();
                    }
                }
            }
            _ = tokio::time::sleep_until(next_discovery) => {
                // Abandoned at once by a stop signal: listing writes nothing.
                tokio::select! {
                    _ = stop.cancelled() => continue,
                    _ = async {
                        for st in states.iter_mut() {
                            if let Err(e) = lease_cycle::list_shards(&ctx, st).await {
                                ctx.metrics.inc(Metric::Errors, &[("kind", "discovery")], 1);
                                tracing::warn!(table = %st.stream.table, "listing shards failed; trying again at the next discovery: {e}");
                            }
                        }
                    } => {}
                }
                next_discovery = Instant::now() + config.discovery_interval;
                next_cycle = Instant::now();
            }
            _ = tokio::time::sleep_until(next_cycle) => {
                next_cycle = Instant::now() + cycle_every;
                // Abandoned at once by a stop signal: every lease write is conditional, so a cycle
                // cut short leaves nothing inconsistent, and the drain below starts without delay.
                tokio::select! {
                    _ = stop.cancelled() => continue,
                    _ = async {
                        for st in states.iter_mut() {
                            lease_cycle::renew(&ctx, st).await;
                        }
                        if let Err(e) = lease_cycle::plan_and_apply(&ctx, &mut states, &mut tasks, &stop).await {
                            ctx.metrics.inc(Metric::Errors, &[("kind", "lease_cycle")], 1);
                            tracing::warn!("the lease cycle failed; trying again at the next one: {e}");
                        }
                    } => {}
                }
                update_owned_gauge(&ctx.metrics, &states);
            }
        }
    }

    // Stop: every shard task flushes, checkpoints and releases (or hands over) its lease. Leases
    // are still renewed meanwhile, so a slow final flush is not fenced as a lost lease.
    stop.cancel();
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        let mut renew_at = Instant::now() + cycle_every;
        while !tasks.is_empty() {
            tokio::select! {
                joined = tasks.join_next() => {
                    if let Some(Ok((i, shard, outcome))) = joined {
                        if let Err(e) = &outcome {
                            tracing::error!(table = %states[i].stream.table, shard = %shard, "shard did not stop cleanly: {e}");
                        }
                        states[i].task_ended(&shard, false);
                    }
                }
                _ = tokio::time::sleep_until(renew_at) => {
                    for st in states.iter_mut() {
                        lease_cycle::renew(&ctx, st).await;
                    }
                    renew_at = Instant::now() + cycle_every;
                }
            }
        }
    })
    .await;
    let _ = std::fs::remove_dir_all(&spool_dir);
    if drained.is_err() {
        tasks.abort_all();
        return Err(RunError::ShutdownTimeout);
    }
    match fatal {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn update_owned_gauge(metrics: &Metrics, states: &[StreamState]) {
    for st in states {
        metrics.set_gauge(
            Metric::ShardsOwned,
            &[("table", st.stream.table.as_str())],
            st.running.len() as f64,
        );
    }
}

/// A spool directory of this process only, so several workers on one host never collide; leftovers
/// of dead processes are removed.
fn prepare_spool(root: &std::path::Path) -> Result<std::path::PathBuf, RunError> {
    let err = |source| RunError::Spool {
        path: root.to_owned(),
        source,
    };
    std::fs::create_dir_all(root).map_err(err)?;
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.split('-').next().and_then(|p| p.parse::<u32>().ok()) {
                if pid != std::process::id()
                    && !std::path::Path::new(&format!("/proc/{pid}")).exists()
                {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
    let dir = root.join(format!(
        "{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).map_err(err)?;
    Ok(dir)
}
