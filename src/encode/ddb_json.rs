//! Canonical DynamoDB JSON: the attribute-value form of the DynamoDB API, written so that the same
//! item always gives the same bytes.
//!
//! - numbers are the strings DynamoDB returned, digit for digit (never through a float);
//! - binary is standard base64 with padding;
//! - sets keep their elements in the order DynamoDB returned them (sets are unordered, but
//!   reordering would make the output differ from DynamoDB's own JSON);
//! - map keys are written in byte order, so equal maps give equal bytes;
//! - strings are escaped minimally: `"`, `\` and control characters; all other characters,
//!   including emoji and right-to-left text, are written as UTF-8.
//!
//! The encoder is generic over [`AttributeLike`], implemented for the AttributeValue types of both
//! the DynamoDB and the DynamoDB Streams SDKs, so stream records, Scan pages and GetItem results
//! go through the same code.

use base64::Engine;
use std::collections::HashMap;

/// A borrowed view of one attribute value, whatever SDK it comes from.
pub enum View<'a, T> {
    S(&'a str),
    N(&'a str),
    B(&'a [u8]),
    Ss(Vec<&'a str>),
    Ns(Vec<&'a str>),
    Bs(Vec<&'a [u8]>),
    /// A map's entries, in any order: the writer sorts them. Names are unique.
    M(Vec<(&'a str, &'a T)>),
    L(&'a [T]),
    Null,
    Bool(bool),
}

/// An SDK attribute value type. `None` is a variant the SDK did not recognise.
pub trait AttributeLike: Sized {
    fn view(&self) -> Option<View<'_, Self>>;
}

macro_rules! attribute_like {
    ($ty:ty) => {
        impl AttributeLike for $ty {
            fn view(&self) -> Option<View<'_, Self>> {
                use $ty as A;
                Some(match self {
                    A::S(s) => View::S(s),
                    A::N(n) => View::N(n),
                    A::B(b) => View::B(b.as_ref()),
                    A::Ss(v) => View::Ss(v.iter().map(String::as_str).collect()),
                    A::Ns(v) => View::Ns(v.iter().map(String::as_str).collect()),
                    A::Bs(v) => View::Bs(v.iter().map(|b| b.as_ref()).collect()),
                    A::M(m) => View::M(entries(m)),
                    A::L(l) => View::L(l),
                    A::Null(_) => View::Null,
                    A::Bool(b) => View::Bool(*b),
                    _ => return None,
                })
            }
        }
    };
}

attribute_like!(aws_sdk_dynamodbstreams::types::AttributeValue);
attribute_like!(aws_sdk_dynamodb::types::AttributeValue);

/// An attribute the encoder cannot represent losslessly.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("attribute `{path}` has a type this version of the archiver does not know; upgrade it")]
pub struct UnknownAttributeType {
    pub path: String,
}

fn entries<T>(map: &HashMap<String, T>) -> Vec<(&str, &T)> {
    map.iter().map(|(k, v)| (k.as_str(), v)).collect()
}

/// Encodes an item (a map of attributes) as canonical DynamoDB JSON.
pub fn encode_item<T: AttributeLike>(
    item: &HashMap<String, T>,
) -> Result<String, UnknownAttributeType> {
    encode_entries(entries(item))
}

thread_local! {
    /// Where items are written before they are copied out at their exact length. A string grown
    /// by doubling held up to twice its length, reallocated two or three times per image, and
    /// the pending-row budget (counted by capacity) then held half as many rows per row group.
    static SCRATCH: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Encodes an item given as its entries (unique names, any order) as canonical DynamoDB JSON.
/// The result's capacity is its length.
pub fn encode_entries<T: AttributeLike>(
    entries: Vec<(&str, &T)>,
) -> Result<String, UnknownAttributeType> {
    SCRATCH.with(|scratch| {
        // Never re-entered: writing an item does not encode another through this function.
        let mut out = scratch.borrow_mut();
        out.clear();
        write_map(&mut out, entries)?;
        let exact = out.as_str().to_owned();
        // A huge item once must not pin its buffer in this thread for good.
        if out.capacity() > SCRATCH_KEEP_BYTES {
            *out = String::new();
        }
        Ok(exact)
    })
}

/// The scratch buffer kept between items: an item's JSON is rarely larger (items are at most
/// 400 KB; their JSON can be somewhat more).
const SCRATCH_KEEP_BYTES: usize = 1 << 20;

/// The error's path is built only while an error unwinds, so the hot path allocates nothing
/// per attribute.
fn prefix(mut e: UnknownAttributeType, segment: &str) -> UnknownAttributeType {
    e.path = if e.path.is_empty() || e.path.starts_with('[') {
        format!("{segment}{}", e.path)
    } else {
        format!("{segment}.{}", e.path)
    };
    e
}

fn write_map<T: AttributeLike>(
    out: &mut String,
    mut entries: Vec<(&str, &T)>,
) -> Result<(), UnknownAttributeType> {
    out.push('{');
    // Sorting references is cheap next to the encoding itself and makes the bytes canonical.
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, k);
        out.push(':');
        write_value(out, v).map_err(|e| prefix(e, k))?;
    }
    out.push('}');
    Ok(())
}

fn write_value<T: AttributeLike>(out: &mut String, v: &T) -> Result<(), UnknownAttributeType> {
    let view = v.view().ok_or_else(|| UnknownAttributeType {
        path: String::new(),
    })?;
    match view {
        View::S(s) => {
            out.push_str("{\"S\":");
            write_str(out, s);
        }
        View::N(n) => {
            out.push_str("{\"N\":");
            write_str(out, n);
        }
        View::B(b) => {
            out.push_str("{\"B\":\"");
            base64::engine::general_purpose::STANDARD.encode_string(b, out);
            out.push('"');
        }
        View::Ss(v) => write_str_list(out, "SS", &v),
        View::Ns(v) => write_str_list(out, "NS", &v),
        View::Bs(v) => {
            out.push_str("{\"BS\":[");
            for (i, b) in v.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('"');
                base64::engine::general_purpose::STANDARD.encode_string(b, out);
                out.push('"');
            }
            out.push(']');
        }
        View::M(m) => {
            out.push_str("{\"M\":");
            write_map(out, m)?;
        }
        View::L(l) => {
            out.push_str("{\"L\":[");
            for (i, e) in l.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, e).map_err(|err| prefix(err, &format!("[{i}]")))?;
            }
            out.push(']');
        }
        View::Null => out.push_str("{\"NULL\":true"),
        View::Bool(b) => out.push_str(if b {
            "{\"BOOL\":true"
        } else {
            "{\"BOOL\":false"
        }),
    }
    out.push('}');
    Ok(())
}

fn write_str_list(out: &mut String, tag: &str, v: &[&str]) {
    out.push_str("{\"");
    out.push_str(tag);
    out.push_str("\":[");
    for (i, s) in v.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, s);
    }
    out.push(']');
}

/// Writes a JSON string literal. Only `"`, `\` and control characters are escaped.
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    // Most strings need no escape. A fold without early exit compiles to a vector loop, many
    // times faster than the byte-at-a-time loop below (5% of the worker's CPU in the soak).
    let clean = !bytes.iter().fold(false, |acc, &b| {
        acc | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if clean {
        out.push_str(s);
        out.push('"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            out.push_str(&format!("\\u{b:04x}"));
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// A DynamoDB JSON text that is not a valid item.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("at `{path}`: {message}")]
    Shape { path: String, message: String },
}

/// Decodes canonical (or any) DynamoDB JSON back into an item of the DynamoDB SDK.
pub fn decode_item(
    text: &str,
) -> Result<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>, DecodeError> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| DecodeError::Json(e.to_string()))?;
    decode_map(&v, "")
}

fn shape(path: &str, message: impl Into<String>) -> DecodeError {
    DecodeError::Shape {
        path: if path.is_empty() {
            "$".into()
        } else {
            path.into()
        },
        message: message.into(),
    }
}

/// Decodes an item already parsed as JSON (a line of a DynamoDB Export, say).
pub fn decode_item_value(
    v: &serde_json::Value,
) -> Result<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>, DecodeError> {
    decode_map(v, "")
}

fn decode_map(
    v: &serde_json::Value,
    path: &str,
) -> Result<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>, DecodeError> {
    let obj = v
        .as_object()
        .ok_or_else(|| shape(path, "expected an object of attributes"))?;
    obj.iter()
        .map(|(k, v)| {
            let child = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            Ok((k.clone(), decode_value(v, &child)?))
        })
        .collect()
}

fn decode_value(
    v: &serde_json::Value,
    path: &str,
) -> Result<aws_sdk_dynamodb::types::AttributeValue, DecodeError> {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    use aws_smithy_types::Blob;
    let obj = v
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or_else(|| shape(path, "expected an object with exactly one type tag"))?;
    let (tag, inner) = obj.iter().next().expect("one entry");
    let string = |x: &serde_json::Value| {
        x.as_str()
            .map(str::to_owned)
            .ok_or_else(|| shape(path, format!("{tag} must hold a string")))
    };
    let strings = |x: &serde_json::Value| -> Result<Vec<String>, DecodeError> {
        x.as_array()
            .ok_or_else(|| shape(path, format!("{tag} must hold an array")))?
            .iter()
            .map(string)
            .collect()
    };
    let blob = |s: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(Blob::new)
            .map_err(|e| shape(path, format!("invalid base64: {e}")))
    };
    Ok(match tag.as_str() {
        "S" => A::S(string(inner)?),
        "N" => A::N(string(inner)?),
        "B" => A::B(blob(&string(inner)?)?),
        "SS" => A::Ss(strings(inner)?),
        "NS" => A::Ns(strings(inner)?),
        "BS" => A::Bs(
            strings(inner)?
                .iter()
                .map(|s| blob(s))
                .collect::<Result<_, _>>()?,
        ),
        "M" => A::M(decode_map(inner, path)?),
        "L" => A::L(
            inner
                .as_array()
                .ok_or_else(|| shape(path, "L must hold an array"))?
                .iter()
                .enumerate()
                .map(|(i, e)| decode_value(e, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        "NULL" => A::Null(true),
        "BOOL" => A::Bool(
            inner
                .as_bool()
                .ok_or_else(|| shape(path, "BOOL must hold true or false"))?,
        ),
        other => return Err(shape(path, format!("unknown type tag `{other}`"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue as A;
    use aws_smithy_types::Blob;
    use proptest::prelude::*;

    fn item(pairs: Vec<(&str, A)>) -> HashMap<String, A> {
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    #[test]
    fn spec_example_is_canonical() {
        let it = item(vec![
            ("id", A::N("42".into())),
            ("tags", A::Ss(vec!["a".into(), "b".into()])),
            ("blob", A::B(Blob::new(vec![0, 1, 2]))),
            ("m", A::M(item(vec![("x", A::Null(true))]))),
        ]);
        assert_eq!(
            encode_item(&it).unwrap(),
            r#"{"blob":{"B":"AAEC"},"id":{"N":"42"},"m":{"M":{"x":{"NULL":true}}},"tags":{"SS":["a","b"]}}"#
        );
    }

    #[test]
    fn numbers_are_untouched() {
        for n in [
            "12345678901234567890123456789012345678",
            "-12345678901234567890123456789012345678",
            "1E-130",
            "9.9999999999999999999999999999999999999E+125",
            "0.10",
        ] {
            let it = item(vec![("n", A::N(n.into()))]);
            assert_eq!(
                encode_item(&it).unwrap(),
                format!(r#"{{"n":{{"N":"{n}"}}}}"#)
            );
        }
    }

    #[test]
    fn strings_escape_only_what_json_needs() {
        let mut out = String::new();
        write_str(&mut out, "a\"b\\c\n\u{1}é😀\u{202e}");
        assert_eq!(out, "\"a\\\"b\\\\c\\n\\u0001é😀\u{202e}\"");
        // and serde_json reads back the same text
        let back: String = serde_json::from_str(&out).unwrap();
        assert_eq!(back, "a\"b\\c\n\u{1}é😀\u{202e}");
    }

    #[test]
    fn empty_values_survive() {
        let it = item(vec![
            ("e", A::S(String::new())),
            ("m", A::M(HashMap::new())),
            ("l", A::L(vec![])),
            ("b", A::B(Blob::new(vec![]))),
        ]);
        let text = encode_item(&it).unwrap();
        assert_eq!(
            text,
            r#"{"b":{"B":""},"e":{"S":""},"l":{"L":[]},"m":{"M":{}}}"#
        );
        assert_eq!(decode_item(&text).unwrap(), it);
    }

    #[test]
    fn an_encoded_item_holds_no_spare_capacity() {
        // The pending-row budget counts capacity: slack would cut row groups short.
        for n in [1usize, 10, 300] {
            let it: HashMap<String, A> = (0..n)
                .map(|i| (format!("attr{i}"), A::S("x".repeat(i))))
                .collect();
            let text = encode_item(&it).unwrap();
            assert_eq!(text.capacity(), text.len(), "{n} attributes");
            assert_eq!(decode_item(&text).unwrap(), it);
        }
    }

    /// A stand-in attribute type with a variant the encoder does not know.
    enum TestAv {
        S(String),
        M(HashMap<String, TestAv>),
        L(Vec<TestAv>),
        FromTheFuture,
    }

    impl AttributeLike for TestAv {
        fn view(&self) -> Option<View<'_, Self>> {
            match self {
                TestAv::S(s) => Some(View::S(s)),
                TestAv::M(m) => Some(View::M(entries(m))),
                TestAv::L(l) => Some(View::L(l)),
                TestAv::FromTheFuture => None,
            }
        }
    }

    #[test]
    fn an_unknown_type_names_its_path() {
        let inner = HashMap::from([(
            "b".to_owned(),
            TestAv::L(vec![TestAv::S("x".into()), TestAv::FromTheFuture]),
        )]);
        let it = HashMap::from([("a".to_owned(), TestAv::M(inner))]);
        assert_eq!(encode_item(&it).unwrap_err().path, "a.b[1]");
        let ok = HashMap::from([("a".to_owned(), TestAv::S("x".into()))]);
        assert_eq!(encode_item(&ok).unwrap(), r#"{"a":{"S":"x"}}"#);
    }

    #[test]
    fn decode_rejects_bad_shapes() {
        assert!(decode_item("[]").is_err());
        assert!(decode_item(r#"{"a":{"X":"1"}}"#).is_err());
        assert!(decode_item(r#"{"a":{"S":"1","N":"2"}}"#).is_err());
        assert!(decode_item(r#"{"a":{"B":"***"}}"#).is_err());
    }

    fn arb_value() -> impl Strategy<Value = A> {
        let leaf = prop_oneof![
            any::<String>().prop_map(A::S),
            "-?[0-9]{1,38}(\\.[0-9]{1,5})?(E[+-]?[0-9]{1,3})?".prop_map(A::N),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(|b| A::B(Blob::new(b))),
            proptest::collection::vec(any::<String>(), 1..4).prop_map(A::Ss),
            proptest::collection::vec("[0-9]{1,10}", 1..4).prop_map(A::Ns),
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..8), 1..3)
                .prop_map(|v| A::Bs(v.into_iter().map(Blob::new).collect())),
            Just(A::Null(true)),
            any::<bool>().prop_map(A::Bool),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(A::L),
                proptest::collection::hash_map(any::<String>(), inner, 0..5).prop_map(A::M),
            ]
        })
    }

    proptest! {
        #[test]
        fn round_trip_is_lossless(m in proptest::collection::hash_map(any::<String>(), arb_value(), 0..6)) {
            let text = encode_item(&m).unwrap();
            // valid JSON
            let _: serde_json::Value = serde_json::from_str(&text).unwrap();
            let back = decode_item(&text).unwrap();
            prop_assert_eq!(&back, &m);
            // canonical: encoding the decoded item gives the same bytes
            prop_assert_eq!(encode_item(&back).unwrap(), text);
        }
    }
}
