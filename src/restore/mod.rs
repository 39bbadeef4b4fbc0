//! Restore: a table, or one item, put back into DynamoDB as it stood at an instant, from the
//! archive. The state comes from `audit::state` (the same as `snapshot --as-of`), partition by
//! partition; this module writes it.
//!
//! - [`plan`]: pure: what to put, overwrite and delete against what the target holds; batches;
//!   each write's digest.
//! - [`size`]: pure: an item's billed size and the write capacity a write of it consumes.
//! - [`table`]: the target: key schema check, `--create`, a Scan of it now, single reads.
//! - [`write`]: one BatchWriteItem batch, paced by `--max-wcu`, unprocessed items and throttling
//!   retried.
//! - [`journal`]: the local progress journal a killed restore continues from.
//! - [`record`]: the audit record under `<archive>/<table>/_restores/`, and who ran it (STS).
//! - [`settings`]: what a restore is given and what it reports.
//! - [`sources`]: the state against the target by partition, the first instant the archive
//!   answers for, the target's key checked or created.
//! - [`apply`]: the write pass of one partition, journalled.
//! - [`job`]: one restore from start to end.
//!
//! `design.md` beside this file says why it is built this way.

mod apply;
pub mod job;
pub mod journal;
pub mod plan;
pub mod record;
pub mod settings;
pub mod size;
mod sources;
pub mod table;
pub mod write;

use crate::types::TableName;

/// Why a restore did not finish. Run it again after fixing the cause: it continues.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// A problem with the command: wrong table, wrong instant, wrong key (exit status 2).
    #[error("{0}")]
    Usage(String),
    #[error("table `{0}` does not exist (check the name, the region and AWS_ENDPOINT_URL_DYNAMODB); add --create to create it with the archived table's key schema")]
    NoTable(TableName),
    #[error("permission denied: {action} on {resource}; restore runs with the operator's credentials, which need it. AWS said: {message}")]
    Denied {
        action: String,
        resource: String,
        message: String,
    },
    #[error(transparent)]
    State(#[from] crate::audit::state::StateError),
    #[error(transparent)]
    Sink(#[from] crate::archive::SinkError),
    #[error(transparent)]
    Dynamo(#[from] crate::dynamo::DynamoError),
    #[error("spool folder {path}: {source}; free space there or choose another --spool-dir")]
    Spool {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl RestoreError {
    /// A problem the operator must fix in the command or its permissions (exit status 2).
    pub fn is_config(&self) -> bool {
        use crate::archive::SinkError as S;
        match self {
            Self::Usage(_) | Self::NoTable(_) | Self::Denied { .. } => true,
            Self::Sink(e) => matches!(
                e,
                S::NoSuchBucket { .. } | S::AccessDenied { .. } | S::NotWritable { .. }
            ),
            _ => false,
        }
    }
}
