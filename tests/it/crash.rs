//! Crashes at the worst moment: the process aborts (no cleanup, as with `kill -9`) right after a
//! file is published and before its checkpoint, again and again while writes go on. A restarted
//! worker must find the unacknowledged file (at the key of its first unread record) and resume
//! after it: nothing lost, nothing twice.

use crate::support::*;
use aws_sdk_dynamodb::types::StreamViewType;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn abort_between_publish_and_checkpoint_duplicates_nothing() {
    let stack = Arc::new(Stack::start().await);
    stack
        .create_table("payments", "id", Some(StreamViewType::NewAndOldImages))
        .await;
    let archive = stack.dir.path().join("archive");
    let spool = stack.dir.path().join("spool");
    let args = run_args(
        "payments",
        archive.to_str().unwrap(),
        spool.to_str().unwrap(),
    );
    let st = stack.clone();
    let load = tokio::spawn(async move { workload(&st, "payments", 100, 3_000, 4).await });
    let mut crashes = 0;
    let mut logs = String::new();
    for round in 0..5u32 {
        if load.is_finished() && round >= 2 {
            break;
        }
        let n = (round % 3 + 1).to_string();
        let mut a = Archiver::start_env(
            &stack,
            &args,
            &[("ARCHIVER_FAILPOINT_ABORT_AFTER_PUBLISH", &n)],
        );
        let Some(status) = a.exited_within(Duration::from_secs(20)) else {
            // The workload is done and everything is archived: nothing left to publish, so the
            // failpoint cannot fire. Stop this one cleanly and check the result.
            a.signal("TERM");
            assert!(
                a.wait(Duration::from_secs(25)).success(),
                "{}",
                a.log_text()
            );
            logs.push_str(&a.log_text());
            break;
        };
        assert!(
            !status.success(),
            "round {round}: the failpoint aborted the process"
        );
        assert!(
            a.log_text().contains("failpoint: aborting"),
            "{}",
            a.log_text()
        );
        logs.push_str(&a.log_text());
        crashes += 1;
    }
    let written = load.await.unwrap();
    let total: usize = written.values().map(Vec::len).sum();
    let mut a = Archiver::start(&stack, &args);
    wait_for_rows(&archive, total, Duration::from_secs(120)).await;
    a.stop();
    assert!(crashes >= 2);
    logs.push_str(&a.log_text());
    assert_exactly_once_in_order(&stack, "payments", &read_archive(&archive), &written).await;
    assert!(
        logs.contains("the archive holds the file at this position"),
        "a restart found the unacknowledged file and resumed after it"
    );
}
