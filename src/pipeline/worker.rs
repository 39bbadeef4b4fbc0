//! The worker: one task that owns every table's shard map, decides (through the pure lineage
//! module) which shards start, spawns a task per shard, and awaits them all on shutdown.

use super::shard_task::{ShardOutcome, ShardSettings, ShardTask};
use crate::aws::Clients;
use crate::backoff::Backoff;
use crate::config::cli::StartPosition;
use crate::config::{Output, RunConfig};
use crate::leases::{Checkpoint, Lease, LeaseError, LeaseStore};
use crate::lineage::{self, Progress, ShardNode};
use crate::metrics::Metrics;
use crate::sink::{ArchiveSink, SinkError};
use crate::stream::api::{self, Position, ShardDesc, TableError, TableStream};
use crate::stream::reader::ShardReader;
use crate::types::ShardId;
use std::collections::HashMap;
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
            _ => false,
        }
    }
}

/// One table's stream and what the worker knows of it.
struct StreamState {
    stream: TableStream,
    shards: Vec<ShardDesc>,
    progress: HashMap<ShardId, Progress>,
    leases: HashMap<ShardId, Lease>,
    /// Shards whose task failed, and when they may be tried again.
    not_before: HashMap<ShardId, (Instant, Backoff)>,
}

type TaskResult = (
    usize,
    ShardId,
    Result<ShardOutcome, super::shard_task::ShardError>,
);

/// Runs the worker until `shutdown` is cancelled (or a fatal error), then stops every shard
/// cleanly.
pub async fn run(
    config: RunConfig,
    clients: Clients,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    ready: Arc<std::sync::atomic::AtomicBool>,
) -> Result<(), RunError> {
    let Output::Archive(uri) = &config.output;
    let sink = ArchiveSink::new(uri, clients.s3.clone(), config.sse_kms_key.clone());
    sink.check_writable().await?;

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
    };

    let mut states = Vec::new();
    for stream in streams {
        let existing = leases.leases_of_stream(&stream.arn).await?;
        let progress = existing
            .iter()
            .filter(|l| l.checkpoint == Checkpoint::ShardEnd)
            .map(|l| (l.shard.clone(), Progress::Finished))
            .collect();
        states.push(StreamState {
            stream,
            shards: Vec::new(),
            progress,
            leases: existing.into_iter().map(|l| (l.shard.clone(), l)).collect(),
            not_before: HashMap::new(),
        });
    }

    let ctx = Ctx {
        clients,
        leases,
        sink,
        metrics,
        settings,
        start: config.start_position,
    };
    ready.store(true, std::sync::atomic::Ordering::SeqCst);
    let stop = shutdown.child_token();
    let mut tasks: JoinSet<TaskResult> = JoinSet::new();
    let mut fatal: Option<RunError> = None;
    let mut next_discovery = Instant::now();
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            joined = tasks.join_next(), if !tasks.is_empty() => {
                let Some(joined) = joined else { continue };
                match joined {
                    Ok((i, shard, outcome)) => {
                        let st = &mut states[i];
                        st.progress.remove(&shard);
                        match outcome {
                            Ok(ShardOutcome::Finished) => {
                                tracing::info!(table = %st.stream.table, shard = %shard, "shard read to its end; its children may start");
                                st.progress.insert(shard.clone(), Progress::Finished);
                                st.leases.remove(&shard);
                                // Children are usually listed already: look now, not in 30 s.
                                next_discovery = Instant::now();
                            }
                            Ok(ShardOutcome::Stopped) | Ok(ShardOutcome::Lost) => {
                                st.leases.remove(&shard);
                            }
                            Err(e) if e.is_fatal() => {
                                tracing::error!(table = %st.stream.table, shard = %shard, "stopping: {e}");
                                fatal = Some(RunError::Shard { table: st.stream.table.to_string(), shard: shard.to_string(), message: e.to_string() });
                                stop.cancel();
                            }
                            Err(e) => {
                                ctx.metrics.inc("archiver_errors_total", &[("kind", "shard_task")], 1);
                                let entry = st.not_before.entry(shard.clone()).or_insert_with(|| (Instant::now(), Backoff::new(Duration::from_secs(1), Duration::from_secs(60))));
                                let delay = entry.1.next_delay().max(Duration::from_millis(500));
                                entry.0 = Instant::now() + delay;
                                tracing::error!(table = %st.stream.table, shard = %shard, "shard task failed; restarting it from its checkpoint in {delay:?}: {e}");
                                next_discovery = next_discovery.min(Instant::now() + delay);
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
                for i in 0..states.len() {
                    if let Err(e) = discover(&ctx, &mut states, i, &mut tasks, &stop).await {
                        ctx.metrics.inc("archiver_errors_total", &[("kind", "discovery")], 1);
                        tracing::warn!(table = %states[i].stream.table, "listing shards failed; trying again at the next discovery: {e}");
                    }
                }
                update_owned_gauge(&ctx.metrics, &states);
                next_discovery = Instant::now() + config.discovery_interval;
            }
        }
    }

    // Stop: every shard task flushes, checkpoints and releases its lease.
    stop.cancel();
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while let Some(joined) = tasks.join_next().await {
            if let Ok((i, shard, Err(e))) = joined {
                tracing::error!(table = %states[i].stream.table, shard = %shard, "shard did not stop cleanly: {e}");
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

struct Ctx {
    clients: Clients,
    leases: LeaseStore,
    sink: ArchiveSink,
    metrics: Arc<Metrics>,
    settings: ShardSettings,
    start: StartPosition,
}

/// Lists a stream's shards and starts every shard that lineage says is ready.
async fn discover(
    ctx: &Ctx,
    states: &mut [StreamState],
    i: usize,
    tasks: &mut JoinSet<TaskResult>,
    stop: &CancellationToken,
) -> Result<(), RunError> {
    let st = &mut states[i];
    let shards = api::list_shards(&ctx.clients.streams, &st.stream.arn)
        .await
        .map_err(|e| RunError::Shard {
            table: st.stream.table.to_string(),
            shard: "-".into(),
            message: e.to_string(),
        })?;
    st.shards = shards;
    let nodes: Vec<ShardNode> = st
        .shards
        .iter()
        .map(|s| ShardNode {
            id: s.id.clone(),
            parent: s.parent.clone(),
        })
        .collect();
    // A shard taken and found already finished unlocks its children in the same pass.
    loop {
        let ready = lineage::ready_shards(&nodes, &st.progress);
        let mut unlocked = false;
        for shard in ready {
            if st
                .not_before
                .get(&shard)
                .is_some_and(|(t, _)| *t > Instant::now())
            {
                continue;
            }
            let parents: Vec<ShardId> = nodes
                .iter()
                .find(|n| n.id == shard)
                .and_then(|n| n.parent.clone())
                .into_iter()
                .collect();
            // `--start-position latest` applies to shards without a parent only: a child of a
            // shard being archived starts at TRIM_HORIZON, or the records written between the
            // rollover and the moment we reach the child would be skipped (the KCL does the same).
            let start = match (ctx.start, parents.is_empty()) {
                (StartPosition::Latest, true) => Checkpoint::Latest,
                _ => Checkpoint::TrimHorizon,
            };
            let mut retried = false;
            let lease = loop {
                let taken = ctx
                    .leases
                    .take(
                        &st.stream.table,
                        &st.stream.arn,
                        &shard,
                        &parents,
                        start.clone(),
                        st.leases.get(&shard),
                    )
                    .await;
                match taken {
                    Ok(l) => break Some(l),
                    Err(LeaseError::Lost(_)) if !retried => {
                        // Our copy was stale (a finished task moved the counter on): read the
                        // stream's leases again and take it once more with the fresh copy.
                        retried = true;
                        let fresh = ctx.leases.leases_of_stream(&st.stream.arn).await?;
                        st.leases = fresh.into_iter().map(|l| (l.shard.clone(), l)).collect();
                    }
                    Err(e) if e.is_retryable() || matches!(e, LeaseError::Lost(_)) => {
                        // Other ready shards of this pass still start.
                        tracing::warn!(table = %st.stream.table, shard = %shard, "cannot take the shard's lease; trying again at the next discovery: {e}");
                        break None;
                    }
                    Err(e) => return Err(e.into()),
                }
            };
            let Some(lease) = lease else { continue };
            if lease.checkpoint == Checkpoint::ShardEnd {
                st.progress.insert(shard.clone(), Progress::Finished);
                unlocked = true;
                continue;
            }
            let position = match &lease.checkpoint {
                Checkpoint::TrimHorizon => Position::TrimHorizon,
                Checkpoint::Latest => Position::Latest,
                Checkpoint::At(s) => Position::After(s.clone()),
                Checkpoint::ShardEnd => unreachable!("handled above"),
            };
            if let Some(p) = parents
                .first()
                .filter(|p| !nodes.iter().any(|n| &n.id == *p))
            {
                if !st.progress.contains_key(p) {
                    tracing::warn!(table = %st.stream.table, shard = %shard, parent = %p, "starting a shard whose parent is no longer listed (expired from the stream) and was never archived to its end here: records of the parent may be missing");
                }
            }
            tracing::info!(table = %st.stream.table, shard = %shard, from = %position, "starting shard");
            st.not_before.remove(&shard);
            st.progress.insert(shard.clone(), Progress::Reading);
            st.leases.insert(shard.clone(), lease.clone());
            let reader = ShardReader {
                streams: ctx.clients.streams.clone(),
                table: st.stream.table.clone(),
                stream: st.stream.arn.clone(),
                shard: shard.clone(),
                position,
                metrics: ctx.metrics.clone(),
            };
            let task = ShardTask::new(
                reader,
                lease,
                ctx.leases.clone(),
                ctx.sink.clone(),
                ctx.metrics.clone(),
                ctx.settings.clone(),
            );
            let token = stop.child_token();
            tasks.spawn(async move { (i, shard, task.run(token).await) });
        }
        if !unlocked {
            break;
        }
    }
    Ok(())
}

fn update_owned_gauge(metrics: &Metrics, states: &[StreamState]) {
    for st in states {
        let owned = st
            .progress
            .values()
            .filter(|p| **p == Progress::Reading)
            .count();
        metrics.set_gauge(
            "archiver_shards_owned",
            &[("table", st.stream.table.as_str())],
            owned as f64,
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
