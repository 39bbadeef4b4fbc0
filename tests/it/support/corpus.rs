//! The hostile corpus: item values that break naive archivers (38-digit numbers, exponents,
//! binary, sets, empty strings and binaries, deep nesting, unicode, control characters).

use aws_sdk_dynamodb::types::AttributeValue as A;
use aws_smithy_types::Blob;
use std::collections::HashMap;

fn nested(depth: usize) -> A {
    let mut v = A::S("bottom".into());
    for i in 0..depth {
        v = if i % 2 == 0 {
            A::M(HashMap::from([(format!("level{i}"), v)]))
        } else {
            A::L(vec![v, A::N(i.to_string())])
        };
    }
    v
}

pub fn corpus() -> Vec<HashMap<String, A>> {
    let item = |id: i64, attrs: Vec<(&str, A)>| {
        let mut m: HashMap<String, A> = attrs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        m.insert("id".into(), A::N(id.to_string()));
        m
    };
    vec![
        item(
            1,
            vec![
                ("big", A::N("12345678901234567890123456789012345678".into())),
                (
                    "neg",
                    A::N("-98765432109876543210987654321098765432".into()),
                ),
                ("tiny", A::N("1E-130".into())),
                (
                    "huge",
                    A::N("9.9999999999999999999999999999999999999E+125".into()),
                ),
                (
                    "frac",
                    A::N("0.1000000000000000000000000000000000001".into()),
                ),
            ],
        ),
        item(
            2,
            vec![("bytes", A::B(Blob::new((0u8..=255).collect::<Vec<u8>>())))],
        ),
        item(
            3,
            vec![
                (
                    "ss",
                    A::Ss(vec!["b".into(), "a".into(), "".to_owned() + "z"]),
                ),
                (
                    "ns",
                    A::Ns(vec!["1".into(), "-2.5".into(), "1E+100".into()]),
                ),
                (
                    "bs",
                    A::Bs(vec![Blob::new(vec![0u8]), Blob::new(vec![255u8, 1])]),
                ),
            ],
        ),
        item(4, vec![("deep", nested(30))]),
        item(
            5,
            vec![
                ("empty", A::S(String::new())),
                ("emptyb", A::B(Blob::new(Vec::<u8>::new()))),
                ("emptyl", A::L(vec![])),
                ("null", A::Null(true)),
                ("t", A::Bool(true)),
                ("f", A::Bool(false)),
            ],
        ),
        item(
            6,
            vec![
                ("emoji", A::S("😀👩‍👩‍👧‍👦🏳️‍🌈".into())),
                ("rtl", A::S("שלום عليكم \u{202e}abc".into())),
                ("combining", A::S("e\u{301}a\u{308}\u{20dd}".into())),
                ("controls", A::S("tab\there\nnew\"quote\\back\u{1}".into())),
                ("ключ ü", A::S("non-ASCII attribute name".into())),
            ],
        ),
        // Empty maps: DynamoDB Local sends them typeless in stream images (see stream::repair).
        item(
            8,
            vec![
                ("emptymap", A::M(HashMap::new())),
                (
                    "nested",
                    A::M(HashMap::from([("inner".to_owned(), A::M(HashMap::new()))])),
                ),
                (
                    "inlist",
                    A::L(vec![A::M(HashMap::new()), A::S("after".into())]),
                ),
            ],
        ),
        // Near the 400 KB item limit.
        item(7, vec![("blob", A::S("x".repeat(399_000)))]),
    ]
}
