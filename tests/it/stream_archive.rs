//! The worker against DynamoDB Local's stream: completeness, per-key order, restarts, shard
//! rollovers, expired iterators, trimmed data, and the S3 sink on an Object Lock bucket.

use crate::support::*;
use aws_sdk_dynamodb::types::StreamViewType;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn every_record_once_and_in_order() {
    let stack = Stack::start().await;
    stack
        .create_table("orders", "id", Some(StreamViewType::NewAndOldImages))
        .await;
    let (mut archiver, archive) = Archiver::start_local(&stack, "orders");
    let written = workload(&stack, "orders", 500, 10_000, 8).await;
    let total: usize = written.values().map(Vec::len).sum();
    let rows = wait_for_rows(&archive, total, Duration::from_secs(180)).await;
    archiver.stop();
    let rows_after = read_archive(&archive);
    assert_eq!(
        rows.len(),
        rows_after.len(),
        "nothing more written after catching up"
    );
    assert_exactly_once_in_order(&stack, "orders", &rows_after, &written).await;
    // File metadata chains each shard's files.
    let files = archive_files(&archive);
    let mut firsts = 0;
    for f in &files {
        let md = file_metadata(f);
        assert_eq!(md["schema_version"], "1");
        assert_eq!(md["table_name"], "orders");
        if md.contains_key("start_position") {
            firsts += 1;
        } else {
            assert_eq!(md["previous_file_sha256"].len(), 64, "{}", f.display());
        }
    }
    assert_eq!(
        firsts, 1,
        "one shard, one first file; every other file names its predecessor"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_and_restart_lose_and_duplicate_nothing() {
    let stack = Arc::new(Stack::start().await);
    stack
        .create_table("users", "id", Some(StreamViewType::NewAndOldImages))
        .await;
    let archive = stack.dir.path().join("archive");
    let spool = stack.dir.path().join("spool");
    let args = run_args("users", archive.to_str().unwrap(), spool.to_str().unwrap());
    let st = stack.clone();
    let load = tokio::spawn(async move { workload(&st, "users", 200, 4_000, 4).await });
    for round in 0..4 {
        let mut a = Archiver::start(&stack, &args);
        // Let it archive something new in each round, then stop it mid-stream.
        let before = read_archive(&archive).len();
        wait_for_rows(&archive, before + 1, Duration::from_secs(60)).await;
        a.signal("TERM");
        let status = a.wait(Duration::from_secs(25));
        assert!(
            status.success(),
            "round {round}: clean exit after SIGTERM; log:\n{}",
            a.log_text()
        );
    }
    let written = load.await.unwrap();
    let total: usize = written.values().map(Vec::len).sum();
    let mut a = Archiver::start(&stack, &args);
    let _ = wait_for_rows(&archive, total, Duration::from_secs(120)).await;
    a.stop();
    assert_exactly_once_in_order(&stack, "users", &read_archive(&archive), &written).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rollovers_keep_lineage_order() {
    let stack = Arc::new(Stack::start().await);
    stack
        .create_table("events", "id", Some(StreamViewType::NewAndOldImages))
        .await;
    let (archive, written, rollovers) =
        archive_with_rollovers(&stack, "events", 100, 3_000, 4).await;
    let rows = read_archive(&archive);
    assert!(rollovers >= 2, "the workload ran long enough for rollovers");
    let depths = shard_depths(&stack, "events").await;
    assert!(
        depths.len() > rollovers,
        "rollovers created child shards: {depths:?}"
    );
    let shards_with_rows: HashSet<_> = rows.iter().map(|r| r.shard_id.clone().unwrap()).collect();
    assert!(
        shards_with_rows.len() >= 2,
        "records came from several shards"
    );
    assert_exactly_once_in_order(&stack, "events", &rows, &written).await;
    // Every parent that ended has a file marked shard_end.
    let ended: Vec<_> = archive_files(&archive)
        .into_iter()
        .filter(|f| file_metadata(f).get("shard_end").map(String::as_str) == Some("true"))
        .collect();
    assert!(
        ended.len() >= rollovers,
        "each closed shard's last file says shard_end"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_iterators_and_trimmed_data() {
    let stack = Stack::start().await;
    stack
        .create_table("aging", "id", Some(StreamViewType::NewAndOldImages))
        .await;
    let archive = stack.dir.path().join("archive");
    let spool = stack.dir.path().join("spool");
    let args = run_args("aging", archive.to_str().unwrap(), spool.to_str().unwrap());
    let put = |i: u64| {
        let ddb = stack.dynamodb.clone();
        async move {
            ddb.put_item()
                .table_name("aging")
                .item("id", n(i))
                .item("v", n(1))
                .send()
                .await
                .unwrap();
        }
    };
    // 1. Expiry: the reader's iterator expires under it (15 minutes of stream time).
    let mut a = Archiver::start(&stack, &args);
    for i in 0..10 {
        put(i).await;
    }
    wait_for_rows(&archive, 10, Duration::from_secs(60)).await;
    stack.control("dilate 960000");
    for i in 10..20 {
        put(i).await;
    }
    wait_for_rows(&archive, 20, Duration::from_secs(60)).await;
    a.stop();
    assert!(
        a.log_text().contains("iterator expired"),
        "the expiry was seen and handled:\n{}",
        a.log_text()
    );

    // 2. Trim: records written while no worker runs age past 24 hours and are trimmed.
    for i in 20..30 {
        put(i).await;
    }
    stack.control("dilate 90000000");
    for i in 30..40 {
        put(i).await;
    }
    let mut a = Archiver::start(&stack, &args);
    let rows = poll(
        "records written after the trim",
        Duration::from_secs(90),
        || {
            let archive = archive.clone();
            async move {
                let rows = read_archive(&archive);
                let keys: HashSet<u64> = rows.iter().map(|r| key_of(&r.keys)).collect();
                (30..40).all(|k| keys.contains(&k)).then_some(rows)
            }
        },
    )
    .await;
    a.signal("TERM");
    let status = a.wait(Duration::from_secs(25));
    let log = a.log_text();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("RECORDS LOST") || log.contains("RECORDS MAY BE LOST"),
        "the gap is reported loudly:\n{log}"
    );
    let gaps: Vec<_> = archive_files(&archive)
        .into_iter()
        .filter(|f| file_metadata(f).contains_key("gap_after_sequence_number"))
        .collect();
    assert!(
        !gaps.is_empty(),
        "the gap is recorded in the archive's metadata"
    );
    let ids: Vec<_> = rows.iter().map(|r| &r.event_id).collect();
    assert_eq!(
        ids.len(),
        ids.iter().collect::<HashSet<_>>().len(),
        "no duplicates"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_archive_on_an_object_lock_bucket() {
    let stack = Stack::start_with_s3().await;
    stack
        .create_table("ledger", "id", Some(StreamViewType::NewAndOldImages))
        .await;
    let s3 = stack.s3.clone().unwrap();
    s3.create_bucket()
        .bucket("archive")
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    use aws_sdk_s3::types::{
        DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode,
        ObjectLockRule,
    };
    s3.put_object_lock_configuration()
        .bucket("archive")
        .object_lock_configuration(
            ObjectLockConfiguration::builder()
                .object_lock_enabled(ObjectLockEnabled::Enabled)
                .rule(
                    ObjectLockRule::builder()
                        .default_retention(
                            DefaultRetention::builder()
                                .mode(ObjectLockRetentionMode::Compliance)
                                .years(7)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    for i in 0..300u64 {
        stack
            .dynamodb
            .put_item()
            .table_name("ledger")
            .item("id", n(i))
            .item("amount", n(format!("{i}.01")))
            .send()
            .await
            .unwrap();
    }
    let spool = stack.dir.path().join("spool");
    let mut a = Archiver::start(
        &stack,
        &run_args("ledger", "s3://archive/prod", spool.to_str().unwrap()),
    );
    let rows = poll("300 rows in S3", Duration::from_secs(90), || {
        let s3 = s3.clone();
        async move {
            let rows = read_s3_archive(&s3, "archive", "prod/ledger/").await?;
            (rows.len() >= 300).then_some(rows)
        }
    })
    .await;
    a.stop();
    assert_eq!(rows.len(), 300);
    let keys: HashSet<u64> = rows.iter().map(|r| key_of(&r.keys)).collect();
    assert_eq!(keys.len(), 300);
    let first = &rows[0].file;
    assert!(first.starts_with("prod/ledger/dt="), "Hive layout: {first}");
    let head = s3
        .head_object()
        .bucket("archive")
        .key(first)
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.metadata().unwrap()["sha256"].len(),
        64,
        "the file's SHA-256 is in its metadata"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_only_stream_works_with_a_warning() {
    let stack = Stack::start().await;
    stack
        .create_table("thin", "id", Some(StreamViewType::KeysOnly))
        .await;
    for i in 0..5u64 {
        stack
            .dynamodb
            .put_item()
            .table_name("thin")
            .item("id", n(i))
            .item("secret", s("x"))
            .send()
            .await
            .unwrap();
    }
    let (mut a, archive) = Archiver::start_local(&stack, "thin");
    let rows = wait_for_rows(&archive, 5, Duration::from_secs(60)).await;
    a.stop();
    let log = a.log_text();
    assert!(
        log.contains("not NEW_AND_OLD_IMAGES") && log.contains("every item image"),
        "the warning says what the archive lacks:\n{log}"
    );
    for r in &rows {
        assert_eq!(r.new_image, None);
        assert_eq!(r.old_image, None);
        assert!(r.keys.starts_with(r#"{"id":{"N":""#));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_open_shard_is_not_mistaken_for_a_gone_one() {
    // DynamoDB Local answers TrimmedDataAccessException at TRIM_HORIZON on a new, empty shard.
    // The reader must keep polling it, not end it: records written later must be archived.
    let stack = Stack::start().await;
    stack
        .create_table("quiet", "id", Some(StreamViewType::NewAndOldImages))
        .await;
    let (mut a, archive) = Archiver::start_local(&stack, "quiet");
    let store = dynamo_archiver::leases::LeaseStore::new(
        stack.dynamodb.clone(),
        "dynamo-archiver-leases".into(),
        String::new(),
    );
    poll("the shard's lease", Duration::from_secs(30), || {
        let store = store.clone();
        async move { store.all().await.ok().filter(|l| !l.is_empty()).map(|_| ()) }
    })
    .await;
    // Several idle polls go by on the empty shard before the first write.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for i in 0..5u64 {
        stack
            .dynamodb
            .put_item()
            .table_name("quiet")
            .item("id", n(i))
            .send()
            .await
            .unwrap();
    }
    wait_for_rows(&archive, 5, Duration::from_secs(60)).await;
    a.stop();
    assert!(
        !a.log_text().contains("RECORDS MAY BE LOST"),
        "{}",
        a.log_text()
    );
}
