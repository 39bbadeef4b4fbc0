//! Every gap is written down: a shard first read after its oldest records were trimmed, and a
//! checkpoint the stream trimmed past while no worker ran. Each writes a gap record into the
//! chain (where it begins, why), logs RECORDS LOST, and fails `verify` until accepted.

use crate::sim::streams::{FaultStreams, Faults, Graph};
use crate::support::*;
use aws_sdk_dynamodb::types::StreamViewType;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const OLD: &str = "shardId-00000001763769600000-0000old0";
const QUIET: &str = "shardId-00000001763769600001-0quiet00";

#[tokio::test(flavor = "multi_thread")]
async fn trims_before_a_first_read_and_past_a_checkpoint_are_recorded_gaps() {
    let stack = Stack::start().await;
    stack
        .create_table("faulty", "id", Some(StreamViewType::NewAndOldImages))
        .await;
    // OLD: keys 0-9, versions 1-3, written 23.5 hours ago; the stream trimmed version 1 before any
    // worker read it. QUIET: keys 10-19, versions 1-2 now, version 3 later.
    let mut graph = Graph::fill(
        vec![
            Graph::shard(OLD, None, false),
            Graph::shard(QUIET, None, false),
        ],
        20,
        3,
        20,
        |k, _| usize::from(k >= 10),
    );
    for r in &mut graph.shards[0].records {
        r.time_s -= 23.5 * 3600.0;
    }
    graph.shards[0].trimmed_below = 10;
    let later = graph.shards[1].records.split_off(20);
    let server = FaultStreams::start(graph, Faults::default()).await;
    let archive = stack.dir.path().join("archive");
    let spool = stack.dir.path().join("spool");
    let endpoint = server.endpoint();
    let args = run_args("faulty", archive.to_str().unwrap(), spool.to_str().unwrap());
    let env = [("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", endpoint.as_str())];

    let mut first = Archiver::start_env(&stack, &args, &env);
    wait_for_rows(&archive, 40, Duration::from_secs(60)).await;
    first.stop();
    // While no worker runs, QUIET gets version 3 and the stream trims past its checkpoint.
    server.with_graph(|g| {
        g.shards[1].records.extend(later);
        g.shards[1].trimmed_below = 25;
    });
    let gap_after = server.with_graph(|g| g.shards[1].records[19].seq.to_string());
    let mut second = Archiver::start_env(&stack, &args, &env);
    let rows = wait_for_rows(&archive, 45, Duration::from_secs(60)).await;
    second.stop();
    let ids: BTreeSet<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!(
        (rows.len(), ids.len()),
        (45, 45),
        "every readable record once"
    );

    // The gap records: (shard, gap_after_sequence_number, gap_reason).
    let gaps: BTreeMap<String, (String, String)> = archive_files(&archive)
        .iter()
        .map(|f| file_metadata(f))
        .filter_map(|m| {
            Some((
                m.get("shard_id")?.clone(),
                (
                    m.get("gap_after_sequence_number")?.clone(),
                    m.get("gap_reason")?.clone(),
                ),
            ))
        })
        .collect();
    assert_eq!(
        gaps,
        BTreeMap::from([
            (OLD.to_owned(), ("none".to_owned(), "retention".to_owned())),
            (QUIET.to_owned(), (gap_after.clone(), "trimmed".to_owned())),
        ])
    );
    assert!(
        first.log_text().contains("RECORDS LOST"),
        "{}",
        first.log_text()
    );
    assert!(
        second.log_text().contains("RECORDS LOST"),
        "{}",
        second.log_text()
    );

    let verify = |extra: &[&str]| {
        let mut a = vec!["verify", "--archive", archive.to_str().unwrap()];
        a.extend_from_slice(extra);
        Archiver::output(&stack, &a)
    };
    let (code, out, err) = verify(&[]);
    assert_eq!(code, 1, "recorded losses fail verify:\n{out}\n{err}");
    assert_eq!(out.matches("RECORDS LOST").count(), 2, "{out}");
    assert!(out.contains(&gap_after), "{out}");
    let (code, out, err) = verify(&["--accept-known-gaps"]);
    assert_eq!(
        code, 0,
        "accepted gaps are listed, not failures:\n{out}\n{err}"
    );
}
