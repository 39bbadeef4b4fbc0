//! The Firehose half of a shard task: rows become JSON lines, packed into Firehose records as they
//! arrive; a full call's worth (or the flush interval) sends them, and the checkpoint moves to
//! the last line only after Firehose acknowledged every record (see `sink::firehose`).
//!
//! Delivery is at least once: a crash between the acknowledgement and the checkpoint sends those
//! lines again after the restart (Firehose has no create-only write to make that a no-op). Each
//! line's `event_id` names its stream record, so readers drop such repeats; the Parquet path, with
//! its deterministic file names, is the exactly-once one (docs/ARCHITECTURE.md).

use super::shard_task::{ShardError, ShardTask};
use super::Destination;
use crate::encode::json_line::{encode_line, pointer_line};
use crate::encode::record::ChangeRecord;
use crate::leases::{Checkpoint, LeaseError};
use crate::sink::aggregate::{Aggregator, MAX_RECORD_BYTES};
use crate::sink::firehose::FirehoseError;
use crate::sink::naming::dt_of_millis;
use crate::types::SequenceNumber;
use std::time::Instant;

/// Lines of one shard not yet acknowledged by Firehose.
#[derive(Debug)]
pub struct LineBatch {
    pub(super) records: Aggregator,
    pub(super) last: SequenceNumber,
    /// When the oldest line arrived: the flush deadline runs from here.
    pub(super) since: Instant,
}

impl ShardTask {
    /// Encodes a row as a line and adds it to the shard's batch; sends the batch once it fills a
    /// PutRecordBatch call or reaches `--flush-size`.
    pub(super) async fn push_line(&mut self, row: ChangeRecord) -> Result<(), ShardError> {
        let Destination::Firehose(firehose) = self.sink.clone() else {
            return Ok(());
        };
        let seq = row
            .sequence_number
            .clone()
            .expect("stream rows carry a sequence number");
        let archived_at = crate::clock::now_ms();
        let mut line = encode_line(&row, archived_at);
        if line.len() > MAX_RECORD_BYTES {
            // Too big for any Firehose record. What is before it goes first, so the checkpoint
            // stops right before this record if it cannot be placed.
            self.ship_lines().await?;
            if self.lost {
                return Ok(());
            }
            let key = format!(
                "{}/dt={}/{}_{}.json",
                self.lease.table,
                dt_of_millis(row.event_time_ms),
                self.lease.shard,
                seq
            );
            let uri = firehose
                .write_overflow(&key, line.as_bytes(), &self.settings.spool_dir)
                .await?;
            let Some(uri) = uri else {
                return Err(FirehoseError::Oversize {
                    table: self.lease.table.to_string(),
                    event_id: row.event_id,
                    bytes: line.len(),
                    limit: MAX_RECORD_BYTES,
                }
                .into());
            };
            tracing::info!(table = %self.lease.table, shard = %self.lease.shard, event_id = %row.event_id, bytes = line.len(), object = %uri, "a record too big for Firehose was written whole to the overflow archive; a pointer line goes to Firehose");
            line = pointer_line(&row, archived_at, &uri);
        }
        let batch = self.lines.get_or_insert_with(|| LineBatch {
            records: Aggregator::default(),
            last: seq.clone(),
            since: Instant::now(),
        });
        // A pointer line holds only keys and names (a few KiB at most), so it always fits.
        if let Err(e) = batch.records.push(line.as_bytes()) {
            return Err(FirehoseError::Oversize {
                table: self.lease.table.to_string(),
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
            let r = self.ship_lines().await;
            self.fenced(r)?;
        }
        Ok(())
    }

    /// Sends every pending line and checkpoints the last one once all are acknowledged.
    pub(super) async fn ship_lines(&mut self) -> Result<(), ShardError> {
        let Destination::Firehose(firehose) = self.sink.clone() else {
            return Ok(());
        };
        let Some(mut batch) = self.lines.take() else {
            return Ok(());
        };
        // As for files: a task whose lease may be someone else's sends nothing more.
        if !self.control.still_held(self.settings.failover_time) {
            return Err(ShardError::Lease(LeaseError::Lost(
                self.lease.key.as_str().to_owned(),
            )));
        }
        let started = Instant::now();
        let lines = batch.records.lines() as u64;
        let records = batch.records.take();
        let stop = self.stop.clone();
        let delivered = firehose
            .deliver(self.lease.table.as_str(), records, &stop)
            .await?;
        let labels = [("table", self.lease.table.as_str())];
        self.metrics
            .inc("archiver_records_written_total", &labels, lines);
        self.metrics
            .inc("archiver_bytes_written_total", &labels, delivered.bytes);
        self.checkpoint_with_retry(Checkpoint::At(batch.last.clone()), None)
            .await?;
        self.metrics
            .add_seconds("archiver_flush_seconds_sum", started.elapsed());
        self.metrics.inc("archiver_flush_seconds_count", &[], 1);
        tracing::debug!(table = %self.lease.table, shard = %self.lease.shard, lines, firehose_records = delivered.records, calls = delivered.calls, failed_entries = delivered.failed_entries, waited_ms = batch.since.elapsed().as_millis() as u64, checkpoint = %batch.last, "lines acknowledged by Firehose and checkpointed");
        Ok(())
    }
}
