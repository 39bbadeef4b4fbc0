//! Every permission the worker needs is tried at start-up: with one AWS operation denied (the
//! fault proxy answers AccessDenied for it), the worker exits with status 2 and names the action,
//! before it archives anything, and leaves nothing behind in the bucket.

use crate::sim::proxy::{every_request, FaultS3, Refusal, S3Faults};
use crate::sim::wire::Message;
use crate::support::*;
use aws_sdk_dynamodb::types::StreamViewType;
use std::time::Duration;

fn target_is(m: &Message, op: &str) -> bool {
    m.header("x-amz-target")
        .is_some_and(|t| t.rsplit('.').next() == Some(op))
}

fn on_ledger(m: &Message) -> bool {
    String::from_utf8_lossy(&m.body).contains("\"ledger\"")
}

fn on_lease_table(m: &Message) -> bool {
    String::from_utf8_lossy(&m.body).contains("dynamo-archiver-leases")
}

#[tokio::test(flavor = "multi_thread")]
async fn each_denied_permission_stops_the_start_with_exit_2_naming_it() {
    let stack = Stack::start_with_s3().await;
    stack
        .create_table("ledger", "id", Some(StreamViewType::NewAndOldImages))
        .await;
    stack.create_bucket("archive").await;
    let quiet = |refusal| S3Faults {
        seed: 1,
        script: vec![],
        slow_down: 0.0,
        reset_before: 0.0,
        reset_after: 0.0,
        select: every_request,
        refusal,
    };
    let ddb = FaultS3::start(stack.ddb.port, quiet(Refusal::DynamoThrottle)).await;
    let s3 = FaultS3::start(
        stack.moto.as_ref().unwrap().port,
        quiet(Refusal::S3SlowDown),
    )
    .await;
    let (ddb_url, s3_url) = (ddb.endpoint(), s3.endpoint());
    let spool = stack.dir.path().join("spool");
    let args = run_args("ledger", "s3://archive/prod", spool.to_str().unwrap());
    let env = [
        ("AWS_ENDPOINT_URL_DYNAMODB", ddb_url.as_str()),
        ("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", ddb_url.as_str()),
        ("AWS_ENDPOINT_URL_S3", s3_url.as_str()),
    ];
    type Deny = fn(&Message) -> bool;
    let cases: [(&str, &FaultS3, Deny, &str); 8] = [
        (
            "DescribeTable on the table",
            &ddb,
            |m| target_is(m, "DescribeTable") && on_ledger(m),
            "dynamodb:DescribeTable",
        ),
        (
            "DescribeStream",
            &ddb,
            |m| target_is(m, "DescribeStream"),
            "dynamodb:DescribeStream",
        ),
        (
            "GetShardIterator",
            &ddb,
            |m| target_is(m, "GetShardIterator"),
            "dynamodb:GetShardIterator",
        ),
        (
            "GetRecords",
            &ddb,
            |m| target_is(m, "GetRecords"),
            "dynamodb:GetRecords",
        ),
        (
            "the lease table's Scan",
            &ddb,
            |m| target_is(m, "Scan") && on_lease_table(m),
            "dynamodb:Scan",
        ),
        (
            "the lease table's UpdateItem",
            &ddb,
            |m| target_is(m, "UpdateItem") && on_lease_table(m),
            "dynamodb:UpdateItem",
        ),
        (
            "reading the archive",
            &s3,
            |m| m.start().0 == "GET",
            "s3:GetObject",
        ),
        (
            "writing the archive",
            &s3,
            |m| m.start().0 == "POST" && m.start().1.contains("uploads"),
            "s3:PutObject",
        ),
    ];
    for (what, proxy, deny, action) in cases {
        proxy.control.deny(Some(deny));
        let mut worker = Archiver::start_env(&stack, &args, &env);
        let status = worker
            .exited_within(Duration::from_secs(90))
            .unwrap_or_else(|| panic!("{what}: the worker kept running:\n{}", worker.log_text()));
        let log = worker.log_text();
        assert_eq!(status.code(), Some(2), "{what}: exit 2\n{log}");
        assert!(log.contains(action), "{what}: names {action}:\n{log}");
        assert!(log.contains("grant"), "{what}: says the fix:\n{log}");
        proxy.control.deny(None);
    }
    // Nothing was archived, and no probe was left behind (no object, no open upload).
    let s3c = stack.s3.as_ref().unwrap();
    let keys = s3_keys(s3c, "archive", "").await.unwrap();
    assert!(keys.is_empty(), "{keys:?}");
    assert_eq!(open_uploads(s3c, "archive").await, 0);
    // With everything allowed, the same worker starts and runs.
    let mut worker = Archiver::start_env(&stack, &args, &env);
    assert!(
        worker.exited_within(Duration::from_secs(10)).is_none(),
        "{}",
        worker.log_text()
    );
    worker.stop();
}
