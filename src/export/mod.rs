//! `import-export`: a DynamoDB Export to S3 (DYNAMODB_JSON, full or incremental) converted into the
//! archive: a full export's items as SNAPSHOT rows, an incremental export's changes as change rows.
//!
//! - [`manifest`]: the export's manifests, parsed and checked (pure).
//! - [`source`]: reading the export from S3 or a local copy.
//! - [`convert`]: one data file to archive files, checked whole before anything is published.
//! - [`job`]: every data file, in parallel, resumable through per-file markers.

pub mod convert;
pub mod job;
pub mod manifest;
pub mod source;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot read {location}: {message}")]
    Source { location: String, message: String },
    #[error("{location} is not a valid export manifest: {message}")]
    Manifest { location: String, message: String },
    #[error("{location} is corrupt: {message}; nothing of it was archived (fetch a good copy, or export again)")]
    Corrupt { location: String, message: String },
    #[error("the key attributes of `{table}` are unknown ({message}); give them with --key-attributes PARTITION_KEY[,SORT_KEY]")]
    KeyAttributes { table: String, message: String },
    #[error("the export is of table `{exported}` ({table_arn}), not `{expected}`; nothing was archived. Give --table {exported}, or, to file a renamed table's export under `{table}`, --from-table {exported}")]
    WrongTable {
        exported: String,
        table_arn: String,
        expected: String,
        table: String,
    },
    #[error(transparent)]
    Sink(#[from] crate::archive::SinkError),
    #[error(transparent)]
    Write(#[from] crate::encode::parquet::WriteError),
}

impl ExportError {
    /// A problem with the command or its inputs that running again will not fix (exit status 2).
    pub fn is_config(&self) -> bool {
        use crate::archive::SinkError as S;
        match self {
            Self::Manifest { .. } | Self::KeyAttributes { .. } | Self::WrongTable { .. } => true,
            Self::Sink(e) => matches!(
                e,
                S::NoSuchBucket { .. } | S::AccessDenied { .. } | S::NotWritable { .. }
            ),
            _ => false,
        }
    }
}
