//! The archive as one shard's writer sees it: finishing a spool file off the async workers,
//! probing the key a file would have, listing the shard's `dt` folders for a file published past
//! the checkpoint, and publishing create-only, each retried through passing failures.

use super::checkpointer::Checkpointer;
use super::shard::{ShardError, ShardSettings};
use crate::archive::layout::{self, ArchiveKey};
use crate::archive::{ArchiveSink, Published, SinkError, StoredFile};
use crate::backoff::{retry, Backoff};
use crate::encode::parquet::{SpoolWriter, SpooledFile, WriteError};
use crate::leases::Checkpoint;
use crate::metrics::{Metric, Metrics};
use crate::types::SequenceNumber;
use std::sync::Arc;
use std::time::Duration;

const RETRY_BASE: Duration = Duration::from_millis(200);
const RETRY_CAP: Duration = Duration::from_secs(10);
/// How far back, in `dt` folders, a writer looks for a file published past its checkpoint that the
/// key of its first record cannot name (see [`Io::listed_past_checkpoint`]). A shard's records
/// span its open life (about four hours on AWS) plus the stream's 24 hours, so three days would
/// do; the margin costs one listing per day, only after a trim or when a lease names no file.
const TRIM_LOOKBACK_DAYS: i64 = 7;

/// The same, when the lease names no file: the shard's first file and its first readable record
/// were both written while the shard was open (about four hours on AWS), so they lie at most a day
/// apart. Two listings per shard that starts without a file.
const CHAIN_START_LOOKBACK_DAYS: i64 = 2;

/// The output's shared, read-only half: what its awaits borrow. (The open file's writer is not
/// `Sync`, so no `&self` of the whole output may live across an await in a spawned task.)
pub(super) struct Io {
    pub(super) store: ArchiveSink,
    pub(super) metrics: Arc<Metrics>,
    pub(super) settings: ShardSettings,
}

impl Io {
    /// Finishes a spool file (footer, metadata, fsync) off the async workers.
    pub(super) async fn finish(
        &self,
        writer: SpoolWriter,
        kv: Vec<(String, String)>,
    ) -> Result<SpooledFile, WriteError> {
        let slot = self.settings.budgets.encode_slot().await;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            writer.finish(kv)
        })
        .await
        .expect("finishing a file does not panic")
    }

    /// The file stored under `key`, if any, retrying passing failures. A file whose tail is not
    /// a Parquet footer is something else's: an error naming it (the shard is retried with a
    /// growing backoff and shows as stuck), never a reason to write beside it.
    pub(super) async fn probe(&self, key: &str) -> Result<Option<StoredFile>, ShardError> {
        let store = &self.store;
        let metrics = &self.metrics;
        let found = retry(
            Backoff::new(RETRY_BASE, RETRY_CAP),
            None,
            || store.probe(key),
            SinkError::is_retryable,
            |e, delay| {
                metrics.inc(Metric::Errors, &[("kind", "probe")], 1);
                tracing::warn!(
                    key,
                    "reading an archive file's footer failed; retrying in {delay:?}: {e}"
                );
            },
        )
        .await;
        match found {
            Err(SinkError::Unreadable { location, message }) => Err(ShardError::Archive(format!(
                "{location} is where this shard's next file belongs, but it is not a file this version can read ({message}); move it out of the archive"
            ))),
            other => Ok(other?),
        }
    }

    /// After a trim, the first record read is at the trim horizon, not the record after the
    /// checkpoint, so its key cannot find a file that a writer published past the checkpoint
    /// before crashing (its first record is gone from the stream). The shard's `dt` folders from
    /// its last file's day (or [`TRIM_LOOKBACK_DAYS`] back) to this record's are listed for the
    /// latest file that begins past the checkpoint and before this record.
    pub(super) async fn listed_past_checkpoint(
        &self,
        dt: &str,
        seq: &SequenceNumber,
        cp: &Checkpointer,
    ) -> Result<Option<StoredFile>, ShardError> {
        let lease = cp.lease();
        let after = match &lease.checkpoint {
            Checkpoint::At(s) => Some(s.clone()),
            _ => None,
        };
        let days = match lease.last_file_key.as_deref().and_then(layout::dt_of_key) {
            Some(from) => layout::days_between(from, dt, TRIM_LOOKBACK_DAYS),
            None => layout::days_between("1970-01-01", dt, CHAIN_START_LOOKBACK_DAYS),
        };
        let mut best: Option<(SequenceNumber, String)> = None;
        for day in days {
            let prefix = layout::shard_files_prefix(&lease.table, &day, &lease.shard);
            for key in self.store.list(&prefix).await? {
                if let ArchiveKey::Stream { shard, first } = layout::parse_key(&key) {
                    let past = after.as_ref().is_none_or(|a| first > *a);
                    if shard == lease.shard
                        && past
                        && first < *seq
                        && best.as_ref().is_none_or(|(b, _)| first > *b)
                    {
                        best = Some((first, key));
                    }
                }
            }
        }
        match best {
            Some((_, key)) => self.probe(&key).await,
            None => Ok(None),
        }
    }

    /// Publishes a finished spool file create-only, retrying passing failures; the spool file is
    /// removed either way.
    pub(super) async fn publish(
        &self,
        key: &str,
        spooled: &SpooledFile,
    ) -> Result<Published, ShardError> {
        let store = &self.store;
        let metrics = &self.metrics;
        let result = retry(
            Backoff::new(RETRY_BASE, RETRY_CAP),
            None,
            || store.publish(key, spooled),
            SinkError::is_retryable,
            |e, delay| {
                metrics.inc(Metric::Errors, &[("kind", "publish")], 1);
                tracing::warn!(key, "publishing failed; retrying in {delay:?}: {e}");
            },
        )
        .await;
        let _ = std::fs::remove_file(&spooled.path);
        Ok(result?)
    }
}
