//! Faults of the Streams API, served by the fault server: throttling, 500s, 503s, resets, cut
//! bodies, latency, expiring iterators, empty and capped pages, a parent trimmed while read, and
//! three workers sharing splitting shards.

use super::*;
use crate::sim::streams::{Faults, Injected};

#[tokio::test(flavor = "multi_thread")]
async fn a_split_into_two_children_under_10_percent_throttling_with_a_kill() {
    let stack = Stack::start().await;
    let server = FaultStreams::start(
        split_graph(),
        Faults {
            seed: seed(11),
            throttle: 0.10,
            script: vec![Injected::Throttle],
            // Pages of a few records: enough calls for the throttling to matter.
            page_bytes: 1_500,
            // One shard per DescribeStream page: the listing must follow LastEvaluatedShardId.
            describe_page: 1,
            ..Faults::default()
        },
    )
    .await;
    run_with_restart(&stack, &server, Restart::Kill, deadline(120)).await;
    let stats = server.stats();
    assert!(
        stats.throttled > 0 && stats.describe_pages >= 3,
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sixty_four_open_shards_under_5xx_resets_cut_bodies_and_latency_with_a_sigterm() {
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
    let graph = Graph::fill(shards, 640 * scale(), 3, 20, |k, _| (k % 64) as usize);
    let server = FaultStreams::start(
        graph,
        Faults {
            seed: seed(64),
            server_error: 0.05,
            reset: 0.01,
            garbage: 0.01,
            max_latency: Duration::from_millis(20),
            script: vec![
                Injected::ServerError,
                Injected::Unavailable,
                Injected::Reset,
                Injected::Garbage,
            ],
            ..Faults::default()
        },
    )
    .await;
    run_with_restart(&stack, &server, Restart::Term, deadline(180)).await;
    let stats = server.stats();
    assert!(
        stats.server_errors > 0 && stats.unavailable > 0 && stats.resets > 0 && stats.garbage > 0,
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn expiring_iterators_empty_pages_and_the_page_cap_along_a_rollover_chain_with_a_kill() {
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
        50 * scale(),
        9,
        2_000,
        |_, v| ((v - 1) / 3) as usize,
    );
    let server = FaultStreams::start(
        graph,
        Faults {
            seed: seed(3),
            expire_every: Some(3),
            empty_page: 0.2,
            // About ten records per page, as AWS's 1 MB cap does to big items.
            page_bytes: 22_000,
            ..Faults::default()
        },
    )
    .await;
    run_with_restart(&stack, &server, Restart::Kill, deadline(180)).await;
    let stats = server.stats();
    assert!(
        stats.expired > 0 && stats.empty_pages > 0 && stats.capped_pages > 0,
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_parent_trimmed_while_read_is_a_reported_gap_and_its_children_are_read_across_a_kill() {
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
            seed: seed(5),
            page_bytes: 2_500,
            ..Faults::default()
        },
    )
    .await;
    run_with_restart(&stack, &server, Restart::Kill, Duration::from_secs(120)).await;
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
    let verify = |extra: &[&str]| {
        let mut args = vec!["verify", "--archive", archive.to_str().unwrap()];
        args.extend_from_slice(extra);
        Archiver::output(&stack, &args)
    };
    let (code, out, err) = verify(&[]);
    assert_eq!(code, 1, "a recorded loss fails verify: {out}{err}");
    assert!(out.contains(&gap_after), "verify names the gap: {out}");
    assert!(out.contains("RECORDS LOST"), "{out}");
    let (code, out, err) = verify(&["--accept-known-gaps"]);
    assert_eq!(
        code, 0,
        "an accepted gap is listed, not a failure: {out}{err}"
    );
    assert!(out.contains(&gap_after), "{out}");
}

/// Eight parents, each split into two open children: versions 1-4 of a key in its parent,
/// 5-8 in one of the parent's children.
fn eight_splits_graph() -> Graph {
    let mut shards = Vec::new();
    for p in 0..8 {
        shards.push(Graph::shard(
            &format!("shardId-00000001763769600000-{p:08x}"),
            None,
            true,
        ));
    }
    for c in 0..16 {
        shards.push(Graph::shard(
            &format!("shardId-00000001763773200000-{c:08x}"),
            Some(&format!("shardId-00000001763769600000-{:08x}", c / 2)),
            false,
        ));
    }
    Graph::fill(shards, 160 * scale(), 8, 50, |k, v| {
        let parent = (k % 8) as usize;
        if v <= 4 {
            parent
        } else {
            8 + 2 * parent + ((k / 8) % 2) as usize
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn three_workers_share_splitting_shards_under_faults_and_one_is_killed() {
    let stack = Stack::start().await;
    create_table(&stack).await;
    let server = FaultStreams::start(
        eight_splits_graph(),
        Faults {
            seed: seed(99),
            throttle: 0.05,
            server_error: 0.03,
            reset: 0.01,
            garbage: 0.01,
            page_bytes: 3_000,
            script: vec![Injected::Throttle, Injected::ServerError, Injected::Garbage],
            ..Faults::default()
        },
    )
    .await;
    let graph = server.with_graph(|g| g.clone());
    let total = expected(&graph).len();
    let archive = stack.dir.path().join("archive");
    let mut ws: Vec<Archiver> = ["w1", "w2", "w3"]
        .iter()
        .map(|id| worker(&stack, &server, id))
        .collect();
    poll("all three workers hold leases", deadline(60), || async {
        let s = spread(&leases(&stack).await);
        ["w1", "w2", "w3"]
            .iter()
            .all(|w| s.get(*w).is_some_and(|&n| n > 0))
            .then_some(())
    })
    .await;
    wait_for_rows(&archive, total / 3, deadline(120)).await;
    ws[1].signal("KILL");
    ws[1].wait(Duration::from_secs(10));
    poll(
        "w2's unfinished leases taken over",
        deadline(60),
        || async {
            let s = spread(&leases(&stack).await);
            (!s.contains_key("w2") && !s.contains_key("-")).then_some(())
        },
    )
    .await;
    wait_for_rows(&archive, total, deadline(120)).await;
    for (i, w) in ws.iter_mut().enumerate() {
        if i != 1 {
            w.stop();
        }
    }
    assert_complete(&graph, &read_archive(&archive));
    let stats = server.stats();
    assert!(
        stats.throttled > 0 && stats.server_errors + stats.unavailable > 0 && stats.garbage > 0,
        "{stats:?}"
    );
}
