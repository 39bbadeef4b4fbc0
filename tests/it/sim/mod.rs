//! The project's own servers, for what the emulators cannot do: a fault-injecting DynamoDB
//! Streams server ([`streams`]), a fault-injecting Firehose endpoint ([`firehose`]), a proxy that
//! refuses, drops, holds, black-holes or delays requests to S3 or DynamoDB Local ([`proxy`]), a
//! TCP proxy that stalls everything ([`stall`]), and the HTTP message reader they share
//! ([`wire`]). Each is seeded and deterministic (faults by script first, then by rate) and is
//! spoken to by the real SDK.

pub mod firehose;
pub mod proxy;
pub mod stall;
pub mod streams;
pub mod wire;
