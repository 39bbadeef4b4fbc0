//! Packing JSON lines into Firehose records, and records into PutRecordBatch calls: pure code,
//! property-tested below.
//!
//! Firehose bills every record as a multiple of 5 KB, so a 1 KB line sent alone costs five times
//! its size. Lines are therefore packed, whole and in order, into records of up to
//! [`MAX_RECORD_BYTES`]; a line is never split across records, so every record is a run of
//! complete `\n`-terminated lines and a reader (or Firehose's own de-aggregation) splits it back
//! at newlines. Records then go out in calls of at most [`MAX_BATCH_RECORDS`] records and
//! [`MAX_BATCH_BYTES`] bytes.

/// Largest Firehose record, before base64 encoding: 1,000 KiB.
/// <https://docs.aws.amazon.com/firehose/latest/dev/limits.html>
pub const MAX_RECORD_BYTES: usize = 1_000 * 1024;
/// Most lines packed into one record: Firehose's multi-record de-aggregation (needed before
/// dynamic partitioning and format conversion of packed records) splits at most 500 per record.
/// Half a megabyte of 1 KB lines per record still makes the 5 KB rounding negligible.
/// <https://docs.aws.amazon.com/firehose/latest/dev/dynamic-partitioning-multirecord-deaggergation.html>
pub const MAX_LINES_PER_RECORD: usize = 500;
/// Most records in one PutRecordBatch call.
/// <https://docs.aws.amazon.com/firehose/latest/APIReference/API_PutRecordBatch.html>
pub const MAX_BATCH_RECORDS: usize = 500;
/// Most bytes (of record data, before base64) in one PutRecordBatch call: 4 MiB.
/// <https://docs.aws.amazon.com/firehose/latest/APIReference/API_PutRecordBatch.html>
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Firehose ingestion is billed per record rounded up to the next 5 KB.
/// <https://aws.amazon.com/firehose/pricing/>
pub const BILLING_INCREMENT_BYTES: usize = 5 * 1024;

/// What Firehose bills for one record of `len` bytes.
pub fn billed_bytes(len: usize) -> u64 {
    (len.div_ceil(BILLING_INCREMENT_BYTES) * BILLING_INCREMENT_BYTES) as u64
}

/// A line longer than one Firehose record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a line of {len} bytes does not fit in one Firehose record ({MAX_RECORD_BYTES} bytes)")]
pub struct LineTooLong {
    pub len: usize,
}

/// Packs lines into records, in order, never splitting a line.
#[derive(Debug)]
pub struct Aggregator {
    max_record: usize,
    sealed: Vec<Vec<u8>>,
    sealed_bytes: usize,
    current: Vec<u8>,
    current_lines: usize,
    lines: usize,
}

impl Default for Aggregator {
    fn default() -> Self {
        Self::with_record_limit(MAX_RECORD_BYTES)
    }
}

impl Aggregator {
    /// An aggregator with a smaller record limit (tests use it to make many records cheaply).
    pub fn with_record_limit(max_record: usize) -> Self {
        Self {
            max_record,
            sealed: Vec::new(),
            sealed_bytes: 0,
            current: Vec::new(),
            current_lines: 0,
            lines: 0,
        }
    }

    /// Adds one whole line (its `\n` included). A line that cannot fit in any record is refused
    /// and nothing changes: the caller decides where it goes instead.
    pub fn push(&mut self, line: &[u8]) -> Result<(), LineTooLong> {
        if line.len() > self.max_record {
            return Err(LineTooLong { len: line.len() });
        }
        if self.current.len() + line.len() > self.max_record
            || self.current_lines == MAX_LINES_PER_RECORD
        {
            self.seal();
        }
        self.current.extend_from_slice(line);
        self.current_lines += 1;
        self.lines += 1;
        Ok(())
    }

    fn seal(&mut self) {
        if !self.current.is_empty() {
            let cap = self.current.len().min(self.max_record);
            let record = std::mem::replace(&mut self.current, Vec::with_capacity(cap));
            self.sealed_bytes += record.len();
            self.sealed.push(record);
        }
        self.current_lines = 0;
    }

    /// Bytes held, in sealed and open records.
    pub fn bytes(&self) -> usize {
        self.sealed_bytes + self.current.len()
    }

    /// Records that would be sent now (the open one included).
    pub fn records(&self) -> usize {
        self.sealed.len() + usize::from(!self.current.is_empty())
    }

    pub fn lines(&self) -> usize {
        self.lines
    }

    pub fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// Whether what is held fills one PutRecordBatch call, so it should be sent now: waiting
    /// longer only holds memory, and the call's size is already the most one call may carry.
    pub fn fills_a_call(&self) -> bool {
        self.records() >= MAX_BATCH_RECORDS
            || self.bytes() + self.max_record.min(MAX_RECORD_BYTES) > MAX_BATCH_BYTES
    }

    /// Every record, in order, the open one sealed; the aggregator is empty afterwards.
    pub fn take(&mut self) -> Vec<Vec<u8>> {
        self.seal();
        self.sealed_bytes = 0;
        self.lines = 0;
        std::mem::take(&mut self.sealed)
    }
}

/// Splits records, in order, into PutRecordBatch calls within both limits. Every record must be
/// at most [`MAX_RECORD_BYTES`] (what [`Aggregator`] makes).
pub fn batches(records: Vec<Vec<u8>>) -> Vec<Vec<Vec<u8>>> {
    let mut out: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut bytes = 0;
    for record in records {
        let fits = out.last().is_some_and(|b| {
            b.len() < MAX_BATCH_RECORDS && bytes + record.len() <= MAX_BATCH_BYTES
        });
        if !fits {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += record.len();
        out.last_mut().expect("pushed above").push(record);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn line(i: usize, len: usize) -> Vec<u8> {
        let mut l = format!("{{\"i\":{i},\"p\":\"").into_bytes();
        while l.len() + 3 < len {
            l.push(b'x');
        }
        l.extend_from_slice(b"\"}\n");
        l
    }

    #[test]
    fn billing_rounds_each_record_up_to_5_kb() {
        assert_eq!(billed_bytes(1), 5120);
        assert_eq!(billed_bytes(5120), 5120);
        assert_eq!(billed_bytes(5121), 10240);
    }

    #[test]
    fn lines_fill_a_record_before_the_next_one_starts() {
        let mut a = Aggregator::with_record_limit(100);
        for i in 0..5 {
            a.push(&line(i, 40)).unwrap();
        }
        let records = a.take();
        assert_eq!(
            records.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![80, 80, 40]
        );
        assert!(a.is_empty() && a.take().is_empty());
    }

    #[test]
    fn a_record_holds_at_most_500_lines() {
        let mut a = Aggregator::default();
        for i in 0..1001 {
            a.push(&line(i, 20)).unwrap();
        }
        let records = a.take();
        assert_eq!(
            records
                .iter()
                .map(|r| r.iter().filter(|b| **b == b'\n').count())
                .collect::<Vec<_>>(),
            vec![500, 500, 1]
        );
    }

    #[test]
    fn a_line_over_the_limit_is_refused_and_nothing_else_changes() {
        let mut a = Aggregator::with_record_limit(100);
        a.push(&line(0, 50)).unwrap();
        assert_eq!(a.push(&line(1, 101)), Err(LineTooLong { len: 101 }));
        assert_eq!(a.lines(), 1);
        a.push(&line(2, 100)).unwrap();
        assert_eq!(a.take(), vec![line(0, 50), line(2, 100)]);
    }

    #[test]
    fn a_full_call_is_500_records_or_4_mib() {
        let mut a = Aggregator::with_record_limit(32);
        for i in 0..499 {
            a.push(&line(i, 32)).unwrap();
        }
        assert!(!a.fills_a_call());
        a.push(&line(499, 32)).unwrap();
        assert!(a.fills_a_call());

        let mut a = Aggregator::default();
        let big = line(0, 512 * 1024);
        for _ in 0..6 {
            a.push(&big).unwrap();
        }
        assert!(
            !a.fills_a_call(),
            "3 MiB held, one more record may still fit"
        );
        a.push(&big).unwrap();
        assert!(a.fills_a_call());
        assert_eq!(
            batches(a.take()).len(),
            1,
            "what fills a call goes in one call"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Nothing lost, nothing reordered, no line split, no record or call over its limits.
        #[test]
        fn packing_keeps_every_line_whole_and_in_order(
            lens in proptest::collection::vec(4usize..3000, 0..1500),
            limit in 3000usize..60_000,
            take_every in 1usize..2000,
            tiny in any::<bool>(),
        ) {
            // Tiny lines reach the 500-lines-per-record cap before the byte limit.
            let lens: Vec<usize> = lens.iter().map(|&n| if tiny { 4 + n % 40 } else { n }).collect();
            let lines: Vec<Vec<u8>> = lens.iter().enumerate().map(|(i, &n)| line(i, n)).collect();
            let mut a = Aggregator::with_record_limit(limit);
            let mut calls = Vec::new();
            for (i, l) in lines.iter().enumerate() {
                a.push(l).unwrap();
                if (i + 1) % take_every == 0 || a.fills_a_call() {
                    calls.extend(batches(a.take()));
                }
            }
            calls.extend(batches(a.take()));
            let mut joined = Vec::new();
            for call in &calls {
                prop_assert!(!call.is_empty());
                prop_assert!(call.len() <= MAX_BATCH_RECORDS);
                prop_assert!(call.iter().map(Vec::len).sum::<usize>() <= MAX_BATCH_BYTES);
                for record in call {
                    prop_assert!(record.len() <= limit);
                    prop_assert!(record.iter().filter(|b| **b == b'\n').count() <= MAX_LINES_PER_RECORD);
                    prop_assert_eq!(record.last(), Some(&b'\n'), "a record ends with a whole line");
                    joined.extend_from_slice(record);
                }
            }
            prop_assert_eq!(joined, lines.concat());
        }

        /// Batching alone, with records at the real limit: calls stay within 500 and 4 MiB and
        /// keep the order.
        #[test]
        fn batches_respect_both_call_limits(
            lens in proptest::collection::vec(1usize..=MAX_RECORD_BYTES, 0..40),
            small in 0usize..1200,
        ) {
            let mut records: Vec<Vec<u8>> = lens.iter().enumerate()
                .map(|(i, &n)| vec![(i % 251) as u8; n]).collect();
            records.extend((0..small).map(|i| vec![(i % 7) as u8; 3]));
            let expected = records.clone();
            let calls = batches(records);
            for call in &calls {
                prop_assert!(call.len() <= MAX_BATCH_RECORDS);
                prop_assert!(call.iter().map(Vec::len).sum::<usize>() <= MAX_BATCH_BYTES);
            }
            prop_assert_eq!(calls.concat(), expected);
        }
    }
}
