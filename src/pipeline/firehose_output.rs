//! Firehose as a shard's output: rows become JSON lines, packed into Firehose records as they
//! arrive; a full call's worth (or the flush interval) sends them, and the checkpoint moves to
//! the last line only after Firehose acknowledged every record (see `sink::firehose`).
//!
//! Delivery is at least once: a crash between the acknowledgement and the checkpoint sends those
//! lines again after the restart (Firehose has no create-only write to make that a no-op), and a
//! worker cut off from the lease table may deliver a batch after another took the shard. Each
//! delivery attempt is fenced by the lease's last renewal (`lease_control`), which keeps that
//! window to a third of the failover time. Each line's `event_id` names its stream record, so
//! readers drop repeats; the Parquet path is the exactly-once one (docs/ARCHITECTURE.md).

use super::checkpointer::Checkpointer;
use super::lease_control::LeaseControl;
use super::output::{Flow, Gap, Output};
use super::shard::{ShardError, ShardSettings};
use crate::archive::layout::{self, dt_of_millis};
use crate::encode::json_line::{encode_line, pointer_line};
use crate::encode::record::ChangeRecord;
use crate::leases::Checkpoint;
use crate::metrics::{Metric, Metrics};
use crate::sink::aggregate::{Aggregator, MAX_RECORD_BYTES};
use crate::sink::firehose::{FirehoseError, FirehoseSink};
use crate::types::SequenceNumber;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Lines of one shard not yet acknowledged by Firehose.
struct LineBatch {
    records: Aggregator,
    last: SequenceNumber,
    /// When the oldest line arrived: the flush deadline runs from here.
    since: Instant,
    /// The oldest line's record's creation time (ms).
    first_time_ms: i64,
}

pub struct FirehoseOutput {
    firehose: Arc<FirehoseSink>,
    metrics: Arc<Metrics>,
    settings: ShardSettings,
    control: Arc<LeaseControl>,
    /// The task's stop token: deliveries give up a few attempts after it.
    stop: CancellationToken,
    lines: Option<LineBatch>,
}

impl FirehoseOutput {
    pub fn new(
        firehose: Arc<FirehoseSink>,
        metrics: Arc<Metrics>,
        settings: ShardSettings,
        control: Arc<LeaseControl>,
        stop: CancellationToken,
    ) -> Self {
        Self {
            firehose,
            metrics,
            settings,
            control,
            stop,
            lines: None,
        }
    }

    /// Encodes a row as a line and adds it to the shard's batch; sends the batch once it fills a
    /// PutRecordBatch call or reaches `--flush-size`.
    async fn push_line(
        &mut self,
        row: ChangeRecord,
        cp: &mut Checkpointer,
    ) -> Result<(), ShardError> {
        let Some(seq) = row.sequence_number.clone() else {
            return Err(ShardError::Archive(
                "a stream record without a sequence number".into(),
            ));
        };
        let archived_at = crate::clock::now_ms();
        let mut line = encode_line(&row, archived_at);
        if line.len() > MAX_RECORD_BYTES {
            // Too big for any Firehose record. What is before it goes first, so the checkpoint
            // stops right before this record if it cannot be placed.
            self.ship_lines(cp).await?;
            let lease = cp.lease();
            let key = layout::overflow_key(
                &lease.table,
                &dt_of_millis(row.event_time_ms),
                &lease.shard,
                &seq,
            );
            let uri = self
                .firehose
                .write_overflow(&key, line.as_bytes(), &self.settings.spool_dir)
                .await?;
            let Some(uri) = uri else {
                return Err(FirehoseError::Oversize {
                    table: lease.table.to_string(),
                    event_id: row.event_id,
                    bytes: line.len(),
                    limit: MAX_RECORD_BYTES,
                }
                .into());
            };
            tracing::info!(table = %lease.table, shard = %lease.shard, event_id = %row.event_id, bytes = line.len(), object = %uri, "a record too big for Firehose was written whole to the overflow archive; a pointer line goes to Firehose");
            line = pointer_line(&row, archived_at, &uri);
        }
        let first_time_ms = row.event_time_ms;
        let batch = self.lines.get_or_insert_with(|| LineBatch {
            first_time_ms,
            records: Aggregator::default(),
            last: seq.clone(),
            since: Instant::now(),
        });
        // A pointer line holds only keys and names (a few KiB at most), so it always fits.
        if let Err(e) = batch.records.push(line.as_bytes()) {
            return Err(FirehoseError::Oversize {
                table: cp.lease().table.to_string(),
                event_id: row.event_id,
                bytes: e.len,
                limit: MAX_RECORD_BYTES,
            }
            .into());
        }
        batch.last = seq;
        if batch.records.fills_a_call()
            || batch.records.bytes() as u64 >= self.settings.flush_size_bytes
        {
            self.ship_lines(cp).await?;
        }
        Ok(())
    }

    /// Sends every pending line and checkpoints the last one once all are acknowledged.
    async fn ship_lines(&mut self, cp: &mut Checkpointer) -> Result<(), ShardError> {
        let Some(mut batch) = self.lines.take() else {
            return Ok(());
        };
        let started = Instant::now();
        let lines = batch.records.lines() as u64;
        let records = batch.records.take();
        let (control, failover) = (self.control.clone(), self.settings.failover_time);
        let held = move || control.still_held(failover);
        let table = cp.lease().table.clone();
        let delivered = match self
            .firehose
            .deliver(table.as_str(), records, &self.stop, &held)
            .await
        {
            Err(FirehoseError::LeaseNotHeld) => {
                return Err(ShardError::Fenced(cp.lease().key.as_str().to_owned()))
            }
            other => other?,
        };
        let labels = [("table", table.as_str())];
        self.metrics.inc(Metric::RecordsWritten, &labels, lines);
        self.metrics
            .inc(Metric::BytesWritten, &labels, delivered.bytes);
        cp.commit(Checkpoint::At(batch.last.clone()), None).await?;
        self.metrics
            .add_seconds(Metric::FlushSecondsSum, started.elapsed());
        self.metrics.inc(Metric::FlushSecondsCount, &[], 1);
        tracing::debug!(table = %table, shard = %cp.lease().shard, lines, firehose_records = delivered.records, calls = delivered.calls, failed_entries = delivered.failed_entries, waited_ms = batch.since.elapsed().as_millis() as u64, checkpoint = %batch.last, "lines acknowledged by Firehose and checkpointed");
        Ok(())
    }
}

impl Output for FirehoseOutput {
    async fn push(
        &mut self,
        rows: Vec<ChangeRecord>,
        cp: &mut Checkpointer,
    ) -> Result<Flow, ShardError> {
        for row in rows {
            self.push_line(row, cp).await?;
        }
        Ok(Flow::Continue)
    }

    fn flush_deadline(&self) -> Option<Instant> {
        self.lines
            .as_ref()
            .map(|l| l.since + self.settings.flush_interval)
    }

    fn oldest_pending_ms(&self) -> Option<i64> {
        self.lines.as_ref().map(|l| l.first_time_ms)
    }

    async fn flush(&mut self, cp: &mut Checkpointer) -> Result<Flow, ShardError> {
        self.ship_lines(cp).await?;
        Ok(Flow::Continue)
    }

    async fn gap(&mut self, _gap: Gap, cp: &mut Checkpointer) -> Result<Flow, ShardError> {
        // Firehose mode records gaps in logs and metrics only (the shard task logs RECORDS LOST and counts it).
        self.flush(cp).await
    }

    async fn end(&mut self, cp: &mut Checkpointer) -> Result<Flow, ShardError> {
        self.ship_lines(cp).await?;
        // No file marks the end: the SHARD_END checkpoint alone lets the children start.
        cp.commit(Checkpoint::ShardEnd, None).await?;
        self.metrics.inc(
            Metric::ShardsFinished,
            &[("table", cp.lease().table.as_str())],
            1,
        );
        Ok(Flow::Continue)
    }

    fn discard(&mut self) {
        self.lines = None;
    }
}
