//! Reading back what the archiver wrote: every row of a local or S3 archive, a file's metadata,
//! and waiting for rows to appear.

use super::*;
use arrow_array::{
    Array, BinaryArray, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::reader::FileReader;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One row read back from the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub file: String,
    pub event_id: String,
    pub event_name: String,
    pub event_time_ms: i64,
    pub table_name: String,
    pub shard_id: Option<String>,
    pub sequence_number: Option<String>,
    pub keys: String,
    pub new_image: Option<String>,
    pub old_image: Option<String>,
    pub size_bytes: Option<i64>,
    pub user_identity: Option<String>,
    /// A quarantined row's reason and exact bytes.
    pub quarantine_reason: Option<String>,
    pub quarantined_record: Option<Vec<u8>>,
}

impl Row {
    pub fn seq_u128(&self) -> u128 {
        self.sequence_number.as_ref().unwrap().parse().unwrap()
    }
}

/// Every `.parquet` file under `dir`, relative paths sorted.
pub fn archive_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

/// The key-value metadata of one file.
pub fn file_metadata(path: &Path) -> HashMap<String, String> {
    let reader =
        parquet::file::reader::SerializedFileReader::new(std::fs::File::open(path).unwrap())
            .unwrap();
    reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .map(|k| (k.key.clone(), k.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

pub fn read_parquet_bytes(name: &str, bytes: bytes::Bytes) -> Vec<Row> {
    let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut rows = Vec::new();
    for b in batches {
        let col = |n: &str| {
            b.column_by_name(n)
                .unwrap_or_else(|| panic!("column {n}"))
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone()
        };
        let opt = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_owned());
        let (id, name_, keys, new, old, shard, seq, who, table) = (
            col("event_id"),
            col("event_name"),
            col("keys"),
            col("new_image"),
            col("old_image"),
            col("shard_id"),
            col("sequence_number"),
            col("user_identity"),
            col("table_name"),
        );
        let time = b
            .column_by_name("event_time")
            .unwrap()
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .unwrap()
            .clone();
        let size = b
            .column_by_name("size_bytes")
            .unwrap()
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .clone();
        let reason = b
            .column_by_name("quarantine_reason")
            .map(|c| c.as_any().downcast_ref::<StringArray>().unwrap().clone());
        let raw = b
            .column_by_name("quarantined_record")
            .map(|c| c.as_any().downcast_ref::<BinaryArray>().unwrap().clone());
        for i in 0..b.num_rows() {
            rows.push(Row {
                quarantine_reason: reason.as_ref().and_then(|r| opt(r, i)),
                quarantined_record: raw
                    .as_ref()
                    .and_then(|r| (!r.is_null(i)).then(|| r.value(i).to_vec())),
                file: name.to_owned(),
                event_id: id.value(i).to_owned(),
                event_name: name_.value(i).to_owned(),
                event_time_ms: time.value(i),
                table_name: table.value(i).to_owned(),
                shard_id: opt(&shard, i),
                sequence_number: opt(&seq, i),
                keys: keys.value(i).to_owned(),
                new_image: opt(&new, i),
                old_image: opt(&old, i),
                size_bytes: (!size.is_null(i)).then(|| size.value(i)),
                user_identity: opt(&who, i),
            });
        }
    }
    rows
}

/// Every row of every file under `dir`, in file order.
pub fn read_archive(dir: &Path) -> Vec<Row> {
    archive_files(dir)
        .iter()
        .flat_map(|p| {
            let name = p.strip_prefix(dir).unwrap().display().to_string();
            read_parquet_bytes(&name, bytes::Bytes::from(std::fs::read(p).unwrap()))
        })
        .collect()
}

/// Every row of every Parquet object under `s3://bucket/prefix` (`None` if a call fails, for
/// polling while a writer is busy).
pub async fn read_s3_archive(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Option<Vec<Row>> {
    let mut rows = Vec::new();
    for key in s3_keys(s3, bucket, prefix).await? {
        if key.ends_with(".parquet") {
            let body = s3_body(s3, bucket, &key).await?;
            rows.extend(read_parquet_bytes(&key, body));
        }
    }
    Some(rows)
}

/// Every key under `s3://bucket/prefix`, in listing order (`None` if a call fails).
pub async fn s3_keys(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Option<Vec<String>> {
    let mut keys = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        keys.extend(
            page.ok()?
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
    }
    Some(keys)
}

/// How many multipart uploads are open in `bucket`.
pub async fn open_uploads(s3: &aws_sdk_s3::Client, bucket: &str) -> usize {
    s3.list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .unwrap()
        .uploads()
        .len()
}

/// One object's bytes (`None` if the call fails).
pub async fn s3_body(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Option<bytes::Bytes> {
    Some(
        s3.get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .ok()?
            .body
            .collect()
            .await
            .ok()?
            .into_bytes(),
    )
}

/// Waits until the archive under `archive` holds at least `n` rows; returns them.
pub async fn wait_for_rows(archive: &Path, n: usize, timeout: Duration) -> Vec<Row> {
    let archive = archive.to_owned();
    poll(&format!("{n} rows in the archive"), timeout, || {
        let archive = archive.clone();
        async move {
            let rows = read_archive(&archive);
            (rows.len() >= n).then_some(rows)
        }
    })
    .await
}
