//! The lease of one running shard, owned by its shard task: the only code that moves the shard's
//! checkpoint, releases the lease or hands it over. Every write is conditional on this worker
//! still owning the lease; a failed condition is [`ShardError::Fenced`], which ends the task.

use super::shard::ShardError;
use crate::backoff::{retry, Backoff};
use crate::leases::{Checkpoint, Lease, LeaseError, LeaseStore};
use crate::metrics::{Metric, Metrics};
use crate::stream::api::Position;
use std::sync::Arc;
use std::time::Duration;

const RETRY_BASE: Duration = Duration::from_millis(200);
const RETRY_CAP: Duration = Duration::from_secs(10);

pub struct Checkpointer {
    lease: Lease,
    store: LeaseStore,
    metrics: Arc<Metrics>,
    /// Checkpoints written by this task: progress, which resets the shard's restart backoff.
    commits: u64,
}

impl Checkpointer {
    pub fn new(lease: Lease, store: LeaseStore, metrics: Arc<Metrics>) -> Self {
        Self {
            lease,
            store,
            metrics,
            commits: 0,
        }
    }

    /// Whether this task moved the checkpoint.
    pub fn progressed(&self) -> bool {
        self.commits > 0
    }

    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Where reading resumes from the lease. A `LATEST` lease that records when
    /// `--start-position latest` took effect is read from the shard's start (records created
    /// before that instant are skipped by the shard loop), so that nothing written after it is
    /// skipped, whatever crashed in between.
    pub fn resume_position(&self) -> Position {
        match &self.lease.checkpoint {
            Checkpoint::TrimHorizon => Position::TrimHorizon,
            Checkpoint::Latest if self.lease.start_after_ms.is_some() => Position::TrimHorizon,
            Checkpoint::Latest => Position::Latest,
            Checkpoint::At(s) => Position::After(s.clone()),
            Checkpoint::ShardEnd => unreachable!("finished shards are not started"),
        }
    }

    /// The cutoff of a `LATEST` lease that has not yet archived anything: records created before
    /// this (ms, to the second: DynamoDB Streams rounds creation times down to the second) are
    /// not archived.
    pub fn skip_before_ms(&self) -> Option<i64> {
        match (&self.lease.checkpoint, self.lease.start_after_ms) {
            (Checkpoint::Latest, Some(t)) => Some(t - t.rem_euclid(1000)),
            _ => None,
        }
    }

    /// Moves the checkpoint (and, for a file, the chain's last file and its stored hash),
    /// retrying throttling and other passing failures until they pass.
    pub async fn commit(
        &mut self,
        checkpoint: Checkpoint,
        file: Option<(&str, [u8; 32])>,
    ) -> Result<(), ShardError> {
        let mut backoff = Backoff::new(RETRY_BASE, RETRY_CAP);
        loop {
            match self
                .store
                .checkpoint(&mut self.lease, checkpoint.clone(), file)
                .await
            {
                Ok(()) => break,
                Err(e) if e.is_retryable() => {
                    let delay = backoff.next_delay();
                    self.metrics
                        .inc(Metric::Errors, &[("kind", "checkpoint")], 1);
                    tracing::warn!(table = %self.lease.table, shard = %self.lease.shard, "checkpoint failed; retrying in {delay:?}: {e}");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(fenced(e)),
            }
        }
        self.metrics.inc(
            Metric::Checkpoints,
            &[("table", self.lease.table.as_str())],
            1,
        );
        self.metrics
            .shard_progress(&self.lease.table, &self.lease.shard);
        self.commits += 1;
        Ok(())
    }

    /// Gives the lease up after a final flush (shutdown), so another worker can take it at once.
    /// A failure is only logged: the lease then expires after the failover time.
    pub async fn release(&self) {
        let r = retry(
            Backoff::new(RETRY_BASE, RETRY_CAP),
            Some(3),
            || self.store.release(&self.lease),
            LeaseError::is_retryable,
            |_, _| {},
        )
        .await;
        if let Err(e) = r {
            tracing::warn!(shard = %self.lease.shard, "could not release the lease on shutdown: {e}");
        }
    }

    /// Passes the lease to the worker that asked for it, after a final flush and checkpoint.
    pub async fn hand_over(&self) -> Result<(), ShardError> {
        self.store.hand_over(&self.lease).await.map_err(fenced)
    }
}

/// A conditional failure means another worker owns the lease: the task is fenced.
fn fenced(e: LeaseError) -> ShardError {
    match e {
        LeaseError::Lost(key) => ShardError::Fenced(key),
        other => ShardError::Lease(other),
    }
}
