//! Reading DynamoDB Streams: typed calls ([`api`]) and the per-shard reader task ([`reader`]).

pub mod api;
/// A scripted HTTP client for the SDK: unit tests, and benches with `--features test-util`.
#[cfg(any(test, feature = "test-util"))]
pub mod canned;
pub mod reader;
pub mod repair;

/// Where a shard with no checkpoint starts (`--start-position`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPosition {
    /// The oldest record still in the shard (up to 24 hours back): nothing is missed.
    TrimHorizon,
    /// Only records written after the worker starts.
    Latest,
}
