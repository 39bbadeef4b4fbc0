//! SDK clients, built once from the standard AWS chain (environment, profile, ECS task role) and
//! the standard endpoint variables (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`).

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use std::time::Duration;

/// All clients the archiver uses, sharing one credentials chain and HTTP connection pool.
#[derive(Clone, Debug)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub streams: aws_sdk_dynamodbstreams::Client,
    pub s3: aws_sdk_s3::Client,
    pub firehose: aws_sdk_firehose::Client,
}

/// The longest one attempt of a call may take before it is abandoned and retried: a stalled
/// connection must not stall a shard forever. Uploads get longer (a 16 MiB part on a slow link).
const API_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
const S3_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(120);

pub async fn load() -> Clients {
    let config = aws_config::defaults(BehaviorVersion::latest())
        // The SDK's standard mode: exponential backoff with jitter on throttling and 5xx. The
        // archiver's own loops retry further (forever, until shutdown) on top of it.
        .retry_config(RetryConfig::standard().with_max_attempts(4))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(API_ATTEMPT_TIMEOUT)
                .build(),
        )
        .load()
        .await;
    from_config(&config)
}

pub fn from_config(config: &SdkConfig) -> Clients {
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        // A custom S3 endpoint (moto, MinIO) rarely serves virtual-hosted buckets.
        .force_path_style(custom_s3_endpoint())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(S3_ATTEMPT_TIMEOUT)
                .build(),
        )
        .build();
    Clients {
        dynamodb: aws_sdk_dynamodb::Client::new(config),
        // The Streams client reads through a client that repairs one DynamoDB Local defect
        // (see `stream::repair`); it changes nothing on AWS.
        streams: aws_sdk_dynamodbstreams::Client::from_conf(
            aws_sdk_dynamodbstreams::config::Builder::from(config)
                .http_client(crate::stream::repair::repairing_client())
                .build(),
        ),
        s3: aws_sdk_s3::Client::from_conf(s3_config),
        firehose: aws_sdk_firehose::Client::new(config),
    }
}

fn custom_s3_endpoint() -> bool {
    ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty()))
}
