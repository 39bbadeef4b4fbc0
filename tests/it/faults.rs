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

use crate::sim::streams::{FaultStreams, Faults, Graph, Injected, Rec};
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

/// Incompressible-looking bytes, spooled as a file ready to publish.
fn spooled(dir: &std::path::Path, len: usize) -> dynamo_archiver::encode::parquet::SpooledFile {
    use sha2::Digest;
    let body: Vec<u8> = (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[2])
        .collect();
    let path = dir.join("upload.bin");
    std::fs::write(&path, &body).unwrap();
    dynamo_archiver::encode::parquet::SpooledFile {
        path,
        sha256: sha2::Sha256::digest(&body).into(),
        size_bytes: len as u64,
        rows: 1,
    }
}

/// The multipart fault tests' set-up: moto with an `archive` bucket, the fault proxy in front of
/// it (faults on UploadPart: `script` first, then SlowDowns at `slow_down`), and a spooled file of
/// two parts.
async fn multipart_rig(
    seed: u64,
    script: Vec<crate::sim::proxy::S3Fault>,
    slow_down: f64,
) -> (
    Stack,
    crate::sim::proxy::FaultS3,
    dynamo_archiver::encode::parquet::SpooledFile,
) {
    use crate::sim::proxy::{upload_part, FaultS3, Refusal, S3Faults};
    use dynamo_archiver::archive::s3::PART_SIZE_BYTES;
    let stack = Stack::start_with_s3().await;
    stack.create_bucket("archive").await;
    let proxy = FaultS3::start(
        stack.moto.as_ref().unwrap().port,
        S3Faults {
            seed,
            script,
            slow_down,
            reset_before: 0.0,
            reset_after: 0.0,
            select: upload_part,
            refusal: Refusal::S3SlowDown,
        },
    )
    .await;
    let file = spooled(stack.dir.path(), (PART_SIZE_BYTES + (2 << 20)) as usize);
    (stack, proxy, file)
}

/// A sink writing to the `archive` bucket under `p/`, through `endpoint`.
async fn archive_sink(endpoint: &str) -> dynamo_archiver::archive::ArchiveSink {
    use dynamo_archiver::archive::s3::S3Sink;
    dynamo_archiver::archive::ArchiveSink::S3(S3Sink::new(
        s3_client(endpoint).await,
        "archive".into(),
        "p".into(),
        None,
    ))
}

const MULTIPART_KEY: &str = "t/dt=2026-11-22/shardId-1_1_9.parquet";

/// Checks that the bucket holds exactly one object, `p/<key>`, with the file's bytes; returns the
/// number of multipart uploads still open.
async fn one_whole_object(
    s3: &aws_sdk_s3::Client,
    key: &str,
    file: &dynamo_archiver::encode::parquet::SpooledFile,
) -> usize {
    use sha2::Digest;
    let body = s3_body(s3, "archive", &format!("p/{key}")).await.unwrap();
    assert_eq!(
        <[u8; 32]>::from(sha2::Sha256::digest(&body)),
        file.sha256,
        "lands whole"
    );
    let listed = s3.list_objects_v2().bucket("archive").send().await.unwrap();
    assert_eq!(listed.contents().len(), 1, "one object");
    open_uploads(s3, "archive").await
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_slowdowns_and_resets_inside_a_multipart_upload_land_the_file_once() {
    use crate::sim::proxy::S3Fault;
    use dynamo_archiver::archive::Published;
    // The first part: refused, then written but its answer lost, then cut before it reaches S3;
    // after that, one part in five is slowed down.
    let (stack, proxy, file) = multipart_rig(
        7,
        vec![S3Fault::SlowDown, S3Fault::ResetAfter, S3Fault::ResetBefore],
        0.2,
    )
    .await;
    let sink = archive_sink(&proxy.endpoint()).await;
    let key = MULTIPART_KEY;
    assert_eq!(
        sink.publish_retrying(key, &file).await.unwrap(),
        Published::Created
    );
    let stats = proxy.stats.lock().unwrap().clone();
    assert!(
        stats.slow_downs >= 1 && stats.resets_after == 1 && stats.resets_before == 1,
        "{stats:?}"
    );
    let s3 = stack.s3.as_ref().unwrap();
    assert_eq!(
        one_whole_object(s3, key, &file).await,
        0,
        "no upload left open"
    );
    assert_eq!(
        sink.publish(key, &file).await.unwrap(),
        Published::AlreadyExisted {
            sha256: file.sha256
        }
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_writing_to_s3_through_slowdowns_and_resets_archives_exactly_once() {
    use crate::sim::proxy::{object_writes, FaultS3, Refusal, S3Fault, S3Faults};
    let stack = Stack::start_with_s3().await;
    stack
        .create_table("ledger", "id", Some(StreamViewType::NewAndOldImages))
        .await;
    stack.create_bucket("archive").await;
    let proxy = FaultS3::start(
        stack.moto.as_ref().unwrap().port,
        S3Faults {
            seed: 8,
            // Each kind at least once, on the first writes; then by rate.
            script: vec![S3Fault::ResetAfter, S3Fault::SlowDown, S3Fault::ResetBefore],
            slow_down: 0.2,
            reset_before: 0.1,
            reset_after: 0.15,
            select: object_writes,
            refusal: Refusal::S3SlowDown,
        },
    )
    .await;
    let spool = stack.dir.path().join("spool");
    let endpoint = proxy.endpoint();
    let start = || {
        Archiver::start_env(
            &stack,
            &run_args("ledger", "s3://archive/prod", spool.to_str().unwrap()),
            &[("AWS_ENDPOINT_URL_S3", endpoint.as_str())],
        )
    };
    let s3 = stack.s3.clone().unwrap();
    let on_s3 = |n: usize| {
        let s3 = s3.clone();
        async move {
            poll(
                &format!("{n} records on S3"),
                Duration::from_secs(120),
                || async {
                    read_s3_archive(&s3, "archive", "prod/")
                        .await
                        .filter(|rows| rows.len() >= n)
                },
            )
            .await
        }
    };
    let mut a = start();
    // Written while the worker runs, so that it publishes many files (one a second); the worker
    // is killed when a third is on S3, and a new one carries on.
    let (written, ()) = tokio::join!(
        crate::support::workload(&stack, "ledger", 30, 300, 2),
        async {
            on_s3(100).await;
            a.signal("KILL");
            a.wait(Duration::from_secs(10));
        }
    );
    let mut b = start();
    let rows = on_s3(300).await;
    b.stop();
    let stats = proxy.stats.lock().unwrap().clone();
    assert!(
        stats.resets_after >= 1 && stats.slow_downs >= 1,
        "{stats:?}"
    );
    crate::support::assert_exactly_once_in_order(&stack, "ledger", &rows, &written).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_in_the_middle_of_a_multipart_upload_then_a_new_writer_lands_the_file_once() {
    use crate::sim::proxy::S3Fault;
    use dynamo_archiver::archive::Published;
    // The first writer's first part lands, its second hangs: the writer "crashes" there, leaving
    // an upload open with one part in it. The new writer's parts meet SlowDowns.
    let (stack, proxy, file) = multipart_rig(9, vec![S3Fault::Pass, S3Fault::Stall], 0.3).await;
    let endpoint = proxy.endpoint();
    let sink = || archive_sink(&endpoint);
    let key = MULTIPART_KEY;
    let first = sink().await;
    tokio::select! {
        r = first.publish_retrying(key, &file) => panic!("the upload should hang at its second part: {r:?}"),
        _ = poll("the second part held", Duration::from_secs(60), || async {
            (proxy.stats.lock().unwrap().stalls == 1).then_some(())
        }) => {}
    }
    // The crash: the writer's future is dropped mid-upload, nothing aborts the upload.
    drop(first);
    let s3 = stack.s3.as_ref().unwrap();
    assert_eq!(
        open_uploads(s3, "archive").await,
        1,
        "the crashed writer's upload is open"
    );
    assert!(
        s3_body(s3, "archive", &format!("p/{key}")).await.is_none(),
        "nothing visible from a half-done upload"
    );

    let second = sink().await;
    assert_eq!(
        second.publish_retrying(key, &file).await.unwrap(),
        Published::Created
    );
    // The crashed upload stays open until the bucket's AbortIncompleteMultipartUpload rule
    // (infra/) removes it; the new writer's own upload is completed, not left beside it.
    assert_eq!(
        one_whole_object(s3, key, &file).await,
        1,
        "only the crashed upload is open"
    );
}

/// The lease table misbehaves. Every DynamoDB call of the workers (DescribeTable and the lease
/// table) goes through a fault proxy in front of DynamoDB Local: 10% are throttled, 2% of
/// connections close before the call, and 2% close after DynamoDB Local did it, so a lease taken
/// or a checkpoint written is never heard of. A split under it, and a `kill -9` in the middle:
/// every record exactly once and in order.
#[tokio::test(flavor = "multi_thread")]
async fn a_lease_table_that_throttles_and_drops_answers_with_a_kill() {
    use crate::sim::proxy::{every_request, FaultS3, Refusal, S3Fault, S3Faults};
    let stack = Stack::start().await;
    let server = FaultStreams::start(
        split_graph(),
        Faults {
            seed: seed(21),
            page_bytes: 1_500,
            ..Faults::default()
        },
    )
    .await;
    let proxy = FaultS3::start(
        stack.ddb.port,
        S3Faults {
            seed: seed(22),
            // Each kind once, early (the first calls take leases), then by rate.
            script: vec![
                S3Fault::Pass,
                S3Fault::SlowDown,
                S3Fault::ResetBefore,
                S3Fault::Pass,
                S3Fault::ResetAfter,
            ],
            slow_down: 0.10,
            reset_before: 0.02,
            reset_after: 0.02,
            select: every_request,
            refusal: Refusal::DynamoThrottle,
        },
    )
    .await;
    let endpoint = proxy.endpoint();
    run_with_restart_via(
        &stack,
        &server,
        Restart::Kill,
        deadline(180),
        Some(&endpoint),
    )
    .await;
    let stats = proxy.stats.lock().unwrap().clone();
    assert!(
        stats.slow_downs > 0 && stats.resets_before > 0 && stats.resets_after > 0,
        "{stats:?}"
    );
}
