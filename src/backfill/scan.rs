//! Typed DescribeTable and Scan calls for the backfill, with errors the caller can branch on.

use crate::types::TableName;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity, TableStatus};
use std::collections::HashMap;

/// An item or a key, as the DynamoDB SDK holds it.
pub type Item = HashMap<String, AttributeValue>;

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(
        "table `{0}` does not exist (check the name, the region and AWS_ENDPOINT_URL_DYNAMODB)"
    )]
    NoTable(TableName),
    #[error("access denied on table `{table}`: grant the role dynamodb:DescribeTable and dynamodb:Scan on it ({message})")]
    AccessDenied { table: TableName, message: String },
    #[error("throttled on table `{table}`: {message}")]
    Throttled { table: TableName, message: String },
    #[error("transient failure on table `{table}` (5xx, timeout or connection): {message}")]
    Transient { table: TableName, message: String },
    #[error("{operation} on table `{table}` failed: {message}")]
    Other {
        operation: &'static str,
        table: TableName,
        message: String,
    },
}

impl ScanError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Throttled { .. } | Self::Transient { .. })
    }
}

pub(crate) fn classify<E>(
    operation: &'static str,
    table: &TableName,
    e: SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> ScanError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let message = DisplayErrorContext(&e).to_string();
    let table = table.clone();
    if matches!(
        e,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
    ) {
        return ScanError::Transient { table, message };
    }
    let status = match &e {
        SdkError::ServiceError(s) => Some(s.raw().status().as_u16()),
        _ => None,
    };
    match e.code() {
        Some("ResourceNotFoundException") => ScanError::NoTable(table),
        Some("AccessDeniedException" | "UnrecognizedClientException") => {
            ScanError::AccessDenied { table, message }
        }
        Some(
            "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "LimitExceededException",
        ) => ScanError::Throttled { table, message },
        _ if status.is_some_and(|s| s >= 500) => ScanError::Transient { table, message },
        _ => ScanError::Other {
            operation,
            table,
            message,
        },
    }
}

/// What the backfill needs to know of a table.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub name: TableName,
    /// Partition key, then sort key if any.
    pub key_names: Vec<String>,
    /// DynamoDB updates these about every six hours: estimates, for progress only.
    pub item_count: u64,
    pub size_bytes: u64,
    /// The stream's view type when a stream is enabled.
    pub stream_view_type: Option<String>,
    pub active: bool,
}

pub async fn describe(
    client: &aws_sdk_dynamodb::Client,
    table: &TableName,
) -> Result<TableInfo, ScanError> {
    let out = client
        .describe_table()
        .table_name(table.as_str())
        .send()
        .await
        .map_err(|e| classify("DescribeTable", table, e))?;
    let t = out.table().ok_or_else(|| ScanError::Other {
        operation: "DescribeTable",
        table: table.clone(),
        message: "the answer holds no table description".into(),
    })?;
    let mut keys: Vec<_> = t.key_schema().to_vec();
    // HASH before RANGE, whatever order the answer lists them in.
    keys.sort_by_key(|k| k.key_type().as_str() != "HASH");
    let stream_view_type = t
        .stream_specification()
        .filter(|s| s.stream_enabled())
        .and_then(|s| s.stream_view_type())
        .map(|v| v.as_str().to_owned());
    Ok(TableInfo {
        name: table.clone(),
        key_names: keys.iter().map(|k| k.attribute_name().to_owned()).collect(),
        item_count: t.item_count().unwrap_or(0).max(0) as u64,
        size_bytes: t.table_size_bytes().unwrap_or(0).max(0) as u64,
        stream_view_type,
        active: t.table_status() == Some(&TableStatus::Active)
            || t.table_status() == Some(&TableStatus::Updating),
    })
}

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
) -> Result<Page, ScanError> {
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
