//! Converting a whole export: read and check the manifests, convert every data file not yet done
//! (in parallel), mark each as done after its files are published, and mark the export finished.
//!
//! ```text
//! <table>/dt=<day>/export-<export id>-<data file>.parquet     the rows
//! <table>/_imports/<export id>/<data file>.done.json          a data file is fully archived
//! <table>/_imports/<export id>/finished.json                  every data file is
//! ```
//!
//! Outputs are create-only under deterministic names, so a data file converted again after a
//! crash lands on the files already there instead of beside them.

use super::convert::{self, Conversion};
use super::manifest::{self, DataFile, ExportType};
use super::source::ExportSource;
use super::ExportError;
use crate::archive::ArchiveSink;
use crate::progress::{self, Labels, Progress, ProgressMode};
use crate::types::TableName;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct Settings {
    pub sink: ArchiveSink,
    /// The table the export is archived under.
    pub table: TableName,
    /// The table the export must be of, when it is not `table` (a renamed table, on purpose).
    pub from_table: Option<TableName>,
    /// For full exports; `None`: learned from DescribeTable.
    pub key_names: Option<Vec<String>>,
    pub parallel: usize,
    pub spool_dir: PathBuf,
    pub progress: ProgressMode,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DoneMarker {
    pub data_file: String,
    pub items: u64,
    pub outputs: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FinishedMarker {
    pub export_arn: String,
    pub export_type: String,
    pub table: String,
    pub items: u64,
    pub data_files: u64,
    pub finished_at: String,
    pub archiver_version: String,
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Finished {
        marker: FinishedMarker,
        items_this_run: u64,
        elapsed: Duration,
    },
    AlreadyFinished(FinishedMarker),
    Stopped {
        done: u64,
        total: u64,
    },
}

/// The export must be of `--table` (or of `--from-table`, when given): the manifest names it in
/// `tableArn`. An export filed under the wrong table would put another table's items into its
/// archive, where `snapshot` and `history` would take them for its own.
fn check_table(summary: &manifest::Summary, settings: &Settings) -> Result<(), ExportError> {
    let expected = settings.from_table.as_ref().unwrap_or(&settings.table);
    let Some(arn) = &summary.table_arn else {
        tracing::warn!(export = %summary.export_id, "the export's manifest names no tableArn; it cannot be checked against --table");
        return Ok(());
    };
    let exported = arn.rsplit_once(":table/").map_or(arn.as_str(), |(_, t)| t);
    if exported == expected.as_str() {
        return Ok(());
    }
    Err(ExportError::WrongTable {
        exported: exported.to_owned(),
        table_arn: arn.clone(),
        expected: expected.to_string(),
        table: settings.table.to_string(),
    })
}

/// Reads a manifest and checks it against its `.md5` (or `.checksum`) file when there is one.
async fn checked_manifest(source: &ExportSource, name: &str) -> Result<Vec<u8>, ExportError> {
    let bytes = source.read(name).await?;
    let stem = name.strip_suffix(".json").unwrap_or(name);
    let mut checked = false;
    for ext in ["md5", "checksum"] {
        let sum_name = format!("{stem}.{ext}");
        if let Some(sum) = source.read_optional(&sum_name).await? {
            manifest::check_md5(&bytes, &sum).map_err(|message| ExportError::Corrupt {
                location: source.location(name),
                message,
            })?;
            checked = true;
            break;
        }
    }
    if !checked {
        tracing::warn!(manifest = %source.location(name), "no checksum file beside the manifest; it is used unchecked");
    }
    Ok(bytes)
}

pub async fn import(
    source: &ExportSource,
    dynamodb: &aws_sdk_dynamodb::Client,
    settings: &Settings,
    stop: &CancellationToken,
) -> Result<Outcome, ExportError> {
    let summary_bytes = checked_manifest(source, "manifest-summary.json").await?;
    let summary =
        manifest::parse_summary(&summary_bytes).map_err(|message| ExportError::Manifest {
            location: source.location("manifest-summary.json"),
            message,
        })?;
    let files_bytes = checked_manifest(source, "manifest-files.json").await?;
    let files =
        manifest::parse_files(&files_bytes, &summary).map_err(|message| ExportError::Manifest {
            location: source.location("manifest-files.json"),
            message,
        })?;
    let table = &settings.table;
    check_table(&summary, settings)?;
    let sink = &settings.sink;
    let prefix = crate::archive::layout::imports_dir(table, &summary.export_id);
    let markers = sink.list(&prefix).await?;
    let finished_key = format!("{prefix}finished.json");
    if markers.contains(&finished_key) {
        let marker = sink.read_json(&finished_key).await?;
        return Ok(Outcome::AlreadyFinished(marker));
    }
    let key_names = match (summary.export_type, &settings.key_names) {
        (ExportType::Incremental, _) => Vec::new(),
        (ExportType::Full, Some(k)) => k.clone(),
        (ExportType::Full, None) => key_names_of(dynamodb, table).await?,
    };
    let pending: Vec<DataFile> = files
        .iter()
        .filter(|f| !markers.contains(&format!("{prefix}{}.done.json", f.stem())))
        .cloned()
        .collect();
    let already_done = (files.len() - pending.len()) as u64;
    if already_done > 0 {
        tracing::info!(export = %summary.export_id, done = already_done, left = pending.len(), "continuing an unfinished conversion");
    }
    let conv = Arc::new(Conversion {
        table: table.clone(),
        summary: summary.clone(),
        key_names,
        spool_dir: settings.spool_dir.clone(),
    });
    let progress = Arc::new(Progress::default());
    progress.parts_done.store(already_done, Ordering::Relaxed);
    let reporter_stop = CancellationToken::new();
    let reporter = progress::spawn_reporter(
        settings.progress,
        progress.clone(),
        Labels {
            title: format!("import-export {table}"),
            expected_items: pending.iter().map(|f| f.item_count).sum(),
            parts: ("files", files.len() as u64),
            capacity: None,
        },
        reporter_stop.clone(),
    );
    let began = Instant::now();
    let result = convert_all(source, settings, &conv, pending, &progress, stop).await;
    reporter_stop.cancel();
    let _ = reporter.await;
    let completed = result?;
    if !completed {
        return Ok(Outcome::Stopped {
            done: progress.parts_done.load(Ordering::Relaxed),
            total: files.len() as u64,
        });
    }
    let marker = FinishedMarker {
        export_arn: summary.export_arn.clone(),
        export_type: match summary.export_type {
            ExportType::Full => "FULL_EXPORT",
            ExportType::Incremental => "INCREMENTAL_EXPORT",
        }
        .to_owned(),
        table: table.to_string(),
        items: summary.item_count,
        data_files: files.len() as u64,
        finished_at: crate::clock::now_rfc3339(),
        archiver_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let body = serde_json::to_vec_pretty(&marker).expect("a marker serialises");
    sink.publish_bytes(&finished_key, &body, &settings.spool_dir)
        .await?;
    Ok(Outcome::Finished {
        marker,
        items_this_run: progress.items(),
        elapsed: began.elapsed(),
    })
}

async fn key_names_of(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &TableName,
) -> Result<Vec<String>, ExportError> {
    use crate::dynamo::DynamoError;
    match crate::dynamo::describe(dynamodb, table).await {
        Ok(info) => Ok(info.key_names()),
        Err(e @ (DynamoError::NoTable(_) | DynamoError::AccessDenied { .. })) => {
            Err(ExportError::KeyAttributes {
                table: table.to_string(),
                message: format!("DescribeTable: {e}"),
            })
        }
        // Throttling or a 5xx: running again helps; the hint about --key-attributes would not.
        Err(e) => Err(ExportError::Source {
            location: format!("DescribeTable {table}"),
            message: e.to_string(),
        }),
    }
}

/// Converts `pending` files, `parallel` at a time. `Ok(true)` when all are done; `Ok(false)` when
/// stopped first. The first failure stops new files from starting and is returned once the
/// files in flight are finished.
async fn convert_all(
    source: &ExportSource,
    settings: &Settings,
    conv: &Arc<Conversion>,
    pending: Vec<DataFile>,
    progress: &Arc<Progress>,
    stop: &CancellationToken,
) -> Result<bool, ExportError> {
    let mut tasks = tokio::task::JoinSet::new();
    let mut queue = pending.into_iter().peekable();
    let mut first_error = None;
    loop {
        while tasks.len() < settings.parallel && first_error.is_none() && !stop.is_cancelled() {
            let Some(data) = queue.next() else {
                break;
            };
            let (source, settings, conv, progress) = (
                source.clone(),
                settings.clone(),
                conv.clone(),
                progress.clone(),
            );
            tasks.spawn(async move {
                let stem = data.stem().to_owned();
                let r = one_file(&source, &settings, &conv, &data, &progress).await;
                (stem, r)
            });
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let (stem, result) = joined.expect("conversion tasks do not panic");
        match result {
            Ok(()) => {
                progress.parts_done.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::error!(data_file = %stem, "conversion failed: {e}");
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        // Complete when every file was started (and, the set being drained, finished).
        None => Ok(queue.peek().is_none()),
    }
}

async fn one_file(
    source: &ExportSource,
    settings: &Settings,
    conv: &Arc<Conversion>,
    data: &DataFile,
    progress: &Progress,
) -> Result<(), ExportError> {
    let location = source.data_location(&data.data_file_s3_key);
    let local = source
        .fetch(&data.data_file_s3_key, &settings.spool_dir)
        .await?;
    let (conv2, data2, path, loc2) = (
        conv.clone(),
        data.clone(),
        local.path.clone(),
        location.clone(),
    );
    let archived_at = crate::clock::now_ms();
    let converted = tokio::task::spawn_blocking(move || {
        convert::convert_file(&conv2, &data2, &path, &loc2, archived_at)
    })
    .await
    .expect("conversion does not panic");
    if local.downloaded {
        let _ = std::fs::remove_file(&local.path);
    }
    let converted = converted?;
    let mut outputs = Vec::new();
    let mut publish_error = None;
    for (dt, spooled) in &converted.outputs {
        let key = convert::output_key(&conv.table, dt, &conv.summary.export_id, data);
        if publish_error.is_none() {
            match settings.sink.publish_retrying(&key, spooled).await {
                Ok(_) => {
                    progress
                        .bytes
                        .fetch_add(spooled.size_bytes, Ordering::Relaxed);
                    progress.files.fetch_add(1, Ordering::Relaxed);
                    outputs.push(key);
                }
                Err(e) => publish_error = Some(e),
            }
        }
        let _ = std::fs::remove_file(&spooled.path);
    }
    if let Some(e) = publish_error {
        return Err(e.into());
    }
    let marker = DoneMarker {
        data_file: data.data_file_s3_key.clone(),
        items: converted.items,
        outputs,
    };
    let key = format!(
        "{}{}.done.json",
        crate::archive::layout::imports_dir(&conv.table, &conv.summary.export_id),
        data.stem()
    );
    let body = serde_json::to_vec_pretty(&marker).expect("a marker serialises");
    settings
        .sink
        .publish_bytes(&key, &body, &settings.spool_dir)
        .await?;
    progress.items.fetch_add(converted.items, Ordering::Relaxed);
    Ok(())
}
