//! The lease of one running shard, owned by its shard task: the only code that moves the shard's
//! checkpoint, releases the lease or hands it over. Every write is conditional on this worker
//! still owning the lease; a failed condition is [`ShardError::Fenced`], which ends the task.

use super::shard_task::ShardError;
use crate::backoff::{retry, Backoff};
use crate::leases::{Checkpoint, Lease, LeaseError, LeaseStore};
use crate::metrics::{Metric, Metrics};
use std::sync::Arc;
use std::time::Duration;

const RETRY_BASE: Duration = Duration::from_millis(200);
const RETRY_CAP: Duration = Duration::from_secs(10);

pub struct Checkpointer {
    lease: Lease,
    store: LeaseStore,
    metrics: Arc<Metrics>,
}

impl Checkpointer {
    pub fn new(lease: Lease, store: LeaseStore, metrics: Arc<Metrics>) -> Self {
        Self {
            lease,
            store,
            metrics,
        }
    }

    pub fn lease(&self) -> &Lease {
        &self.lease
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
