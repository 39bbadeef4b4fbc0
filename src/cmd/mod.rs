//! The commands, one file each. `main.rs` parses arguments and calls these.

pub mod backfill;
pub mod history;
pub mod import_export;
pub mod leases;
pub mod restore;
pub mod run;
pub mod schema;
pub mod snapshot;
pub mod verify;

/// How a command failed: a usage or configuration problem (exit 2) or a runtime failure (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Runtime(String),
}

impl CommandError {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Config(_) => 2,
            Self::Runtime(_) => 1,
        }
    }
}

impl From<crate::config::ConfigError> for CommandError {
    fn from(e: crate::config::ConfigError) -> Self {
        Self::Config(e.to_string())
    }
}

/// The archive of a one-shot command (backfill, import-export), checked writable, and its spool
/// folder, created.
pub async fn prepare_archive(
    archive: &crate::archive::ArchiveUri,
    s3: aws_sdk_s3::Client,
    sse_kms_key: Option<String>,
    spool_dir: &std::path::Path,
) -> Result<crate::archive::ArchiveSink, CommandError> {
    let sink = crate::archive::ArchiveSink::new(archive, s3, sse_kms_key);
    sink.check_writable().await.map_err(|e| {
        if e.is_retryable() {
            CommandError::Runtime(e.to_string())
        } else {
            CommandError::Config(e.to_string())
        }
    })?;
    std::fs::create_dir_all(spool_dir).map_err(|e| {
        CommandError::Config(format!(
            "cannot create --spool-dir {}: {e}",
            spool_dir.display()
        ))
    })?;
    Ok(sink)
}

/// The archive for a command that only reads it. A local archive needs no AWS configuration (and
/// should not wait for one).
pub async fn read_archive(archive: &crate::archive::ArchiveUri) -> crate::archive::ArchiveSink {
    let s3 = match archive {
        crate::archive::ArchiveUri::S3 { .. } => crate::aws::load().await.s3,
        crate::archive::ArchiveUri::Local(_) => aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .build(),
        ),
    };
    crate::archive::ArchiveSink::new(archive, s3, None)
}
