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
    pub sts: aws_sdk_sts::Client,
}

/// The longest one attempt of a call may take before it is abandoned and retried: a stalled
/// connection must not stall a shard forever. Uploads get longer (a 16 MiB part on a slow link).
const API_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
const S3_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(120);
/// GetCallerIdentity, all attempts: a restore does not wait long to learn who runs it.
const STS_TIMEOUT: Duration = Duration::from_secs(10);

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
        // The Streams client reads through a client that repairs one DynamoDB Local defect and
        // reads every GetRecords body whole, which the direct decoder needs (the contract is
        // written in `stream::repair`); the repair changes nothing on AWS.
        streams: aws_sdk_dynamodbstreams::Client::from_conf(
            aws_sdk_dynamodbstreams::config::Builder::from(config)
                .http_client(crate::stream::repair::repairing_client())
                .build(),
        ),
        s3: aws_sdk_s3::Client::from_conf(s3_config),
        firehose: aws_sdk_firehose::Client::new(config),
        // Only asked who the caller is, for an audit record: a short wait, then "unknown".
        sts: aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(config)
                .retry_config(RetryConfig::standard().with_max_attempts(2))
                .timeout_config(
                    TimeoutConfig::builder()
                        .connect_timeout(Duration::from_secs(3))
                        .operation_timeout(STS_TIMEOUT)
                        .build(),
                )
                .build(),
        ),
    }
}

fn custom_s3_endpoint() -> bool {
    ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty()))
}

/// A permission the credentials lack: the AWS action and the resource it was tried on. Exit
/// status 2: only an operator (granting it to the task role) fixes it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("permission denied: {action} on {resource}; grant it to the task role (infra/dynamo-archiver.yaml grants exactly what the worker calls). AWS said: {message}")]
pub struct Denied {
    pub action: String,
    pub resource: String,
    pub message: String,
}

/// Whether an SDK error is an authorisation failure (`AccessDenied`, `AccessDeniedException`,
/// a KMS key the role may not use, or an HTTP 403), as opposed to one that may pass.
pub fn is_denied<E, R>(e: &aws_smithy_runtime_api::client::result::SdkError<E, R>) -> bool
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata,
    R: HasStatusCode,
{
    use aws_smithy_runtime_api::client::result::SdkError;
    let code = match e {
        SdkError::ServiceError(s) => s.err().code(),
        _ => None,
    };
    let status = match e {
        SdkError::ServiceError(s) => Some(s.raw().status()),
        SdkError::ResponseError(r) => Some(r.raw().status()),
        _ => None,
    };
    matches!(
        code,
        Some(
            "AccessDenied"
                | "AccessDeniedException"
                | "UnauthorizedOperation"
                | "KMS.AccessDeniedException"
                | "KMS.DisabledException"
        )
    ) || status == Some(403)
}

/// The HTTP status of a raw response, whatever the SDK's response type.
pub trait HasStatusCode {
    fn status(&self) -> u16;
}

impl HasStatusCode for aws_smithy_runtime_api::http::Response {
    fn status(&self) -> u16 {
        self.status().as_u16()
    }
}

/// A [`Denied`] from an SDK error, with AWS's words.
pub fn denied<E, R>(
    action: &str,
    resource: impl Into<String>,
    e: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> Denied
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    Denied {
        action: action.to_owned(),
        resource: resource.into(),
        message: aws_smithy_types::error::display::DisplayErrorContext(e).to_string(),
    }
}
