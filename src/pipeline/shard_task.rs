//! One shard, from records to durable output: the loop that owns a shard's lease (through its
//! [`Checkpointer`]), its [`Output`] and its reader. The reader runs beside it as a separate task
//! and hands it pages over a bounded channel (see `stream::reader`); when the output finds that
//! the archive already holds what comes next, the loop starts a new reader from where the
//! archive ends (`Flow::ReadFrom`).
//!
//! Losing the lease is an error, [`ShardError::Fenced`], that ends the loop wherever it is seen
//! (a conditional checkpoint that failed, a Firehose delivery no longer covered by a renewal);
//! the task then reports [`ShardOutcome::Lost`]. The design note is `src/pipeline/design.md`.

use super::checkpointer::Checkpointer;
use super::lease_control::{LeaseControl, StopMode};
use super::output::{report_gap, Flow, Gap, GapReason, Output};
use super::shard::{ReaderSpec, ShardError, ShardOutcome, ShardSettings, TaskEnd};
use crate::metrics::Metrics;
use crate::stream::api::Position;
use crate::stream::reader::{ReadEvent, ShardReader};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What one reader's run ended with.
enum Step {
    /// Start a new reader here.
    ReadFrom(Position),
    Done(ShardOutcome),
}

pub struct ShardTask<O: Output> {
    checkpointer: Checkpointer,
    output: O,
    readers: ReaderSpec,
    settings: ShardSettings,
    control: Arc<LeaseControl>,
    metrics: Arc<Metrics>,
}

impl<O: Output> ShardTask<O> {
    pub fn new(
        checkpointer: Checkpointer,
        output: O,
        readers: ReaderSpec,
        settings: ShardSettings,
        control: Arc<LeaseControl>,
    ) -> Self {
        let metrics = readers.metrics.clone();
        Self {
            checkpointer,
            output,
            readers,
            settings,
            control,
            metrics,
        }
    }

    pub async fn run(mut self, stop: CancellationToken) -> TaskEnd {
        let lease = self.checkpointer.lease();
        let (table, shard) = (lease.table.clone(), lease.shard.clone());
        let mut position = self.checkpointer.resume_position();
        let mut skip_before_ms = self.checkpointer.skip_before_ms();
        let result = loop {
            let reader = ShardReader {
                streams: self.readers.streams.clone(),
                table: table.clone(),
                stream: self.checkpointer.lease().stream.clone(),
                shard: shard.clone(),
                position: position.clone(),
                metrics: self.readers.metrics.clone(),
                running: self.readers.running.clone(),
                mean_record_bytes: crate::stream::reader::FIRST_GUESS_RECORD_BYTES,
                spool: self.readers.spool.clone(),
                page_budget: self.readers.page_budget.clone(),
            };
            let (tx, mut rx) = mpsc::channel(self.settings.budgets.read_ahead());
            let reader_stop = stop.child_token();
            // The reader is owned by its own task; this task awaits it below.
            let reader_task = tokio::spawn(tracing::Instrument::in_current_span(
                reader.run(tx, reader_stop.clone()),
            ));
            let step = self.follow(&mut rx, &stop, &mut skip_before_ms).await;
            reader_stop.cancel();
            drop(rx);
            let _ = reader_task.await;
            match step {
                Ok(Step::ReadFrom(p)) => {
                    tracing::info!(table = %table, shard = %shard, from = %p, "reading on after the file the archive holds");
                    position = p;
                }
                Ok(Step::Done(outcome)) => break Ok(outcome),
                Err(ShardError::Fenced(key)) => {
                    tracing::warn!(lease = %key, "lease lost: this worker stops reading the shard");
                    break Ok(ShardOutcome::Lost);
                }
                Err(e) => break Err(e),
            }
        };
        // A failed task's shard stays on /healthz's watch (it restarts with records waiting);
        // one that ended for good leaves it.
        if result.is_ok() {
            self.metrics.forget_shard(&table, &shard);
        } else {
            self.metrics.shard_reading_paused(&table, &shard);
        }
        // What is not durable lies after the checkpoint and is read again by the next owner.
        self.output.discard();
        TaskEnd {
            result,
            progressed: self.checkpointer.progressed(),
        }
    }

    async fn follow(
        &mut self,
        rx: &mut mpsc::Receiver<ReadEvent>,
        stop: &CancellationToken,
        skip_before_ms: &mut Option<i64>,
    ) -> Result<Step, ShardError> {
        loop {
            let deadline = self.output.flush_deadline();
            let flow = tokio::select! {
                biased;
                _ = stop.cancelled() => return self.stop().await.map(Step::Done),
                _ = sleep_until_opt(deadline) => self.output.flush(&mut self.checkpointer).await?,
                event = rx.recv() => match event {
                    Some(ReadEvent::Records(mut rows, ticket)) => {
                        if let Some(cutoff) = *skip_before_ms {
                            // `--start-position latest`: the shard's records before the instant it
                            // took effect are skipped; from the first one after it, every record.
                            let first = rows.iter().position(|r| r.event_time_ms >= cutoff);
                            if first != Some(0) && !rows.is_empty() {
                                self.output.skipped_before_start();
                            }
                            match first {
                                None => rows.clear(),
                                Some(first) => {
                                    rows.drain(..first);
                                    *skip_before_ms = None;
                                }
                            }
                        }
                        match rows.first() {
                            None => Flow::Continue,
                            Some(first) => {
                                let lease = self.checkpointer.lease();
                                self.metrics.shard_waiting(&lease.table, &lease.shard, first.event_time_ms);
                                let flow = self.output.push(rows, &mut self.checkpointer).await?;
                                // The rows are the output's now (under its own budget).
                                drop(ticket);
                                flow
                            }
                        }
                    }
                    Some(ReadEvent::Invalid(e)) => {
                        // A record with no place in the shard (no sequence number) stops it here:
                        // what follows waits, and /healthz must say so after the stall bound.
                        let lease = self.checkpointer.lease();
                        self.metrics.shard_waiting(&lease.table, &lease.shard, crate::clock::now_ms());
                        return Err(e.into());
                    }
                    Some(ReadEvent::Trimmed { after }) => {
                        let gap = Gap { after, reason: GapReason::Trimmed };
                        report_gap(&self.metrics, self.checkpointer.lease(), &gap);
                        self.output.gap(gap, &mut self.checkpointer).await?
                    }
                    Some(ReadEvent::Gone { after }) => {
                        let gap = Gap { after, reason: GapReason::Expired };
                        report_gap(&self.metrics, self.checkpointer.lease(), &gap);
                        match self.output.gap(gap, &mut self.checkpointer).await? {
                            Flow::Continue => self.end().await?,
                            flow => flow,
                        }
                    }
                    Some(ReadEvent::End) => self.end().await?,
                    None => return Err(ShardError::ReaderGone),
                },
            };
            let lease = self.checkpointer.lease();
            self.metrics.shard_still_waiting(
                &lease.table,
                &lease.shard,
                self.output.oldest_pending_ms(),
            );
            match flow {
                Flow::ReadFrom(p) => return Ok(Step::ReadFrom(p)),
                Flow::Finished => return Ok(Step::Done(ShardOutcome::Finished)),
                Flow::Continue => {}
            }
        }
    }

    /// The shard was read to its end: the output records the end and checkpoints `SHARD_END`.
    async fn end(&mut self) -> Result<Flow, ShardError> {
        Ok(match self.output.end(&mut self.checkpointer).await? {
            Flow::Continue => Flow::Finished,
            flow => flow,
        })
    }

    /// The stop token was cancelled: by shutdown, a steal request, or the lease cycle finding the
    /// lease lost.
    async fn stop(&mut self) -> Result<ShardOutcome, ShardError> {
        let mode = self.control.mode();
        if mode == StopMode::Lost {
            return Ok(ShardOutcome::Lost);
        }
        // What is buffered becomes durable and checkpointed; a file adopted on the way needs no
        // re-reading, since this task stops here.
        self.output.flush(&mut self.checkpointer).await?;
        let lease = self.checkpointer.lease();
        if mode == StopMode::HandOver {
            return match self.checkpointer.hand_over().await {
                Ok(()) => {
                    tracing::info!(table = %lease.table, shard = %lease.shard, "lease handed over to the worker that asked for it, after a final flush and checkpoint");
                    Ok(ShardOutcome::HandedOver)
                }
                Err(ShardError::Fenced(_)) => Ok(ShardOutcome::Lost),
                Err(e) => {
                    tracing::warn!(shard = %lease.shard, "could not hand the lease over: {e}");
                    Ok(ShardOutcome::Stopped)
                }
            };
        }
        self.checkpointer.release().await;
        Ok(ShardOutcome::Stopped)
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}
