//! One table's backfill: choose the scan (start one, continue an unfinished one, or report a
//! finished one), find where each segment stands, run the segments, and mark the scan finished.

use super::pace::Pacer;
use super::plan::{self, ScanChoice, SegmentState};
use super::segment::{self, JobCtx, SegmentOutcome};
use super::BackfillError;
use crate::archive::{layout, ArchiveSink};
use crate::dynamo::TableDescription;
use crate::progress::{self, Labels, Progress, ProgressMode};
use crate::types::TableName;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Segments scanned at once when `--parallel` is not given.
pub const DEFAULT_MAX_PARALLEL: usize = 16;
/// Footers read at once when a scan is resumed.
const RESUME_READS_IN_FLIGHT: usize = 16;

/// What a backfill needs besides the table.
#[derive(Debug, Clone)]
pub struct Settings {
    pub sink: ArchiveSink,
    pub segments: Option<u32>,
    pub parallel: Option<usize>,
    pub max_rcu: Option<f64>,
    pub consistent_read: bool,
    pub new_scan: bool,
    pub flush_size_bytes: u64,
    pub spool_dir: PathBuf,
    pub progress: ProgressMode,
}

/// `<table>/_backfill/<scan id>.started.json`: written once, when a scan starts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StartedMarker {
    pub scan_id: String,
    pub table: String,
    pub segments: u32,
    pub consistent_read: bool,
    pub started_at: String,
    pub item_count_estimate: u64,
    pub table_size_bytes: u64,
    pub archiver_version: String,
}

/// `<table>/_backfill/<scan id>.finished.json`: written once, when every segment is archived.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FinishedMarker {
    pub scan_id: String,
    pub table: String,
    pub segments: u32,
    pub items: u64,
    pub files: u64,
    pub started_at: String,
    pub finished_at: String,
    pub archiver_version: String,
}

/// What this run did.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunFigures {
    pub items: u64,
    pub bytes: u64,
    pub files: u64,
    pub rcu: f64,
    pub elapsed: Duration,
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Finished {
        marker: FinishedMarker,
        run: RunFigures,
    },
    AlreadyFinished(FinishedMarker),
    Stopped {
        scan_id: String,
        run: RunFigures,
    },
}

pub async fn backfill_table(
    client: &aws_sdk_dynamodb::Client,
    settings: &Settings,
    table: &TableName,
    stop: &CancellationToken,
) -> Result<Outcome, BackfillError> {
    let info = crate::dynamo::describe(client, table).await?;
    warn_about_the_stream(&info);
    let sink = &settings.sink;
    let markers = sink.list(&layout::backfill_dir(table)).await?;
    let started = match plan::choose_scan(&markers, settings.new_scan) {
        ScanChoice::Finished(id) => {
            let marker: FinishedMarker = sink
                .read_json(&layout::backfill_finished_key(table, &id))
                .await?;
            return Ok(Outcome::AlreadyFinished(marker));
        }
        ScanChoice::Resume(id) => {
            let marker: StartedMarker = sink
                .read_json(&layout::backfill_started_key(table, &id))
                .await?;
            if let Some(given) = settings.segments.filter(|n| *n != marker.segments) {
                return Err(BackfillError::SegmentsMismatch {
                    table: table.clone(),
                    scan_id: id,
                    started: marker.segments,
                    given,
                });
            }
            tracing::info!(table = %table, scan_id = %id, segments = marker.segments, "continuing the unfinished backfill");
            marker
        }
        ScanChoice::Start => start_scan(settings, &info).await?,
    };
    let scan_id = started.scan_id.clone();
    let dt = plan::scan_dt(&scan_id).ok_or_else(|| BackfillError::State {
        location: layout::backfill_started_key(table, &scan_id),
        message: "the scan id does not start with a date".into(),
    })?;
    let states = segment_states(sink, table, &dt, &scan_id, started.segments).await?;
    let done_rows: u64 = states.iter().map(|(s, _)| s.rows).sum();
    let progress = Arc::new(Progress::default());
    progress.parts_done.store(
        states.iter().filter(|(s, _)| s.finished).count() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    let parallel = settings
        .parallel
        .unwrap_or(DEFAULT_MAX_PARALLEL)
        .min(started.segments as usize)
        .max(1);
    let ctx = Arc::new(JobCtx {
        client: client.clone(),
        table: info.clone(),
        scan_id: scan_id.clone(),
        dt,
        total_segments: started.segments,
        consistent_read: started.consistent_read,
        flush_size_bytes: settings.flush_size_bytes,
        spool_dir: settings.spool_dir.clone(),
        sink: sink.clone(),
        pacer: Pacer::new(settings.max_rcu),
        max_rcu: settings.max_rcu,
        parallel,
        progress: progress.clone(),
        stop: stop.child_token(),
    });
    let reporter_stop = CancellationToken::new();
    let reporter = progress::spawn_reporter(
        settings.progress,
        progress.clone(),
        Labels {
            title: format!("backfill {table}"),
            expected_items: info.item_count.saturating_sub(done_rows),
            parts: ("segments", u64::from(started.segments)),
            capacity: Some("RCU"),
        },
        reporter_stop.clone(),
    );
    let began = Instant::now();
    let result = run_segments(ctx.clone(), states, parallel).await;
    reporter_stop.cancel();
    let _ = reporter.await;
    let run = RunFigures {
        items: progress.items(),
        bytes: progress.bytes.load(std::sync::atomic::Ordering::Relaxed),
        files: progress.files.load(std::sync::atomic::Ordering::Relaxed),
        rcu: progress.capacity(),
        elapsed: began.elapsed(),
    };
    match result? {
        None => Ok(Outcome::Stopped { scan_id, run }),
        Some((items, files)) => {
            let marker = FinishedMarker {
                scan_id: scan_id.clone(),
                table: table.to_string(),
                segments: started.segments,
                items,
                files,
                started_at: started.started_at.clone(),
                finished_at: crate::clock::now_rfc3339(),
                archiver_version: env!("CARGO_PKG_VERSION").to_owned(),
            };
            let key = layout::backfill_finished_key(table, &scan_id);
            let body = serde_json::to_vec_pretty(&marker).expect("a marker serialises");
            sink.publish_bytes(&key, &body, &settings.spool_dir).await?;
            Ok(Outcome::Finished { marker, run })
        }
    }
}

fn warn_about_the_stream(info: &TableDescription) {
    match info.stream.as_ref().map(|s| s.view_type.as_str()) {
        None => {
            tracing::warn!(table = %info.name, "the table has no stream: changes made during and after this scan will not be archived; enable a NEW_AND_OLD_IMAGES stream and start the worker before backfilling (docs/ARCHIVE.md, \"Snapshot and stream\")")
        }
        Some("KEYS_ONLY") => {
            tracing::warn!(table = %info.name, "the table's stream is KEYS_ONLY: the archive will not hold item images for later changes")
        }
        Some(_) => {}
    }
}

async fn start_scan(
    settings: &Settings,
    info: &TableDescription,
) -> Result<StartedMarker, BackfillError> {
    let scan_id = plan::scan_id(crate::clock::now_ms());
    let marker = StartedMarker {
        scan_id: scan_id.clone(),
        table: info.name.to_string(),
        segments: settings
            .segments
            .unwrap_or_else(|| plan::default_segments(info.size_bytes)),
        consistent_read: settings.consistent_read,
        started_at: crate::clock::now_rfc3339(),
        item_count_estimate: info.item_count,
        table_size_bytes: info.size_bytes,
        archiver_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let key = layout::backfill_started_key(&info.name, &scan_id);
    let body = serde_json::to_vec_pretty(&marker).expect("a marker serialises");
    match settings
        .sink
        .publish_bytes(&key, &body, &settings.spool_dir)
        .await?
    {
        crate::archive::Published::Created => {
            tracing::info!(table = %info.name, scan_id = %scan_id, segments = marker.segments, "starting a backfill");
            Ok(marker)
        }
        // Another run started a scan in the same second: join it.
        crate::archive::Published::AlreadyExisted { .. } => {
            Ok(settings.sink.read_json(&key).await?)
        }
    }
}

/// Each segment's state and the SHA-256 of its newest file, read from the newest file's footer.
async fn segment_states(
    sink: &ArchiveSink,
    table: &TableName,
    dt: &str,
    scan_id: &str,
    segments: u32,
) -> Result<Vec<(SegmentState, Option<[u8; 32]>)>, BackfillError> {
    let keys = sink
        .list(&layout::snapshot_files_prefix(table, dt, scan_id))
        .await?;
    let latest = plan::latest_files(&keys, scan_id);
    let mut out = vec![(SegmentState::FRESH, None); segments as usize];
    let mut reads = tokio::task::JoinSet::new();
    let mut pending = latest.into_iter().filter(|(seg, _)| *seg < segments);
    loop {
        while reads.len() < RESUME_READS_IN_FLIGHT {
            let Some((seg, (n, key))) = pending.next() else {
                break;
            };
            let sink = sink.clone();
            reads.spawn(async move {
                let read = async {
                    let metadata = sink.file_metadata(&key).await?;
                    let sha = sink.stored_sha256(&key).await?;
                    let state = plan::state_from_metadata(n, &metadata).map_err(|message| {
                        BackfillError::State {
                            location: key.clone(),
                            message,
                        }
                    })?;
                    Ok::<_, BackfillError>((state, Some(sha)))
                };
                (seg, read.await)
            });
        }
        let Some(joined) = reads.join_next().await else {
            break;
        };
        let (seg, state) = joined.expect("footer reads do not panic");
        out[seg as usize] = state?;
    }
    Ok(out)
}

/// Runs the unfinished segments, `parallel` at a time. `Some((items, files))` when every segment
/// is finished, `None` when stopped first. The first failure stops the others (each publishes
/// what it holds) and is returned.
async fn run_segments(
    ctx: Arc<JobCtx>,
    states: Vec<(SegmentState, Option<[u8; 32]>)>,
    parallel: usize,
) -> Result<Option<(u64, u64)>, BackfillError> {
    let mut totals = vec![None; states.len()];
    let mut tasks = tokio::task::JoinSet::new();
    let mut pending = states.into_iter().enumerate();
    let mut first_error = None;
    loop {
        while tasks.len() < parallel && !ctx.stop.is_cancelled() {
            let Some((index, (state, sha))) = pending.next() else {
                break;
            };
            if state.finished {
                totals[index] = Some((state.rows, u64::from(state.next_file)));
                continue;
            }
            let ctx = ctx.clone();
            tasks.spawn(async move {
                let r = segment::run_segment(ctx, index as u32, state, sha).await;
                (index, r)
            });
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let (index, result) = joined.expect("segment tasks do not panic");
        match result {
            Ok(SegmentOutcome::Finished { rows, files }) => {
                totals[index] = Some((rows, u64::from(files)));
            }
            Ok(SegmentOutcome::Stopped) => {}
            Err(e) => {
                tracing::error!(table = %ctx.table.name, segment = index, "segment failed: {e}");
                ctx.stop.cancel();
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if totals.iter().all(Option::is_some) {
        let (items, files) = totals
            .iter()
            .flatten()
            .fold((0, 0), |(i, f), (ri, rf)| (i + ri, f + rf));
        Ok(Some((items, files)))
    } else {
        Ok(None)
    }
}
