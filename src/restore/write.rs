//! One batch of writes: BatchWriteItem, paced by `--max-wcu`, its unprocessed items sent again
//! and throttling retried, with backoff and jitter, until every write is processed or the restore
//! is stopped. A partial failure resends only what DynamoDB did not process.

use super::plan::Action;
use super::RestoreError;
use crate::backfill::pace::Pacer;
use crate::backoff::Backoff;
use crate::dynamo::{classify, DynamoError};
use crate::encode::ddb_json::decode_item;
use crate::types::TableName;
use aws_sdk_dynamodb::types::{DeleteRequest, PutRequest, ReturnConsumedCapacity, WriteRequest};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const RETRY_BASE: Duration = Duration::from_millis(50);
const RETRY_CAP: Duration = Duration::from_secs(20);

/// What every batch of one restore shares.
#[derive(Debug)]
pub struct WriteCtx {
    pub client: aws_sdk_dynamodb::Client,
    pub table: TableName,
    /// Key attribute names of the target, to match unprocessed requests back to writes.
    pub key_names: Vec<String>,
    pub pacer: Pacer,
    /// Stops resending; a call in flight is answered first, so the journal knows what it did.
    pub stop: CancellationToken,
}

/// One write ready to send: its digest (for the journal), the request and its estimated WCU.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub digest: u128,
    pub keys: String,
    pub request: WriteRequest,
    pub wcu: u64,
}

/// A write as a request. A delete is billed at the size of the item it removes.
pub fn prepare(action: &Action) -> Result<Prepared, String> {
    let (request, wcu) = match action {
        Action::Put { keys, item, .. } => {
            let item = decode_item(item).map_err(|e| format!("item {keys}: {e}"))?;
            let wcu = super::size::wcu(super::size::item_size(&item));
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| e.to_string())?;
            (WriteRequest::builder().put_request(put).build(), wcu)
        }
        Action::Delete { keys, live } => {
            let key = decode_item(keys).map_err(|e| format!("key {keys}: {e}"))?;
            let wcu = decode_item(live)
                .map(|i| super::size::wcu(super::size::item_size(&i)))
                .unwrap_or(1);
            let delete = DeleteRequest::builder()
                .set_key(Some(key))
                .build()
                .map_err(|e| e.to_string())?;
            (WriteRequest::builder().delete_request(delete).build(), wcu)
        }
    };
    Ok(Prepared {
        digest: action.digest(),
        keys: action.keys().to_owned(),
        request,
        wcu,
    })
}

/// What a batch did.
#[derive(Debug, Default)]
pub struct BatchResult {
    /// Digests of the writes DynamoDB processed.
    pub done: Vec<u128>,
    /// WCU consumed, as DynamoDB reported it (the estimate where it reported nothing).
    pub wcu: f64,
    /// BatchWriteItem calls made, and how many came back with unprocessed items or throttled.
    pub calls: u32,
    pub retries: u32,
}

fn request_keys(r: &WriteRequest, names: &[String]) -> Option<String> {
    match (r.put_request(), r.delete_request()) {
        (Some(p), _) => super::table::keys_of(p.item(), names),
        (_, Some(d)) => super::table::keys_of(d.key(), names),
        _ => None,
    }
}

/// Sends `batch` until every write is processed (or the restore stops: then the writes not yet
/// processed are simply not in `done`).
pub async fn write_batch(
    ctx: &WriteCtx,
    batch: Vec<Prepared>,
) -> Result<BatchResult, RestoreError> {
    let mut result = BatchResult::default();
    let mut pending = batch;
    let mut backoff = Backoff::new(RETRY_BASE, RETRY_CAP);
    while !pending.is_empty() {
        let estimate: f64 = pending.iter().map(|p| p.wcu as f64).sum();
        ctx.pacer.acquire(estimate).await;
        result.calls += 1;
        let answer = ctx
            .client
            .batch_write_item()
            .request_items(
                ctx.table.as_str(),
                pending.iter().map(|p| p.request.clone()).collect(),
            )
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match answer {
            Ok(out) => {
                let unprocessed: Vec<String> = out
                    .unprocessed_items()
                    .and_then(|u| u.get(ctx.table.as_str()))
                    .into_iter()
                    .flatten()
                    .filter_map(|r| request_keys(r, &ctx.key_names))
                    .collect();
                let (left, done): (Vec<Prepared>, Vec<Prepared>) = pending
                    .into_iter()
                    .partition(|p| unprocessed.contains(&p.keys));
                let done_wcu: f64 = done.iter().map(|p| p.wcu as f64).sum();
                let consumed = out
                    .consumed_capacity()
                    .iter()
                    .filter_map(|c| c.capacity_units())
                    .sum::<f64>();
                let consumed = if consumed > 0.0 { consumed } else { done_wcu };
                ctx.pacer.settle(estimate, consumed);
                result.wcu += consumed;
                result.done.extend(done.iter().map(|p| p.digest));
                pending = left;
                if !pending.is_empty() {
                    // DynamoDB processed part of the batch (throttling of a partition, or its
                    // own limits): the rest goes again after a pause, as the API guide asks.
                    result.retries += 1;
                    if ctx.stop.is_cancelled() {
                        break;
                    }
                    let delay = backoff.next_delay();
                    tracing::debug!(table = %ctx.table, left = pending.len(), "unprocessed items; again in {delay:?}");
                    tokio::time::sleep(delay).await;
                } else {
                    backoff.reset();
                }
            }
            Err(e) => {
                ctx.pacer.settle(estimate, 0.0);
                match classify("BatchWriteItem", &ctx.table, e) {
                    e if e.is_retryable() => {
                        result.retries += 1;
                        if ctx.stop.is_cancelled() {
                            break;
                        }
                        let delay = backoff.next_delay();
                        tracing::warn!(table = %ctx.table, "BatchWriteItem failed; retrying in {delay:?}: {e}");
                        tokio::time::sleep(delay).await;
                    }
                    DynamoError::NoTable(t) => return Err(RestoreError::NoTable(t)),
                    DynamoError::AccessDenied { message, .. } => {
                        return Err(RestoreError::Denied {
                            action: "dynamodb:BatchWriteItem".into(),
                            resource: ctx.table.to_string(),
                            message,
                        })
                    }
                    e => return Err(RestoreError::Dynamo(e)),
                }
            }
        }
    }
    Ok(result)
}
