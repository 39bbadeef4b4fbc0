//! `--key NAME=VALUE` of `history` and `restore`: the key asked for, and every canonical `keys`
//! string (the archive's `keys` column, [`super::ddb_json`]'s canonical JSON) it can be. Parsed
//! once when the configuration is read and kept parsed; `history` prunes row groups with the
//! candidates, `restore` picks the one candidate that fits the table's key shape.

use super::ddb_json::write_str;

/// `name=value` parts of `--key`; a value may name its type (`N:42`, `S:42`, `B:AAE=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyQuery {
    /// `(attribute, types to try, value)`, sorted by attribute name (the canonical order).
    parts: Vec<(String, Vec<&'static str>, String)>,
    /// The parts as the user wrote them, in their order: for messages and records.
    given: Vec<String>,
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
        Ok(Self {
            parts: out,
            given: parts.to_vec(),
        })
    }

    /// The parts as given (`["userid=42"]`).
    pub fn given(&self) -> &[String] {
        &self.given
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
}
