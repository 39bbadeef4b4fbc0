//! The restore's progress journal: a local, append-only file per partition in `--spool-dir`,
//! one line per write, so that a killed restore goes on where it stopped.
//!
//! Before a batch is sent, a `sent <digest>` line is appended for each of its writes; after the
//! answer, a `done <digest>` line for each write DynamoDB processed. A digest names what the write
//! makes the target hold (`plan::Action::digest`), not its place in a batch: the next run
//! recomputes the state (the same for the same instant), skips every write whose digest is done,
//! and reads back the few that were sent but not known done (a batch in flight at the kill)
//! instead of writing them again. Each item is thus written at most once more after a kill, and
//! only when the read-back finds it was not written.
//!
//! Why a local file and not markers in the archive: a marker per batch would be hundreds of
//! thousands of objects that an Object Lock bucket keeps for seven years and never lets anyone
//! delete; the journal is scratch state, removed when the restore finishes. Lines reach the file
//! with `write(2)` before the batch is sent, so a `kill -9` loses none (the page cache survives a
//! process); a machine crash may lose the last lines, and then a few more items are read back or
//! written again (a put is idempotent). A restore continued on another machine or with another
//! `--spool-dir` starts over, writing every item again.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// What the journal of one partition says.
#[derive(Debug, Default)]
pub struct Recorded {
    pub done: HashSet<u128>,
    /// Sent, not known done: written or not.
    pub in_doubt: HashSet<u128>,
}

/// The journal of one partition, open for appending.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: std::fs::File,
    line: String,
}

impl Journal {
    /// Opens (creating it if need be) the journal of partition `index` in `dir`, and reads what
    /// earlier runs recorded. A torn last line (a kill in the middle of a write) is ignored.
    pub fn open(dir: &Path, index: usize) -> std::io::Result<(Self, Recorded)> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("part-{index:03}.journal"));
        let mut recorded = Recorded::default();
        let mut sent = HashSet::new();
        if let Ok(f) = std::fs::File::open(&path) {
            for line in std::io::BufReader::new(f).lines() {
                let line = line?;
                match parse(&line) {
                    Some(("sent", d)) => {
                        sent.insert(d);
                    }
                    Some(("done", d)) => {
                        recorded.done.insert(d);
                    }
                    _ => {}
                }
            }
        }
        recorded.in_doubt = sent
            .into_iter()
            .filter(|d| !recorded.done.contains(d))
            .collect();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        // A torn last line is ended, so that the next line stands on its own.
        let len = file.metadata()?.len();
        let mut last = [b'\n'];
        if len > 0 {
            use std::os::unix::fs::FileExt;
            std::fs::File::open(&path)?.read_exact_at(&mut last, len - 1)?;
        }
        let torn = last[0] != b'\n';
        if torn {
            file.write_all(b"\n")?;
        }
        Ok((
            Self {
                path,
                file,
                line: String::new(),
            },
            recorded,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `<what> <digest>` lines in one write.
    pub fn record(&mut self, what: &str, digests: &[u128]) -> std::io::Result<()> {
        if digests.is_empty() {
            return Ok(());
        }
        self.line.clear();
        for d in digests {
            self.line.push_str(what);
            self.line.push(' ');
            self.line.push_str(&format!("{d:032x}"));
            self.line.push('\n');
        }
        self.file.write_all(self.line.as_bytes())
    }
}

fn parse(line: &str) -> Option<(&str, u128)> {
    let (what, hex) = line.split_once(' ')?;
    if hex.len() != 32 {
        return None;
    }
    Some((what, u128::from_str_radix(hex, 16).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_reopens_with_what_was_done_and_what_is_in_doubt() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut j, r) = Journal::open(dir.path(), 3).unwrap();
            assert!(r.done.is_empty() && r.in_doubt.is_empty());
            j.record("sent", &[1, 2, 3]).unwrap();
            j.record("done", &[1, 3]).unwrap();
            j.record("sent", &[4]).unwrap();
        }
        // A kill in the middle of a line.
        let path = dir.path().join("part-003.journal");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"done 0000").unwrap();
        let (mut j, r) = Journal::open(dir.path(), 3).unwrap();
        assert_eq!(r.done, HashSet::from([1, 3]));
        assert_eq!(r.in_doubt, HashSet::from([2, 4]));
        j.record("done", &[u128::MAX]).unwrap();
        let (_, r) = Journal::open(dir.path(), 3).unwrap();
        assert!(
            r.done.contains(&u128::MAX),
            "a line after a torn one stands"
        );
        let (_, other) = Journal::open(dir.path(), 4).unwrap();
        assert!(other.done.is_empty(), "partitions have their own journals");
    }
}
