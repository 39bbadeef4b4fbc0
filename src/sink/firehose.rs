//! Firehose output: a thin typed wrapper around PutRecordBatch that delivers packed records
//! (see [`super::aggregate`]) and comes back only when every one of them is acknowledged.
//!
//! PutRecordBatch succeeds as a call while failing some of its entries (`FailedPutCount` > 0,
//! an `ErrorCode` per failed entry). Only those entries are sent again, after a backoff with
//! jitter; throttling and 5xx answers of the whole call back off the same way. The caller moves a
//! shard's checkpoint only after [`FirehoseSink::deliver`] returns `Ok`, so a record is either
//! acknowledged by Firehose or read again from the stream after a restart. Firehose may store
//! entries resent after a failure after later ones: the `sequence_number` and `event_time` fields
//! restore the order (docs/ARCHITECTURE.md, "Firehose output").

use super::aggregate::{batches, billed_bytes};
use crate::archive::ArchiveUri;
use crate::archive::{ArchiveSink, Published, SinkError};
use crate::backoff::Backoff;
use crate::metrics::{Metric, Metrics};
use aws_sdk_firehose::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const RETRY_BASE: Duration = Duration::from_millis(100);
const RETRY_CAP: Duration = Duration::from_secs(10);
/// Attempts a call still gets once shutdown has begun: the rest is read again after a restart.
const ATTEMPTS_AFTER_STOP: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum FirehoseError {
    #[error("Firehose delivery stream `{stream}` does not exist in this account and region; create it or fix --firehose")]
    NotFound { stream: String },
    #[error("access denied to Firehose delivery stream `{stream}`: grant the task role firehose:PutRecordBatch and firehose:DescribeDeliveryStream on it ({message})")]
    AccessDenied { stream: String, message: String },
    #[error("Firehose delivery stream `{stream}` cannot use its KMS key ({message}); fix the key's policy or state")]
    Kms { stream: String, message: String },
    #[error("Firehose {operation} on `{stream}` failed: {message}")]
    Call {
        operation: &'static str,
        stream: String,
        message: String,
        retryable: bool,
    },
    #[error("stopping with {unacknowledged} Firehose records not yet acknowledged; their stream records are read again after a restart")]
    Stopped { unacknowledged: usize },
    #[error("a stream record of table `{table}` (event {event_id}) is {bytes} bytes as a JSON line, more than one Firehose record holds ({limit} bytes); it is not sent (nor checkpointed). Give --overflow-archive s3://bucket/prefix to write such records whole to S3 with a pointer line in Firehose")]
    Oversize {
        table: String,
        event_id: String,
        bytes: usize,
        limit: usize,
    },
    #[error("writing an oversize record to the overflow archive: {0}")]
    Overflow(SinkError),
    /// The shard's lease was not renewed recently enough to send on: another worker may own it.
    #[error("the shard's lease may belong to another worker now; nothing more is sent")]
    LeaseNotHeld,
}

impl FirehoseError {
    /// The delivery stream or its permissions must be fixed (exit status 2). An oversize record
    /// stops the worker too, but as a failure of the run (exit 1): the data, not the setup.
    pub fn is_config(&self) -> bool {
        match self {
            Self::NotFound { .. } | Self::AccessDenied { .. } | Self::Kms { .. } => true,
            Self::Overflow(e) => matches!(
                e,
                SinkError::AccessDenied { .. } | SinkError::NoSuchBucket { .. }
            ),
            _ => false,
        }
    }

    /// Whether a later attempt can succeed without an operator.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Call { retryable, .. } => *retryable,
            Self::Stopped { .. } | Self::LeaseNotHeld => true,
            Self::Overflow(e) => e.is_retryable(),
            Self::NotFound { .. } | Self::AccessDenied { .. } | Self::Kms { .. } => false,
            Self::Oversize { .. } => false,
        }
    }
}

/// What one delivery sent, for metrics and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub records: u64,
    pub bytes: u64,
    pub billed_bytes: u64,
    pub calls: u64,
    pub failed_entries: u64,
}

/// Where oversize lines go: an archive location (S3 in production) and its URI for pointers.
#[derive(Debug, Clone)]
pub struct Overflow {
    pub sink: ArchiveSink,
    pub uri: ArchiveUri,
}

#[derive(Clone)]
pub struct FirehoseSink {
    client: aws_sdk_firehose::Client,
    stream: String,
    overflow: Option<Overflow>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for FirehoseSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirehoseSink")
            .field("stream", &self.stream)
            .field("overflow", &self.overflow)
            .finish_non_exhaustive()
    }
}

impl FirehoseSink {
    pub fn new(
        client: aws_sdk_firehose::Client,
        stream: String,
        overflow: Option<Overflow>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            client,
            stream,
            overflow,
            metrics,
        }
    }

    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Where oversize records go, if anywhere.
    pub fn overflow_store(&self) -> Option<&ArchiveSink> {
        self.overflow.as_ref().map(|o| &o.sink)
    }

    pub fn has_overflow(&self) -> bool {
        self.overflow.is_some()
    }

    /// Fails early, naming the stream, when it does not exist or cannot be reached; and checks the
    /// overflow location can be written.
    pub async fn check_ready(&self) -> Result<(), FirehoseError> {
        let described = self
            .client
            .describe_delivery_stream()
            .delivery_stream_name(&self.stream)
            .send()
            .await;
        match described {
            Ok(out) => {
                if let Some(d) = out.delivery_stream_description() {
                    let status = d.delivery_stream_status().as_str();
                    if status != "ACTIVE" {
                        tracing::warn!(stream = %self.stream, status, "the Firehose delivery stream is not ACTIVE; deliveries are retried until it is");
                    }
                }
            }
            Err(e) => match self.classify("DescribeDeliveryStream", e) {
                // What an operator must fix stops the start; anything else (throttling, an answer
                // this SDK cannot read: moto leaves out fields AWS sends) is left to PutRecordBatch,
                // which retries.
                FirehoseError::Call { message, .. } => {
                    tracing::warn!(stream = %self.stream, "could not describe the Firehose delivery stream; going on: {message}");
                }
                fatal => return Err(fatal),
            },
        }
        if let Some(o) = &self.overflow {
            o.sink
                .check_writable()
                .await
                .map_err(FirehoseError::Overflow)?;
        }
        Ok(())
    }

    /// Writes a line too long for Firehose whole to the overflow location (create-only, under a
    /// name fixed by the record, so a retry after a crash lands on the same object) and returns
    /// its URI for the pointer line.
    pub async fn write_overflow(
        &self,
        key: &str,
        line: &[u8],
        spool_dir: &std::path::Path,
    ) -> Result<Option<String>, FirehoseError> {
        let Some(o) = &self.overflow else {
            return Ok(None);
        };
        let published = o
            .sink
            .publish_bytes(key, line, spool_dir)
            .await
            .map_err(FirehoseError::Overflow)?;
        if published == Published::Created {
            self.metrics.inc(Metric::FirehoseOverflowObjects, &[], 1);
        }
        Ok(Some(o.uri.describe(key)))
    }

    /// Sends `records` in as few calls as the limits allow and returns once Firehose has
    /// acknowledged every one. Failed entries are sent again, alone, after a backoff; a
    /// configuration error (no such stream, access denied, KMS) returns at once. After `stop`,
    /// a few attempts are still made, then [`FirehoseError::Stopped`]. `lease_held` is asked
    /// before every attempt; once it says no, [`FirehoseError::LeaseNotHeld`].
    pub async fn deliver(
        &self,
        table: &str,
        records: Vec<Vec<u8>>,
        stop: &CancellationToken,
        lease_held: &(dyn Fn() -> bool + Sync),
    ) -> Result<Delivered, FirehoseError> {
        let mut total = Delivered::default();
        let labels = [("table", table)];
        let mut calls = batches(records).into_iter();
        let mut backoff = Backoff::new(RETRY_BASE, RETRY_CAP);
        let mut attempts_after_stop = 0;
        while let Some(call) = calls.next() {
            let mut pending = call;
            while !pending.is_empty() {
                if stop.is_cancelled() {
                    attempts_after_stop += 1;
                    if attempts_after_stop > ATTEMPTS_AFTER_STOP {
                        let unacknowledged = pending.len() + calls.map(|c| c.len()).sum::<usize>();
                        return Err(FirehoseError::Stopped { unacknowledged });
                    }
                }
                // Fenced before every attempt, retries included: a worker whose lease may be
                // someone else's sends nothing more (the new owner reads these records again).
                if !lease_held() {
                    return Err(FirehoseError::LeaseNotHeld);
                }
                let entries = pending
                    .iter()
                    .map(|r| {
                        Record::builder()
                            .data(Blob::new(r.clone()))
                            .build()
                            .expect("data is set")
                    })
                    .collect::<Vec<_>>();
                total.calls += 1;
                self.metrics.inc(Metric::FirehoseCalls, &labels, 1);
                let result = self
                    .client
                    .put_record_batch()
                    .delivery_stream_name(&self.stream)
                    .set_records(Some(entries))
                    .send()
                    .await;
                let failed: Vec<Vec<u8>> = match result {
                    Ok(out) => {
                        let responses = out.request_responses();
                        if responses.len() != pending.len() {
                            // Cannot tell which entries failed: all are sent again (a duplicate
                            // is recoverable by event_id, a loss is not).
                            tracing::warn!(stream = %self.stream, sent = pending.len(), answered = responses.len(), "PutRecordBatch answered for a different number of records; sending the whole call again");
                            self.metrics.inc(Metric::Errors, &[("kind", "firehose")], 1);
                            std::mem::take(&mut pending)
                        } else {
                            let (acked, failed) =
                                self.split_answers(table, std::mem::take(&mut pending), responses);
                            total.records += acked.records;
                            total.bytes += acked.bytes;
                            total.billed_bytes += acked.billed_bytes;
                            total.failed_entries += failed.len() as u64;
                            failed
                        }
                    }
                    Err(e) => {
                        let err = self.classify("PutRecordBatch", e);
                        if !err.is_retryable() {
                            return Err(err);
                        }
                        self.metrics.inc(Metric::Errors, &[("kind", "firehose")], 1);
                        tracing::warn!(stream = %self.stream, records = pending.len(), "PutRecordBatch failed; retrying: {err}");
                        std::mem::take(&mut pending)
                    }
                };
                if failed.is_empty() {
                    backoff.reset();
                } else {
                    let delay = backoff.next_delay();
                    self.metrics.inc(Metric::FirehoseRetries, &labels, 1);
                    tracing::debug!(stream = %self.stream, entries = failed.len(), "sending failed entries again in {delay:?}");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stop.cancelled() => {}
                    }
                    pending = failed;
                }
            }
        }
        Ok(total)
    }

    /// Sorts one call's records by its answers: the acknowledged ones are counted (once per call,
    /// not per record), the failed ones are returned, in order, to be sent again.
    fn split_answers(
        &self,
        table: &str,
        sent: Vec<Vec<u8>>,
        answers: &[aws_sdk_firehose::types::PutRecordBatchResponseEntry],
    ) -> (Delivered, Vec<Vec<u8>>) {
        let mut acked = Delivered::default();
        let mut failed = Vec::new();
        let mut codes: std::collections::BTreeMap<&str, u64> = Default::default();
        for (record, answer) in sent.into_iter().zip(answers) {
            match answer.error_code() {
                Some(code) => {
                    *codes.entry(code).or_default() += 1;
                    failed.push(record);
                }
                None => {
                    acked.records += 1;
                    acked.bytes += record.len() as u64;
                    acked.billed_bytes += billed_bytes(record.len());
                }
            }
        }
        let labels = [("table", table)];
        for (name, n) in [
            (Metric::FirehoseRecords, acked.records),
            (Metric::FirehoseBytes, acked.bytes),
            (Metric::FirehoseBilledBytes, acked.billed_bytes),
        ] {
            if n > 0 {
                self.metrics.inc(name, &labels, n);
            }
        }
        for (code, n) in codes {
            self.metrics.inc(
                Metric::FirehoseFailedEntries,
                &[("table", table), ("code", code)],
                n,
            );
        }
        (acked, failed)
    }

    fn classify<E>(
        &self,
        operation: &'static str,
        e: SdkError<E, aws_smithy_runtime_api::http::Response>,
    ) -> FirehoseError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let code = e.code().map(str::to_owned);
        let http = match &e {
            SdkError::ServiceError(s) => Some(s.raw().status().as_u16()),
            SdkError::ResponseError(r) => Some(r.raw().status().as_u16()),
            _ => None,
        };
        let message = DisplayErrorContext(&e).to_string();
        let stream = self.stream.clone();
        match code.as_deref() {
            Some("ResourceNotFoundException") => return FirehoseError::NotFound { stream },
            Some("AccessDeniedException") => {
                return FirehoseError::AccessDenied { stream, message }
            }
            Some("InvalidKMSResourceException") => return FirehoseError::Kms { stream, message },
            _ => {}
        }
        if http == Some(403) {
            return FirehoseError::AccessDenied { stream, message };
        }
        let retryable = match &e {
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => true,
            _ => {
                http.is_some_and(|s| s >= 500 || s == 429)
                    || matches!(
                        code.as_deref(),
                        Some(
                            "ServiceUnavailableException"
                                | "LimitExceededException"
                                | "ThrottlingException"
                        )
                    )
            }
        };
        FirehoseError::Call {
            operation,
            stream,
            message,
            retryable,
        }
    }
}
