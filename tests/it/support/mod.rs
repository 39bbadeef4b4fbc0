//! Test support, one job per file: the local AWS stack ([`stack`]), the archiver run as a real
//! process ([`archiver`]), reading the archive back ([`archive`]), talking to the stack as a test
//! ([`aws`]), the workloads the tests write and how they check the archive against them
//! ([`workload`]), the hostile corpus of item values ([`corpus`]) and the lease table as a test
//! sees it ([`leases`]). Tests `use
//! crate::support::*` and never import one another.
//!
//! Each test starts its own servers on free ports, so tests never share state (DynamoDB Local's
//! time-dilation hook would trim every other test's streams) and can run in parallel.

#![allow(dead_code)]

pub mod archive;
pub mod archiver;
pub mod aws;
pub mod corpus;
pub mod leases;
pub mod stack;
pub mod workload;

pub use archive::*;
pub use archiver::*;
pub use aws::*;
pub use corpus::*;
pub use leases::*;
pub use stack::*;
pub use workload::*;

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn local_bin(name: &str) -> PathBuf {
    let p = repo().join(".local/bin").join(name);
    assert!(
        p.exists(),
        "{} is missing: run `scripts/local-stack install` (the README's test command does)",
        p.display()
    );
    p
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` until it returns `Some`, or panics with `what` at the deadline.
pub async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
