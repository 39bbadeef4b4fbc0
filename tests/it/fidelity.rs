//! A hostile corpus goes through DynamoDB Local's stream into the archive, and every image read
//! back with a Parquet reader equals, byte for byte, the DynamoDB JSON of what DynamoDB returns.

use crate::support::*;
use aws_sdk_dynamodb::types::{AttributeValue as A, StreamViewType};
use aws_smithy_types::Blob;
use dynamo_archiver::encode::ddb_json::{decode_item, encode_item};
use std::collections::HashMap;
use std::time::Duration;

fn nested(depth: usize) -> A {
    let mut v = A::S("bottom".into());
    for i in 0..depth {
        v = if i % 2 == 0 {
            A::M(HashMap::from([(format!("level{i}"), v)]))
        } else {
            A::L(vec![v, A::N(i.to_string())])
        };
    }
    v
}

pub(crate) fn corpus() -> Vec<HashMap<String, A>> {
    let item = |id: i64, attrs: Vec<(&str, A)>| {
        let mut m: HashMap<String, A> = attrs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        m.insert("id".into(), A::N(id.to_string()));
        m
    };
    vec![
        item(
            1,
            vec![
                ("big", A::N("12345678901234567890123456789012345678".into())),
                (
                    "neg",
                    A::N("-98765432109876543210987654321098765432".into()),
                ),
                ("tiny", A::N("1E-130".into())),
                (
                    "huge",
                    A::N("9.9999999999999999999999999999999999999E+125".into()),
                ),
                (
                    "frac",
                    A::N("0.1000000000000000000000000000000000001".into()),
                ),
            ],
        ),
        item(
            2,
            vec![("bytes", A::B(Blob::new((0u8..=255).collect::<Vec<u8>>())))],
        ),
        item(
            3,
            vec![
                (
                    "ss",
                    A::Ss(vec!["b".into(), "a".into(), "".to_owned() + "z"]),
                ),
                (
                    "ns",
                    A::Ns(vec!["1".into(), "-2.5".into(), "1E+100".into()]),
                ),
                (
                    "bs",
                    A::Bs(vec![Blob::new(vec![0u8]), Blob::new(vec![255u8, 1])]),
                ),
            ],
        ),
        item(4, vec![("deep", nested(30))]),
        item(
            5,
            vec![
                ("empty", A::S(String::new())),
                ("emptyb", A::B(Blob::new(Vec::<u8>::new()))),
                ("emptyl", A::L(vec![])),
                ("null", A::Null(true)),
                ("t", A::Bool(true)),
                ("f", A::Bool(false)),
            ],
        ),
        item(
            6,
            vec![
                ("emoji", A::S("😀👩‍👩‍👧‍👦🏳️‍🌈".into())),
                ("rtl", A::S("שלום عليكم \u{202e}abc".into())),
                ("combining", A::S("e\u{301}a\u{308}\u{20dd}".into())),
                ("controls", A::S("tab\there\nnew\"quote\\back\u{1}".into())),
                ("ключ ü", A::S("non-ASCII attribute name".into())),
            ],
        ),
        // Empty maps: DynamoDB Local sends them typeless in stream images (see stream::repair).
        item(
            8,
            vec![
                ("emptymap", A::M(HashMap::new())),
                (
                    "nested",
                    A::M(HashMap::from([("inner".to_owned(), A::M(HashMap::new()))])),
                ),
                (
                    "inlist",
                    A::L(vec![A::M(HashMap::new()), A::S("after".into())]),
                ),
            ],
        ),
        // Near the 400 KB item limit.
        item(7, vec![("blob", A::S("x".repeat(399_000)))]),
    ]
}

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
