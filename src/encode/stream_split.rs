//! A GetRecords body split into its records at the byte level, without decoding them, so that one
//! record that cannot become a row is quarantined with its exact bytes while the records around
//! it are archived as usual (see `stream_json`).
//!
//! The scanner knows only JSON's structure: strings (with their escapes), objects, arrays and
//! scalars. It never validates UTF-8 or values, so a record holding invalid UTF-8, an unknown
//! attribute type or a missing field is still found whole, between its braces. It gives up (and
//! the caller lets the SDK read the body, with the SDK's errors) only when the structure itself is
//! broken: a body cut off halfway, or one that is not a GetRecords answer.

/// Objects and arrays nested deeper than this end the scan: DynamoDB allows 32 levels of nested
/// attributes, each two JSON levels deep (`{"M":{...}}`), below a record's own four.
const MAX_DEPTH: usize = 128;

/// The parts of a GetRecords body.
#[derive(Debug, PartialEq, Eq)]
pub struct SplitBody<'a> {
    /// Each record's exact bytes, from its `{` to its `}`.
    pub records: Vec<&'a [u8]>,
    pub next_iterator: Option<String>,
}

/// Splits a body of the form `{"Records":[{...},...],"NextShardIterator":"..."}` (fields in any
/// order, others ignored); `None` when its structure is broken.
pub fn split_body(body: &[u8]) -> Option<SplitBody<'_>> {
    let mut records = Vec::new();
    let mut next_iterator = None;
    let start = skip_ws(body, 0);
    let end = for_each_field(body, start, 0, |key, value| {
        match key {
            b"Records" => {
                if body.get(value.start) == Some(&b'n') {
                    return Some(()); // null
                }
                for_each_element(body, value.start, 1, |element| {
                    records.push(&body[element]);
                    Some(())
                })?;
            }
            b"NextShardIterator" => {
                next_iterator = serde_json::from_slice::<Option<String>>(&body[value]).ok()?;
            }
            _ => {}
        }
        Some(())
    })?;
    // Nothing but whitespace may follow the body's object.
    (skip_ws(body, end) == body.len()).then_some(SplitBody {
        records,
        next_iterator,
    })
}

/// The fields of a record that can still be read when the record as a whole cannot: each is
/// `None` when absent or unreadable.
#[derive(Debug, Default, PartialEq)]
pub struct Salvaged {
    pub event_id: Option<String>,
    pub sequence_number: Option<String>,
    /// `ApproximateCreationDateTime`, epoch seconds.
    pub created_s: Option<f64>,
    pub size_bytes: Option<i64>,
    pub view_type: Option<String>,
}

/// Reads what it can of one record (`{"eventID":..,"dynamodb":{"SequenceNumber":..}}`).
pub fn salvage(record: &[u8]) -> Salvaged {
    let mut out = Salvaged::default();
    let text = |span: std::ops::Range<usize>| serde_json::from_slice::<String>(&record[span]).ok();
    for_each_field(record, 0, 0, |key, value| {
        match key {
            b"eventID" => out.event_id = text(value),
            b"dynamodb" => {
                for_each_field(record, value.start, 1, |key, value| {
                    match key {
                        b"SequenceNumber" => out.sequence_number = text(value),
                        b"ApproximateCreationDateTime" => {
                            out.created_s = serde_json::from_slice(&record[value]).ok();
                        }
                        b"SizeBytes" => {
                            out.size_bytes = serde_json::from_slice(&record[value]).ok()
                        }
                        b"StreamViewType" => out.view_type = text(value),
                        _ => {}
                    }
                    Some(())
                });
            }
            _ => {}
        }
        Some(())
    });
    out
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The end of the string starting at `b[i] == '"'` (one past its closing quote).
fn skip_string(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        match *b.get(j)? {
            b'"' => return Some(j + 1),
            b'\\' => j += 2,
            _ => j += 1,
        }
    }
}

/// The end of the value starting at `b[i]` (whitespace already skipped).
fn skip_value(b: &[u8], i: usize, depth: usize) -> Option<usize> {
    if depth > MAX_DEPTH {
        return None;
    }
    match *b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' => for_each_field(b, i, depth, |_, _| Some(())),
        b'[' => for_each_element(b, i, depth, |_| Some(())),
        _ => {
            // A number or a literal: up to the next delimiter.
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

/// Calls `f(key bytes, value span)` for each field of the object at `b[i] == '{'`; returns the
/// end of the object.
fn for_each_field(
    b: &[u8],
    i: usize,
    depth: usize,
    mut f: impl FnMut(&[u8], std::ops::Range<usize>) -> Option<()>,
) -> Option<usize> {
    (*b.get(i)? == b'{').then_some(())?;
    let mut j = skip_ws(b, i + 1);
    if *b.get(j)? == b'}' {
        return Some(j + 1);
    }
    loop {
        (*b.get(j)? == b'"').then_some(())?;
        let key_end = skip_string(b, j)?;
        let key = &b[j + 1..key_end - 1];
        j = skip_ws(b, key_end);
        (*b.get(j)? == b':').then_some(())?;
        let value_start = skip_ws(b, j + 1);
        let value_end = skip_value(b, value_start, depth + 1)?;
        f(key, value_start..value_end)?;
        j = skip_ws(b, value_end);
        match *b.get(j)? {
            b',' => j = skip_ws(b, j + 1),
            b'}' => return Some(j + 1),
            _ => return None,
        }
    }
}

/// Calls `f(element span)` for each element of the array at `b[i] == '['`; returns its end.
fn for_each_element(
    b: &[u8],
    i: usize,
    depth: usize,
    mut f: impl FnMut(std::ops::Range<usize>) -> Option<()>,
) -> Option<usize> {
    (*b.get(i)? == b'[').then_some(())?;
    let mut j = skip_ws(b, i + 1);
    if *b.get(j)? == b']' {
        return Some(j + 1);
    }
    loop {
        let end = skip_value(b, j, depth + 1)?;
        f(j..end)?;
        j = skip_ws(b, end);
        match *b.get(j)? {
            b',' => j = skip_ws(b, j + 1),
            b']' => return Some(j + 1),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_found_whole_whatever_they_hold() {
        let bad_utf8: &[u8] = b"{\"eventID\":\"e2\",\"dynamodb\":{\"NewImage\":{\"s\":{\"S\":\"\xff\xfe\"}},\"SequenceNumber\":\"2\"}}";
        let mut body =
            b"{\"Records\":[ {\"eventID\":\"e1\",\"x\":[1,{\"y\":\"a\\\"}\"}]} ,".to_vec();
        body.extend_from_slice(bad_utf8);
        body.extend_from_slice(b",{\"dynamodb\":{\"Keys\":{\"k\":{\"Q\":\"unknown type\"}}}}],\"NextShardIterator\":\"it-\\u0041\"}\n");
        let split = split_body(&body).expect("a GetRecords body");
        assert_eq!(split.records.len(), 3);
        assert_eq!(
            split.records[0],
            &b"{\"eventID\":\"e1\",\"x\":[1,{\"y\":\"a\\\"}\"}]}"[..]
        );
        assert_eq!(split.records[1], bad_utf8, "the exact bytes");
        assert_eq!(split.next_iterator.as_deref(), Some("it-A"));
    }

    #[test]
    fn broken_or_foreign_bodies_are_not_split() {
        for body in [
            &b"{\"Records\":[{\"eventID\":\"e1\"},{\"eventI"[..],
            b"{\"Records\":[{}]} trailing",
            b"[]",
            b"",
            b"{\"Records\":[{\"a\":1}],\"NextShardIterator\":7}",
        ] {
            assert_eq!(split_body(body), None, "{}", String::from_utf8_lossy(body));
        }
        let empty = split_body(b"{\"Records\":[],\"NextShardIterator\":null}").unwrap();
        assert!(empty.records.is_empty() && empty.next_iterator.is_none());
        let closed = split_body(b"{\"Records\":null}").unwrap();
        assert!(closed.records.is_empty());
    }

    #[test]
    fn what_can_be_read_of_a_bad_record_is_salvaged() {
        let record = b"{\"eventID\":\"e-9\",\"eventName\":\"INSERT\",\"dynamodb\":{\"ApproximateCreationDateTime\":1763769600.5,\"NewImage\":{\"SequenceNumber\":{\"S\":\"not this one\"},\"v\":{\"S\":\"\xff\"}},\"SequenceNumber\":\"000000000000000000042\",\"SizeBytes\":77,\"StreamViewType\":\"NEW_IMAGE\"}}";
        assert_eq!(
            salvage(record),
            Salvaged {
                event_id: Some("e-9".into()),
                sequence_number: Some("000000000000000000042".into()),
                created_s: Some(1_763_769_600.5),
                size_bytes: Some(77),
                view_type: Some("NEW_IMAGE".into()),
            }
        );
        assert_eq!(salvage(b"{\"dynamodb\":"), Salvaged::default());
    }
}
