//! One lease item: its attributes, its key, its checkpoint, and its conversion to and from the
//! DynamoDB item (every write of it is in [`super::store`]).

use crate::types::{SequenceNumber, ShardId, StreamArn, TableName};
use aws_sdk_dynamodb::types::AttributeValue as A;
use std::collections::HashMap;

/// Attribute names, as the KCL names them where it has a name for the thing.
pub(super) mod attr {
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

/// `<table>/<stream label>/<shard id>`: unique across tables and across a table's streams.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeaseKey(pub(super) String);

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
    pub(super) fn to_attr(&self) -> String {
        match self {
            Self::TrimHorizon => "TRIM_HORIZON".into(),
            Self::Latest => "LATEST".into(),
            Self::At(s) => s.as_str().to_owned(),
            Self::ShardEnd => "SHARD_END".into(),
        }
    }
    pub(super) fn from_attr(s: &str) -> Option<Self> {
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

impl Lease {
    /// A lease nobody has written yet (counter 1, no file archived), owned by `owner` if given.
    pub(super) fn fresh(
        key: LeaseKey,
        (table, stream, shard): (&TableName, &StreamArn, &ShardId),
        parents: &[ShardId],
        owner: Option<String>,
        checkpoint: Checkpoint,
        start_after_ms: Option<i64>,
    ) -> Self {
        Lease {
            key,
            table: table.clone(),
            stream: stream.clone(),
            shard: shard.clone(),
            parents: parents.to_vec(),
            owner,
            counter: 1,
            checkpoint,
            owner_switches_since_checkpoint: 0,
            last_file_key: None,
            last_file_sha256: None,
            updated_at_ms: Some(crate::clock::now_ms()),
            pending_owner: None,
            start_after_ms,
        }
    }

    /// The item of a lease created by [`Lease::fresh`] (the attributes a new lease has).
    pub(super) fn new_item(&self) -> HashMap<String, A> {
        let mut item = HashMap::from([
            (attr::LEASE_KEY.into(), A::S(self.key.0.clone())),
            (attr::TABLE.into(), A::S(self.table.to_string())),
            (attr::STREAM.into(), A::S(self.stream.to_string())),
            (attr::SHARD.into(), A::S(self.shard.to_string())),
            (attr::COUNTER.into(), A::N(self.counter.to_string())),
            (attr::CHECKPOINT.into(), A::S(self.checkpoint.to_attr())),
            (
                attr::OWNER_SWITCHES.into(),
                A::N(self.owner_switches_since_checkpoint.to_string()),
            ),
        ]);
        let optional = [
            (attr::OWNER, self.owner.clone().map(A::S)),
            (
                attr::UPDATED_AT,
                self.updated_at_ms.map(|t| A::N(t.to_string())),
            ),
            (
                attr::START_AFTER,
                self.start_after_ms.map(|t| A::N(t.to_string())),
            ),
            (
                attr::PARENTS,
                (!self.parents.is_empty())
                    .then(|| A::Ss(self.parents.iter().map(|p| p.to_string()).collect())),
            ),
        ];
        item.extend(
            optional
                .into_iter()
                .filter_map(|(name, v)| Some((name.to_owned(), v?))),
        );
        item
    }

    /// Reads a lease item; `Err((key, why))` names an item that is not a valid lease.
    pub(super) fn from_item(item: &HashMap<String, A>) -> Result<Lease, (String, String)> {
        let key = item
            .get(attr::LEASE_KEY)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        let corrupt = |message: String| (key.clone(), message);
        let s = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let n = |name: &str| {
            item.get(name)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<u64>().ok())
        };
        let i = |name: &str| {
            item.get(name)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<i64>().ok())
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
            updated_at_ms: i(attr::UPDATED_AT),
            start_after_ms: i(attr::START_AFTER),
        })
    }
}
