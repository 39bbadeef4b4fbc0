//! `--start-position latest` with the KCL's meaning: the shards open when a table is first
//! followed are archived from that instant on, their ancestors never; shards born later are read
//! from their beginning. The instant is written into the lease before anything is read, so a
//! `kill -9` before the first checkpoint skips nothing written after it.

use crate::sim::streams::{FaultStreams, Faults, Graph};
use crate::support::*;
use aws_sdk_dynamodb::types::StreamViewType;
use dynamo_archiver::leases::{Checkpoint, LeaseStore};
use std::collections::BTreeSet;
use std::time::Duration;

const A0: &str = "shardId-00000001763769600000-000000a0";
const A1: &str = "shardId-00000001763769700000-000000a1";
const B: &str = "shardId-00000001763769800000-0000000b";
const C: &str = "shardId-00000001763769900000-0000000c";

#[tokio::test(flavor = "multi_thread")]
async fn latest_archives_from_the_first_follow_on_across_a_kill_and_a_new_child() {
    let stack = Stack::start().await;
    stack
        .create_table("faulty", "id", Some(StreamViewType::NewAndOldImages))
        .await;
    // Versions 1 and 2 of 30 keys in two closed ancestors, version 3 in the open shard B, all
    // written before the start; versions 4-5 in B and 6 in C (a child of B) come after it.
    let mut graph = Graph::fill(
        vec![
            Graph::shard(A0, None, true),
            Graph::shard(A1, Some(A0), true),
            Graph::shard(B, Some(A1), false),
            Graph::shard(C, Some(B), false),
        ],
        30,
        6,
        20,
        |_, v| match v {
            1 => 0,
            2 => 1,
            3..=5 => 2,
            _ => 3,
        },
    );
    let child = graph.shards.pop().expect("C");
    let later_in_b = graph.shards[2].records.split_off(30);
    for s in &mut graph.shards {
        for r in &mut s.records {
            r.time_s -= 600.0;
        }
    }
    let server = FaultStreams::start(graph, Faults::default()).await;
    let archive = stack.dir.path().join("archive");
    let spool = stack.dir.path().join("spool");
    let endpoint = server.endpoint();
    let port = free_port();
    let http = format!("127.0.0.1:{port}");
    let worker = |flush: &str, http: &str| {
        let mut args = worker_args(
            "faulty",
            "--archive",
            archive.to_str().unwrap(),
            spool.to_str().unwrap(),
            http,
        );
        let at = args.iter().position(|a| *a == "--flush-interval").unwrap();
        args[at + 1] = flush;
        args.extend(["--log-format", "text", "--start-position", "latest"]);
        Archiver::start_env(
            &stack,
            &args,
            &[("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", endpoint.as_str())],
        )
    };
    // A long flush interval: this worker never checkpoints before it is killed.
    let mut first = worker("60s", &http);
    let store = LeaseStore::new(
        stack.dynamodb.clone(),
        "dynamo-archiver-leases".into(),
        String::new(),
    );
    let start_ms = poll(
        "the first follow's leases",
        Duration::from_secs(30),
        || async {
            let leases = store.all().await.ok()?;
            let b = leases.iter().find(|l| l.shard.as_str() == B)?;
            let skipped = leases
                .iter()
                .filter(|l| [A0, A1].contains(&l.shard.as_str()))
                .all(|l| l.checkpoint == Checkpoint::ShardEnd);
            (skipped && leases.len() == 3 && b.checkpoint == Checkpoint::Latest)
                .then_some(b.start_after_ms)
                .flatten()
        },
    )
    .await;
    // Written after the start.
    let after_start = (start_ms / 1000 + 1) as f64;
    server.with_graph(|g| {
        g.shards[2]
            .records
            .extend(later_in_b.into_iter().map(|mut r| {
                r.time_s = after_start;
                r
            }))
    });
    poll(
        "the first worker read B's new records",
        Duration::from_secs(30),
        || async {
            let metrics = http_get(port, "/metrics")?.1;
            (metric_total(&metrics, "archiver_records_read_total") >= 90.0).then_some(())
        },
    )
    .await;
    first.signal("KILL");
    first.wait(Duration::from_secs(10));
    assert!(
        archive_files(&archive).is_empty(),
        "nothing was checkpointed"
    );

    let mut second = worker("1s", "off");
    wait_for_rows(&archive, 60, Duration::from_secs(60)).await;
    // B closes and its child C begins, after the start: C is read from its beginning.
    server.with_graph(|g| {
        g.shards[2].closed = true;
        let mut c = child;
        for r in &mut c.records {
            r.time_s = after_start + 1.0;
        }
        g.shards.push(c);
    });
    let rows = wait_for_rows(&archive, 90, Duration::from_secs(60)).await;
    second.stop();

    let archived: BTreeSet<String> = rows.iter().map(|r| r.event_id.clone()).collect();
    let expected: BTreeSet<String> = server.with_graph(|g| {
        g.shards[2..]
            .iter()
            .flat_map(|s| &s.records)
            .filter(|r| r.version >= 4)
            .map(|r| r.event_id.clone())
            .collect()
    });
    assert_eq!(rows.len(), archived.len(), "each record once");
    assert_eq!(
        archived, expected,
        "exactly the records written after the start: none before it, none lost to the kill"
    );
    let (code, out, err) =
        Archiver::output(&stack, &["verify", "--archive", archive.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}\n{err}");
}
