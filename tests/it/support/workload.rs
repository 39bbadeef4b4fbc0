//! The workloads the tests write (puts, updates and deletes of keys with a version counter) and
//! how they check the archive against them: every stream record once, each key's versions in
//! lineage-then-sequence order.

use super::*;
use aws_sdk_dynamodb::types::ReturnValue;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// What a workload wrote, per key: (event name, version) in write order.
pub type Written = BTreeMap<u64, Vec<(String, u64)>>;

/// Writes `writes` changes over `keys` keys with `writers` concurrent writers, each owning a
/// disjoint set of keys so that per-key write order is well defined. Every write carries a
/// per-key version `v`.
pub async fn workload(stack: &Stack, table: &str, keys: u64, writes: u64, writers: u64) -> Written {
    workload_sized(stack, table, keys, writes, writers, 0).await
}

/// [`workload`] with items of at least `payload` bytes.
pub async fn workload_sized(
    stack: &Stack,
    table: &str,
    keys: u64,
    writes: u64,
    writers: u64,
    payload: usize,
) -> Written {
    workload_on(stack, table, 0..keys, writes, writers, payload).await
}

/// [`workload_sized`] over the keys of `keys`: workloads on disjoint ranges can follow one
/// another on one table, and their [`Written`] maps merge.
pub async fn workload_on(
    stack: &Stack,
    table: &str,
    keys: std::ops::Range<u64>,
    writes: u64,
    writers: u64,
    payload: usize,
) -> Written {
    let mut tasks = Vec::new();
    for w in 0..writers {
        let ddb = stack.dynamodb.clone();
        let table = table.to_owned();
        let mine: Vec<u64> = keys.clone().filter(|k| k % writers == w).collect();
        tasks.push(tokio::spawn(async move {
            let mut state: HashMap<u64, (bool, u64)> = HashMap::new();
            let mut written: Written = BTreeMap::new();
            let mut rng: u64 = 0x9E37_79B9_7F4A_7C15 ^ w;
            for i in 0..writes / writers {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let key = mine[(rng as usize + i as usize) % mine.len()];
                let (exists, v) = state.get(&key).copied().unwrap_or((false, 0));
                let v = v + 1;
                let op = if !exists {
                    ddb.put_item()
                        .table_name(&table)
                        .item("id", n(key))
                        .item("v", n(v))
                        .item(
                            "payload",
                            s(format!(
                                "key {key} version {v} {}",
                                "p".repeat(payload + (rng % 200) as usize)
                            )),
                        )
                        .send()
                        .await
                        .unwrap();
                    "INSERT"
                } else if rng % 5 == 0 {
                    ddb.delete_item()
                        .table_name(&table)
                        .key("id", n(key))
                        .send()
                        .await
                        .unwrap();
                    "REMOVE"
                } else {
                    ddb.update_item()
                        .table_name(&table)
                        .key("id", n(key))
                        .update_expression("SET v = :v, touched = :t")
                        .expression_attribute_values(":v", n(v))
                        .expression_attribute_values(":t", s(format!("{i}")))
                        .return_values(ReturnValue::None)
                        .send()
                        .await
                        .unwrap();
                    "MODIFY"
                };
                // A REMOVE carries the version of the item it deleted.
                let recorded = if op == "REMOVE" { v - 1 } else { v };
                state.insert(
                    key,
                    (op != "REMOVE", if op == "REMOVE" { v - 1 } else { v }),
                );
                written
                    .entry(key)
                    .or_default()
                    .push((op.to_owned(), recorded));
            }
            written
        }));
    }
    let mut all = BTreeMap::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

pub fn version(image: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(image).unwrap();
    v["v"]["N"].as_str().unwrap().parse().unwrap()
}

pub fn key_of(keys: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(keys).unwrap();
    v["id"]["N"].as_str().unwrap().parse().unwrap()
}

/// Depth of each shard in the lineage (0 for a root), from DescribeStream.
pub async fn shard_depths(stack: &Stack, table: &str) -> HashMap<String, usize> {
    let arn = stack.stream_arn(table).await;
    let shards = stack
        .streams
        .describe_stream()
        .stream_arn(arn)
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap()
        .shards
        .unwrap_or_default();
    let parent: HashMap<String, Option<String>> = shards
        .iter()
        .map(|s| (s.shard_id.clone().unwrap(), s.parent_shard_id.clone()))
        .collect();
    parent
        .keys()
        .map(|id| {
            let mut d = 0;
            let mut cur = parent.get(id).cloned().flatten();
            while let Some(p) = cur {
                d += 1;
                cur = parent.get(&p).cloned().flatten();
            }
            (id.clone(), d)
        })
        .collect()
}

/// The archive holds every stream record exactly once, and per key the events are the writes,
/// in write order.
pub async fn assert_exactly_once_in_order(
    stack: &Stack,
    table: &str,
    rows: &[Row],
    written: &Written,
) {
    let truth = stack.stream_truth(table).await;
    let ids: Vec<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "no record archived twice");
    let truth_ids: HashSet<&str> = truth.iter().map(|(_, id, _)| id.as_str()).collect();
    let missing: Vec<_> = truth_ids.difference(&unique).take(5).collect();
    assert!(
        missing.is_empty(),
        "{} stream records missing, e.g. {missing:?}",
        truth_ids.len() - unique.intersection(&truth_ids).count()
    );
    assert_eq!(
        unique.len(),
        truth_ids.len(),
        "nothing archived that the stream does not hold"
    );
    let total: usize = written.values().map(Vec::len).sum();
    assert_eq!(rows.len(), total, "one archived record per write");

    let depth = shard_depths(stack, table).await;
    let mut sorted: Vec<&Row> = rows.iter().collect();
    sorted.sort_by_key(|r| {
        (
            depth
                .get(r.shard_id.as_deref().unwrap())
                .copied()
                .unwrap_or(0),
            r.seq_u128(),
        )
    });
    let mut archived: Written = BTreeMap::new();
    for r in sorted {
        let v = match r.event_name.as_str() {
            "REMOVE" => version(r.old_image.as_deref().unwrap()),
            _ => version(r.new_image.as_deref().unwrap()),
        };
        archived
            .entry(key_of(&r.keys))
            .or_default()
            .push((r.event_name.clone(), v));
    }
    for (key, events) in written {
        assert_eq!(
            archived.get(key),
            Some(events),
            "key {key}: archived events equal the writes, in order"
        );
    }
}

/// Runs a worker on `table` while a workload of `writes` over `keys` goes on, rolling the stream
/// over (up to `max_rollovers` times, each once new records are in) until the workload ends; waits
/// for every record and stops the worker. Returns the archive, what was written and the rollovers.
pub async fn archive_with_rollovers(
    stack: &Arc<Stack>,
    table: &str,
    keys: u64,
    writes: u64,
    max_rollovers: usize,
) -> (std::path::PathBuf, Written, usize) {
    let (mut a, archive) = Archiver::start_local(stack, table);
    let (st, t) = (stack.clone(), table.to_owned());
    let load = tokio::spawn(async move { workload(&st, &t, keys, writes, 4).await });
    let mut rollovers = 0;
    while !load.is_finished() && rollovers < max_rollovers {
        // Roll over once some records are in, so every shard has data.
        let before = read_archive(&archive).len();
        wait_for_rows(&archive, before + 1, Duration::from_secs(60)).await;
        stack.control("rollover");
        rollovers += 1;
    }
    let written = load.await.unwrap();
    let total: usize = written.values().map(Vec::len).sum();
    wait_for_rows(&archive, total, Duration::from_secs(120)).await;
    a.stop();
    (archive, written, rollovers)
}
