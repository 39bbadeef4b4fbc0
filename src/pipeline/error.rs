//! How the worker fails: the errors `run` returns, and which of them are the configuration's
//! (exit status 2) rather than the run's (exit status 1).

use crate::archive::SinkError;
use crate::leases::LeaseError;
use crate::sink::firehose::FirehoseError;
use crate::stream::api::TableError;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("the archive cannot be written: {0}")]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Lease(#[from] LeaseError),
    #[error(transparent)]
    Firehose(#[from] FirehoseError),
    #[error(
        "cannot prepare the spool directory {path}: {source}; choose another with --spool-dir"
    )]
    Spool {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("shard {shard} of table `{table}` failed: {message}")]
    Shard {
        table: String,
        shard: String,
        message: String,
    },
    #[error(transparent)]
    Denied(#[from] crate::aws::Denied),
    #[error("shutdown did not finish in time; unflushed records will be read again from the checkpoint on restart")]
    ShutdownTimeout,
}

impl RunError {
    /// Exit status 2: the configuration (or the AWS account) must be fixed.
    pub fn is_config(&self) -> bool {
        match self {
            Self::Table(e) => e.is_config(),
            Self::Sink(e) => !e.is_retryable(),
            Self::Spool { .. } | Self::Denied(_) => true,
            Self::Lease(e) => e.is_config(),
            Self::Firehose(e) => e.is_config(),
            _ => false,
        }
    }
}
