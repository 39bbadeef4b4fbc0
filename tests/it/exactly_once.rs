//! Exactly once by construction: two writers of one shard compute the same key for the same
//! position, and only one create-only publish lands there; the other adopts it. These scenarios
//! make a worker that lost its lease publish anyway, late: a multipart upload completed after a
//! network partition and a takeover, an upload in flight across a SIGSTOP longer than the
//! failover time, renewals answered late. Each must leave every stream record in the archive
//! exactly once, `verify` clean, and (where two writers met) the conflict counted. A take whose
//! last file lies ten days back resumes after it, without listing a single folder.

use crate::sim::proxy::{complete_multipart, every_request, object_writes, FaultS3, Refusal};
use crate::sim::proxy::{S3Fault, S3Faults};
use crate::sim::streams::{FaultStreams, Faults, Graph};
use crate::support::*;
use aws_sdk_dynamodb::types::{AttributeValue, StreamViewType};
use dynamo_archiver::leases::{Lease, LeaseStore};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

const FAILOVER: Duration = Duration::from_secs(3);
/// Items of 4,000 random characters: a few thousand make a Parquet file of several MiB, which
/// goes up in parts of 5 MiB (`ARCHIVER_TEST_PART_SIZE_BYTES`).
const PAYLOAD: usize = 4_000;
const PART_SIZE: &str = "5242880";

/// Puts items `ids` with incompressible payloads and returns their ids.
async fn put_big_items(stack: &Stack, table: &str, ids: std::ops::Range<u64>) -> BTreeSet<u64> {
    let mut rng: u64 = 0x2545_F491_4F6C_DD1D ^ ids.start;
    let alphabet: Vec<char> = ('a'..='z').chain('A'..='Z').chain('0'..='9').collect();
    let items: Vec<HashMap<String, AttributeValue>> = ids
        .clone()
        .map(|id| {
            let payload: String = (0..PAYLOAD)
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    alphabet[(rng % alphabet.len() as u64) as usize]
                })
                .collect();
            HashMap::from([
                ("id".to_owned(), n_attr(id)),
                ("payload".to_owned(), AttributeValue::S(payload)),
            ])
        })
        .collect();
    put_items(stack, table, items, 4).await;
    ids.collect()
}

fn n_attr(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// `run` arguments for one of the two workers of these scenarios: an S3 archive, files published
/// by the flush interval only, metrics on `http`.
fn two_worker_args<'a>(id: &'a str, spool: &'a str, http: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        "--table",
        "ledger",
        "--archive",
        "s3://archive/prod",
        "--worker-id",
        id,
        "--flush-interval",
        "2s",
        "--flush-size",
        "256MiB",
        "--failover-time",
        "3s",
        "--discovery-interval",
        "2s",
        "--http",
        http,
        "--spool-dir",
        spool,
        "--log-format",
        "text",
    ]
}

async fn lease_of(stack: &Stack) -> Option<Lease> {
    LeaseStore::new(
        stack.dynamodb.clone(),
        "dynamo-archiver-leases".into(),
        String::new(),
    )
    .all()
    .await
    .ok()?
    .into_iter()
    .next()
}

/// Waits until the shard's lease names the worker `id` as its owner; returns when that was seen.
async fn wait_for_owner(stack: &Stack, id: &str) -> Instant {
    poll(
        &format!("worker {id} holds the lease"),
        Duration::from_secs(60),
        || async {
            lease_of(stack)
                .await
                .and_then(|l| l.owner)
                .filter(|o| o.starts_with(&format!("{id}#")))
                .map(|_| Instant::now())
        },
    )
    .await
}

fn metric(port: u16, name: &str) -> f64 {
    http_get(port, "/metrics").map_or(0.0, |(_, body)| metric_total(&body, name))
}

/// Waits until worker A (metrics on `port`) found its key taken and adopted the file there.
async fn wait_for_conflict(port: u16, a: &Archiver) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(port, "archiver_publish_conflicts_total") < 1.0 {
        assert!(
            Instant::now() < deadline,
            "worker A never found its key taken; its log:\n{}",
            a.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every item's INSERT on S3 exactly once, and `verify` exits 0 on the archive.
async fn assert_exactly_once_on_s3(stack: &Stack, ids: &BTreeSet<u64>) {
    let s3 = stack.s3.clone().unwrap();
    let rows = poll("every record on S3", Duration::from_secs(120), || async {
        read_s3_archive(&s3, "archive", "prod/")
            .await
            .filter(|rows| rows.len() >= ids.len())
    })
    .await;
    let events: BTreeSet<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!(events.len(), rows.len(), "a record archived twice");
    let keys: BTreeSet<u64> = rows
        .iter()
        .map(|r| crate::support::key_of(&r.keys))
        .collect();
    assert_eq!(&keys, ids, "every item's record archived");
    let (code, out, err) = Archiver::output(
        stack,
        &[
            "verify",
            "--archive",
            "s3://archive/prod",
            "--log-format",
            "text",
        ],
    );
    assert_eq!(code, 0, "verify is clean:\n{out}\n{err}");
}

/// A stack with S3 and a table `ledger` holding `items` big items, a proxy for worker A's
/// DynamoDB calls (the lease table) and one for its S3 calls, holding the requests `held`
/// selects (the first of them).
async fn rig(items: u64, held: fn(&str, &str) -> bool) -> (Stack, BTreeSet<u64>, FaultS3, FaultS3) {
    let stack = Stack::start_with_s3().await;
    stack
        .create_table("ledger", "id", Some(StreamViewType::NewAndOldImages))
        .await;
    stack.create_bucket("archive").await;
    let ids = put_big_items(&stack, "ledger", 0..items).await;
    let quiet = |select, refusal, script| S3Faults {
        seed: 1,
        script,
        slow_down: 0.0,
        reset_before: 0.0,
        reset_after: 0.0,
        select,
        refusal,
    };
    let ddb = FaultS3::start(
        stack.ddb.port,
        quiet(every_request, Refusal::DynamoThrottle, vec![]),
    )
    .await;
    let s3 = FaultS3::start(
        stack.moto.as_ref().unwrap().port,
        quiet(held, Refusal::S3SlowDown, vec![S3Fault::Hold]),
    )
    .await;
    (stack, ids, ddb, s3)
}

/// Worker A through both proxies, writing parts of 5 MiB; its metrics on `port`.
fn start_a(stack: &Stack, ddb: &FaultS3, s3: &FaultS3, port: u16) -> Archiver {
    let spool = stack.dir.path().join("spool-a");
    let http = format!("127.0.0.1:{port}");
    let (ddb_url, s3_url) = (ddb.endpoint(), s3.endpoint());
    Archiver::start_env(
        stack,
        &two_worker_args("a", spool.to_str().unwrap(), &http),
        &[
            ("AWS_ENDPOINT_URL_DYNAMODB", ddb_url.as_str()),
            ("AWS_ENDPOINT_URL_S3", s3_url.as_str()),
            ("ARCHIVER_TEST_PART_SIZE_BYTES", PART_SIZE),
        ],
    )
}

/// Worker B, straight to DynamoDB Local and moto.
fn start_b(stack: &Stack, port: u16) -> Archiver {
    let spool = stack.dir.path().join("spool-b");
    let http = format!("127.0.0.1:{port}");
    Archiver::start_env(
        stack,
        &two_worker_args("b", spool.to_str().unwrap(), &http),
        &[("ARCHIVER_TEST_PART_SIZE_BYTES", PART_SIZE)],
    )
}

async fn wait_until_held(proxy: &FaultS3, what: &str) {
    poll(what, Duration::from_secs(120), || async {
        (proxy.stats.lock().unwrap().holds >= 1).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partitioned_writer_whose_multipart_upload_lands_late_duplicates_nothing() {
    let (stack, mut ids, ddb, s3) = rig(2_500, complete_multipart).await;
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = start_a(&stack, &ddb, &s3, port_a);
    // A has uploaded the parts of its file; CompleteMultipartUpload (the commit) is held.
    wait_until_held(&s3, "worker A's CompleteMultipartUpload reached the proxy").await;
    // More records, so that B's first file ends elsewhere than A's: with keys that named both
    // ends, the two files would both land.
    ids.extend(put_big_items(&stack, "ledger", 2_500..2_700).await);
    // A loses the lease table: every DynamoDB call of it hangs from now on.
    ddb.control.blackhole(true);
    let mut b = start_b(&stack, port_b);
    let taken = wait_for_owner(&stack, "b").await;
    // B archives the shard from the checkpoint A never moved.
    let s3_client = stack.s3.clone().unwrap();
    poll(
        "worker B archived every record",
        Duration::from_secs(120),
        || async {
            read_s3_archive(&s3_client, "archive", "prod/")
                .await
                .filter(|rows| rows.len() >= ids.len())
        },
    )
    .await;
    // A's upload completes three failover times after B took the shard.
    tokio::time::sleep_until((taken + 3 * FAILOVER).into()).await;
    s3.control.release();
    wait_for_conflict(port_a, &a).await;
    assert!(ddb.stats.lock().unwrap().blackholed > 0, "A was cut off");
    assert_eq!(
        open_uploads(stack.s3.as_ref().unwrap(), "archive").await,
        0,
        "A's refused upload was aborted"
    );
    a.signal("KILL");
    a.wait(Duration::from_secs(10));
    assert_exactly_once_on_s3(&stack, &ids).await;
    b.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_worker_with_an_upload_in_flight_duplicates_nothing() {
    let (stack, mut ids, ddb, s3) = rig(300, object_writes).await;
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = start_a(&stack, &ddb, &s3, port_a);
    wait_until_held(&s3, "worker A's upload reached the proxy").await;
    ids.extend(put_big_items(&stack, "ledger", 300..350).await);
    // SIGSTOP with the upload in flight, for three failover times.
    a.signal("STOP");
    let paused = Instant::now();
    let mut b = start_b(&stack, port_b);
    wait_for_owner(&stack, "b").await;
    let s3_client = stack.s3.clone().unwrap();
    poll(
        "worker B archived every record",
        Duration::from_secs(120),
        || async {
            read_s3_archive(&s3_client, "archive", "prod/")
                .await
                .filter(|rows| rows.len() >= ids.len())
        },
    )
    .await;
    // The held write now reaches S3 (and is refused: B's file holds the key); A hears of it
    // when it runs again.
    s3.control.release();
    tokio::time::sleep_until((paused + 3 * FAILOVER).into()).await;
    a.signal("CONT");
    wait_for_conflict(port_a, &a).await;
    assert_exactly_once_on_s3(&stack, &ids).await;
    a.signal("KILL");
    a.wait(Duration::from_secs(10));
    b.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn renewals_answered_five_seconds_late_duplicate_nothing() {
    let (stack, _, ddb, s3) = rig(0, object_writes).await;
    s3.control.release();
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = start_a(&stack, &ddb, &s3, port_a);
    wait_for_owner(&stack, "a").await;
    // Every answer to A's DynamoDB calls, renewals and checkpoints included, arrives 5 s after
    // DynamoDB applied the call: longer than the failover time.
    ddb.control.delay_answers(Duration::from_secs(5));
    let mut b = start_b(&stack, port_b);
    let written = crate::support::workload(&stack, "ledger", 20, 200, 2).await;
    let ids: BTreeSet<u64> = written.keys().copied().collect();
    let total: usize = written.values().map(Vec::len).sum();
    let s3_client = stack.s3.clone().unwrap();
    let rows = poll("every record on S3", Duration::from_secs(180), || async {
        read_s3_archive(&s3_client, "archive", "prod/")
            .await
            .filter(|rows| rows.len() >= total)
    })
    .await;
    crate::support::assert_exactly_once_in_order(&stack, "ledger", &rows, &written).await;
    let (code, out, err) = Archiver::output(
        &stack,
        &[
            "verify",
            "--archive",
            "s3://archive/prod",
            "--log-format",
            "text",
        ],
    );
    assert_eq!(code, 0, "verify is clean:\n{out}\n{err}");
    assert!(!ids.is_empty());
    a.signal("KILL");
    a.wait(Duration::from_secs(10));
    b.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_take_whose_last_file_is_ten_days_back_resumes_after_it() {
    const DAY_S: f64 = 86_400.0;
    let stack = Stack::start().await;
    stack
        .create_table("faulty", "id", Some(StreamViewType::NewAndOldImages))
        .await;
    // One open shard: 20 records ten days ago, 20 today; 20 more come after the crash.
    let mut graph = Graph::fill(
        vec![Graph::shard(
            "shardId-00000001763769600000-aaaaaaaa",
            None,
            false,
        )],
        20,
        3,
        10,
        |_, _| 0,
    );
    let later: Vec<_> = graph.shards[0].records.split_off(40);
    for r in &mut graph.shards[0].records[..20] {
        r.time_s -= 10.0 * DAY_S;
    }
    let server = FaultStreams::start(graph, Faults::default()).await;
    let archive = stack.dir.path().join("archive");
    let spool = stack.dir.path().join("spool");
    let endpoint = server.endpoint();
    let args = run_args("faulty", archive.to_str().unwrap(), spool.to_str().unwrap());
    // The first worker publishes the old day's file (a new day cuts it), checkpoints it, then
    // publishes today's file and aborts before checkpointing it.
    let mut first = Archiver::start_env(
        &stack,
        &args,
        &[
            ("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", endpoint.as_str()),
            ("ARCHIVER_FAILPOINT_ABORT_AFTER_PUBLISH", "2"),
        ],
    );
    let status = first
        .exited_within(Duration::from_secs(60))
        .expect("the failpoint aborts the first worker");
    assert!(!status.success(), "{}", first.log_text());
    let days: BTreeSet<String> = archive_files(&archive)
        .iter()
        .filter_map(|p| {
            let dir = p.parent()?.file_name()?.to_str()?;
            dir.strip_prefix("dt=").map(str::to_owned)
        })
        .collect();
    assert_eq!(days.len(), 2, "two files, ten days apart: {days:?}");
    let lease = LeaseStore::new(
        stack.dynamodb.clone(),
        "dynamo-archiver-leases".into(),
        String::new(),
    )
    .all()
    .await
    .unwrap()
    .remove(0);
    let checkpointed_day = lease
        .last_file_key
        .as_deref()
        .and_then(dynamo_archiver::archive::layout::dt_of_key)
        .map(str::to_owned);
    assert_eq!(
        checkpointed_day.as_ref(),
        days.first(),
        "the lease names the old day's file; today's was never checkpointed"
    );
    // More records arrive, so a re-read would cut today's file elsewhere.
    server.with_graph(|g| g.shards[0].records.extend(later));
    let mut second = Archiver::start_env(
        &stack,
        &args,
        &[("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", endpoint.as_str())],
    );
    let rows = wait_for_rows(&archive, 60, Duration::from_secs(60)).await;
    second.stop();
    let ids: BTreeSet<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!((rows.len(), ids.len()), (60, 60), "every record once");
    assert!(
        second
            .log_text()
            .contains("the archive holds the file at this position"),
        "{}",
        second.log_text()
    );
    let (code, out, err) = Archiver::output(
        &stack,
        &[
            "verify",
            "--archive",
            archive.to_str().unwrap(),
            "--log-format",
            "text",
        ],
    );
    assert_eq!(code, 0, "verify is clean:\n{out}\n{err}");
}
