//! Benchmark: `dynamo-archiver schema --infer` on a local archive of 1,000,000 rows (10 days, 4
//! shards a day, 25,000 rows a file in row groups of 5,000; ~1 KB items with strings, numbers,
//! sets, a map and a list; INSERT, MODIFY with both images, REMOVE). The archive is generated
//! with the archiver's own Parquet writer, then the real binary is run three times and timed
//! end to end (process start to exit, DuckDB views printed).
//!
//!   cargo bench --bench schema_infer                        # 1,000,000 rows, --sample default
//!   cargo bench --bench schema_infer -- --sample 1000000    # the same, every row read
//!   cargo bench --bench schema_infer -- --rows 200000 --keep /tmp/bench-archive

use dynamo_archiver::archive::layout::stream_file_key;
use dynamo_archiver::encode::parquet::{meta, SpoolWriter};
use dynamo_archiver::encode::record::ChangeRecord;
use dynamo_archiver::types::{SequenceNumber, ShardId, StreamArn, TableName};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

const DAYS: u64 = 10;
const SHARDS_PER_DAY: u64 = 4;
const ROWS_PER_GROUP: usize = 5_000;
const KEYS: u64 = 300_000;
/// 2026-11-01T00:00:00Z.
const START_MS: i64 = 1_793_491_200_000;
const DAY_MS: i64 = 86_400_000;

/// An item of about 1 KB; `version` changes what a MODIFY changes.
fn item(key: u64, version: u64) -> String {
    let mut item = json!({
        "userid": {"N": key.to_string()},
        "name": {"S": format!("User Number {key}")},
        "email": {"S": format!("user{key}.v{version}@example.com")},
        "balance": {"N": format!("{}.{:02}", 1_000 + key * 7 + version, key % 100)},
        "tags": {"SS": ["gold", "newsletter", "beta"]},
        "address": {"M": {
            "street": {"S": format!("{} Long Street Name Avenue", key % 1000)},
            "city": {"S": "Springfield"},
            "geo": {"M": {"lat": {"N": "37.7749295"}, "lon": {"N": "-122.4194155"}}}
        }},
        "orders": {"L": [
            {"M": {"id": {"S": format!("o-{key}-1")}, "total": {"N": "19.99"}}},
            {"M": {"id": {"S": format!("o-{key}-2")}, "total": {"N": "5.00"}}}
        ]},
        "scores": {"L": [{"N": "1"}, {"N": "2.5"}]},
        "notes": {"S": notes(key, version)},
        "active": {"BOOL": key % 3 == 0},
        "version": {"N": version.to_string()}
    });
    if key % 1000 == 0 {
        item["promo"] = json!({"S": "spring"});
    }
    // serde_json's map is sorted: the text is canonical DynamoDB JSON (sorted keys, no spaces).
    item.to_string()
}

/// 300 to 500 characters of text that compresses about as well as prose (ZSTD would shrink a
/// repeated character to nothing, and the sample's reads with it).
fn notes(key: u64, version: u64) -> String {
    const WORDS: [&str; 16] = [
        "order", "shipped", "customer", "asked", "about", "the", "invoice", "again", "refund",
        "pending", "address", "changed", "call", "back", "tomorrow", "priority",
    ];
    let mut x = key.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ version.wrapping_add(1);
    let mut out = String::new();
    while out.len() < 300 + (key % 200) as usize {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push_str(WORDS[(x % 16) as usize]);
        out.push_str(if x % 7 == 0 { ". " } else { " " });
        if x % 5 == 0 {
            out.push_str(&format!("#{} ", x % 100_000));
        }
    }
    out
}

fn shard(day: u64, s: u64) -> ShardId {
    ShardId::new(format!(
        "shardId-{:020}-{:08x}",
        1_793_491_200_000 + day * 86_400_000 + s,
        0xab00 + day * 16 + s
    ))
}

/// Writes one stream file: `rows` rows of `shard` on `day`, starting at sequence `first`.
fn write_file(dir: &Path, table: &TableName, day: u64, s: u64, rows: u64, seed: u64) -> u64 {
    let sid = shard(day, s);
    let dt = dynamo_archiver::archive::layout::dt_of_millis(START_MS + day as i64 * DAY_MS);
    let first = SequenceNumber::parse(&format!("{:021}", 1)).expect("digits");
    let key = stream_file_key(table, &dt, &sid, &first);
    let path = dir.join(&key);
    std::fs::create_dir_all(path.parent().expect("folder")).expect("mkdir");
    let mut w = SpoolWriter::create(&path).expect("create");
    let arn =
        StreamArn::new("arn:aws:dynamodb:us-east-1:1:table/bench/stream/2026-11-01T00:00:00.000");
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut batch = Vec::with_capacity(ROWS_PER_GROUP);
    for i in 0..rows {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let k = rng % KEYS;
        let version = rng % 50 + 1;
        let (name, new, old) = match rng % 10 {
            0..=2 => ("INSERT", Some(item(k, 1)), None),
            3..=8 => ("MODIFY", Some(item(k, version + 1)), Some(item(k, version))),
            _ => ("REMOVE", None, Some(item(k, version))),
        };
        batch.push(ChangeRecord {
            event_id: format!("{seed:04}-{i:08}"),
            event_name: name.into(),
            event_time_ms: START_MS + day as i64 * DAY_MS + (i as i64 * DAY_MS) / rows as i64,
            table_name: table.clone(),
            stream_arn: Some(arn.clone()),
            shard_id: Some(sid.clone()),
            sequence_number: Some(SequenceNumber::parse(&format!("{:021}", i + 1)).expect("seq")),
            keys: format!(r#"{{"userid":{{"N":"{k}"}}}}"#),
            new_image: new,
            old_image: old,
            size_bytes: Some(1200),
            stream_view_type: Some("NEW_AND_OLD_IMAGES".into()),
            user_identity: None,
            quarantine: None,
        });
        if batch.len() == ROWS_PER_GROUP {
            w.write(&batch, START_MS).expect("write");
            batch.clear();
        }
    }
    w.write(&batch, START_MS).expect("write");
    let parent = if day == 0 {
        String::new()
    } else {
        shard(day - 1, s).to_string()
    };
    let f = w
        .finish(vec![
            (meta::TABLE.into(), table.to_string()),
            (meta::SHARD_ID.into(), sid.to_string()),
            (meta::PARENT_SHARD_ID.into(), parent),
            (meta::RECORD_COUNT.into(), rows.to_string()),
        ])
        .expect("finish");
    f.size_bytes
}

fn generate(dir: &Path, rows: u64) -> u64 {
    let table = TableName::new("bench");
    let files = DAYS * SHARDS_PER_DAY;
    let per_file = rows / files;
    let bytes = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| {
        for part in 0..2 {
            let (table, bytes) = (&table, &bytes);
            scope.spawn(move || {
                for f in (part..files).step_by(2) {
                    let n = write_file(
                        dir,
                        table,
                        f / SHARDS_PER_DAY,
                        f % SHARDS_PER_DAY,
                        per_file,
                        f,
                    );
                    bytes.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    bytes.into_inner()
}

fn main() {
    let mut rows = 1_000_000u64;
    let mut sample: Option<String> = None;
    let mut keep: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rows" => rows = args.next().and_then(|n| n.parse().ok()).expect("--rows N"),
            "--sample" => sample = Some(args.next().expect("--sample N")),
            "--keep" => keep = Some(PathBuf::from(args.next().expect("--keep DIR"))),
            _ => {}
        }
    }
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = keep.unwrap_or_else(|| temp.path().to_owned());
    let started = Instant::now();
    let bytes = generate(&dir, rows);
    println!(
        "generated {rows} rows in {} files ({:.0} MB of Parquet) in {:.1} s",
        DAYS * SHARDS_PER_DAY,
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    // GNU time, where installed, adds the run's CPU time and peak RSS.
    let gnu_time = Path::new("/usr/bin/time").exists();
    let mut runs: Vec<(f64, Option<String>)> = Vec::new();
    let mut sql = String::new();
    for _ in 0..3 {
        let bin = env!("CARGO_BIN_EXE_dynamo-archiver");
        let mut cmd = if gnu_time {
            let mut c = std::process::Command::new("/usr/bin/time");
            c.args(["-f", "cpu %U s user + %S s sys, peak RSS %M KiB", bin]);
            c
        } else {
            std::process::Command::new(bin)
        };
        cmd.args([
            "schema",
            "--infer",
            "--dialect",
            "duckdb",
            "--table",
            "bench",
            "--archive",
        ])
        .arg(&dir)
        .args(["--log-format", "text"]);
        if let Some(s) = &sample {
            cmd.args(["--sample", s]);
        }
        let started = Instant::now();
        let out = cmd.output().expect("runs the archiver");
        let wall = started.elapsed().as_secs_f64();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        runs.push((
            wall,
            gnu_time.then(|| stderr.lines().last().unwrap_or("").to_owned()),
        ));
        sql = String::from_utf8_lossy(&out.stdout).into_owned();
    }
    let about = sql
        .lines()
        .find(|l| l.starts_with("-- Inferred by"))
        .unwrap_or("(no sample line)");
    println!("{about}");
    println!(
        "schema --infer: {} typed columns",
        sql.lines().filter(|l| l.starts_with("--   \"")).count()
    );
    for (wall, usage) in &runs {
        println!(
            "  run: {wall:.2} s wall clock; {}",
            usage.as_deref().unwrap_or("(no /usr/bin/time)")
        );
    }
    let mut walls: Vec<f64> = runs.iter().map(|r| r.0).collect();
    walls.sort_by(f64::total_cmp);
    println!("  median {:.2} s", walls[1]);
}
