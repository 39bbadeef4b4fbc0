//! What a restore writes (pure): for one partition, the state at the instant against what the
//! target table holds now, as puts (absent now), overwrites (present, different), deletes (present
//! now, absent then) and items left alone (equal); then those writes cut into BatchWriteItem
//! batches, and each write's digest for the progress journal.

use crate::audit::state::StateItem;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::cmp::Ordering;

/// BatchWriteItem takes at most 25 put or delete requests:
/// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html>
pub const MAX_BATCH_ITEMS: usize = 25;

/// One write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Put the item as it was (`overwrite`: the target holds another version of it now).
    Put {
        keys: String,
        item: String,
        overwrite: bool,
    },
    /// Delete the item: it did not exist at the instant. `live` is the item now (a delete is
    /// billed at its size).
    Delete { keys: String, live: String },
}

impl Action {
    pub fn keys(&self) -> &str {
        match self {
            Self::Put { keys, .. } | Self::Delete { keys, .. } => keys,
        }
    }

    /// A digest of what this write makes the target hold: the journal's record of it.
    pub fn digest(&self) -> u128 {
        let mut h = Sha256::new();
        match self {
            Self::Put { keys, item, .. } => {
                h.update(b"put\0");
                h.update(keys.as_bytes());
                h.update([0]);
                h.update(item.as_bytes());
            }
            Self::Delete { keys, .. } => {
                h.update(b"delete\0");
                h.update(keys.as_bytes());
            }
        }
        u128::from_be_bytes(h.finalize()[..16].try_into().expect("16 bytes"))
    }
}

/// What a plan changes, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Items absent now (or not compared with the target) and present at the instant.
    pub puts: u64,
    /// Items present now and then, different.
    pub overwrites: u64,
    /// Items present now, absent then (only when deleting: `--in-place` or `--key`).
    pub deletes: u64,
    /// Items equal now and then: nothing to write.
    pub unchanged: u64,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        self.puts += o.puts;
        self.overwrites += o.overwrites;
        self.deletes += o.deletes;
        self.unchanged += o.unchanged;
    }

    pub fn writes(&self) -> u64 {
        self.puts + self.overwrites + self.deletes
    }
}

/// The writes that make the target equal to `state` (both sorted by `keys`). `live: None`: the
/// target's contents are not known (a restore into another table, not compared): every item is
/// put. `delete_extra`: items of the target absent from the state are deleted.
pub fn diff(
    state: &[StateItem],
    live: Option<&[(String, String)]>,
    delete_extra: bool,
) -> (Vec<Action>, Counts) {
    let mut counts = Counts::default();
    let mut out = Vec::new();
    let Some(live) = live else {
        for s in state {
            counts.puts += 1;
            out.push(Action::Put {
                keys: s.keys.clone(),
                item: s.item.clone(),
                overwrite: false,
            });
        }
        return (out, counts);
    };
    let (mut i, mut j) = (0, 0);
    loop {
        let order = match (state.get(i), live.get(j)) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(s), Some((k, _))) => s.keys.as_str().cmp(k.as_str()),
        };
        match order {
            Ordering::Less => {
                let s = &state[i];
                counts.puts += 1;
                out.push(Action::Put {
                    keys: s.keys.clone(),
                    item: s.item.clone(),
                    overwrite: false,
                });
                i += 1;
            }
            Ordering::Greater => {
                let (k, item) = &live[j];
                if delete_extra {
                    counts.deletes += 1;
                    out.push(Action::Delete {
                        keys: k.clone(),
                        live: item.clone(),
                    });
                }
                j += 1;
            }
            Ordering::Equal => {
                let (s, (_, now)) = (&state[i], &live[j]);
                if same_item(&s.item, now) {
                    counts.unchanged += 1;
                } else {
                    counts.overwrites += 1;
                    out.push(Action::Put {
                        keys: s.keys.clone(),
                        item: s.item.clone(),
                        overwrite: true,
                    });
                }
                i += 1;
                j += 1;
            }
        }
    }
    (out, counts)
}

/// Whether two items in DynamoDB JSON are the same item: equal text, or equal once the elements of
/// every set are sorted (sets have no order; DynamoDB may return them in another order than they
/// were written, and the archive keeps the order of the stream).
pub fn same_item(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (
        serde_json::from_str::<Value>(a),
        serde_json::from_str::<Value>(b),
    ) {
        (Ok(mut a), Ok(mut b)) => {
            sort_sets(&mut a);
            sort_sets(&mut b);
            a == b
        }
        _ => false,
    }
}

fn sort_sets(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (tag, inner) in m.iter_mut() {
                match (tag.as_str(), inner) {
                    ("SS" | "NS" | "BS", Value::Array(a)) => {
                        a.sort_by(|x, y| x.as_str().cmp(&y.as_str()));
                    }
                    (_, inner) => sort_sets(inner),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(sort_sets),
        _ => {}
    }
}

/// Where batches are cut, one write at a time: a batch holds at most [`MAX_BATCH_ITEMS`] writes,
/// and at most `max_batch_wcu` capacity unless a single write costs more. Keeping a batch below a
/// fraction of a second's `--max-wcu` keeps the rate smooth over any window (a batch of 25 items
/// near 400 KB would otherwise be ten thousand WCU at once).
#[derive(Debug, Clone)]
pub struct Cutter {
    max_batch_wcu: Option<u64>,
    items: usize,
    wcu: u64,
}

impl Cutter {
    pub fn new(max_batch_wcu: Option<u64>) -> Self {
        Self {
            max_batch_wcu,
            items: 0,
            wcu: 0,
        }
    }

    /// Whether the batch so far must be sent before a write costing `cost` joins it; then the
    /// write starts the next batch.
    pub fn push(&mut self, cost: u64) -> bool {
        let full = self.items == MAX_BATCH_ITEMS
            || self
                .max_batch_wcu
                .is_some_and(|m| self.items > 0 && self.wcu + cost > m);
        if full {
            self.items = 0;
            self.wcu = 0;
        }
        self.items += 1;
        self.wcu += cost;
        full
    }
}

/// The batches [`Cutter`] makes of writes costing `costs`, as ranges.
pub fn batches(costs: &[u64], max_batch_wcu: Option<u64>) -> Vec<std::ops::Range<usize>> {
    let mut cutter = Cutter::new(max_batch_wcu);
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in costs.iter().enumerate() {
        if cutter.push(*c) {
            out.push(start..i);
            start = i;
        }
    }
    if start < costs.len() {
        out.push(start..costs.len());
    }
    out
}

/// The largest batch under `--max-wcu`: a quarter of a second's capacity, at least one unit.
pub fn max_batch_wcu(max_wcu: Option<f64>) -> Option<u64> {
    max_wcu.map(|w| ((w / 4.0).floor() as u64).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(keys: &str, item: &str) -> StateItem {
        StateItem {
            keys: keys.into(),
            item: item.into(),
            source_event_id: String::new(),
            source_time_ms: 0,
            from_change: true,
        }
    }

    fn live(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_diff_table() {
        let state = vec![st("a", "a1"), st("b", "b1"), st("c", "c1")];
        let now = live(&[("b", "b1"), ("c", "c2"), ("d", "d1")]);
        // (live, delete extra, expected counts, expected keys written)
        type Case<'a> = (
            Option<&'a [(String, String)]>,
            bool,
            Counts,
            Vec<&'static str>,
        );
        let cases: Vec<Case> = vec![
            (
                Some(&now),
                true,
                Counts {
                    puts: 1,
                    overwrites: 1,
                    deletes: 1,
                    unchanged: 1,
                },
                vec!["a", "c", "d"],
            ),
            (
                Some(&now),
                false,
                Counts {
                    puts: 1,
                    overwrites: 1,
                    deletes: 0,
                    unchanged: 1,
                },
                vec!["a", "c"],
            ),
            (
                None,
                false,
                Counts {
                    puts: 3,
                    ..Counts::default()
                },
                vec!["a", "b", "c"],
            ),
            (
                Some(&[]),
                true,
                Counts {
                    puts: 3,
                    ..Counts::default()
                },
                vec!["a", "b", "c"],
            ),
        ];
        for (live, delete, want, keys) in cases {
            let (actions, counts) = diff(&state, live, delete);
            assert_eq!(counts, want, "{live:?} {delete}");
            assert_eq!(
                actions.iter().map(Action::keys).collect::<Vec<_>>(),
                keys,
                "{live:?} {delete}"
            );
        }
        // Deleting everything: an empty state against a full table.
        let (actions, counts) = diff(&[], Some(&now), true);
        assert_eq!(counts.deletes, 3);
        assert!(matches!(&actions[0], Action::Delete { live, .. } if live == "b1"));
    }

    #[test]
    fn sets_compare_as_sets() {
        let a = r#"{"id":{"N":"1"},"s":{"SS":["b","a"]},"m":{"M":{"n":{"NS":["2","1"]}}}}"#;
        let b = r#"{"id":{"N":"1"},"m":{"M":{"n":{"NS":["1","2"]}}},"s":{"SS":["a","b"]}}"#;
        assert!(same_item(a, b));
        let lists = (
            r#"{"l":{"L":[{"N":"1"},{"N":"2"}]}}"#,
            r#"{"l":{"L":[{"N":"2"},{"N":"1"}]}}"#,
        );
        assert!(!same_item(lists.0, lists.1), "lists keep their order");
        assert!(!same_item(r#"{"n":{"N":"1"}}"#, r#"{"n":{"S":"1"}}"#));
        assert!(!same_item("not json", "{}"));
    }

    #[test]
    fn batches_respect_count_and_capacity() {
        // (costs, cap, expected batch lengths)
        let cases: Vec<(Vec<u64>, Option<u64>, Vec<usize>)> = vec![
            (vec![1; 60], None, vec![25, 25, 10]),
            (vec![1; 60], Some(10), vec![10; 6]),
            (vec![400, 1, 1, 400], Some(100), vec![1, 2, 1]),
            (vec![], Some(10), vec![]),
            (vec![3; 5], Some(9), vec![3, 2]),
        ];
        for (costs, cap, want) in cases {
            let got: Vec<usize> = batches(&costs, cap).iter().map(|r| r.len()).collect();
            assert_eq!(got, want, "{costs:?} {cap:?}");
        }
    }

    #[test]
    fn a_batch_is_a_quarter_second_of_capacity() {
        assert_eq!(max_batch_wcu(None), None);
        assert_eq!(max_batch_wcu(Some(100.0)), Some(25));
        assert_eq!(max_batch_wcu(Some(2.0)), Some(1));
    }

    #[test]
    fn digests_tell_writes_apart() {
        let put = |i: &str| Action::Put {
            keys: "k".into(),
            item: i.into(),
            overwrite: false,
        };
        let del = Action::Delete {
            keys: "k".into(),
            live: "x".into(),
        };
        assert_eq!(put("a").digest(), put("a").digest());
        assert_ne!(put("a").digest(), put("b").digest());
        assert_ne!(put("a").digest(), del.digest());
    }
}
