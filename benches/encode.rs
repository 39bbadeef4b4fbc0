//! Benchmark: GetRecords-shaped JSON → archive rows → Parquet (ZSTD) bytes, on one thread, two
//! ways in one run: through the SDK's deserializer and `from_stream_record` (the fallback path),
//! and through `api::get_records` with its direct decoder (what the worker runs). The SDK's HTTP
//! client returns a canned GetRecords body, so no network is involved. Prints records/s, MB/s of
//! GetRecords JSON, the share of each stage, and the peak RSS of the process.
//!
//!   cargo bench --bench encode                 # defaults: 300 pages of 1,000 records of ~1.4 KB
//!   cargo bench --bench encode -- --pages 50

mod common;
use common::peak_rss_mib;
use dynamo_archiver::encode::parquet::SpoolWriter;
use dynamo_archiver::encode::record::{from_stream_record, ChangeRecord};
use dynamo_archiver::encode::stream_json::RowSource;
use dynamo_archiver::stream::api;
use dynamo_archiver::stream::canned::CannedClient;
use dynamo_archiver::types::{ShardId, StreamArn, TableName};
use std::time::{Duration, Instant};

/// One GetRecords response body of `n` MODIFY records of about 1.4 KB each (NEW_AND_OLD_IMAGES).
fn get_records_body(n: usize, page: usize) -> String {
    let image = |i: usize, v: usize| {
        serde_json::json!({
            "userid": {"N": i.to_string()},
            "name": {"S": format!("User Number {i}")},
            "email": {"S": format!("user{i}@example.com")},
            "balance": {"N": format!("{}.{:02}", 1_000_000 + i * 7, v % 100)},
            "tags": {"SS": ["gold", "newsletter", "beta"]},
            "address": {"M": {
                "street": {"S": format!("{} Long Street Name Avenue", i % 1000)},
                "city": {"S": "Springfield"}, "zip": {"S": format!("{:05}", i % 99999)},
                "geo": {"M": {"lat": {"N": "37.7749295"}, "lon": {"N": "-122.4194155"}}}
            }},
            "orders": {"L": [
                {"M": {"id": {"S": format!("o-{i}-1")}, "total": {"N": "19.99"}}},
                {"M": {"id": {"S": format!("o-{i}-2")}, "total": {"N": "5.00"}}}
            ]},
            "avatar": {"B": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="},
            "active": {"BOOL": true},
            "version": {"N": v.to_string()},
            "notes": {"S": "x".repeat(80)}
        })
    };
    let records: Vec<serde_json::Value> = (0..n)
        .map(|j| {
            let i = page * n + j;
            serde_json::json!({
                "eventID": format!("{:032x}", i),
                "eventName": "MODIFY",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": {
                    "ApproximateCreationDateTime": 1.7637696e9 + i as f64,
                    "Keys": {"userid": {"N": i.to_string()}},
                    "NewImage": image(i, 2),
                    "OldImage": image(i, 1),
                    "SequenceNumber": format!("{:021}", 1000 + i),
                    "SizeBytes": 1100,
                    "StreamViewType": "NEW_AND_OLD_IMAGES"
                }
            })
        })
        .collect();
    serde_json::json!({"Records": records, "NextShardIterator": "next"}).to_string()
}

fn main() {
    let mut pages = 300usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--pages" {
            pages = args.next().and_then(|v| v.parse().ok()).expect("--pages N");
        }
    }
    let per_page = 1000;
    // A few distinct bodies, so the encoder does not see one page repeated only.
    let bodies: Vec<bytes::Bytes> = (0..4)
        .map(|p| bytes::Bytes::from(get_records_body(per_page, p)))
        .collect();
    let body_bytes = bodies[0].len();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let clients: Vec<aws_sdk_dynamodbstreams::Client> = bodies
        .iter()
        .map(|b| CannedClient::always(b.clone()).streams_client())
        .collect();
    let (table, stream, shard) = (
        TableName::new("users"),
        StreamArn::new(
            "arn:aws:dynamodb:us-east-1:123456789012:table/users/stream/2026-11-21T00:00:00.000",
        ),
        ShardId::new("shardId-00000001763769600000-0123abcd"),
    );
    let source = RowSource {
        table: &table,
        stream: &stream,
        shard: &shard,
    };
    let json_mb = (body_bytes * pages) as f64 / 1e6;
    println!("encode bench: {} records in {pages} GetRecords pages of {body_bytes} bytes ({:.0} bytes/record of JSON), one thread",
        pages * per_page, body_bytes as f64 / per_page as f64);
    for direct in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = SpoolWriter::create(&dir.path().join("bench.parquet")).unwrap();
        let (mut t_decode, mut t_rows, mut t_parquet) =
            (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        let mut pending: Vec<ChangeRecord> = Vec::new();
        let mut pending_bytes = 0usize;
        let mut records = 0usize;
        let started = Instant::now();
        for p in 0..pages {
            let client = &clients[p % clients.len()];
            let t = Instant::now();
            let rows = if direct {
                // What the reader does: the interceptor decodes the body straight into rows.
                let page = rt
                    .block_on(api::get_records(client, "it", 1000, &source))
                    .expect("canned page parses");
                assert!(!page.decoded_by_sdk, "the bench body is decoded directly");
                t_decode += t.elapsed();
                page.rows
            } else {
                let page = rt
                    .block_on(client.get_records().shard_iterator("it").send())
                    .expect("canned page parses");
                t_decode += t.elapsed();
                let t = Instant::now();
                let rows: Vec<ChangeRecord> = page
                    .records()
                    .iter()
                    .map(|r| from_stream_record(r, &table, &stream, &shard).unwrap())
                    .collect();
                drop(page);
                t_rows += t.elapsed();
                rows
            };
            records += rows.len();
            for row in rows {
                pending_bytes += row.approx_bytes();
                pending.push(row);
            }
            if pending_bytes >= dynamo_archiver::pipeline::budget::ROW_GROUP_BYTES {
                let t = Instant::now();
                writer.write(&pending, 0).unwrap();
                t_parquet += t.elapsed();
                pending.clear();
                pending_bytes = 0;
            }
        }
        let t = Instant::now();
        writer.write(&pending, 0).unwrap();
        let file = writer.finish(vec![]).unwrap();
        t_parquet += t.elapsed();
        let secs = started.elapsed().as_secs_f64();
        let rate = |d: Duration| records as f64 / d.as_secs_f64();
        let share = |d: Duration| 100.0 * d.as_secs_f64() / secs;
        if direct {
            println!("  direct decoder (what the worker runs): {:.0} records/s end to end, {:.1} MB/s of JSON, {:.2} s", records as f64 / secs, json_mb / secs, secs);
            println!(
                "    body → rows {:.0}% ({:.0} rec/s alone), Parquet+ZSTD {:.0}% ({:.0} rec/s)",
                share(t_decode),
                rate(t_decode),
                share(t_parquet),
                rate(t_parquet)
            );
        } else {
            println!("  SDK deserializer, then rows: {:.0} records/s end to end, {:.1} MB/s of JSON, {:.2} s", records as f64 / secs, json_mb / secs, secs);
            println!("    SDK deserialize {:.0}% ({:.0} rec/s alone), rows incl. freeing the SDK records {:.0}% ({:.0} rec/s), Parquet+ZSTD {:.0}% ({:.0} rec/s)",
                share(t_decode), rate(t_decode), share(t_rows), rate(t_rows), share(t_parquet), rate(t_parquet));
        }
        println!(
            "    Parquet file: {:.1} MB ({:.1}x smaller than the JSON); peak RSS so far {:.0} MiB",
            file.size_bytes as f64 / 1e6,
            json_mb * 1e6 / file.size_bytes as f64,
            peak_rss_mib()
        );
    }
}
