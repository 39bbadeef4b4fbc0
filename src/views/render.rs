//! The SQL text of the typed views, for Athena (Trino's dialect) and DuckDB. Pure: a [`Plan`] and
//! names in, SQL out. Both dialects build the same three things the same way, so the few places
//! where they differ are the functions of [`Dialect`] below.
//!
//! Row rules (docs/ARCHIVE.md, "Typed views"; `src/views/design.md` says why):
//!
//! - Rows that are items: INSERT, MODIFY, REMOVE, SNAPSHOT, and a stream row of any other name
//!   that has an old image and no new one (DynamoDB Local names TTL deletions so; the
//!   `snapshot` command counts such a row as a deletion too). Anything else (a quarantined
//!   record, with no images) is not an item change and is left out.
//! - A row deletes its item when it is a REMOVE, or a change without a new image.
//! - A key's changes are ordered by lineage (the shard's creation time, the middle of its id),
//!   then by sequence number as a number; rows without a shard (incremental-export changes)
//!   come before every stream row, among themselves by `event_time`.

use super::infer::Tag;
use super::naming::{comment_name, quote_ident, quote_literal};
use super::plan::{
    Column, Kind, Plan, Scalar, CHANGE_ORDER, HELPER_AS_OF, HELPER_KEYS, HELPER_NEW, HELPER_OLD,
    HELPER_RANK, HELPER_RULE, MAX_PRECISION,
};

/// Which engine's SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Athena: Glue DDL in Hive's dialect, views and queries in Trino's.
    Athena,
    Duckdb,
}

/// What the SQL of one table needs besides the plan.
#[derive(Debug, Clone)]
pub struct Views<'a> {
    /// The SQL name of the table, as `ddl::sql_base` gives it (`my_table_v2`).
    pub base: String,
    /// The view or table over the raw archive rows (`<base>_changes`).
    pub raw: String,
    /// The archive's own columns (schema v1 and `dt`), in order.
    pub raw_columns: Vec<String>,
    pub plan: &'a Plan,
    /// Comment lines describing the sample, printed before the views.
    pub about: Vec<String>,
    /// The instant the Athena template is written with (`YYYY-MM-DD HH:MM:SS.mmm`, UTC).
    pub as_of_example: String,
}

impl Views<'_> {
    pub fn changes_typed(&self) -> String {
        format!("{}_changes_typed", self.base)
    }
    pub fn latest(&self) -> String {
        format!("{}_latest", self.base)
    }
    pub fn as_of(&self) -> String {
        format!("{}_as_of", self.base)
    }
}

/// Every item-change row (the row rules above), as a WHERE condition.
const ITEM_ROWS: &str = "event_name IN ('INSERT', 'MODIFY', 'REMOVE', 'SNAPSHOT')\n     OR (shard_id IS NOT NULL AND new_image IS NULL AND old_image IS NOT NULL)";

/// Whether a row deletes its item.
const REMOVES: &str = "(event_name = 'REMOVE' OR (event_name <> 'SNAPSHOT' AND new_image IS NULL))";

/// A shard id's creation time that cannot be read (not `shardId-<digits>-...`) counts as zero,
/// as `snapshot`'s order does.
const ZEROS_40: &str = "'0000000000000000000000000000000000000000'";

/// The SQL of the typed views, the `<base>_latest` view and the as-of form, in one dialect.
pub fn render(d: Dialect, v: &Views) -> String {
    let mut out = String::new();
    for line in &v.about {
        out.push_str(&format!("-- {line}\n"));
    }
    out.push_str(&column_comments(d, v.plan));
    out.push('\n');
    out.push_str(&changes_typed(d, v));
    out.push('\n');
    out.push_str(&latest(v));
    out.push('\n');
    out.push_str(&as_of(d, v));
    out
}

/// One comment line per column: where it comes from, its type, and what it loses.
fn column_comments(d: Dialect, plan: &Plan) -> String {
    let mut out =
        String::from("-- Typed columns (attribute, DynamoDB type -> column, SQL type):\n");
    for c in plan.keys.iter().chain(&plan.columns) {
        let whence = if c.old_name.is_some() {
            ""
        } else {
            " (key, from `keys`)"
        };
        out.push_str(&format!(
            "--   {} {} -> {}{}, {}{}\n",
            comment_name(&c.attribute),
            c.tag.as_str(),
            comment_name(&c.name),
            match &c.old_name {
                Some(o) => format!(" and {}", comment_name(o)),
                None => String::new(),
            },
            type_name(d, c.kind),
            whence,
        ));
        if let Some(note) = &c.note {
            out.push_str(&format!("--     {note}\n"));
        }
    }
    if !plan.left_out.is_empty() {
        let shown: Vec<String> = plan
            .left_out
            .iter()
            .take(20)
            .map(|n| comment_name(n))
            .collect();
        out.push_str(&format!(
            "-- {} rarer attributes have no column (at most {} are typed): {}{}\n",
            plan.left_out.len(),
            super::plan::MAX_ATTRIBUTES,
            shown.join(", "),
            if plan.left_out.len() > shown.len() {
                ", ..."
            } else {
                ""
            },
        ));
    }
    out.push_str("-- An attribute or type not in the sample has no column; new_image, old_image and item keep every value.\n");
    out
}

fn scalar_type(d: Dialect, s: Scalar) -> String {
    match (d, s) {
        (Dialect::Athena, Scalar::Text) => "varchar".into(),
        (Dialect::Athena, Scalar::Binary) => "varbinary".into(),
        (Dialect::Athena, Scalar::Json) => "varchar (JSON)".into(),
        (Dialect::Duckdb, Scalar::Text) => "VARCHAR".into(),
        (Dialect::Duckdb, Scalar::Binary) => "BLOB".into(),
        (Dialect::Duckdb, Scalar::Json) => "JSON".into(),
        (Dialect::Athena, Scalar::Boolean) => "boolean".into(),
        (Dialect::Duckdb, Scalar::Boolean) => "BOOLEAN".into(),
        (Dialect::Athena, Scalar::Decimal { scale }) => {
            format!("decimal({MAX_PRECISION}, {scale})")
        }
        (Dialect::Duckdb, Scalar::Decimal { scale }) => {
            format!("DECIMAL({MAX_PRECISION}, {scale})")
        }
    }
}

fn type_name(d: Dialect, k: Kind) -> String {
    let array = |s: String| match d {
        Dialect::Athena => format!("array({s})"),
        Dialect::Duckdb => format!("{s}[]"),
    };
    match k {
        Kind::Value(s) => scalar_type(d, s),
        Kind::Set(s) | Kind::List(_, s) => array(scalar_type(d, s)),
        Kind::JsonList => array(scalar_type(d, Scalar::Json)),
    }
}

/// The regular expression of the numbers `DECIMAL(38, scale)` holds exactly: at most
/// `38 - scale` significant digits before the point and `scale` after it (leading and trailing
/// zeros are free). A value it does not match gives NULL rather than a rounded number.
pub fn fits_pattern(scale: u32) -> String {
    let int = MAX_PRECISION - scale;
    let frac = if scale == 0 {
        "([.]0*)?".to_owned()
    } else {
        format!("([.][0-9]{{0,{scale}}}0*)?")
    };
    format!("[-+]?0*[0-9]{{0,{int}}}{frac}")
}

impl Dialect {
    /// Whether `text` matches `pattern` as a whole.
    fn full_match(self, text: &str, pattern: &str) -> String {
        match self {
            Self::Athena => format!("regexp_like({text}, '^{pattern}$')"),
            Self::Duckdb => format!("regexp_full_match({text}, '{pattern}')"),
        }
    }

    /// The value at `path` of JSON `v`, as text.
    fn text_at(self, v: &str, path: &str) -> String {
        match self {
            Self::Athena => format!("json_extract_scalar({v}, '{path}')"),
            Self::Duckdb => format!("json_extract_string({v}, '{path}')"),
        }
    }

    fn lambda(self, body: &str) -> String {
        match self {
            Self::Athena => format!("x -> {body}"),
            Self::Duckdb => format!("lambda x: {body}"),
        }
    }

    fn transform(self, list: &str, body: &str) -> String {
        let f = match self {
            Self::Athena => "transform",
            Self::Duckdb => "list_transform",
        };
        format!("{f}({list}, {})", self.lambda(body))
    }

    fn array_of(self, v: &str, path: &str, element: &str) -> String {
        let t = match (self, element) {
            (Self::Athena, "text") => "ARRAY(VARCHAR)",
            (Self::Athena, _) => "ARRAY(JSON)",
            (Self::Duckdb, "text") => "VARCHAR[]",
            (Self::Duckdb, _) => "JSON[]",
        };
        format!("CAST(json_extract({v}, '{path}') AS {t})")
    }

    /// `text` as `DECIMAL(38, scale)` when it fits exactly, else NULL (never rounded).
    fn decimal(self, text: &str, scale: u32) -> String {
        let cast = format!("TRY_CAST({text} AS DECIMAL({MAX_PRECISION}, {scale}))");
        let fits = self.full_match(text, &fits_pattern(scale));
        match self {
            Self::Athena => format!("IF({fits}, {cast})"),
            Self::Duckdb => format!("CASE WHEN {fits} THEN {cast} END"),
        }
    }

    /// A scalar from JSON `v` holding `{"<tag>": ...}`.
    fn scalar(self, v: &str, tag: Tag, s: Scalar) -> String {
        let path = format!("$.{}", tag.as_str());
        match s {
            Scalar::Text => self.text_at(v, &path),
            Scalar::Decimal { scale } => self.decimal(&self.text_at(v, &path), scale),
            Scalar::Binary => format!("from_base64({})", self.text_at(v, &path)),
            Scalar::Boolean => format!("CAST(json_extract({v}, '{path}') AS BOOLEAN)"),
            Scalar::Json => match self {
                Self::Athena => format!("json_format(json_extract({v}, '{path}'))"),
                Self::Duckdb => format!("json_extract({v}, '{path}')"),
            },
        }
    }

    /// A plain set element `x` (a JSON string of SS, NS or BS) as `s`.
    fn set_element(self, s: Scalar) -> String {
        match s {
            Scalar::Decimal { scale } => self.decimal("x", scale),
            Scalar::Binary => "from_base64(x)".into(),
            _ => "x".into(),
        }
    }

    /// The typed column from the attribute value `v` (JSON `{"<tag>": ...}`, NULL if absent).
    fn typed(self, v: &str, tag: Tag, kind: Kind) -> String {
        let path = format!("$.{}", tag.as_str());
        match kind {
            Kind::Value(s) => self.scalar(v, tag, s),
            Kind::Set(Scalar::Text) => self.array_of(v, &path, "text"),
            Kind::Set(s) => self.transform(&self.array_of(v, &path, "text"), &self.set_element(s)),
            Kind::List(element, s) => self.transform(
                &self.array_of(v, &path, "json"),
                &self.scalar("x", element, s),
            ),
            Kind::JsonList => match self {
                Self::Athena => self.transform(&self.array_of(v, &path, "json"), "json_format(x)"),
                Self::Duckdb => self.array_of(v, &path, "json"),
            },
        }
    }

    /// The attributes' values of one image, parsed once per row: Athena a `map(varchar, json)`,
    /// DuckDB a list in the order of `attributes`.
    fn parsed(self, column: &str, attributes: &[&str]) -> String {
        match self {
            Self::Athena => format!("CAST(json_parse({column}) AS MAP(VARCHAR, JSON))"),
            Self::Duckdb => {
                // JSON pointers (RFC 6901): `~` and `/` escaped, nothing else, so any name works.
                let paths: Vec<String> = attributes
                    .iter()
                    .map(|a| {
                        quote_literal(&format!("/{}", a.replace('~', "~0").replace('/', "~1")))
                    })
                    .collect();
                format!("json_extract({column}, [{}])", paths.join(", "))
            }
        }
    }

    /// One attribute's value out of [`Self::parsed`].
    fn value_of(self, parsed: &str, attributes: &[&str], attribute: &str) -> String {
        match self {
            Self::Athena => format!("element_at({parsed}, {})", quote_literal(attribute)),
            Self::Duckdb => {
                let i = attributes.iter().position(|a| *a == attribute).unwrap_or(0) + 1;
                format!("{parsed}[{i}]")
            }
        }
    }
}

/// The distinct attributes of some columns, in column order.
fn attributes(columns: &[Column]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for c in columns {
        if !out.contains(&c.attribute.as_str()) {
            out.push(&c.attribute);
        }
    }
    out
}

/// `expr AS "name"` lines, indented, comma-separated.
fn select_list(items: &[(String, String)]) -> String {
    items
        .iter()
        .map(|(expr, name)| {
            let name = quote_ident(name);
            if *expr == name {
                format!("  {expr}")
            } else {
                format!("  {expr} AS {name}")
            }
        })
        .collect::<Vec<_>>()
        .join(",\n")
}

fn changes_typed(d: Dialect, v: &Views) -> String {
    let plan = v.plan;
    let key_attrs = attributes(&plan.keys);
    let attrs = attributes(&plan.columns);
    let mut items: Vec<(String, String)> = v
        .raw_columns
        .iter()
        .map(|c| (quote_ident(c), c.clone()))
        .collect();
    items.push((order_key(d), CHANGE_ORDER.to_owned()));
    for c in &plan.keys {
        let value = d.value_of(HELPER_KEYS, &key_attrs, &c.attribute);
        items.push((d.typed(&value, c.tag, c.kind), c.name.clone()));
    }
    for c in &plan.columns {
        let value = d.value_of(HELPER_NEW, &attrs, &c.attribute);
        items.push((d.typed(&value, c.tag, c.kind), c.name.clone()));
    }
    for c in &plan.columns {
        let value = d.value_of(HELPER_OLD, &attrs, &c.attribute);
        let old = c.old_name.clone().unwrap_or_default();
        items.push((d.typed(&value, c.tag, c.kind), old));
    }
    let mut parsed = Vec::new();
    if !key_attrs.is_empty() {
        parsed.push(format!(
            "    {} AS {HELPER_KEYS}",
            d.parsed("keys", &key_attrs)
        ));
    }
    if !attrs.is_empty() {
        parsed.push(format!(
            "    {} AS {HELPER_NEW}",
            d.parsed("new_image", &attrs)
        ));
        parsed.push(format!(
            "    {} AS {HELPER_OLD}",
            d.parsed("old_image", &attrs)
        ));
    }
    let star = if parsed.is_empty() {
        "*".to_owned()
    } else {
        format!("*,\n{}", parsed.join(",\n"))
    };
    format!(
        "-- {plain}: every item change and SNAPSHOT row: the archive's columns, {CHANGE_ORDER} (sorts a\n\
         -- key's changes in the archive's order), the key's typed columns (from `keys`), the new\n\
         -- image's and the old image's (prefixed old_).\n\
         CREATE OR REPLACE VIEW {name} AS\nSELECT\n{list}\nFROM (\n  SELECT {star}\n  FROM {raw}\n  WHERE {ITEM_ROWS}\n) AS r;\n",
        plain = v.changes_typed(),
        name = quote_ident(&v.changes_typed()),
        list = select_list(&items),
        raw = quote_ident(&v.raw),
    )
}

/// The archive's order of a key's changes, as one sortable text: the shard's creation time and
/// the sequence number, both as 40 zero-padded digits (numeric order as text order).
fn order_key(d: Dialect) -> String {
    let created = "split_part(shard_id, '-', 2)";
    format!(
        "CASE WHEN shard_id IS NULL THEN '' ELSE CASE WHEN {} THEN lpad({created}, 40, '0') ELSE {ZEROS_40} END || lpad(sequence_number, 40, '0') END",
        d.full_match(created, "[0-9]{1,38}")
    )
}

/// The output columns of `_latest` and `_as_of`: the key, the item, the row that says so and the
/// typed columns of the item (`old` picks the old image's where `pick_old` holds).
fn item_columns(v: &Views, pick_old: Option<&str>) -> Vec<(String, String)> {
    let choose = |new: &str, old: &str| match pick_old {
        Some(cond) => format!("CASE WHEN {cond} THEN {old} ELSE {new} END"),
        None => new.to_owned(),
    };
    let mut items = vec![
        ("keys".to_owned(), "keys".to_owned()),
        (choose("new_image", "old_image"), "item".to_owned()),
        ("event_id".to_owned(), "source_event_id".to_owned()),
        ("event_time".to_owned(), "source_event_time".to_owned()),
    ];
    for c in &v.plan.keys {
        items.push((quote_ident(&c.name), c.name.clone()));
    }
    for c in &v.plan.columns {
        let old = quote_ident(c.old_name.as_deref().unwrap_or_default());
        items.push((choose(&quote_ident(&c.name), &old), c.name.clone()));
    }
    items
}

fn latest(v: &Views) -> String {
    format!(
        "-- {plain}: one row per key, its newest state; keys whose last change deletes the item are\n\
         -- left out. The last change by the archive's order (lineage, then sequence number) decides;\n\
         -- a key without changes is its newest SNAPSHOT row.\n\
         CREATE OR REPLACE VIEW {name} AS\nSELECT\n{list}\nFROM (\n  SELECT *, row_number() OVER (\n    PARTITION BY keys\n    ORDER BY CASE WHEN event_name = 'SNAPSHOT' THEN 1 ELSE 0 END,\n             {CHANGE_ORDER} DESC,\n             event_time DESC, event_id DESC) AS {HELPER_RANK}\n  FROM {typed}\n) AS r\nWHERE {HELPER_RANK} = 1 AND NOT {REMOVES};\n",
        plain = v.latest(),
        name = quote_ident(&v.latest()),
        list = select_list(&item_columns(v, None)),
        typed = quote_ident(&v.changes_typed()),
    )
}

fn as_of(d: Dialect, v: &Views) -> String {
    let order = CHANGE_ORDER;
    let (intro, head, from, instant) = match d {
        Dialect::Duckdb => (
            format!(
                "-- {name}(ts): the table as it stood at instant ts, by the rule of `snapshot --as-of`:\n\
                 -- a key's latest change at or before ts decides; else the old image of its first change\n\
                 -- after ts; else its newest SNAPSHOT row. Give ts with its offset:\n\
                 -- SELECT * FROM {name}('2026-11-21T12:00:00Z');\n",
                name = v.as_of()
            ),
            format!(
                "CREATE OR REPLACE MACRO {}({HELPER_AS_OF}) AS TABLE\n",
                quote_ident(&v.as_of())
            ),
            format!("SELECT *,\n    {{rule}} AS {HELPER_RULE}\n  FROM {}", quote_ident(&v.changes_typed())),
            format!("CAST({HELPER_AS_OF} AS TIMESTAMPTZ)"),
        ),
        Dialect::Athena => (
            format!(
                "-- {name}: the table as it stood at an instant, by the rule of `snapshot --as-of`: a\n\
                 -- key's latest change at or before the instant decides; else the old image of its first\n\
                 -- change after it; else its newest SNAPSHOT row. A query template: put the instant (UTC)\n\
                 -- in its first line and run it (Athena views take no parameters).\n",
                name = v.as_of()
            ),
            format!(
                "WITH params AS (SELECT TIMESTAMP '{}' AS {HELPER_AS_OF})\n",
                v.as_of_example
            ),
            format!(
                "SELECT t.*,\n    {{rule}} AS {HELPER_RULE}\n  FROM {} AS t CROSS JOIN params AS p",
                quote_ident(&v.changes_typed())
            ),
            format!("p.{HELPER_AS_OF}"),
        ),
    };
    let rule = format!(
        "CASE WHEN event_name = 'SNAPSHOT' THEN 3 WHEN event_time <= {instant} THEN 1 ELSE 2 END"
    );
    let from = from.replace("{rule}", &rule);
    let pick_old = format!("{HELPER_RULE} = 2");
    format!(
        "{intro}{head}SELECT\n{list}\nFROM (\n  SELECT *, row_number() OVER (\n    PARTITION BY keys\n    ORDER BY {HELPER_RULE},\n             CASE WHEN {HELPER_RULE} = 1 THEN {order} END DESC NULLS LAST,\n             CASE WHEN {HELPER_RULE} = 1 THEN event_time END DESC NULLS LAST,\n             CASE WHEN {HELPER_RULE} = 2 THEN {order} END ASC NULLS LAST,\n             CASE WHEN {HELPER_RULE} = 2 THEN event_time END ASC NULLS LAST,\n             event_time DESC, event_id DESC) AS {HELPER_RANK}\n  FROM (\n  {from}\n  ) AS c\n) AS r\nWHERE {HELPER_RANK} = 1\n  AND CASE {HELPER_RULE} WHEN 1 THEN NOT {REMOVES} WHEN 2 THEN old_image IS NOT NULL ELSE new_image IS NOT NULL END;\n",
        list = select_list(&item_columns(v, Some(&pick_old))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fit_pattern_admits_exactly_what_the_decimal_holds() {
        // Checked against the Rust rule of inference: a value fits DECIMAL(38, s) iff its
        // significant digits before the point are at most 38 - s and after it at most s.
        let re = |s| {
            let r = regex_lite::Regex::new(&format!("^{}$", fits_pattern(s))).unwrap();
            move |t: &str| r.is_match(t)
        };
        let cases: &[(&str, u32, bool)] = &[
            ("12345678901234567890123456789012345678", 0, true),
            ("123456789012345678901234567890123456789", 0, false),
            ("-98765432109876543210987654321098765432", 0, true),
            ("1.5", 0, false),
            ("1.0", 0, true),
            ("1.25", 2, true),
            ("1.255", 2, false),
            ("1.2500", 2, true),
            ("0.1000000000000000000000000000000000001", 37, true),
            ("1.1000000000000000000000000000000000001", 37, true),
            ("10.1000000000000000000000000000000000001", 37, false),
            ("000123", 35, true),
            ("000123", 36, false),
            ("-0.5", 1, true),
            ("1E5", 0, false),
        ];
        for (text, scale, want) in cases {
            assert_eq!(re(*scale)(text), *want, "{text} in DECIMAL(38, {scale})");
            let rust = super::super::infer::number_shape(text)
                .is_some_and(|(i, f)| i + scale <= MAX_PRECISION && f <= *scale);
            assert_eq!(rust, *want, "the inference agrees on {text}");
        }
    }
}
