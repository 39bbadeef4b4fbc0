//! From what the sample says to the typed columns of the views: one column per attribute and
//! type, its SQL type, its name. Pure; the SQL text is `render`'s job.
//!
//! The type mapping (docs/ARCHIVE.md, "Typed views", states it for analysts):
//!
//! | tag | column |
//! |---|---|
//! | S | string |
//! | N | `DECIMAL(38, s)`, `s` the most digits after the point seen; string when a value has an exponent or the digits do not fit 38 |
//! | B | varbinary / BLOB |
//! | BOOL | boolean |
//! | NULL | boolean, true where the attribute holds NULL (column `<name>_null`) |
//! | M | JSON text of the map (DynamoDB JSON) |
//! | SS, NS, BS | array of string, decimal (or string) and binary |
//! | L | array of the elements' values when every sampled element had one scalar tag, else array of each element's DynamoDB JSON |

use super::infer::{AttributeStats, Elements, Numbers, Sample, Tag};
use super::naming::{column_base, Names};
use std::collections::BTreeMap;

/// DECIMAL's largest precision in both Athena (Trino) and DuckDB.
pub const MAX_PRECISION: u32 = 38;

/// Most attributes given typed columns (the most frequent first). Every attribute costs two
/// columns and about 400 bytes of view text, and Athena refuses query text over 256 KB
/// (<https://docs.aws.amazon.com/athena/latest/ug/service-limits.html>); the rest stay readable
/// in the JSON columns.
pub const MAX_ATTRIBUTES: usize = 300;

/// Columns of the views that are not attributes, and the helper names the SQL uses inside:
/// no attribute column may take these names.
pub const RESERVED: &[&str] = &[
    "dt",
    CHANGE_ORDER,
    "item",
    "source_event_id",
    "source_event_time",
    HELPER_KEYS,
    HELPER_NEW,
    HELPER_OLD,
    HELPER_RULE,
    HELPER_RANK,
    HELPER_AS_OF,
];
/// The column of `<t>_changes_typed` that sorts one key's changes in the archive's order.
pub const CHANGE_ORDER: &str = "change_order";
pub const HELPER_KEYS: &str = "__k";
pub const HELPER_NEW: &str = "__n";
pub const HELPER_OLD: &str = "__o";
pub const HELPER_RULE: &str = "__rule";
pub const HELPER_RANK: &str = "__rn";
pub const HELPER_AS_OF: &str = "__as_of";

/// A value's SQL type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    Text,
    Decimal {
        scale: u32,
    },
    Binary,
    Boolean,
    /// JSON text (DynamoDB JSON).
    Json,
}

/// How a column is made from the attribute's value `{"<tag>": ...}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One value: `value` of S, N, B, BOOL, NULL, M.
    Value(Scalar),
    /// SS, NS, BS: an array of plain values.
    Set(Scalar),
    /// L whose sampled elements all had this scalar tag: an array of the elements' values.
    List(Tag, Scalar),
    /// L otherwise: an array of each element's DynamoDB JSON.
    JsonList,
}

/// One typed column (and, for an attribute of the images, its old-image twin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub attribute: String,
    pub tag: Tag,
    pub kind: Kind,
    /// From the new image (or from `keys`, for a key attribute).
    pub name: String,
    /// From the old image; `None` for key attributes (the key is the same before and after).
    pub old_name: Option<String>,
    /// Why the column is less precise than it could be, for a comment in the DDL.
    pub note: Option<String>,
}

/// The typed columns of one table's views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Key attributes, typed from `keys` (present in every row, REMOVE included).
    pub keys: Vec<Column>,
    /// Other attributes, typed from `new_image` and `old_image`.
    pub columns: Vec<Column>,
    /// Attributes seen but left without a column ([`MAX_ATTRIBUTES`]).
    pub left_out: Vec<String>,
}

impl Plan {
    /// The plan for a sample; `raw_columns` are the view's other columns (the archive's own).
    pub fn new(sample: &Sample, raw_columns: &[&str]) -> Self {
        let mut names = Names::default();
        for r in raw_columns.iter().chain(RESERVED) {
            names.reserve(r);
        }
        let keys = columns_of(&sample.keys, &mut names, false);
        let mut ranked: Vec<(&String, &AttributeStats)> = sample
            .attributes
            .iter()
            .filter(|(name, _)| !sample.keys.contains_key(*name))
            .collect();
        ranked.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));
        let mut left_out: Vec<String> = ranked
            .iter()
            .skip(MAX_ATTRIBUTES)
            .map(|(n, _)| (*n).clone())
            .collect();
        left_out.sort();
        let kept: BTreeMap<String, AttributeStats> = ranked
            .into_iter()
            .take(MAX_ATTRIBUTES)
            .map(|(n, a)| (n.clone(), a.clone()))
            .collect();
        let mut columns = columns_of(&kept, &mut names, true);
        // Old-image names are claimed after every new-image name, so an attribute keeps its own
        // name even when another is called `old_<it>`.
        for c in &mut columns {
            c.old_name = Some(names.claim(&format!("old_{}", wanted_name(c))));
        }
        Self {
            keys,
            columns,
            left_out,
        }
    }
}

/// The name a column asks for before collisions are resolved (kept in the column so the old
/// twin can ask for `old_<it>`).
fn wanted_name(c: &Column) -> String {
    c.old_name.clone().unwrap_or_else(|| c.name.clone())
}

fn columns_of(
    attrs: &BTreeMap<String, AttributeStats>,
    names: &mut Names,
    with_old: bool,
) -> Vec<Column> {
    let mut out = Vec::new();
    for (attribute, stats) in attrs {
        let base = column_base(attribute);
        let typed = stats.tags.keys().filter(|t| **t != Tag::Null).count();
        for (tag, t) in &stats.tags {
            let wanted = match tag {
                Tag::Null => format!("{base}_null"),
                _ if typed > 1 => format!("{base}_{}", tag.as_str().to_lowercase()),
                _ => base.clone(),
            };
            let (kind, note) = kind_of(*tag, &t.numbers, &t.elements);
            out.push(Column {
                attribute: attribute.clone(),
                tag: *tag,
                kind,
                name: names.claim(&wanted),
                // Until old names are claimed, this holds the wanted name (see `wanted_name`).
                old_name: with_old.then_some(wanted),
                note,
            });
        }
    }
    out
}

/// A number column's type: `DECIMAL(38, s)` when every sampled value fits it exactly.
pub fn number_scalar(n: &Numbers) -> (Scalar, Option<String>) {
    if let Some(v) = &n.not_plain {
        return (
            Scalar::Text,
            Some(format!(
                "numbers kept as text: a sampled value ({v}) is in exponent form"
            )),
        );
    }
    if n.int_digits + n.frac_digits > MAX_PRECISION {
        return (
            Scalar::Text,
            Some(format!(
                "numbers kept as text: sampled values have up to {} digits before the point and {} after, more than DECIMAL(38, s) holds",
                n.int_digits, n.frac_digits
            )),
        );
    }
    (
        Scalar::Decimal {
            scale: n.frac_digits,
        },
        None,
    )
}

fn kind_of(tag: Tag, numbers: &Numbers, elements: &Elements) -> (Kind, Option<String>) {
    let plain = |s| (Kind::Value(s), None);
    match tag {
        Tag::S => plain(Scalar::Text),
        Tag::N => {
            let (s, note) = number_scalar(numbers);
            (Kind::Value(s), note)
        }
        Tag::B => plain(Scalar::Binary),
        Tag::Bool | Tag::Null => plain(Scalar::Boolean),
        Tag::M => plain(Scalar::Json),
        Tag::Ss => (Kind::Set(Scalar::Text), None),
        Tag::Bs => (Kind::Set(Scalar::Binary), None),
        Tag::Ns => {
            let (s, note) = number_scalar(numbers);
            (Kind::Set(s), note)
        }
        Tag::L => match elements {
            Elements::Uniform(t @ Tag::N) => {
                let (s, note) = number_scalar(numbers);
                (Kind::List(*t, s), note)
            }
            Elements::Uniform(t) => {
                let s = match t {
                    Tag::B => Scalar::Binary,
                    Tag::Bool => Scalar::Boolean,
                    _ => Scalar::Text,
                };
                (Kind::List(*t, s), None)
            }
            Elements::None | Elements::Mixed => (Kind::JsonList, None),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(images: &[&str], keys: &[&str]) -> Plan {
        let mut s = Sample::default();
        for i in images {
            s.add_image(i);
        }
        for k in keys {
            s.add_keys(k);
        }
        Plan::new(&s, &["event_id", "keys", "new_image"])
    }

    /// (attribute, tag, kind, name, old name) of every column.
    fn summary(p: &Plan) -> Vec<(String, Tag, Kind, String, Option<String>)> {
        p.keys
            .iter()
            .chain(&p.columns)
            .map(|c| {
                (
                    c.attribute.clone(),
                    c.tag,
                    c.kind,
                    c.name.clone(),
                    c.old_name.clone(),
                )
            })
            .collect()
    }

    fn col(
        a: &str,
        tag: Tag,
        kind: Kind,
        name: &str,
        old: Option<&str>,
    ) -> (String, Tag, Kind, String, Option<String>) {
        (a.into(), tag, kind, name.into(), old.map(Into::into))
    }

    #[test]
    fn one_column_per_attribute_and_type() {
        let p = plan(
            &[
                r#"{"id":{"N":"1"},"price":{"N":"10.25"},"name":{"S":"a"},"nick":{"NULL":true}}"#,
                r#"{"id":{"N":"2"},"price":{"S":"free"},"nick":{"S":"b"},"ok":{"BOOL":true}}"#,
            ],
            &[r#"{"id":{"N":"1"}}"#, r#"{"id":{"N":"22"}}"#],
        );
        use Scalar::*;
        assert_eq!(
            summary(&p),
            vec![
                col("id", Tag::N, Kind::Value(Decimal { scale: 0 }), "id", None),
                col("name", Tag::S, Kind::Value(Text), "name", Some("old_name")),
                // NULL does not count as a second type: `nick` keeps its name.
                col("nick", Tag::S, Kind::Value(Text), "nick", Some("old_nick")),
                col(
                    "nick",
                    Tag::Null,
                    Kind::Value(Boolean),
                    "nick_null",
                    Some("old_nick_null")
                ),
                col("ok", Tag::Bool, Kind::Value(Boolean), "ok", Some("old_ok")),
                col(
                    "price",
                    Tag::S,
                    Kind::Value(Text),
                    "price_s",
                    Some("old_price_s")
                ),
                col(
                    "price",
                    Tag::N,
                    Kind::Value(Decimal { scale: 2 }),
                    "price_n",
                    Some("old_price_n")
                ),
            ]
        );
    }

    #[test]
    fn types_of_sets_lists_and_maps() {
        let p = plan(
            &[
                r#"{"ss":{"SS":["a"]},"ns":{"NS":["1.5","20"]},"bs":{"BS":["AA=="]},"m":{"M":{}},"b":{"B":"AA=="}}"#,
                r#"{"ls":{"L":[{"S":"a"}]},"ln":{"L":[{"N":"-1.125"}]},"lm":{"L":[{"S":"a"},{"N":"1"}]},"le":{"L":[]}}"#,
            ],
            &[],
        );
        use Scalar::*;
        let kinds: Vec<(String, Kind)> =
            p.columns.iter().map(|c| (c.name.clone(), c.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                ("b".into(), Kind::Value(Binary)),
                ("bs".into(), Kind::Set(Binary)),
                ("le".into(), Kind::JsonList),
                ("lm".into(), Kind::JsonList),
                ("ln".into(), Kind::List(Tag::N, Decimal { scale: 3 })),
                ("ls".into(), Kind::List(Tag::S, Text)),
                ("m".into(), Kind::Value(Json)),
                ("ns".into(), Kind::Set(Decimal { scale: 1 })),
                ("ss".into(), Kind::Set(Text)),
            ]
        );
    }

    #[test]
    fn numbers_that_do_not_fit_stay_text_and_say_why() {
        use Scalar::*;
        let n = |int, frac, not_plain: Option<&str>| Numbers {
            int_digits: int,
            frac_digits: frac,
            not_plain: not_plain.map(Into::into),
        };
        let cases = [
            (n(38, 0, None), Decimal { scale: 0 }, None),
            (n(0, 38, None), Decimal { scale: 38 }, None),
            (n(0, 37, None), Decimal { scale: 37 }, None),
            (n(20, 18, None), Decimal { scale: 18 }, None),
            (
                n(38, 1, None),
                Text,
                Some("up to 38 digits before the point and 1 after"),
            ),
            (
                n(1, 0, Some("1E-130")),
                Text,
                Some("(1E-130) is in exponent form"),
            ),
        ];
        for (numbers, want, note) in cases {
            let (got, why) = number_scalar(&numbers);
            assert_eq!(got, want, "{numbers:?}");
            match note {
                None => assert_eq!(why, None),
                Some(part) => assert!(why.as_deref().unwrap_or("").contains(part), "{why:?}"),
            }
        }
    }

    #[test]
    fn hostile_names_get_distinct_columns() {
        let p = plan(
            &[
                r#"{"Email":{"S":"a"},"email":{"S":"b"},"EMAIL":{"S":"c"},"old_email":{"S":"d"},"event_id":{"S":"e"},"keys":{"S":"f"},"a \"q\" b":{"S":"g"},"line\nbreak":{"S":"h"},"ключ":{"S":"i"},"__rn":{"S":"j"}}"#,
            ],
            &[],
        );
        let names: Vec<String> = p
            .columns
            .iter()
            .flat_map(|c| [c.name.clone(), c.old_name.clone().unwrap()])
            .collect();
        let folded: std::collections::HashSet<String> =
            names.iter().map(|n| n.to_lowercase()).collect();
        assert_eq!(folded.len(), names.len(), "{names:?}");
        for reserved in ["event_id", "keys", "__rn", "new_image"] {
            assert!(
                !folded.contains(reserved),
                "{reserved} is not taken: {names:?}"
            );
        }
        let by_attr: BTreeMap<&str, &str> = p
            .columns
            .iter()
            .map(|c| (c.attribute.as_str(), c.name.as_str()))
            .collect();
        assert_eq!(by_attr["EMAIL"], "EMAIL", "byte order: upper case first");
        assert_eq!(by_attr["Email"], "Email_2");
        assert_eq!(by_attr["email"], "email_3");
        assert_eq!(
            by_attr["old_email"], "old_email",
            "an attribute keeps its own name"
        );
        assert_eq!(by_attr["event_id"], "event_id_2");
        assert_eq!(by_attr["line\nbreak"], "line_break");
        assert_eq!(by_attr["a \"q\" b"], "a \"q\" b");
        assert_eq!(by_attr["ключ"], "ключ");
    }

    #[test]
    fn the_most_frequent_attributes_are_kept() {
        let mut s = Sample::default();
        for i in 0..(MAX_ATTRIBUTES + 5) {
            // attribute a<i> appears i + 1 times
            for _ in 0..=i {
                s.add_image(&format!(r#"{{"a{i:04}":{{"S":"x"}}}}"#));
            }
        }
        let p = Plan::new(&s, &[]);
        assert_eq!(p.columns.len(), MAX_ATTRIBUTES);
        assert_eq!(p.left_out, ["a0000", "a0001", "a0002", "a0003", "a0004"]);
    }
}
