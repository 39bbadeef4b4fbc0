//! The renewer: one task that owns the set of leases this worker holds and renews them every
//! failover time / 3, all at once (at most [`RENEWALS_IN_FLIGHT`] calls in flight), on its own
//! clock. Nothing else the worker does (listing shards, scanning the lease table, taking leases,
//! a shard's publish) can delay a renewal, so a healthy worker never looks dead to the others.
//!
//! The worker tells it which leases are held ([`Held`]) over a channel; it tells a running task
//! through the task's `LeaseControl` and token: a lease another worker owns now stops the task
//! without another write, one another worker asked for is handed over after a final flush.

use super::lease_control::{LeaseControl, StopMode};
use crate::leases::{LeaseError, LeaseKey, LeaseStore};
use crate::metrics::{Metric, Metrics};
use crate::types::ShardId;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Renewal calls in flight at once: a worker with hundreds of leases renews them in a few round
/// trips, not one after another (DynamoDB's per-table rate is far above this).
const RENEWALS_IN_FLIGHT: usize = 32;
/// Commands queued from the worker; it never waits long for a slot: the renewer reads them
/// between renewals, and a round's calls run on their own tasks.
const COMMANDS: usize = 1024;

/// What the worker tells the renewer.
pub enum Held {
    /// A shard task started on this lease.
    Add {
        key: LeaseKey,
        table: String,
        shard: ShardId,
        control: Arc<LeaseControl>,
        token: CancellationToken,
    },
    /// The task ended: the lease is no longer renewed by this worker.
    Remove(LeaseKey),
}

struct Entry {
    table: String,
    shard: ShardId,
    control: Arc<LeaseControl>,
    token: CancellationToken,
}

pub struct Renewer {
    store: LeaseStore,
    metrics: Arc<Metrics>,
    every: Duration,
    held: HashMap<LeaseKey, Entry>,
}

impl Renewer {
    /// Starts the renewer; it runs until `stop` is cancelled (after the worker's shard tasks have
    /// drained: they are renewed while they flush).
    pub fn spawn(
        store: LeaseStore,
        metrics: Arc<Metrics>,
        every: Duration,
        stop: CancellationToken,
    ) -> (mpsc::Sender<Held>, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(COMMANDS);
        let renewer = Self {
            store,
            metrics,
            every,
            held: HashMap::new(),
        };
        let task = tokio::spawn(tracing::Instrument::in_current_span(renewer.run(rx, stop)));
        (tx, task)
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Held>, stop: CancellationToken) {
        let mut next = Instant::now() + self.every;
        let mut round: JoinSet<(
            LeaseKey,
            std::time::Instant,
            Result<Option<String>, LeaseError>,
        )> = JoinSet::new();
        let slots = Arc::new(Semaphore::new(RENEWALS_IN_FLIGHT));
        let mut round_ok = true;
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                command = commands.recv() => match command {
                    Some(Held::Add { key, table, shard, control, token }) => {
                        self.held.insert(key, Entry { table, shard, control, token });
                    }
                    Some(Held::Remove(key)) => {
                        self.held.remove(&key);
                    }
                    None => break,
                },
                Some(done) = round.join_next(), if !round.is_empty() => {
                    if let Ok((key, sent, result)) = done {
                        round_ok &= self.apply(&key, sent, result);
                    }
                    if round.is_empty() {
                        self.metrics.renewals_done(round_ok);
                    }
                }
                _ = tokio::time::sleep_until(next) => {
                    next = Instant::now() + self.every;
                    if !round.is_empty() {
                        // The last round is still out (DynamoDB slow): its answers count when they
                        // come; a second round on top would only double the load.
                        continue;
                    }
                    round_ok = true;
                    if self.held.is_empty() {
                        self.metrics.renewals_done(true);
                    }
                    for key in self.held.keys() {
                        let (store, key, slots) = (self.store.clone(), key.clone(), slots.clone());
                        round.spawn(async move {
                            let _slot = slots.acquire_owned().await;
                            // Stamped when sent: DynamoDB applied the renewal after this instant,
                            // however late the answer comes back.
                            let sent = std::time::Instant::now();
                            let result = store.renew(&key).await;
                            (key, sent, result)
                        });
                    }
                }
            }
        }
        round.shutdown().await;
    }

    /// Acts on one renewal's answer; whether it succeeded.
    fn apply(
        &self,
        key: &LeaseKey,
        sent: std::time::Instant,
        result: Result<Option<String>, LeaseError>,
    ) -> bool {
        // The task ended meanwhile: nothing to tell it.
        let Some(run) = self.held.get(key) else {
            return true;
        };
        let (table, shard) = (&run.table, &run.shard);
        match result {
            Ok(pending) => {
                run.control.renewed(sent);
                if let Some(asker) = pending {
                    if run.control.mode() == StopMode::Release && !run.token.is_cancelled() {
                        tracing::info!(table = %table, shard = %shard, to = %asker, "another worker asked for this lease (balancing): flushing, checkpointing and handing it over");
                        run.control.set_mode(StopMode::HandOver);
                        run.token.cancel();
                    }
                }
                true
            }
            Err(LeaseError::Lost(_)) => {
                tracing::warn!(table = %table, shard = %shard, "lease lost to another worker: this worker stops the shard without writing more");
                self.metrics
                    .inc(Metric::LeasesLost, &[("table", table.as_str())], 1);
                run.control.set_mode(StopMode::Lost);
                run.token.cancel();
                true
            }
            Err(e) => {
                // Harmless to the archive, whose keys fence every writer; a Firehose task stops
                // sending once no renewal sent within 2/3 of the failover time has succeeded.
                self.metrics.inc(
                    Metric::LeaseRenewalFailures,
                    &[("table", table.as_str())],
                    1,
                );
                tracing::warn!(table = %table, shard = %shard, "renewing the lease failed: {e}");
                false
            }
        }
    }
}
