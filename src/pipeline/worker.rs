//! The worker: one task that owns every table's shard map, decides (through the pure lineage
//! module) which shards start, spawns a task per shard, and awaits them all on shutdown. Beside it
//! run two tasks it owns and awaits: discovery (listing shards) and the renewer (renewing the
//! leases held), so that neither a slow listing nor a slow lease cycle delays a renewal.

use super::discovery;
use super::lease_cycle::{self, Ctx, StreamState, TaskResult};
use super::renewer::{Held, Renewer};
use super::shard::{ShardError, ShardOutcome, ShardSettings};
use super::Destination;
use crate::archive::ArchiveSink;
use crate::archive::ArchiveUri;
use crate::aws::Clients;
use crate::leases::LeaseStore;
use crate::metrics::{Metric, Metrics};
use crate::sink::firehose::{FirehoseSink, Overflow};
use crate::stream::{api, StartPosition};
use crate::types::TableName;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use super::error::RunError;

/// Time the shard tasks get to flush, checkpoint and release after a stop signal. ECS waits 30 s
/// (stopTimeout) before SIGKILL; the contract promises an exit within 20 s.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(18);

/// Where the worker writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Parquet files into the archive.
    Archive(ArchiveUri),
    /// A Firehose delivery stream, and where lines too long for one Firehose record go.
    Firehose {
        stream: String,
        overflow: Option<ArchiveUri>,
    },
}

/// What the worker needs, validated (`config::RunConfig` holds it).
#[derive(Debug, Clone)]
pub struct Settings {
    pub tables: Vec<TableName>,
    pub output: Output,
    pub lease_table: String,
    pub worker_id: String,
    /// Where a shard with no checkpoint starts.
    pub start_position: StartPosition,
    pub flush_interval: Duration,
    pub flush_size_bytes: u64,
    pub failover_time: Duration,
    pub sse_kms_key: Option<String>,
    pub spool_dir: PathBuf,
    pub discovery_interval: Duration,
    /// `--max-leases`: `None` is no cap.
    pub max_leases: Option<usize>,
}

/// Runs the worker until `shutdown` is cancelled (or a fatal error), then stops every shard
/// cleanly.
pub async fn run(
    config: Settings,
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

    super::preflight::check(&clients, &streams, &leases, &sink).await?;
    let spool_dir = prepare_spool(&config.spool_dir)?;
    let settings = ShardSettings {
        flush_interval: config.flush_interval,
        flush_size_bytes: config.flush_size_bytes,
        spool_dir: spool_dir.clone(),
        budgets: super::budget::Budgets::new(),
        failover_time: config.failover_time,
    };
    // Renew three times per failover time, as the KCL does: one lost or slow renewal never lets
    // a lease expire in others' eyes.
    let cycle_every = config.failover_time / 3;
    let stop = shutdown.child_token();
    // The renewer outlives `stop`: it renews while the shard tasks drain, so a slow final flush
    // is not taken for a dead worker.
    let renewer_stop = CancellationToken::new();
    let (held, renewer) = Renewer::spawn(
        leases.clone(),
        metrics.clone(),
        cycle_every,
        renewer_stop.clone(),
    );
    let (mut listings, poke, discovery) = discovery::spawn(
        clients.streams.clone(),
        streams.clone(),
        config.discovery_interval,
        metrics.clone(),
        stop.child_token(),
    );
    let mut states: Vec<StreamState> = streams.into_iter().map(StreamState::new).collect();
    let ctx = Ctx {
        clients,
        leases,
        sink,
        metrics,
        settings,
        start: config.start_position,
        max_leases: config.max_leases,
        held,
    };
    ready.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut tasks: JoinSet<TaskResult> = JoinSet::new();
    let mut fatal: Option<RunError> = None;
    let mut next_cycle = Instant::now() + cycle_every;
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            joined = tasks.join_next(), if !tasks.is_empty() => {
                let Some(joined) = joined else { continue };
                match joined {
                    Ok(ended) => {
                        if let Some(e) = task_ended(&ctx, &mut states, ended, &poke, &mut next_cycle).await {
                            fatal = Some(e);
                            stop.cancel();
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
            Some(listing) = listings.recv() => {
                states[listing.index].listed(listing.shards);
                next_cycle = Instant::now();
            }
            _ = tokio::time::sleep_until(next_cycle) => {
                next_cycle = Instant::now() + cycle_every;
                // Abandoned at once by a stop signal: every lease write is conditional, so a cycle
                // cut short leaves nothing inconsistent, and the drain below starts without delay.
                tokio::select! {
                    _ = stop.cancelled() => continue,
                    cycle = lease_cycle::plan_and_apply(&ctx, &mut states, &mut tasks, &stop) => {
                        if let Err(e) = cycle {
                            ctx.metrics.inc(Metric::Errors, &[("kind", "lease_cycle")], 1);
                            tracing::warn!("the lease cycle failed; trying again at the next one: {e}");
                        }
                    }
                }
                update_owned_gauge(&ctx.metrics, &states);
            }
        }
    }

    // Stop: every shard task flushes, checkpoints and releases (or hands over) its lease; the
    // renewer keeps renewing meanwhile.
    stop.cancel();
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while let Some(joined) = tasks.join_next().await {
            if let Ok((i, shard, key, end)) = joined {
                if let Err(e) = &end.result {
                    tracing::error!(table = %states[i].stream.table, shard = %shard, "shard did not stop cleanly: {e}");
                }
                let _ = ctx.held.send(Held::Remove(key)).await;
                states[i].task_ended(&shard, false, end.progressed);
            }
        }
    })
    .await;
    let _ = std::fs::remove_dir_all(&spool_dir);
    if drained.is_err() {
        tasks.abort_all();
    }
    renewer_stop.cancel();
    let _ = renewer.await;
    let _ = discovery.await;
    if drained.is_err() {
        return Err(RunError::ShutdownTimeout);
    }
    match fatal {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A shard task ended: the renewer lets its lease go, the shard's state moves on. A fatal error
/// (the archive refuses writes) is returned: the worker stops.
async fn task_ended(
    ctx: &Ctx,
    states: &mut [StreamState],
    (i, shard, key, end): TaskResult,
    poke: &tokio::sync::Notify,
    next_cycle: &mut Instant,
) -> Option<RunError> {
    let _ = ctx.held.send(Held::Remove(key)).await;
    let st = &mut states[i];
    match end.result {
        Ok(ShardOutcome::Finished) => {
            tracing::info!(table = %st.stream.table, shard = %shard, "shard read to its end; its children may start");
            st.task_ended(&shard, false, end.progressed);
            st.finished.insert(shard);
            // Children are usually listed already: look now, not at the next interval.
            poke.notify_one();
            None
        }
        Ok(ShardOutcome::Stopped | ShardOutcome::Lost | ShardOutcome::HandedOver) => {
            st.task_ended(&shard, false, end.progressed);
            None
        }
        Err(e) if e.is_fatal() => {
            tracing::error!(table = %st.stream.table, shard = %shard, "stopping: {e}");
            st.task_ended(&shard, false, end.progressed);
            // The archive's or Firehose's own error, so that a denied permission exits 2.
            Some(match e {
                ShardError::Sink(e) => RunError::Sink(e),
                ShardError::Firehose(e) => RunError::Firehose(e),
                e => RunError::Shard {
                    table: st.stream.table.to_string(),
                    shard: shard.to_string(),
                    message: e.to_string(),
                },
            })
        }
        Err(e) => {
            ctx.metrics
                .inc(Metric::Errors, &[("kind", "shard_task")], 1);
            let delay = st.task_ended(&shard, true, end.progressed);
            tracing::error!(table = %st.stream.table, shard = %shard, "shard task failed; restarting it from its checkpoint in about {delay:?}: {e}");
            *next_cycle = (*next_cycle).min(Instant::now() + delay);
            None
        }
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
