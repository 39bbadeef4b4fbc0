//! The DynamoDB calls about a table itself (not its items) that several commands make: one
//! DescribeTable wrapper ([`describe`]) giving what the archiver uses of the answer, the wait
//! until a table is ACTIVE ([`wait_active`]), and one classification of DynamoDB errors
//! ([`classify`]) into what may pass (throttling, 5xx, timeouts) and what an operator must fix.
//!
//! Users: the worker (each archived table's stream), `backfill` (key, size, stream view type),
//! the lease table (exists? ACTIVE?), `import-export` (key names) and `restore` (the target's
//! key, creating it).

use crate::backoff::Backoff;
use crate::types::TableName;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{KeyType, TableStatus};
use std::time::Duration;

/// A DynamoDB call that failed, by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum DynamoError {
    #[error(
        "table `{0}` does not exist (check the name, the region and AWS_ENDPOINT_URL_DYNAMODB)"
    )]
    NoTable(TableName),
    #[error(
        "access denied: dynamodb:{operation} on table `{table}`; grant it to the role ({message})"
    )]
    AccessDenied {
        operation: &'static str,
        table: TableName,
        message: String,
    },
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

impl DynamoError {
    /// Throttling and transient failures: the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Throttled { .. } | Self::Transient { .. })
    }
}

/// Sorts an SDK error of `operation` on `table` into a [`DynamoError`].
pub fn classify<E>(
    operation: &'static str,
    table: &TableName,
    e: SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> DynamoError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let message = DisplayErrorContext(&e).to_string();
    let table = table.clone();
    if matches!(
        e,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
    ) {
        return DynamoError::Transient { table, message };
    }
    let status = match &e {
        SdkError::ServiceError(s) => Some(s.raw().status().as_u16()),
        _ => None,
    };
    if crate::aws::is_denied(&e) || e.code() == Some("UnrecognizedClientException") {
        return DynamoError::AccessDenied {
            operation,
            table,
            message,
        };
    }
    match e.code() {
        Some("ResourceNotFoundException") => DynamoError::NoTable(table),
        Some(
            "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "LimitExceededException",
        ) => DynamoError::Throttled { table, message },
        _ if status.is_some_and(|s| s >= 500) => DynamoError::Transient { table, message },
        _ => DynamoError::Other {
            operation,
            table,
            message,
        },
    }
}

/// What the archiver uses of a DescribeTable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDescription {
    pub name: TableName,
    /// `None` when the answer names a status this SDK does not know.
    pub status: Option<TableStatus>,
    /// The key attributes, partition key first, each with its type (`S`, `N` or `B`).
    pub key: Vec<(String, String)>,
    /// DynamoDB updates these about every six hours: estimates, for progress only.
    pub item_count: u64,
    pub size_bytes: u64,
    /// The current stream, when one is enabled.
    pub stream: Option<StreamDescription>,
}

/// A table's enabled stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDescription {
    /// `None` only in an answer that is still settling (just enabled).
    pub arn: Option<String>,
    /// `NEW_AND_OLD_IMAGES`, `NEW_IMAGE`, `OLD_IMAGE` or `KEYS_ONLY`.
    pub view_type: String,
}

impl TableDescription {
    pub fn is_active(&self) -> bool {
        self.status == Some(TableStatus::Active)
    }

    /// Readable and writable: ACTIVE, or UPDATING (capacity or index changes keep it usable).
    pub fn is_usable(&self) -> bool {
        self.is_active() || self.status == Some(TableStatus::Updating)
    }

    /// The key attribute names, partition key first.
    pub fn key_names(&self) -> Vec<String> {
        self.key.iter().map(|(n, _)| n.clone()).collect()
    }
}

/// DescribeTable of `table`. A table that does not exist is [`DynamoError::NoTable`].
pub async fn describe(
    client: &aws_sdk_dynamodb::Client,
    table: &TableName,
) -> Result<TableDescription, DynamoError> {
    let out = client
        .describe_table()
        .table_name(table.as_str())
        .send()
        .await
        .map_err(|e| classify("DescribeTable", table, e))?;
    let t = out
        .table()
        .ok_or_else(|| DynamoError::NoTable(table.clone()))?;
    let mut schema: Vec<_> = t.key_schema().iter().collect();
    // HASH before RANGE, whatever order the answer lists them in.
    schema.sort_by_key(|k| k.key_type() != &KeyType::Hash);
    let key = schema
        .iter()
        .map(|k| {
            let name = k.attribute_name().to_owned();
            let ty = t
                .attribute_definitions()
                .iter()
                .find(|d| d.attribute_name() == name)
                .map(|d| d.attribute_type().as_str().to_owned())
                .unwrap_or_default();
            (name, ty)
        })
        .collect();
    let stream = t
        .stream_specification()
        .filter(|s| s.stream_enabled())
        .map(|s| StreamDescription {
            arn: t.latest_stream_arn().map(str::to_owned),
            view_type: s
                .stream_view_type()
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default(),
        });
    Ok(TableDescription {
        name: table.clone(),
        status: t.table_status().cloned(),
        key,
        item_count: t.item_count().unwrap_or(0).max(0) as u64,
        size_bytes: t.table_size_bytes().unwrap_or(0).max(0) as u64,
        stream,
    })
}

/// Polls DescribeTable until `table` is ACTIVE (`Ok(true)`) or `deadline` has passed
/// (`Ok(false)`). A failed poll that may pass is polled again; one that may not is returned.
pub async fn wait_active(
    client: &aws_sdk_dynamodb::Client,
    table: &TableName,
    deadline: Duration,
) -> Result<bool, DynamoError> {
    let until = tokio::time::Instant::now() + deadline;
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        match describe(client, table).await {
            Ok(d) if d.is_active() => return Ok(true),
            // Just created: the answer may not name it yet.
            Ok(_) | Err(DynamoError::NoTable(_)) => {}
            Err(e) if e.is_retryable() => {}
            Err(e) => return Err(e),
        }
        if tokio::time::Instant::now() > until {
            return Ok(false);
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}
