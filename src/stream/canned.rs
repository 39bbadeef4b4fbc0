//! An HTTP client for the SDK that answers from a script instead of the network: benchmarks use
//! it to time the SDK's and the archiver's decoding without a server, and unit tests to put exact
//! bodies (a 500, then a page) in front of the real SDK.

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use std::sync::{Arc, Mutex};

/// Answers calls in turn from `responses` (status, body); once one is left, it answers every
/// later call.
#[derive(Debug, Clone)]
pub struct CannedClient {
    responses: Arc<Mutex<Vec<(u16, bytes::Bytes)>>>,
}

impl CannedClient {
    pub fn new(responses: Vec<(u16, bytes::Bytes)>) -> Self {
        assert!(!responses.is_empty(), "a canned client needs a response");
        Self {
            responses: Arc::new(Mutex::new(responses.into_iter().rev().collect())),
        }
    }

    /// Answers every call with `200` and `body`.
    pub fn always(body: impl Into<bytes::Bytes>) -> Self {
        Self::new(vec![(200, body.into())])
    }

    /// A DynamoDB Streams client on this script (no credentials lookup, no network).
    pub fn streams_client(&self) -> aws_sdk_dynamodbstreams::Client {
        use aws_sdk_dynamodbstreams::config::{BehaviorVersion, Credentials, Region};
        let config = aws_sdk_dynamodbstreams::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("canned", "canned", None, None, "canned"))
            .endpoint_url("http://127.0.0.1:1")
            .http_client(self.clone())
            .build();
        aws_sdk_dynamodbstreams::Client::from_conf(config)
    }
}

impl HttpConnector for CannedClient {
    fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
        let (status, body) = {
            // A poisoned lock means a test already panicked; its message is the one to read.
            let mut script = self.responses.lock().expect("canned script lock");
            if script.len() > 1 {
                script.pop().expect("more than one left")
            } else {
                script[0].clone()
            }
        };
        HttpConnectorFuture::ready(Ok(HttpResponse::new(
            status.try_into().expect("a valid status"),
            SdkBody::from(body),
        )))
    }
}

impl HttpClient for CannedClient {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}
