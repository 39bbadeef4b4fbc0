//! A hostile corpus goes through DynamoDB Local's stream into the archive, and every image read
//! back with a Parquet reader equals, byte for byte, the DynamoDB JSON of what DynamoDB returns.

use crate::support::*;
use aws_sdk_dynamodb::types::{AttributeValue as A, StreamViewType};
use dynamo_archiver::encode::ddb_json::{decode_item, encode_item};
use std::time::Duration;
#[tokio::test(flavor = "multi_thread")]
async fn hostile_corpus_survives_byte_for_byte() {
    let stack = Stack::start().await;
    stack
        .create_table("hostile", "id", Some(StreamViewType::NewAndOldImages))
        .await;
    let items = corpus();
    for it in &items {
        stack
            .dynamodb
            .put_item()
            .table_name("hostile")
            .set_item(Some(it.clone()))
            .send()
            .await
            .unwrap();
    }
    let archive = stack.dir.path().join("archive");
    let spool = stack.dir.path().join("spool");
    let mut archiver = Archiver::start(
        &stack,
        &run_args(
            "hostile",
            archive.to_str().unwrap(),
            spool.to_str().unwrap(),
        ),
    );
    let rows = wait_for_rows(&archive, items.len(), Duration::from_secs(90)).await;
    archiver.stop();
    assert!(
        archiver
            .log_text()
            .contains("repairing typeless empty maps"),
        "DynamoDB Local's typeless empty maps went through the repair:\n{}",
        archiver.log_text()
    );
    assert_eq!(rows.len(), items.len(), "one INSERT per item, no more");

    for it in &items {
        let id = match &it["id"] {
            A::N(n) => n.clone(),
            _ => unreachable!(),
        };
        let got = stack
            .dynamodb
            .get_item()
            .table_name("hostile")
            .key("id", A::N(id.clone()))
            .send()
            .await
            .unwrap()
            .item
            .unwrap();
        let expected = encode_item(&got).unwrap();
        let keys = format!(r#"{{"id":{{"N":"{id}"}}}}"#);
        let row = rows
            .iter()
            .find(|r| r.keys == keys)
            .unwrap_or_else(|| panic!("no row for {keys}"));
        assert_eq!(row.event_name, "INSERT");
        let image = row.new_image.as_deref().unwrap();
        assert_eq!(
            image, expected,
            "item {id}: archived bytes equal DynamoDB's item"
        );
        // Independently of our encoder: the archived JSON decodes to exactly what GetItem gave.
        assert_eq!(
            decode_item(image).unwrap(),
            got,
            "item {id} decodes to GetItem's item"
        );
        assert_eq!(row.old_image, None);
    }
    // Spot checks on the literal text, for a reader of this test.
    let r1 = rows.iter().find(|r| r.keys.contains(r#""N":"1""#)).unwrap();
    assert!(r1
        .new_image
        .as_ref()
        .unwrap()
        .contains(r#""big":{"N":"12345678901234567890123456789012345678"}"#));
    let r2 = rows.iter().find(|r| r.keys.contains(r#""N":"2""#)).unwrap();
    let v: serde_json::Value = serde_json::from_str(r2.new_image.as_ref().unwrap()).unwrap();
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v["bytes"]["B"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes, (0u8..=255).collect::<Vec<u8>>());
}
