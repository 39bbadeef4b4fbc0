//! The lease table as a test sees it.

use super::*;
use dynamo_archiver::leases::{Checkpoint, Lease, LeaseStore};
use std::collections::BTreeMap;

/// The lease table the tests' workers use (the default name).
pub const LEASE_TABLE: &str = "dynamo-archiver-leases";

pub async fn leases(stack: &Stack) -> Vec<Lease> {
    LeaseStore::new(stack.dynamodb.clone(), LEASE_TABLE.into(), String::new())
        .all()
        .await
        .unwrap_or_default()
}

/// Owner -> number of unfinished leases it holds.
pub fn spread(leases: &[Lease]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for l in leases
        .iter()
        .filter(|l| l.checkpoint != Checkpoint::ShardEnd)
    {
        // Owners are `<worker id>#<process nonce>`.
        let owner = l
            .owner
            .as_deref()
            .map_or("-", |o| o.split('#').next().unwrap_or(o));
        *m.entry(owner.to_owned()).or_default() += 1;
    }
    m
}
