//! One shard's reader: a task that follows a shard with GetRecords and sends what it finds over a
//! bounded channel, so the next page is fetched while the previous one is encoded and uploaded.
//!
//! It answers each failure differently:
//! - expired iterator: a fresh one after the last record it read (nothing skipped, nothing twice);
//! - trimmed data: a loud error and a `Trimmed` event naming the lost range, then TRIM_HORIZON;
//! - shard gone (expired from the stream): a `Gone` event;
//! - throttling, 5xx, timeouts, unparseable responses: counted, logged, retried with backoff and
//!   jitter until shutdown.
//!
//! A busy shard is read continuously; after an empty page the reader waits [`IDLE_POLL`].
//!
//! **Pages are bounded per worker, not per shard.** Before each call the reader takes a
//! [`PageTicket`] for the page's expected bytes from the worker's [`READ_BUDGET_BYTES`]; the
//! ticket travels with the page and is given back when the writer has taken its rows. So the
//! pages a worker holds (being fetched, waiting in channels, being handed over) never exceed the
//! budget in expected bytes, whatever the shard count: with more shards than the budget has room
//! for, some readers wait for a ticket. No cycle can form: a ticket is given back by the shard's
//! writer taking the page, which never waits for a ticket.

use super::api::{self, Page, Position, StreamError};
use crate::backoff::Backoff;
use crate::encode::record::{ChangeRecord, RecordError};
use crate::encode::stream_json::RowSource;
use crate::metrics::{Metric, Metrics};
use crate::types::{SequenceNumber, ShardId, StreamArn, TableName};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// The wait after an empty page: about one call per second on an idle shard, as the KCL does.
pub const IDLE_POLL: Duration = Duration::from_secs(1);
const RETRY_BASE: Duration = Duration::from_millis(200);
const RETRY_CAP: Duration = Duration::from_secs(20);

/// What the reader tells the shard's writer, in stream order.
#[derive(Debug)]
pub enum ReadEvent {
    /// A non-empty page of records, as archive rows, with its share of the read budget (given
    /// back when dropped: drop it once the rows are handed on).
    Records(Vec<ChangeRecord>, PageTicket),
    /// A record that cannot become a row without inventing data; the rows before it were sent.
    /// Nothing after it is read: the shard stops there, loudly, rather than skip it.
    Invalid(RecordError),
    /// Records were trimmed before they were read: the gap starts after `after` (or at the
    /// shard's start when nothing had been read). Reading goes on from TRIM_HORIZON.
    Trimmed { after: Option<SequenceNumber> },
    /// The shard is closed and every record was read.
    End,
    /// The shard no longer exists in the stream (it expired): records after `after` (the last
    /// one read, if any) to its end can no longer be read.
    Gone { after: Option<SequenceNumber> },
}

pub struct ShardReader {
    pub streams: aws_sdk_dynamodbstreams::Client,
    pub table: TableName,
    pub stream: StreamArn,
    pub shard: ShardId,
    /// Where reading starts; moves to `After(last read)` as records arrive.
    pub position: Position,
    pub metrics: Arc<Metrics>,
    /// Shard readers running in this worker: they share [`READ_BUDGET_BYTES`] (see
    /// [`page_limit`]).
    pub running: Arc<std::sync::atomic::AtomicUsize>,
    /// The mean `SizeBytes` of the records read so far (a running average), for [`page_limit`].
    pub mean_record_bytes: usize,
    /// Waited for before each read: the spool volume's room (Parquet output only).
    pub spool: Option<crate::spool::SpoolRoom>,
    /// The worker's read budget, [`READ_BUDGET_BYTES`] permits of one byte (see [`page_budget`]).
    pub page_budget: Arc<Semaphore>,
}

/// A page's share of the worker's read budget, held from before the call until the page's rows
/// are handed on.
#[derive(Debug)]
pub struct PageTicket(#[allow(dead_code)] OwnedSemaphorePermit);

/// A worker's read budget: one permit per byte of [`READ_BUDGET_BYTES`].
pub fn page_budget() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(READ_BUDGET_BYTES))
}

/// The bytes a page of `limit` records is expected to hold in memory (see [`page_limit`]), at
/// most the whole budget so that one large page can always be read.
pub fn page_bytes(limit: i32, mean_record_bytes: usize) -> u32 {
    let bytes = limit.max(1) as usize * (3 * mean_record_bytes + RECORD_OVERHEAD_BYTES);
    bytes.min(READ_BUDGET_BYTES) as u32
}

/// Pages a worker holds at once, across all its shards, in expected bytes (each page takes its
/// share before it is read, see [`PageTicket`]). A parsed page of 1,000 records of 1 KB holds
/// several MB; 64 shards reading 1,000-record pages held hundreds of MB in the soak.
pub const READ_BUDGET_BYTES: usize = 32 << 20;
/// Pages of one shard in memory at once: one being fetched, one read ahead, one being encoded
/// (from [`MANY_SHARDS`] on; fewer shards read two ahead, and have room to spare).
const PAGES_PER_SHARD: usize = 3;
/// What a record holds besides its items' bytes (the row's other strings, its struct, and the
/// SDK's trees when a body is declined to the SDK): an estimate, not a measurement. Kept from
/// the SDK-only reader: the direct decoder holds less, so the budget is conservative.
const RECORD_OVERHEAD_BYTES: usize = 1024;
/// The first guess of a record's `SizeBytes`, before any is read.
pub const FIRST_GUESS_RECORD_BYTES: usize = 1024;
/// The smallest page asked for: smaller pages would mean many calls per second on a busy shard.
const MIN_PAGE_RECORDS: usize = 100;

/// The `Limit` of the next GetRecords call: this shard's share of [`READ_BUDGET_BYTES`] over
/// what a record is expected to hold (its bytes about three times: the body while it is
/// decoded, and the row's DynamoDB JSON, which is longer than `SizeBytes`), between
/// [`MIN_PAGE_RECORDS`] and the API's 1,000. Few shards read full pages; many shards, or big
/// items, read smaller ones. Smaller pages cost more calls only while a backlog is read.
pub fn page_limit(running: usize, mean_record_bytes: usize) -> i32 {
    let per_page = READ_BUDGET_BYTES / running.max(1) / PAGES_PER_SHARD;
    let per_record = 3 * mean_record_bytes + RECORD_OVERHEAD_BYTES;
    let records =
        (per_page / per_record).clamp(MIN_PAGE_RECORDS, api::MAX_RECORDS_PER_GET_RECORDS as usize);
    records as i32
}

/// From this many running shards on, each reads one page ahead instead of two.
pub const MANY_SHARDS: usize = 16;

impl ShardReader {
    /// Reads until the shard ends, the receiver is dropped, or `stop` is cancelled.
    pub async fn run(mut self, events: mpsc::Sender<ReadEvent>, stop: CancellationToken) {
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = self.read_loop(&events) => {}
        }
    }

    async fn read_loop(&mut self, events: &mpsc::Sender<ReadEvent>) {
        // Registered before the first call, so a shard that never reads successfully still shows
        // up as stuck on /healthz.
        self.metrics.touch_shard(&self.table, &self.shard);
        let mut iterator: Option<String> = None;
        let mut backoff = Backoff::new(RETRY_BASE, RETRY_CAP);
        let table = self.table.clone();
        let labels = [("table", table.as_str())];
        loop {
            let it = match &iterator {
                Some(it) => it.clone(),
                None => match api::shard_iterator(
                    &self.streams,
                    &self.stream,
                    &self.shard,
                    &self.position,
                )
                .await
                {
                    Ok(it) => {
                        backoff.reset();
                        iterator = Some(it.clone());
                        it
                    }
                    Err(StreamError::TrimmedData(msg)) => {
                        if !self.trimmed(events, &msg).await {
                            return;
                        }
                        continue;
                    }
                    Err(StreamError::NotFound(msg)) => {
                        tracing::warn!(table = %self.table, shard = %self.shard, "shard is gone from the stream: {msg}");
                        let _ = events
                            .send(ReadEvent::Gone {
                                after: self.last_read(),
                            })
                            .await;
                        return;
                    }
                    Err(e) => {
                        self.retry_later(&e, &mut backoff).await;
                        continue;
                    }
                },
            };
            let source = RowSource {
                table: &self.table,
                stream: &self.stream,
                shard: &self.shard,
            };
            if let Some(room) = &self.spool {
                room.wait(self.table.as_str(), self.shard.as_str()).await;
            }
            let limit = page_limit(
                self.running.load(std::sync::atomic::Ordering::Relaxed),
                self.mean_record_bytes,
            );
            let ticket = PageTicket(
                self.page_budget
                    .clone()
                    .acquire_many_owned(page_bytes(limit, self.mean_record_bytes))
                    .await
                    .expect("the read budget is never closed"),
            );
            let got = api::get_records(&self.streams, &it, limit, &source).await;
            // Only a page with rows keeps its ticket: an empty page, an error and the waits after
            // them (a second's idle poll, a backoff of up to 20 s) hold none, or idle and failing
            // shards would sit on the budget that busy ones read with.
            let mut ticket = match &got {
                Ok(page) if !page.rows.is_empty() => Some(ticket),
                _ => {
                    drop(ticket);
                    None
                }
            };
            match got {
                Ok(Page {
                    rows,
                    invalid,
                    next_iterator,
                    decoded_by_sdk,
                }) => {
                    backoff.reset();
                    self.metrics.touch_shard(&self.table, &self.shard);
                    let decoder = if decoded_by_sdk { "sdk" } else { "direct" };
                    self.metrics.inc(
                        Metric::GetRecordsPages,
                        &[("table", table.as_str()), ("decoder", decoder)],
                        1,
                    );
                    let empty = rows.is_empty();
                    if !empty {
                        let bytes: i64 = rows.iter().filter_map(|r| r.size_bytes).sum();
                        let page_mean = (bytes.max(0) as usize) / rows.len();
                        self.mean_record_bytes = (3 * self.mean_record_bytes + page_mean) / 4;
                    }
                    if let Some(last) = rows.last().and_then(|r| r.sequence_number.clone()) {
                        self.position = Position::After(last);
                    }
                    if let Some(newest) = rows.last() {
                        self.metrics.set_iterator_age(
                            &self.table,
                            &self.shard,
                            newest.event_time_ms,
                        );
                    } else if empty && invalid.is_none() {
                        // Caught up: the newest record's age no longer describes the lag.
                        self.metrics.clear_iterator_age(&self.table, &self.shard);
                    }
                    for q in rows.iter().filter(|r| r.quarantine.is_some()) {
                        let reason = q.quarantine.as_ref().map_or("", |q| q.reason.as_str());
                        tracing::warn!(table = %self.table, shard = %self.shard, sequence_number = %q.sequence_number.as_ref().map_or("", |s| s.as_str()), event_id = %q.event_id, "QUARANTINED: a stream record that cannot become a row is archived verbatim in its place (event_name QUARANTINED, column quarantined_record) and the shard goes on; see docs/OPERATIONS.md, \"Quarantined records\": {reason}");
                        self.metrics.inc(Metric::RecordsQuarantined, &labels, 1);
                    }
                    if !empty {
                        self.metrics
                            .inc(Metric::RecordsRead, &labels, rows.len() as u64);
                        let ticket = ticket.take().expect("a page with rows keeps its ticket");
                        if events.send(ReadEvent::Records(rows, ticket)).await.is_err() {
                            return;
                        }
                    }
                    if let Some(e) = invalid {
                        // The writer stops the shard on it; reading further would skip it.
                        let _ = events.send(ReadEvent::Invalid(e)).await;
                        return;
                    }
                    match next_iterator {
                        None => {
                            let _ = events.send(ReadEvent::End).await;
                            return;
                        }
                        Some(next) => iterator = Some(next),
                    }
                    if empty {
                        tokio::time::sleep(IDLE_POLL).await;
                    }
                }
                Err(StreamError::ExpiredIterator) => {
                    tracing::info!(table = %self.table, shard = %self.shard, position = %self.position, "shard iterator expired; opening a fresh one after the last record read");
                    self.metrics.inc(Metric::ExpiredIterators, &labels, 1);
                    iterator = None;
                }
                Err(StreamError::TrimmedData(msg)) => {
                    iterator = None;
                    if !self.trimmed(events, &msg).await {
                        return;
                    }
                }
                Err(StreamError::NotFound(msg)) => {
                    tracing::warn!(table = %self.table, shard = %self.shard, "shard is gone from the stream: {msg}");
                    let _ = events
                        .send(ReadEvent::Gone {
                            after: self.last_read(),
                        })
                        .await;
                    return;
                }
                Err(e) => {
                    // A stale iterator is cheap to replace and may be the cause.
                    if matches!(e, StreamError::Other(_)) {
                        iterator = None;
                    }
                    self.retry_later(&e, &mut backoff).await;
                }
            }
        }
    }

    /// Records a trim: loud, counted, sent on as an event; reading resumes at TRIM_HORIZON.
    async fn trimmed(&mut self, events: &mpsc::Sender<ReadEvent>, msg: &str) -> bool {
        if self.position == Position::TrimHorizon {
            // Trimmed even at TRIM_HORIZON. For a closed shard, nothing of it is readable any
            // more (DynamoDB Local answers so for a closed shard older than 24 hours): it is as
            // good as gone. For an open shard it means "no records yet" (DynamoDB Local answers
            // so for a new, empty shard; AWS returns an empty page): poll again later. Ending an
            // open shard here would lose everything written to it afterwards.
            return match api::list_shards(&self.streams, &self.stream).await {
                Ok(shards) => match shards.iter().find(|s| s.id == self.shard) {
                    Some(s) if s.ending_sequence.is_none() => {
                        tokio::time::sleep(IDLE_POLL).await;
                        true
                    }
                    _ => {
                        tracing::warn!(table = %self.table, shard = %self.shard, "shard is closed and its data is trimmed even at TRIM_HORIZON; treating the shard as gone: {msg}");
                        let _ = events
                            .send(ReadEvent::Gone {
                                after: self.last_read(),
                            })
                            .await;
                        false
                    }
                },
                Err(e) => {
                    tracing::warn!(table = %self.table, shard = %self.shard, "cannot tell whether a trimmed shard is closed; asking again: {e}");
                    tokio::time::sleep(IDLE_POLL).await;
                    true
                }
            };
        }
        let after = self.last_read();
        // The shard task logs and counts the gap (RECORDS LOST) and writes it into the chain.
        tracing::info!(table = %self.table, shard = %self.shard, "the stream trimmed records past this reader's position; reading on from TRIM_HORIZON: {msg}");
        self.position = Position::TrimHorizon;
        events.send(ReadEvent::Trimmed { after }).await.is_ok()
    }

    /// The last record read (or the position it started after), if any.
    fn last_read(&self) -> Option<SequenceNumber> {
        match &self.position {
            Position::After(s) => Some(s.clone()),
            _ => None,
        }
    }

    async fn retry_later(&self, e: &StreamError, backoff: &mut Backoff) {
        let delay = backoff.next_delay();
        self.metrics.inc(Metric::Errors, &[("kind", e.kind())], 1);
        if matches!(e, StreamError::Unparseable(_)) || backoff.attempts() > 3 {
            tracing::error!(table = %self.table, shard = %self.shard, kind = e.kind(), attempt = backoff.attempts(), "reading the shard failed; retrying in {delay:?}: {e}");
        } else {
            tracing::warn!(table = %self.table, shard = %self.shard, kind = e.kind(), "reading the shard failed; retrying in {delay:?}: {e}");
        }
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_shrink_with_more_shards_and_bigger_records() {
        // (running shards, mean record bytes, Limit): a shard's share is 32 MiB / running / 3
        // pages, a record is expected to hold 3 x its bytes + 1 KiB.
        let cases = [
            (0, 1_000, 1_000), // before any shard is counted: as one
            (1, 1_000, 1_000), // 11 MiB a page: the API's cap
            (8, 1_000, 347),   // 1.3 MiB a page, ~4 KB a record
            (16, 1_000, 173),
            (32, 340, 171),    // 341 KiB a page, ~2 KB a record
            (64, 340, 100),    // the soak: 171 KiB a page would hold 85; never below the floor
            (1, 400_000, 100), // 400 KB items: the floor (AWS's 1 MB cap binds first)
        ];
        for (running, mean, want) in cases {
            assert_eq!(
                page_limit(running, mean),
                want,
                "running {running}, mean {mean}"
            );
        }
    }

    #[test]
    fn a_page_takes_its_expected_bytes_and_never_more_than_the_budget() {
        // (Limit, mean record bytes, bytes taken)
        let cases = [
            (100, 340, 100 * (3 * 340 + 1024)),
            (1_000, 1_000, 1_000 * 4_024),
            (0, 1_000, 4_024),                   // a Limit of 0 is read as 1
            (1_000, 400_000, READ_BUDGET_BYTES), // 1.2 GB expected: the whole budget, no more
        ];
        for (limit, mean, want) in cases {
            assert_eq!(page_bytes(limit, mean) as usize, want, "{limit} x {mean}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_shard_holds_no_ticket_while_it_waits_to_poll_again() {
        // Every call answers an empty page (and, to GetShardIterator, an iterator).
        let client = crate::stream::canned::CannedClient::always(
            r#"{"ShardIterator":"it-1","Records":[],"NextShardIterator":"it-2"}"#,
        );
        let metrics = Arc::new(Metrics::default());
        let budget = page_budget();
        let reader = ShardReader {
            streams: client.streams_client(),
            table: TableName::new("t"),
            stream: StreamArn::new("arn:s"),
            shard: ShardId::new("shard-1"),
            position: Position::TrimHorizon,
            metrics: metrics.clone(),
            running: Arc::default(),
            mean_record_bytes: FIRST_GUESS_RECORD_BYTES,
            spool: None,
            page_budget: budget.clone(),
        };
        let (tx, _rx) = mpsc::channel(1);
        let stop = CancellationToken::new();
        let task = tokio::spawn(reader.run(tx, stop.clone()));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while metrics.total(Metric::GetRecordsPages) < 1.0 {
            assert!(std::time::Instant::now() < deadline, "no page read");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // The reader now waits a second before its next call: sampled through half of it, the
        // budget is whole (a held ticket would show in every sample).
        let mut whole = 0;
        for _ in 0..50 {
            whole += usize::from(budget.available_permits() == READ_BUDGET_BYTES);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.cancel();
        task.await.unwrap();
        assert!(whole >= 40, "the budget was whole in {whole} of 50 samples");
    }

    #[test]
    fn a_second_big_page_waits_until_the_first_page_is_dropped() {
        let budget = page_budget();
        let big = page_bytes(1_000, 8_000); // 25 MB: one such page at a time
        let first = PageTicket(budget.clone().try_acquire_many_owned(big).unwrap());
        assert!(
            budget.clone().try_acquire_many_owned(big).is_err(),
            "a second big page waits while the first is held"
        );
        drop(first);
        let second = budget.clone().try_acquire_many_owned(big).unwrap();
        assert_eq!(budget.available_permits(), READ_BUDGET_BYTES - big as usize);
        drop(second);
        assert_eq!(budget.available_permits(), READ_BUDGET_BYTES);
    }
}
