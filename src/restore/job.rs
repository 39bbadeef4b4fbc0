//! One restore, start to end: spill the archive (pass one of `audit::state`), check that the
//! archive answers for the instant and that the target's key fits, compare the state with the
//! target where deleting or counting needs it, count the plan, record the restore, then write
//! partition by partition, journalled, until done or stopped.

use super::journal::Journal;
use super::plan::{self, Action, Counts, Cutter};
use super::record::{self, Ended, Started};
use super::table::{self, TableKey};
use super::write::{self, BatchResult, Prepared, WriteCtx};
use super::RestoreError;
use crate::archive::{layout, ArchiveSink, Published};
use crate::audit::coverage::{self, Uncovered};
use crate::audit::history::KeyQuery;
use crate::audit::state::{self, PartitionState, Spilled, PARTITIONS};
use crate::backfill::pace::Pacer;
use crate::backfill::progress::{self, Labels, Progress};
use crate::config::cli::ProgressMode;
use crate::types::TableName;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// What a restore needs (the validated configuration, and the archive opened).
#[derive(Debug, Clone)]
pub struct Settings {
    pub sink: ArchiveSink,
    /// The archive's location, for the record.
    pub archive: String,
    pub table: TableName,
    pub as_of_ms: i64,
    pub to_table: TableName,
    pub create: bool,
    pub key_attributes: Option<Vec<String>>,
    pub in_place: bool,
    pub dry_run: bool,
    pub keys: Vec<String>,
    pub max_wcu: Option<f64>,
    pub parallel: usize,
    pub spool_dir: PathBuf,
    pub progress: ProgressMode,
}

impl Settings {
    fn mode(&self) -> &'static str {
        if !self.keys.is_empty() {
            "key"
        } else if self.in_place {
            "in-place"
        } else {
            "table"
        }
    }

    /// Deletes belong to the plan when the target is made equal to the state: in place, or for
    /// one item ("undo that write": an item that did not exist then is deleted).
    fn deletes(&self) -> bool {
        self.in_place || !self.keys.is_empty()
    }

    /// The same for every run of the same restore: names its journal.
    fn plan_id(&self) -> String {
        let mut h = Sha256::new();
        for part in [
            self.archive.as_str(),
            self.table.as_str(),
            &self.as_of_ms.to_string(),
            self.to_table.as_str(),
            self.mode(),
            &self.keys.join("\u{0}"),
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        hex::encode(&h.finalize()[..6])
    }
}

/// What the restore did.
#[derive(Debug, Clone)]
pub struct Report {
    pub run_id: Option<String>,
    pub answers_from_ms: i64,
    /// Items of the state at the instant (in the partitions restored).
    pub items_at_instant: u64,
    pub planned: Counts,
    pub written: Counts,
    pub already_done: u64,
    pub confirmed: u64,
    pub wcu: f64,
    pub elapsed_seconds: f64,
    pub stopped: bool,
    pub dry_run: bool,
    pub created: bool,
    /// Files of the archive that record lost stream records.
    pub gaps: usize,
}

/// The state and the target of one partition, compared.
struct PartitionPlan {
    actions: Vec<Action>,
    counts: Counts,
    items: u64,
}

/// What the write pass needs to compare each partition.
struct Sources {
    spilled: Spilled,
    /// The target's Scan by partition, when compared with it.
    live: Option<Vec<PathBuf>>,
    /// One item: its exact `keys`, and what the target holds for it now.
    one: Option<(String, Vec<(String, String)>)>,
    as_of_ms: i64,
    deletes: bool,
}

impl Sources {
    fn plan(&self, index: usize) -> Result<PartitionPlan, RestoreError> {
        let mut state: PartitionState = self.spilled.fold(index, self.as_of_ms)?;
        let live = match (&self.one, &self.live) {
            (Some((keys, now)), _) => {
                state.items.retain(|i| &i.keys == keys);
                Some(now.clone())
            }
            (None, Some(paths)) => {
                Some(
                    table::load_live(&paths[index]).map_err(|source| RestoreError::Spool {
                        path: paths[index].clone(),
                        source,
                    })?,
                )
            }
            (None, None) => None,
        };
        let (actions, counts) = plan::diff(&state.items, live.as_deref(), self.deletes);
        Ok(PartitionPlan {
            actions,
            counts,
            items: state.items.len() as u64,
        })
    }

    /// The partitions to visit: all, or the one item's.
    fn partitions(&self) -> Vec<usize> {
        match &self.one {
            Some((keys, _)) => vec![crate::audit::snapshot::partition_of(keys, PARTITIONS)],
            None => (0..self.spilled.partitions()).collect(),
        }
    }
}

pub async fn restore(
    clients: &crate::aws::Clients,
    s: &Settings,
    stop: &CancellationToken,
) -> Result<Report, RestoreError> {
    let began = Instant::now();
    let ddb = &clients.dynamodb;
    let query = (!s.keys.is_empty())
        .then(|| KeyQuery::parse(&s.keys).map_err(RestoreError::Usage))
        .transpose()?;
    let plan_id = s.plan_id();
    // The journal outlives a run (until the restore finishes); the scratch files do not.
    let work = s.spool_dir.join(format!("restore-{}-{plan_id}", s.table));
    let scratch = s.spool_dir.join(format!(
        "restore-scratch-{}-{plan_id}-{}",
        s.table,
        std::process::id()
    ));
    let _cleanup = crate::cmd::WorkDir(scratch.clone());
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
    let run_id = format!(
        "{}-{plan_id}",
        crate::cmd::snapshot::stamp(crate::clock::now_ms())
    );
    let caller = record::caller(&clients.sts).await;
    let started = Started {
        run_id: run_id.clone(),
        plan_id: plan_id.clone(),
        table: s.table.to_string(),
        archive: s.archive.clone(),
        as_of: crate::clock::rfc3339(s.as_of_ms),
        to_table: s.to_table.to_string(),
        mode: s.mode(),
        key: s.keys.clone(),
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

/// The first instant the archive answers for, or why it does not answer for `--as-of`.
fn answerable(
    s: &Settings,
    facts: &coverage::ArchiveFacts,
    baselines: &[coverage::Baseline],
) -> Result<i64, RestoreError> {
    let table = &s.table;
    match coverage::coverage(facts, baselines) {
        Ok(c) if s.as_of_ms >= c.from_ms => Ok(c.from_ms),
        Ok(c) => Err(RestoreError::Usage(format!(
            "--as-of {}: the archive of `{table}` answers only from {} (its stream began then, and {} was taken after it); give an instant at or after it",
            crate::clock::rfc3339(s.as_of_ms),
            crate::clock::rfc3339(c.from_ms),
            c.baseline
        ))),
        Err(Uncovered::NoStream) if facts.files == 0 => Err(RestoreError::Usage(format!(
            "the archive {} holds no files of table `{table}`: check --archive and --table",
            s.archive
        ))),
        Err(Uncovered::NoStream) => Err(RestoreError::Usage(format!(
            "the archive of `{table}` holds no stream records: it cannot say what changed after its snapshots, so it answers for no instant; run the worker (`dynamo-archiver run`) on the table's stream"
        ))),
        Err(Uncovered::NoBaseline { stream_start_ms }) => Err(RestoreError::Usage(format!(
            "the archive of `{table}` holds no complete snapshot taken after its stream began ({}): items never changed since then are unknown, so it answers for no instant; run `dynamo-archiver backfill --table {table}` (with --new-scan if an older one finished), then restore",
            crate::clock::rfc3339(stream_start_ms)
        ))),
    }
}

/// The target's key, checked against the archive's keys; created with `--create`. `(key, whether
/// this run created it, or would with --dry-run)`.
async fn target(
    clients: &crate::aws::Clients,
    s: &Settings,
    facts: &coverage::ArchiveFacts,
) -> Result<(TableKey, bool), RestoreError> {
    let ddb = &clients.dynamodb;
    let existing = table::describe_key(ddb, &s.to_table).await?;
    let key = match existing {
        Some(key) => (key, false),
        None if !s.create => return Err(RestoreError::NoTable(s.to_table.clone())),
        None => {
            let shape = match facts.key_shapes.iter().next() {
                Some(shape) if facts.key_shapes.len() == 1 => shape.clone(),
                _ => {
                    return Err(RestoreError::Usage(format!(
                    "the archive of `{}` does not show one key schema to create `{}` with ({:?})",
                    s.table, s.to_table, facts.key_shapes
                )))
                }
            };
            let names = key_roles(clients, s, &shape).await?;
            if !s.dry_run {
                tracing::info!(table = %s.to_table, key = %shape, "creating the target table (on-demand)");
                table::create(ddb, &s.to_table, &names, &shape).await?;
            }
            (TableKey { names, shape }, true)
        }
    };
    table::check_key_schema(&facts.key_shapes, &s.table, &s.to_table, &key.0)
        .map_err(RestoreError::Usage)?;
    Ok(key)
}

/// Which key attribute is the partition key: `--key-attributes`, else the source table's key (if
/// it still exists with the archived key), else the only attribute.
async fn key_roles(
    clients: &crate::aws::Clients,
    s: &Settings,
    shape: &str,
) -> Result<Vec<String>, RestoreError> {
    let types = table::types_of(shape);
    if let Some(names) = &s.key_attributes {
        let same: HashSet<&String> = names.iter().collect();
        if same.len() != types.len() || !names.iter().all(|n| types.contains_key(n)) {
            return Err(RestoreError::Usage(format!(
                "--key-attributes {} does not name the archived key {shape}",
                names.join(",")
            )));
        }
        return Ok(names.clone());
    }
    if types.len() == 1 {
        return Ok(types.into_keys().collect());
    }
    match table::describe_key(&clients.dynamodb, &s.table).await {
        Ok(Some(k)) if k.shape == shape => Ok(k.names),
        _ => Err(RestoreError::Usage(format!(
            "the archived key {shape} has two attributes and `{}` no longer tells which is the partition key: give --key-attributes PARTITION_KEY,SORT_KEY",
            s.table
        ))),
    }
}

fn print_plan(s: &Settings, r: &Report) {
    let compared = s.in_place || s.dry_run || !s.keys.is_empty();
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

/// Kinds of write, for the counts.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Put,
    Overwrite,
    Delete,
}

fn kind(a: &Action) -> Kind {
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

fn count(c: &mut Counts, k: Kind) {
    match k {
        Kind::Put => c.puts += 1,
        Kind::Overwrite => c.overwrites += 1,
        Kind::Delete => c.deletes += 1,
    }
}

/// Writes one partition's plan: skips what the journal says is done, reads back what is in
/// doubt, sends the rest in batches, `parallel` at a time, journalling each.
async fn write_partition(
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
fn settle(
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
            progress.add_rcu(r.wcu);
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
