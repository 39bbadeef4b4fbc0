//! Typed access to the lease table. Every write is conditional, so a worker can never overwrite
//! a lease it does not hold, and a checkpoint never moves for a worker that lost its lease.

use super::item::attr;
pub use super::item::{Checkpoint, Lease, LeaseKey};
use crate::types::{ShardId, StreamArn, TableName};
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue as A;
use std::time::Duration;

/// How long creating the lease table may take before we give up.
pub(super) const TABLE_ACTIVE_DEADLINE: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("lease {0} is held by another worker or changed under us (conditional write failed)")]
    Lost(String),
    #[error("lease table `{table}`: {operation} failed: {message}")]
    Api {
        table: String,
        operation: &'static str,
        message: String,
        retryable: bool,
    },
    #[error("lease table `{table}` has item {key} that is not a valid lease: {message}")]
    Corrupt {
        table: String,
        key: String,
        message: String,
    },
    #[error("lease table `{0}` does not exist (the first `dynamo-archiver run` creates it); check --lease-table, the region and AWS_ENDPOINT_URL_DYNAMODB")]
    NoTable(String),
    #[error("lease table `{0}` did not become ACTIVE within {TABLE_ACTIVE_DEADLINE:?}")]
    NotActive(String),
    #[error(transparent)]
    Denied(#[from] crate::aws::Denied),
}

impl LeaseError {
    /// What an operator must fix (exit status 2).
    pub fn is_config(&self) -> bool {
        matches!(self, Self::Denied(_) | Self::NoTable(_))
    }

    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Api {
                retryable: true,
                ..
            }
        )
    }
}

#[derive(Debug, Clone)]
pub struct LeaseStore {
    pub(super) client: aws_sdk_dynamodb::Client,
    pub(super) table: String,
    worker_id: String,
}

impl LeaseStore {
    /// The owner this store writes is `<worker_id>#<nonce>`, the nonce fresh per process: two
    /// processes given the same `--worker-id` (a shared config file, a rolling restart while the
    /// old task still drains) are still two owners, and neither renews the other's leases.
    pub fn new(client: aws_sdk_dynamodb::Client, table: String, worker_id: String) -> Self {
        Self {
            client,
            table,
            worker_id: format!("{worker_id}#{:08x}", rand::random::<u32>()),
        }
    }

    /// The owner name this process writes in `leaseOwner` (`<worker id>#<nonce>`).
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    pub(super) fn api<E, R>(&self, operation: &'static str, e: SdkError<E, R>) -> LeaseError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + crate::aws::HasStatusCode,
    {
        let retryable = match &e {
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => true,
            _ => matches!(
                e.code(),
                Some(
                    "ProvisionedThroughputExceededException"
                        | "ThrottlingException"
                        | "RequestLimitExceeded"
                        | "InternalServerError"
                        | "ServiceUnavailable"
                        | "LimitExceededException"
                )
            ),
        };
        if crate::aws::is_denied(&e) {
            return LeaseError::Denied(crate::aws::denied(
                &format!("dynamodb:{operation}"),
                format!("lease table {}", self.table),
                &e,
            ));
        }
        LeaseError::Api {
            table: self.table.clone(),
            operation,
            message: DisplayErrorContext(&e).to_string(),
            retryable,
        }
    }

    /// Every lease in the table (for `dynamo-archiver leases`). A missing table is `NoTable`.
    pub async fn all(&self) -> Result<Vec<Lease>, LeaseError> {
        self.scan().await
    }

    /// A consistent Scan of the lease table. It holds one small item per shard (finished ones are
    /// cleaned up), so one Scan per lease cycle is cheap next to the reads it coordinates.
    async fn scan(&self) -> Result<Vec<Lease>, LeaseError> {
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut out = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception())
                {
                    LeaseError::NoTable(self.table.clone())
                } else {
                    self.api("Scan", e)
                }
            })?;
            match Lease::from_item(&item).map_err(|(key, message)| LeaseError::Corrupt {
                table: self.table.clone(),
                key,
                message,
            }) {
                Ok(lease) => out.push(lease),
                // One bad item must not stop every take and takeover: it is named and skipped
                // (its shard waits until the item is repaired or deleted).
                Err(e) => tracing::error!(
                    "skipping a lease item that cannot be read: {e}; repair or delete it"
                ),
            }
        }
        Ok(out)
    }

    /// Creates a lease nobody holds yet, as `--start-position latest` does for every shard when
    /// a stream is first followed: open shards at `LATEST` from `start_after_ms`, closed ones at
    /// `SHARD_END` (never read). Conditional on there being no lease for the shard, so that
    /// workers starting together agree (the first write wins).
    pub async fn initialize(
        &self,
        stream: &StreamArn,
        table: &TableName,
        shard: &ShardId,
        parents: &[ShardId],
        checkpoint: Checkpoint,
        start_after_ms: Option<i64>,
    ) -> Result<Lease, LeaseError> {
        let lease = Lease::fresh(
            LeaseKey::new(table, stream, shard),
            (table, stream, shard),
            parents,
            None,
            checkpoint,
            start_after_ms,
        );
        self.put_new(&lease).await?;
        Ok(lease)
    }

    /// Writes a lease that does not exist yet; `Lost` when one does (another worker wrote first).
    async fn put_new(&self, lease: &Lease) -> Result<(), LeaseError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(lease.new_item()))
            .condition_expression("attribute_not_exists(#k)")
            .expression_attribute_names("#k", attr::LEASE_KEY)
            .send()
            .await
            .map_err(|e| self.conditional("PutItem", &lease.key, e))?;
        Ok(())
    }

    /// Takes the lease of a shard for this worker, creating it (at `start`) if it does not exist.
    pub async fn take(
        &self,
        table: &TableName,
        stream: &StreamArn,
        shard: &ShardId,
        parents: &[ShardId],
        start: Checkpoint,
        existing: Option<&Lease>,
    ) -> Result<Lease, LeaseError> {
        let key = LeaseKey::new(table, stream, shard);
        let now = crate::clock::now_ms();
        match existing {
            None => {
                let lease = Lease::fresh(
                    key,
                    (table, stream, shard),
                    parents,
                    Some(self.worker_id.clone()),
                    start,
                    None,
                );
                self.put_new(&lease).await?;
                Ok(lease)
            }
            Some(old) => {
                let switches = if old.owner.as_deref() == Some(&self.worker_id) {
                    old.owner_switches_since_checkpoint
                } else {
                    old.owner_switches_since_checkpoint + 1
                };
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .key(attr::LEASE_KEY, A::S(key.0.clone()))
                    .update_expression("SET #o = :me, #c = :next, #sw = :sw, #u = :now REMOVE #p")
                    .expression_attribute_names("#p", attr::PENDING_OWNER)
                    .condition_expression("#c = :old")
                    .expression_attribute_names("#o", attr::OWNER)
                    .expression_attribute_names("#c", attr::COUNTER)
                    .expression_attribute_names("#sw", attr::OWNER_SWITCHES)
                    .expression_attribute_names("#u", attr::UPDATED_AT)
                    .expression_attribute_values(":me", A::S(self.worker_id.clone()))
                    .expression_attribute_values(":next", A::N((old.counter + 1).to_string()))
                    .expression_attribute_values(":old", A::N(old.counter.to_string()))
                    .expression_attribute_values(":sw", A::N(switches.to_string()))
                    .expression_attribute_values(":now", A::N(now.to_string()))
                    .send()
                    .await
                    .map_err(|e| self.conditional("UpdateItem", &key, e))?;
                Ok(Lease {
                    owner: Some(self.worker_id.clone()),
                    counter: old.counter + 1,
                    owner_switches_since_checkpoint: switches,
                    updated_at_ms: Some(now),
                    pending_owner: None,
                    ..old.clone()
                })
            }
        }
    }

    /// Moves a lease's checkpoint, conditional on this worker still holding it at the counter
    /// it knows. Updates `lease` in place on success.
    pub async fn checkpoint(
        &self,
        lease: &mut Lease,
        checkpoint: Checkpoint,
        last_file: Option<(&str, [u8; 32])>,
    ) -> Result<(), LeaseError> {
        // Conditional on the owner, not the counter: the owner's renewals move the counter
        // concurrently, and a change of owner (a take after expiry) is what must fence this write.
        let mut expr = String::from("SET #cp = :cp, #sw = :zero, #u = :now");
        let mut req = self
            .owner_update(&lease.key, "#o = :me")
            .expression_attribute_names("#cp", attr::CHECKPOINT)
            .expression_attribute_names("#sw", attr::OWNER_SWITCHES)
            .expression_attribute_values(":cp", A::S(checkpoint.to_attr()))
            .expression_attribute_values(":zero", A::N("0".into()));
        if let Some((key, sha)) = last_file {
            expr.push_str(", #lf = :lf, #ls = :ls");
            req = req
                .expression_attribute_names("#lf", attr::LAST_FILE_KEY)
                .expression_attribute_names("#ls", attr::LAST_FILE_SHA256)
                .expression_attribute_values(":lf", A::S(key.to_owned()))
                .expression_attribute_values(":ls", A::S(hex::encode(sha)));
        }
        req.update_expression(format!("{expr} ADD #c :one"))
            .send()
            .await
            .map_err(|e| self.conditional("UpdateItem", &lease.key, e))?;
        lease.checkpoint = checkpoint;
        lease.owner_switches_since_checkpoint = 0;
        if let Some((key, sha)) = last_file {
            lease.last_file_key = Some(key.to_owned());
            lease.last_file_sha256 = Some(sha);
        }
        Ok(())
    }

    /// Deletes the lease of a finished shard (see `plan::cleanable`); only a `SHARD_END` lease.
    pub async fn delete_finished(&self, lease: &Lease) -> Result<(), LeaseError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(attr::LEASE_KEY, A::S(lease.key.0.clone()))
            .condition_expression("#cp = :end")
            .expression_attribute_names("#cp", attr::CHECKPOINT)
            .expression_attribute_values(":end", A::S(Checkpoint::ShardEnd.to_attr()))
            .send()
            .await
            .map_err(|e| self.conditional("DeleteItem", &lease.key, e))?;
        Ok(())
    }

    /// Gives a lease up (on shutdown), so another worker can take it at once.
    pub async fn release(&self, lease: &Lease) -> Result<(), LeaseError> {
        self.owner_update(&lease.key, "#o = :me")
            .update_expression("REMOVE #o SET #u = :now ADD #c :one")
            .send()
            .await
            .map_err(|e| self.conditional("UpdateItem", &lease.key, e))?;
        Ok(())
    }

    /// Renews a held lease (moves its counter, so others see the owner alive). Returns the worker
    /// that asked for the lease, if one did. `Lost` when another worker owns it now.
    pub async fn renew(&self, key: &LeaseKey) -> Result<Option<String>, LeaseError> {
        let out = self
            .owner_update(key, "#o = :me")
            .update_expression("SET #u = :now ADD #c :one")
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| self.conditional("UpdateItem", key, e))?;
        Ok(out
            .attributes()
            .and_then(|a| a.get(attr::PENDING_OWNER))
            .and_then(|v| v.as_s().ok())
            .cloned())
    }

    /// Asks the owner of a lease to hand it over (a balancing steal). The owner sees the request
    /// at its next renewal, flushes, checkpoints and passes the lease on: nothing it buffered is
    /// read twice, unlike a steal that takes the lease from under a live owner.
    pub async fn request_steal(&self, lease: &Lease, from: &str) -> Result<(), LeaseError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(attr::LEASE_KEY, A::S(lease.key.0.clone()))
            .update_expression("SET #p = :me")
            .condition_expression("#o = :from AND attribute_not_exists(#p)")
            .expression_attribute_names("#o", attr::OWNER)
            .expression_attribute_names("#p", attr::PENDING_OWNER)
            .expression_attribute_values(":me", A::S(self.worker_id.clone()))
            .expression_attribute_values(":from", A::S(from.to_owned()))
            .send()
            .await
            .map_err(|e| self.conditional("UpdateItem", &lease.key, e))?;
        Ok(())
    }

    /// Passes a held lease to the worker that asked for it (after a final flush and checkpoint).
    pub async fn hand_over(&self, lease: &Lease) -> Result<(), LeaseError> {
        self.owner_update(&lease.key, "#o = :me AND attribute_exists(#p)")
            .update_expression("SET #o = #p, #u = :now REMOVE #p ADD #c :one, #sw :one")
            .expression_attribute_names("#p", attr::PENDING_OWNER)
            .expression_attribute_names("#sw", attr::OWNER_SWITCHES)
            .send()
            .await
            .map_err(|e| self.conditional("UpdateItem", &lease.key, e))?;
        Ok(())
    }

    /// An UpdateItem by this worker on a lease it owns: conditional on `leaseOwner = me`, with the
    /// names `#o` (owner), `#c` (counter), `#u` (updatedAt) and the values `:me`, `:one`, `:now`
    /// bound, so that each operation writes only its own clauses (every one moves the counter
    /// with `ADD #c :one` and stamps `#u = :now`).
    fn owner_update(
        &self,
        key: &LeaseKey,
        condition: &str,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(attr::LEASE_KEY, A::S(key.0.clone()))
            .condition_expression(condition)
            .expression_attribute_names("#o", attr::OWNER)
            .expression_attribute_names("#c", attr::COUNTER)
            .expression_attribute_names("#u", attr::UPDATED_AT)
            .expression_attribute_values(":me", A::S(self.worker_id.clone()))
            .expression_attribute_values(":one", A::N("1".into()))
            .expression_attribute_values(":now", A::N(crate::clock::now_ms().to_string()))
    }

    fn conditional<E, R>(&self, op: &'static str, key: &LeaseKey, e: SdkError<E, R>) -> LeaseError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + crate::aws::HasStatusCode,
    {
        if e.code() == Some("ConditionalCheckFailedException") {
            LeaseError::Lost(key.0.clone())
        } else {
            self.api(op, e)
        }
    }
}
