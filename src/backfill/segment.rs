//! One segment of a parallel Scan: pages become SNAPSHOT rows, rows become files, and each file's
//! footer records where the segment goes on. A file is cut only between pages, so the position it
//! records is a page boundary, and the next run starts exactly after the file's last item.

use super::pace::Pacer;
use super::plan::{self, SegmentState};
use super::scan::{self, Item, Segment};
use super::BackfillError;
use crate::archive::{layout, ArchiveSink, Published};
use crate::backoff::Backoff;
use crate::dynamo::TableDescription;
use crate::encode::ddb_json::{decode_item, encode_item};
use crate::encode::parquet::{meta, SpoolWriter, SCHEMA_VERSION};
use crate::encode::record::{ChangeRecord, SNAPSHOT};
use crate::progress::Progress;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Rows are encoded as one row group per this many bytes of DynamoDB JSON (as the stream path).
pub const ROW_GROUP_BYTES: usize = 8 << 20;
const RETRY_BASE: Duration = Duration::from_millis(200);
const RETRY_CAP: Duration = Duration::from_secs(20);

/// What every segment of one scan shares.
pub struct JobCtx {
    pub client: aws_sdk_dynamodb::Client,
    pub table: TableDescription,
    pub scan_id: String,
    pub dt: String,
    pub total_segments: u32,
    pub consistent_read: bool,
    pub flush_size_bytes: u64,
    pub spool_dir: PathBuf,
    pub sink: ArchiveSink,
    pub pacer: Pacer,
    /// `--max-rcu`: pages are sized from it (see [`page_budget`]).
    pub max_rcu: Option<f64>,
    /// Segments read at the same time.
    pub parallel: usize,
    pub progress: Arc<Progress>,
    /// Cancelled on SIGINT/SIGTERM, or when another segment failed: a page in flight is
    /// abandoned (it is read again next time), the pages already read are published, then the
    /// segment stops.
    pub stop: CancellationToken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentOutcome {
    Finished { rows: u64, files: u32 },
    Stopped,
}

/// The file being filled.
struct OpenFile {
    writer: SpoolWriter,
    buffer: Vec<ChangeRecord>,
    buffered_bytes: usize,
    rows: u64,
}

pub async fn run_segment(
    ctx: Arc<JobCtx>,
    index: u32,
    mut state: SegmentState,
    mut previous_sha: Option<[u8; 32]>,
) -> Result<SegmentOutcome, BackfillError> {
    let segment = Segment {
        index,
        total: ctx.total_segments,
    };
    let mut start = decode_resume_key(&ctx, index, &state)?;
    let mut estimate = 1.0;
    let mut units_per_item: Option<f64> = None;
    let mut latency = Duration::ZERO;
    let mut open: Option<OpenFile> = None;
    while !state.finished {
        let limit = ctx
            .max_rcu
            .map(|rate| page_limit(page_budget(rate, ctx.parallel, latency), units_per_item));
        let asked = std::time::Instant::now();
        let page = tokio::select! {
            biased;
            _ = ctx.stop.cancelled() => None,
            page = next_page(&ctx, segment, start.clone(), estimate, limit) => Some(page?),
        };
        let Some(page) = page else { break };
        latency = asked.elapsed();
        estimate = page.consumed.max(0.5);
        if !page.items.is_empty() && page.consumed > 0.0 {
            units_per_item = Some(page.consumed / page.items.len() as f64);
        }
        ctx.progress.add_capacity(page.consumed);
        let read_at = crate::clock::now_ms();
        let file = match &mut open {
            Some(f) => f,
            None => open.insert(OpenFile {
                writer: SpoolWriter::create(&spool_path(&ctx, index, state.next_file))?,
                buffer: Vec::new(),
                buffered_bytes: 0,
                rows: 0,
            }),
        };
        for item in &page.items {
            let row = snapshot_row(&ctx, item, read_at)?;
            file.buffered_bytes += row.approx_bytes();
            ctx.progress.bytes.fetch_add(
                row.new_image.as_ref().map_or(0, |s| s.len()) as u64,
                Ordering::Relaxed,
            );
            file.buffer.push(row);
        }
        ctx.progress
            .items
            .fetch_add(page.items.len() as u64, Ordering::Relaxed);
        file.rows += page.items.len() as u64;
        if file.buffered_bytes >= ROW_GROUP_BYTES.min(ctx.flush_size_bytes as usize) {
            write_row_group(file)?;
        }
        start = page.last_key;
        let end = start.is_none();
        let full = file.writer.bytes_written() >= ctx.flush_size_bytes;
        if end || full || ctx.stop.is_cancelled() {
            let file = open.take().expect("a file is open");
            let resume =
                start
                    .as_ref()
                    .map(encode_item)
                    .transpose()
                    .map_err(|e| BackfillError::Item {
                        table: ctx.table.name.clone(),
                        message: format!("LastEvaluatedKey: {e}"),
                    })?;
            (state, previous_sha) =
                publish_file(&ctx, index, state, previous_sha, file, resume).await?;
            start = decode_resume_key(&ctx, index, &state)?;
        }
    }
    if state.finished {
        ctx.progress.parts_done.fetch_add(1, Ordering::Relaxed);
        Ok(SegmentOutcome::Finished {
            rows: state.rows,
            files: state.next_file,
        })
    } else {
        match open {
            // Stopped while the next page was awaited: keep the pages already read. `start` is
            // where the segment goes on after them.
            Some(file) if file.rows > 0 => {
                let resume = encode_resume_key(&ctx, start.as_ref())?;
                publish_file(&ctx, index, state, previous_sha, file, resume).await?;
            }
            Some(file) => {
                let _ = std::fs::remove_file(file.writer.path());
            }
            None => {}
        }
        Ok(SegmentOutcome::Stopped)
    }
}

fn encode_resume_key(ctx: &JobCtx, key: Option<&Item>) -> Result<Option<String>, BackfillError> {
    key.map(encode_item)
        .transpose()
        .map_err(|e| BackfillError::Item {
            table: ctx.table.name.clone(),
            message: format!("LastEvaluatedKey: {e}"),
        })
}

fn decode_resume_key(
    ctx: &JobCtx,
    index: u32,
    state: &SegmentState,
) -> Result<Option<Item>, BackfillError> {
    state
        .resume_key
        .as_deref()
        .map(decode_item)
        .transpose()
        .map_err(|e| BackfillError::State {
            // The key came from the footer of the segment's newest file.
            location: layout::snapshot_file_key(
                &ctx.table.name,
                &ctx.dt,
                &ctx.scan_id,
                index,
                state.next_file.saturating_sub(1),
            ),
            message: format!("its resume key is not DynamoDB JSON: {e}"),
        })
}

/// One Scan page, paced, retried with backoff on throttling and transient failures.
async fn next_page(
    ctx: &JobCtx,
    segment: Segment,
    start: Option<Item>,
    estimate: f64,
    limit: Option<i32>,
) -> Result<scan::Page, BackfillError> {
    let mut backoff = Backoff::new(RETRY_BASE, RETRY_CAP);
    loop {
        ctx.pacer.acquire(estimate).await;
        match scan::scan_page(
            &ctx.client,
            &ctx.table.name,
            segment,
            start.clone(),
            ctx.consistent_read,
            limit,
        )
        .await
        {
            Ok(page) => {
                ctx.pacer.settle(estimate, page.consumed);
                return Ok(page);
            }
            Err(e) if e.is_retryable() => {
                ctx.pacer.settle(estimate, 0.0);
                let delay = backoff.next_delay();
                tracing::warn!(table = %ctx.table.name, segment = segment.index, "Scan failed; retrying in {delay:?}: {e}");
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(BackfillError::Scan(e)),
        }
    }
}

/// The read capacity one page of a segment should cost under `--max-rcu`: a quarter of a second's
/// budget, so that consumption is smooth rather than 1 MB bursts (a 1 MB page costs 128 RCU) —
/// but no less than the segment's share of what one round trip must carry for the segments
/// together to reach the rate when the table answers slowly.
pub fn page_budget(rate: f64, parallel: usize, latency: Duration) -> f64 {
    let smooth = rate / 4.0;
    let share = rate * latency.as_secs_f64() * 1.5 / parallel.max(1) as f64;
    smooth.max(share).max(1.0)
}

/// Items per page so that a page costs about `budget` units, learned from the previous page;
/// a few items for the first.
fn page_limit(budget: f64, units_per_item: Option<f64>) -> i32 {
    const FIRST_PAGE_ITEMS: i32 = 10;
    match units_per_item {
        None => FIRST_PAGE_ITEMS,
        Some(u) => (budget / u.max(1e-3)).floor().clamp(1.0, 100_000.0) as i32,
    }
}

fn snapshot_row(ctx: &JobCtx, item: &Item, read_at_ms: i64) -> Result<ChangeRecord, BackfillError> {
    let bad = |message: String| BackfillError::Item {
        table: ctx.table.name.clone(),
        message,
    };
    let mut keys = Item::with_capacity(ctx.table.key.len());
    for (name, _) in &ctx.table.key {
        let v = item
            .get(name)
            .ok_or_else(|| bad(format!("an item lacks its key attribute `{name}`")))?;
        keys.insert(name.clone(), v.clone());
    }
    let keys = encode_item(&keys).map_err(|e| bad(e.to_string()))?;
    let new_image = encode_item(item).map_err(|e| bad(e.to_string()))?;
    Ok(ChangeRecord {
        event_id: plan::snapshot_event_id(&ctx.scan_id, &ctx.table.name, &keys),
        event_name: SNAPSHOT.to_owned(),
        event_time_ms: read_at_ms,
        table_name: ctx.table.name.clone(),
        stream_arn: None,
        shard_id: None,
        sequence_number: None,
        keys,
        new_image: Some(new_image),
        old_image: None,
        size_bytes: None,
        stream_view_type: None,
        user_identity: None,
        quarantine: None,
    })
}

fn write_row_group(file: &mut OpenFile) -> Result<(), BackfillError> {
    file.writer.write(&file.buffer, crate::clock::now_ms())?;
    file.buffer.clear();
    file.buffered_bytes = 0;
    Ok(())
}

/// Finishes, publishes (create-only, retried) and returns the segment's state after the file. If
/// a file of that name already exists (another run of the same scan got there first), the stored
/// file is the truth: its footer says where the segment goes on.
async fn publish_file(
    ctx: &JobCtx,
    index: u32,
    state: SegmentState,
    previous_sha: Option<[u8; 32]>,
    mut file: OpenFile,
    resume_key: Option<String>,
) -> Result<(SegmentState, Option<[u8; 32]>), BackfillError> {
    write_row_group(&mut file)?;
    let rows_total = state.rows + file.rows;
    let mut metadata = vec![
        (meta::TABLE.to_owned(), ctx.table.name.to_string()),
        (meta::RECORD_COUNT.to_owned(), file.rows.to_string()),
        (meta::SCHEMA_VERSION.to_owned(), SCHEMA_VERSION.to_owned()),
        (
            meta::LAYOUT_VERSION.to_owned(),
            crate::archive::layout::LAYOUT_VERSION.to_owned(),
        ),
        (
            meta::ARCHIVER_VERSION.to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        ),
        (meta::BACKFILL_SCAN_ID.to_owned(), ctx.scan_id.clone()),
        (
            meta::BACKFILL_SEGMENT.to_owned(),
            format!("{index}/{}", ctx.total_segments),
        ),
        (
            meta::BACKFILL_SEGMENT_ROWS.to_owned(),
            rows_total.to_string(),
        ),
    ];
    match &resume_key {
        Some(k) => metadata.push((meta::BACKFILL_RESUME_KEY.to_owned(), k.clone())),
        None => metadata.push((meta::BACKFILL_SEGMENT_END.to_owned(), "true".to_owned())),
    }
    if let Some(sha) = previous_sha {
        metadata.push((meta::PREVIOUS_SHA256.to_owned(), hex::encode(sha)));
        if let Some(n) = state.next_file.checked_sub(1) {
            let previous =
                layout::snapshot_file_key(&ctx.table.name, &ctx.dt, &ctx.scan_id, index, n);
            metadata.push((meta::PREVIOUS_FILE.to_owned(), previous));
        }
    }
    let spooled = file.writer.finish(metadata)?;
    let key = layout::snapshot_file_key(
        &ctx.table.name,
        &ctx.dt,
        &ctx.scan_id,
        index,
        state.next_file,
    );
    let published = ctx.sink.publish_retrying(&key, &spooled).await;
    let _ = std::fs::remove_file(&spooled.path);
    let published = published?;
    let sha = published.stored_sha256(spooled.sha256);
    match published {
        Published::Created => {
            ctx.progress.files.fetch_add(1, Ordering::Relaxed);
            Ok((
                SegmentState {
                    next_file: state.next_file + 1,
                    finished: resume_key.is_none(),
                    resume_key,
                    rows: rows_total,
                },
                Some(sha),
            ))
        }
        Published::AlreadyExisted { .. } => {
            tracing::info!(table = %ctx.table.name, key, "file already in the archive (an earlier run of this scan wrote it); continuing from its recorded position");
            let stored = ctx.sink.file_metadata(&key).await?;
            let adopted = plan::state_from_metadata(state.next_file, &stored).map_err(|m| {
                BackfillError::State {
                    location: key.clone(),
                    message: m,
                }
            })?;
            Ok((adopted, Some(sha)))
        }
    }
}

fn spool_path(ctx: &JobCtx, segment: u32, file: u32) -> PathBuf {
    ctx.spool_dir.join(format!(
        "backfill-{}-{}-{segment:06}-{file:06}.{}.parquet",
        ctx.table.name,
        ctx.scan_id,
        std::process::id()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_grow_when_the_table_answers_slowly() {
        let ms = Duration::from_millis;
        // (rate, parallel, latency, budget)
        let cases = [
            (100.0, 4, ms(20), 25.0),
            (100.0, 4, ms(2000), 75.0),
            (100.0, 1, ms(1000), 150.0),
            (2.0, 4, ms(10), 1.0),
            (1000.0, 16, ms(100), 250.0),
        ];
        for (rate, parallel, latency, want) in cases {
            let got = page_budget(rate, parallel, latency);
            assert!(
                (got - want).abs() < 1e-9,
                "{rate} {parallel} {latency:?}: {got}"
            );
        }
        assert_eq!(page_limit(25.0, None), 10, "a few items first");
        assert_eq!(page_limit(25.0, Some(0.5)), 50);
        assert_eq!(page_limit(0.1, Some(0.5)), 1, "never an empty page");
    }
}
