//! Reading DynamoDB Streams: typed calls ([`api`]) and the per-shard reader task ([`reader`]).

pub mod api;
/// A scripted HTTP client for the SDK: unit tests, and benches with `--features test-util`.
#[cfg(any(test, feature = "test-util"))]
pub mod canned;
pub mod reader;
pub mod repair;
