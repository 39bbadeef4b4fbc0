//! Integration tests: real servers on 127.0.0.1 and the archiver as a real process.

mod support;

mod analyst;
mod backfill;
mod bad_input;
mod crash;
mod exactly_once;
mod faults;
mod fidelity;
mod firehose;
mod gaps;
mod import_export;
mod latest;
mod leases_cmd;
mod operate;
mod permissions;
mod pressure;
mod quarantine;
mod restore;
mod s3_sink;
mod sim;
mod snapshot;
mod soak;
mod stream_archive;
mod verify;
mod views;
mod workers;
