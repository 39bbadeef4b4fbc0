//! `snapshot --as-of T`: a table's state at an instant, rebuilt from SNAPSHOT rows and changes.
//!
//! The rule for one key (it needs a stream that began before the scan, NEW_AND_OLD_IMAGES for the
//! second case; see docs/AUDIT.md):
//!
//! 1. If it has changes at or before T, the latest of them decides: a REMOVE means absent,
//!    otherwise its new image.
//! 2. Else, if it has changes after T, the first of them decides: the item was as that change's
//!    old image says (absent for an INSERT).
//! 3. Else it never changed while the stream was archived: its newest SNAPSHOT row, if any.
//!
//! SNAPSHOT rows are never ordered against changes by time: a scan's read time and a change's
//! approximate `event_time` cannot be compared reliably within the same second (minute on
//! DynamoDB Local); the rule above never needs to.

use serde::{Deserialize, Serialize};

/// One archive row, reduced to what the rule needs (written to and read from spill files).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    pub keys: String,
    pub time_ms: i64,
    /// Lineage and sequence order within equal times (see `history::order_key`).
    pub order: (u128, String),
    pub snapshot: bool,
    pub remove: bool,
    pub new_image: Option<String>,
    pub old_image: Option<String>,
    pub event_id: String,
}

/// What one key's rows say so far.
#[derive(Debug, Default, Clone)]
pub struct KeyState {
    latest_at_or_before: Option<Row>,
    first_after: Option<Row>,
    newest_snapshot: Option<Row>,
}

impl KeyState {
    pub fn add(&mut self, row: Row, as_of_ms: i64) {
        let at = |r: &Row| (r.time_ms, r.order.clone());
        if row.snapshot {
            if self
                .newest_snapshot
                .as_ref()
                .is_none_or(|s| s.time_ms < row.time_ms)
            {
                self.newest_snapshot = Some(row);
            }
        } else if row.time_ms <= as_of_ms {
            if self
                .latest_at_or_before
                .as_ref()
                .is_none_or(|s| at(s) < at(&row))
            {
                self.latest_at_or_before = Some(row);
            }
        } else if self.first_after.as_ref().is_none_or(|s| at(&row) < at(s)) {
            self.first_after = Some(row);
        }
    }

    /// The item at the instant, and the row that says so; `None`: absent.
    pub fn resolve(self) -> Option<(String, Row)> {
        if let Some(r) = self.latest_at_or_before {
            return if r.remove {
                None
            } else {
                r.new_image.clone().map(|i| (i, r))
            };
        }
        if let Some(r) = self.first_after {
            return r.old_image.clone().map(|i| (i, r));
        }
        let r = self.newest_snapshot?;
        r.new_image.clone().map(|i| (i, r))
    }
}

/// Which of `partitions` spill files a key goes to.
pub fn partition_of(keys: &str, partitions: usize) -> usize {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(keys.as_bytes());
    (u64::from_be_bytes(d[..8].try_into().expect("8 bytes")) % partitions as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: &str, t: i64, seq: u32, new: Option<&str>, old: Option<&str>) -> Row {
        Row {
            keys: "k".into(),
            time_ms: t,
            order: (1, format!("{seq:040}")),
            snapshot: kind == "SNAPSHOT",
            remove: kind == "REMOVE",
            new_image: new.map(str::to_owned),
            old_image: old.map(str::to_owned),
            event_id: format!("{kind}{t}{seq}"),
        }
    }

    fn state(rows: &[Row], t: i64) -> Option<String> {
        let mut s = KeyState::default();
        for r in rows {
            s.add(r.clone(), t);
        }
        s.resolve().map(|(i, _)| i)
    }

    #[test]
    fn the_rule_table() {
        let snap = row("SNAPSHOT", 50, 0, Some("s"), None);
        let ins = row("INSERT", 100, 1, Some("a"), None);
        let m1 = row("MODIFY", 100, 2, Some("b"), Some("a"));
        let m2 = row("MODIFY", 200, 3, Some("c"), Some("b"));
        let del = row("REMOVE", 300, 4, None, Some("c"));
        let all = [
            snap.clone(),
            ins.clone(),
            m1.clone(),
            m2.clone(),
            del.clone(),
        ];
        // (rows, as of, expected)
        let cases: Vec<(Vec<Row>, i64, Option<&str>)> = vec![
            (all.to_vec(), 100, Some("b")), // ties at 100 ordered by sequence
            (all.to_vec(), 250, Some("c")),
            (all.to_vec(), 300, None),                        // removed
            (all.to_vec(), 10, None), // first change after is an INSERT: absent
            (vec![snap.clone(), m2.clone()], 10, Some("b")), // old image of the first change after
            (vec![snap.clone()], 10, Some("s")), // never changed: the snapshot, whenever read
            (vec![snap.clone(), m2.clone()], 500, Some("c")), // a change beats a snapshot
            (vec![], 10, None),
        ];
        for (rows, t, want) in cases {
            assert_eq!(state(&rows, t).as_deref(), want, "as of {t}: {rows:?}");
        }
        // The newest of several snapshots; the order of arrival does not matter.
        let old_snap = row("SNAPSHOT", 10, 0, Some("old"), None);
        assert_eq!(
            state(&[snap.clone(), old_snap.clone()], 0).as_deref(),
            Some("s")
        );
        assert_eq!(state(&[old_snap, snap], 0).as_deref(), Some("s"));
        assert_eq!(state(&[m2, m1, ins], 150).as_deref(), Some("b"));
    }

    #[test]
    fn partitions_spread_and_are_stable() {
        let n = 16;
        let mut counts = vec![0; n];
        for i in 0..1600 {
            counts[partition_of(&format!("{{\"id\":{{\"N\":\"{i}\"}}}}"), n)] += 1;
        }
        assert!(counts.iter().all(|c| *c > 50), "{counts:?}");
        assert_eq!(partition_of("x", n), partition_of("x", n));
    }
}
