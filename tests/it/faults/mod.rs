//! The worker against the fault-injecting Streams server and S3 proxy (short versions of the
//! reliability scenarios): a split into two children, 64 open shards, throttling, 500s, 503s and
//! resets, cut-off bodies, iterators that expire, empty pages and the page cap, a parent trimmed
//! while it is read, three workers sharing the shards, S3 SlowDowns and resets inside multipart
//! uploads. Every scenario restarts in the middle (`kill -9`, or SIGTERM for one), and must end
//! with every readable record archived exactly once and every key's versions in order (lineage
//! first, then sequence number).
//!
//! `FAULTS_SCALE` (default 1) multiplies the records of every scenario and `FAULTS_SEED` (default
//! 0) shifts every seed: `scripts/faults` runs the full matrix, larger and over several seeds.
//!
//! By what fails: [`streams`] (the Streams API: throttling, 5xx, resets, cut bodies, expiring
//! iterators, trims, splits, several workers), [`s3`] (SlowDowns and resets inside uploads, a
//! crash mid-upload), [`lease_table`] (DynamoDB throttling and lost answers under the leases).

mod lease_table;
mod s3;
mod streams;

use crate::sim::streams::{FaultStreams, Graph, Rec};
use crate::support::*;
use aws_sdk_dynamodb::types::StreamViewType;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// A table in DynamoDB Local (for DescribeTable and its stream ARN) whose stream is served by the
/// fault server, and a worker on it.
async fn create_table(stack: &Stack) {
    stack
        .create_table("faulty", "id", Some(StreamViewType::NewAndOldImages))
        .await;
}

/// A worker on the faulty stream (`worker_id` names it in the lease table).
fn worker(stack: &Stack, server: &FaultStreams, worker_id: &str) -> Archiver {
    worker_via(stack, server, worker_id, None)
}

/// A worker whose DynamoDB calls (DescribeTable, the lease table) go to `dynamodb` when given.
fn worker_via(
    stack: &Stack,
    server: &FaultStreams,
    worker_id: &str,
    dynamodb: Option<&str>,
) -> Archiver {
    let archive = stack.dir.path().join("archive");
    let spool = stack.dir.path().join("spool");
    let endpoint = server.endpoint();
    let mut args = run_args("faulty", archive.to_str().unwrap(), spool.to_str().unwrap());
    args.extend(["--worker-id", worker_id]);
    let mut env = vec![("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", endpoint.as_str())];
    if let Some(dynamodb) = dynamodb {
        env.push(("AWS_ENDPOINT_URL_DYNAMODB", dynamodb));
    }
    Archiver::start_env(stack, &args, &env)
}

/// `FAULTS_SCALE`: how many times the records of each scenario (the full matrix runs more).
fn scale() -> u64 {
    std::env::var("FAULTS_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n >= 1)
        .unwrap_or(1)
}

/// A scenario's seed, shifted by `FAULTS_SEED`.
fn seed(base: u64) -> u64 {
    base + std::env::var("FAULTS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A deadline that grows with the scale.
fn deadline(secs: u64) -> Duration {
    Duration::from_secs(secs * scale())
}

/// The records a complete read finds: all but those a scripted trim removed.
fn expected(graph: &Graph) -> Vec<Rec> {
    let mut out = Vec::new();
    for s in &graph.shards {
        for (i, r) in s.records.iter().enumerate() {
            // Records below the trim horizon that were read before a scripted trim are expected;
            // a scripted trim not yet triggered counts from where it is scripted to start.
            let lost = s.lost.or(s.trim_when_read_to);
            let read_before_trim = lost.is_some_and(|(from, _)| i < from);
            let trimmed = (i < s.trimmed_below && !read_before_trim)
                || lost.is_some_and(|(from, to)| (from..to).contains(&i));
            if !trimmed {
                out.push(r.clone());
            }
        }
    }
    out
}

/// Exactly the expected records, once each, and every key's versions rising in lineage order.
fn assert_complete(graph: &Graph, rows: &[Row]) {
    let want = expected(graph);
    let ids: Vec<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "a record archived twice");
    let want_ids: HashSet<&str> = want.iter().map(|r| r.event_id.as_str()).collect();
    let missing: Vec<_> = want_ids.difference(&unique).take(5).collect();
    assert!(
        missing.is_empty(),
        "{} records lost, e.g. {missing:?}",
        want_ids.len() - unique.intersection(&want_ids).count()
    );
    let mut extra: Vec<_> = unique.difference(&want_ids).collect();
    extra.sort();
    assert!(
        extra.is_empty(),
        "archived but not expected: {extra:?}; trims: {:?}",
        graph
            .shards
            .iter()
            .map(|s| (s.trimmed_below, s.trim_when_read_to, s.lost))
            .collect::<Vec<_>>()
    );

    let mut sorted: Vec<&Row> = rows.iter().collect();
    sorted.sort_by_key(|r| (graph.depth(r.shard_id.as_deref().unwrap()), r.seq_u128()));
    let mut versions: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for r in sorted {
        versions
            .entry(crate::support::key_of(&r.keys))
            .or_default()
            .push(crate::support::version(r.new_image.as_deref().unwrap()));
    }
    let mut want_versions: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for r in &want {
        want_versions.entry(r.key).or_default().push(r.version);
    }
    for v in want_versions.values_mut() {
        v.sort_unstable();
    }
    assert_eq!(
        versions, want_versions,
        "each key's versions, in lineage and sequence order"
    );
}

/// How a scenario's worker is restarted in the middle.
#[derive(Clone, Copy)]
enum Restart {
    /// `kill -9`: nothing flushed, nothing released; the next worker takes the lease over after
    /// the failover time and starts from the last checkpoint.
    Kill,
    /// SIGTERM: flush, checkpoint and release, under the same faults.
    Term,
}

/// Runs a worker until a third of the records are archived, restarts it (a new process, as after
/// a crash or a deploy), runs the new one until every readable record is archived, and checks
/// the archive.
async fn run_with_restart(
    stack: &Stack,
    server: &FaultStreams,
    restart: Restart,
    timeout: Duration,
) {
    run_with_restart_via(stack, server, restart, timeout, None).await;
}

/// [`run_with_restart`] with the workers' DynamoDB calls sent to `dynamodb` when given.
async fn run_with_restart_via(
    stack: &Stack,
    server: &FaultStreams,
    restart: Restart,
    timeout: Duration,
    dynamodb: Option<&str>,
) {
    create_table(stack).await;
    let archive = stack.dir.path().join("archive");
    let total = expected(&server.with_graph(|g| g.clone())).len();
    let mut first = worker_via(stack, server, "first", dynamodb);
    wait_for_rows(&archive, total / 3, timeout).await;
    match restart {
        Restart::Kill => {
            first.signal("KILL");
            first.wait(Duration::from_secs(10));
        }
        Restart::Term => first.stop(),
    }
    let mut second = worker_via(stack, server, "second", dynamodb);
    poll("every readable record archived", timeout, || async {
        let want = expected(&server.with_graph(|g| g.clone())).len();
        (read_archive(&archive).len() >= want).then_some(())
    })
    .await;
    second.stop();
    // The graph as served (a scripted trim records what it made unreadable).
    assert_complete(&server.with_graph(|g| g.clone()), &read_archive(&archive));
}

/// Parent P (versions 1-4 of 40 keys) split into C1 (even keys) and C2 (odd keys), versions 5-8;
/// C1 closed, C2 still open.
fn split_graph() -> Graph {
    Graph::fill(
        vec![
            Graph::shard("shardId-00000001763769600000-aaaaaaaa", None, true),
            Graph::shard(
                "shardId-00000001763773200000-bbbbbbbb",
                Some("shardId-00000001763769600000-aaaaaaaa"),
                true,
            ),
            Graph::shard(
                "shardId-00000001763773200001-cccccccc",
                Some("shardId-00000001763769600000-aaaaaaaa"),
                false,
            ),
        ],
        40 * scale(),
        8,
        50,
        |k, v| match (v <= 4, k % 2) {
            (true, _) => 0,
            (false, 0) => 1,
            _ => 2,
        },
    )
}
