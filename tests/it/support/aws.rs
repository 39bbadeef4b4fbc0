//! Talking to the stack as a test: SDK clients, attribute values, writing items in batches and
//! reading a table back.

use super::*;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

pub(crate) async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await
}

pub fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// Writes `items` with BatchWriteItem, `parallel` batches at a time.
pub async fn put_items(
    stack: &Stack,
    table: &str,
    items: Vec<HashMap<String, AttributeValue>>,
    parallel: usize,
) {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut tasks = Vec::new();
    for chunk in items.chunks(25) {
        let requests: Vec<WriteRequest> = chunk
            .iter()
            .map(|item| {
                WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(item.clone()))
                            .build()
                            .unwrap(),
                    )
                    .build()
            })
            .collect();
        let ddb = stack.dynamodb.clone();
        let table = table.to_owned();
        let permit = sem.clone().acquire_owned().await.unwrap();
        tasks.push(tokio::spawn(async move {
            let mut pending = requests;
            while !pending.is_empty() {
                let out = ddb
                    .batch_write_item()
                    .request_items(&table, pending)
                    .send()
                    .await
                    .unwrap();
                pending = out
                    .unprocessed_items()
                    .and_then(|m| m.get(&table))
                    .cloned()
                    .unwrap_or_default();
            }
            drop(permit);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Every item of a table (a plain Scan), keyed by its canonical DynamoDB JSON key.
pub async fn scan_table(
    stack: &Stack,
    table: &str,
    key_names: &[&str],
) -> HashMap<String, HashMap<String, AttributeValue>> {
    use dynamo_archiver::encode::ddb_json::encode_item;
    let mut out = HashMap::new();
    let mut pages = stack
        .dynamodb
        .scan()
        .table_name(table)
        .consistent_read(true)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for item in page.unwrap().items() {
            let keys: HashMap<String, AttributeValue> = key_names
                .iter()
                .map(|k| (k.to_string(), item[*k].clone()))
                .collect();
            out.insert(encode_item(&keys).unwrap(), item.clone());
        }
    }
    out
}

/// An S3 client (test credentials, path-style) for another endpoint, e.g. a fault proxy.
pub async fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let config = sdk_config().await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .endpoint_url(endpoint)
            .force_path_style(true)
            .build(),
    )
}
