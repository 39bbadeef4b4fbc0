//! Type inference: what the sampled images say about each top-level attribute, accumulated image
//! by image. Pure and mergeable, so files can be read in parallel and their findings added up.
//!
//! Only the shape of values is kept (which type tags, how many digits numbers have, what lists
//! hold), never the values themselves: memory is bounded by the number of attribute names.

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A DynamoDB type tag. The order is the order of an attribute's columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tag {
    S,
    N,
    B,
    Bool,
    Ss,
    Ns,
    Bs,
    L,
    M,
    Null,
}

impl Tag {
    pub fn parse(tag: &str) -> Option<Self> {
        Some(match tag {
            "S" => Self::S,
            "N" => Self::N,
            "B" => Self::B,
            "BOOL" => Self::Bool,
            "SS" => Self::Ss,
            "NS" => Self::Ns,
            "BS" => Self::Bs,
            "L" => Self::L,
            "M" => Self::M,
            "NULL" => Self::Null,
            _ => return None,
        })
    }

    /// The tag as it appears in DynamoDB JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::S => "S",
            Self::N => "N",
            Self::B => "B",
            Self::Bool => "BOOL",
            Self::Ss => "SS",
            Self::Ns => "NS",
            Self::Bs => "BS",
            Self::L => "L",
            Self::M => "M",
            Self::Null => "NULL",
        }
    }
}

/// The widest numbers seen: what a `DECIMAL(38, s)` column must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Numbers {
    /// Most digits before the point, leading zeros not counted (`0.5` has none).
    pub int_digits: u32,
    /// Most digits after the point, trailing zeros not counted (`1.50` has one).
    pub frac_digits: u32,
    /// The first value seen that is not a plain decimal (an exponent, as in `1E-130`): such a
    /// number has no exact `DECIMAL(38, s)` for every `s` at once, so the column stays text.
    pub not_plain: Option<String>,
}

/// The shape of one number: `(digits before the point, digits after it)` without leading and
/// trailing zeros, or `None` when it is not a plain decimal (`[-+]digits[.digits]`).
pub fn number_shape(text: &str) -> Option<(u32, u32)> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !digits(frac) || int.len() + frac.len() == 0 {
        return None;
    }
    let int = int.trim_start_matches('0').len() as u32;
    let frac = frac.trim_end_matches('0').len() as u32;
    Some((int, frac))
}

impl Numbers {
    pub fn add(&mut self, text: &str) {
        match number_shape(text) {
            Some((int, frac)) => {
                self.int_digits = self.int_digits.max(int);
                self.frac_digits = self.frac_digits.max(frac);
            }
            None => {
                self.not_plain.get_or_insert_with(|| text.to_owned());
            }
        }
    }

    pub fn merge(&mut self, other: &Numbers) {
        self.int_digits = self.int_digits.max(other.int_digits);
        self.frac_digits = self.frac_digits.max(other.frac_digits);
        if self.not_plain.is_none() {
            self.not_plain = other.not_plain.clone();
        }
    }
}

/// What the elements of an attribute's lists were, over every sampled list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Elements {
    /// No element seen (no list, or only empty lists).
    #[default]
    None,
    /// Every element had this tag (only scalar tags: S, N, B, BOOL).
    Uniform(Tag),
    /// Elements of several tags, or of a tag with no scalar column type (maps, lists, sets).
    Mixed,
}

impl Elements {
    fn add(&mut self, tag: Option<Tag>) {
        let scalar = tag.filter(|t| matches!(t, Tag::S | Tag::N | Tag::B | Tag::Bool));
        *self = match (&*self, scalar) {
            (_, None) | (Self::Mixed, _) => Self::Mixed,
            (Self::None, Some(t)) => Self::Uniform(t),
            (Self::Uniform(u), Some(t)) if *u == t => Self::Uniform(t),
            (Self::Uniform(_), Some(_)) => Self::Mixed,
        };
    }

    fn merge(&mut self, other: &Elements) {
        match other {
            Self::None => {}
            Self::Uniform(t) => self.add(Some(*t)),
            Self::Mixed => *self = Self::Mixed,
        }
    }
}

/// One tag of one attribute.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagStats {
    /// Images in which the attribute had this tag.
    pub count: u64,
    /// For N and NS, and for lists of N: the widest numbers.
    pub numbers: Numbers,
    /// For L: what the elements were.
    pub elements: Elements,
}

/// One attribute, over every sampled image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttributeStats {
    /// Images holding the attribute.
    pub count: u64,
    pub tags: BTreeMap<Tag, TagStats>,
}

/// Everything the sample says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sample {
    /// Rows read.
    pub rows: u64,
    /// Images read (`new_image` and `old_image`, where not null).
    pub images: u64,
    /// Images or key columns that were not DynamoDB JSON objects (skipped).
    pub unreadable: u64,
    /// Attributes of the images (keys included, as they are in every image).
    pub attributes: BTreeMap<String, AttributeStats>,
    /// Attributes of the `keys` column, with their own tags.
    pub keys: BTreeMap<String, AttributeStats>,
}

impl Sample {
    /// Adds one image (`new_image` or `old_image`).
    pub fn add_image(&mut self, json: &str) {
        self.images += 1;
        if add_item(&mut self.attributes, json).is_none() {
            self.unreadable += 1;
        }
    }

    /// Adds one row's `keys`.
    pub fn add_keys(&mut self, json: &str) {
        if add_item(&mut self.keys, json).is_none() {
            self.unreadable += 1;
        }
    }

    pub fn merge(&mut self, other: Sample) {
        self.rows += other.rows;
        self.images += other.images;
        self.unreadable += other.unreadable;
        merge_attributes(&mut self.attributes, other.attributes);
        merge_attributes(&mut self.keys, other.keys);
    }

    /// The names of key attributes.
    pub fn key_names(&self) -> BTreeSet<&str> {
        self.keys.keys().map(String::as_str).collect()
    }
}

fn merge_attributes(
    into: &mut BTreeMap<String, AttributeStats>,
    from: BTreeMap<String, AttributeStats>,
) {
    for (name, a) in from {
        let mine = into.entry(name).or_default();
        mine.count += a.count;
        for (tag, t) in a.tags {
            let m = mine.tags.entry(tag).or_default();
            m.count += t.count;
            m.numbers.merge(&t.numbers);
            m.elements.merge(&t.elements);
        }
    }
}

/// Adds one DynamoDB JSON item to `attrs`; `None` (and nothing added) when it is not one.
///
/// One pass of the parser over the item, keeping only shapes: a 400 KB nested map is skipped
/// over, never built.
fn add_item(attrs: &mut BTreeMap<String, AttributeStats>, json: &str) -> Option<()> {
    let item: HashMap<String, Shape> = serde_json::from_str(json).ok()?;
    for (name, shape) in item {
        let a = attrs.entry(name).or_default();
        a.count += 1;
        let t = a.tags.entry(shape.tag).or_default();
        t.count += 1;
        t.numbers.merge(&shape.numbers);
        t.elements.merge(&shape.elements);
    }
    Some(())
}

/// What one attribute value `{"<tag>": value}` tells the inference.
struct Shape {
    tag: Tag,
    numbers: Numbers,
    elements: Elements,
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ShapeVisitor)
    }
}

/// The type tag of an attribute value, read as the map's only key.
fn only_tag<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Tag, A::Error> {
    let tag: &str = map
        .next_key()?
        .ok_or_else(|| de::Error::custom("an attribute value without a type"))?;
    Tag::parse(tag).ok_or_else(|| de::Error::custom(format!("unknown type `{tag}`")))
}

fn no_second_tag<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    match map.next_key::<IgnoredAny>()? {
        Some(_) => Err(de::Error::custom("an attribute value with two types")),
        None => Ok(()),
    }
}

struct ShapeVisitor;

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Shape;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a DynamoDB attribute value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        let tag = only_tag(&mut map)?;
        let mut shape = Shape {
            tag,
            numbers: Numbers::default(),
            elements: Elements::default(),
        };
        match tag {
            // Numbers are digits, signs, points and exponents: never escaped, so borrowed.
            Tag::N => shape.numbers.add(map.next_value::<&str>()?),
            Tag::Ns => {
                for n in map.next_value::<Vec<&str>>()? {
                    shape.numbers.add(n);
                }
            }
            Tag::L => {
                for e in map.next_value::<Vec<Element>>()? {
                    shape.elements.add(Some(e.tag));
                    if let Some(n) = e.number {
                        shape.numbers.add(n);
                    }
                }
            }
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        no_second_tag(&mut map)?;
        Ok(shape)
    }
}

/// A list element: its tag, and its text if it is a number.
struct Element<'de> {
    tag: Tag,
    number: Option<&'de str>,
}

impl<'de> Deserialize<'de> for Element<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ElementVisitor)
    }
}

struct ElementVisitor;

impl<'de> Visitor<'de> for ElementVisitor {
    type Value = Element<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a DynamoDB attribute value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Element<'de>, A::Error> {
        let tag = only_tag(&mut map)?;
        let number = match tag {
            Tag::N => Some(map.next_value::<&str>()?),
            _ => {
                map.next_value::<IgnoredAny>()?;
                None
            }
        };
        no_second_tag(&mut map)?;
        Ok(Element { tag, number })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_shapes() {
        let cases: &[(&str, Option<(u32, u32)>)] = &[
            ("0", Some((0, 0))),
            ("42", Some((2, 0))),
            ("-42", Some((2, 0))),
            ("+7", Some((1, 0))),
            ("1.50", Some((1, 1))),
            ("0.5", Some((0, 1))),
            ("007.250", Some((1, 2))),
            (".5", Some((0, 1))),
            ("5.", Some((1, 0))),
            ("12345678901234567890123456789012345678", Some((38, 0))),
            ("0.1000000000000000000000000000000000001", Some((0, 37))),
            ("1E-130", None),
            ("9.99E+125", None),
            ("1e5", None),
            ("", None),
            ("-", None),
            (".", None),
            ("1.2.3", None),
            ("NaN", None),
            ("١٢", None), // Arabic-Indic digits are not ASCII digits
        ];
        for (text, want) in cases {
            assert_eq!(number_shape(text), *want, "{text:?}");
        }
    }

    fn sample(images: &[&str]) -> Sample {
        let mut s = Sample::default();
        for i in images {
            s.add_image(i);
        }
        s
    }

    fn tags(s: &Sample, name: &str) -> Vec<Tag> {
        s.attributes[name].tags.keys().copied().collect()
    }

    #[test]
    fn tags_and_shapes_are_collected_per_attribute() {
        let s = sample(&[
            r#"{"id":{"N":"1"},"price":{"N":"10.5"},"name":{"S":"a"},"tags":{"SS":["x"]}}"#,
            r#"{"id":{"N":"2"},"price":{"S":"n/a"},"ns":{"NS":["1","-2.25"]},"f":{"BOOL":true}}"#,
            r#"{"id":{"N":"300"},"price":{"N":"-7"},"gone":{"NULL":true},"m":{"M":{"x":{"N":"1E9"}}}}"#,
        ]);
        assert_eq!(s.images, 3);
        assert_eq!(s.unreadable, 0);
        assert_eq!(tags(&s, "price"), [Tag::S, Tag::N]);
        assert_eq!(s.attributes["price"].count, 3);
        let n = &s.attributes["price"].tags[&Tag::N];
        assert_eq!(
            (n.count, n.numbers.int_digits, n.numbers.frac_digits),
            (2, 2, 1)
        );
        assert_eq!(s.attributes["id"].tags[&Tag::N].numbers.int_digits, 3);
        assert_eq!(s.attributes["ns"].tags[&Tag::Ns].numbers.frac_digits, 2);
        assert_eq!(tags(&s, "gone"), [Tag::Null]);
        assert_eq!(tags(&s, "f"), [Tag::Bool]);
        // A number inside a map is the map's business: it does not make the map's column text.
        assert_eq!(s.attributes["m"].tags[&Tag::M].numbers, Numbers::default());
    }

    #[test]
    fn exponents_make_numbers_not_plain() {
        let s = sample(&[
            r#"{"a":{"N":"1"}}"#,
            r#"{"a":{"N":"1E-130"}}"#,
            r#"{"a":{"N":"2E+3"}}"#,
        ]);
        let n = &s.attributes["a"].tags[&Tag::N].numbers;
        assert_eq!(
            n.not_plain.as_deref(),
            Some("1E-130"),
            "the first one is kept"
        );
    }

    #[test]
    fn list_elements() {
        let cases: &[(&[&str], Elements)] = &[
            (&[r#"{"l":{"L":[]}}"#], Elements::None),
            (
                &[
                    r#"{"l":{"L":[{"S":"a"}]}}"#,
                    r#"{"l":{"L":[{"S":"b"},{"S":"c"}]}}"#,
                ],
                Elements::Uniform(Tag::S),
            ),
            (
                &[r#"{"l":{"L":[{"S":"a"}]}}"#, r#"{"l":{"L":[{"N":"1"}]}}"#],
                Elements::Mixed,
            ),
            (&[r#"{"l":{"L":[{"M":{}}]}}"#], Elements::Mixed),
            (&[r#"{"l":{"L":[{"SS":["a"]}]}}"#], Elements::Mixed),
            (
                &[
                    r#"{"l":{"L":[{"BOOL":true},{"BOOL":false}]}}"#,
                    r#"{"l":{"L":[]}}"#,
                ],
                Elements::Uniform(Tag::Bool),
            ),
        ];
        for (images, want) in cases {
            let s = sample(images);
            assert_eq!(
                &s.attributes["l"].tags[&Tag::L].elements,
                want,
                "{images:?}"
            );
        }
        let s = sample(&[r#"{"l":{"L":[{"N":"1.25"},{"N":"-100"}]}}"#]);
        let t = &s.attributes["l"].tags[&Tag::L];
        assert_eq!((t.numbers.int_digits, t.numbers.frac_digits), (3, 2));
    }

    #[test]
    fn what_is_not_an_item_is_counted_and_skipped() {
        for bad in [
            "",
            "null",
            "[]",
            r#"{"a":"plain"}"#,
            r#"{"a":{"X":"1"}}"#,
            r#"{"a":{"S":"1","N":"1"}}"#,
            r#"{"a":{"N":1}}"#,
            r#"{"a":{"L":[{"Q":1}]}}"#,
        ] {
            let s = sample(&[bad]);
            assert_eq!(s.unreadable, 1, "{bad}");
            assert!(s.attributes.is_empty(), "nothing of {bad} is kept");
        }
    }

    #[test]
    fn merging_equals_adding_in_one_pass() {
        let images = [
            r#"{"a":{"N":"1.5"},"l":{"L":[{"S":"x"}]}}"#,
            r#"{"a":{"N":"1E3"},"l":{"L":[{"N":"1"}]},"b":{"B":"AA=="}}"#,
            r#"{"a":{"S":"x"},"weird name \"q\"":{"BOOL":false}}"#,
        ];
        let whole = sample(&images);
        let mut parts = sample(&images[..1]);
        parts.merge(sample(&images[1..]));
        assert_eq!(parts, whole);
    }

    #[test]
    fn keys_are_kept_apart() {
        let mut s = Sample::default();
        s.add_keys(r#"{"pk":{"S":"a"},"sk":{"N":"12"}}"#);
        s.add_image(r#"{"pk":{"S":"a"},"sk":{"N":"12"},"v":{"S":"x"}}"#);
        assert_eq!(s.key_names(), BTreeSet::from(["pk", "sk"]));
        assert_eq!(s.attributes.len(), 3);
    }
}
