//! `history`: one item's timeline from the archive. The pure parts: the key asked for, the exact
//! `keys` strings it can have in the archive (for pruning by Parquet statistics and for matching),
//! the order of events, and what changed between an old and a new image.

use crate::encode::ddb_json::write_str;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// `name=value` parts of `--key`; a value may name its type (`N:42`, `S:42`, `B:AAE=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyQuery {
    /// `(attribute, types to try, value)`, sorted by attribute name (the canonical order).
    parts: Vec<(String, Vec<&'static str>, String)>,
}

impl KeyQuery {
    pub fn parse(parts: &[String]) -> Result<Self, String> {
        if parts.is_empty() || parts.len() > 2 {
            return Err("give the item's key as one or two --key NAME=VALUE (partition key, and the sort key of a composite key)".into());
        }
        let mut out = Vec::new();
        for p in parts {
            let (name, value) = p
                .split_once('=')
                .filter(|(n, _)| !n.is_empty())
                .ok_or_else(|| format!("`{p}` is not NAME=VALUE"))?;
            let (types, value) = match value.split_once(':') {
                Some(("N", v)) => (vec!["N"], v),
                Some(("S", v)) => (vec!["S"], v),
                Some(("B", v)) => (vec!["B"], v),
                _ => (vec!["S", "N", "B"], value),
            };
            out.push((name.to_owned(), types, value.to_owned()));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        if out.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err("the same key attribute is given twice".into());
        }
        Ok(Self { parts: out })
    }

    /// Every canonical `keys` string the item can have (one per combination of types).
    pub fn candidates(&self) -> Vec<String> {
        let mut out = vec![String::from("{")];
        for (i, (name, types, value)) in self.parts.iter().enumerate() {
            let mut next = Vec::new();
            for prefix in &out {
                for t in types {
                    let mut s = prefix.clone();
                    if i > 0 {
                        s.push(',');
                    }
                    write_str(&mut s, name);
                    s.push_str(&format!(":{{\"{t}\":"));
                    write_str(&mut s, value);
                    s.push('}');
                    next.push(s);
                }
            }
            out = next;
        }
        out.into_iter().map(|s| s + "}").collect()
    }
}

impl KeyQuery {
    /// The one canonical `keys` string of the item in a table whose key is `shape` (`name:TYPE`
    /// pairs sorted by name, comma-separated, as [`key_shape`] gives them), or why the
    /// given key cannot be one of that table.
    pub fn exact(&self, shape: &str) -> Result<String, String> {
        self.candidates()
            .into_iter()
            .find(|c| key_shape(c).as_deref() == Some(shape))
            .ok_or_else(|| {
                let given: Vec<String> = self
                    .parts
                    .iter()
                    .map(|(n, t, _)| format!("{n}:{}", t.join("|")))
                    .collect();
                format!(
                    "the key given ({}) is not one of a table whose key is {shape}; name every key attribute, with its type if needed",
                    given.join(",")
                )
            })
    }
}

/// `name:TYPE` pairs of a `keys` string, comma-separated in the canonical (sorted) order.
pub fn key_shape(keys: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(keys).ok()?;
    let parts: Vec<String> = v
        .as_object()?
        .iter()
        .map(|(name, value)| {
            let tag = value
                .as_object()
                .and_then(|o| o.keys().next().cloned())
                .unwrap_or_default();
            format!("{name}:{tag}")
        })
        .collect();
    Some(parts.join(","))
}

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

    #[test]
    fn keys_give_every_canonical_form() {
        let q = KeyQuery::parse(&["userid=42".into()]).unwrap();
        assert_eq!(
            q.candidates(),
            vec![
                r#"{"userid":{"S":"42"}}"#,
                r#"{"userid":{"N":"42"}}"#,
                r#"{"userid":{"B":"42"}}"#
            ]
        );
        let q = KeyQuery::parse(&["sk=N:7".into(), "pk=S:a\"b".into()]).unwrap();
        assert_eq!(
            q.candidates(),
            vec![r#"{"pk":{"S":"a\"b"},"sk":{"N":"7"}}"#]
        );
        assert_eq!(
            KeyQuery::parse(&["userid=42".into()])
                .unwrap()
                .exact("userid:N")
                .unwrap(),
            r#"{"userid":{"N":"42"}}"#
        );
        let q = KeyQuery::parse(&["sk=N:7".into(), "pk=S:a".into()]).unwrap();
        assert!(q.exact("pk:S,sk:S").is_err(), "a typed part that disagrees");
        assert!(q.exact("pk:S").is_err(), "a part the table does not have");
        assert!(KeyQuery::parse(&[]).is_err());
        assert_eq!(key_shape(r#"{"id":{"N":"1"}}"#).as_deref(), Some("id:N"));
        assert_eq!(
            key_shape(r#"{"pk":{"S":"a"},"sk":{"B":"AA=="}}"#).as_deref(),
            Some("pk:S,sk:B")
        );
        assert_eq!(key_shape("not json"), None);
        assert!(KeyQuery::parse(&["noequals".into()]).is_err());
        assert!(KeyQuery::parse(&["a=1".into(), "a=2".into()]).is_err());
    }

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
