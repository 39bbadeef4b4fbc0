//! Benchmark: what Firehose would bill for the lines this code really sends, with and without
//! aggregation, next to the bytes the direct Parquet path writes for the same records; and how
//! fast one core encodes and packs lines.
//!
//! Records are MODIFYs with NEW_AND_OLD_IMAGES whose JSON line is about 1 KB (the issue's
//! "records of 1 KB"). Firehose bills each record rounded up to 5 KB; sent one line per record,
//! a 1 KB line costs 5 KB. Packed into 1,000 KiB records, the rounding is paid once per record.
//!
//!   cargo bench --bench firehose                  # 200,000 records
//!   cargo bench --bench firehose -- --records 1000000

mod common;
use common::peak_rss_mib;
use dynamo_archiver::encode::json_line::encode_line;
use dynamo_archiver::encode::parquet::SpoolWriter;
use dynamo_archiver::encode::record::ChangeRecord;
use dynamo_archiver::sink::aggregate::{batches, billed_bytes, Aggregator};
use dynamo_archiver::types::{SequenceNumber, ShardId, StreamArn, TableName};
use std::time::Instant;

/// Firehose Direct PUT ingestion, us-east-1, first 500 TB a month (USD per GB), from
/// <https://aws.amazon.com/firehose/pricing/> as published in 2026; check the page for today's.
const USD_PER_GB_INGESTED: f64 = 0.029;
const GB: f64 = 1e9;
const PER: f64 = 1e9;

/// 32 pseudo-random hex digits: real items are not all alike, so Parquet's compression must not
/// be flattered by identical rows.
fn token(seed: u64) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = String::with_capacity(32);
    for _ in 0..2 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push_str(&format!("{x:016x}"));
    }
    out
}

fn record(i: u64) -> ChangeRecord {
    let image = |v: u64| {
        format!(
            concat!(
                r#"{{"address":{{"M":{{"street":{{"S":"{street} Elm Street"}},"zip":{{"S":"{zip:05}"}}}}}},"#,
                r#""balance":{{"N":"{bal}.{cents:02}"}},"#,
                r#""name":{{"S":"User Number {i}"}},"token":{{"S":"{token}"}},"#,
                r#""userid":{{"N":"{i}"}},"version":{{"N":"{v}"}}}}"#
            ),
            token = token(i * 2 + v),
            street = i % 1000,
            zip = i % 99_999,
            bal = 1_000_000 + i * 7,
            cents = v % 100,
            i = i,
            v = v,
        )
    };
    ChangeRecord {
        event_id: format!("{i:032x}"),
        event_name: "MODIFY".into(),
        event_time_ms: 1_763_769_600_000 + i as i64,
        table_name: TableName::new("users"),
        stream_arn: Some(StreamArn::new(
            "arn:aws:dynamodb:us-east-1:123456789012:table/users/stream/2026-11-21T00:00:00.000",
        )),
        shard_id: Some(ShardId::new("shardId-00000001763769600000-0a1b2c3d")),
        sequence_number: Some(
            SequenceNumber::parse(&format!("{}", 100_000_000_000_000_000_000u128 + i as u128))
                .expect("digits"),
        ),
        keys: format!(r#"{{"userid":{{"N":"{i}"}}}}"#),
        new_image: Some(image(i + 1)),
        old_image: Some(image(i)),
        size_bytes: Some(420),
        stream_view_type: Some("NEW_AND_OLD_IMAGES".into()),
        user_identity: None,
        quarantine: None,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let records: u64 = args
        .iter()
        .position(|a| a == "--records")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);

    // Lines, packed as the worker packs them (a call's worth at a time).
    let started = Instant::now();
    let mut agg = Aggregator::default();
    let (mut line_bytes, mut unaggregated_billed) = (0u64, 0u64);
    let (mut fh_records, mut fh_bytes, mut fh_billed, mut calls) = (0u64, 0u64, 0u64, 0u64);
    let mut ship = |agg: &mut Aggregator| {
        for call in batches(agg.take()) {
            calls += 1;
            for r in call {
                fh_records += 1;
                fh_bytes += r.len() as u64;
                fh_billed += billed_bytes(r.len());
            }
        }
    };
    for i in 0..records {
        let line = encode_line(&record(i), 1_763_769_700_000);
        line_bytes += line.len() as u64;
        unaggregated_billed += billed_bytes(line.len());
        agg.push(line.as_bytes()).expect("1 KB lines fit");
        if agg.fills_a_call() {
            ship(&mut agg);
        }
    }
    ship(&mut agg);
    let lines_secs = started.elapsed().as_secs_f64();

    // The same records through the Parquet path (ZSTD, 8 MiB row groups as the worker uses).
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let mut writer = SpoolWriter::create(&dir.path().join("bench.parquet")).expect("spool");
    let mut pending = Vec::new();
    let mut pending_bytes = 0;
    for i in 0..records {
        let r = record(i);
        pending_bytes += r.approx_bytes();
        pending.push(r);
        if pending_bytes >= 8 << 20 {
            writer.write(&pending, 1_763_769_700_000).expect("write");
            pending.clear();
            pending_bytes = 0;
        }
    }
    writer.write(&pending, 1_763_769_700_000).expect("write");
    let parquet = writer.finish(vec![]).expect("finish");
    let parquet_secs = started.elapsed().as_secs_f64();

    let n = records as f64;
    let scale = PER / n;
    println!("firehose bench: {records} MODIFY records, NEW_AND_OLD_IMAGES (2 cores machine, one thread)");
    println!(
        "  JSON line: {:.0} bytes on average; {:.0} lines per Firehose record; {calls} PutRecordBatch calls",
        line_bytes as f64 / n,
        n / fh_records as f64
    );
    println!(
        "  per 1e9 records: lines {:.1} GB; billed without aggregation {:.1} GB (${:.0}), with aggregation {:.1} GB (${:.0}): {:.2}x less",
        line_bytes as f64 * scale / GB,
        unaggregated_billed as f64 * scale / GB,
        unaggregated_billed as f64 * scale / GB * USD_PER_GB_INGESTED,
        fh_billed as f64 * scale / GB,
        fh_billed as f64 * scale / GB * USD_PER_GB_INGESTED,
        unaggregated_billed as f64 / fh_billed as f64
    );
    println!(
        "  per 1e9 records: Firehose records {:.2e} (unaggregated {:.2e}); PutRecordBatch calls {:.2e}; aggregation overhead {:.3}% of bytes",
        fh_records as f64 * scale,
        PER,
        calls as f64 * scale,
        (fh_billed as f64 / fh_bytes as f64 - 1.0) * 100.0
    );
    println!(
        "  direct Parquet path: {:.1} GB per 1e9 records written to S3 ({:.0} bytes/record, {:.1}x smaller than the lines), no ingestion charge",
        parquet.size_bytes as f64 * scale / GB,
        parquet.size_bytes as f64 / n,
        line_bytes as f64 / parquet.size_bytes as f64
    );
    println!(
        "  speed, one core: lines encoded + packed {:.0} records/s; Parquet encoded {:.0} records/s; peak RSS {:.0} MiB",
        n / lines_secs,
        n / parquet_secs,
        peak_rss_mib()
    );
}
