//! Typed access to the lease table. Every write is conditional, so a worker can never overwrite
//! a lease it does not hold, and a checkpoint never moves for a worker that lost its lease.

use crate::backoff::Backoff;
use crate::types::{SequenceNumber, ShardId, StreamArn, TableName};
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue as A, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TableStatus,
};
use std::collections::HashMap;
use std::time::Duration;

/// Attribute names, as the KCL names them where it has a name for the thing.
mod attr {
    pub const LEASE_KEY: &str = "leaseKey";
    pub const OWNER: &str = "leaseOwner";
    pub const COUNTER: &str = "leaseCounter";
    pub const CHECKPOINT: &str = "checkpoint";
    pub const OWNER_SWITCHES: &str = "ownerSwitchesSinceCheckpoint";
    pub const PARENTS: &str = "parentShardId";
    pub const TABLE: &str = "tableName";
    pub const STREAM: &str = "streamArn";
    pub const SHARD: &str = "shardId";
    pub const LAST_FILE_KEY: &str = "lastFileKey";
    pub const LAST_FILE_SHA256: &str = "lastFileSha256";
    pub const UPDATED_AT: &str = "updatedAt";
    /// A worker that asked for this lease (a balancing steal); the owner hands it over.
    pub const PENDING_OWNER: &str = "pendingOwner";
    /// With checkpoint `LATEST`: the instant (ms) the table was first followed; the shard's
    /// records created from then on are archived.
    pub const START_AFTER: &str = "startAfter";
}

/// How long creating the lease table may take before we give up.
const TABLE_ACTIVE_DEADLINE: Duration = Duration::from_secs(120);

/// `<table>/<stream label>/<shard id>`: unique across tables and across a table's streams.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeaseKey(String);

impl LeaseKey {
    pub fn new(table: &TableName, stream: &StreamArn, shard: &ShardId) -> Self {
        Self(format!("{table}/{}/{shard}", stream.label()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How far a shard has been archived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkpoint {
    TrimHorizon,
    Latest,
    /// Every record up to and including this one is in a durable file.
    At(SequenceNumber),
    /// Read to its end and archived.
    ShardEnd,
}

impl Checkpoint {
    fn to_attr(&self) -> String {
        match self {
            Self::TrimHorizon => "TRIM_HORIZON".into(),
            Self::Latest => "LATEST".into(),
            Self::At(s) => s.as_str().to_owned(),
            Self::ShardEnd => "SHARD_END".into(),
        }
    }
    fn from_attr(s: &str) -> Option<Self> {
        Some(match s {
            "TRIM_HORIZON" => Self::TrimHorizon,
            "LATEST" => Self::Latest,
            "SHARD_END" => Self::ShardEnd,
            other => Self::At(SequenceNumber::parse(other).ok()?),
        })
    }
}

impl std::fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_attr())
    }
}

/// One lease item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub key: LeaseKey,
    pub table: TableName,
    pub stream: StreamArn,
    pub shard: ShardId,
    pub parents: Vec<ShardId>,
    pub owner: Option<String>,
    pub counter: u64,
    pub checkpoint: Checkpoint,
    pub owner_switches_since_checkpoint: u64,
    /// The archive key of the shard's last published file and its SHA-256: the next file's
    /// metadata names this hash, chaining the shard's files for `verify`.
    pub last_file_key: Option<String>,
    pub last_file_sha256: Option<[u8; 32]>,
    /// When the lease item was last written (taken, renewed, checkpointed, released), ms since
    /// the epoch.
    pub updated_at_ms: Option<i64>,
    /// A worker that asked for this lease; the owner flushes, checkpoints and hands it over.
    pub pending_owner: Option<String>,
    /// With checkpoint `LATEST`: `--start-position latest` took effect at this instant (ms since
    /// the epoch); the shard is read from its start and records created before it are skipped,
    /// so that a crash before the first checkpoint skips nothing written after it.
    pub start_after_ms: Option<i64>,
}

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
    client: aws_sdk_dynamodb::Client,
    table: String,
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

    fn api<E, R>(&self, operation: &'static str, e: SdkError<E, R>) -> LeaseError
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

    /// Tries every call the worker makes on the lease table without changing it: a Scan of one
    /// item, and a PutItem, UpdateItem and DeleteItem on a key that does not exist, each with a
    /// condition that cannot hold. A conditional failure proves the permission.
    pub async fn probe_permissions(&self) -> Result<(), crate::aws::Denied> {
        let probe = format!("_permission-probe/{}", rand::random::<u64>());
        let key = || HashMap::from([(attr::LEASE_KEY.to_owned(), A::S(probe.clone()))]);
        let never = "attribute_exists(#k) AND attribute_not_exists(#k)";
        let outcome = |op: &'static str, denied: bool, e: String| {
            if denied {
                Err(crate::aws::Denied {
                    action: format!("dynamodb:{op}"),
                    resource: format!("lease table {}", self.table),
                    message: e,
                })
            } else {
                Ok(())
            }
        };
        let scan = self
            .client
            .scan()
            .table_name(&self.table)
            .limit(1)
            .send()
            .await;
        if let Err(e) = scan {
            outcome(
                "Scan",
                crate::aws::is_denied(&e),
                DisplayErrorContext(&e).to_string(),
            )?;
        }
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(key()))
            .condition_expression(never)
            .expression_attribute_names("#k", attr::LEASE_KEY)
            .send()
            .await;
        if let Err(e) = put {
            outcome(
                "PutItem",
                crate::aws::is_denied(&e),
                DisplayErrorContext(&e).to_string(),
            )?;
        }
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key()))
            .update_expression("SET #u = :now")
            .condition_expression(never)
            .expression_attribute_names("#k", attr::LEASE_KEY)
            .expression_attribute_names("#u", attr::UPDATED_AT)
            .expression_attribute_values(":now", A::N("0".into()))
            .send()
            .await;
        if let Err(e) = update {
            outcome(
                "UpdateItem",
                crate::aws::is_denied(&e),
                DisplayErrorContext(&e).to_string(),
            )?;
        }
        let delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key()))
            .condition_expression(never)
            .expression_attribute_names("#k", attr::LEASE_KEY)
            .send()
            .await;
        if let Err(e) = delete {
            outcome(
                "DeleteItem",
                crate::aws::is_denied(&e),
                DisplayErrorContext(&e).to_string(),
            )?;
        }
        Ok(())
    }

    /// Creates the lease table (on-demand billing) if it does not exist, and waits until it is
    /// ACTIVE.
    pub async fn ensure_table(&self) -> Result<(), LeaseError> {
        match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(out) if out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) => {
                return Ok(())
            }
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                tracing::info!(table = %self.table, "creating the lease table (on-demand billing)");
                let created = self
                    .client
                    .create_table()
                    .table_name(&self.table)
                    .billing_mode(BillingMode::PayPerRequest)
                    .attribute_definitions(
                        AttributeDefinition::builder()
                            .attribute_name(attr::LEASE_KEY)
                            .attribute_type(ScalarAttributeType::S)
                            .build()
                            .expect("complete definition"),
                    )
                    .key_schema(
                        KeySchemaElement::builder()
                            .attribute_name(attr::LEASE_KEY)
                            .key_type(KeyType::Hash)
                            .build()
                            .expect("complete key schema"),
                    )
                    .send()
                    .await;
                if let Err(e) = created {
                    // Another worker may have created it at the same moment.
                    if e.code() != Some("ResourceInUseException") {
                        return Err(self.api("CreateTable", e));
                    }
                }
            }
            Err(e) => return Err(self.api("DescribeTable", e)),
        }
        let deadline = tokio::time::Instant::now() + TABLE_ACTIVE_DEADLINE;
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            let out = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| self.api("DescribeTable", e))?;
            if out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(LeaseError::NotActive(self.table.clone()));
            }
            tokio::time::sleep(backoff.ceiling()).await;
            backoff.next_delay();
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
            match self.parse(&item) {
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
        let key = LeaseKey::new(table, stream, shard);
        let now = crate::clock::now_ms();
        let mut item = HashMap::from([
            (attr::LEASE_KEY.into(), A::S(key.0.clone())),
            (attr::TABLE.into(), A::S(table.to_string())),
            (attr::STREAM.into(), A::S(stream.to_string())),
            (attr::SHARD.into(), A::S(shard.to_string())),
            (attr::COUNTER.into(), A::N("1".into())),
            (attr::CHECKPOINT.into(), A::S(checkpoint.to_attr())),
            (attr::OWNER_SWITCHES.into(), A::N("0".into())),
            (attr::UPDATED_AT.into(), A::N(now.to_string())),
        ]);
        if let Some(t) = start_after_ms {
            item.insert(attr::START_AFTER.into(), A::N(t.to_string()));
        }
        if !parents.is_empty() {
            item.insert(
                attr::PARENTS.into(),
                A::Ss(parents.iter().map(|p| p.to_string()).collect()),
            );
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#k)")
            .expression_attribute_names("#k", attr::LEASE_KEY)
            .send()
            .await
            .map_err(|e| self.conditional("PutItem", &key, e))?;
        Ok(Lease {
            key,
            table: table.clone(),
            stream: stream.clone(),
            shard: shard.clone(),
            parents: parents.to_vec(),
            owner: None,
            counter: 1,
            checkpoint,
            owner_switches_since_checkpoint: 0,
            last_file_key: None,
            last_file_sha256: None,
            updated_at_ms: Some(now),
            pending_owner: None,
            start_after_ms,
        })
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
                let lease = Lease {
                    key: key.clone(),
                    table: table.clone(),
                    stream: stream.clone(),
                    shard: shard.clone(),
                    parents: parents.to_vec(),
                    owner: Some(self.worker_id.clone()),
                    counter: 1,
                    checkpoint: start,
                    owner_switches_since_checkpoint: 0,
                    last_file_key: None,
                    last_file_sha256: None,
                    updated_at_ms: Some(now),
                    pending_owner: None,
                    start_after_ms: None,
                };
                let mut item = HashMap::from([
                    (attr::LEASE_KEY.into(), A::S(key.0.clone())),
                    (attr::TABLE.into(), A::S(table.to_string())),
                    (attr::STREAM.into(), A::S(stream.to_string())),
                    (attr::SHARD.into(), A::S(shard.to_string())),
                    (attr::OWNER.into(), A::S(self.worker_id.clone())),
                    (attr::COUNTER.into(), A::N("1".into())),
                    (attr::CHECKPOINT.into(), A::S(lease.checkpoint.to_attr())),
                    (attr::OWNER_SWITCHES.into(), A::N("0".into())),
                    (attr::UPDATED_AT.into(), A::N(now.to_string())),
                ]);
                if !parents.is_empty() {
                    item.insert(
                        attr::PARENTS.into(),
                        A::Ss(parents.iter().map(|p| p.to_string()).collect()),
                    );
                }
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(#k)")
                    .expression_attribute_names("#k", attr::LEASE_KEY)
                    .send()
                    .await
                    .map_err(|e| self.conditional("PutItem", &key, e))?;
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

    fn parse(&self, item: &HashMap<String, A>) -> Result<Lease, LeaseError> {
        let key = item
            .get(attr::LEASE_KEY)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        let corrupt = |message: String| LeaseError::Corrupt {
            table: self.table.clone(),
            key: key.clone(),
            message,
        };
        let s = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let n = |name: &str| {
            item.get(name)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<u64>().ok())
        };
        let need = |name: &'static str| s(name).ok_or_else(|| corrupt(format!("no `{name}`")));
        let checkpoint_text = need(attr::CHECKPOINT)?;
        let checkpoint = Checkpoint::from_attr(&checkpoint_text)
            .ok_or_else(|| corrupt(format!("checkpoint `{checkpoint_text}` is not valid")))?;
        Ok(Lease {
            key: LeaseKey(key.clone()),
            table: TableName::new(need(attr::TABLE)?),
            stream: StreamArn::new(need(attr::STREAM)?),
            shard: ShardId::new(need(attr::SHARD)?),
            parents: item
                .get(attr::PARENTS)
                .and_then(|v| v.as_ss().ok())
                .map(|v| v.iter().map(|p| ShardId::new(p.as_str())).collect())
                .unwrap_or_default(),
            owner: s(attr::OWNER),
            counter: n(attr::COUNTER).unwrap_or(0),
            checkpoint,
            owner_switches_since_checkpoint: n(attr::OWNER_SWITCHES).unwrap_or(0),
            last_file_key: s(attr::LAST_FILE_KEY),
            last_file_sha256: s(attr::LAST_FILE_SHA256)
                .and_then(|h| hex::decode(h).ok())
                .and_then(|v| <[u8; 32]>::try_from(v).ok()),
            pending_owner: s(attr::PENDING_OWNER),
            updated_at_ms: item
                .get(attr::UPDATED_AT)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok()),
            start_after_ms: item
                .get(attr::START_AFTER)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok()),
        })
    }
}
