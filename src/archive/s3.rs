//! S3 as the archive. Small files go up in one PutObject; larger ones in a multipart upload whose
//! parts are read from the spool file one at a time, so memory stays bounded whatever the file's
//! size. Every request carries a SHA-256 checksum (S3 verifies it, and buckets with Object Lock
//! refuse writes without one), and the final write is conditional (`If-None-Match: *`), so an
//! existing object is never overwritten.

use super::{Published, SinkError};
use crate::encode::parquet::SpooledFile;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ServerSideEncryption,
};
use base64::Engine;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// S3's smallest part (except the last) is 5 MiB and an upload has at most 10,000 parts:
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html>. 16 MiB parts allow files
/// up to 156 GiB, far above the largest `--flush-size`.
pub const MIN_PART_SIZE_BYTES: u64 = 5 << 20;
pub const PART_SIZE_BYTES: u64 = 16 << 20;
/// Files up to this size go up in one PutObject (fewer requests, same checksum guarantees).
pub const SINGLE_PUT_MAX_BYTES: u64 = PART_SIZE_BYTES;

/// The part size, which is also the largest single PutObject. Test hook:
/// `ARCHIVER_TEST_PART_SIZE_BYTES` lowers it (to no less than S3's 5 MiB) so that tests make
/// multipart uploads of a few MiB; inert unless set.
fn part_size() -> u64 {
    static SIZE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SIZE.get_or_init(|| {
        std::env::var("ARCHIVER_TEST_PART_SIZE_BYTES")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(PART_SIZE_BYTES, |n| {
                n.clamp(MIN_PART_SIZE_BYTES, PART_SIZE_BYTES)
            })
    })
}
/// User metadata key holding the file's SHA-256 (hex), so a later writer that finds the object
/// already there learns its hash without downloading it.
pub const SHA256_METADATA_KEY: &str = "sha256";

#[derive(Debug, Clone)]
pub struct S3Sink {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    sse_kms_key: Option<String>,
}

impl S3Sink {
    pub fn new(
        client: aws_sdk_s3::Client,
        bucket: String,
        prefix: String,
        sse_kms_key: Option<String>,
    ) -> Self {
        Self {
            client,
            bucket,
            prefix,
            sse_kms_key,
        }
    }

    fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    fn location(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.full_key(key))
    }

    pub async fn check_writable(&self) -> Result<(), SinkError> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.classify("HeadBucket", &format!("s3://{}", self.bucket), e)),
        }
    }

    pub async fn publish(&self, key: &str, file: &SpooledFile) -> Result<Published, SinkError> {
        let result = if file.size_bytes <= part_size().min(SINGLE_PUT_MAX_BYTES) {
            self.put_single(key, file).await
        } else {
            self.put_multipart(key, file).await
        };
        match result {
            Err(PutError::Exists) => self.existing(key).await,
            Err(PutError::Sink(e)) => Err(e),
            Ok(()) => Ok(Published::Created),
        }
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, SinkError> {
        let full = self.full_key(prefix);
        let strip = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&full)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| self.classify("ListObjectsV2", &self.location(prefix), e))?;
            for obj in page.contents() {
                if let Some(k) = obj.key() {
                    out.push(k[strip..].to_owned());
                }
            }
        }
        Ok(out)
    }

    async fn existing(&self, key: &str) -> Result<Published, SinkError> {
        Ok(Published::AlreadyExisted {
            sha256: self.stored_sha256(key).await?,
        })
    }

    pub async fn stored_sha256(&self, key: &str) -> Result<[u8; 32], SinkError> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(|e| self.classify("HeadObject", &self.location(key), e))?;
        let sha = head
            .metadata()
            .and_then(|m| m.get(SHA256_METADATA_KEY))
            .and_then(|h| hex::decode(h).ok())
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
            .ok_or_else(|| SinkError::S3 {
                operation: "HeadObject",
                location: self.location(key),
                message: "the object exists but was not written by dynamo-archiver (no sha256 metadata); move it away".into(),
                retryable: false,
            })?;
        Ok(sha)
    }

    /// The whole object, or only its last `suffix` bytes.
    pub async fn read(&self, key: &str, suffix: Option<u64>) -> Result<Vec<u8>, SinkError> {
        Ok(self.read_object(key, suffix).await?.0)
    }

    /// `len` bytes of the object from byte `start` (one ranged GetObject).
    pub async fn read_range(&self, key: &str, start: u64, len: u64) -> Result<Vec<u8>, SinkError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .range(format!("bytes={start}-{}", start + len - 1))
            .send()
            .await
            .map_err(|e| self.classify("GetObject", &self.location(key), e))?;
        let body = out.body.collect().await.map_err(|e| SinkError::Io {
            location: self.location(key),
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(body.into_bytes().to_vec())
    }

    /// The object (or its last `suffix` bytes) and the SHA-256 recorded in its metadata when it
    /// was written, in one GetObject.
    pub async fn read_object(
        &self,
        key: &str,
        suffix: Option<u64>,
    ) -> Result<(Vec<u8>, Option<[u8; 32]>), SinkError> {
        self.read_object_if_exists(key, suffix)
            .await?
            .ok_or_else(|| SinkError::S3 {
                operation: "GetObject",
                location: self.location(key),
                message: "NoSuchKey: the object does not exist".into(),
                retryable: false,
            })
    }

    /// [`Self::read_object`], with `None` when there is no such object (404 `NoSuchKey`, which S3
    /// answers only to a caller with `s3:ListBucket`; without it a missing key is a 403).
    pub async fn read_object_if_exists(
        &self,
        key: &str,
        suffix: Option<u64>,
    ) -> Result<Option<(Vec<u8>, Option<[u8; 32]>)>, SinkError> {
        let mut req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key));
        if let Some(n) = suffix {
            req = req.range(format!("bytes=-{n}"));
        }
        let out = match req.send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) if status(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(self.classify("GetObject", &self.location(key), e)),
        };
        let recorded = out
            .metadata()
            .and_then(|m| m.get(SHA256_METADATA_KEY))
            .and_then(|h| hex::decode(h).ok())
            .and_then(|v| <[u8; 32]>::try_from(v).ok());
        let body = out.body.collect().await.map_err(|e| SinkError::Io {
            location: self.location(key),
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(Some((body.into_bytes().to_vec(), recorded)))
    }

    async fn put_single(&self, key: &str, file: &SpooledFile) -> Result<(), PutError> {
        let body = ByteStream::from_path(&file.path)
            .await
            .map_err(|e| self.io_error(key, e))?;
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .body(body)
            .content_length(file.size_bytes as i64)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(b64(&file.sha256))
            .if_none_match("*")
            .metadata(SHA256_METADATA_KEY, hex::encode(file.sha256));
        if let Some(k) = &self.sse_kms_key {
            req = req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(k);
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if status(&e) == Some(412) => Err(PutError::Exists),
            Err(e) => Err(PutError::Sink(self.classify(
                "PutObject",
                &self.location(key),
                e,
            ))),
        }
    }

    /// Starts a multipart upload under `key` as a real upload would, and aborts it.
    pub async fn probe_write(&self, key: &str) -> Result<(), SinkError> {
        let full = self.full_key(key);
        let mut create = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&full)
            .checksum_algorithm(ChecksumAlgorithm::Sha256);
        if let Some(k) = &self.sse_kms_key {
            create = create
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(k);
        }
        let upload = create
            .send()
            .await
            .map_err(|e| self.classify("CreateMultipartUpload", &self.location(key), e))?;
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&full)
            .upload_id(upload.upload_id().unwrap_or_default())
            .send()
            .await
            .map_err(|e| self.classify("AbortMultipartUpload", &self.location(key), e))?;
        Ok(())
    }

    async fn put_multipart(&self, key: &str, file: &SpooledFile) -> Result<(), PutError> {
        let full = self.full_key(key);
        let mut create = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&full)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .metadata(SHA256_METADATA_KEY, hex::encode(file.sha256));
        if let Some(k) = &self.sse_kms_key {
            create = create
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(k);
        }
        let upload = create.send().await.map_err(|e| {
            PutError::Sink(self.classify("CreateMultipartUpload", &self.location(key), e))
        })?;
        let upload_id = upload.upload_id().unwrap_or_default().to_owned();
        let result = self.upload_parts(key, &full, &upload_id, file).await;
        if result.is_err() {
            // Parts of an abandoned upload cost storage until aborted; a bucket lifecycle rule
            // (AbortIncompleteMultipartUpload) is the backstop, this is the first line.
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&full)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
    }

    async fn upload_parts(
        &self,
        key: &str,
        full: &str,
        upload_id: &str,
        file: &SpooledFile,
    ) -> Result<(), PutError> {
        let mut parts = Vec::new();
        let mut offset = 0u64;
        let mut number = 1i32;
        while offset < file.size_bytes {
            let len = part_size().min(file.size_bytes - offset);
            let sha = part_sha256(&file.path, offset, len)
                .await
                .map_err(|e| self.io_error(key, e))?;
            let body = ByteStream::read_from()
                .path(&file.path)
                .offset(offset)
                .length(Length::Exact(len))
                .build()
                .await
                .map_err(|e| self.io_error(key, e))?;
            let out = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(full)
                .upload_id(upload_id)
                .part_number(number)
                .body(body)
                .content_length(len as i64)
                .checksum_algorithm(ChecksumAlgorithm::Sha256)
                .checksum_sha256(b64(&sha))
                .send()
                .await
                .map_err(|e| PutError::Sink(self.classify("UploadPart", &self.location(key), e)))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag().map(str::to_owned))
                    .checksum_sha256(b64(&sha))
                    .build(),
            );
            offset += len;
            number += 1;
        }
        let done = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(full)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .if_none_match("*")
            .send()
            .await;
        match done {
            Ok(_) => Ok(()),
            Err(e) if status(&e) == Some(412) => Err(PutError::Exists),
            Err(e) => Err(PutError::Sink(self.classify(
                "CompleteMultipartUpload",
                &self.location(key),
                e,
            ))),
        }
    }

    fn io_error(&self, key: &str, e: impl std::fmt::Display) -> PutError {
        PutError::Sink(SinkError::Io {
            location: self.location(key),
            source: std::io::Error::other(e.to_string()),
        })
    }

    fn classify<E, R>(
        &self,
        operation: &'static str,
        location: &str,
        e: SdkError<E, R>,
    ) -> SinkError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + HasStatus,
    {
        let code = e.code().map(str::to_owned);
        let http = match &e {
            SdkError::ServiceError(s) => Some(s.raw().status_code()),
            SdkError::ResponseError(r) => Some(r.raw().status_code()),
            _ => None,
        };
        if code.as_deref() == Some("NoSuchBucket")
            || (operation == "HeadBucket" && http == Some(404))
        {
            return SinkError::NoSuchBucket {
                bucket: self.bucket.clone(),
            };
        }
        if http == Some(403) || code.as_deref() == Some("AccessDenied") {
            return SinkError::AccessDenied {
                location: location.to_owned(),
            };
        }
        let retryable = match &e {
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => true,
            _ => {
                // 409 ConditionalRequestConflict: a concurrent conditional write on the same key;
                // AWS says to retry (the retry then sees 412 if the other write won).
                http.is_some_and(|s| s >= 500 || s == 429 || s == 409)
                    || matches!(
                        code.as_deref(),
                        Some(
                            "SlowDown"
                                | "RequestTimeout"
                                | "InternalError"
                                | "ServiceUnavailable"
                                | "ConditionalRequestConflict"
                        )
                    )
            }
        };
        SinkError::S3 {
            operation,
            location: location.to_owned(),
            message: DisplayErrorContext(&e).to_string(),
            retryable,
        }
    }
}

/// Reads an HTTP status from the SDK's raw response type.
pub trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_smithy_runtime_api::http::Response {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

enum PutError {
    /// The conditional write found an object under the name.
    Exists,
    Sink(SinkError),
}

fn status<E>(e: &SdkError<E, aws_smithy_runtime_api::http::Response>) -> Option<u16> {
    match e {
        SdkError::ServiceError(s) => Some(s.raw().status().as_u16()),
        _ => None,
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn part_sha256(path: &Path, offset: u64, len: u64) -> std::io::Result<[u8; 32]> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::Seek;
        let mut f = std::fs::File::open(&path)?;
        f.seek(std::io::SeekFrom::Start(offset))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 << 10];
        let mut left = len;
        while left > 0 {
            let want = buf.len().min(left as usize);
            let n = f.read(&mut buf[..want])?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "spool file shorter than expected",
                ));
            }
            hasher.update(&buf[..n]);
            left -= n as u64;
        }
        Ok(hasher.finalize().into())
    })
    .await
    .expect("hash task does not panic")
}
