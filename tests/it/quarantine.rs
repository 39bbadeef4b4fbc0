//! A record that cannot become a row (an attribute type this version does not know, a record
//! without `Keys`, invalid UTF-8) in the middle of a shard: the shard goes on, the records around
//! it are archived once, the record itself is archived verbatim as a QUARANTINED row in its place,
//! counted, and listed by `verify`.

use crate::sim::streams::{FaultStreams, Faults, Graph, Rec};
use crate::support::*;
use aws_sdk_dynamodb::types::StreamViewType;
use std::collections::BTreeSet;
use std::time::Duration;

/// A stream record's JSON with `keys_and_images` as the inside of its `dynamodb` object.
fn raw(event_id: &str, seq: u128, dynamodb: &[u8]) -> Vec<u8> {
    let mut out = format!(
        r#"{{"eventID":"{event_id}","eventName":"INSERT","eventVersion":"1.1","eventSource":"aws:dynamodb","awsRegion":"us-east-1","dynamodb":{{"ApproximateCreationDateTime":{},"SequenceNumber":"{seq}","SizeBytes":33,"StreamViewType":"NEW_AND_OLD_IMAGES","#,
        dynamo_archiver::clock::now_ms() / 1000 - 60
    )
    .into_bytes();
    out.extend_from_slice(dynamodb);
    out.extend_from_slice(b"}}");
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_records_are_quarantined_in_place_and_the_shard_goes_on() {
    let stack = Stack::start().await;
    stack
        .create_table("faulty", "id", Some(StreamViewType::NewAndOldImages))
        .await;
    let mut graph = Graph::fill(
        vec![Graph::shard(
            "shardId-00000001763769600000-aaaaaaaa",
            None,
            false,
        )],
        10,
        3,
        20,
        |_, _| 0,
    );
    // Three bad records, each between two good ones (sequence numbers in between).
    let bad: Vec<(usize, Vec<u8>)> = [
        (5, &br#""Keys":{"id":{"FUTURE":"x"}}"#[..]),
        (12, &br#""NewImage":{"id":{"N":"1"}}"#[..]),
        (
            20,
            &b"\"Keys\":{\"id\":{\"N\":\"2\"}},\"NewImage\":{\"s\":{\"S\":\"\xc3\x28\"}}"[..],
        ),
    ]
    .into_iter()
    .map(|(after, dynamodb)| {
        let seq = graph.shards[0].records[after].seq + 1;
        (after, raw(&format!("bad-{after}"), seq, dynamodb))
    })
    .collect();
    for (after, bytes) in bad.iter().rev() {
        let mut r: Rec = graph.shards[0].records[*after].clone();
        r.seq += 1;
        r.event_id = format!("bad-{after}");
        r.raw = Some(bytes.clone());
        graph.shards[0].records.insert(after + 1, r);
    }
    let server = FaultStreams::start(graph, Faults::default()).await;
    let archive = stack.dir.path().join("archive");
    let spool = stack.dir.path().join("spool");
    let port = free_port();
    let http = format!("127.0.0.1:{port}");
    let endpoint = server.endpoint();
    let mut args = worker_args(
        "faulty",
        "--archive",
        archive.to_str().unwrap(),
        spool.to_str().unwrap(),
        &http,
    );
    args.extend(["--log-format", "text"]);
    let mut worker = Archiver::start_env(
        &stack,
        &args,
        &[("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", endpoint.as_str())],
    );
    let rows = wait_for_rows(&archive, 33, Duration::from_secs(60)).await;
    let metrics = http_get(port, "/metrics")
        .map(|(_, m)| m)
        .unwrap_or_default();
    worker.stop();

    // Every good record once, the bad ones in their places, in sequence order.
    let ids: Vec<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        33,
        "each record once"
    );
    let mut by_seq = rows.clone();
    by_seq.sort_by_key(Row::seq_u128);
    for (after, bytes) in &bad {
        let q = by_seq
            .iter()
            .position(|r| r.event_id == format!("bad-{after}"))
            .expect("the bad record is archived");
        let row = &by_seq[q];
        assert_eq!(row.event_name, "QUARANTINED");
        assert_eq!(
            row.quarantined_record.as_deref(),
            Some(&bytes[..]),
            "byte for byte"
        );
        assert!(row
            .quarantine_reason
            .as_ref()
            .is_some_and(|r| !r.is_empty()));
        assert!(row.new_image.is_none());
        assert!(
            q > 0 && by_seq[q - 1].event_name != "QUARANTINED",
            "in its place"
        );
    }
    assert_eq!(
        metric_total(&metrics, "archiver_records_quarantined_total"),
        3.0,
        "{metrics}"
    );
    assert!(worker.log_text().contains("QUARANTINED"));

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
    assert_eq!(
        code, 0,
        "quarantined records are listed, not problems:\n{out}\n{err}"
    );
    assert_eq!(out.matches("quarantined ").count(), 3, "{out}");
}
