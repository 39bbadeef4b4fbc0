//! Thin typed wrappers around the DynamoDB and DynamoDB Streams calls the reader makes, with
//! errors a caller can branch on: an expired iterator, trimmed data, a vanished shard, throttling
//! and an unparseable response each need a different answer.

use crate::encode::record::{from_stream_record, ChangeRecord, RecordError};
use crate::encode::stream_json::{decode_get_records, DecodedPage, RowSource};
use crate::types::{SequenceNumber, ShardId, StreamArn, TableName};
use aws_sdk_dynamodbstreams::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextMut;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use std::sync::{Arc, Mutex};

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
        // A 2xx answer the SDK could not read as the operation's output (a body cut off in
        // transit): retried with the same iterator, which is still good.
        _ if status.is_some_and(|s| (200..300).contains(&s)) => StreamError::Unparseable(message),
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
    #[error(transparent)]
    Denied(#[from] crate::aws::Denied),
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
    use crate::dynamo::DynamoError;
    let desc = crate::dynamo::describe(ddb, table)
        .await
        .map_err(|e| match e {
            DynamoError::NoTable(_) => TableError::NotFound(table.clone()),
            DynamoError::AccessDenied { message, .. } => TableError::Denied(crate::aws::Denied {
                action: "dynamodb:DescribeTable".into(),
                resource: format!("table {table}"),
                message,
            }),
            other => TableError::Api {
                table: table.clone(),
                message: other.to_string(),
            },
        })?;
    match desc.stream {
        Some(crate::dynamo::StreamDescription {
            arn: Some(arn),
            view_type,
        }) => Ok(TableStream {
            table: table.clone(),
            arn: StreamArn::new(arn),
            view_type,
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
    /// The shard's first record (DynamoDB Streams: "the first sequence number for the stream
    /// records contained within a shard").
    pub starting_sequence: Option<SequenceNumber>,
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
                starting_sequence: s
                    .sequence_number_range()
                    .and_then(|r| r.starting_sequence_number())
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

/// One GetRecords page, as archive rows.
#[derive(Debug)]
pub struct Page {
    pub rows: Vec<ChangeRecord>,
    /// A record that cannot become a row (a missing field, an unknown attribute type): `rows`
    /// holds the records before it, and nothing after it is read.
    pub invalid: Option<RecordError>,
    /// `None` once the shard is closed and read to its end.
    pub next_iterator: Option<String>,
    /// The body was declined by the direct decoder and read by the SDK's deserializer.
    pub decoded_by_sdk: bool,
}

/// Reads one page. The body is decoded straight into rows ([`stream_json`]) by an interceptor
/// that runs before the SDK's deserializer; a body it declines is left to the SDK, and its
/// records become rows the usual way ([`from_stream_record`]), with the SDK's errors.
pub async fn get_records(
    streams: &aws_sdk_dynamodbstreams::Client,
    iterator: &str,
    limit: i32,
    source: &RowSource<'_>,
) -> Result<Page, StreamError> {
    let decoded = Arc::new(Mutex::new(None));
    let out = streams
        .get_records()
        .shard_iterator(iterator)
        .limit(limit.clamp(1, MAX_RECORDS_PER_GET_RECORDS))
        .customize()
        .interceptor(DecodeRows {
            table: source.table.clone(),
            stream: source.stream.clone(),
            shard: source.shard.clone(),
            decoded: decoded.clone(),
        })
        .send()
        .await
        .map_err(classify)?;
    let direct = decoded
        .lock()
        .expect("the interceptor does not panic holding the lock")
        .take();
    if let Some(page) = direct {
        return Ok(Page {
            rows: page.rows,
            invalid: None,
            next_iterator: page.next_iterator,
            decoded_by_sdk: false,
        });
    }
    let mut rows = Vec::with_capacity(out.records().len());
    let mut invalid = None;
    for record in out.records() {
        match from_stream_record(record, source.table, source.stream, source.shard) {
            Ok(row) => rows.push(row),
            Err(e) => {
                invalid = Some(e);
                break;
            }
        }
    }
    Ok(Page {
        rows,
        invalid,
        next_iterator: out.next_shard_iterator().map(str::to_owned),
        decoded_by_sdk: true,
    })
}

/// Decodes a successful GetRecords body into rows before the SDK reads it, and then hands the
/// SDK an empty object in its place. Each attempt overwrites `decoded`, so after retries only
/// the answered attempt counts; a declined body leaves `None` and reaches the SDK unchanged.
#[derive(Debug)]
struct DecodeRows {
    table: TableName,
    stream: StreamArn,
    shard: ShardId,
    decoded: Arc<Mutex<Option<DecodedPage>>>,
}

impl Intercept for DecodeRows {
    fn name(&self) -> &'static str {
        "DecodeRows"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let response = context.response_mut();
        let source = RowSource {
            table: &self.table,
            stream: &self.stream,
            shard: &self.shard,
        };
        // Only a body already in memory: `stream::repair`'s client reads every GetRecords body
        // whole, on AWS too (the contract is written there); a streamed body goes to the SDK.
        let page = match response.body().bytes() {
            Some(body) if response.status().is_success() => {
                match decode_get_records(body, &source) {
                    Ok(page) => Some(page),
                    Err(declined) => {
                        tracing::debug!(shard = %self.shard, "{declined}");
                        None
                    }
                }
            }
            _ => None,
        };
        if page.is_some() {
            *response.body_mut() = SdkBody::from("{}");
        }
        *self
            .decoded
            .lock()
            .expect("the reader does not panic holding the lock") = page;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::stream_json::tests::{names, sdk_rows};
    use crate::stream::canned::CannedClient;

    fn body(keys: &[&str]) -> String {
        let records: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                format!(
                    r#"{{"eventID":"e{i}","eventName":"INSERT","dynamodb":{{"ApproximateCreationDateTime":1763769600.5,"Keys":{{"id":{k}}},"SequenceNumber":"{}","SizeBytes":9}}}}"#,
                    100 + i
                )
            })
            .collect();
        format!(
            r#"{{"Records":[{}],"NextShardIterator":"it-2"}}"#,
            records.join(",")
        )
    }

    async fn read(client: &CannedClient) -> Result<Page, StreamError> {
        let (table, stream, shard) = names();
        let source = RowSource {
            table: &table,
            stream: &stream,
            shard: &shard,
        };
        get_records(&client.streams_client(), "it-1", 1000, &source).await
    }

    #[tokio::test]
    async fn a_page_is_decoded_directly_into_the_rows_the_sdk_would_make() {
        let text = body(&[r#"{"N":"1"}"#, r#"{"S":"two"}"#]);
        let page = read(&CannedClient::always(text.clone())).await.unwrap();
        assert!(!page.decoded_by_sdk);
        assert!(page.invalid.is_none());
        assert_eq!(page.next_iterator.as_deref(), Some("it-2"));
        // The SDK path runs its own runtime: off this one's thread.
        let sdk = tokio::task::spawn_blocking(move || sdk_rows(&text)).await;
        assert_eq!(page.rows, sdk.unwrap().unwrap());
        assert_eq!(page.rows[1].keys, r#"{"id":{"S":"two"}}"#);
    }

    #[tokio::test]
    async fn a_record_that_cannot_become_a_row_is_quarantined_and_the_page_goes_on() {
        let text = body(&[r#"{"N":"1"}"#, r#"{"FUTURE":"x"}"#, r#"{"N":"3"}"#]);
        let page = read(&CannedClient::always(text)).await.unwrap();
        assert!(!page.decoded_by_sdk);
        assert!(page.invalid.is_none());
        let names: Vec<&str> = page.rows.iter().map(|r| r.event_name.as_str()).collect();
        assert_eq!(names, ["INSERT", "QUARANTINED", "INSERT"]);
        assert_eq!(page.next_iterator.as_deref(), Some("it-2"));
    }

    #[tokio::test]
    async fn a_record_with_no_place_in_the_shard_is_read_by_the_sdk_and_stops_there() {
        let text = body(&[r#"{"N":"1"}"#, r#"{"FUTURE":"x"}"#, r#"{"N":"3"}"#])
            .replace(r#","SequenceNumber":"101""#, "");
        let page = read(&CannedClient::always(text)).await.unwrap();
        assert!(page.decoded_by_sdk);
        assert_eq!(page.rows.len(), 1, "the record before the bad one");
        assert!(matches!(
            page.invalid,
            Some(RecordError::Missing { ref event_id, .. }) if event_id == "e1"
        ));
        assert_eq!(page.next_iterator.as_deref(), Some("it-2"));
    }

    #[tokio::test]
    async fn after_a_failed_attempt_the_answered_one_is_decoded() {
        let error = r#"{"__type":"com.amazonaws#InternalServerError","message":"boom"}"#;
        let client = CannedClient::new(vec![
            (500, error.into()),
            (200, body(&[r#"{"N":"7"}"#]).into()),
        ]);
        let page = read(&client).await.unwrap();
        assert!(!page.decoded_by_sdk);
        assert_eq!(page.rows.len(), 1);
        assert_eq!(page.rows[0].keys, r#"{"id":{"N":"7"}}"#);
    }

    #[tokio::test]
    async fn a_cut_off_body_is_still_unparseable() {
        let text = body(&[r#"{"N":"1"}"#]);
        let cut = text[..text.len() / 2].to_owned();
        let err = read(&CannedClient::always(cut)).await.unwrap_err();
        assert_eq!(err.kind(), "unparseable_response", "{err}");
    }
}
