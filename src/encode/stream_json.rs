//! A GetRecords response body decoded straight into archive rows.
//!
//! The SDK's deserializer turns every attribute of every image into an owned `String` key in a
//! `HashMap` of owned values; the rows then re-encode those trees as canonical DynamoDB JSON and
//! drop them. In the 64-shard soak that round trip (tokenising, the trees, freeing them) was most
//! of the worker's CPU and most of what a page held in memory. This decoder reads the same body
//! with `serde_json`, borrowing every string that has no escape from the body, and writes each
//! image as canonical DynamoDB JSON at once, through the same encoder ([`super::ddb_json`]).
//!
//! It gives the rows the SDK path gives ([`super::record::from_stream_record`]) or declines:
//! anything it does not take exactly as the SDK would (a missing field, an unknown attribute type,
//! a null where a value belongs, invalid base64, a number where a string belongs) is a
//! [`Declined`], and the caller lets the SDK read the body as before, with its own errors. The
//! proptest at the bottom holds the two paths to the same rows.

use super::ddb_json::{encode_entries, AttributeLike, UnknownAttributeType, View};
use super::record::ChangeRecord;
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
    let raw: RawBody<'_> = serde_json::from_slice(body).map_err(|e| Declined(e.to_string()))?;
    let rows = raw
        .records
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.into_row(source))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(DecodedPage {
        rows,
        next_iterator: raw.next.map(|s| s.0.into_owned()),
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
                let Some(tag) = map.next_key::<Str<'de>>()? else {
                    return Err(de::Error::custom("an attribute value with no type"));
                };
                let value = match tag.0.as_ref() {
                    "S" => RawAttr::S(map.next_value()?),
                    "N" => RawAttr::N(map.next_value()?),
                    "B" => RawAttr::B(base64_bytes::<A::Error>(&map.next_value::<Str<'de>>()?.0)?),
                    "SS" => RawAttr::Ss(map.next_value()?),
                    "NS" => RawAttr::Ns(map.next_value()?),
                    "BS" => RawAttr::Bs(
                        map.next_value::<Vec<Str<'de>>>()?
                            .iter()
                            .map(|s| base64_bytes::<A::Error>(&s.0))
                            .collect::<Result<Vec<_>, _>>()?,
                    ),
                    "M" => RawAttr::M(map.next_value()?),
                    "L" => RawAttr::L(map.next_value()?),
                    // The SDK keeps NULL's boolean but the archive writes `{"NULL":true}` always.
                    "NULL" => {
                        map.next_value::<bool>()?;
                        RawAttr::Null
                    }
                    "BOOL" => RawAttr::Bool(map.next_value()?),
                    other => return Err(de::Error::custom(format!("attribute type `{other}`"))),
                };
                if map.next_key::<Str<'de>>()?.is_some() {
                    return Err(de::Error::custom("an attribute value with two keys"));
                }
                Ok(value)
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
    fn what_the_decoder_cannot_take_exactly_is_left_to_the_sdk() {
        // (why, body): each must be declined; the SDK path then gives its own answer.
        let with_keys = |keys: &str| {
            format!(
                r#"{{"Records":[{{"eventID":"e","eventName":"INSERT","dynamodb":{{"ApproximateCreationDateTime":1,"Keys":{keys},"SequenceNumber":"1"}}}}]}}"#
            )
        };
        let cases = [
            ("an unknown attribute type", with_keys(r#"{"a":{"X":"1"}}"#)),
            ("a typeless empty value", with_keys(r#"{"a":{}}"#)),
            ("a null value", with_keys(r#"{"a":null}"#)),
            ("two type keys", with_keys(r#"{"a":{"S":"1","N":"1"}}"#)),
            ("a number for a string", with_keys(r#"{"a":{"S":1}}"#)),
            ("invalid base64", with_keys(r#"{"a":{"B":"***"}}"#)),
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
        // And one the SDK reads where the decoder declines: nulls beside a type key.
        let body = with_keys(r#"{"a":{"S":"1","N":null}}"#);
        assert!(direct_rows(&body).is_err());
        assert_eq!(sdk_rows(&body).unwrap()[0].keys, r#"{"a":{"S":"1"}}"#);
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
