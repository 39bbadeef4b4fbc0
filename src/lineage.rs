//! Shard lineage as a pure decision: which shards may be read now.
//!
//! DynamoDB Streams close a shard and open children (a rollover, or a split into several). A
//! child's records come after its parent's, so a child is read only once its parent has been read
//! to its end, or once the parent is no longer listed (expired after 24 hours, or never seen).
//! Reading a child early would put its records before the last of its parent's: the per-key order
//! the archive promises would break.

use crate::types::ShardId;
use std::collections::{HashMap, HashSet};

/// One shard as DescribeStream lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardNode {
    pub id: ShardId,
    pub parent: Option<ShardId>,
}

/// How far the archive has got with a shard (from its checkpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Read to its end and checkpointed as SHARD_END.
    Finished,
    /// A reader owns it now.
    Reading,
}

/// The shards that may start being read now, parents before children, in shard id order.
///
/// A shard is ready when nobody reads it, it is not finished, and its parent is either finished or
/// absent from `shards` (gone from the stream: its records are no longer readable, so waiting for
/// it would stall the child forever).
pub fn ready_shards(shards: &[ShardNode], progress: &HashMap<ShardId, Progress>) -> Vec<ShardId> {
    let listed: HashSet<&ShardId> = shards.iter().map(|s| &s.id).collect();
    let mut ready: Vec<ShardId> = shards
        .iter()
        .filter(|s| !progress.contains_key(&s.id))
        .filter(|s| match &s.parent {
            None => true,
            Some(p) if !listed.contains(p) => true,
            Some(p) => progress.get(p) == Some(&Progress::Finished),
        })
        .map(|s| s.id.clone())
        .collect();
    ready.sort();
    ready
}

/// Shards of `shards` whose parent is absent from the listing (the parent expired from the
/// stream): what `verify` and the operator need to know about, since an unread parent's records
/// are gone.
pub fn orphans(shards: &[ShardNode]) -> Vec<(ShardId, ShardId)> {
    let listed: HashSet<&ShardId> = shards.iter().map(|s| &s.id).collect();
    shards
        .iter()
        .filter_map(|s| match &s.parent {
            Some(p) if !listed.contains(p) => Some((s.id.clone(), p.clone())),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, parent: Option<&str>) -> ShardNode {
        ShardNode {
            id: ShardId::new(id),
            parent: parent.map(ShardId::new),
        }
    }

    struct Case {
        name: &'static str,
        shards: Vec<ShardNode>,
        progress: Vec<(&'static str, Progress)>,
        want: Vec<&'static str>,
    }

    #[test]
    fn readiness_scenarios() {
        use Progress::*;
        let cases = vec![
            Case {
                name: "fresh stream with one shard",
                shards: vec![node("a", None)],
                progress: vec![],
                want: vec!["a"],
            },
            Case {
                name: "child waits while the parent is unread",
                shards: vec![node("a", None), node("b", Some("a"))],
                progress: vec![],
                want: vec!["a"],
            },
            Case {
                name: "child waits while the parent is being read",
                shards: vec![node("a", None), node("b", Some("a"))],
                progress: vec![("a", Reading)],
                want: vec![],
            },
            Case {
                name: "child is ready once the parent is finished",
                shards: vec![node("a", None), node("b", Some("a"))],
                progress: vec![("a", Finished)],
                want: vec!["b"],
            },
            Case {
                name: "a split: both children ready together",
                shards: vec![node("a", None), node("b", Some("a")), node("c", Some("a"))],
                progress: vec![("a", Finished)],
                want: vec!["b", "c"],
            },
            Case {
                name: "a chain of rollovers goes one link at a time",
                shards: vec![
                    node("a", None),
                    node("b", Some("a")),
                    node("c", Some("b")),
                    node("d", Some("c")),
                ],
                progress: vec![("a", Finished), ("b", Finished)],
                want: vec!["c"],
            },
            Case {
                name: "parent gone from the listing (expired): child is ready",
                shards: vec![node("b", Some("a"))],
                progress: vec![],
                want: vec!["b"],
            },
            Case {
                name: "finished and running shards are not offered again",
                shards: vec![node("a", None), node("x", None), node("y", None)],
                progress: vec![("a", Finished), ("x", Reading)],
                want: vec!["y"],
            },
            Case {
                name: "many open shards at once",
                shards: (0..5)
                    .map(|i| node(["s0", "s1", "s2", "s3", "s4"][i], None))
                    .collect(),
                progress: vec![],
                want: vec!["s0", "s1", "s2", "s3", "s4"],
            },
        ];
        for case in cases {
            let progress: HashMap<ShardId, Progress> = case
                .progress
                .iter()
                .map(|(id, p)| (ShardId::new(*id), *p))
                .collect();
            let got = ready_shards(&case.shards, &progress);
            let want: Vec<ShardId> = case.want.iter().map(|s| ShardId::new(*s)).collect();
            assert_eq!(got, want, "{}", case.name);
        }
    }

    #[test]
    fn orphans_are_named() {
        let shards = vec![node("b", Some("a")), node("c", Some("b"))];
        assert_eq!(
            orphans(&shards),
            vec![(ShardId::new("b"), ShardId::new("a"))]
        );
    }
}
