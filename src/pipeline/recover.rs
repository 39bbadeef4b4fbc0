//! Resuming a shard after a crash: the archive may hold files the lease table never heard of (a
//! crash after a file was published but before its checkpoint). Re-reading from the checkpoint
//! would then cut files at other places and archive those records a second time under other
//! names. So before reading, the shard's recent folders are listed, and reading resumes after
//! whichever is later: the checkpoint or the last file the archive holds.

use crate::leases::Checkpoint;
use crate::sink::naming::{days_from, dt_of_key, parse_file_name, FileName};
use crate::types::{SequenceNumber, ShardId};

/// Days whose folders may hold files past the checkpoint. Files after the last checkpointed one
/// were written right after it (within a flush interval of a crash), so its day and the next two
/// suffice; without a checkpointed file, the last three days (stream records live 24 hours).
pub fn listing_days(last_file_key: Option<&str>, today: &str) -> Vec<String> {
    match last_file_key.and_then(dt_of_key) {
        Some(dt) => days_from(dt, 3),
        None => {
            let fmt = time::macros::format_description!("[year]-[month]-[day]");
            time::Date::parse(today, fmt)
                .ok()
                .and_then(|d| d.checked_sub(time::Duration::days(2)))
                .and_then(|d| d.format(fmt).ok())
                .map(|start| days_from(&start, 3))
                .unwrap_or_default()
        }
    }
}

/// Where to resume, decided from the checkpoint and the shard's files found in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// The checkpoint is up to date.
    FromCheckpoint,
    /// Files past the checkpoint exist: resume after the last record of `key`.
    AfterFile { key: String, last: SequenceNumber },
    /// The shard's end marker exists: the shard was read to its end.
    ShardEnded { key: String },
}

/// The pure decision. `keys` are archive keys of the shard's recent `dt` folders (other shards'
/// files and foreign names are ignored).
pub fn resume_point(shard: &ShardId, checkpoint: &Checkpoint, keys: &[String]) -> Resume {
    if *checkpoint == Checkpoint::ShardEnd {
        return Resume::FromCheckpoint;
    }
    let after = match checkpoint {
        Checkpoint::At(s) => Some(s),
        _ => None,
    };
    let mut best: Option<(&String, SequenceNumber)> = None;
    for key in keys {
        match parse_file_name(key) {
            Some(FileName::End { shard: s }) if &s == shard => {
                return Resume::ShardEnded { key: key.clone() };
            }
            Some(FileName::Records {
                shard: s,
                first,
                last,
            }) if &s == shard => {
                let past_checkpoint = after.is_none_or(|c| first > *c);
                if past_checkpoint && best.as_ref().is_none_or(|(_, l)| last > *l) {
                    best = Some((key, last));
                }
            }
            _ => {}
        }
    }
    match best {
        Some((key, last)) => Resume::AfterFile {
            key: key.clone(),
            last,
        },
        None => Resume::FromCheckpoint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(s: &str) -> SequenceNumber {
        SequenceNumber::parse(s).unwrap()
    }

    #[test]
    fn listing_days_cover_the_crash_window() {
        assert_eq!(
            listing_days(Some("t/dt=2026-11-30/s_1_2.parquet"), "2026-12-05"),
            vec!["2026-11-30", "2026-12-01", "2026-12-02"]
        );
        assert_eq!(
            listing_days(None, "2026-03-01"),
            vec!["2026-02-27", "2026-02-28", "2026-03-01"]
        );
    }

    #[test]
    fn resume_scenarios() {
        let shard = ShardId::new("shardId-1");
        let k =
            |first: &str, last: &str| format!("t/dt=2026-11-21/shardId-1_{first}_{last}.parquet");
        let cases: Vec<(&str, Checkpoint, Vec<String>, Resume)> = vec![
            (
                "no files",
                Checkpoint::At(seq("10")),
                vec![],
                Resume::FromCheckpoint,
            ),
            (
                "only files up to the checkpoint",
                Checkpoint::At(seq("20")),
                vec![k("1", "10"), k("11", "20")],
                Resume::FromCheckpoint,
            ),
            (
                "a file published after the checkpoint (crash before checkpointing)",
                Checkpoint::At(seq("20")),
                vec![k("1", "10"), k("11", "20"), k("21", "35")],
                Resume::AfterFile {
                    key: k("21", "35"),
                    last: seq("35"),
                },
            ),
            (
                "numeric, not text, comparison of sequence numbers",
                Checkpoint::At(seq("9")),
                vec![k("10", "100")],
                Resume::AfterFile {
                    key: k("10", "100"),
                    last: seq("100"),
                },
            ),
            (
                "first file of a shard never checkpointed",
                Checkpoint::TrimHorizon,
                vec![k("5", "8")],
                Resume::AfterFile {
                    key: k("5", "8"),
                    last: seq("8"),
                },
            ),
            (
                "other shards' files are ignored",
                Checkpoint::At(seq("20")),
                vec!["t/dt=2026-11-21/shardId-2_30_40.parquet".into()],
                Resume::FromCheckpoint,
            ),
            (
                "end marker present: the shard ended",
                Checkpoint::At(seq("20")),
                vec![
                    k("21", "30"),
                    "t/dt=2026-11-21/shardId-1_end.parquet".into(),
                ],
                Resume::ShardEnded {
                    key: "t/dt=2026-11-21/shardId-1_end.parquet".into(),
                },
            ),
            (
                "already SHARD_END",
                Checkpoint::ShardEnd,
                vec![k("21", "30")],
                Resume::FromCheckpoint,
            ),
        ];
        for (name, cp, keys, want) in cases {
            assert_eq!(resume_point(&shard, &cp, &keys), want, "{name}");
        }
    }
}
