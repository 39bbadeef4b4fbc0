//! The worker under pressure: a shard whose task keeps failing restarts ever more slowly and turns
//! `/healthz` red; a DescribeStream that takes 15 s costs no lease; `--max-leases` leaves shards
//! to other workers.

use crate::sim::streams::{FaultStreams, Faults, Graph};
use crate::support::*;
use aws_sdk_dynamodb::types::StreamViewType;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const SHARD: &str = "shardId-00000001763769600000-aaaaaaaa";

/// A worker on the fault server's stream, metrics on `port`, with `extra` arguments and
/// environment.
fn worker(
    stack: &Stack,
    server: &FaultStreams,
    port: u16,
    id: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Archiver {
    let archive = stack.dir.path().join("archive");
    let spool = stack.dir.path().join(format!("spool-{id}"));
    let http = format!("127.0.0.1:{port}");
    let mut args = worker_args(
        "faulty",
        "--archive",
        archive.to_str().unwrap(),
        spool.to_str().unwrap(),
        &http,
    );
    args.extend(["--log-format", "text", "--worker-id", id]);
    args.extend_from_slice(extra);
    let endpoint = server.endpoint();
    let mut all_env = vec![("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", endpoint.as_str())];
    all_env.extend_from_slice(env);
    Archiver::start_env(stack, &args, &all_env)
}

/// `n` open shards without parents.
fn open_roots(n: usize) -> Vec<crate::sim::streams::Shard> {
    (0..n)
        .map(|i| {
            Graph::shard(
                &format!("shardId-0000000176376960000{i}-0000000{i}"),
                None,
                false,
            )
        })
        .collect()
}

async fn faulty_table(stack: &Stack) {
    stack
        .create_table("faulty", "id", Some(StreamViewType::NewAndOldImages))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shard_that_keeps_failing_restarts_ever_more_slowly_and_fails_healthz() {
    let stack = Stack::start().await;
    faulty_table(&stack).await;
    let graph = Graph::fill(vec![Graph::shard(SHARD, None, false)], 5, 2, 10, |_, _| 0);
    let first = graph.shards[0].records[0].clone();
    let server = FaultStreams::start(graph, Faults::default()).await;
    // Something that is not an archive file sits where the shard's first file belongs: every
    // task fails on it, until an operator moves it.
    let archive = stack.dir.path().join("archive");
    let day = dynamo_archiver::archive::layout::dt_of_millis((first.time_s * 1000.0) as i64);
    let blocker = archive.join(format!("faulty/dt={day}/{SHARD}_{}.parquet", first.seq));
    std::fs::create_dir_all(blocker.parent().unwrap()).unwrap();
    std::fs::write(&blocker, b"not parquet").unwrap();

    let port = free_port();
    let started = Instant::now();
    let mut w = worker(
        &stack,
        &server,
        port,
        "w",
        &[],
        &[("ARCHIVER_TEST_MIN_STALL_MS", "4000")],
    );
    let body = poll("/healthz to fail", Duration::from_secs(60), || async {
        http_get(port, "/healthz").and_then(|(s, body)| (s == 503).then_some(body))
    })
    .await;
    assert!(body.contains("records waiting"), "{body}");
    // Watch the restarts for half a minute: 1 s, 2 s, 4 s, 8 s, 16 s apart at least 95% of it.
    tokio::time::sleep_until((started + Duration::from_secs(32)).into()).await;
    let log = w.log_text();
    let restarts = log.matches("shard task failed; restarting").count();
    assert!(
        (3..=6).contains(&restarts),
        "{restarts} restarts in 32 s (the backoff allows at most 6):\n{log}"
    );
    assert!(
        log.contains("move it out of the archive"),
        "the error names the fix"
    );

    // The operator moves it: the shard goes on, every record is archived once, /healthz passes.
    std::fs::remove_file(&blocker).unwrap();
    let rows = wait_for_rows(&archive, 10, Duration::from_secs(90)).await;
    let ids: BTreeSet<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!((rows.len(), ids.len()), (10, 10));
    poll("/healthz to pass", Duration::from_secs(30), || async {
        (http_get(port, "/healthz").map(|r| r.0) == Some(200)).then_some(())
    })
    .await;
    w.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_describe_stream_that_takes_15_seconds_costs_no_lease() {
    let stack = Stack::start().await;
    faulty_table(&stack).await;
    let shards = open_roots(4);
    let graph = Graph::fill(shards, 40, 3, 10, |k, _| (k % 4) as usize);
    let total = graph.shards.iter().map(|s| s.records.len()).sum::<usize>();
    let server = FaultStreams::start(
        graph,
        Faults {
            describe_delay: Duration::from_secs(15),
            ..Faults::default()
        },
    )
    .await;
    let (pa, pb) = (free_port(), free_port());
    // A listing every 2 s (worker_args): the slow listing is in flight nearly all the time.
    let mut a = worker(&stack, &server, pa, "a", &[], &[]);
    let mut b = worker(&stack, &server, pb, "b", &[], &[]);
    let archive = stack.dir.path().join("archive");
    let deadline = Instant::now() + Duration::from_secs(120);
    while read_archive(&archive).len() < total {
        assert!(
            Instant::now() < deadline,
            "{} of {total} rows; worker a:\n{}\nworker b:\n{}",
            read_archive(&archive).len(),
            a.log_text(),
            b.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let rows = read_archive(&archive);
    // Both stay up through more listings (each 15 s) than the failover time (3 s) allows.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let lost = |port| {
        http_get(port, "/metrics").map(|(_, m)| metric_total(&m, "archiver_leases_lost_total"))
    };
    assert_eq!(
        (lost(pa), lost(pb)),
        (Some(0.0), Some(0.0)),
        "no lease lost"
    );
    let ids: BTreeSet<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!(ids.len(), total, "each record once");
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn max_leases_leaves_shards_to_other_workers() {
    let stack = Stack::start().await;
    faulty_table(&stack).await;
    let shards = open_roots(5);
    let graph = Graph::fill(shards, 50, 2, 10, |k, _| (k % 5) as usize);
    let total = graph.shards.iter().map(|s| s.records.len()).sum::<usize>();
    let server = FaultStreams::start(graph, Faults::default()).await;
    let (pa, pb) = (free_port(), free_port());
    let mut a = worker(&stack, &server, pa, "a", &["--max-leases", "1"], &[]);
    let owned =
        |port| http_get(port, "/metrics").map(|(_, m)| metric_total(&m, "archiver_shards_owned"));
    let unread =
        |port| http_get(port, "/metrics").map(|(_, m)| metric_total(&m, "archiver_shards_unread"));
    poll(
        "worker a holds its cap",
        Duration::from_secs(30),
        || async { (owned(pa) == Some(1.0)).then_some(()) },
    )
    .await;
    // Alone and capped, a reports the four shards nobody reads, and says so in its log once
    // they have stayed unread for three failover times.
    poll(
        "a to report four unread shards",
        Duration::from_secs(30),
        || async { (unread(pa) == Some(4.0)).then_some(()) },
    )
    .await;
    poll("a to warn of them", Duration::from_secs(60), || async {
        a.log_text().contains("SHARDS UNREAD").then_some(())
    })
    .await;
    let mut b = worker(&stack, &server, pb, "b", &[], &[]);
    // b's target is ceil(5 / 2) = 3: the fourth shard it creates above its target, once nobody
    // has created a lease for it for the failover time (a capped worker never will).
    poll(
        "worker b holds the rest",
        Duration::from_secs(60),
        || async { (owned(pb) == Some(4.0)).then_some(()) },
    )
    .await;
    assert_eq!(owned(pa), Some(1.0), "a never exceeds its cap");
    poll(
        "a and b to report nothing unread",
        Duration::from_secs(30),
        || async { (unread(pa) == Some(0.0) && unread(pb) == Some(0.0)).then_some(()) },
    )
    .await;
    let archive = stack.dir.path().join("archive");
    let rows = wait_for_rows(&archive, total, Duration::from_secs(60)).await;
    let ids: BTreeSet<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!(ids.len(), total);
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_spool_disk_pauses_reading_with_a_clear_error_and_resumes() {
    let stack = Stack::start().await;
    faulty_table(&stack).await;
    let graph = Graph::fill(vec![Graph::shard(SHARD, None, false)], 10, 3, 10, |_, _| 0);
    let server = FaultStreams::start(graph, Faults::default()).await;
    // The test's stand-in for the spool volume's free space (ARCHIVER_TEST_SPOOL_FREE_FILE).
    let free = stack.dir.path().join("spool-free");
    std::fs::write(&free, "0").unwrap();
    let port = free_port();
    let free_env = free.to_str().unwrap().to_owned();
    let mut w = worker(
        &stack,
        &server,
        port,
        "w",
        &["--stuck-after", "3s"],
        &[("ARCHIVER_TEST_SPOOL_FREE_FILE", free_env.as_str())],
    );
    poll(
        "the pause to be logged",
        Duration::from_secs(30),
        || async { w.log_text().contains("SPOOL FULL").then_some(()) },
    )
    .await;
    let body = poll("/healthz to fail", Duration::from_secs(30), || async {
        http_get(port, "/healthz").and_then(|(s, body)| (s == 503).then_some(body))
    })
    .await;
    assert!(body.contains("no successful read"), "{body}");
    let archive = stack.dir.path().join("archive");
    assert!(
        read_archive(&archive).is_empty(),
        "nothing read while paused"
    );
    assert!(
        w.exited_within(Duration::from_millis(10)).is_none(),
        "a full disk is not a crash"
    );
    std::fs::write(&free, (10u64 << 30).to_string()).unwrap();
    let rows = wait_for_rows(&archive, 30, Duration::from_secs(60)).await;
    let ids: BTreeSet<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!((rows.len(), ids.len()), (30, 30));
    poll("/healthz to pass", Duration::from_secs(30), || async {
        (http_get(port, "/healthz").map(|r| r.0) == Some(200)).then_some(())
    })
    .await;
    w.stop();
}
