//! The target table: its key schema (checked against the archived keys before the first write),
//! its creation with `--create`, a Scan of what it holds now (spilled by key hash, like the
//! archive's rows, so a partition of each can be compared in bounded memory), and reads of single
//! items.

use super::RestoreError;
use crate::audit::snapshot::partition_of;
use crate::backfill::scan::{self, Item, Segment};
use crate::backoff::Backoff;
use crate::dynamo::{classify, DynamoError};
use crate::encode::ddb_json::{decode_item, encode_item};
use crate::types::TableName;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, KeysAndAttributes,
    ScalarAttributeType,
};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// BatchGetItem reads at most 100 items per call:
/// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html>
pub const MAX_BATCH_GET: usize = 100;
/// How long `--create` waits for the new table to become ACTIVE.
const CREATE_TIMEOUT: Duration = Duration::from_secs(600);

/// A table's key: attribute names (partition key first) and their `name:TYPE` shape, sorted by
/// name as the archive's `keys` strings are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableKey {
    pub names: Vec<String>,
    pub shape: String,
}

/// The shape of a key from `name → type`.
pub fn shape_of(types: &BTreeMap<String, String>) -> String {
    types
        .iter()
        .map(|(n, t)| format!("{n}:{t}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `name → type` of a shape string.
pub fn types_of(shape: &str) -> BTreeMap<String, String> {
    shape
        .split(',')
        .filter_map(|p| p.rsplit_once(':'))
        .map(|(n, t)| (n.to_owned(), t.to_owned()))
        .collect()
}

/// Whether the archive's keys fit the target's key schema: every archived key must have the
/// target's attributes and types (pure). The message names both and the fix.
pub fn check_key_schema(
    archived: &std::collections::BTreeSet<String>,
    source: &TableName,
    target: &TableName,
    key: &TableKey,
) -> Result<(), String> {
    match archived.iter().next() {
        None => Err(format!(
            "the archive holds no rows of `{source}`: nothing to restore (check --archive and --table)"
        )),
        Some(_) if archived.len() > 1 => Err(format!(
            "the archive of `{source}` holds keys of several shapes ({}): the table was re-created with another key; restore with --key one item at a time, or into a table of one of them",
            archived.iter().cloned().collect::<Vec<_>>().join("; ")
        )),
        Some(shape) if *shape != key.shape => Err(format!(
            "table `{target}` has the key {}, but the archive of `{source}` holds keys {shape}: restore into a table with that key schema (--create makes one)",
            key.shape
        )),
        Some(_) => Ok(()),
    }
}

fn dynamo_error(operation: &'static str, table: &TableName, e: DynamoError) -> RestoreError {
    match e {
        DynamoError::NoTable(t) => RestoreError::NoTable(t),
        DynamoError::AccessDenied { message, .. } => RestoreError::Denied {
            action: format!("dynamodb:{operation}"),
            resource: table.to_string(),
            message,
        },
        other => RestoreError::Dynamo(other),
    }
}

/// The table's key, or `None` when it does not exist.
pub async fn describe_key(
    client: &aws_sdk_dynamodb::Client,
    table: &TableName,
) -> Result<Option<TableKey>, RestoreError> {
    let t = match crate::dynamo::describe(client, table).await {
        Ok(t) => t,
        Err(DynamoError::NoTable(_)) => return Ok(None),
        Err(other) => return Err(dynamo_error("DescribeTable", table, other)),
    };
    let types: BTreeMap<String, String> = t.key.iter().cloned().collect();
    Ok(Some(TableKey {
        names: t.key_names(),
        shape: shape_of(&types),
    }))
}

/// Creates `table` on demand with the key `names` (partition key first) of the types in `shape`,
/// and waits until it is ACTIVE.
pub async fn create(
    client: &aws_sdk_dynamodb::Client,
    table: &TableName,
    names: &[String],
    shape: &str,
) -> Result<(), RestoreError> {
    let types = types_of(shape);
    let mut req = client
        .create_table()
        .table_name(table.as_str())
        .billing_mode(BillingMode::PayPerRequest);
    for (i, name) in names.iter().enumerate() {
        let t = types.get(name).ok_or_else(|| {
            RestoreError::Usage(format!(
                "--key-attributes names `{name}`, which is not an attribute of the archived key {shape}"
            ))
        })?;
        req = req
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::from(t.as_str()))
                    .build()
                    .expect("name and type are set"),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(if i == 0 {
                        KeyType::Hash
                    } else {
                        KeyType::Range
                    })
                    .build()
                    .expect("name and type are set"),
            );
    }
    req.send()
        .await
        .map_err(|e| dynamo_error("CreateTable", table, classify("CreateTable", table, e)))?;
    if !crate::dynamo::wait_active(client, table, CREATE_TIMEOUT)
        .await
        .map_err(|e| dynamo_error("DescribeTable", table, e))?
    {
        return Err(RestoreError::Usage(format!(
            "table `{table}` was created but is not ACTIVE after {CREATE_TIMEOUT:?}; run the same command again once it is"
        )));
    }
    Ok(())
}

/// Canonical `keys` of an item, from the key attribute names.
pub fn keys_of(item: &Item, names: &[String]) -> Option<String> {
    let mut keys = Item::with_capacity(names.len());
    for n in names {
        keys.insert(n.clone(), item.get(n)?.clone());
    }
    encode_item(&keys).ok()
}

/// The Scan of the target spilled into `partitions` files of `[keys, item]` JSON lines.
#[derive(Debug)]
pub struct LiveSpill {
    pub paths: Vec<PathBuf>,
    pub items: u64,
    pub rcu: f64,
}

/// Scans `table` whole (strongly consistent, `segments` in parallel) into `dir`. `None` when
/// stopped first.
pub async fn scan_live(
    client: &aws_sdk_dynamodb::Client,
    table: &TableName,
    key: &TableKey,
    dir: &Path,
    partitions: usize,
    segments: u32,
    stop: &CancellationToken,
) -> Result<Option<LiveSpill>, RestoreError> {
    let journal = |source| RestoreError::Spool {
        path: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(journal)?;
    let paths: Vec<PathBuf> = (0..partitions)
        .map(|i| dir.join(format!("live-{i:03}.jsonl")))
        .collect();
    let mut writers: Vec<BufWriter<std::fs::File>> = paths
        .iter()
        .map(|p| std::fs::File::create(p).map(|f| BufWriter::with_capacity(32 << 10, f)))
        .collect::<Result<_, _>>()
        .map_err(journal)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<
        Result<(Vec<(String, String)>, f64), RestoreError>,
    >(segments as usize * 2);
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..segments {
        let (client, table, tx, names, stop) = (
            client.clone(),
            table.clone(),
            tx.clone(),
            key.names.clone(),
            stop.clone(),
        );
        tasks.spawn(async move {
            let segment = Segment {
                index,
                total: segments,
            };
            let mut start = None;
            let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(20));
            loop {
                if stop.is_cancelled() {
                    return;
                }
                let page = match scan::scan_page(&client, &table, segment, start.clone(), true, None)
                    .await
                {
                    Ok(p) => p,
                    Err(e) if e.is_retryable() => {
                        tokio::time::sleep(backoff.next_delay()).await;
                        continue;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(dynamo_error("Scan", &table, e))).await;
                        return;
                    }
                };
                backoff.reset();
                let mut lines = Vec::with_capacity(page.items.len());
                for item in &page.items {
                    match (keys_of(item, &names), encode_item(item)) {
                        (Some(k), Ok(i)) => lines.push((k, i)),
                        _ => {
                            let _ = tx
                                .send(Err(RestoreError::Usage(format!(
                                    "an item of `{table}` lacks its key or has a type this version does not know"
                                ))))
                                .await;
                            return;
                        }
                    }
                }
                if tx.send(Ok((lines, page.consumed))).await.is_err() {
                    return;
                }
                match page.last_key {
                    Some(k) => start = Some(k),
                    None => return,
                }
            }
        });
    }
    drop(tx);
    let (mut items, mut rcu) = (0u64, 0.0);
    while let Some(page) = rx.recv().await {
        let (lines, consumed) = page?;
        rcu += consumed;
        for (k, i) in lines {
            let w = &mut writers[partition_of(&k, partitions)];
            serde_json::to_writer(&mut *w, &(k, i)).map_err(|e| journal(e.into()))?;
            w.write_all(b"\n").map_err(journal)?;
            items += 1;
        }
    }
    while tasks.join_next().await.is_some() {}
    if stop.is_cancelled() {
        return Ok(None);
    }
    for mut w in writers {
        w.flush().map_err(journal)?;
    }
    Ok(Some(LiveSpill { paths, items, rcu }))
}

/// One partition of the target's Scan, sorted by `keys`.
pub fn load_live(path: &Path) -> std::io::Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in std::io::BufReader::new(std::fs::File::open(path)?).lines() {
        out.push(serde_json::from_str(&line?)?);
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The items of `keys` (canonical `keys` strings) that `table` holds now, strongly consistent:
/// `keys → item`. Unprocessed keys and throttling are retried with backoff.
pub async fn get_items(
    client: &aws_sdk_dynamodb::Client,
    table: &TableName,
    keys: &[String],
) -> Result<HashMap<String, String>, RestoreError> {
    let mut out = HashMap::new();
    let names: Vec<String> = match keys.first() {
        Some(k) => decode_item(k)
            .map_err(|e| RestoreError::Usage(format!("a key of the plan: {e}")))?
            .into_keys()
            .collect(),
        None => return Ok(out),
    };
    for chunk in keys.chunks(MAX_BATCH_GET) {
        let mut pending: Vec<Item> = chunk
            .iter()
            .map(|k| decode_item(k).map_err(|e| RestoreError::Usage(format!("{k}: {e}"))))
            .collect::<Result<_, _>>()?;
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(10));
        while !pending.is_empty() {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(pending.clone()))
                .consistent_read(true)
                .build()
                .expect("keys are set");
            match client
                .batch_get_item()
                .request_items(table.as_str(), request)
                .send()
                .await
            {
                Ok(answer) => {
                    for item in answer
                        .responses()
                        .and_then(|r| r.get(table.as_str()))
                        .into_iter()
                        .flatten()
                    {
                        if let (Some(k), Ok(i)) = (keys_of(item, &names), encode_item(item)) {
                            out.insert(k, i);
                        }
                    }
                    pending = answer
                        .unprocessed_keys()
                        .and_then(|u| u.get(table.as_str()))
                        .map(|k| k.keys().to_vec())
                        .unwrap_or_default();
                    if !pending.is_empty() {
                        tokio::time::sleep(backoff.next_delay()).await;
                    }
                }
                Err(e) => match classify("BatchGetItem", table, e) {
                    e if e.is_retryable() => tokio::time::sleep(backoff.next_delay()).await,
                    e => return Err(dynamo_error("BatchGetItem", table, e)),
                },
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn key_schemas_are_checked() {
        let (src, dst) = (TableName::new("users"), TableName::new("users-restored"));
        let key = TableKey {
            names: vec!["id".into()],
            shape: "id:N".into(),
        };
        let set = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<BTreeSet<_>>();
        // (archived shapes, ok, words the message must hold)
        let cases: Vec<(BTreeSet<String>, bool, &str)> = vec![
            (set(&["id:N"]), true, ""),
            (set(&["id:S"]), false, "id:S"),
            (set(&["pk:S,sk:N"]), false, "--create"),
            (set(&[]), false, "no rows"),
            (set(&["id:N", "id:S"]), false, "several shapes"),
        ];
        for (archived, ok, words) in cases {
            let r = check_key_schema(&archived, &src, &dst, &key);
            assert_eq!(r.is_ok(), ok, "{archived:?}: {r:?}");
            if let Err(m) = r {
                assert!(m.contains(words), "{m}");
            }
        }
        assert_eq!(types_of("pk:S,sk:N")["sk"], "N");
        assert_eq!(shape_of(&types_of("pk:S,sk:N")), "pk:S,sk:N");
    }
}
