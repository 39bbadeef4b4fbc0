//! The audit trail of a restore: a small JSON record under `<archive>/<table>/_restores/`, since a
//! restore changes the data the archive watches. `<run id>.started.json` is written before the
//! first write (so a restore that is killed still leaves its trace), `<run id>.finished.json` or
//! `.stopped.json` when it ends, both create-only (an Object Lock bucket keeps them). The restore's
//! own writes then reach the archive through the table's stream like any other change, and the
//! record tells an auditor why they happened.
//!
//! Who: the caller's identity from STS GetCallerIdentity. When STS cannot be reached (a local
//! stack without it, a network without an STS endpoint), the record says `unknown` with the
//! reason, and the restore goes on with a warning: refusing to restore for want of an audit
//! detail would turn a recovery tool into an outage, while the record still names the time, the
//! target and the counts.

use super::plan::Counts;
use serde::Serialize;

/// Who ran the restore.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Caller {
    /// The caller's ARN, or `unknown`.
    pub arn: String,
    pub account: Option<String>,
    pub user_id: Option<String>,
    /// Why the identity is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// GetCallerIdentity, or `unknown` with the reason (logged as a warning).
pub async fn caller(sts: &aws_sdk_sts::Client) -> Caller {
    match sts.get_caller_identity().send().await {
        Ok(out) => Caller {
            arn: out.arn().unwrap_or("unknown").to_owned(),
            account: out.account().map(str::to_owned),
            user_id: out.user_id().map(str::to_owned),
            error: None,
        },
        Err(e) => {
            let reason = aws_smithy_types::error::display::DisplayErrorContext(&e).to_string();
            tracing::warn!("cannot learn the caller's identity from STS (the restore record names the caller `unknown`): {reason}");
            Caller {
                arn: "unknown".into(),
                account: None,
                user_id: None,
                error: Some(reason),
            }
        }
    }
}

/// `<run id>.started.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Started {
    pub run_id: String,
    /// The journal this run continues (the same for every run of the same restore).
    pub plan_id: String,
    pub table: String,
    pub archive: String,
    pub as_of: String,
    pub to_table: String,
    /// `table` (every item put), `in-place` (the target made equal: puts, overwrites, deletes) or
    /// `key` (one item).
    pub mode: &'static str,
    pub key: Vec<String>,
    pub caller: Caller,
    pub started_at: String,
    /// The first instant the archive answers for.
    pub archive_answers_from: String,
    /// What the plan writes, counted before the first write (in place and one item; for a whole
    /// table into another one, the items of the state).
    pub planned: Counts,
    pub max_wcu: Option<f64>,
    pub archiver_version: &'static str,
}

/// `<run id>.finished.json` or `.stopped.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Ended {
    pub run_id: String,
    pub outcome: &'static str,
    pub ended_at: String,
    /// Writes this run made, by kind.
    pub written: Counts,
    /// Writes skipped because an earlier run of the same restore made them.
    pub already_done: u64,
    /// Writes in doubt after a kill, read back and found made.
    pub confirmed: u64,
    pub wcu: f64,
    pub elapsed_seconds: f64,
}
