//! Names in SQL: quoted identifiers, string literals, and column names that are distinct in every
//! engine whatever the attribute names are.
//!
//! DynamoDB attribute names are any UTF-8 (spaces, quotes, control characters, emoji, 64 KB
//! long), and two of them may differ only in case. Athena lower-cases column names (its catalog
//! is case-insensitive) and DuckDB compares identifiers case-insensitively (it silently renames
//! the second of `"Email"` and `"email"` to `email_1`), so distinct columns need names that stay
//! distinct once lower-cased. Glue stores a column name as a single line of at most 255 bytes.

use sha2::{Digest, Sha256};
use std::collections::HashSet;

/// Longest column name (in bytes) before a suffix is added: Glue's limit is 255 bytes, and the
/// `old_` prefix and `_2` or type suffixes must still fit.
const MAX_BASE_BYTES: usize = 200;

/// A double-quoted identifier (both engines), with `"` doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A string literal for either engine: single quotes, `'` doubled. Control characters (which a
/// literal may not hold raw in every client) are spelled `chr(n)` and concatenated, so the value
/// is exact whatever it holds.
pub fn quote_literal(value: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut plain = String::new();
    for c in value.chars() {
        if c.is_control() {
            if !plain.is_empty() || parts.is_empty() {
                parts.push(format!("'{}'", plain.replace('\'', "''")));
                plain.clear();
            }
            parts.push(format!("chr({})", c as u32));
        } else {
            plain.push(c);
        }
    }
    if !plain.is_empty() || parts.is_empty() {
        parts.push(format!("'{}'", plain.replace('\'', "''")));
    }
    if parts.len() == 1 {
        parts.pop().unwrap_or_default()
    } else {
        format!("({})", parts.join(" || "))
    }
}

/// A name as it may appear in a comment line: JSON string syntax, so no line break can end the
/// comment early and every character stays visible.
pub fn comment_name(name: &str) -> String {
    serde_json::to_string(name).unwrap_or_default()
}

/// An attribute name made fit for a column: control characters become `_` (a column name is one
/// line), and a name longer than [`MAX_BASE_BYTES`] is cut and given a hash of the whole name,
/// so two long names sharing a beginning stay apart.
pub fn column_base(attribute: &str) -> String {
    let clean: String = attribute
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    if clean.len() <= MAX_BASE_BYTES {
        return clean;
    }
    let mut cut = MAX_BASE_BYTES - 9;
    while !clean.is_char_boundary(cut) {
        cut -= 1;
    }
    let hash = hex::encode(&Sha256::digest(attribute.as_bytes())[..4]);
    format!("{}_{hash}", &clean[..cut])
}

/// Column names given out so far, compared as the engines compare them.
#[derive(Debug, Default)]
pub struct Names {
    taken: HashSet<String>,
}

/// How names are compared: Unicode lower case, which is what Athena applies and is at least as
/// coarse as DuckDB's case-insensitive comparison (DuckDB also folds `K`, the Kelvin sign, into
/// `k`).
fn folded(name: &str) -> String {
    name.to_lowercase()
}

impl Names {
    /// Marks a name as used by a column that is not an attribute (`event_id`, `keys`, ...).
    pub fn reserve(&mut self, name: &str) {
        self.taken.insert(folded(name));
    }

    /// `wanted`, or `wanted_2`, `wanted_3`, ... if it is taken; the name is then taken.
    pub fn claim(&mut self, wanted: &str) -> String {
        let mut name = wanted.to_owned();
        let mut n = 1u32;
        while self.taken.contains(&folded(&name)) {
            n += 1;
            name = format!("{wanted}_{n}");
        }
        self.taken.insert(folded(&name));
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals_are_quoted() {
        let cases = [
            ("plain", "\"plain\"", "'plain'"),
            ("with space", "\"with space\"", "'with space'"),
            ("dq\"uote", "\"dq\"\"uote\"", "'dq\"uote'"),
            ("sq'uote", "\"sq'uote\"", "'sq''uote'"),
            ("ключ ü 😀", "\"ключ ü 😀\"", "'ключ ü 😀'"),
            ("", "\"\"", "''"),
        ];
        for (name, ident, literal) in cases {
            assert_eq!(quote_ident(name), ident, "{name}");
            assert_eq!(quote_literal(name), literal, "{name}");
        }
    }

    #[test]
    fn control_characters_in_literals_are_spelled_out() {
        let cases = [
            ("a\nb", "('a' || chr(10) || 'b')"),
            ("\ta", "('' || chr(9) || 'a')"),
            ("a'\u{0}", "('a''' || chr(0))"),
            ("\u{7f}", "('' || chr(127))"),
        ];
        for (value, want) in cases {
            assert_eq!(quote_literal(value), want, "{value:?}");
        }
    }

    #[test]
    fn column_bases_are_one_line_and_bounded() {
        assert_eq!(column_base("line\nbreak\t"), "line_break_");
        let long = "é".repeat(300);
        let other = format!("{}x", "é".repeat(299));
        let (a, b) = (column_base(&long), column_base(&other));
        assert!(
            a.len() <= MAX_BASE_BYTES && b.len() <= MAX_BASE_BYTES,
            "{}",
            a.len()
        );
        assert_ne!(a, b, "long names sharing a beginning stay apart");
        assert!(a.starts_with("éé"));
    }

    #[test]
    fn claims_are_distinct_once_lower_cased() {
        let mut names = Names::default();
        names.reserve("event_id");
        let got: Vec<String> = [
            "Email", "email", "EMAIL", "email_2", "event_id", "Event_ID", "\u{212A}", "k", "ÄÖ",
            "äö",
        ]
        .iter()
        .map(|w| names.claim(w))
        .collect();
        assert_eq!(
            got,
            [
                "Email",
                "email_2",
                "EMAIL_3",
                "email_2_2",
                "event_id_2",
                "Event_ID_3",
                "\u{212A}",
                "k_2",
                "ÄÖ",
                "äö_2"
            ]
        );
        let folded: HashSet<String> = got.iter().map(|n| n.to_lowercase()).collect();
        assert_eq!(folded.len(), got.len());
    }
}
