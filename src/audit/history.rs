//! `history`: one item's timeline from the archive. The pure parts: pruning row groups by the
//! key's candidate `keys` strings ([`crate::encode::key_query::KeyQuery`]), the order of events, and what changed between an
//! old and a new image.

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Whether a row group whose `keys` lie in `[min, max]` may hold one of `candidates`.
pub fn may_hold(candidates: &[String], min: &[u8], max: &[u8]) -> bool {
    candidates
        .iter()
        .any(|c| c.as_bytes() >= min && c.as_bytes() <= max)
}

/// One event of the timeline.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Event {
    pub time: String,
    #[serde(skip)]
    pub time_ms: i64,
    pub event: String,
    /// `user`, `TTL`, or the principal of another service.
    pub who: String,
    pub changes: Vec<Change>,
    pub file: String,
    #[serde(skip)]
    pub order: (u128, String),
}

/// One attribute's change: `from` absent = added, `to` absent = removed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Change {
    pub attribute: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// Who made a change, from the record's `user_identity`.
pub fn who(user_identity: Option<&str>) -> String {
    match user_identity {
        None => "user".into(),
        Some("dynamodb.amazonaws.com") => "TTL".into(),
        Some(other) => other.into(),
    }
}

fn attributes(image: Option<&str>) -> BTreeMap<String, String> {
    let Some(text) = image else {
        return BTreeMap::new();
    };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => m.into_iter().map(|(k, v)| (k, v.to_string())).collect(),
        _ => BTreeMap::new(),
    }
}

/// What changed from `old` to `new` (either may be absent), attribute by attribute.
pub fn diff(old: Option<&str>, new: Option<&str>) -> Vec<Change> {
    let (old, new) = (attributes(old), attributes(new));
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|n| {
            let (from, to) = (old.get(n), new.get(n));
            (from != to).then(|| Change {
                attribute: n.clone(),
                from: from.cloned(),
                to: to.cloned(),
            })
        })
        .collect()
}

/// The order of one item's events: by time, then by shard creation and sequence number (an
/// item's changes are in one shard at a time; a child shard is created after its parent).
pub fn order_key(shard_id: Option<&str>, sequence: Option<&str>) -> (u128, String) {
    let created = shard_id
        .and_then(|s| s.split('-').nth(1))
        .and_then(|d| d.parse().ok())
        .unwrap_or(0);
    let seq = sequence.map_or(String::new(), |s| format!("{s:0>40}"));
    (created, seq)
}

pub fn render_text(key: &str, events: &[Event]) -> String {
    let mut out = format!("history of {key}: {} events\n", events.len());
    for e in events {
        out.push_str(&format!(
            "{}  {:<8}  by {:<5}  {}\n",
            e.time, e.event, e.who, e.file
        ));
        for c in &e.changes {
            match (&c.from, &c.to) {
                (None, Some(to)) => out.push_str(&format!("    + {} = {to}\n", c.attribute)),
                (Some(from), None) => {
                    out.push_str(&format!("    - {} (was {from})\n", c.attribute))
                }
                (Some(from), Some(to)) => {
                    out.push_str(&format!("    ~ {}: {from} -> {to}\n", c.attribute))
                }
                (None, None) => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::key_query::KeyQuery;

    #[test]
    fn statistics_prune_row_groups() {
        let c = KeyQuery::parse(&["id=N:42".into()]).unwrap().candidates();
        assert!(may_hold(&c, br#"{"id":{"N":"1"}}"#, br#"{"id":{"N":"9"}}"#));
        assert!(!may_hold(
            &c,
            br#"{"id":{"N":"5"}}"#,
            br#"{"id":{"N":"9"}}"#
        ));
    }

    #[test]
    fn diffs_name_added_removed_and_changed_attributes() {
        let d = diff(
            Some(r#"{"id":{"N":"1"},"email":{"S":"a"},"gone":{"BOOL":true}}"#),
            Some(r#"{"id":{"N":"1"},"email":{"S":"b"},"new":{"N":"2"}}"#),
        );
        let got: Vec<(&str, Option<&str>, Option<&str>)> = d
            .iter()
            .map(|c| (c.attribute.as_str(), c.from.as_deref(), c.to.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("email", Some(r#"{"S":"a"}"#), Some(r#"{"S":"b"}"#)),
                ("gone", Some(r#"{"BOOL":true}"#), None),
                ("new", None, Some(r#"{"N":"2"}"#)),
            ]
        );
        assert_eq!(diff(None, Some(r#"{"id":{"N":"1"}}"#)).len(), 1);
        assert_eq!(who(Some("dynamodb.amazonaws.com")), "TTL");
        assert_eq!(who(None), "user");
    }

    #[test]
    fn events_order_by_lineage_then_sequence() {
        let parent = order_key(Some("shardId-00000001700000000000-a"), Some("900"));
        let child = order_key(Some("shardId-00000001700000500000-b"), Some("100"));
        assert!(parent < child);
        assert!(
            order_key(Some("shardId-1-a"), Some("99"))
                < order_key(Some("shardId-1-a"), Some("100"))
        );
    }
}
