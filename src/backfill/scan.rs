//! The typed Scan call of the backfill (and of `restore`'s read of its target), with errors the
//! caller can branch on ([`DynamoError`]; DescribeTable is [`crate::dynamo::describe`]).

use crate::dynamo::{classify, DynamoError};
use crate::types::TableName;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use std::collections::HashMap;

/// An item or a key, as the DynamoDB SDK holds it.
pub type Item = HashMap<String, AttributeValue>;

/// One Scan page of one segment.
#[derive(Debug, Default)]
pub struct Page {
    pub items: Vec<Item>,
    /// Where the segment continues; `None` when the segment is finished.
    pub last_key: Option<Item>,
    /// Read capacity units the page consumed (ConsumedCapacity.CapacityUnits).
    pub consumed: f64,
}

/// Which part of the table one Scan call reads.
#[derive(Debug, Clone, Copy)]
pub struct Segment {
    pub index: u32,
    pub total: u32,
}

pub async fn scan_page(
    client: &aws_sdk_dynamodb::Client,
    table: &TableName,
    segment: Segment,
    start: Option<Item>,
    consistent_read: bool,
    limit: Option<i32>,
) -> Result<Page, DynamoError> {
    let out = client
        .scan()
        .table_name(table.as_str())
        .segment(segment.index as i32)
        .total_segments(segment.total as i32)
        .consistent_read(consistent_read)
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .set_exclusive_start_key(start)
        .set_limit(limit)
        .send()
        .await
        .map_err(|e| classify("Scan", table, e))?;
    let consumed = out
        .consumed_capacity()
        .and_then(|c| c.capacity_units())
        .unwrap_or(0.0);
    Ok(Page {
        last_key: out.last_evaluated_key().filter(|k| !k.is_empty()).cloned(),
        items: out.items.unwrap_or_default(),
        consumed,
    })
}
