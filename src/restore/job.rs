//! One restore, start to end: spill the archive (pass one of `audit::state`), check that the
//! archive answers for the instant and that the target's key fits, compare the state with the
//! target where deleting or counting needs it, count the plan, record the restore, then write
//! partition by partition ([`super::apply`]), journalled, until done or stopped.

use super::apply::write_partition;
use super::plan::Counts;
use super::record::{self, Ended, Started};
use super::sources::{answerable, target, Sources};
use super::table;
use super::write::WriteCtx;
use super::RestoreError;
use crate::archive::{layout, Published};
use crate::audit::state::{self, PARTITIONS};
use crate::backfill::pace::Pacer;
use crate::progress::{self, Labels, Progress};
use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

pub use super::settings::{Report, Settings};

pub async fn restore(
    clients: &crate::aws::Clients,
    s: &Settings,
    stop: &CancellationToken,
) -> Result<Report, RestoreError> {
    let began = Instant::now();
    let ddb = &clients.dynamodb;
    let query = s.keys.clone();
    let plan_id = s.plan_id();
    // The journal outlives a run (until the restore finishes); the scratch files do not.
    let work = s.spool_dir.join(format!("restore-{}-{plan_id}", s.table));
    let scratch = s.spool_dir.join(format!(
        "restore-scratch-{}-{plan_id}-{}",
        s.table,
        std::process::id()
    ));
    let _cleanup = crate::spool::WorkDir(scratch.clone());
    std::fs::create_dir_all(&scratch).map_err(|source| RestoreError::Spool {
        path: scratch.clone(),
        source,
    })?;
    if !s.dry_run {
        // The record goes into the archive before the first write: fail now if it cannot.
        s.sink.check_writable().await?;
    }

    // Pass one, and whether the archive answers for the instant.
    let only = query
        .as_ref()
        .map(|q| Arc::new(q.candidates().into_iter().collect::<HashSet<_>>()));
    let spill_dir = scratch.join("spill");
    let spilled = tokio::select! {
        r = state::spill_table(&s.sink, s.table.as_str(), &spill_dir, only) => r?,
        _ = stop.cancelled() => return Ok(stopped_early(s, began)),
    };
    let baselines = state::baselines(&s.sink, &s.table, &spilled.facts).await?;
    let answers_from = answerable(s, &spilled.facts, &baselines)?;
    if !spilled.facts.gaps.is_empty() {
        tracing::warn!(table = %s.table, files = spilled.facts.gaps.len(), first = %spilled.facts.gaps[0], "the archive records stream records lost before they were read (`verify` lists them): items they changed may be restored wrong");
    }

    // The target.
    let (key, created) = target(clients, s, &spilled.facts).await?;
    let one = match &query {
        Some(q) => {
            let exact = q
                .exact(&key.shape)
                .map_err(|m| RestoreError::Usage(format!("--key: {m} (`{}`'s key)", s.to_table)))?;
            let now: Vec<(String, String)> = match created || key.names.is_empty() {
                true => Vec::new(),
                false => table::get_items(ddb, &s.to_table, std::slice::from_ref(&exact))
                    .await?
                    .into_iter()
                    .collect(),
            };
            Some((exact, now))
        }
        None => None,
    };
    let compare = one.is_none() && (s.in_place || s.dry_run);
    let live = if compare && !created && !key.names.is_empty() {
        let segments = (s.parallel as u32).clamp(1, 16);
        let live_dir = scratch.join("live");
        let spill = tokio::select! {
            r = table::scan_live(ddb, &s.to_table, &key, &live_dir, PARTITIONS, segments, stop) => r?,
            _ = stop.cancelled() => None,
        };
        match spill {
            Some(l) => {
                tracing::info!(table = %s.to_table, items = l.items, rcu = l.rcu, "scanned the target to compare it with the state");
                Some(l.paths)
            }
            None => return Ok(stopped_early(s, began)),
        }
    } else if compare {
        // A table that does not exist yet (--create with --dry-run) holds nothing.
        let empty = scratch.join("live-empty");
        std::fs::write(&empty, b"").map_err(|source| RestoreError::Spool {
            path: empty.clone(),
            source,
        })?;
        Some(vec![empty; PARTITIONS])
    } else {
        None
    };
    let sources = Arc::new(Sources {
        spilled,
        live,
        one,
        as_of_ms: s.as_of_ms,
        deletes: s.deletes(),
    });

    // The plan, counted before anything is written.
    let counted = {
        let sources = sources.clone();
        tokio::task::spawn_blocking(move || {
            let mut counts = Counts::default();
            let mut items = 0;
            for i in sources.partitions() {
                let p = sources.plan(i)?;
                counts.add(&p.counts);
                items += p.items;
            }
            Ok::<_, RestoreError>((counts, items))
        })
        .await
        .expect("planning does not panic")?
    };
    let (planned, items_at_instant) = counted;
    let mut report = Report {
        run_id: None,
        answers_from_ms: answers_from,
        items_at_instant,
        planned,
        written: Counts::default(),
        already_done: 0,
        confirmed: 0,
        wcu: 0.0,
        elapsed_seconds: 0.0,
        stopped: false,
        dry_run: s.dry_run,
        created,
        gaps: sources.spilled.facts.gaps.len(),
    };
    print_plan(s, &report);
    if s.dry_run {
        report.elapsed_seconds = began.elapsed().as_secs_f64();
        return Ok(report);
    }

    // The record, then the writes.
    let run_id = format!("{}-{plan_id}", crate::clock::stamp(crate::clock::now_ms()));
    let caller = record::caller(&clients.sts).await;
    let started = Started {
        run_id: run_id.clone(),
        plan_id: plan_id.clone(),
        table: s.table.to_string(),
        archive: s.archive.clone(),
        as_of: crate::clock::rfc3339(s.as_of_ms),
        to_table: s.to_table.to_string(),
        mode: s.mode(),
        key: s.key_given(),
        caller,
        started_at: crate::clock::now_rfc3339(),
        archive_answers_from: crate::clock::rfc3339(answers_from),
        planned,
        max_wcu: s.max_wcu,
        archiver_version: env!("CARGO_PKG_VERSION"),
    };
    publish_record(s, &run_id, "started", &started, &scratch).await?;
    report.run_id = Some(run_id.clone());
    let ctx = Arc::new(WriteCtx {
        client: ddb.clone(),
        table: s.to_table.clone(),
        key_names: key.names.clone(),
        pacer: Pacer::new(s.max_wcu),
        stop: stop.child_token(),
    });
    let progress = Arc::new(Progress::default());
    let reporter_stop = CancellationToken::new();
    let partitions = sources.partitions();
    let reporter = progress::spawn_reporter(
        s.progress,
        progress.clone(),
        Labels {
            title: format!("restore {} → {}", s.table, s.to_table),
            expected_items: planned.writes(),
            parts: ("partitions", partitions.len() as u64),
            capacity: Some("WCU"),
        },
        reporter_stop.clone(),
    );
    let journal_dir = work.join("journal");
    let mut result = Ok(());
    for index in partitions {
        if stop.is_cancelled() {
            break;
        }
        result = write_partition(
            s,
            &sources,
            index,
            &journal_dir,
            &ctx,
            &progress,
            &mut report,
        )
        .await;
        if result.is_err() {
            break;
        }
        progress.parts_done.fetch_add(1, Ordering::Relaxed);
    }
    reporter_stop.cancel();
    let _ = reporter.await;
    report.stopped = stop.is_cancelled() || result.is_err();
    report.elapsed_seconds = began.elapsed().as_secs_f64();
    let ended = Ended {
        run_id: run_id.clone(),
        outcome: match (&result, report.stopped) {
            (Err(_), _) => "failed",
            (Ok(()), true) => "stopped",
            (Ok(()), false) => "finished",
        },
        ended_at: crate::clock::now_rfc3339(),
        written: report.written,
        already_done: report.already_done,
        confirmed: report.confirmed,
        wcu: report.wcu,
        elapsed_seconds: report.elapsed_seconds,
    };
    publish_record(s, &run_id, ended.outcome, &ended, &scratch).await?;
    result?;
    if !report.stopped {
        // Done: the journal has served.
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(report)
}

fn stopped_early(s: &Settings, began: Instant) -> Report {
    Report {
        run_id: None,
        answers_from_ms: 0,
        items_at_instant: 0,
        planned: Counts::default(),
        written: Counts::default(),
        already_done: 0,
        confirmed: 0,
        wcu: 0.0,
        elapsed_seconds: began.elapsed().as_secs_f64(),
        stopped: true,
        dry_run: s.dry_run,
        created: false,
        gaps: 0,
    }
}

fn print_plan(s: &Settings, r: &Report) {
    let compared = s.in_place || s.dry_run || s.keys.is_some();
    let what = if compared {
        format!(
            "{} puts (absent now), {} overwrites, {} deletes, {} unchanged",
            r.planned.puts, r.planned.overwrites, r.planned.deletes, r.planned.unchanged
        )
    } else {
        format!("{} items to put", r.planned.puts)
    };
    println!(
        "restore {} as of {} into {}{}: {} items then; plan: {what}{}",
        s.table,
        crate::clock::rfc3339(s.as_of_ms),
        s.to_table,
        if r.created { " (created)" } else { "" },
        r.items_at_instant,
        if s.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        }
    );
}

async fn publish_record<T: serde::Serialize>(
    s: &Settings,
    run_id: &str,
    phase: &str,
    body: &T,
    scratch: &Path,
) -> Result<(), RestoreError> {
    let key = layout::restore_record_key(&s.table, run_id, phase);
    let bytes = serde_json::to_vec_pretty(body).expect("a record serialises");
    match s.sink.publish_bytes(&key, &bytes, scratch).await? {
        Published::Created => Ok(()),
        Published::AlreadyExisted { .. } => Err(RestoreError::Usage(format!(
            "the restore record {key} exists already (two restores started in the same millisecond?); run again"
        ))),
    }
}
