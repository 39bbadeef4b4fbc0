//! A repair for one known emulator defect, applied below the SDK.
//!
//! DynamoDB Local sends an empty map inside a stream image as a typeless `{}` where AWS sends
//! `{"M":{}}`. The SDK then fails the whole GetRecords call ("Union did not contain a valid
//! variant"), and the shard would stall on that page forever. This HTTP client wraps the SDK's
//! default one and, for GetRecords responses only, rewrites a typeless `{}` attribute value in
//! `Keys`, `NewImage` or `OldImage` to `{"M":{}}` before the SDK reads the body. The rewrite is
//! exact: an attribute value is never an empty object in valid DynamoDB JSON, so nothing else can
//! match. On AWS the body never contains such a value and passes through unchanged.
//!
//! A body that still cannot be parsed reaches the reader as an `Unparseable` error: loud,
//! counted, retried — never skipped.
//!
//! **A cap on calls in flight.** The client lets at most [`MAX_CALLS_IN_FLIGHT`] Streams calls
//! run at once, whatever the shard count, so the connections it opens (and the read buffers they
//! keep while idle) and the bodies it holds are bounded per worker, not per shard.
//!
//! **A contract beyond the repair.** This client also reads every GetRecords body *whole* into
//! memory (`SdkBody::from(bytes)`), on AWS as on DynamoDB Local. The direct decoder depends on it:
//! `stream::api::DecodeRows` runs before the SDK's deserializer and decodes only a body that is
//! already bytes (`SdkBody::bytes()`); a streamed body would silently fall back to the SDK's
//! slower path (and its page-level failures, which the decoder turns into quarantined records).
//! So this client is installed for every Streams client (`aws::from_config`), not only against
//! the emulator, and the test `stream::api::tests::a_page_is_decoded_directly_into_the_rows_the_sdk_would_make`
//! (and the operate test's `decoder="direct"` count) would fail if it stopped buffering.

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// GetRecords responses rewritten so far (for logs and tests).
pub static REPAIRED_RESPONSES: AtomicU64 = AtomicU64::new(0);

const GET_RECORDS_TARGET: &str = "DynamoDBStreams_20120810.GetRecords";

/// Rewrites typeless empty maps in a GetRecords body; `None` when nothing needed changing.
pub fn repair_get_records_body(body: &[u8]) -> Option<Vec<u8>> {
    // Cheap pre-check: no `{}` at all means nothing to repair (the common case everywhere). A
    // vectorised search: a byte-pair scan of every body was ~5% of the worker's CPU in the soak.
    memchr::memmem::find(body, b"{}")?;
    let mut doc: Value = serde_json::from_slice(body).ok()?;
    let mut changed = false;
    for record in doc
        .get_mut("Records")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(ddb) = record.get_mut("dynamodb").and_then(Value::as_object_mut) {
            for image in ["Keys", "NewImage", "OldImage"] {
                if let Some(Value::Object(attrs)) = ddb.get_mut(image) {
                    for v in attrs.values_mut() {
                        changed |= repair_value(v);
                    }
                }
            }
        }
    }
    changed.then(|| serde_json::to_vec(&doc).expect("a parsed document serialises"))
}

fn repair_value(v: &mut Value) -> bool {
    let Value::Object(obj) = v else { return false };
    if obj.is_empty() {
        *v = serde_json::json!({ "M": {} });
        return true;
    }
    let mut changed = false;
    if let Some(Value::Object(m)) = obj.get_mut("M") {
        for inner in m.values_mut() {
            changed |= repair_value(inner);
        }
    }
    if let Some(Value::Array(l)) = obj.get_mut("L") {
        for inner in l {
            changed |= repair_value(inner);
        }
    }
    changed
}

/// Streams calls one client has in flight at once, whatever the shard count. Each call holds an
/// HTTP connection, and a connection keeps its read buffer (grown to the largest body it read, up
/// to hyper's 400 KiB) for as long as it idles in the pool; GetRecords bodies are held whole while
/// they are decoded. With a call per shard in flight, 256 shards kept about 200 connections and
/// their buffers, and resident memory rose with them through the whole soak. Capped, a worker
/// holds at most this many calls' bodies and about this many connections, so memory for reading
/// is bounded by construction (docs/PERFORMANCE.md has the measurement). 32 calls of 10–50 ms
/// (GetRecords on AWS) serve 600–3,000 pages a second, far above what 256 shards at AWS's five
/// GetRecords per shard per second need while tailing, and a backlog is bound by encoding first.
pub const MAX_CALLS_IN_FLIGHT: usize = 32;

/// The SDK's default HTTPS client (rustls with aws-lc, as the SDK builds it), wrapped.
pub fn repairing_client() -> SharedHttpClient {
    let inner = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .build_https();
    SharedHttpClient::new(RepairingClient {
        inner,
        in_flight: Arc::new(Semaphore::new(MAX_CALLS_IN_FLIGHT)),
    })
}

#[derive(Debug, Clone)]
struct RepairingClient {
    inner: SharedHttpClient,
    /// Shared by every connector this client hands out: the cap is per client (per worker).
    in_flight: Arc<Semaphore>,
}

impl HttpClient for RepairingClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(RepairingConnector {
            inner: self.inner.http_connector(settings, components),
            in_flight: self.in_flight.clone(),
        })
    }
}

#[derive(Debug, Clone)]
struct RepairingConnector {
    inner: SharedHttpConnector,
    in_flight: Arc<Semaphore>,
}

impl HttpConnector for RepairingConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let is_get_records = request.headers().get("x-amz-target") == Some(GET_RECORDS_TARGET);
        let inner = self.inner.clone();
        let in_flight = self.in_flight.clone();
        HttpConnectorFuture::new(async move {
            // Held until a GetRecords body is in memory whole (other answers are small), so the
            // cap bounds bodies as well as connections. The wait counts against the attempt's
            // timeout like a slow network would; the semaphore is never closed.
            let _permit = in_flight
                .acquire_owned()
                .await
                .map_err(|e| ConnectorError::other(e.into(), None))?;
            let response = inner.call(request).await?;
            if !is_get_records {
                return Ok(response);
            }
            if !response.status().is_success() {
                return Ok(response);
            }
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = ByteStream::new(response.into_body())
                .collect()
                .await
                .map_err(|e| ConnectorError::io(e.into()))?
                .into_bytes();
            let mut repaired = match repair_get_records_body(&bytes) {
                Some(fixed) => {
                    let n = REPAIRED_RESPONSES.fetch_add(1, Ordering::Relaxed) + 1;
                    if n == 1 {
                        tracing::warn!("repairing typeless empty maps in GetRecords responses (a DynamoDB Local defect; AWS sends {{\"M\":{{}}}})");
                    }
                    HttpResponse::new(status, SdkBody::from(fixed))
                }
                None => HttpResponse::new(status, SdkBody::from(bytes)),
            };
            for (name, value) in headers.iter() {
                // The body may have changed length; the SDK reads the whole body either way.
                if !name.eq_ignore_ascii_case("content-length") {
                    repaired
                        .headers_mut()
                        .append(name.to_owned(), value.to_owned());
                }
            }
            Ok(repaired)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typeless_empty_maps_become_maps() {
        let body = br#"{"Records":[{"dynamodb":{"Keys":{"id":{"N":"1"}},"NewImage":{"id":{"N":"1"},"e":{},"m":{"M":{"x":{},"y":{"M":{}}}},"l":{"L":[{},{"S":""}]}}}}],"NextShardIterator":"i"}"#;
        let fixed = repair_get_records_body(body).unwrap();
        let v: Value = serde_json::from_slice(&fixed).unwrap();
        let img = &v["Records"][0]["dynamodb"]["NewImage"];
        assert_eq!(img["e"], serde_json::json!({"M": {}}));
        assert_eq!(img["m"]["M"]["x"], serde_json::json!({"M": {}}));
        assert_eq!(img["m"]["M"]["y"], serde_json::json!({"M": {}}));
        assert_eq!(img["l"]["L"][0], serde_json::json!({"M": {}}));
        assert_eq!(img["l"]["L"][1], serde_json::json!({"S": ""}));
        assert_eq!(v["NextShardIterator"], "i");
    }

    #[test]
    fn valid_bodies_pass_untouched() {
        for body in [
            &br#"{"Records":[],"NextShardIterator":"i"}"#[..],
            br#"{"Records":[{"dynamodb":{"NewImage":{"m":{"M":{}}}}}]}"#,
            b"not json {}",
        ] {
            assert_eq!(repair_get_records_body(body), None);
        }
    }
}
