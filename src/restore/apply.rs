//! The write pass of one partition: what the journal says is done is skipped, what is in doubt
//! is read back, the rest goes out in batches (`--parallel` at a time), each answer journalled.

use super::journal::Journal;
use super::plan::{self, Action, Counts, Cutter};
use super::settings::{Report, Settings};
use super::sources::Sources;
use super::table;
use super::write::{self, BatchResult, Prepared, WriteCtx};
use super::RestoreError;
use crate::progress::Progress;
use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Kinds of write, for the counts.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Put,
    Overwrite,
    Delete,
}

pub(super) fn kind(a: &Action) -> Kind {
    match a {
        Action::Put {
            overwrite: false, ..
        } => Kind::Put,
        Action::Put {
            overwrite: true, ..
        } => Kind::Overwrite,
        Action::Delete { .. } => Kind::Delete,
    }
}

pub(super) fn count(c: &mut Counts, k: Kind) {
    match k {
        Kind::Put => c.puts += 1,
        Kind::Overwrite => c.overwrites += 1,
        Kind::Delete => c.deletes += 1,
    }
}

/// Writes one partition's plan: skips what the journal says is done, reads back what is in
/// doubt, sends the rest in batches, `parallel` at a time, journalling each.
pub(super) async fn write_partition(
    s: &Settings,
    sources: &Arc<Sources>,
    index: usize,
    journal_dir: &Path,
    ctx: &Arc<WriteCtx>,
    progress: &Arc<Progress>,
    report: &mut Report,
) -> Result<(), RestoreError> {
    let plan = {
        let sources = sources.clone();
        tokio::task::spawn_blocking(move || sources.plan(index))
            .await
            .expect("planning does not panic")?
    };
    if plan.actions.is_empty() {
        return Ok(());
    }
    let spool = |source| RestoreError::Spool {
        path: journal_dir.to_owned(),
        source,
    };
    let (mut journal, recorded) = Journal::open(journal_dir, index).map_err(spool)?;
    let mut todo: Vec<Action> = Vec::with_capacity(plan.actions.len());
    let mut doubt: Vec<Action> = Vec::new();
    for a in plan.actions {
        let d = a.digest();
        if recorded.done.contains(&d) {
            report.already_done += 1;
        } else if recorded.in_doubt.contains(&d) {
            doubt.push(a);
        } else {
            todo.push(a);
        }
    }
    if !doubt.is_empty() {
        // Sent before a kill, answer unknown: what the target holds says whether they landed.
        let keys: Vec<String> = doubt.iter().map(|a| a.keys().to_owned()).collect();
        let now = table::get_items(&ctx.client, &ctx.table, &keys).await?;
        let mut landed = Vec::new();
        for a in doubt {
            let made = match &a {
                Action::Put { keys, item, .. } => {
                    now.get(keys).is_some_and(|n| plan::same_item(item, n))
                }
                Action::Delete { keys, .. } => !now.contains_key(keys),
            };
            if made {
                landed.push(a.digest());
            } else {
                todo.push(a);
            }
        }
        report.confirmed += landed.len() as u64;
        journal.record("done", &landed).map_err(spool)?;
        tracing::info!(
            partition = index,
            confirmed = landed.len(),
            "writes in doubt after an interruption read back"
        );
    }
    // The plan is sorted by key; writes read back go last, in any order.
    let mut cutter = Cutter::new(plan::max_batch_wcu(s.max_wcu));
    let mut batch: Vec<(Prepared, Kind)> = Vec::new();
    let mut in_flight = tokio::task::JoinSet::new();
    let mut failure = None;
    let mut actions = todo.into_iter();
    loop {
        // Fill a batch; send it when full (or at the end) once a slot is free.
        let mut ready = None;
        if !ctx.stop.is_cancelled() && failure.is_none() {
            for a in actions.by_ref() {
                let p = write::prepare(&a).map_err(RestoreError::Usage)?;
                let k = kind(&a);
                if cutter.push(p.wcu) && !batch.is_empty() {
                    ready = Some(std::mem::replace(&mut batch, vec![(p, k)]));
                    break;
                }
                batch.push((p, k));
            }
            if ready.is_none() && !batch.is_empty() {
                ready = Some(std::mem::take(&mut batch));
            }
        }
        let Some(next) = ready else {
            // Nothing more to send: collect what is in flight.
            match in_flight.join_next().await {
                Some(joined) => {
                    let (kinds, r) = joined.expect("batch tasks do not panic");
                    settle(
                        &mut journal,
                        kinds,
                        r,
                        progress,
                        report,
                        &mut failure,
                        spool,
                    )?;
                    continue;
                }
                None => break,
            }
        };
        while in_flight.len() >= s.parallel {
            let (kinds, r) = in_flight
                .join_next()
                .await
                .expect("a batch is in flight")
                .expect("batch tasks do not panic");
            settle(
                &mut journal,
                kinds,
                r,
                progress,
                report,
                &mut failure,
                spool,
            )?;
        }
        if failure.is_some() || ctx.stop.is_cancelled() {
            continue;
        }
        let digests: Vec<u128> = next.iter().map(|(p, _)| p.digest).collect();
        journal.record("sent", &digests).map_err(spool)?;
        let kinds: Vec<(u128, Kind)> = next.iter().map(|(p, k)| (p.digest, *k)).collect();
        let requests: Vec<Prepared> = next.into_iter().map(|(p, _)| p).collect();
        let ctx = ctx.clone();
        in_flight.spawn(async move { (kinds, write::write_batch(&ctx, requests).await) });
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Records one answered batch: journal, counts, progress; keeps the first failure.
pub(super) fn settle(
    journal: &mut Journal,
    kinds: Vec<(u128, Kind)>,
    result: Result<BatchResult, RestoreError>,
    progress: &Progress,
    report: &mut Report,
    failure: &mut Option<RestoreError>,
    spool: impl Fn(std::io::Error) -> RestoreError,
) -> Result<(), RestoreError> {
    match result {
        Ok(r) => {
            journal.record("done", &r.done).map_err(spool)?;
            let done: HashSet<u128> = r.done.iter().copied().collect();
            for (d, k) in kinds {
                if done.contains(&d) {
                    count(&mut report.written, k);
                }
            }
            report.wcu += r.wcu;
            progress
                .items
                .fetch_add(r.done.len() as u64, Ordering::Relaxed);
            progress.add_capacity(r.wcu);
            // Bytes as billed: a KB per WCU.
            progress
                .bytes
                .fetch_add((r.wcu * 1024.0) as u64, Ordering::Relaxed);
        }
        Err(e) => {
            tracing::error!(path = %journal.path().display(), "a batch failed: {e}");
            failure.get_or_insert(e);
        }
    }
    Ok(())
}
