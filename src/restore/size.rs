//! An item's size as DynamoDB bills it, and the write capacity a write of it consumes (pure).
//!
//! From the DynamoDB Developer Guide, "Item sizes and formats" and "Write capacity units": an item's
//! size is the sum of its attribute names' UTF-8 lengths and its values' sizes; a string is its
//! UTF-8 length, a binary its byte length, a number about one byte per two significant digits plus
//! one, a null or boolean one byte, a set the sum of its elements, a list or map three bytes plus
//! its elements (and one byte per element, which the guide's examples count). A standard write
//! (a put, or a delete, billed at the size of the item it removes) consumes one WCU per started
//! KB. Rounding is upward everywhere, so `--max-wcu` can only be undershot by the estimate; the
//! pacer corrects it with what DynamoDB reports (ConsumedCapacity) anyway.

use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// One write capacity unit covers a write of up to this many bytes.
pub const WCU_BYTES: u64 = 1024;

/// The size of a number: one byte per two significant digits, plus one.
fn number_size(n: &str) -> u64 {
    let mantissa = n
        .trim_start_matches(['-', '+'])
        .split(['e', 'E'])
        .next()
        .unwrap_or("");
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len() as u64;
    significant.max(1).div_ceil(2) + 1
}

fn value_size(v: &AttributeValue) -> u64 {
    match v {
        AttributeValue::S(s) => s.len() as u64,
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len() as u64,
        AttributeValue::Ss(v) => v.iter().map(|s| s.len() as u64).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len() as u64).sum(),
        AttributeValue::L(l) => 3 + l.iter().map(|e| 1 + value_size(e)).sum::<u64>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, e)| 1 + k.len() as u64 + value_size(e))
                .sum::<u64>()
        }
        AttributeValue::Null(_) | AttributeValue::Bool(_) => 1,
        // A type this SDK does not know: count it as the largest item, so the pacer errs low.
        _ => 400 * 1024,
    }
}

/// The item's size in bytes, as DynamoDB bills it (an upper estimate).
pub fn item_size(item: &HashMap<String, AttributeValue>) -> u64 {
    item.iter()
        .map(|(name, v)| name.len() as u64 + value_size(v))
        .sum()
}

/// Write capacity units of one standard write of an item of `size` bytes: one per started KB.
pub fn wcu(size: u64) -> u64 {
    size.div_ceil(WCU_BYTES).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_types::Blob;

    fn item(pairs: Vec<(&str, AttributeValue)>) -> HashMap<String, AttributeValue> {
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    #[test]
    fn numbers_count_significant_digits() {
        // (number, bytes)
        let cases = [
            ("0", 2),
            ("7", 2),
            ("42", 2),
            ("123", 3),
            ("-0.00100", 2),
            ("1E-130", 2),
            ("12345678901234567890123456789012345678", 20),
            ("9.9999999999999999999999999999999999999E+125", 20),
            ("100000", 2),
        ];
        for (n, want) in cases {
            assert_eq!(number_size(n), want, "{n}");
        }
    }

    #[test]
    fn item_sizes_and_capacity() {
        let a = AttributeValue::S;
        // (item, size in bytes)
        let cases = vec![
            (item(vec![("id", AttributeValue::N("1".into()))]), 2 + 2),
            (item(vec![("name", a("é".into()))]), 4 + 2),
            (
                item(vec![("b", AttributeValue::B(Blob::new(vec![0u8; 10])))]),
                1 + 10,
            ),
            (
                item(vec![(
                    "ss",
                    AttributeValue::Ss(vec!["ab".into(), "c".into()]),
                )]),
                2 + 3,
            ),
            (item(vec![("l", AttributeValue::L(vec![]))]), 1 + 3),
            (
                item(vec![(
                    "m",
                    AttributeValue::M(item(vec![("x", AttributeValue::Null(true))])),
                )]),
                1 + 3 + 1 + 1 + 1,
            ),
            (item(vec![("t", AttributeValue::Bool(true))]), 2),
        ];
        for (it, want) in cases {
            assert_eq!(item_size(&it), want, "{it:?}");
        }
        // (size, WCU): one per started KB, at least one.
        for (size, want) in [(0, 1), (1, 1), (1024, 1), (1025, 2), (400 * 1024, 400)] {
            assert_eq!(wcu(size), want, "{size}");
        }
    }
}
