//! The archive's storage: an S3 bucket or a local directory ([`uri`]), behind one interface, and
//! its [`layout`] (every key the archiver writes or reads).
//!
//! Both publish create-only: an object that already exists is never overwritten. Together with
//! keys that name a file's position in its shard (see [`layout`]), two writers of the same
//! position land one file between them, whoever writes and whenever.

pub mod layout;
pub mod local;
pub mod s3;
pub mod uri;

use crate::encode::parquet::SpooledFile;
pub use uri::ArchiveUri;

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
    /// A stored object that is not what the archiver writes there (a tail that is not a Parquet
    /// footer): no retry can fix it.
    #[error("{location} cannot be read as an archive file: {message}")]
    Unreadable { location: String, message: String },
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
            Self::NoSuchBucket { .. }
            | Self::AccessDenied { .. }
            | Self::NotWritable { .. }
            | Self::Unreadable { .. } => false,
            Self::Io { .. } => true,
            Self::S3 { retryable, .. } => *retryable,
        }
    }
}

/// Archive footers are a few KiB; one ranged read of this many bytes usually gets all of it.
const FOOTER_FIRST_READ: u64 = 64 << 10;

/// A file found in the archive, as its footer describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    pub key: String,
    /// The SHA-256 of the stored bytes (S3: recorded at write time; local: hashed).
    pub sha256: [u8; 32],
    /// Rows, from the footer.
    pub rows: u64,
    /// The footer's key-value metadata (`encode::parquet::meta`).
    pub metadata: std::collections::BTreeMap<String, String>,
}

impl StoredFile {
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }
}

/// The key-value metadata of a footer (`encode::parquet::meta`).
pub fn footer_metadata(
    footer: &parquet::file::metadata::ParquetMetaData,
) -> std::collections::BTreeMap<String, String> {
    footer
        .file_metadata()
        .key_value_metadata()
        .into_iter()
        .flatten()
        .map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default()))
        .collect()
}

/// How often a CLI command tries one publish before it gives up (the run can be repeated).
const PUBLISH_ATTEMPTS: u32 = 8;

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

    /// Proves that files can be written under `key` without writing one: on S3 an upload is
    /// started (with the encryption settings of real uploads) and aborted, which needs
    /// `s3:PutObject`, the KMS key's `kms:GenerateDataKey` and `s3:AbortMultipartUpload`, and
    /// leaves no object for Object Lock to keep. A directory was checked by
    /// [`Self::check_writable`].
    pub async fn probe_write(&self, key: &str) -> Result<(), SinkError> {
        match self {
            Self::Local(_) => Ok(()),
            Self::S3(s) => s.probe_write(key).await,
        }
    }

    /// Publishes a finished file under `key` (relative to the archive root), create-only.
    pub async fn publish(&self, key: &str, file: &SpooledFile) -> Result<Published, SinkError> {
        match self {
            Self::Local(s) => s.publish(key, file).await,
            Self::S3(s) => s.publish(key, file).await,
        }
    }

    /// [`Self::publish`], retried with backoff and jitter while the failure is transient (for the
    /// CLI commands; the worker has its own loop, fenced by its lease).
    pub async fn publish_retrying(
        &self,
        key: &str,
        file: &SpooledFile,
    ) -> Result<Published, SinkError> {
        let mut backoff = crate::backoff::Backoff::new(
            std::time::Duration::from_millis(200),
            std::time::Duration::from_secs(20),
        );
        loop {
            match self.publish(key, file).await {
                Err(e) if e.is_retryable() && backoff.attempts() < PUBLISH_ATTEMPTS => {
                    let delay = backoff.next_delay();
                    tracing::warn!(key, "publishing failed; retrying in {delay:?}: {e}");
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    /// Publishes a small object (a JSON marker) create-only, through a file in `spool_dir`.
    pub async fn publish_bytes(
        &self,
        key: &str,
        body: &[u8],
        spool_dir: &std::path::Path,
    ) -> Result<Published, SinkError> {
        use sha2::Digest;
        let path = spool_dir.join(format!(
            "marker-{}-{}.tmp",
            std::process::id(),
            key.replace('/', "_")
        ));
        std::fs::write(&path, body).map_err(|source| SinkError::Io {
            location: path.display().to_string(),
            source,
        })?;
        let file = SpooledFile {
            path: path.clone(),
            sha256: sha2::Sha256::digest(body).into(),
            size_bytes: body.len() as u64,
            rows: 0,
        };
        let result = self.publish_retrying(key, &file).await;
        let _ = std::fs::remove_file(&path);
        result
    }

    /// The SHA-256 of a stored file (S3: its `sha256` metadata; local: hashed).
    pub async fn stored_sha256(&self, key: &str) -> Result<[u8; 32], SinkError> {
        match self {
            Self::Local(s) => s.stored_sha256(key).await,
            Self::S3(s) => s.stored_sha256(key).await,
        }
    }

    /// A stored object: whole, or only its last `suffix` bytes (a Parquet footer).
    pub async fn read(&self, key: &str, suffix: Option<u64>) -> Result<Vec<u8>, SinkError> {
        match self {
            Self::Local(s) => s.read(key, suffix).await,
            Self::S3(s) => s.read(key, suffix).await,
        }
    }

    /// `len` bytes of a stored object from byte `start`: one column chunk of a Parquet file, read
    /// without the rest.
    pub async fn read_range(&self, key: &str, start: u64, len: u64) -> Result<Vec<u8>, SinkError> {
        match self {
            Self::Local(s) => s.read_range(key, start, len).await,
            Self::S3(s) => s.read_range(key, start, len).await,
        }
    }

    /// A stored JSON object (a marker), parsed; one this version cannot read is an `Io` error of
    /// kind `InvalidData` naming the key.
    pub async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<T, SinkError> {
        let bytes = self.read(key, None).await?;
        serde_json::from_slice(&bytes).map_err(|e| SinkError::Io {
            location: key.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not a marker this version can read: {e}"),
            ),
        })
    }

    /// The footer of a stored Parquet file (schema, row groups and their statistics, key-value
    /// metadata), read without the rest of the file.
    pub async fn parquet_footer(
        &self,
        key: &str,
    ) -> Result<parquet::file::metadata::ParquetMetaData, SinkError> {
        let tail = self.read(key, Some(FOOTER_FIRST_READ)).await?;
        self.footer_from_tail(key, tail).await
    }

    /// The file stored under `key`, described by its footer and its stored hash, or `None` when
    /// nothing is stored there: one ranged read of the file's tail (two when the footer is
    /// longer than 64 KiB), plus, on a local directory, a read of the whole file for its hash.
    /// This is how a writer asks "is my next position taken?" and how it adopts what it finds.
    pub async fn probe(&self, key: &str) -> Result<Option<StoredFile>, SinkError> {
        let Some((tail, recorded)) = self.read_tail_if_exists(key, FOOTER_FIRST_READ).await? else {
            return Ok(None);
        };
        let footer = self.footer_from_tail(key, tail).await?;
        let metadata = footer_metadata(&footer);
        let sha256 = match recorded {
            Some(sha) => sha,
            None => self.stored_sha256(key).await?,
        };
        Ok(Some(StoredFile {
            key: key.to_owned(),
            sha256,
            rows: footer.file_metadata().num_rows().max(0) as u64,
            metadata,
        }))
    }

    /// The last `n` bytes of a stored object and the hash recorded when it was written (S3), or
    /// `None` when there is no such object.
    async fn read_tail_if_exists(
        &self,
        key: &str,
        n: u64,
    ) -> Result<Option<(Vec<u8>, Option<[u8; 32]>)>, SinkError> {
        match self {
            Self::S3(s) => s.read_object_if_exists(key, Some(n)).await,
            Self::Local(s) => s
                .read_if_exists(key, Some(n))
                .await
                .map(|o| o.map(|b| (b, None))),
        }
    }

    /// Parses a footer from a file's tail, reading a longer tail when the footer needs it.
    async fn footer_from_tail(
        &self,
        key: &str,
        tail: Vec<u8>,
    ) -> Result<parquet::file::metadata::ParquetMetaData, SinkError> {
        let bad = |message: String| SinkError::Unreadable {
            location: key.to_owned(),
            message,
        };
        let needed = crate::encode::parquet::footer_length(&tail).map_err(bad)?;
        let tail = if needed > tail.len() {
            self.read(key, Some(needed as u64)).await?
        } else {
            tail
        };
        crate::encode::parquet::footer_of_tail(&tail).map_err(bad)
    }

    /// The key-value metadata of a stored Parquet file, read from its footer only.
    pub async fn file_metadata(
        &self,
        key: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, SinkError> {
        Ok(footer_metadata(&self.parquet_footer(key).await?))
    }

    /// Every key below the folder `prefix` (which ends in `/`), at any depth, sorted.
    pub async fn list_tree(&self, prefix: &str) -> Result<Vec<String>, SinkError> {
        let mut keys = match self {
            Self::S3(s) => s.list(prefix).await?,
            Self::Local(s) => s.list_tree(prefix).await?,
        };
        keys.sort();
        Ok(keys)
    }

    /// The folders directly below the archive root: one per archived table.
    pub async fn list_tables(&self) -> Result<Vec<String>, SinkError> {
        let mut tables: Vec<String> = match self {
            Self::S3(s) => s
                .list("")
                .await?
                .iter()
                .filter_map(|k| k.split_once('/').map(|(t, _)| t.to_owned()))
                .collect(),
            Self::Local(s) => s.list_dirs().await?,
        };
        tables.sort();
        tables.dedup();
        Ok(tables)
    }

    /// A whole stored file and the SHA-256 recorded when it was written (S3: its `sha256`
    /// metadata, from the same GetObject), to compare with the bytes now stored; `None` where
    /// nothing is recorded apart from the bytes (a local directory).
    pub async fn read_with_recorded_sha256(
        &self,
        key: &str,
    ) -> Result<(Vec<u8>, Option<[u8; 32]>), SinkError> {
        match self {
            Self::S3(s) => s.read_object(key, None).await,
            Self::Local(s) => Ok((s.read(key, None).await?, None)),
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
