//! The project's own servers, for what the emulators cannot do: a fault-injecting DynamoDB
//! Streams server ([`streams`]), a fault-injecting Firehose endpoint ([`firehose`]), a proxy that
//! refuses, drops, holds, black-holes or delays requests to S3 or DynamoDB Local ([`proxy`]), a
//! TCP proxy that stalls everything ([`stall`]), the HTTP message reader they share
//! ([`wire`]), and a proxy that counts, throttles and half-processes a restore's writes
//! ([`write_counter`]). Each is seeded and deterministic (faults by script first, then by rate) and is
//! spoken to by the real SDK.

pub mod firehose;
pub mod proxy;
pub mod stall;
pub mod streams;
pub mod wire;
pub mod write_counter;
