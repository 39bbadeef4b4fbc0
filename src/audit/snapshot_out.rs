//! What `snapshot --as-of` writes, one partition of the state at a time (bounded memory): a
//! Parquet file (`--format parquet`, the default), or a DynamoDB import folder (`--format
//! dynamodb-json`): gzip JSON lines of `{"Item": …}`, the format ImportTable reads, so that
//! `aws dynamodb import-table` builds a new table from it at no write-capacity cost.
//!
//! Both are written to local files first and published (create-only) by the caller; the
//! manifests of the import folder come last, so a folder with manifests is complete.

use super::state::PartitionState;
use crate::encode::parquet::{writer_properties, SpooledFile};
use arrow_array::builder::{StringBuilder, TimestampMillisecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A data file of an import folder is cut after the partition that takes it past this much JSON:
/// ImportTable reads files of any size, but several files import in parallel.
pub const IMPORT_FILE_TARGET_BYTES: u64 = 1 << 30;

fn parquet_schema() -> Arc<Schema> {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("keys", DataType::Utf8, false),
        Field::new("item", DataType::Utf8, false),
        Field::new("source_event_id", DataType::Utf8, false),
        Field::new("source_event_time", ts, false),
    ]))
}

/// What `snapshot` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotFormat {
    /// One Parquet file: keys, item, source row.
    Parquet,
    /// A DynamoDB import folder: gzip JSON lines of `{"Item": …}` and its manifests.
    DynamodbJson,
}

/// `as-of-<stamp>.parquet`: one row group per partition.
pub struct ParquetOut {
    path: PathBuf,
    writer: ArrowWriter<std::fs::File>,
    rows: u64,
}

impl ParquetOut {
    pub fn create(path: &Path) -> Result<Self, String> {
        let file = std::fs::File::create(path).map_err(|e| e.to_string())?;
        let writer = ArrowWriter::try_new(file, parquet_schema(), Some(writer_properties()))
            .map_err(|e| e.to_string())?;
        Ok(Self {
            path: path.to_owned(),
            writer,
            rows: 0,
        })
    }

    pub fn write(&mut self, part: &PartitionState) -> Result<(), String> {
        if part.items.is_empty() {
            return Ok(());
        }
        let mut keys = StringBuilder::new();
        let mut items = StringBuilder::new();
        let mut ids = StringBuilder::new();
        let mut times = TimestampMillisecondBuilder::new();
        for i in &part.items {
            keys.append_value(&i.keys);
            items.append_value(&i.item);
            ids.append_value(&i.source_event_id);
            times.append_value(i.source_time_ms);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(keys.finish()),
            Arc::new(items.finish()),
            Arc::new(ids.finish()),
            Arc::new(times.finish().with_timezone("UTC")),
        ];
        let batch = RecordBatch::try_new(parquet_schema(), columns).map_err(|e| e.to_string())?;
        self.writer.write(&batch).map_err(|e| e.to_string())?;
        self.writer.flush().map_err(|e| e.to_string())?;
        self.rows += part.items.len() as u64;
        Ok(())
    }

    pub fn finish(self) -> Result<SpooledFile, String> {
        self.writer.close().map_err(|e| e.to_string())?;
        hashed(&self.path, self.rows)
            .map(|(f, _)| f)
            .map_err(|e| e.to_string())
    }
}

/// One finished data file of an import folder.
#[derive(Debug)]
pub struct DataFile {
    pub file: SpooledFile,
    /// Base64 MD5 of the gzip bytes, as export manifests write it.
    pub md5_base64: String,
}

/// The `data/` files of an import folder, cut between partitions.
pub struct DynamoJsonOut {
    dir: PathBuf,
    open: Option<(
        flate2::write::GzEncoder<std::io::BufWriter<std::fs::File>>,
        PathBuf,
        u64,
        u64,
    )>,
    done: Vec<DataFile>,
    line: String,
}

impl DynamoJsonOut {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            open: None,
            done: Vec::new(),
            line: String::new(),
        }
    }

    pub fn write(&mut self, part: &PartitionState) -> Result<(), String> {
        if part.items.is_empty() {
            return Ok(());
        }
        if self.open.is_none() {
            let path = self
                .dir
                .join(format!("data-{:05}.json.gz", self.done.len()));
            let file = std::fs::File::create(&path).map_err(|e| e.to_string())?;
            let gz = flate2::write::GzEncoder::new(
                std::io::BufWriter::with_capacity(128 << 10, file),
                // The fastest level: ImportTable reads any, and 100 GB of lines at the default
                // level would take one core the better part of an hour.
                flate2::Compression::fast(),
            );
            self.open = Some((gz, path, 0, 0));
        }
        let (gz, _, rows, bytes) = self.open.as_mut().expect("a data file is open");
        for i in &part.items {
            // The canonical item is the DynamoDB JSON ImportTable expects under "Item".
            self.line.clear();
            self.line.push_str("{\"Item\":");
            self.line.push_str(&i.item);
            self.line.push_str("}\n");
            gz.write_all(self.line.as_bytes())
                .map_err(|e| e.to_string())?;
            *bytes += self.line.len() as u64;
        }
        *rows += part.items.len() as u64;
        if *bytes >= IMPORT_FILE_TARGET_BYTES {
            self.close()?;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), String> {
        if let Some((gz, path, rows, _)) = self.open.take() {
            let mut w = gz.finish().map_err(|e| e.to_string())?;
            w.flush().map_err(|e| e.to_string())?;
            drop(w);
            let (file, md5_base64) = hashed(&path, rows).map_err(|e| e.to_string())?;
            self.done.push(DataFile { file, md5_base64 });
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<Vec<DataFile>, String> {
        self.close()?;
        Ok(self.done)
    }
}

/// `manifest-summary.json` of an import folder: what it holds and how to import it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportSummary {
    pub table: String,
    pub as_of: String,
    pub item_count: u64,
    pub output_format: &'static str,
    pub compression: &'static str,
    pub data_files: usize,
    /// The prefix to give ImportTable (`S3BucketSource.S3KeyPrefix`), below `--out`.
    pub data_prefix: String,
    pub created_at: String,
    pub archiver_version: &'static str,
}

/// `manifest-files.json`: one line per data file, in the fields a DynamoDB Export's manifest uses
/// (`dataFileS3Key` is below `--out`), so a reader of exports can check every file.
pub fn manifest_files(files: &[(String, &DataFile)]) -> String {
    files
        .iter()
        .map(|(key, f)| {
            serde_json::json!({
                "itemCount": f.file.rows,
                "md5Checksum": f.md5_base64,
                "dataFileS3Key": key,
            })
            .to_string()
                + "\n"
        })
        .collect()
}

/// A finished local file as ready to publish, and its base64 MD5: hashed as a stream, never read
/// into memory whole.
fn hashed(path: &Path, rows: u64) -> std::io::Result<(SpooledFile, String)> {
    struct Both(Sha256, md5::Md5);
    impl Write for Both {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            use md5::Digest as _;
            self.0.update(b);
            self.1.update(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    use md5::Digest as _;
    let mut both = Both(Sha256::new(), md5::Md5::new());
    let size_bytes = std::io::copy(&mut std::fs::File::open(path)?, &mut both)?;
    let md5 = crate::export::manifest::md5_of_digest(&both.1.finalize());
    Ok((
        SpooledFile {
            path: path.to_owned(),
            sha256: both.0.finalize().into(),
            size_bytes,
            rows,
        },
        md5,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::state::StateItem;
    use std::io::BufRead;

    fn part(items: &[(&str, &str)]) -> PartitionState {
        PartitionState {
            items: items
                .iter()
                .map(|(k, i)| StateItem {
                    keys: (*k).into(),
                    item: (*i).into(),
                    source_event_id: "e".into(),
                    source_time_ms: 1,
                    from_change: true,
                })
                .collect(),
            absent: 0,
        }
    }

    #[test]
    fn import_lines_wrap_the_canonical_item() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = DynamoJsonOut::new(dir.path());
        out.write(&part(&[(
            r#"{"id":{"N":"1"}}"#,
            r#"{"id":{"N":"1"},"s":{"S":"é\n"}}"#,
        )]))
        .unwrap();
        out.write(&part(&[])).unwrap();
        out.write(&part(&[(r#"{"id":{"N":"2"}}"#, r#"{"id":{"N":"2"}}"#)]))
            .unwrap();
        let files = out.finish().unwrap();
        assert_eq!(files.len(), 1, "small partitions share a file");
        assert_eq!(files[0].file.rows, 2);
        let bytes = std::fs::read(&files[0].file.path).unwrap();
        assert_eq!(
            files[0].md5_base64,
            crate::export::manifest::md5_base64(&bytes)
        );
        let lines: Vec<String> = std::io::BufReader::new(flate2::read::GzDecoder::new(&bytes[..]))
            .lines()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            lines,
            vec![
                r#"{"Item":{"id":{"N":"1"},"s":{"S":"é\n"}}}"#,
                r#"{"Item":{"id":{"N":"2"}}}"#
            ]
        );
        let manifest = manifest_files(&[("t/x/data/part-00000.json.gz".into(), &files[0])]);
        let line: serde_json::Value = serde_json::from_str(manifest.trim()).unwrap();
        assert_eq!(line["itemCount"], 2);
    }
}
