//! One archive row (schema v1 of the product contract) and its making from a stream record.

use super::ddb_json::{encode_item, UnknownAttributeType};
use crate::types::{SequenceNumber, ShardId, StreamArn, TableName};
use aws_sdk_dynamodbstreams::types::Record;

/// `event_name` of rows made by a backfill.
pub const SNAPSHOT: &str = "SNAPSHOT";

/// `event_name` of a quarantined row: a stream record that could not become a row, kept
/// verbatim in its place (see [`Quarantine`]).
pub const QUARANTINED: &str = "QUARANTINED";

/// Why a stream record is archived verbatim instead of as a row, and its exact bytes: the record's
/// JSON as it stood in the GetRecords body (which need not be valid UTF-8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantine {
    pub reason: String,
    pub raw: Vec<u8>,
}

/// One row of the archive: the columns of schema v1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRecord {
    pub event_id: String,
    pub event_name: String,
    pub event_time_ms: i64,
    pub table_name: TableName,
    pub stream_arn: Option<StreamArn>,
    pub shard_id: Option<ShardId>,
    pub sequence_number: Option<SequenceNumber>,
    pub keys: String,
    pub new_image: Option<String>,
    pub old_image: Option<String>,
    pub size_bytes: Option<i64>,
    pub stream_view_type: Option<String>,
    pub user_identity: Option<String>,
    /// Set on a quarantined row only (`event_name` [`QUARANTINED`]); the columns
    /// `quarantine_reason` and `quarantined_record`.
    pub quarantine: Option<Box<Quarantine>>,
}

impl ChangeRecord {
    /// Approximate heap bytes this row holds: what the batcher counts against its budget.
    /// Capacities, not lengths: a string grown while rendering JSON holds up to twice its length.
    pub fn approx_bytes(&self) -> usize {
        self.event_id.capacity()
            + self.event_name.capacity()
            + self.keys.capacity()
            + self.new_image.as_ref().map_or(0, String::capacity)
            + self.old_image.as_ref().map_or(0, String::capacity)
            + self
                .sequence_number
                .as_ref()
                .map_or(0, |s| s.as_str().len())
            + self.user_identity.as_ref().map_or(0, String::capacity)
            + self
                .quarantine
                .as_ref()
                .map_or(0, |q| q.reason.capacity() + q.raw.capacity())
            + 64
    }
}

/// A stream record that cannot become a row without inventing data.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("stream record {event_id} has no {field}")]
    Missing {
        event_id: String,
        field: &'static str,
    },
    #[error("stream record {event_id}: {source}")]
    UnknownType {
        event_id: String,
        source: UnknownAttributeType,
    },
    #[error("stream record {event_id} has sequence number `{value}`, which is not decimal digits")]
    BadSequence { event_id: String, value: String },
}

/// Makes a row from one stream record of `shard`. Every field the record lacks that the schema
/// requires is an error: a row is never completed with invented values.
pub fn from_stream_record(
    record: &Record,
    table: &TableName,
    stream: &StreamArn,
    shard: &ShardId,
) -> Result<ChangeRecord, RecordError> {
    let event_id = record.event_id().unwrap_or("<no eventID>").to_owned();
    let missing = |field| RecordError::Missing {
        event_id: event_id.clone(),
        field,
    };
    if record.event_id().is_none() {
        return Err(missing("eventID"));
    }
    let ddb = record.dynamodb().ok_or_else(|| missing("dynamodb"))?;
    // DynamoDB Local sends an event name the SDK does not know for TTL deletions; the raw string
    // is kept rather than guessed at.
    let event_name = record
        .event_name()
        .map(|n| n.as_str().to_owned())
        .ok_or_else(|| missing("eventName"))?;
    let event_time_ms = ddb
        .approximate_creation_date_time()
        .and_then(|t| t.to_millis().ok())
        .ok_or_else(|| missing("ApproximateCreationDateTime"))?;
    let seq_text = ddb
        .sequence_number()
        .ok_or_else(|| missing("SequenceNumber"))?;
    let sequence_number =
        SequenceNumber::parse(seq_text).map_err(|_| RecordError::BadSequence {
            event_id: event_id.clone(),
            value: seq_text.to_owned(),
        })?;
    let unknown = |source| RecordError::UnknownType {
        event_id: event_id.clone(),
        source,
    };
    let keys = encode_item(ddb.keys().ok_or_else(|| missing("Keys"))?).map_err(unknown)?;
    let new_image = ddb
        .new_image()
        .map(encode_item)
        .transpose()
        .map_err(unknown)?;
    let old_image = ddb
        .old_image()
        .map(encode_item)
        .transpose()
        .map_err(unknown)?;
    Ok(ChangeRecord {
        event_name,
        event_time_ms,
        table_name: table.clone(),
        stream_arn: Some(stream.clone()),
        shard_id: Some(shard.clone()),
        sequence_number: Some(sequence_number),
        keys,
        new_image,
        old_image,
        size_bytes: ddb.size_bytes(),
        stream_view_type: ddb.stream_view_type().map(|v| v.as_str().to_owned()),
        user_identity: record
            .user_identity()
            .and_then(|u| u.principal_id())
            .map(str::to_owned),
        event_id,
        quarantine: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodbstreams::types::{
        AttributeValue as A, Identity, OperationType, StreamRecord, StreamViewType,
    };
    use aws_smithy_types::DateTime;

    fn record(with_seq: bool) -> Record {
        let mut sr = StreamRecord::builder()
            .approximate_creation_date_time(DateTime::from_millis(1_763_769_600_123))
            .keys("id", A::N("42".into()))
            .new_image("id", A::N("42".into()))
            .new_image("name", A::S("Ada".into()))
            .size_bytes(30)
            .stream_view_type(StreamViewType::NewAndOldImages);
        if with_seq {
            sr = sr.sequence_number("000000000000000000042");
        }
        Record::builder()
            .event_id("e-1")
            .event_name(OperationType::Remove)
            .dynamodb(sr.build())
            .user_identity(
                Identity::builder()
                    .principal_id("dynamodb.amazonaws.com")
                    .r#type("Service")
                    .build(),
            )
            .build()
    }

    #[test]
    fn a_record_becomes_a_row() {
        let row = from_stream_record(
            &record(true),
            &TableName::new("users"),
            &StreamArn::new("arn:s"),
            &ShardId::new("shard-1"),
        )
        .unwrap();
        assert_eq!(row.event_name, "REMOVE");
        assert_eq!(row.event_time_ms, 1_763_769_600_123);
        assert_eq!(row.keys, r#"{"id":{"N":"42"}}"#);
        assert_eq!(
            row.new_image.as_deref(),
            Some(r#"{"id":{"N":"42"},"name":{"S":"Ada"}}"#)
        );
        assert_eq!(row.old_image, None);
        assert_eq!(row.user_identity.as_deref(), Some("dynamodb.amazonaws.com"));
        assert_eq!(row.stream_view_type.as_deref(), Some("NEW_AND_OLD_IMAGES"));
        assert_eq!(
            row.sequence_number.unwrap().as_str(),
            "000000000000000000042"
        );
    }

    #[test]
    fn a_record_without_a_sequence_number_is_an_error() {
        let err = from_stream_record(
            &record(false),
            &TableName::new("users"),
            &StreamArn::new("arn:s"),
            &ShardId::new("shard-1"),
        )
        .unwrap_err();
        assert_eq!(
            err,
            RecordError::Missing {
                event_id: "e-1".into(),
                field: "SequenceNumber"
            }
        );
    }
}
