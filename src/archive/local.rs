//! A local directory as the archive: each file is copied beside its final name, synced, then
//! linked into place. `link(2)` fails when the name exists, which makes the publish create-only
//! and atomic: a reader never sees a half-written file under a final name.

use super::{Published, SinkError};
use crate::encode::parquet::SpooledFile;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct LocalSink {
    root: PathBuf,
}

impl LocalSink {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub async fn check_writable(&self) -> Result<(), SinkError> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            let not_writable = |source| SinkError::NotWritable {
                path: root.clone(),
                source,
            };
            std::fs::create_dir_all(&root).map_err(not_writable)?;
            let probe = root.join(format!(".write-probe-{}", std::process::id()));
            std::fs::write(&probe, b"probe").map_err(not_writable)?;
            std::fs::remove_file(&probe).map_err(not_writable)
        })
        .await
        .expect("probe task does not panic")
    }

    pub async fn publish(&self, key: &str, file: &SpooledFile) -> Result<Published, SinkError> {
        let target = self.root.join(key);
        let source = file.path.clone();
        tokio::task::spawn_blocking(move || publish_blocking(&source, &target))
            .await
            .expect("publish task does not panic")
    }

    pub async fn stored_sha256(&self, key: &str) -> Result<[u8; 32], SinkError> {
        let path = self.root.join(key);
        tokio::task::spawn_blocking(move || {
            std::fs::read(&path)
                .map(|b| Sha256::digest(&b).into())
                .map_err(|source| SinkError::Io {
                    location: path.display().to_string(),
                    source,
                })
        })
        .await
        .expect("hash task does not panic")
    }

    /// The whole file, or only its last `suffix` bytes.
    pub async fn read(&self, key: &str, suffix: Option<u64>) -> Result<Vec<u8>, SinkError> {
        self.read_if_exists(key, suffix)
            .await?
            .ok_or_else(|| SinkError::Io {
                location: self.root.join(key).display().to_string(),
                source: std::io::ErrorKind::NotFound.into(),
            })
    }

    /// `len` bytes of the file from byte `start`.
    pub async fn read_range(&self, key: &str, start: u64, len: u64) -> Result<Vec<u8>, SinkError> {
        let path = self.root.join(key);
        tokio::task::spawn_blocking(move || {
            use std::io::{Read, Seek, SeekFrom};
            let io = |source| SinkError::Io {
                location: path.display().to_string(),
                source,
            };
            let mut f = std::fs::File::open(&path).map_err(io)?;
            f.seek(SeekFrom::Start(start)).map_err(io)?;
            let mut out = vec![0; len as usize];
            f.read_exact(&mut out).map_err(io)?;
            Ok(out)
        })
        .await
        .expect("read task does not panic")
    }

    /// [`Self::read`], with `None` when there is no such file.
    pub async fn read_if_exists(
        &self,
        key: &str,
        suffix: Option<u64>,
    ) -> Result<Option<Vec<u8>>, SinkError> {
        let path = self.root.join(key);
        tokio::task::spawn_blocking(move || {
            use std::io::{Read, Seek, SeekFrom};
            let io = |source| SinkError::Io {
                location: path.display().to_string(),
                source,
            };
            let mut f = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io(e)),
            };
            if let Some(n) = suffix {
                let len = f.metadata().map_err(io)?.len();
                f.seek(SeekFrom::Start(len.saturating_sub(n))).map_err(io)?;
            }
            let mut out = Vec::new();
            f.read_to_end(&mut out).map_err(io)?;
            Ok(Some(out))
        })
        .await
        .expect("read task does not panic")
    }

    /// Every file below the folder `prefix`, at any depth (hidden files skipped).
    pub async fn list_tree(&self, prefix: &str) -> Result<Vec<String>, SinkError> {
        let root = self.root.clone();
        let prefix = prefix.trim_end_matches('/').to_owned();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let mut stack = vec![prefix];
            while let Some(rel) = stack.pop() {
                let dir = root.join(&rel);
                let entries = match std::fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(source) => {
                        return Err(SinkError::Io {
                            location: dir.display().to_string(),
                            source,
                        })
                    }
                };
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if name.starts_with('.') {
                        continue;
                    }
                    let child = if rel.is_empty() {
                        name
                    } else {
                        format!("{rel}/{name}")
                    };
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push(child);
                    } else {
                        out.push(child);
                    }
                }
            }
            Ok(out)
        })
        .await
        .expect("list task does not panic")
    }

    /// The folders directly below the root.
    pub async fn list_dirs(&self) -> Result<Vec<String>, SinkError> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            let entries = std::fs::read_dir(&root).map_err(|source| SinkError::Io {
                location: root.display().to_string(),
                source,
            })?;
            Ok(entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect())
        })
        .await
        .expect("list task does not panic")
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, SinkError> {
        // A prefix is a directory part plus a file-name start, as with S3.
        let (dir, start) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        let dir_path = self.root.join(dir);
        let start = start.to_owned();
        let dir = dir.to_owned();
        tokio::task::spawn_blocking(move || {
            let entries = match std::fs::read_dir(&dir_path) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(source) => {
                    return Err(SinkError::Io {
                        location: dir_path.display().to_string(),
                        source,
                    })
                }
            };
            let mut out = Vec::new();
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(&start) && !name.starts_with('.') {
                    out.push(if dir.is_empty() {
                        name
                    } else {
                        format!("{dir}/{name}")
                    });
                }
            }
            Ok(out)
        })
        .await
        .expect("list task does not panic")
    }
}

fn publish_blocking(source: &Path, target: &Path) -> Result<Published, SinkError> {
    let io = |source| SinkError::Io {
        location: target.display().to_string(),
        source,
    };
    let dir = target.parent().expect("keys have a directory");
    std::fs::create_dir_all(dir).map_err(io)?;
    let file_name = target
        .file_name()
        .expect("keys name a file")
        .to_string_lossy();
    // Hidden and without the .parquet suffix, so query engines never read a temporary file.
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    std::fs::copy(source, &tmp).map_err(io)?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    let linked = std::fs::hard_link(&tmp, target);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            // Make the new directory entry durable before the caller checkpoints past it.
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
            Ok(Published::Created)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let existing = std::fs::read(target).map_err(io)?;
            Ok(Published::AlreadyExisted {
                sha256: Sha256::digest(&existing).into(),
            })
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spooled(dir: &Path, name: &str, body: &[u8]) -> SpooledFile {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        SpooledFile {
            path,
            sha256: Sha256::digest(body).into(),
            size_bytes: body.len() as u64,
            rows: 1,
        }
    }

    #[tokio::test]
    async fn publish_is_create_only() {
        let spool = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let sink = LocalSink::new(root.path().to_owned());
        let first = spooled(spool.path(), "a", b"first");
        let second = spooled(spool.path(), "b", b"second");
        assert_eq!(
            sink.publish("t/dt=2026-01-01/x.parquet", &first)
                .await
                .unwrap(),
            Published::Created
        );
        let again = sink
            .publish("t/dt=2026-01-01/x.parquet", &second)
            .await
            .unwrap();
        assert_eq!(
            again,
            Published::AlreadyExisted {
                sha256: first.sha256
            }
        );
        let stored = std::fs::read(root.path().join("t/dt=2026-01-01/x.parquet")).unwrap();
        assert_eq!(stored, b"first", "never overwritten");
        assert_eq!(
            sink.list("t/dt=2026-01-01/x").await.unwrap(),
            vec!["t/dt=2026-01-01/x.parquet".to_owned()]
        );
        let leftovers: Vec<_> = std::fs::read_dir(root.path().join("t/dt=2026-01-01"))
            .unwrap()
            .collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
    }

    #[tokio::test]
    async fn unwritable_directory_is_named() {
        let sink = LocalSink::new(PathBuf::from("/proc/definitely/not/here"));
        let err = sink.check_writable().await.unwrap_err();
        assert!(
            err.to_string().contains("/proc/definitely/not/here"),
            "{err}"
        );
        assert!(!err.is_retryable());
    }
}
