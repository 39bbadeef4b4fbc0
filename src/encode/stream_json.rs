//! A GetRecords response body decoded straight into archive rows.
//!
//! The SDK's deserializer turns every attribute of every image into an owned `String` key in a
//! `HashMap` of owned values; the rows then re-encode those trees as canonical DynamoDB JSON and
//! drop them. In the 64-shard soak that round trip (tokenising, the trees, freeing them) was most
//! of the worker's CPU and most of what a page held in memory. This decoder reads the same body
//! with `serde_json`, borrowing every string that has no escape from the body, and writes each
//! image as canonical DynamoDB JSON at once, through the same encoder ([`super::ddb_json`]).
//!
//! It gives the rows the SDK path gives ([`super::record::from_stream_record`]); the proptest at
//! the bottom holds the two paths to the same rows. A record it does not take exactly as the SDK
//! would (a missing field, an unknown attribute type, a null where a value belongs, invalid base64
//! or UTF-8, a number where a string belongs) is the one thing they differ in: the SDK fails the
//! whole page on most of them, and a page that always fails stalls its shard until the stream
//! trims it. Here such a record becomes a *quarantined* row in its place in the shard
//! ([`QUARANTINED`], its exact bytes and the reason), and the records around it are archived as
//! usual: the body is split into records at the byte level (`stream_split`) and each is decoded
//! on its own. Only a body whose structure is broken (cut off, not a GetRecords answer), or a bad
//! record without a readable sequence number (it has no place in the chain), is [`Declined`]; the
//! caller then lets the SDK read the body, with the SDK's own errors.

use super::ddb_json::{encode_entries, AttributeLike, UnknownAttributeType, View};
use super::record::{ChangeRecord, Quarantine, QUARANTINED};
use super::stream_split::{salvage, split_body};
use crate::types::{SequenceNumber, ShardId, StreamArn, TableName};
use base64::Engine;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;

/// What a GetRecords page holds, decoded.
#[derive(Debug)]
pub struct DecodedPage {
    pub rows: Vec<ChangeRecord>,
    pub next_iterator: Option<String>,
}

/// The body is left to the SDK; the reason is for debug logs and tests.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("GetRecords body left to the SDK: {0}")]
pub struct Declined(pub String);

/// The shard the page was read from: the rows' context columns.
pub struct RowSource<'a> {
    pub table: &'a TableName,
    pub stream: &'a StreamArn,
    pub shard: &'a ShardId,
}

/// Decodes a GetRecords response body into rows, or declines it (see the module docs).
pub fn decode_get_records(body: &[u8], source: &RowSource<'_>) -> Result<DecodedPage, Declined> {
    // The whole page at once: every record of every page DynamoDB sends, in practice.
    if let Ok(raw) = serde_json::from_slice::<RawBody<'_>>(body) {
        let rows = raw
            .records
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.into_row(source))
            .collect::<Result<Vec<_>, _>>();
        if let Ok(rows) = rows {
            return Ok(DecodedPage {
                rows,
                next_iterator: raw.next.map(|s| s.0.into_owned()),
            });
        }
    }
    decode_record_by_record(body, source)
}

/// A page with a record that cannot become a row: each record decoded on its own, the bad ones
/// quarantined.
fn decode_record_by_record(body: &[u8], source: &RowSource<'_>) -> Result<DecodedPage, Declined> {
    let split = split_body(body)
        .ok_or_else(|| Declined("the body is not a whole GetRecords answer".into()))?;
    let mut rows: Vec<ChangeRecord> = Vec::with_capacity(split.records.len());
    for raw in split.records {
        let decoded = serde_json::from_slice::<RawRecord<'_>>(raw)
            .map_err(|e| Declined(e.to_string()))
            .and_then(|r| r.into_row(source));
        let row = match decoded {
            Ok(row) => row,
            Err(Declined(reason)) => quarantined(raw, reason, source, rows.last())?,
        };
        rows.push(row);
    }
    Ok(DecodedPage {
        rows,
        next_iterator: split.next_iterator,
    })
}

/// The row of a record that cannot become one: its exact bytes and why, in its place in the
/// shard (its sequence number). Its time is its own when readable, else the previous record's (so
/// it lands in the same `dt` as its neighbours), else now.
fn quarantined(
    raw: &[u8],
    reason: String,
    source: &RowSource<'_>,
    previous: Option<&ChangeRecord>,
) -> Result<ChangeRecord, Declined> {
    let s = salvage(raw);
    let Some(sequence_number) = s
        .sequence_number
        .as_deref()
        .and_then(|t| SequenceNumber::parse(t).ok())
    else {
        return Err(Declined(format!(
            "a record that cannot become a row ({reason}) and has no readable SequenceNumber, so it has no place in the shard"
        )));
    };
    let event_time_ms = s
        .created_s
        .filter(|t| t.is_finite())
        .and_then(|t| {
            aws_smithy_types::DateTime::from_secs_f64(t)
                .to_millis()
                .ok()
        })
        .or(previous.map(|p| p.event_time_ms))
        .unwrap_or_else(crate::clock::now_ms);
    Ok(ChangeRecord {
        event_id: s
            .event_id
            .unwrap_or_else(|| format!("quarantine-{}-{sequence_number}", source.shard)),
        event_name: QUARANTINED.to_owned(),
        event_time_ms,
        table_name: source.table.clone(),
        stream_arn: Some(source.stream.clone()),
        shard_id: Some(source.shard.clone()),
        sequence_number: Some(sequence_number),
        // Not known (or not trusted): an empty key, never a made-up one.
        keys: "{}".to_owned(),
        new_image: None,
        old_image: None,
        size_bytes: s.size_bytes,
        stream_view_type: s.view_type,
        user_identity: None,
        quarantine: Some(Box::new(Quarantine {
            reason,
            raw: raw.to_vec(),
        })),
    })
}

/// A JSON string, borrowed from the body when it holds no escape.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Str<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

#[derive(Deserialize)]
struct RawBody<'a> {
    #[serde(rename = "Records", borrow, default)]
    records: Option<Vec<RawRecord<'a>>>,
    #[serde(rename = "NextShardIterator", borrow, default)]
    next: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct RawRecord<'a> {
    #[serde(rename = "eventID", borrow, default)]
    event_id: Option<Str<'a>>,
    #[serde(rename = "eventName", borrow, default)]
    event_name: Option<Str<'a>>,
    #[serde(borrow, default)]
    dynamodb: Option<RawStreamRecord<'a>>,
    #[serde(rename = "userIdentity", borrow, default)]
    user_identity: Option<RawIdentity<'a>>,
}

#[derive(Deserialize)]
struct RawIdentity<'a> {
    #[serde(rename = "PrincipalId", borrow, default)]
    principal_id: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct RawStreamRecord<'a> {
    /// Epoch seconds, read as the SDK reads them (a JSON number, as `f64`).
    #[serde(rename = "ApproximateCreationDateTime", default)]
    created: Option<f64>,
    #[serde(rename = "Keys", borrow, default)]
    keys: Option<RawMap<'a>>,
    #[serde(rename = "NewImage", borrow, default)]
    new_image: Option<RawMap<'a>>,
    #[serde(rename = "OldImage", borrow, default)]
    old_image: Option<RawMap<'a>>,
    #[serde(rename = "SequenceNumber", borrow, default)]
    sequence_number: Option<Str<'a>>,
    #[serde(rename = "SizeBytes", default)]
    size_bytes: Option<i64>,
    #[serde(rename = "StreamViewType", borrow, default)]
    view_type: Option<Str<'a>>,
}

/// A map's entries sorted by name; of a name given twice the last value is kept, as the SDK's
/// `HashMap::insert` keeps it.
struct RawMap<'a>(Vec<(Str<'a>, RawAttr<'a>)>);

enum RawAttr<'a> {
    S(Str<'a>),
    N(Str<'a>),
    B(Vec<u8>),
    Ss(Vec<Str<'a>>),
    Ns(Vec<Str<'a>>),
    Bs(Vec<Vec<u8>>),
    M(RawMap<'a>),
    L(Vec<RawAttr<'a>>),
    Null,
    Bool(bool),
}

impl<'de: 'a, 'a> Deserialize<'de> for RawMap<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawMap<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of attribute values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawMap<'de>, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(entry) = map.next_entry::<Str<'de>, RawAttr<'de>>()? {
                    entries.push(entry);
                }
                // Stable, so that of equal names the later stays later.
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                entries.dedup_by(|later, earlier| {
                    let same = later.0 == earlier.0;
                    if same {
                        std::mem::swap(later, earlier);
                    }
                    same
                });
                Ok(RawMap(entries))
            }
        }
        d.deserialize_map(V)
    }
}

fn base64_bytes<E: de::Error>(text: &str) -> Result<Vec<u8>, E> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| E::custom(format!("invalid base64: {e}")))
}

impl<'de: 'a, 'a> Deserialize<'de> for RawAttr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawAttr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an attribute value: an object with one known type key")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawAttr<'de>, A::Error> {
                // A type key whose value is null is absent, as the SDK's union deserializer reads
                // it: `{"S":"1","N":null}` is the string "1".
                let mut value = None;
                while let Some(tag) = map.next_key::<Str<'de>>()? {
                    let found = match tag.0.as_ref() {
                        "S" => map.next_value::<Option<Str<'de>>>()?.map(RawAttr::S),
                        "N" => map.next_value::<Option<Str<'de>>>()?.map(RawAttr::N),
                        "B" => match map.next_value::<Option<Str<'de>>>()? {
                            Some(t) => Some(RawAttr::B(base64_bytes::<A::Error>(&t.0)?)),
                            None => None,
                        },
                        "SS" => map.next_value::<Option<Vec<Str<'de>>>>()?.map(RawAttr::Ss),
                        "NS" => map.next_value::<Option<Vec<Str<'de>>>>()?.map(RawAttr::Ns),
                        "BS" => match map.next_value::<Option<Vec<Str<'de>>>>()? {
                            Some(v) => Some(RawAttr::Bs(
                                v.iter()
                                    .map(|s| base64_bytes::<A::Error>(&s.0))
                                    .collect::<Result<Vec<_>, _>>()?,
                            )),
                            None => None,
                        },
                        "M" => map.next_value::<Option<RawMap<'de>>>()?.map(RawAttr::M),
                        "L" => map
                            .next_value::<Option<Vec<RawAttr<'de>>>>()?
                            .map(RawAttr::L),
                        // The SDK keeps NULL's boolean but the archive writes `{"NULL":true}`.
                        "NULL" => map.next_value::<Option<bool>>()?.map(|_| RawAttr::Null),
                        "BOOL" => map.next_value::<Option<bool>>()?.map(RawAttr::Bool),
                        other => {
                            return Err(de::Error::custom(format!("attribute type `{other}`")))
                        }
                    };
                    if let Some(found) = found {
                        if value.is_some() {
                            return Err(de::Error::custom("an attribute value with two keys"));
                        }
                        value = Some(found);
                    }
                }
                value.ok_or_else(|| de::Error::custom("an attribute value with no type"))
            }
        }
        d.deserialize_map(V)
    }
}

impl AttributeLike for RawAttr<'_> {
    fn view(&self) -> Option<View<'_, Self>> {
        Some(match self {
            RawAttr::S(s) => View::S(&s.0),
            RawAttr::N(n) => View::N(&n.0),
            RawAttr::B(b) => View::B(b),
            RawAttr::Ss(v) => View::Ss(v.iter().map(|s| s.0.as_ref()).collect()),
            RawAttr::Ns(v) => View::Ns(v.iter().map(|s| s.0.as_ref()).collect()),
            RawAttr::Bs(v) => View::Bs(v.iter().map(Vec::as_slice).collect()),
            RawAttr::M(m) => View::M(m.entries()),
            RawAttr::L(l) => View::L(l),
            RawAttr::Null => View::Null,
            RawAttr::Bool(b) => View::Bool(*b),
        })
    }
}

impl<'a> RawMap<'a> {
    fn entries(&self) -> Vec<(&str, &RawAttr<'a>)> {
        self.0.iter().map(|(k, v)| (k.0.as_ref(), v)).collect()
    }

    fn encode(&self) -> Result<String, UnknownAttributeType> {
        encode_entries(self.entries())
    }
}

impl RawRecord<'_> {
    fn into_row(self, source: &RowSource<'_>) -> Result<ChangeRecord, Declined> {
        let missing = |field: &str| Declined(format!("a record without {field}"));
        let event_id = self.event_id.ok_or_else(|| missing("eventID"))?.0;
        let ddb = self.dynamodb.ok_or_else(|| missing("dynamodb"))?;
        let event_name = self.event_name.ok_or_else(|| missing("eventName"))?.0;
        // Exactly the SDK's conversion: epoch seconds as f64, then whole milliseconds.
        let event_time_ms = ddb
            .created
            .filter(|s| s.is_finite())
            .and_then(|s| {
                aws_smithy_types::DateTime::from_secs_f64(s)
                    .to_millis()
                    .ok()
            })
            .ok_or_else(|| missing("ApproximateCreationDateTime"))?;
        let seq = ddb
            .sequence_number
            .ok_or_else(|| missing("SequenceNumber"))?;
        let sequence_number =
            SequenceNumber::parse(&seq.0).map_err(|_| missing("a decimal SequenceNumber"))?;
        let encode = |m: &RawMap<'_>| m.encode().map_err(|e| Declined(e.to_string()));
        let keys = encode(&ddb.keys.ok_or_else(|| missing("Keys"))?)?;
        let new_image = ddb.new_image.as_ref().map(encode).transpose()?;
        let old_image = ddb.old_image.as_ref().map(encode).transpose()?;
        Ok(ChangeRecord {
            event_id: event_id.into_owned(),
            event_name: event_name.into_owned(),
            event_time_ms,
            table_name: source.table.clone(),
            stream_arn: Some(source.stream.clone()),
            shard_id: Some(source.shard.clone()),
            sequence_number: Some(sequence_number),
            keys,
            new_image,
            old_image,
            size_bytes: ddb.size_bytes,
            stream_view_type: ddb.view_type.map(|v| v.0.into_owned()),
            user_identity: self
                .user_identity
                .and_then(|u| u.principal_id)
                .map(|p| p.0.into_owned()),
            quarantine: None,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::encode::record::from_stream_record;
    use crate::stream::canned::CannedClient;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    /// The table, stream and shard the test pages are read from.
    pub(crate) fn names() -> (TableName, StreamArn, ShardId) {
        (
            TableName::new("users"),
            StreamArn::new("arn:aws:dynamodb:us-east-1:1:table/users/stream/x"),
            ShardId::new("shardId-1"),
        )
    }

    /// The rows the SDK's deserializer and [`from_stream_record`] make of `body`.
    pub(crate) fn sdk_rows(body: &str) -> Result<Vec<ChangeRecord>, String> {
        let (table, stream, shard) = names();
        let client = CannedClient::always(body.to_owned()).streams_client();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let out = rt
            .block_on(client.get_records().shard_iterator("it").send())
            .map_err(|e| aws_sdk_dynamodbstreams::error::DisplayErrorContext(e).to_string())?;
        out.records()
            .iter()
            .map(|r| from_stream_record(r, &table, &stream, &shard).map_err(|e| e.to_string()))
            .collect()
    }

    fn direct_rows(body: &str) -> Result<Vec<ChangeRecord>, Declined> {
        let (table, stream, shard) = names();
        let source = RowSource {
            table: &table,
            stream: &stream,
            shard: &shard,
        };
        decode_get_records(body.as_bytes(), &source).map(|p| p.rows)
    }

    fn page(records: Vec<Value>) -> String {
        json!({"Records": records, "NextShardIterator": "next"}).to_string()
    }

    fn record(keys: Value, new_image: Option<Value>) -> Value {
        let mut ddb = json!({
            "ApproximateCreationDateTime": 1763769600.123,
            "Keys": keys,
            "SequenceNumber": "000000000000000000042",
            "SizeBytes": 30,
            "StreamViewType": "NEW_IMAGE",
        });
        if let Some(image) = new_image {
            ddb["NewImage"] = image;
        }
        json!({"eventID": "e-1", "eventName": "INSERT", "dynamodb": ddb})
    }

    #[test]
    fn a_page_decodes_to_the_rows_the_sdk_gives() {
        let body = page(vec![record(
            json!({"id": {"N": "42"}}),
            Some(json!({
                "id": {"N": "42"}, "name": {"S": "Ada \"the\" \\ first\u{1}"},
                "b": {"B": "AAEC/w=="}, "bs": {"BS": ["AA==", "AQ=="]},
                "ss": {"SS": ["b", "a"]}, "ns": {"NS": ["10", "-1.5E+3"]},
                "m": {"M": {"z": {"NULL": true}, "a": {"BOOL": false}, "": {"S": ""}}},
                "l": {"L": [{"N": "1"}, {"L": []}, {"M": {}}]},
            })),
        )]);
        let direct = direct_rows(&body).expect("decoded directly");
        assert_eq!(direct, sdk_rows(&body).unwrap());
        assert_eq!(
            direct[0].new_image.as_deref(),
            Some(concat!(
                r#"{"b":{"B":"AAEC/w=="},"bs":{"BS":["AA==","AQ=="]},"id":{"N":"42"},"#,
                r#""l":{"L":[{"N":"1"},{"L":[]},{"M":{}}]},"#,
                r#""m":{"M":{"":{"S":""},"a":{"BOOL":false},"z":{"NULL":true}}},"#,
                r#""name":{"S":"Ada \"the\" \\ first\u0001"},"ns":{"NS":["10","-1.5E+3"]},"#,
                r#""ss":{"SS":["b","a"]}}"#
            ))
        );
    }

    #[test]
    fn escapes_in_the_body_are_read_as_the_sdk_reads_them() {
        // Escapes serde_json never writes: `\/`, `\u00e9`, a surrogate pair, in names and values.
        let body = r#"{"Records":[{"eventID":"e\/1","eventName":"MODIFY","dynamodb":{
            "ApproximateCreationDateTime":1.7637696001239E9,
            "Keys":{"k\u00e9":{"S":"\ud83d\ude00 \/ \u00e9"}},
            "SequenceNumber":"1","SizeBytes":1}}],"NextShardIterator":null}"#;
        let direct = direct_rows(body).expect("decoded directly");
        assert_eq!(direct, sdk_rows(body).unwrap());
        assert_eq!(direct[0].keys, "{\"ké\":{\"S\":\"😀 / é\"}}");
        assert_eq!(direct[0].event_id, "e/1");
    }

    #[test]
    fn creation_times_round_to_the_sdk_s_millisecond() {
        // serde_json's default float parser can be one unit off in the last place; 3496220583.1349998
        // then fell on the other side of a millisecond (found by the proptest below). The crate
        // is built with `float_roundtrip`, which parses as `f64::from_str` does, like the SDK.
        for t in [
            "3496220583.1349998",
            "1763769600.123",
            "1.7637696001239E9",
            "0",
            "1763769600",
        ] {
            let body = format!(
                r#"{{"Records":[{{"eventID":"e","eventName":"INSERT","dynamodb":{{"ApproximateCreationDateTime":{t},"Keys":{{}},"SequenceNumber":"1"}}}}]}}"#
            );
            let direct = direct_rows(&body).expect("decoded directly");
            assert_eq!(direct, sdk_rows(&body).unwrap(), "{t}");
        }
    }

    #[test]
    fn a_name_given_twice_keeps_its_last_value_as_the_sdk_does() {
        let body = r#"{"Records":[{"eventID":"e","eventName":"INSERT","dynamodb":{
            "ApproximateCreationDateTime":1763769600,
            "Keys":{"a":{"S":"1"},"b":{"N":"2"},"a":{"S":"3"}},
            "SequenceNumber":"7"}}]}"#;
        let direct = direct_rows(body).expect("decoded directly");
        assert_eq!(direct, sdk_rows(body).unwrap());
        assert_eq!(direct[0].keys, r#"{"a":{"S":"3"},"b":{"N":"2"}}"#);
    }

    #[test]
    fn a_record_that_cannot_become_a_row_is_quarantined_in_its_place() {
        let with_keys = |keys: &str| {
            format!(
                r#"{{"eventID":"bad","eventName":"INSERT","dynamodb":{{"ApproximateCreationDateTime":1763769601,"Keys":{keys},"SequenceNumber":"000000000000000000050"}}}}"#
            )
        };
        let good = |seq: u32| {
            let mut r = record(json!({"id": {"N": seq.to_string()}}), None);
            r["dynamodb"]["SequenceNumber"] = json!(format!("{seq:021}"));
            r.to_string()
        };
        let cases = [
            ("an unknown attribute type", with_keys(r#"{"a":{"X":"1"}}"#)),
            ("a typeless empty value", with_keys(r#"{"a":{}}"#)),
            ("a null value", with_keys(r#"{"a":null}"#)),
            ("two type keys", with_keys(r#"{"a":{"S":"1","N":"1"}}"#)),
            ("a number for a string", with_keys(r#"{"a":{"S":1}}"#)),
            ("invalid base64", with_keys(r#"{"a":{"B":"***"}}"#)),
            (
                "no Keys",
                r#"{"eventID":"bad","eventName":"INSERT","dynamodb":{"SequenceNumber":"000000000000000000050"}}"#.to_owned(),
            ),
        ];
        for (why, bad) in cases {
            let body = format!(
                r#"{{"Records":[{},{bad},{}],"NextShardIterator":"n"}}"#,
                good(49),
                good(51)
            );
            let rows = direct_rows(&body).unwrap_or_else(|e| panic!("{why}: {e}"));
            assert_eq!(rows.len(), 3, "{why}");
            assert_eq!(rows[0].event_name, "INSERT");
            assert_eq!(rows[2].event_name, "INSERT");
            let q = &rows[1];
            assert_eq!(q.event_name, QUARANTINED, "{why}");
            assert_eq!(q.event_id, "bad");
            assert_eq!(
                q.sequence_number.as_ref().unwrap().as_str(),
                "000000000000000000050"
            );
            let quarantine = q.quarantine.as_ref().expect("quarantined");
            assert_eq!(quarantine.raw, bad.as_bytes(), "{why}: the exact bytes");
            assert!(!quarantine.reason.is_empty());
            assert!(q.new_image.is_none() && q.keys == "{}");
        }
        // Invalid UTF-8 in the middle of a page: the record is kept byte for byte.
        let mut body = format!(r#"{{"Records":[{},"#, good(49)).into_bytes();
        let bad: &[u8] = b"{\"eventID\":\"u\",\"dynamodb\":{\"ApproximateCreationDateTime\":1763769601,\"Keys\":{\"s\":{\"S\":\"\xc3\x28\"}},\"SequenceNumber\":\"000000000000000000050\"}}";
        body.extend_from_slice(bad);
        body.extend_from_slice(format!(r#",{}]}}"#, good(51)).as_bytes());
        let (table, stream, shard) = names();
        let source = RowSource {
            table: &table,
            stream: &stream,
            shard: &shard,
        };
        let rows = decode_get_records(&body, &source).unwrap().rows;
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1].quarantine.as_ref().unwrap().raw, bad);
        assert_eq!(rows[1].event_time_ms, 1_763_769_601_000);
    }

    #[test]
    fn what_has_no_place_in_the_shard_is_left_to_the_sdk() {
        let cases = [
            (
                "no sequence number",
                r#"{"Records":[{"eventID":"e","eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":1,"Keys":{}}}]}"#.to_owned(),
            ),
            (
                "a sequence number that is not digits",
                r#"{"Records":[{"eventID":"e","eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":1,"Keys":{},"SequenceNumber":"x"}}]}"#.to_owned(),
            ),
            ("a cut-off body", page(vec![record(json!({"id": {"N": "1"}}), None)])[..60].to_owned()),
        ];
        for (why, body) in cases {
            assert!(direct_rows(&body).is_err(), "{why}: declined");
        }
    }

    #[test]
    fn a_null_beside_a_type_key_is_read_as_the_sdk_reads_it() {
        let body = r#"{"Records":[{"eventID":"e","eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":1,"Keys":{"a":{"S":"1","N":null}},"SequenceNumber":"1"}}]}"#;
        let direct = direct_rows(body).expect("decoded directly");
        assert_eq!(direct, sdk_rows(body).unwrap());
        assert_eq!(direct[0].keys, r#"{"a":{"S":"1"}}"#);
    }

    fn attr() -> impl Strategy<Value = Value> {
        let text = prop_oneof![any::<String>(), "[a-z\"\\\\/ é😀\u{0}-\u{1f}]{0,12}"];
        let number = "-?[0-9]{1,38}(\\.[0-9]{1,6})?([eE][+-]?[0-9]{1,3})?";
        let b64 = |v: Vec<u8>| Value::from(base64::engine::general_purpose::STANDARD.encode(v));
        let leaf = prop_oneof![
            text.clone().prop_map(|s| json!({ "S": s })),
            number.prop_map(|n| json!({ "N": n })),
            prop::collection::vec(any::<u8>(), 0..20).prop_map(move |v| json!({ "B": b64(v) })),
            prop::collection::vec(text.clone(), 1..4).prop_map(|v| json!({ "SS": v })),
            prop::collection::vec(number, 1..4).prop_map(|v| json!({ "NS": v })),
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..8), 1..3)
                .prop_map(move |v| json!({ "BS": v.into_iter().map(b64).collect::<Vec<_>>() })),
            Just(json!({"NULL": true})),
            any::<bool>().prop_map(|b| json!({ "BOOL": b })),
        ];
        leaf.prop_recursive(3, 24, 4, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(|l| json!({ "L": l })),
                prop::collection::btree_map(any::<String>(), inner, 0..4)
                    .prop_map(|m| json!({ "M": m })),
            ]
        })
    }

    fn item() -> impl Strategy<Value = Value> {
        prop::collection::btree_map(any::<String>(), attr(), 0..5)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    fn any_record() -> impl Strategy<Value = Value> {
        (
            (any::<String>(), prop_oneof![Just("INSERT"), Just("MODIFY"), Just("REMOVE"), Just("SOMETHING_NEW")]),
            (0.0..4.0e9f64, "[0-9]{1,40}", prop::option::of(0..400_000i64)),
            (item(), prop::option::of(item()), prop::option::of(item())),
            (prop::option::of("[A-Z_]{3,20}"), prop::option::of(any::<String>())),
        )
            .prop_map(|((id, name), (t, seq, size), (keys, new, old), (view, principal))| {
                let mut ddb = json!({"ApproximateCreationDateTime": t, "Keys": keys, "SequenceNumber": seq});
                for (field, v) in [("NewImage", new), ("OldImage", old)] {
                    if let Some(v) = v {
                        ddb[field] = v;
                    }
                }
                if let Some(size) = size {
                    ddb["SizeBytes"] = size.into();
                }
                if let Some(view) = view {
                    ddb["StreamViewType"] = view.into();
                }
                let mut r = json!({"eventID": id, "eventName": name, "eventVersion": "1.1", "dynamodb": ddb});
                if let Some(p) = principal {
                    r["userIdentity"] = json!({"PrincipalId": p, "Type": "Service"});
                }
                r
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// The direct decoder takes every valid page and makes the SDK path's rows of it.
        #[test]
        fn direct_rows_equal_the_sdk_rows(records in prop::collection::vec(any_record(), 0..4)) {
            let body = page(records);
            let direct = direct_rows(&body);
            prop_assert!(direct.is_ok(), "declined: {:?}", direct.err());
            prop_assert_eq!(direct.unwrap(), sdk_rows(&body).unwrap());
        }
    }
}
