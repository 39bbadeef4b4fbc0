//! The S3 sink against moto: a file above the single-PUT size goes up as a multipart upload with
//! per-part SHA-256 checksums and SSE-KMS, lands byte for byte, and a second publish of the same
//! name is refused by the conditional write and reported as already there.

use crate::support::*;
use dynamo_archiver::archive::s3::{S3Sink, PART_SIZE_BYTES};
use dynamo_archiver::archive::{ArchiveSink, Published};
use dynamo_archiver::encode::parquet::SpooledFile;
use sha2::{Digest, Sha256};

fn spool(dir: &std::path::Path, name: &str, len: usize, seed: u8) -> SpooledFile {
    // Incompressible-looking bytes, different per seed.
    let body: Vec<u8> = (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, &body).unwrap();
    SpooledFile {
        path,
        sha256: Sha256::digest(&body).into(),
        size_bytes: len as u64,
        rows: 1,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn multipart_upload_is_create_only_and_checksummed() {
    let stack = Stack::start_with_s3().await;
    let s3 = stack.s3.clone().unwrap();
    stack.create_bucket("big-archive").await;
    let sink = ArchiveSink::S3(S3Sink::new(
        s3.clone(),
        "big-archive".into(),
        "prod".into(),
        Some("alias/archive".into()),
    ));
    sink.check_writable().await.unwrap();

    let len = (PART_SIZE_BYTES + (3 << 20)) as usize; // two parts, the last one short
    let first = spool(stack.dir.path(), "a", len, 1);
    let key = "users/dt=2026-11-21/shardId-1_1_99.parquet";
    assert_eq!(sink.publish(key, &first).await.unwrap(), Published::Created);

    let got = s3
        .get_object()
        .bucket("big-archive")
        .key(format!("prod/{key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.server_side_encryption().map(|s| s.as_str()),
        Some("aws:kms"),
        "SSE-KMS requested on the upload"
    );
    let body = got.body.collect().await.unwrap().into_bytes();
    assert_eq!(body.len(), len);
    assert_eq!(
        <[u8; 32]>::from(Sha256::digest(&body)),
        first.sha256,
        "lands byte for byte"
    );

    // Same name again, other bytes: refused, and the stored object's hash is reported.
    let second = spool(stack.dir.path(), "b", len, 2);
    assert_eq!(
        sink.publish(key, &second).await.unwrap(),
        Published::AlreadyExisted {
            sha256: first.sha256
        }
    );
    let again = s3
        .get_object()
        .bucket("big-archive")
        .key(format!("prod/{key}"))
        .send()
        .await
        .unwrap();
    let body = again.body.collect().await.unwrap().into_bytes();
    assert_eq!(
        <[u8; 32]>::from(Sha256::digest(&body)),
        first.sha256,
        "never overwritten"
    );
    assert_eq!(sink.stored_sha256(key).await.unwrap(), first.sha256);
    assert_eq!(
        sink.list("users/dt=2026-11-21/shardId-1_").await.unwrap(),
        vec![key.to_owned()]
    );

    // No multipart upload is left open.
    assert_eq!(
        open_uploads(&s3, "big-archive").await,
        0,
        "abandoned uploads are aborted"
    );
}

#[test]
fn schema_command_prints_ddl_and_view() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dynamo-archiver"))
        .args([
            "schema",
            "--table",
            "users",
            "--archive",
            "s3://my-archive/prod",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("CREATE EXTERNAL TABLE IF NOT EXISTS `users_changes`"),
        "{text}"
    );
    assert!(
        text.contains("LOCATION 's3://my-archive/prod/users/'"),
        "{text}"
    );
    assert!(text.contains("'projection.dt.type' = 'date'"), "{text}");
    assert!(
        text.contains("CREATE OR REPLACE VIEW \"users_changes\""),
        "{text}"
    );
    assert!(
        text.contains("new_image            string     null"),
        "{text}"
    );
}
