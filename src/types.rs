//! Newtypes for the identifiers the archiver passes around, so a shard id can never be handed
//! where a sequence number is expected, and sequence numbers compare by value, not as text.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

/// A DynamoDB table name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableName(Arc<str>);

impl TableName {
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self(name.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The ARN of one DynamoDB stream (a table can have several over its life; only the current one
/// is followed).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamArn(Arc<str>);

impl StreamArn {
    pub fn new(arn: impl Into<Arc<str>>) -> Self {
        Self(arn.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The stream label (the part after `/stream/`), unique per table over time.
    pub fn label(&self) -> &str {
        self.0
            .rsplit_once("/stream/")
            .map_or(&self.0, |(_, label)| label)
    }
}

impl fmt::Display for StreamArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A shard id, e.g. `shardId-00000001700000000000-8b2d4f61`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(Arc<str>);

impl ShardId {
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Self(id.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stream record's sequence number: decimal digits as DynamoDB gave them.
///
/// DynamoDB Local pads them to 21 digits while AWS's vary in length, so ordering is by numeric
/// value (leading zeros ignored, then length, then digits), never as text. The original text is
/// kept, because the archive stores sequence numbers exactly as DynamoDB gave them.
#[derive(Clone, Debug, Eq)]
pub struct SequenceNumber(Arc<str>);

/// Why a string is not a sequence number.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a sequence number (expected decimal digits)")]
pub struct BadSequenceNumber(pub String);

impl SequenceNumber {
    pub fn parse(text: &str) -> Result<Self, BadSequenceNumber> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BadSequenceNumber(text.to_owned()));
        }
        Ok(Self(text.into()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    fn significant(&self) -> &str {
        let trimmed = self.0.trim_start_matches('0');
        if trimmed.is_empty() {
            "0"
        } else {
            trimmed
        }
    }
}

impl PartialEq for SequenceNumber {
    fn eq(&self, other: &Self) -> bool {
        self.significant() == other.significant()
    }
}

impl std::hash::Hash for SequenceNumber {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.significant().hash(state)
    }
}

impl Ord for SequenceNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.significant(), other.significant());
        a.len().cmp(&b.len()).then_with(|| a.cmp(b))
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(s: &str) -> SequenceNumber {
        SequenceNumber::parse(s).unwrap()
    }

    #[test]
    fn sequence_numbers_order_by_value_not_text() {
        // As text "9" > "10"; as numbers it is the other way round.
        assert!(seq("9") < seq("10"));
        assert!(seq("000000000000000000009") < seq("10"));
        assert_eq!(seq("000042"), seq("42"));
        assert!(seq("4421584500000000017450439091") > seq("000000000000000000001"));
        assert_eq!(seq("0"), seq("000"));
    }

    #[test]
    fn sequence_number_keeps_its_text() {
        assert_eq!(
            seq("000000000000000000001").as_str(),
            "000000000000000000001"
        );
    }

    #[test]
    fn bad_sequence_numbers_are_rejected() {
        assert!(SequenceNumber::parse("").is_err());
        assert!(SequenceNumber::parse("12a").is_err());
        assert!(SequenceNumber::parse("-1").is_err());
    }

    #[test]
    fn stream_label_is_the_suffix() {
        let arn = StreamArn::new(
            "arn:aws:dynamodb:us-east-1:000000000000:table/users/stream/2026-11-21T21:00:00.000",
        );
        assert_eq!(arn.label(), "2026-11-21T21:00:00.000");
    }
}
