//! Shard lineage as a pure decision: which shards may be read now.
//!
//! DynamoDB Streams close a shard and open children (a rollover, or a split into several). A
//! child's records come after its parent's, so a child is read only once its parent has been read
//! to its end, or once the parent is no longer listed (expired after 24 hours, or never seen).
//! Reading a child early would put its records before the last of its parent's: the per-key order
//! the archive promises would break.

use crate::types::ShardId;
use std::collections::HashSet;

/// One shard as DescribeStream lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardNode {
    pub id: ShardId,
    pub parent: Option<ShardId>,
}

/// The shards that may start being read now, in shard id order: not finished, and whose parent
/// is either finished or absent from `shards` (gone from the stream: its records are no longer
/// readable, so waiting for it would stall the child forever). Whether a shard is already being
/// read is a matter of leases, not lineage (`leases::plan`).
pub fn ready_shards(shards: &[ShardNode], finished: &HashSet<ShardId>) -> Vec<ShardId> {
    let listed: HashSet<&ShardId> = shards.iter().map(|s| &s.id).collect();
    let mut ready: Vec<ShardId> = shards
        .iter()
        .filter(|s| !finished.contains(&s.id))
        .filter(|s| match &s.parent {
            None => true,
            Some(p) => !listed.contains(p) || finished.contains(p),
        })
        .map(|s| s.id.clone())
        .collect();
    ready.sort();
    ready
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
        finished: Vec<&'static str>,
        want: Vec<&'static str>,
    }

    #[test]
    fn readiness_scenarios() {
        let cases = vec![
            Case {
                name: "fresh stream with one shard",
                shards: vec![node("a", None)],
                finished: vec![],
                want: vec!["a"],
            },
            Case {
                name: "child waits while the parent is unread",
                shards: vec![node("a", None), node("b", Some("a"))],
                finished: vec![],
                want: vec!["a"],
            },
            Case {
                name: "child is ready once the parent is finished",
                shards: vec![node("a", None), node("b", Some("a"))],
                finished: vec!["a"],
                want: vec!["b"],
            },
            Case {
                name: "a split: both children ready together",
                shards: vec![node("a", None), node("b", Some("a")), node("c", Some("a"))],
                finished: vec!["a"],
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
                finished: vec!["a", "b"],
                want: vec!["c"],
            },
            Case {
                name: "parent gone from the listing (expired): child is ready",
                shards: vec![node("b", Some("a"))],
                finished: vec![],
                want: vec!["b"],
            },
            Case {
                name: "finished shards are not offered again",
                shards: vec![node("a", None), node("x", None), node("y", None)],
                finished: vec!["a"],
                want: vec!["x", "y"],
            },
            Case {
                name: "many open shards at once",
                shards: (0..5)
                    .map(|i| node(["s0", "s1", "s2", "s3", "s4"][i], None))
                    .collect(),
                finished: vec![],
                want: vec!["s0", "s1", "s2", "s3", "s4"],
            },
        ];
        for case in cases {
            let finished: HashSet<ShardId> =
                case.finished.iter().map(|id| ShardId::new(*id)).collect();
            let got = ready_shards(&case.shards, &finished);
            let want: Vec<ShardId> = case.want.iter().map(|s| ShardId::new(*s)).collect();
            assert_eq!(got, want, "{}", case.name);
        }
    }
}
