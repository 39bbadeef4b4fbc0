//! Faults of S3 under the archive: SlowDowns and resets inside multipart uploads, a worker
//! writing through them, and a crash in the middle of an upload.

use crate::support::*;
use aws_sdk_dynamodb::types::StreamViewType;
use std::time::Duration;

/// Incompressible-looking bytes, spooled as a file ready to publish.
fn spooled(dir: &std::path::Path, len: usize) -> dynamo_archiver::encode::parquet::SpooledFile {
    use sha2::Digest;
    let body: Vec<u8> = (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[2])
        .collect();
    let path = dir.join("upload.bin");
    std::fs::write(&path, &body).unwrap();
    dynamo_archiver::encode::parquet::SpooledFile {
        path,
        sha256: sha2::Sha256::digest(&body).into(),
        size_bytes: len as u64,
        rows: 1,
    }
}

/// The multipart fault tests' set-up: moto with an `archive` bucket, the fault proxy in front of
/// it (faults on UploadPart: `script` first, then SlowDowns at `slow_down`), and a spooled file of
/// two parts.
async fn multipart_rig(
    seed: u64,
    script: Vec<crate::sim::proxy::S3Fault>,
    slow_down: f64,
) -> (
    Stack,
    crate::sim::proxy::FaultS3,
    dynamo_archiver::encode::parquet::SpooledFile,
) {
    use crate::sim::proxy::{upload_part, FaultS3, Refusal, S3Faults};
    use dynamo_archiver::archive::s3::PART_SIZE_BYTES;
    let stack = Stack::start_with_s3().await;
    stack.create_bucket("archive").await;
    let proxy = FaultS3::start(
        stack.moto.as_ref().unwrap().port,
        S3Faults {
            seed,
            script,
            slow_down,
            reset_before: 0.0,
            reset_after: 0.0,
            select: upload_part,
            refusal: Refusal::S3SlowDown,
        },
    )
    .await;
    let file = spooled(stack.dir.path(), (PART_SIZE_BYTES + (2 << 20)) as usize);
    (stack, proxy, file)
}

/// A sink writing to the `archive` bucket under `p/`, through `endpoint`.
async fn archive_sink(endpoint: &str) -> dynamo_archiver::archive::ArchiveSink {
    use dynamo_archiver::archive::s3::S3Sink;
    dynamo_archiver::archive::ArchiveSink::S3(S3Sink::new(
        s3_client(endpoint).await,
        "archive".into(),
        "p".into(),
        None,
    ))
}

const MULTIPART_KEY: &str = "t/dt=2026-11-22/shardId-1_1_9.parquet";

/// Checks that the bucket holds exactly one object, `p/<key>`, with the file's bytes; returns the
/// number of multipart uploads still open.
async fn one_whole_object(
    s3: &aws_sdk_s3::Client,
    key: &str,
    file: &dynamo_archiver::encode::parquet::SpooledFile,
) -> usize {
    use sha2::Digest;
    let body = s3_body(s3, "archive", &format!("p/{key}")).await.unwrap();
    assert_eq!(
        <[u8; 32]>::from(sha2::Sha256::digest(&body)),
        file.sha256,
        "lands whole"
    );
    let listed = s3.list_objects_v2().bucket("archive").send().await.unwrap();
    assert_eq!(listed.contents().len(), 1, "one object");
    open_uploads(s3, "archive").await
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_slowdowns_and_resets_inside_a_multipart_upload_land_the_file_once() {
    use crate::sim::proxy::S3Fault;
    use dynamo_archiver::archive::Published;
    // The first part: refused, then written but its answer lost, then cut before it reaches S3;
    // after that, one part in five is slowed down.
    let (stack, proxy, file) = multipart_rig(
        7,
        vec![S3Fault::SlowDown, S3Fault::ResetAfter, S3Fault::ResetBefore],
        0.2,
    )
    .await;
    let sink = archive_sink(&proxy.endpoint()).await;
    let key = MULTIPART_KEY;
    assert_eq!(
        sink.publish_retrying(key, &file).await.unwrap(),
        Published::Created
    );
    let stats = proxy.stats.lock().unwrap().clone();
    assert!(
        stats.slow_downs >= 1 && stats.resets_after == 1 && stats.resets_before == 1,
        "{stats:?}"
    );
    let s3 = stack.s3.as_ref().unwrap();
    assert_eq!(
        one_whole_object(s3, key, &file).await,
        0,
        "no upload left open"
    );
    assert_eq!(
        sink.publish(key, &file).await.unwrap(),
        Published::AlreadyExisted {
            sha256: file.sha256
        }
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_writing_to_s3_through_slowdowns_and_resets_archives_exactly_once() {
    use crate::sim::proxy::{object_writes, FaultS3, Refusal, S3Fault, S3Faults};
    let stack = Stack::start_with_s3().await;
    stack
        .create_table("ledger", "id", Some(StreamViewType::NewAndOldImages))
        .await;
    stack.create_bucket("archive").await;
    let proxy = FaultS3::start(
        stack.moto.as_ref().unwrap().port,
        S3Faults {
            seed: 8,
            // Each kind at least once, on the first writes; then by rate.
            script: vec![S3Fault::ResetAfter, S3Fault::SlowDown, S3Fault::ResetBefore],
            slow_down: 0.2,
            reset_before: 0.1,
            reset_after: 0.15,
            select: object_writes,
            refusal: Refusal::S3SlowDown,
        },
    )
    .await;
    let spool = stack.dir.path().join("spool");
    let endpoint = proxy.endpoint();
    let start = || {
        Archiver::start_env(
            &stack,
            &run_args("ledger", "s3://archive/prod", spool.to_str().unwrap()),
            &[("AWS_ENDPOINT_URL_S3", endpoint.as_str())],
        )
    };
    let s3 = stack.s3.clone().unwrap();
    let on_s3 = |n: usize| {
        let s3 = s3.clone();
        async move {
            poll(
                &format!("{n} records on S3"),
                Duration::from_secs(120),
                || async {
                    read_s3_archive(&s3, "archive", "prod/")
                        .await
                        .filter(|rows| rows.len() >= n)
                },
            )
            .await
        }
    };
    let mut a = start();
    // The first half is written while the first worker runs; it is killed once 100 of its
    // records are on S3 (published, perhaps not checkpointed). The second half, on other keys,
    // is written only after the kill, so the new worker has records of its own to publish
    // through the faults however fast the first half went (on a quick host all 150 can land in
    // the first worker's first file, and then nothing was left to be faulted).
    let mut written = crate::support::workload_on(&stack, "ledger", 0..30, 150, 2, 0).await;
    on_s3(100).await;
    a.signal("KILL");
    a.wait(Duration::from_secs(10));
    let mut b = start();
    written.extend(crate::support::workload_on(&stack, "ledger", 1_000..1_030, 150, 2, 0).await);
    let rows = on_s3(300).await;
    b.stop();
    let stats = proxy.stats.lock().unwrap().clone();
    assert!(
        stats.resets_after >= 1 && stats.slow_downs >= 1,
        "{stats:?}"
    );
    crate::support::assert_exactly_once_in_order(&stack, "ledger", &rows, &written).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_in_the_middle_of_a_multipart_upload_then_a_new_writer_lands_the_file_once() {
    use crate::sim::proxy::S3Fault;
    use dynamo_archiver::archive::Published;
    // The first writer's first part lands, its second hangs: the writer "crashes" there, leaving
    // an upload open with one part in it. The new writer's parts meet SlowDowns.
    let (stack, proxy, file) = multipart_rig(9, vec![S3Fault::Pass, S3Fault::Stall], 0.3).await;
    let endpoint = proxy.endpoint();
    let sink = || archive_sink(&endpoint);
    let key = MULTIPART_KEY;
    let first = sink().await;
    tokio::select! {
        r = first.publish_retrying(key, &file) => panic!("the upload should hang at its second part: {r:?}"),
        _ = poll("the second part held", Duration::from_secs(60), || async {
            (proxy.stats.lock().unwrap().stalls == 1).then_some(())
        }) => {}
    }
    // The crash: the writer's future is dropped mid-upload, nothing aborts the upload.
    drop(first);
    let s3 = stack.s3.as_ref().unwrap();
    assert_eq!(
        open_uploads(s3, "archive").await,
        1,
        "the crashed writer's upload is open"
    );
    assert!(
        s3_body(s3, "archive", &format!("p/{key}")).await.is_none(),
        "nothing visible from a half-done upload"
    );

    let second = sink().await;
    assert_eq!(
        second.publish_retrying(key, &file).await.unwrap(),
        Published::Created
    );
    // The crashed upload stays open until the bucket's AbortIncompleteMultipartUpload rule
    // (infra/) removes it; the new writer's own upload is completed, not left beside it.
    assert_eq!(
        one_whole_object(s3, key, &file).await,
        1,
        "only the crashed upload is open"
    );
}
