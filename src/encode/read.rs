//! Reading archive rows back: one reader for `verify` (`audit::facts`), `history` and the state
//! at an instant (`audit::state`, behind `snapshot` and `restore`). It reads only the columns
//! asked for (a Parquet projection: `verify` never decodes an image) and, when asked, only some
//! row groups (`history` prunes by statistics), and hands out each batch's columns by name.
//!
//! `views::sample` opens files differently (single column chunks fetched by ranged reads, rows
//! picked by a selection) and reads its batches through [`Rows`] too.

use arrow_array::{Array, RecordBatch, StringArray, TimestampMillisecondArray};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use std::collections::HashMap;

/// Rows per batch: large enough to amortise the per-batch work, small enough that a batch of
/// images stays a few MiB.
const BATCH_ROWS: usize = 8192;

/// One archive file's rows, batch by batch.
pub struct ArchiveRows {
    metadata: HashMap<String, String>,
    reader: ParquetRecordBatchReader,
}

impl ArchiveRows {
    /// Opens a file's bytes, reading only `columns` (a name the file lacks, such as
    /// `quarantine_reason` in a file written before quarantine existed, is simply not there) and,
    /// with `row_groups`, only those row groups.
    pub fn open(
        bytes: bytes::Bytes,
        columns: &[&str],
        row_groups: Option<Vec<usize>>,
    ) -> Result<Self, String> {
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .map_err(|e| format!("not a readable Parquet file: {e}"))?;
        let metadata = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .into_iter()
            .flatten()
            .map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default()))
            .collect();
        let mask = ProjectionMask::columns(
            builder.metadata().file_metadata().schema_descr(),
            columns.iter().copied(),
        );
        let mut builder = builder.with_projection(mask).with_batch_size(BATCH_ROWS);
        if let Some(groups) = row_groups {
            builder = builder.with_row_groups(groups);
        }
        let reader = builder
            .build()
            .map_err(|e| format!("not a readable Parquet file: {e}"))?;
        Ok(Self { metadata, reader })
    }

    /// The footer's key-value metadata (`meta` keys of `encode::parquet`).
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }
}

impl Iterator for ArchiveRows {
    type Item = Result<Rows, String>;

    fn next(&mut self) -> Option<Self::Item> {
        self.reader.next().map(|b| {
            b.map(|batch| Rows { batch })
                .map_err(|e| format!("a row group cannot be read: {e}"))
        })
    }
}

/// One batch of rows, its columns by name.
pub struct Rows {
    batch: RecordBatch,
}

/// A batch read by another reader (`views::sample`'s ranged one).
impl From<RecordBatch> for Rows {
    fn from(batch: RecordBatch) -> Self {
        Self { batch }
    }
}

impl Rows {
    pub fn len(&self) -> usize {
        self.batch.num_rows()
    }

    pub fn is_empty(&self) -> bool {
        self.batch.num_rows() == 0
    }

    /// A string column that was asked for.
    pub fn text(&self, name: &str) -> Result<&StringArray, String> {
        self.optional_text(name)
            .ok_or_else(|| format!("no string column `{name}`"))
    }

    /// A string column, or `None` when the file does not have it.
    pub fn optional_text(&self, name: &str) -> Option<&StringArray> {
        self.batch
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
    }

    /// The `event_time` column.
    pub fn event_times(&self) -> Result<&TimestampMillisecondArray, String> {
        self.batch
            .column_by_name("event_time")
            .and_then(|c| c.as_any().downcast_ref::<TimestampMillisecondArray>())
            .ok_or_else(|| "no timestamp column `event_time`".to_owned())
    }
}

/// The value at `i`, `None` when null.
pub fn opt_str(a: &StringArray, i: usize) -> Option<&str> {
    (!a.is_null(i)).then(|| a.value(i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::parquet::tests::sample_row;
    use crate::encode::parquet::SpoolWriter;

    #[test]
    fn projection_reads_only_the_columns_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.parquet");
        let rows: Vec<_> = (0..3).map(sample_row).collect();
        let mut w = SpoolWriter::create(&path).unwrap();
        w.write(&rows, 7).unwrap();
        w.finish(vec![("table_name".into(), "users".into())])
            .unwrap();
        let bytes = bytes::Bytes::from(std::fs::read(&path).unwrap());
        let mut read = ArchiveRows::open(bytes.clone(), &["event_id", "event_time"], None).unwrap();
        assert_eq!(
            read.metadata().get("table_name").map(String::as_str),
            Some("users")
        );
        let batch = read.next().unwrap().unwrap();
        assert_eq!(batch.len(), 3);
        assert_eq!(batch.text("event_id").unwrap().value(2), rows[2].event_id);
        assert_eq!(batch.event_times().unwrap().value(1), rows[1].event_time_ms);
        assert!(
            batch.optional_text("new_image").is_none(),
            "a column not asked for is not decoded"
        );
        assert!(batch.text("quarantine_reason").is_err());
        assert!(read.next().is_none());

        let all = ArchiveRows::open(bytes, &["new_image"], Some(vec![0])).unwrap();
        let images: Vec<Option<String>> = all
            .flat_map(|b| {
                let b = b.unwrap();
                let col = b.text("new_image").unwrap().clone();
                (0..b.len())
                    .map(|i| opt_str(&col, i).map(str::to_owned))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(
            images,
            rows.iter().map(|r| r.new_image.clone()).collect::<Vec<_>>()
        );
    }
}
