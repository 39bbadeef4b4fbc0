//! Faults of DynamoDB under the lease table: throttling and answers lost after the call was done.

use super::*;
use crate::sim::streams::Faults;

/// The lease table misbehaves. Every DynamoDB call of the workers (DescribeTable and the lease
/// table) goes through a fault proxy in front of DynamoDB Local: 10% are throttled, 2% of
/// connections close before the call, and 2% close after DynamoDB Local did it, so a lease taken
/// or a checkpoint written is never heard of. A split under it, and a `kill -9` in the middle:
/// every record exactly once and in order.
#[tokio::test(flavor = "multi_thread")]
async fn a_lease_table_that_throttles_and_drops_answers_with_a_kill() {
    use crate::sim::proxy::{every_request, FaultS3, Refusal, S3Fault, S3Faults};
    let stack = Stack::start().await;
    let server = FaultStreams::start(
        split_graph(),
        Faults {
            seed: seed(21),
            page_bytes: 1_500,
            ..Faults::default()
        },
    )
    .await;
    let proxy = FaultS3::start(
        stack.ddb.port,
        S3Faults {
            seed: seed(22),
            // Each kind once, early (the first calls take leases), then by rate.
            script: vec![
                S3Fault::Pass,
                S3Fault::SlowDown,
                S3Fault::ResetBefore,
                S3Fault::Pass,
                S3Fault::ResetAfter,
            ],
            slow_down: 0.10,
            reset_before: 0.02,
            reset_after: 0.02,
            select: every_request,
            refusal: Refusal::DynamoThrottle,
        },
    )
    .await;
    let endpoint = proxy.endpoint();
    run_with_restart_via(
        &stack,
        &server,
        Restart::Kill,
        deadline(180),
        Some(&endpoint),
    )
    .await;
    let stats = proxy.stats.lock().unwrap().clone();
    assert!(
        stats.slow_downs > 0 && stats.resets_before > 0 && stats.resets_after > 0,
        "{stats:?}"
    );
}
