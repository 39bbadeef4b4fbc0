//! The analyst's view: DuckDB reads the archive directory with Hive partitioning and answers a
//! count and a JSON-extract query correctly.

use crate::support::*;
use aws_sdk_dynamodb::types::StreamViewType;
use std::time::Duration;

pub(crate) fn duckdb(sql: &str) -> String {
    let python = repo().join(".local/venv/bin/python");
    let script = "import duckdb, json, sys\nrows = duckdb.connect().execute(sys.argv[1]).fetchall()\nprint(json.dumps([list(map(str, r)) for r in rows]))";
    let out = std::process::Command::new(python)
        .args(["-c", script, sql])
        .output()
        .expect("the test venv's python (scripts/local-stack install)");
    assert!(
        out.status.success(),
        "duckdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn duckdb_reads_the_archive() {
    let stack = Stack::start().await;
    stack
        .create_table("people", "id", Some(StreamViewType::NewAndOldImages))
        .await;
    for i in 0..50u64 {
        stack
            .dynamodb
            .put_item()
            .table_name("people")
            .item("id", n(i))
            .item("email", s(format!("user{i}@example.com")))
            .item(
                "balance",
                n(format!("1234567890123456789012345678901234567{}", i % 10)),
            )
            .send()
            .await
            .unwrap();
    }
    for i in 0..10u64 {
        stack
            .dynamodb
            .update_item()
            .table_name("people")
            .key("id", n(i))
            .update_expression("SET email = :e")
            .expression_attribute_values(":e", s(format!("changed{i}@example.org")))
            .send()
            .await
            .unwrap();
    }
    for i in 40..45u64 {
        stack
            .dynamodb
            .delete_item()
            .table_name("people")
            .key("id", n(i))
            .send()
            .await
            .unwrap();
    }
    let (mut a, archive) = Archiver::start_local(&stack, "people");
    wait_for_rows(&archive, 65, Duration::from_secs(60)).await;
    a.stop();

    let view = format!(
        "read_parquet('{}/people/dt=*/*.parquet', hive_partitioning = true)",
        archive.display()
    );
    let counts = duckdb(&format!(
        "SELECT event_name, count(*) FROM {view} GROUP BY 1 ORDER BY 1"
    ));
    assert_eq!(
        counts,
        r#"[["INSERT", "50"], ["MODIFY", "10"], ["REMOVE", "5"]]"#
    );

    let today = dynamo_archiver::archive::layout::dt_of_millis(
        (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64,
    );
    let by_dt = duckdb(&format!("SELECT dt, count(*) FROM {view} GROUP BY 1"));
    assert_eq!(
        by_dt,
        format!(r#"[["{today}", "65"]]"#),
        "dt is a Hive partition column"
    );

    let emails = duckdb(&format!(
        "SELECT json_extract_string(old_image, '$.email.S'), json_extract_string(new_image, '$.email.S'), \
         json_extract_string(new_image, '$.balance.N') \
         FROM {view} WHERE event_name = 'MODIFY' AND json_extract_string(keys, '$.id.N') = '3'"
    ));
    assert_eq!(
        emails,
        r#"[["user3@example.com", "changed3@example.org", "12345678901234567890123456789012345673"]]"#,
        "JSON extraction sees the change, and the 38-digit number is intact"
    );
}
