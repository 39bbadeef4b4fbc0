//! Thin typed wrappers around the DynamoDB and DynamoDB Streams calls the reader makes, with
//! errors a caller can branch on: an expired iterator, trimmed data, a vanished shard, throttling
//! and an unparseable response each need a different answer.

use crate::types::{SequenceNumber, ShardId, StreamArn, TableName};
use aws_sdk_dynamodbstreams::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};

/// GetRecords returns at most 1,000 records (and 1 MB) per call:
/// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_GetRecords.html>
pub const MAX_RECORDS_PER_GET_RECORDS: i32 = 1000;
/// DescribeStream returns at most 100 shards per page:
/// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_DescribeStream.html>
pub const MAX_SHARDS_PER_DESCRIBE_STREAM: i32 = 100;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("shard iterator expired")]
    ExpiredIterator,
    #[error("records were trimmed from the stream before they were read: {0}")]
    TrimmedData(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("throttled: {0}")]
    Throttled(String),
    #[error("transient failure (5xx, timeout or connection): {0}")]
    Transient(String),
    #[error("response could not be parsed: {0}")]
    Unparseable(String),
    #[error("{0}")]
    Other(String),
}

impl StreamError {
    /// A short stable name for metrics (`errors_total{kind=...}`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ExpiredIterator => "expired_iterator",
            Self::TrimmedData(_) => "trimmed_data",
            Self::NotFound(_) => "not_found",
            Self::Throttled(_) => "throttled",
            Self::Transient(_) => "transient",
            Self::Unparseable(_) => "unparseable_response",
            Self::Other(_) => "other",
        }
    }
}

fn classify<E>(e: SdkError<E, aws_smithy_runtime_api::http::Response>) -> StreamError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let message = DisplayErrorContext(&e).to_string();
    match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            return StreamError::Transient(message)
        }
        SdkError::ResponseError(r) => {
            // A 2xx body the SDK could not read (DynamoDB Local's typeless empty maps, or a
            // truncated body): loud and counted by the caller, never skipped.
            return if r.raw().status().is_success() {
                StreamError::Unparseable(message)
            } else {
                StreamError::Transient(message)
            };
        }
        _ => {}
    }
    let status = match &e {
        SdkError::ServiceError(s) => Some(s.raw().status().as_u16()),
        _ => None,
    };
    match e.code() {
        Some("ExpiredIteratorException") => StreamError::ExpiredIterator,
        Some("TrimmedDataAccessException") => StreamError::TrimmedData(message),
        Some("ResourceNotFoundException") => StreamError::NotFound(message),
        Some(
            "LimitExceededException"
            | "ThrottlingException"
            | "ProvisionedThroughputExceededException"
            | "RequestLimitExceeded",
        ) => StreamError::Throttled(message),
        Some("InternalServerError" | "ServiceUnavailable" | "InternalFailure") => {
            StreamError::Transient(message)
        }
        _ if status.is_some_and(|s| s >= 500) => StreamError::Transient(message),
        _ => StreamError::Other(message),
    }
}

/// A table's current stream.
#[derive(Debug, Clone)]
pub struct TableStream {
    pub table: TableName,
    pub arn: StreamArn,
    pub view_type: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error(
        "table `{0}` does not exist (check the name, the region and AWS_ENDPOINT_URL_DYNAMODB)"
    )]
    NotFound(TableName),
    #[error("table `{0}` has no stream enabled; enable it with StreamViewType NEW_AND_OLD_IMAGES (aws dynamodb update-table --table-name {0} --stream-specification StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES)")]
    NoStream(TableName),
    #[error("DescribeTable `{table}` failed: {message}")]
    Api { table: TableName, message: String },
}

impl TableError {
    /// A problem an operator must fix, rather than one that may pass.
    pub fn is_config(&self) -> bool {
        !matches!(self, Self::Api { .. })
    }
}

/// Resolves a table's current stream (DescribeTable).
pub async fn table_stream(
    ddb: &aws_sdk_dynamodb::Client,
    table: &TableName,
) -> Result<TableStream, TableError> {
    let out = ddb
        .describe_table()
        .table_name(table.as_str())
        .send()
        .await
        .map_err(|e| {
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception())
            {
                TableError::NotFound(table.clone())
            } else {
                TableError::Api {
                    table: table.clone(),
                    message: aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string(),
                }
            }
        })?;
    let desc = out
        .table()
        .ok_or_else(|| TableError::NotFound(table.clone()))?;
    let spec = desc.stream_specification();
    let enabled = spec.is_some_and(|s| s.stream_enabled());
    match (enabled, desc.latest_stream_arn()) {
        (true, Some(arn)) => Ok(TableStream {
            table: table.clone(),
            arn: StreamArn::new(arn),
            view_type: spec
                .and_then(|s| s.stream_view_type())
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default(),
        }),
        _ => Err(TableError::NoStream(table.clone())),
    }
}

/// One shard as DescribeStream describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardDesc {
    pub id: ShardId,
    pub parent: Option<ShardId>,
    /// Present once the shard is closed.
    pub ending_sequence: Option<SequenceNumber>,
}

/// Every shard of a stream (DescribeStream, all pages).
pub async fn list_shards(
    streams: &aws_sdk_dynamodbstreams::Client,
    arn: &StreamArn,
) -> Result<Vec<ShardDesc>, StreamError> {
    let mut out = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let page = streams
            .describe_stream()
            .stream_arn(arn.as_str())
            .limit(MAX_SHARDS_PER_DESCRIBE_STREAM)
            .set_exclusive_start_shard_id(start.take())
            .send()
            .await
            .map_err(classify)?;
        let Some(desc) = page.stream_description() else {
            break;
        };
        for s in desc.shards() {
            let Some(id) = s.shard_id() else { continue };
            out.push(ShardDesc {
                id: ShardId::new(id),
                parent: s.parent_shard_id().map(ShardId::new),
                ending_sequence: s
                    .sequence_number_range()
                    .and_then(|r| r.ending_sequence_number())
                    .and_then(|n| SequenceNumber::parse(n).ok()),
            });
        }
        match desc.last_evaluated_shard_id() {
            Some(last) => start = Some(last.to_owned()),
            None => break,
        }
    }
    Ok(out)
}

/// Where to open a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    TrimHorizon,
    Latest,
    After(SequenceNumber),
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TrimHorizon => f.write_str("TRIM_HORIZON"),
            Self::Latest => f.write_str("LATEST"),
            Self::After(s) => write!(f, "AFTER_SEQUENCE_NUMBER:{s}"),
        }
    }
}

pub async fn shard_iterator(
    streams: &aws_sdk_dynamodbstreams::Client,
    arn: &StreamArn,
    shard: &ShardId,
    position: &Position,
) -> Result<String, StreamError> {
    let req = streams
        .get_shard_iterator()
        .stream_arn(arn.as_str())
        .shard_id(shard.as_str());
    let req = match position {
        Position::TrimHorizon => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
        Position::Latest => req.shard_iterator_type(ShardIteratorType::Latest),
        Position::After(seq) => req
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .sequence_number(seq.as_str()),
    };
    let out = req.send().await.map_err(classify)?;
    out.shard_iterator()
        .map(str::to_owned)
        .ok_or_else(|| StreamError::NotFound(format!("no iterator returned for shard {shard}")))
}

/// One GetRecords page.
#[derive(Debug)]
pub struct Page {
    pub records: Vec<Record>,
    /// `None` once the shard is closed and read to its end.
    pub next_iterator: Option<String>,
}

pub async fn get_records(
    streams: &aws_sdk_dynamodbstreams::Client,
    iterator: &str,
    limit: i32,
) -> Result<Page, StreamError> {
    let out = streams
        .get_records()
        .shard_iterator(iterator)
        .limit(limit.clamp(1, MAX_RECORDS_PER_GET_RECORDS))
        .send()
        .await
        .map_err(classify)?;
    let next_iterator = out.next_shard_iterator().map(str::to_owned);
    Ok(Page {
        records: out.records.unwrap_or_default(),
        next_iterator,
    })
}
