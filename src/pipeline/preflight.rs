//! Before the worker says it is ready, it tries every kind of call it will make, on the resources
//! it will make them on, without leaving anything behind: a missing permission is an exit with
//! status 2 that names the action and the resource, not a crash loop at the first publish (ECS
//! would restart the task forever) nor a worker that runs and archives nothing.
//!
//! | call | probe |
//! |---|---|
//! | DescribeTable | already made at start-up, for each table's stream |
//! | DescribeStream, GetShardIterator, GetRecords | one page of one shard of each stream, at `LATEST` (reads nothing) |
//! | the lease table's Scan, PutItem, UpdateItem, DeleteItem | conditional writes on a key that does not exist, whose condition fails (`LeaseStore::probe_permissions`) |
//! | S3 GetObject (and ListBucket, so that a free key answers 404) | the footer of a key that does not exist |
//! | S3 PutObject with the KMS key | CreateMultipartUpload, then AbortMultipartUpload: an upload is not an object, so Object Lock keeps nothing |
//! | Firehose | DescribeDeliveryStream, at start-up; PutRecordBatch cannot be tried without sending a record, and is denied at the first delivery with the same exit status |
//!
//! Errors other than a denial (throttling, a timeout) are logged and left to the worker's own
//! retries: a probe only ever stops a start on a permission.

use super::error::RunError;
use super::Destination;
use crate::archive::{ArchiveSink, SinkError};
use crate::aws::{denied, is_denied, Clients, Denied};
use crate::leases::LeaseStore;
use crate::stream::api::TableStream;

/// Tries every permission the worker needs (see the module docs).
pub(super) async fn check(
    clients: &Clients,
    streams: &[TableStream],
    leases: &LeaseStore,
    output: &Destination,
) -> Result<(), RunError> {
    for stream in streams {
        check_stream(clients, stream).await?;
    }
    leases.probe_permissions().await.map_err(RunError::Denied)?;
    match output {
        Destination::Archive(store) => check_archive(store).await?,
        Destination::Firehose(firehose) => {
            if let Some(overflow) = firehose.overflow_store() {
                check_archive(overflow).await?;
            }
        }
    }
    Ok(())
}

async fn check_stream(clients: &Clients, stream: &TableStream) -> Result<(), RunError> {
    let arn = stream.arn.as_str();
    let described = clients
        .streams
        .describe_stream()
        .stream_arn(arn)
        .limit(1)
        .send()
        .await;
    let shard = match described {
        Ok(out) => out
            .stream_description()
            .and_then(|d| d.shards().first())
            .and_then(|s| s.shard_id())
            .map(str::to_owned),
        Err(e) if is_denied(&e) => {
            return Err(RunError::Denied(denied("dynamodb:DescribeStream", arn, &e)))
        }
        Err(e) => {
            inconclusive("DescribeStream", &e);
            return Ok(());
        }
    };
    let Some(shard) = shard else {
        return Ok(());
    };
    let iterator = clients
        .streams
        .get_shard_iterator()
        .stream_arn(arn)
        .shard_id(&shard)
        .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::Latest)
        .send()
        .await;
    let iterator = match iterator {
        Ok(out) => out.shard_iterator().map(str::to_owned),
        Err(e) if is_denied(&e) => {
            return Err(RunError::Denied(denied(
                "dynamodb:GetShardIterator",
                arn,
                &e,
            )))
        }
        Err(e) => {
            inconclusive("GetShardIterator", &e);
            return Ok(());
        }
    };
    let Some(iterator) = iterator else {
        return Ok(());
    };
    match clients
        .streams
        .get_records()
        .shard_iterator(iterator)
        .limit(1)
        .send()
        .await
    {
        Err(e) if is_denied(&e) => Err(RunError::Denied(denied("dynamodb:GetRecords", arn, &e))),
        Err(e) => {
            inconclusive("GetRecords", &e);
            Ok(())
        }
        Ok(_) => Ok(()),
    }
}

async fn check_archive(store: &ArchiveSink) -> Result<(), RunError> {
    let key = format!(
        "_preflight/{}-{:016x}.parquet",
        std::process::id(),
        rand::random::<u64>()
    );
    match store.probe(&key).await {
        Ok(_) => {}
        Err(SinkError::AccessDenied { location }) => {
            return Err(RunError::Denied(Denied {
                action: "s3:GetObject (and s3:ListBucket on the bucket)".into(),
                resource: location,
                message: "reading a key of the archive was refused".into(),
            }))
        }
        Err(e) if e.is_retryable() => {
            tracing::warn!("the archive read check was inconclusive: {e}")
        }
        Err(e) => return Err(e.into()),
    }
    match store.probe_write(&key).await {
        Ok(()) => Ok(()),
        Err(SinkError::AccessDenied { location }) => Err(RunError::Denied(Denied {
            action: "s3:PutObject (with kms:GenerateDataKey on --sse-kms-key) and s3:AbortMultipartUpload"
                .into(),
            resource: location,
            message: "starting an upload into the archive was refused".into(),
        })),
        Err(e) if e.is_retryable() => {
            tracing::warn!("the archive write check was inconclusive: {e}");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

fn inconclusive(call: &str, e: &dyn std::fmt::Debug) {
    tracing::warn!("the permission check of {call} was inconclusive (the worker retries it when it runs): {e:?}");
}
