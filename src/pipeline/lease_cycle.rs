//! One lease cycle of the worker, run every `--failover-time / 3` and after each listing: read the
//! streams' leases, plan (pure, `leases::plan`) and apply the plan with conditional writes, then
//! start a task for every shard acquired (and tell the renewer to renew its lease). The worker
//! task owns all of this state; shard tasks only see their own `LeaseControl`.

use super::archive_output::ArchiveOutput;
use super::budget::RunningShard;
use super::checkpointer::Checkpointer;
use super::error::RunError;
use super::firehose_output::FirehoseOutput;
use super::lease_control::LeaseControl;
use super::renewer::Held;
use super::shard::{ReaderSpec, ShardSettings, TaskEnd};
use super::shard_task::ShardTask;
use super::Destination;
use crate::aws::Clients;
use crate::backoff::Backoff;
use crate::leases::plan::{cleanable, plan, unread, Action, LeaseState, PlanInput};
use crate::leases::{Checkpoint, Lease, LeaseError, LeaseKey, LeaseStore};
use crate::lineage::{self, ShardNode};
use crate::metrics::{Metric, Metrics};
use crate::stream::api::{ShardDesc, TableStream};
use crate::stream::StartPosition;
use crate::types::ShardId;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub(super) struct Ctx {
    pub clients: Clients,
    pub leases: LeaseStore,
    pub sink: Destination,
    pub metrics: Arc<Metrics>,
    pub settings: ShardSettings,
    pub start: StartPosition,
    /// `--max-leases`.
    pub max_leases: Option<usize>,
    /// The renewer's inbox: leases held from now on, and no longer.
    pub held: mpsc::Sender<Held>,
}

/// What a shard task hands back when it ends: its stream's index, shard, lease, and how it ended.
pub(super) type TaskResult = (usize, ShardId, LeaseKey, TaskEnd);

/// One table's stream and what the worker knows of it.
pub(super) struct StreamState {
    pub stream: TableStream,
    /// The last DescribeStream listing.
    pub shards: Vec<ShardDesc>,
    /// The last read of the stream's leases.
    pub leases: HashMap<ShardId, Lease>,
    pub finished: HashSet<ShardId>,
    /// The shards this worker is reading, and their leases.
    pub running: HashMap<ShardId, LeaseKey>,
    /// Each lease's counter and when this worker first saw that value: a lease whose counter
    /// has not moved for the failover time belongs to a worker that is gone.
    pub observed: HashMap<ShardId, (u64, Instant)>,
    /// Shards whose task failed, and when they may be tried again.
    pub not_before: HashMap<ShardId, (Instant, Backoff)>,
    /// Ready shards without a lease item, and since when this worker has seen them so.
    pub unleased_since: HashMap<ShardId, Instant>,
    /// Since when some ready shard of this stream has had no live owner, and whether that was
    /// logged (`leases::plan::unread`).
    pub unread_since: Option<(Instant, bool)>,
}

impl StreamState {
    pub fn new(stream: TableStream) -> Self {
        Self {
            stream,
            shards: Vec::new(),
            leases: HashMap::new(),
            finished: HashSet::new(),
            running: HashMap::new(),
            observed: HashMap::new(),
            not_before: HashMap::new(),
            unread_since: None,
            unleased_since: HashMap::new(),
        }
    }

    /// A new listing of the stream's shards.
    pub fn listed(&mut self, shards: Vec<ShardDesc>) {
        self.shards = shards;
    }

    /// A task ended: forget it. A failure waits before the shard is taken up again, longer
    /// after each failure in a row (1 s to 60 s); a task that made progress (checkpointed)
    /// before it ended starts the count again.
    pub fn task_ended(&mut self, shard: &ShardId, failed: bool, progressed: bool) -> Duration {
        self.running.remove(shard);
        if progressed {
            self.not_before.remove(shard);
        }
        if !failed {
            return Duration::ZERO;
        }
        let entry = self.not_before.entry(shard.clone()).or_insert_with(|| {
            (
                Instant::now(),
                Backoff::restart(Duration::from_secs(1), Duration::from_secs(60)),
            )
        });
        let delay = entry.1.next_delay();
        entry.0 = Instant::now() + delay;
        delay
    }
}

/// What one stream contributes to a planning cycle.
struct Gathered {
    nodes: Vec<ShardNode>,
    states: Vec<LeaseState>,
    ready_without_lease: Vec<ShardId>,
    unclaimed_without_lease: Vec<ShardId>,
}

/// Takes one stream's leases (from the cycle's scan) and works out what lineage allows; plan keys are `<stream index>/<shard>`
/// so that one plan balances the leases of every stream together, as one lease table holds them.
async fn gather(ctx: &Ctx, st: &mut StreamState, index: usize, scanned: Vec<Lease>) -> Gathered {
    let me = ctx.leases.worker_id().to_owned();
    let now = Instant::now();
    st.leases = scanned.into_iter().map(|l| (l.shard.clone(), l)).collect();
    for l in st.leases.values() {
        if l.checkpoint == Checkpoint::ShardEnd {
            st.finished.insert(l.shard.clone());
        }
        let seen = st
            .observed
            .entry(l.shard.clone())
            .or_insert((l.counter, now));
        if seen.0 != l.counter {
            *seen = (l.counter, now);
        }
    }
    let leases = &st.leases;
    st.observed.retain(|s, _| leases.contains_key(s));
    // A finished shard that is neither listed nor leased any more needs no remembering: a child
    // whose parent is unlisted may start anyway. (Without this the set grows for ever.)
    let listed_ids: HashSet<&ShardId> = st.shards.iter().map(|s| &s.id).collect();
    st.finished
        .retain(|s| leases.contains_key(s) || listed_ids.contains(s));

    // Lineage over the listed shards plus unfinished leased shards no longer listed (expired
    // from the stream: their task records the gap and ends them).
    let mut nodes: Vec<ShardNode> = st
        .shards
        .iter()
        .map(|s| ShardNode {
            id: s.id.clone(),
            parent: s.parent.clone(),
        })
        .collect();
    for l in st.leases.values() {
        if !st.finished.contains(&l.shard) && !nodes.iter().any(|n| n.id == l.shard) {
            nodes.push(ShardNode {
                id: l.shard.clone(),
                parent: l.parents.first().cloned(),
            });
        }
    }
    // Finished leases no longer needed by lineage are deleted, so the table does not grow forever.
    let leased: HashSet<ShardId> = st.leases.keys().cloned().collect();
    let finished_leases: Vec<ShardId> = st
        .leases
        .values()
        .filter(|l| l.checkpoint == Checkpoint::ShardEnd)
        .map(|l| l.shard.clone())
        .collect();
    let listed: Vec<ShardNode> = nodes
        .iter()
        .filter(|n| st.shards.iter().any(|s| s.id == n.id))
        .cloned()
        .collect();
    // Only on a successful, non-empty listing: an empty one would make every finished lease look
    // unlisted.
    let cleanup = if st.shards.is_empty() {
        Vec::new()
    } else {
        cleanable(&finished_leases, &listed, &leased)
    };
    for shard in cleanup {
        if let Some(lease) = st.leases.remove(&shard) {
            match ctx.leases.delete_finished(&lease).await {
                Ok(()) => {
                    tracing::info!(table = %st.stream.table, shard = %shard, "deleted the lease of a finished shard (gone from the stream, children started)")
                }
                Err(e) => tracing::debug!(shard = %shard, "finished lease not deleted: {e}"),
            }
        }
    }
    let ready: HashSet<ShardId> = lineage::ready_shards(&nodes, &st.finished)
        .into_iter()
        .collect();
    let blocked = |s: &ShardId| {
        st.not_before
            .get(s)
            .is_some_and(|(t, _)| *t > Instant::now())
    };
    let key = |s: &ShardId| ShardId::new(format!("{index}/{s}"));
    let failover = ctx.settings.failover_time;
    let states = st
        .leases
        .values()
        .filter(|l| l.checkpoint != Checkpoint::ShardEnd)
        .map(|l| {
            let running = st.running.contains_key(&l.shard);
            let owner = if running {
                Some(me.clone())
            } else {
                // Our own lease without a task (the task failed): ours to take again.
                l.owner.clone().filter(|o| *o != me)
            };
            LeaseState {
                shard: key(&l.shard),
                expired: owner.as_deref().is_some_and(|o| o != me)
                    && st
                        .observed
                        .get(&l.shard)
                        .is_some_and(|(_, since)| since.elapsed() >= failover),
                unclaimed: owner.is_none()
                    && st
                        .observed
                        .get(&l.shard)
                        .is_some_and(|(_, since)| since.elapsed() >= failover),
                owner,
                ready: running || (ready.contains(&l.shard) && !blocked(&l.shard)),
                steal_pending: l.pending_owner.is_some(),
            }
        })
        .collect();
    let mut unleased: Vec<&ShardId> = ready
        .iter()
        .filter(|s| !st.leases.contains_key(*s) && !st.running.contains_key(*s) && !blocked(s))
        .collect();
    unleased.sort();
    // Those nobody created a lease for in the failover time: the workers below their target did
    // not want them (`leases::plan`, `unclaimed`).
    st.unleased_since.retain(|s, _| unleased.contains(&s));
    let unclaimed_without_lease: Vec<ShardId> = unleased
        .iter()
        .filter(|s| {
            st.unleased_since
                .entry((**s).clone())
                .or_insert(now)
                .elapsed()
                >= failover
        })
        .map(|s| key(s))
        .collect();
    let ready_without_lease: Vec<ShardId> = unleased.into_iter().map(key).collect();
    Gathered {
        nodes,
        states,
        ready_without_lease,
        unclaimed_without_lease,
    }
}

/// `--start-position latest`, when a stream is first followed (it has no lease at all): every
/// shard open now gets a lease at `LATEST` from this instant, and every closed one (their
/// ancestors) one at `SHARD_END`, never read. Shards born later get `TRIM_HORIZON` leases as they
/// appear. The instant is written into the lease, not only applied to an iterator: the shard is
/// read from its start and what was created before the instant is skipped, so a crash before the
/// first checkpoint skips nothing written after it. Returns the leases as now stored.
async fn start_at_latest(ctx: &Ctx, st: &StreamState) -> Vec<Lease> {
    let now = crate::clock::now_ms();
    let mut out = Vec::new();
    for shard in &st.shards {
        let (checkpoint, start_after) = match shard.ending_sequence {
            Some(_) => (Checkpoint::ShardEnd, None),
            None => (Checkpoint::Latest, Some(now)),
        };
        let parents: Vec<ShardId> = shard.parent.iter().cloned().collect();
        match ctx
            .leases
            .initialize(
                &st.stream.arn,
                &st.stream.table,
                &shard.id,
                &parents,
                checkpoint,
                start_after,
            )
            .await
        {
            Ok(lease) => out.push(lease),
            // Another worker initialized it first, or a passing error: the next scan tells.
            Err(e) => tracing::debug!(shard = %shard.id, "lease not initialized: {e}"),
        }
    }
    let open = out
        .iter()
        .filter(|l| l.checkpoint == Checkpoint::Latest)
        .count();
    tracing::info!(table = %st.stream.table, open_shards = open, skipped_closed_shards = out.len() - open, start_after = %crate::clock::rfc3339(now), "first follow with --start-position latest: the open shards are archived from now on, their ancestors never");
    out
}

/// Reads every stream's leases, plans once for all of them, applies the plan, and starts tasks
/// for what was acquired.
pub(super) async fn plan_and_apply(
    ctx: &Ctx,
    streams: &mut [StreamState],
    tasks: &mut JoinSet<TaskResult>,
    stop: &CancellationToken,
) -> Result<(), RunError> {
    // One consistent Scan of the lease table per cycle, split by stream: a filtered Scan per
    // stream would read the whole table once for every table followed.
    let mut by_stream: HashMap<String, Vec<Lease>> = HashMap::new();
    for lease in ctx.leases.all().await? {
        by_stream
            .entry(lease.stream.as_str().to_owned())
            .or_default()
            .push(lease);
    }
    let mut gathered = Vec::with_capacity(streams.len());
    for (index, st) in streams.iter_mut().enumerate() {
        let mut scanned = by_stream.remove(st.stream.arn.as_str()).unwrap_or_default();
        if scanned.is_empty() && ctx.start == StartPosition::Latest && !st.shards.is_empty() {
            scanned = start_at_latest(ctx, st).await;
        }
        gathered.push(gather(ctx, st, index, scanned).await);
    }
    let all_states: Vec<LeaseState> = gathered.iter().flat_map(|g| g.states.clone()).collect();
    let all_ready: Vec<ShardId> = gathered
        .iter()
        .flat_map(|g| g.ready_without_lease.clone())
        .collect();
    let all_unclaimed: Vec<ShardId> = gathered
        .iter()
        .flat_map(|g| g.unclaimed_without_lease.clone())
        .collect();
    let input = PlanInput {
        me: ctx.leases.worker_id(),
        leases: &all_states,
        ready_without_lease: &all_ready,
        unclaimed_without_lease: &all_unclaimed,
        max_leases: ctx.max_leases,
    };
    let actions = plan(&input);
    report_unread(ctx, streams, &unread(&input, &actions));
    // Every acquisition planned is counted as running before the first shard starts: shards
    // size their pages and read-ahead by how many run, and the first ones started would otherwise
    // see a few and read big pages while the rest are still being acquired (one soak run reached
    // 319 MiB within its first second). Unused reservations drop at the end.
    let mut reserved: Vec<RunningShard> = actions
        .iter()
        .filter(|a| !matches!(a, Action::Steal { .. }))
        .map(|_| ctx.settings.budgets.count_running())
        .collect();
    for action in actions {
        let (planned, how) = match &action {
            Action::Create(s) => (s, "create"),
            Action::Take(s) => (s, "take"),
            Action::Steal { shard, .. } => (shard, "steal"),
        };
        let Some((index, shard)) = planned
            .as_str()
            .split_once('/')
            .and_then(|(i, s)| Some((i.parse::<usize>().ok()?, ShardId::new(s))))
        else {
            continue;
        };
        let st = &mut streams[index];
        let table = st.stream.table.to_string();
        if let Action::Steal { from, .. } = &action {
            let Some(lease) = st.leases.get(&shard) else {
                continue;
            };
            match ctx.leases.request_steal(lease, from).await {
                Ok(()) => {
                    tracing::info!(table = %table, shard = %shard, from = %from, "asked for a lease to balance the load");
                    ctx.metrics
                        .inc(Metric::LeasesStealRequests, &[("table", &table)], 1);
                }
                Err(e) => tracing::debug!(shard = %shard, "steal request not placed: {e}"),
            }
            continue;
        }
        let parents: Vec<ShardId> = gathered[index]
            .nodes
            .iter()
            .find(|n| n.id == shard)
            .and_then(|n| n.parent.clone())
            .into_iter()
            .collect();
        // A lease made here is for a shard born after the stream was first followed (with
        // `--start-position latest` every shard of that moment got its lease then, in
        // `start_at_latest`): it is read from its beginning.
        let start = Checkpoint::TrimHorizon;
        let sent = std::time::Instant::now();
        let taken = ctx
            .leases
            .take(
                &st.stream.table,
                &st.stream.arn,
                &shard,
                &parents,
                start,
                st.leases.get(&shard),
            )
            .await;
        let lease = match taken {
            Ok(l) => l,
            Err(e) if matches!(e, LeaseError::Lost(_)) || e.is_retryable() => {
                // Another worker was faster, or a passing error: the next cycle plans again.
                tracing::debug!(table = %table, shard = %shard, "lease not acquired: {e}");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        ctx.metrics
            .inc(Metric::LeasesTaken, &[("table", &table), ("how", how)], 1);
        if lease.checkpoint == Checkpoint::ShardEnd {
            st.finished.insert(shard);
            continue;
        }
        if parents
            .first()
            .is_some_and(|p| !st.shards.iter().any(|s| &s.id == p) && !st.finished.contains(p))
        {
            tracing::warn!(table = %table, shard = %shard, parent = %parents[0], "starting a shard whose parent is no longer listed (expired from the stream) and was never archived to its end here: records of the parent may be missing");
        }
        let counted = reserved
            .pop()
            .unwrap_or_else(|| ctx.settings.budgets.count_running());
        spawn(ctx, st, index, lease, sent, counted, tasks, stop).await;
    }
    Ok(())
}

/// How long shards may stay unread, in failover times, before a warning: a takeover takes
/// about two (`docs/ARCHITECTURE.md`, "Leases").
const UNREAD_WARN_FAILOVERS: u32 = 3;

/// Sets `archiver_shards_unread` for every table (zero included, so an alarm sees data) and
/// warns once when a table's shards stay unread for [`UNREAD_WARN_FAILOVERS`] failover times.
/// `unread` holds the planner's keys, `index/shard`.
fn report_unread(ctx: &Ctx, streams: &mut [StreamState], unread: &[ShardId]) {
    for (index, st) in streams.iter_mut().enumerate() {
        let prefix = format!("{index}/");
        let mine: Vec<&str> = unread
            .iter()
            .filter_map(|s| s.as_str().strip_prefix(&prefix))
            .collect();
        let table = st.stream.table.to_string();
        ctx.metrics.set_gauge(
            Metric::ShardsUnread,
            &[("table", &table)],
            mine.len() as f64,
        );
        match (&mut st.unread_since, mine.is_empty()) {
            (since @ Some(_), true) => {
                if since.is_some_and(|(_, warned)| warned) {
                    tracing::info!(table = %table, "every ready shard has an owner again");
                }
                *since = None;
            }
            (since @ None, false) => *since = Some((Instant::now(), false)),
            (Some((at, warned)), false) => {
                if !*warned && at.elapsed() >= ctx.settings.failover_time * UNREAD_WARN_FAILOVERS {
                    *warned = true;
                    tracing::warn!(table = %table, unread = mine.len(), shards = ?mine, max_leases = ?ctx.max_leases, "SHARDS UNREAD: ready shards that no worker holds; their records age towards the stream's 24-hour trim (every worker at --max-leases? add workers or raise it)");
                }
            }
            (None, true) => {}
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn spawn(
    ctx: &Ctx,
    st: &mut StreamState,
    index: usize,
    lease: Lease,
    acquired_at: std::time::Instant,
    counted: RunningShard,
    tasks: &mut JoinSet<TaskResult>,
    stop: &CancellationToken,
) {
    let shard = lease.shard.clone();
    tracing::info!(table = %st.stream.table, shard = %shard, checkpoint = %lease.checkpoint, "starting shard");
    let control = Arc::new(LeaseControl::new(acquired_at));
    let token = stop.child_token();
    let key = lease.key.clone();
    st.running.insert(shard.clone(), key.clone());
    // The renewer renews the lease from now on and tells the task, through `control` and its
    // token, if it is lost or asked for. (It only fails to take the message when the worker is
    // stopping, and then the task stops with it.)
    let _ = ctx
        .held
        .send(Held::Add {
            key: key.clone(),
            table: st.stream.table.to_string(),
            shard: shard.clone(),
            control: control.clone(),
            token: token.clone(),
        })
        .await;
    let checkpointer = Checkpointer::new(lease, ctx.leases.clone(), ctx.metrics.clone());
    let readers = ReaderSpec {
        streams: ctx.clients.streams.clone(),
        metrics: ctx.metrics.clone(),
        running: ctx.settings.budgets.running_counter(),
        page_budget: ctx.settings.budgets.page_budget(),
        spool: matches!(ctx.sink, Destination::Archive(_)).then(|| crate::spool::SpoolRoom {
            dir: ctx.settings.spool_dir.clone(),
            metrics: ctx.metrics.clone(),
        }),
    };
    let settings = ctx.settings.clone();
    let run = match &ctx.sink {
        Destination::Archive(store) => {
            let starting = st
                .shards
                .iter()
                .find(|s| s.id == shard)
                .and_then(|s| s.starting_sequence.clone());
            let output = ArchiveOutput::new(
                store.clone(),
                ctx.metrics.clone(),
                settings.clone(),
                starting,
            );
            let task = ShardTask::new(checkpointer, output, readers, settings, control);
            futures_boxed(task.run(token))
        }
        Destination::Firehose(firehose) => {
            let output = FirehoseOutput::new(
                firehose.clone(),
                ctx.metrics.clone(),
                settings.clone(),
                control.clone(),
                token.clone(),
            );
            let task = ShardTask::new(checkpointer, output, readers, settings, control);
            futures_boxed(task.run(token))
        }
    };
    // The shard task logs inside the worker's span (the worker id on every line).
    tasks.spawn(
        async move {
            let _counted = counted;
            (index, shard, key, run.await)
        }
        .in_current_span(),
    );
}

type ShardRun = std::pin::Pin<Box<dyn std::future::Future<Output = TaskEnd> + Send>>;

/// One future type for the tasks of both outputs. (A function generic over the output could not
/// spawn it: the futures of a trait's async methods cannot be proven `Send` generically, only
/// for each concrete output.)
fn futures_boxed(f: impl std::future::Future<Output = TaskEnd> + Send + 'static) -> ShardRun {
    Box::pin(f)
}
