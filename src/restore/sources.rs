//! What the restore compares and whether it may: the state of each partition against the target
//! ([`Sources`]), the first instant the archive answers for ([`answerable`]), and the target's key,
//! checked or created ([`target`]).

use super::plan::{self, Action, Counts};
use super::settings::Settings;
use super::table::{self, TableKey};
use super::RestoreError;
use crate::audit::coverage::{self, Uncovered};
use crate::audit::state::{PartitionState, Spilled, PARTITIONS};
use std::collections::HashSet;
use std::path::PathBuf;

/// The state and the target of one partition, compared.
pub(super) struct PartitionPlan {
    pub(super) actions: Vec<Action>,
    pub(super) counts: Counts,
    pub(super) items: u64,
}

/// What the write pass needs to compare each partition.
pub(super) struct Sources {
    pub(super) spilled: Spilled,
    /// The target's Scan by partition, when compared with it.
    pub(super) live: Option<Vec<PathBuf>>,
    /// One item: its exact `keys`, and what the target holds for it now.
    pub(super) one: Option<(String, Vec<(String, String)>)>,
    pub(super) as_of_ms: i64,
    pub(super) deletes: bool,
}

impl Sources {
    pub(super) fn plan(&self, index: usize) -> Result<PartitionPlan, RestoreError> {
        let mut state: PartitionState = self.spilled.fold(index, self.as_of_ms)?;
        let live = match (&self.one, &self.live) {
            (Some((keys, now)), _) => {
                state.items.retain(|i| &i.keys == keys);
                Some(now.clone())
            }
            (None, Some(paths)) => {
                Some(
                    table::load_live(&paths[index]).map_err(|source| RestoreError::Spool {
                        path: paths[index].clone(),
                        source,
                    })?,
                )
            }
            (None, None) => None,
        };
        let (actions, counts) = plan::diff(&state.items, live.as_deref(), self.deletes);
        Ok(PartitionPlan {
            actions,
            counts,
            items: state.items.len() as u64,
        })
    }

    /// The partitions to visit: all, or the one item's.
    pub(super) fn partitions(&self) -> Vec<usize> {
        match &self.one {
            Some((keys, _)) => vec![crate::audit::snapshot::partition_of(keys, PARTITIONS)],
            None => (0..self.spilled.partitions()).collect(),
        }
    }
}

/// The first instant the archive answers for, or why it does not answer for `--as-of`.
pub(super) fn answerable(
    s: &Settings,
    facts: &coverage::ArchiveFacts,
    baselines: &[coverage::Baseline],
) -> Result<i64, RestoreError> {
    let table = &s.table;
    match coverage::coverage(facts, baselines) {
        Ok(c) if s.as_of_ms >= c.from_ms => Ok(c.from_ms),
        Ok(c) => Err(RestoreError::Usage(format!(
            "--as-of {}: the archive of `{table}` answers only from {} (its stream began then, and {} was taken after it); give an instant at or after it",
            crate::clock::rfc3339(s.as_of_ms),
            crate::clock::rfc3339(c.from_ms),
            c.baseline
        ))),
        Err(Uncovered::NoStream) if facts.files == 0 => Err(RestoreError::Usage(format!(
            "the archive {} holds no files of table `{table}`: check --archive and --table",
            s.archive
        ))),
        Err(Uncovered::NoStream) => Err(RestoreError::Usage(format!(
            "the archive of `{table}` holds no stream records: it cannot say what changed after its snapshots, so it answers for no instant; run the worker (`dynamo-archiver run`) on the table's stream"
        ))),
        Err(Uncovered::NoBaseline { stream_start_ms }) => Err(RestoreError::Usage(format!(
            "the archive of `{table}` holds no complete snapshot taken after its stream began ({}): items never changed since then are unknown, so it answers for no instant; run `dynamo-archiver backfill --table {table}` (with --new-scan if an older one finished), then restore",
            crate::clock::rfc3339(stream_start_ms)
        ))),
    }
}

/// The target's key, checked against the archive's keys; created with `--create`. `(key, whether
/// this run created it, or would with --dry-run)`.
pub(super) async fn target(
    clients: &crate::aws::Clients,
    s: &Settings,
    facts: &coverage::ArchiveFacts,
) -> Result<(TableKey, bool), RestoreError> {
    let ddb = &clients.dynamodb;
    let existing = table::describe_key(ddb, &s.to_table).await?;
    let key = match existing {
        Some(key) => (key, false),
        None if !s.create => return Err(RestoreError::NoTable(s.to_table.clone())),
        None => {
            let shape = match facts.key_shapes.iter().next() {
                Some(shape) if facts.key_shapes.len() == 1 => shape.clone(),
                _ => {
                    return Err(RestoreError::Usage(format!(
                    "the archive of `{}` does not show one key schema to create `{}` with ({:?})",
                    s.table, s.to_table, facts.key_shapes
                )))
                }
            };
            let names = key_roles(clients, s, &shape).await?;
            if !s.dry_run {
                tracing::info!(table = %s.to_table, key = %shape, "creating the target table (on-demand)");
                table::create(ddb, &s.to_table, &names, &shape).await?;
            }
            (TableKey { names, shape }, true)
        }
    };
    table::check_key_schema(&facts.key_shapes, &s.table, &s.to_table, &key.0)
        .map_err(RestoreError::Usage)?;
    Ok(key)
}

/// Which key attribute is the partition key: `--key-attributes`, else the source table's key (if
/// it still exists with the archived key), else the only attribute.
pub(super) async fn key_roles(
    clients: &crate::aws::Clients,
    s: &Settings,
    shape: &str,
) -> Result<Vec<String>, RestoreError> {
    let types = table::types_of(shape);
    if let Some(names) = &s.key_attributes {
        let same: HashSet<&String> = names.iter().collect();
        if same.len() != types.len() || !names.iter().all(|n| types.contains_key(n)) {
            return Err(RestoreError::Usage(format!(
                "--key-attributes {} does not name the archived key {shape}",
                names.join(",")
            )));
        }
        return Ok(names.clone());
    }
    if types.len() == 1 {
        return Ok(types.into_keys().collect());
    }
    match table::describe_key(&clients.dynamodb, &s.table).await {
        Ok(Some(k)) if k.shape == shape => Ok(k.names),
        _ => Err(RestoreError::Usage(format!(
            "the archived key {shape} has two attributes and `{}` no longer tells which is the partition key: give --key-attributes PARTITION_KEY,SORT_KEY",
            s.table
        ))),
    }
}
