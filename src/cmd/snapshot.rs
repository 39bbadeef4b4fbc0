//! `dynamo-archiver snapshot`: the table as of an instant, in bounded memory. Pass one reads every
//! file of the table and spills each row's essentials to one of `PARTITIONS` files by key hash;
//! pass two folds one partition at a time (only its keys in memory) and writes its items as one
//! row group of the output.

use super::CommandError;
use crate::archive::layout::ArchiveKey;
use crate::audit::history::order_key;
use crate::audit::snapshot::{partition_of, KeyState, Row};
use crate::config::SnapshotConfig;
use crate::encode::parquet::{event_time_column, string_column};
use crate::encode::parquet::{writer_properties, SpooledFile};
use arrow_array::builder::{StringBuilder, TimestampMillisecondBuilder};
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Spill partitions: pass two holds one sixty-fourth of the table's keys at a time.
const PARTITIONS: usize = 64;

pub async fn run(config: SnapshotConfig) -> Result<(), CommandError> {
    let runtime = |e: &dyn std::fmt::Display| CommandError::Runtime(e.to_string());
    let source = super::read_archive(&config.archive).await;
    let out = super::read_archive(&config.out).await;
    out.check_writable()
        .await
        .map_err(|e| CommandError::Config(e.to_string()))?;
    std::fs::create_dir_all(&config.spool_dir).map_err(|e| runtime(&e))?;
    let keys: Vec<String> = source
        .list_tree(&format!("{}/", config.table))
        .await
        .map_err(|e| runtime(&e))?
        .into_iter()
        .filter(|k| ArchiveKey::holds_rows(k))
        .collect();
    let stamp = stamp(config.as_of_ms);
    let work = config.spool_dir.join(format!(
        "snapshot-{}-{stamp}-{}",
        config.table,
        std::process::id()
    ));
    std::fs::create_dir_all(&work).map_err(|e| runtime(&e))?;
    let result = async {
        // Pass one: spill.
        let mut spills = Some(Spill::create(&work).map_err(|e| runtime(&e))?);
        for key in &keys {
            let bytes = source.read(key, None).await.map_err(|e| runtime(&e))?;
            let mut s = spills.take().expect("spill files");
            let key2 = key.clone();
            let (s, r) = tokio::task::spawn_blocking(move || {
                let r = spill_file(&key2, bytes::Bytes::from(bytes), &mut s);
                (s, r)
            })
            .await
            .expect("spilling does not panic");
            r.map_err(|e| runtime(&e))?;
            spills = Some(s);
        }
        let paths = spills.expect("spill files").finish().map_err(|e| runtime(&e))?;
        // Pass two: fold each partition, write its items.
        let out_path = work.join("out.parquet");
        let as_of = config.as_of_ms;
        let summary = tokio::task::spawn_blocking(move || fold_all(&paths, as_of, &out_path))
            .await
            .expect("folding does not panic")
            .map_err(|e| runtime(&e))?;
        let file = spooled(&work.join("out.parquet"), summary.items).map_err(|e| runtime(&e))?;
        let out_key = crate::archive::layout::as_of_key(config.table.as_str(), &stamp);
        out.publish_retrying(&out_key, &file)
            .await
            .map_err(|e| runtime(&e))?;
        println!(
            "snapshot {} as of {}: {} items ({} from changes, {} from SNAPSHOT rows), {} keys absent at that instant, from {} files; written to {}",
            config.table,
            crate::clock::rfc3339(config.as_of_ms),
            summary.items,
            summary.from_changes,
            summary.items - summary.from_changes,
            summary.absent,
            keys.len(),
            config.out.describe(&out_key)
        );
        Ok::<(), CommandError>(())
    }
    .await;
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn stamp(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}{:03}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// The spill files of pass one.
struct Spill {
    paths: Vec<PathBuf>,
    writers: Vec<BufWriter<std::fs::File>>,
}

impl Spill {
    fn create(dir: &Path) -> std::io::Result<Self> {
        let paths: Vec<PathBuf> = (0..PARTITIONS)
            .map(|i| dir.join(format!("part-{i:03}.jsonl")))
            .collect();
        let writers = paths
            .iter()
            .map(|p| std::fs::File::create(p).map(|f| BufWriter::with_capacity(64 << 10, f)))
            .collect::<Result<_, _>>()?;
        Ok(Self { paths, writers })
    }

    fn push(&mut self, row: &Row) -> std::io::Result<()> {
        let w = &mut self.writers[partition_of(&row.keys, PARTITIONS)];
        serde_json::to_writer(&mut *w, row)?;
        w.write_all(b"\n")
    }

    fn finish(self) -> std::io::Result<Vec<PathBuf>> {
        for mut w in self.writers {
            w.flush()?;
        }
        Ok(self.paths)
    }
}

fn spill_file(key: &str, bytes: bytes::Bytes, spill: &mut Spill) -> Result<(), String> {
    let bad = |e: &dyn std::fmt::Display| format!("{key}: {e}");
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| bad(&e))?
        .build()
        .map_err(|e| bad(&e))?;
    for batch in reader {
        let batch = batch.map_err(|e| bad(&e))?;
        let text = |name: &str| string_column(&batch, name).map_err(|e| bad(&e));
        let (ids, names, keys, news, olds, shards, seqs) = (
            text("event_id")?,
            text("event_name")?,
            text("keys")?,
            text("new_image")?,
            text("old_image")?,
            text("shard_id")?,
            text("sequence_number")?,
        );
        let times = event_time_column(&batch).map_err(|e| bad(&e))?;
        let opt = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_owned());
        for i in 0..batch.num_rows() {
            let name = names.value(i);
            if name == crate::encode::record::QUARANTINED {
                // Not a change of any known item: listed by `verify`, re-processed by hand.
                continue;
            }
            let row = Row {
                keys: keys.value(i).to_owned(),
                time_ms: times.value(i),
                order: order_key(opt(&shards, i).as_deref(), opt(&seqs, i).as_deref()),
                snapshot: name == crate::encode::record::SNAPSHOT,
                // A change without a new image deletes the item (REMOVE, and the name DynamoDB
                // Local gives TTL deletions).
                remove: name == "REMOVE" || (name != "SNAPSHOT" && news.is_null(i)),
                new_image: opt(&news, i),
                old_image: opt(&olds, i),
                event_id: ids.value(i).to_owned(),
            };
            spill.push(&row).map_err(|e| bad(&e))?;
        }
    }
    Ok(())
}

#[derive(Debug, Default)]
struct Summary {
    items: u64,
    from_changes: u64,
    absent: u64,
}

fn output_schema() -> Arc<Schema> {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("keys", DataType::Utf8, false),
        Field::new("item", DataType::Utf8, false),
        Field::new("source_event_id", DataType::Utf8, false),
        Field::new("source_event_time", ts, false),
    ]))
}

fn fold_all(paths: &[PathBuf], as_of_ms: i64, out: &Path) -> Result<Summary, String> {
    let io = |e: &dyn std::fmt::Display| e.to_string();
    let file = std::fs::File::create(out).map_err(|e| io(&e))?;
    let mut writer = ArrowWriter::try_new(file, output_schema(), Some(writer_properties()))
        .map_err(|e| io(&e))?;
    let mut summary = Summary::default();
    for path in paths {
        let mut states: HashMap<String, KeyState> = HashMap::new();
        let reader = std::io::BufReader::new(std::fs::File::open(path).map_err(|e| io(&e))?);
        for line in reader.lines() {
            let line = line.map_err(|e| io(&e))?;
            let row: Row = serde_json::from_str(&line).map_err(|e| io(&e))?;
            states
                .entry(row.keys.clone())
                .or_default()
                .add(row, as_of_ms);
        }
        let mut items: Vec<(String, String, Row)> = Vec::new();
        for (k, s) in states {
            match s.resolve() {
                Some((item, row)) => items.push((k, item, row)),
                None => summary.absent += 1,
            }
        }
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let mut keys = StringBuilder::new();
        let mut item_col = StringBuilder::new();
        let mut ids = StringBuilder::new();
        let mut times = TimestampMillisecondBuilder::new();
        for (k, item, row) in &items {
            keys.append_value(k);
            item_col.append_value(item);
            ids.append_value(&row.event_id);
            times.append_value(row.time_ms);
            summary.items += 1;
            summary.from_changes += u64::from(!row.snapshot);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(keys.finish()),
            Arc::new(item_col.finish()),
            Arc::new(ids.finish()),
            Arc::new(times.finish().with_timezone("UTC")),
        ];
        let batch = RecordBatch::try_new(output_schema(), columns).map_err(|e| io(&e))?;
        if batch.num_rows() > 0 {
            writer.write(&batch).map_err(|e| io(&e))?;
            writer.flush().map_err(|e| io(&e))?;
        }
        let _ = std::fs::remove_file(path);
    }
    writer.close().map_err(|e| io(&e))?;
    Ok(summary)
}

/// The output as a file ready to publish; hashed as a stream, never read into memory whole.
fn spooled(path: &Path, rows: u64) -> std::io::Result<SpooledFile> {
    let mut hasher = Sha256::new();
    let size_bytes = std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    Ok(SpooledFile {
        path: path.to_owned(),
        sha256: hasher.finalize().into(),
        size_bytes,
        rows,
    })
}
