//! One export data file (gzip JSON lines) to archive files, one per `dt`. Runs on a blocking
//! thread: checksum, decompress, parse and encode are all CPU work.
//!
//! The whole data file is checked (MD5, every line, the line count) before any of its output is
//! published, so a corrupt file leaves nothing behind that looks converted.

use super::manifest::{DataFile, ExportType, Summary};
use super::ExportError;
use crate::archive::layout::dt_of_millis;
use crate::encode::ddb_json::{decode_item_value, encode_item};
use crate::encode::parquet::{meta, SpoolWriter, SpooledFile, SCHEMA_VERSION};
use crate::encode::record::{ChangeRecord, SNAPSHOT};
use crate::types::TableName;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Rows per row group, counted in bytes of DynamoDB JSON (as the stream path).
const ROW_GROUP_BYTES: usize = 8 << 20;

/// What every data file of one export shares.
#[derive(Debug, Clone)]
pub struct Conversion {
    pub table: TableName,
    pub summary: Summary,
    /// Key attribute names (partition first); needed for full exports, whose lines hold only
    /// the item.
    pub key_names: Vec<String>,
    pub spool_dir: PathBuf,
}

/// The archive files made from one data file, spooled and ready to publish.
#[derive(Debug)]
pub struct Converted {
    pub items: u64,
    /// `(dt, file)` pairs.
    pub outputs: Vec<(String, SpooledFile)>,
}

/// The archive key of the file made from `data` for day `dt`.
pub fn output_key(table: &TableName, dt: &str, export_id: &str, data: &DataFile) -> String {
    crate::archive::layout::export_file_key(table, dt, export_id, data.stem())
}

fn corrupt(location: &str, message: impl Into<String>) -> ExportError {
    ExportError::Corrupt {
        location: location.to_owned(),
        message: message.into(),
    }
}

/// Base64 MD5 of a file, read in 1 MiB pieces (the encoding manifests use).
fn file_md5(path: &Path) -> std::io::Result<String> {
    use md5::Digest as _;
    let mut f = std::fs::File::open(path)?;
    let mut h = md5::Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        h.finalize(),
    ))
}

struct Group {
    writer: SpoolWriter,
    buffer: Vec<ChangeRecord>,
    buffered: usize,
}

/// Converts one data file at `path` (already local). `location` names it in errors.
pub fn convert_file(
    conv: &Conversion,
    data: &DataFile,
    path: &Path,
    location: &str,
    archived_at_ms: i64,
) -> Result<Converted, ExportError> {
    let io = |e: std::io::Error| corrupt(location, format!("cannot read it: {e}"));
    let md5 = file_md5(path).map_err(io)?;
    if md5 != data.md5_checksum {
        return Err(corrupt(
            location,
            format!(
                "its MD5 is {md5} but manifest-files.json says {}: the file is damaged or not the one exported",
                data.md5_checksum
            ),
        ));
    }
    let file = std::fs::File::open(path).map_err(io)?;
    let reader = BufReader::with_capacity(1 << 20, flate2::read::MultiGzDecoder::new(file));
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    let result = (|| {
        let mut items = 0u64;
        for (i, line) in reader.lines().enumerate() {
            let line = line.map_err(|e| corrupt(location, format!("not gzip JSON lines: {e}")))?;
            if line.trim().is_empty() {
                continue;
            }
            let row = line_to_row(conv, &line)
                .map_err(|m| corrupt(location, format!("line {}: {m}", i + 1)))?;
            items += 1;
            let dt = dt_of_millis(row.event_time_ms);
            let group = match groups.get_mut(&dt) {
                Some(g) => g,
                None => {
                    let spool = conv.spool_dir.join(format!(
                        "export-{}-{}-{dt}.{}.parquet",
                        conv.summary.export_id,
                        data.stem(),
                        std::process::id()
                    ));
                    groups.entry(dt.clone()).or_insert(Group {
                        writer: SpoolWriter::create(&spool)?,
                        buffer: Vec::new(),
                        buffered: 0,
                    })
                }
            };
            group.buffered += row.approx_bytes();
            group.buffer.push(row);
            if group.buffered >= ROW_GROUP_BYTES {
                group.writer.write(&group.buffer, archived_at_ms)?;
                group.buffer.clear();
                group.buffered = 0;
            }
        }
        if items != data.item_count {
            return Err(corrupt(
                location,
                format!(
                    "it holds {items} items but manifest-files.json says {}",
                    data.item_count
                ),
            ));
        }
        Ok(items)
    })();
    let items = match result {
        Ok(n) => n,
        Err(e) => {
            for g in groups.into_values() {
                let _ = std::fs::remove_file(g.writer.path());
            }
            return Err(e);
        }
    };
    let mut outputs = Vec::new();
    for (dt, mut g) in groups {
        g.writer.write(&g.buffer, archived_at_ms)?;
        let rows = g.writer.rows().to_string();
        let spooled = g.writer.finish(vec![
            (meta::TABLE.to_owned(), conv.table.to_string()),
            (meta::RECORD_COUNT.to_owned(), rows),
            (meta::SCHEMA_VERSION.to_owned(), SCHEMA_VERSION.to_owned()),
            (
                meta::LAYOUT_VERSION.to_owned(),
                crate::archive::layout::LAYOUT_VERSION.to_owned(),
            ),
            (
                meta::ARCHIVER_VERSION.to_owned(),
                env!("CARGO_PKG_VERSION").to_owned(),
            ),
            (meta::EXPORT_ARN.to_owned(), conv.summary.export_arn.clone()),
            (
                meta::EXPORT_DATA_FILE.to_owned(),
                data.data_file_s3_key.clone(),
            ),
        ])?;
        outputs.push((dt, spooled));
    }
    Ok(Converted { items, outputs })
}

/// One line of a data file as an archive row.
pub fn line_to_row(conv: &Conversion, line: &str) -> Result<ChangeRecord, String> {
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let image = |name: &str| -> Result<Option<String>, String> {
        v.get(name)
            .map(|m| {
                let item = decode_item_value(m).map_err(|e| format!("{name}: {e}"))?;
                encode_item(&item).map_err(|e| format!("{name}: {e}"))
            })
            .transpose()
    };
    let id_of = |parts: &[&str]| {
        let mut h = Sha256::new();
        h.update(conv.table.as_str().as_bytes());
        for p in parts {
            h.update([0]);
            h.update(p.as_bytes());
        }
        format!(
            "export-{}-{}",
            conv.summary.export_id,
            hex::encode(&h.finalize()[..16])
        )
    };
    let base = |event_name: &str, time_ms: i64, keys: String| ChangeRecord {
        event_id: String::new(),
        event_name: event_name.to_owned(),
        event_time_ms: time_ms,
        table_name: conv.table.clone(),
        stream_arn: None,
        shard_id: None,
        sequence_number: None,
        keys,
        new_image: None,
        old_image: None,
        size_bytes: None,
        stream_view_type: None,
        user_identity: None,
        quarantine: None,
    };
    match conv.summary.export_type {
        ExportType::Full => {
            let item_value = v.get("Item").ok_or("no `Item`")?;
            let item = decode_item_value(item_value).map_err(|e| format!("Item: {e}"))?;
            let mut keys = std::collections::HashMap::new();
            for k in &conv.key_names {
                let a = item.get(k).ok_or_else(|| {
                    format!("the item lacks the key attribute `{k}` (check --key-attributes)")
                })?;
                keys.insert(k.clone(), a.clone());
            }
            let keys = encode_item(&keys).map_err(|e| e.to_string())?;
            let time = conv.summary.export_time_ms.unwrap_or(0);
            let mut row = base(SNAPSHOT, time, keys);
            row.event_id = id_of(&[&row.keys]);
            row.new_image = Some(encode_item(&item).map_err(|e| e.to_string())?);
            Ok(row)
        }
        ExportType::Incremental => {
            let micros: i64 = v
                .pointer("/Metadata/WriteTimestampMicros/N")
                .and_then(|n| n.as_str())
                .ok_or("no `Metadata.WriteTimestampMicros`")?
                .parse()
                .map_err(|e| format!("WriteTimestampMicros: {e}"))?;
            let keys = image("Keys")?.ok_or("no `Keys`")?;
            let new_image = image("NewImage")?;
            let old_image = image("OldImage")?;
            let view = conv.summary.output_view.as_deref();
            // The export holds each changed item's net change over its window, not every write.
            let event_name = match (&new_image, &old_image) {
                (None, _) => "REMOVE",
                (Some(_), Some(_)) => "MODIFY",
                // Without old images an insert cannot be told from an update.
                (Some(_), None) if view == Some("NEW_AND_OLD_IMAGES") => "INSERT",
                (Some(_), None) => "MODIFY",
            };
            let mut row = base(event_name, micros.div_euclid(1000), keys);
            row.event_id = id_of(&[&row.keys, &micros.to_string()]);
            row.new_image = new_image;
            row.old_image = old_image;
            row.stream_view_type = view.map(str::to_owned);
            Ok(row)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(t: ExportType) -> Conversion {
        Conversion {
            table: TableName::new("users"),
            summary: Summary {
                export_arn: "arn:x/export/E1".into(),
                export_id: "E1".into(),
                table_arn: None,
                export_type: t,
                export_time_ms: Some(1_700_000_000_000),
                item_count: 0,
                manifest_files_key: None,
                output_view: Some("NEW_AND_OLD_IMAGES".into()),
            },
            key_names: vec!["id".into()],
            spool_dir: std::env::temp_dir(),
        }
    }

    #[test]
    fn full_export_lines_become_snapshot_rows() {
        let row = line_to_row(
            &conv(ExportType::Full),
            r#"{"Item":{"name":{"S":"Ada"},"id":{"N":"42"}}}"#,
        )
        .unwrap();
        assert_eq!(row.event_name, "SNAPSHOT");
        assert_eq!(row.keys, r#"{"id":{"N":"42"}}"#);
        assert_eq!(
            row.new_image.as_deref(),
            Some(r#"{"id":{"N":"42"},"name":{"S":"Ada"}}"#)
        );
        assert_eq!(row.event_time_ms, 1_700_000_000_000);
        assert!(row.event_id.starts_with("export-E1-"));
        let err =
            line_to_row(&conv(ExportType::Full), r#"{"Item":{"name":{"S":"x"}}}"#).unwrap_err();
        assert!(err.contains("`id`"), "{err}");
    }

    #[test]
    fn incremental_lines_become_changes() {
        let c = conv(ExportType::Incremental);
        let meta = r#""Metadata":{"WriteTimestampMicros":{"N":"1700000000123456"}}"#;
        let k = r#""Keys":{"id":{"N":"1"}}"#;
        let cases = [
            (
                format!(r#"{{{meta},{k},"NewImage":{{"id":{{"N":"1"}}}}}}"#),
                "INSERT",
            ),
            (
                format!(
                    r#"{{{meta},{k},"NewImage":{{"id":{{"N":"1"}}}},"OldImage":{{"id":{{"N":"1"}}}}}}"#
                ),
                "MODIFY",
            ),
            (
                format!(r#"{{{meta},{k},"OldImage":{{"id":{{"N":"1"}}}}}}"#),
                "REMOVE",
            ),
            (format!(r#"{{{meta},{k}}}"#), "REMOVE"),
        ];
        for (line, want) in cases {
            let row = line_to_row(&c, &line).unwrap();
            assert_eq!(row.event_name, want, "{line}");
            assert_eq!(row.event_time_ms, 1_700_000_000_123);
            assert_eq!(row.stream_view_type.as_deref(), Some("NEW_AND_OLD_IMAGES"));
        }
        let mut new_image_only = c.clone();
        new_image_only.summary.output_view = Some("NEW_IMAGE".into());
        let row = line_to_row(&new_image_only, &cases_line(meta, k)).unwrap();
        assert_eq!(row.event_name, "MODIFY", "an insert cannot be told apart");
        assert!(line_to_row(&c, r#"{"Keys":{"id":{"N":"1"}}}"#).is_err());
    }

    fn cases_line(meta: &str, k: &str) -> String {
        format!(r#"{{{meta},{k},"NewImage":{{"id":{{"N":"1"}}}}}}"#)
    }
}
