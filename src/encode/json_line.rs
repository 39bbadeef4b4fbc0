//! One archive row as one JSON line: the Firehose form of schema v1.
//!
//! The fields and their order are those of the Parquet columns. `keys`, `new_image` and
//! `old_image` stay DynamoDB JSON *strings* (not nested objects): a Glue schema used by Firehose's
//! Parquet conversion then has three string columns that hold every attribute, where nested
//! objects would need every attribute in the schema (Firehose drops the ones it lacks). The two
//! timestamps are epoch milliseconds, which Firehose's Hive JSON SerDe reads with the timestamp
//! format `millis` and which loses nothing. Every line ends with `\n`, so many lines packed into
//! one Firehose record split back into lines (see `sink::aggregate`).

use super::ddb_json::write_str;
use super::record::ChangeRecord;

/// The field a pointer line adds: where the whole line was written instead (see
/// [`pointer_line`]). Absent from ordinary lines.
pub const OVERFLOW_FIELD: &str = "overflow_object";

/// Encodes `row` as one JSON line, `\n` included.
pub fn encode_line(row: &ChangeRecord, archived_at_ms: i64) -> String {
    let mut out = String::with_capacity(row.approx_bytes() + 256);
    write_fields(&mut out, row, archived_at_ms, true);
    out.push_str("}\n");
    out
}

/// The line that goes to Firehose in place of one too big for a Firehose record: every field but
/// the images, and `overflow_object`, the URI of the object that holds the whole line.
pub fn pointer_line(row: &ChangeRecord, archived_at_ms: i64, overflow_uri: &str) -> String {
    let mut out = String::with_capacity(512);
    write_fields(&mut out, row, archived_at_ms, false);
    out.push_str(",\"");
    out.push_str(OVERFLOW_FIELD);
    out.push_str("\":");
    write_str(&mut out, overflow_uri);
    out.push_str("}\n");
    out
}

fn write_fields(out: &mut String, row: &ChangeRecord, archived_at_ms: i64, images: bool) {
    out.push('{');
    let mut first = true;
    let mut key = |out: &mut String, name: &str| {
        if !first {
            out.push(',');
        }
        first = false;
        out.push('"');
        out.push_str(name);
        out.push_str("\":");
    };
    let opt = |out: &mut String, v: Option<&str>| match v {
        Some(s) => write_str(out, s),
        None => out.push_str("null"),
    };
    key(out, "event_id");
    write_str(out, &row.event_id);
    key(out, "event_name");
    write_str(out, &row.event_name);
    key(out, "event_time");
    out.push_str(&row.event_time_ms.to_string());
    key(out, "table_name");
    write_str(out, row.table_name.as_str());
    key(out, "stream_arn");
    opt(out, row.stream_arn.as_ref().map(|s| s.as_str()));
    key(out, "shard_id");
    opt(out, row.shard_id.as_ref().map(|s| s.as_str()));
    key(out, "sequence_number");
    opt(out, row.sequence_number.as_ref().map(|s| s.as_str()));
    key(out, "keys");
    write_str(out, &row.keys);
    key(out, "new_image");
    opt(out, row.new_image.as_deref().filter(|_| images));
    key(out, "old_image");
    opt(out, row.old_image.as_deref().filter(|_| images));
    key(out, "size_bytes");
    match row.size_bytes {
        Some(n) => out.push_str(&n.to_string()),
        None => out.push_str("null"),
    }
    key(out, "stream_view_type");
    opt(out, row.stream_view_type.as_deref());
    key(out, "user_identity");
    opt(out, row.user_identity.as_deref());
    key(out, "archived_at");
    out.push_str(&archived_at_ms.to_string());
    // Quarantined rows only (null otherwise); the record's bytes in base64, since they need not
    // be valid UTF-8.
    key(out, "quarantine_reason");
    opt(out, row.quarantine.as_ref().map(|q| q.reason.as_str()));
    key(out, "quarantined_record");
    let raw = row.quarantine.as_ref().filter(|_| images).map(|q| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&q.raw)
    });
    opt(out, raw.as_deref());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{SequenceNumber, ShardId, StreamArn, TableName};

    fn row() -> ChangeRecord {
        ChangeRecord {
            event_id: "e\"1".into(),
            event_name: "MODIFY".into(),
            event_time_ms: 1_763_769_600_123,
            table_name: TableName::new("orders"),
            stream_arn: Some(StreamArn::new(
                "arn:aws:dynamodb:us-east-1:1:table/orders/stream/x",
            )),
            shard_id: Some(ShardId::new("shardId-1")),
            sequence_number: Some(SequenceNumber::parse("000000000000000000042").unwrap()),
            keys: r#"{"id":{"N":"42"}}"#.into(),
            new_image: Some("{\"id\":{\"N\":\"42\"},\"s\":{\"S\":\"a\\nb\u{1}\"}}".into()),
            old_image: None,
            size_bytes: Some(30),
            stream_view_type: Some("NEW_AND_OLD_IMAGES".into()),
            user_identity: None,
            quarantine: None,
        }
    }

    #[test]
    fn a_line_is_one_json_object_with_the_schema_fields_in_order() {
        let line = encode_line(&row(), 1_763_769_601_000);
        assert!(line.ends_with("}\n"));
        assert_eq!(line.matches('\n').count(), 1, "one line: {line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let names: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut expected = vec![
            "event_id",
            "event_name",
            "event_time",
            "table_name",
            "stream_arn",
            "shard_id",
            "sequence_number",
            "keys",
            "new_image",
            "old_image",
            "size_bytes",
            "stream_view_type",
            "user_identity",
            "archived_at",
            "quarantine_reason",
            "quarantined_record",
        ];
        expected.sort_unstable();
        assert_eq!(names, expected, "serde_json sorts keys");
        assert!(line.starts_with("{\"event_id\":\"e\\\"1\",\"event_name\""));
        assert_eq!(v["event_time"], 1_763_769_600_123i64);
        assert_eq!(v["sequence_number"], "000000000000000000042");
        assert_eq!(v["new_image"].as_str(), row().new_image.as_deref());
        assert_eq!(v["old_image"], serde_json::Value::Null);
        assert_eq!(v["archived_at"], 1_763_769_601_000i64);
    }

    /// The line's fields are the Parquet columns, in order; the Glue schema Firehose converts with
    /// (schemas/firehose-glue-v1.json) has each of them, and `overflow_object`.
    #[test]
    fn lines_parquet_columns_and_the_glue_schema_agree() {
        let line = encode_line(&row(), 1);
        let mut names = Vec::new();
        let mut rest = line.as_str();
        // Field names in written order (serde_json would sort them).
        while let Some(i) = rest.find("\":") {
            let start = rest[..i].rfind('"').unwrap();
            let name = &rest[start + 1..i];
            if name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                names.push(name.to_owned());
            }
            rest = &rest[i + 2..];
        }
        let columns: Vec<String> = crate::encode::parquet::arrow_schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, columns);
        let glue: serde_json::Value =
            serde_json::from_str(include_str!("../../schemas/firehose-glue-v1.json")).unwrap();
        let glue_columns: Vec<&str> = glue["Columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["Name"].as_str().unwrap())
            .collect();
        let mut expected: Vec<&str> = columns.iter().map(String::as_str).collect();
        expected.push(OVERFLOW_FIELD);
        assert_eq!(glue_columns, expected);
        for c in glue["Columns"].as_array().unwrap() {
            let t = c["Type"].as_str().unwrap();
            match c["Name"].as_str().unwrap() {
                "event_time" | "archived_at" => assert_eq!(t, "timestamp"),
                "size_bytes" => assert_eq!(t, "bigint"),
                _ => assert_eq!(t, "string"),
            }
        }
    }

    #[test]
    fn a_pointer_line_drops_the_images_and_names_the_object() {
        let line = pointer_line(&row(), 7, "s3://b/p/orders/x.json");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["new_image"], serde_json::Value::Null);
        assert_eq!(v[OVERFLOW_FIELD], "s3://b/p/orders/x.json");
        assert_eq!(v["keys"], row().keys.as_str());
    }
}
