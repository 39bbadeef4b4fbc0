//! Where finished files go: an S3 bucket or a local directory, behind one interface.
//!
//! Both publish create-only: an object that already exists is never overwritten. Together with
//! deterministic names (see [`naming`]) a repeated write of the same file (same shard, same first
//! and last record) lands once, whoever writes it.

pub mod local;
pub mod naming;
pub mod s3;

use crate::config::ArchiveUri;
use crate::encode::parquet::SpooledFile;

/// The outcome of publishing a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// This call created the object.
    Created,
    /// An object of that name was already there (an earlier attempt of the same records); its
    /// SHA-256 is what the next file's chain must name.
    AlreadyExisted { sha256: [u8; 32] },
}

impl Published {
    /// The SHA-256 of the object now stored under the name.
    pub fn stored_sha256(&self, ours: [u8; 32]) -> [u8; 32] {
        match self {
            Self::Created => ours,
            Self::AlreadyExisted { sha256 } => *sha256,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(
        "bucket `{bucket}` does not exist (or is in another region); create it or fix --archive"
    )]
    NoSuchBucket { bucket: String },
    #[error("access denied to {location}: grant the task role s3:ListBucket on the bucket and s3:PutObject, s3:GetObject and the multipart actions on the archive prefix")]
    AccessDenied { location: String },
    #[error("directory {path} is not writable: {source}; fix its permissions or choose another --archive")]
    NotWritable {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("writing {location}: {source}")]
    Io {
        location: String,
        source: std::io::Error,
    },
    #[error("S3 {operation} on {location} failed: {message}")]
    S3 {
        operation: &'static str,
        location: String,
        message: String,
        retryable: bool,
    },
}

impl SinkError {
    /// Whether trying again later can succeed (throttling, 5xx, network), as opposed to a
    /// configuration problem an operator must fix.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::NoSuchBucket { .. } | Self::AccessDenied { .. } | Self::NotWritable { .. } => {
                false
            }
            Self::Io { .. } => true,
            Self::S3 { retryable, .. } => *retryable,
        }
    }
}

/// The archive's storage.
#[derive(Debug, Clone)]
pub enum ArchiveSink {
    Local(local::LocalSink),
    S3(s3::S3Sink),
}

impl ArchiveSink {
    pub fn new(uri: &ArchiveUri, s3: aws_sdk_s3::Client, sse_kms_key: Option<String>) -> Self {
        match uri {
            ArchiveUri::Local(dir) => Self::Local(local::LocalSink::new(dir.clone())),
            ArchiveUri::S3 { bucket, prefix } => Self::S3(s3::S3Sink::new(
                s3,
                bucket.clone(),
                prefix.clone(),
                sse_kms_key,
            )),
        }
    }

    /// Fails early, with a message naming the location, when the archive cannot be written.
    pub async fn check_writable(&self) -> Result<(), SinkError> {
        match self {
            Self::Local(s) => s.check_writable().await,
            Self::S3(s) => s.check_writable().await,
        }
    }

    /// Publishes a finished file under `key` (relative to the archive root), create-only.
    pub async fn publish(&self, key: &str, file: &SpooledFile) -> Result<Published, SinkError> {
        match self {
            Self::Local(s) => s.publish(key, file).await,
            Self::S3(s) => s.publish(key, file).await,
        }
    }

    /// The SHA-256 of a stored file (S3: its `sha256` metadata; local: hashed).
    pub async fn stored_sha256(&self, key: &str) -> Result<[u8; 32], SinkError> {
        match self {
            Self::Local(s) => s.stored_sha256(key).await,
            Self::S3(s) => s.stored_sha256(key).await,
        }
    }

    /// Keys (relative to the archive root) that start with `prefix`, in no particular order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, SinkError> {
        match self {
            Self::Local(s) => s.list(prefix).await,
            Self::S3(s) => s.list(prefix).await,
        }
    }
}
