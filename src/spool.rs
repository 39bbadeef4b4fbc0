//! The spool volume's free space. Files are assembled on local disk before upload, so a worker
//! holding many shards, or an upload that cannot complete, can fill it. A full disk must not
//! crash the worker nor fail writes half-way: before each GetRecords the reader checks that the
//! volume has room, and while it has not, reading pauses with a clear, repeated error (and
//! `/healthz` turns red: no read succeeds). Files already open still publish, which frees their
//! space, so the pause ends on its own when uploads go through.

use crate::metrics::{Metric, Metrics};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Reading pauses below this much free space on the spool volume: room for the row groups every
/// running shard may encode before it publishes (a few MiB each, compressed) with a margin.
pub const MIN_FREE_BYTES: u64 = 64 << 20;
/// How often a paused reader looks again.
const RECHECK: Duration = Duration::from_secs(5);

/// Free bytes on the filesystem holding `dir`, for an unprivileged writer (statvfs `f_bavail`).
/// Test hook: `ARCHIVER_TEST_SPOOL_FREE_FILE` names a file whose content is the answer, so that a
/// test can fill and empty the "disk"; inert unless set.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    if let Some(file) = std::env::var_os("ARCHIVER_TEST_SPOOL_FREE_FILE") {
        return std::fs::read_to_string(file).ok()?.trim().parse().ok();
    }
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid NUL-terminated string and `stat` a writable statvfs.
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut stat) };
    (rc == 0).then(|| stat.f_bavail as u64 * stat.f_frsize as u64)
}

/// What a reader checks before each read.
#[derive(Clone)]
pub struct SpoolRoom {
    pub dir: PathBuf,
    pub metrics: Arc<Metrics>,
}

impl SpoolRoom {
    /// Returns once the spool volume has room; until then, logs and counts the pause.
    pub async fn wait(&self, table: &str, shard: &str) {
        let mut paused = false;
        loop {
            match free_bytes(&self.dir) {
                Some(free) if free < MIN_FREE_BYTES => {
                    self.metrics
                        .inc(Metric::Errors, &[("kind", "spool_full")], 1);
                    tracing::error!(table, shard, free_bytes = free, spool = %self.dir.display(), "SPOOL FULL: reading paused until the spool volume has {} MiB free (files publish and free it; if they cannot, fix the upload, or give --spool-dir a bigger volume or --flush-size a smaller value)", MIN_FREE_BYTES >> 20);
                    paused = true;
                    tokio::time::sleep(RECHECK).await;
                }
                _ => {
                    if paused {
                        tracing::info!(
                            table,
                            shard,
                            "the spool volume has room again; reading goes on"
                        );
                    }
                    return;
                }
            }
        }
    }
}
/// A command's working folder in the spool directory, removed when the command ends, however it
/// ends (`snapshot`'s output before upload, `restore`'s scratch files).
pub struct WorkDir(pub PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
