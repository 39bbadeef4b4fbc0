//! The worker against the fault-injecting Streams server (short versions of the reliability
//! scenarios): a split into two children, 64 open shards, throttling, 5xx and resets, iterators
//! that expire, empty pages and the page cap, a parent trimmed while it is read, and a kill -9 in
//! the middle. Each must end with every readable record archived exactly once and every key's
//! versions in order (lineage first, then sequence number).

use crate::fault_streams::{FaultStreams, Faults, Graph, Rec};
use crate::support::*;
use aws_sdk_dynamodb::types::StreamViewType;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// A table in DynamoDB Local (for DescribeTable and its stream ARN) whose stream is served by the
/// fault server, and a worker on it.
async fn start(stack: &Stack, server: &FaultStreams) -> (Archiver, std::path::PathBuf) {
    stack
        .create_table("faulty", "id", Some(StreamViewType::NewAndOldImages))
        .await;
    let archive = stack.dir.path().join("archive");
    let spool = stack.dir.path().join("spool");
    let endpoint = server.endpoint();
    let a = Archiver::start_env(
        stack,
        &run_args("faulty", archive.to_str().unwrap(), spool.to_str().unwrap()),
        &[("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", endpoint.as_str())],
    );
    (a, archive)
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
            .entry(crate::stream_archive::key_of(&r.keys))
            .or_default()
            .push(crate::stream_archive::version(
                r.new_image.as_deref().unwrap(),
            ));
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

async fn run_to_completion(stack: &Stack, server: &FaultStreams, timeout: Duration) {
    let (mut a, archive) = start(stack, server).await;
    poll("every readable record archived", timeout, || async {
        let want = expected(&server.with_graph(|g| g.clone())).len();
        (read_archive(&archive).len() >= want).then_some(())
    })
    .await;
    a.stop();
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
        40,
        8,
        50,
        |k, v| match (v <= 4, k % 2) {
            (true, _) => 0,
            (false, 0) => 1,
            _ => 2,
        },
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_split_into_two_children_under_10_percent_throttling() {
    let stack = Stack::start().await;
    let server = FaultStreams::start(
        split_graph(),
        Faults {
            seed: 11,
            throttle: 0.10,
            // Pages of a few records: enough calls for the throttling to matter.
            page_bytes: 1_500,
            // One shard per DescribeStream page: the listing must follow LastEvaluatedShardId.
            describe_page: 1,
            ..Faults::default()
        },
    )
    .await;
    run_to_completion(&stack, &server, Duration::from_secs(120)).await;
    let stats = server.stats();
    assert!(
        stats.throttled > 0 && stats.describe_pages >= 3,
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sixty_four_open_shards_under_5xx_resets_and_latency() {
    let stack = Stack::start().await;
    let shards = (0..64)
        .map(|i| {
            Graph::shard(
                &format!("shardId-00000001763769600000-{i:08x}"),
                None,
                false,
            )
        })
        .collect();
    let graph = Graph::fill(shards, 640, 3, 20, |k, _| (k % 64) as usize);
    let server = FaultStreams::start(
        graph,
        Faults {
            seed: 64,
            server_error: 0.05,
            reset: 0.01,
            max_latency: Duration::from_millis(20),
            ..Faults::default()
        },
    )
    .await;
    run_to_completion(&stack, &server, Duration::from_secs(180)).await;
    let stats = server.stats();
    assert!(stats.server_errors > 0 && stats.resets > 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn expiring_iterators_empty_pages_and_the_page_cap_along_a_rollover_chain() {
    let stack = Stack::start().await;
    let ids = [
        "shardId-00000001763769600000-00000001",
        "shardId-00000001763773200000-00000002",
        "shardId-00000001763776800000-00000003",
    ];
    let graph = Graph::fill(
        vec![
            Graph::shard(ids[0], None, true),
            Graph::shard(ids[1], Some(ids[0]), true),
            Graph::shard(ids[2], Some(ids[1]), false),
        ],
        50,
        9,
        2_000,
        |_, v| ((v - 1) / 3) as usize,
    );
    let server = FaultStreams::start(
        graph,
        Faults {
            seed: 3,
            expire_every: Some(3),
            empty_page: 0.2,
            // About ten records per page, as AWS's 1 MB cap does to big items.
            page_bytes: 22_000,
            ..Faults::default()
        },
    )
    .await;
    run_to_completion(&stack, &server, Duration::from_secs(180)).await;
    let stats = server.stats();
    assert!(
        stats.expired > 0 && stats.empty_pages > 0 && stats.capped_pages > 0,
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_parent_trimmed_while_read_is_a_reported_gap_and_its_children_are_read() {
    let stack = Stack::start().await;
    let (p, c) = (
        "shardId-00000001763769600000-0000000p",
        "shardId-00000001763773200000-0000000c",
    );
    let mut graph = Graph::fill(
        vec![Graph::shard(p, None, true), Graph::shard(c, Some(p), false)],
        20,
        8,
        100,
        |_, v| usize::from(v > 5),
    );
    // Once a read of the parent starts at record 30 or later, records up to 49 are trimmed: those
    // from where that read starts to 49 are lost.
    graph.shards[0].trim_when_read_to = Some((30, 50));
    let server = FaultStreams::start(
        graph,
        Faults {
            seed: 5,
            page_bytes: 2_500,
            ..Faults::default()
        },
    )
    .await;
    run_to_completion(&stack, &server, Duration::from_secs(120)).await;
    assert!(server.stats().trimmed_answers > 0);
    let (lost_from, _) = server
        .with_graph(|g| g.shards[0].lost)
        .expect("the trim happened");
    let gap_after = server.with_graph(|g| g.shards[0].records[lost_from - 1].seq.to_string());

    let archive = stack.dir.path().join("archive");
    let gaps: Vec<String> = archive_files(&archive)
        .iter()
        .filter_map(|f| {
            file_metadata(&archive.join(f))
                .get("gap_after_sequence_number")
                .cloned()
        })
        .collect();
    assert_eq!(
        gaps,
        vec![gap_after.clone()],
        "the gap is recorded where it is"
    );
    let (code, out, err) =
        Archiver::output(&stack, &["verify", "--archive", archive.to_str().unwrap()]);
    assert_eq!(
        code, 0,
        "a recorded trim is a known gap, not a failure: {out}{err}"
    );
    assert!(out.contains(&gap_after), "verify names the gap: {out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_in_the_middle_of_a_split_under_faults_loses_and_repeats_nothing() {
    let stack = Stack::start().await;
    let server = FaultStreams::start(
        split_graph(),
        Faults {
            seed: 99,
            throttle: 0.05,
            server_error: 0.03,
            reset: 0.01,
            page_bytes: 3_000,
            ..Faults::default()
        },
    )
    .await;
    let graph = server.with_graph(|g| g.clone());
    let total = expected(&graph).len();
    let (mut a, archive) = start(&stack, &server).await;
    wait_for_rows(&archive, total / 3, Duration::from_secs(120)).await;
    a.signal("KILL");
    a.wait(Duration::from_secs(10));
    let spool = stack.dir.path().join("spool");
    let endpoint = server.endpoint();
    let mut b = Archiver::start_env(
        &stack,
        &run_args("faulty", archive.to_str().unwrap(), spool.to_str().unwrap()),
        &[("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", endpoint.as_str())],
    );
    wait_for_rows(&archive, total, Duration::from_secs(120)).await;
    b.stop();
    assert_complete(&graph, &read_archive(&archive));
}
