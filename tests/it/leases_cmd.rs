//! `dynamo-archiver leases` shows what the worker wrote: a parent read to its end, its child with
//! its parent and checkpoint, released on SIGTERM.

use crate::support::*;
use aws_sdk_dynamodb::types::StreamViewType;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn leases_command_shows_lineage_checkpoints_and_release() {
    let stack = Stack::start().await;
    let (code, _, err) = Archiver::output(&stack, &["leases", "--lease-table", "no-such-leases"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`no-such-leases` does not exist"), "{err}");

    stack
        .create_table("books", "id", Some(StreamViewType::NewAndOldImages))
        .await;
    let put = |i: u64| {
        let ddb = stack.dynamodb.clone();
        async move {
            ddb.put_item()
                .table_name("books")
                .item("id", n(i))
                .send()
                .await
                .unwrap();
        }
    };
    let (mut a, archive) = Archiver::start_local(&stack, "books");
    for i in 0..5 {
        put(i).await;
    }
    wait_for_rows(&archive, 5, Duration::from_secs(60)).await;
    stack.control("rollover");
    for i in 5..10 {
        put(i).await;
    }
    wait_for_rows(&archive, 10, Duration::from_secs(60)).await;
    a.stop();

    let (code, out, err) = Archiver::output(&stack, &["leases", "--json"]);
    assert_eq!(code, 0, "{err}");
    let leases: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(leases.len(), 2, "{out}");
    let parent = leases
        .iter()
        .find(|l| l["parent_shard_ids"].as_array().unwrap().is_empty())
        .unwrap();
    let child = leases
        .iter()
        .find(|l| !l["parent_shard_ids"].as_array().unwrap().is_empty())
        .unwrap();
    assert_eq!(parent["state"], "ended", "{out}");
    assert_eq!(parent["checkpoint"], "SHARD_END");
    assert_eq!(child["parent_shard_ids"][0], parent["shard_id"]);
    assert_eq!(child["state"], "free", "released on SIGTERM: {out}");
    assert!(
        child["checkpoint"]
            .as_str()
            .unwrap()
            .chars()
            .all(|c| c.is_ascii_digit()),
        "{out}"
    );
    assert_eq!(child["table"], "books");

    let (code, text, _) = Archiver::output(&stack, &["leases", "--table", "books"]);
    assert_eq!(code, 0);
    assert!(text.starts_with("TABLE"), "{text}");
    assert!(
        text.contains("SHARD_END") && text.contains("ended") && text.contains("free"),
        "{text}"
    );
    let (_, other, _) = Archiver::output(&stack, &["leases", "--table", "other"]);
    assert_eq!(
        other.lines().count(),
        1,
        "only the header for a table with no leases: {other}"
    );
}
