//! Backfill: a table's existing items, read by a parallel Scan, into the archive as `SNAPSHOT`
//! rows, so that an archive started today also answers for the items written before its stream.
//!
//! - [`scan`]: typed DescribeTable and Scan calls.
//! - [`plan`]: the pure parts: default segment count, names of files and markers, which scan to
//!   resume and where each segment resumes.
//! - [`pace`]: the read-capacity pacer behind `--max-rcu`.
//! - [`segment`]: one segment's loop (pages → rows → files → the next page).
//! - [`job`]: one table's backfill: pick or start a scan, run its segments, write the summary.
//!
//! The archive itself is the backfill's state (see `design.md`): each file's footer holds the
//! position its segment resumes from, and markers beside the data say which scan started and
//! which finished. Nothing is ever overwritten, so it all works under S3 Object Lock.

pub mod job;
pub mod pace;
pub mod plan;
pub mod scan;
pub mod segment;

use crate::types::TableName;

/// Why a backfill stopped short. Run it again after fixing the cause: it continues.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error(transparent)]
    Scan(#[from] crate::dynamo::DynamoError),
    #[error(transparent)]
    Sink(#[from] crate::archive::SinkError),
    #[error(transparent)]
    Write(#[from] crate::encode::parquet::WriteError),
    #[error("table `{table}`: {message}")]
    Item { table: TableName, message: String },
    #[error("backfill state {location} cannot be used: {message}; move it away only if that scan is to be abandoned, then run with --new-scan")]
    State { location: String, message: String },
    #[error("the unfinished backfill {scan_id} of `{table}` was started with --segments {started}, not {given}: run again with --segments {started} (or without --segments) to continue it, or with --new-scan to start over")]
    SegmentsMismatch {
        table: TableName,
        scan_id: String,
        started: u32,
        given: u32,
    },
}

impl BackfillError {
    /// A problem the operator must fix in the command or its permissions (exit status 2).
    pub fn is_config(&self) -> bool {
        use crate::archive::SinkError as S;
        match self {
            Self::SegmentsMismatch { .. } => true,
            Self::Scan(e) => matches!(
                e,
                crate::dynamo::DynamoError::NoTable(_)
                    | crate::dynamo::DynamoError::AccessDenied { .. }
            ),
            Self::Sink(e) => matches!(
                e,
                S::NoSuchBucket { .. } | S::AccessDenied { .. } | S::NotWritable { .. }
            ),
            _ => false,
        }
    }
}
