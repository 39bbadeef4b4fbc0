//! Reading DynamoDB Streams: typed calls ([`api`]) and the per-shard reader task ([`reader`]).

pub mod api;
pub mod canned;
pub mod reader;
pub mod repair;
