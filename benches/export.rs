//! Benchmark: one DynamoDB Export data file (gzip DYNAMODB_JSON lines, a full export) → archive
//! Parquet, on one thread: MD5 check, gunzip, parse, canonical re-encoding, Parquet (ZSTD). This
//! is `import-export`'s work per data file, without the S3 download and upload.
//!
//!   cargo bench --bench export                 # default: 500,000 items of ~1 KB
//!   cargo bench --bench export -- --items 100000

mod common;
use base64::Engine;
use common::peak_rss_mib;
use dynamo_archiver::export::convert::{convert_file, Conversion};
use dynamo_archiver::export::manifest::{DataFile, ExportType, Summary};
use dynamo_archiver::types::TableName;
use std::io::Write;
use std::time::Instant;

/// One export line: an item of about 1 KB, attributes in export (not canonical) order.
fn line(i: usize) -> String {
    serde_json::json!({"Item": {
        "userid": {"N": i.to_string()},
        "name": {"S": format!("User Number {i}")},
        "email": {"S": format!("user{i}@example.com")},
        "balance": {"N": format!("{}.{:02}", 1_000_000 + i * 7, i % 100)},
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
        "notes": {"S": "x".repeat(400 + i % 200)},
        "active": {"BOOL": i % 3 == 0}
    }})
    .to_string()
}

fn main() {
    let mut items = 500_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--items" {
            items = args.next().and_then(|n| n.parse().ok()).expect("--items N");
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("data.json.gz");
    let mut json_bytes = 0usize;
    {
        let file = std::fs::File::create(&path).expect("create");
        let mut gz = flate2::write::GzEncoder::new(
            std::io::BufWriter::new(file),
            flate2::Compression::default(),
        );
        for i in 0..items {
            let l = line(i);
            json_bytes += l.len() + 1;
            gz.write_all(l.as_bytes()).expect("write");
            gz.write_all(b"\n").expect("write");
        }
        gz.finish().expect("finish").flush().expect("flush");
    }
    let gz_bytes = std::fs::metadata(&path).expect("stat").len();
    let md5 = {
        use md5::Digest;
        base64::engine::general_purpose::STANDARD
            .encode(md5::Md5::digest(std::fs::read(&path).expect("read")))
    };
    let conv = Conversion {
        table: TableName::new("users"),
        summary: Summary {
            export_arn: "arn:aws:dynamodb:us-east-1:1:table/users/export/01700000000000-bench"
                .into(),
            export_id: "01700000000000-bench".into(),
            table_arn: None,
            export_type: ExportType::Full,
            export_time_ms: Some(1_700_000_000_000),
            item_count: items as u64,
            manifest_files_key: None,
            output_view: None,
        },
        key_names: vec!["userid".into()],
        spool_dir: dir.path().to_owned(),
    };
    let data = DataFile {
        item_count: items as u64,
        md5_checksum: md5,
        data_file_s3_key: "p/AWSDynamoDB/01700000000000-bench/data/bench.json.gz".into(),
    };
    let started = Instant::now();
    let out = convert_file(&conv, &data, &path, "bench", 0).expect("converts");
    let secs = started.elapsed().as_secs_f64();
    let parquet: u64 = out.outputs.iter().map(|(_, f)| f.size_bytes).sum();
    println!(
        "export conversion, one thread: {items} items ({:.1} MB of JSON, {:.1} MB gzip) in {secs:.2} s",
        json_bytes as f64 / 1e6,
        gz_bytes as f64 / 1e6
    );
    println!(
        "  {:.0} items/s, {:.1} MB/s of JSON; Parquet {:.1} MB ({:.1}x smaller than the JSON); peak RSS {:.0} MiB",
        items as f64 / secs,
        json_bytes as f64 / 1e6 / secs,
        parquet as f64 / 1e6,
        json_bytes as f64 / parquet.max(1) as f64,
        peak_rss_mib()
    );
}
