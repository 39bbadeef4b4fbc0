//! `dynamo-archiver backfill`: each table's existing items into the archive as SNAPSHOT rows.

use super::CommandError;
use crate::backfill::job::{self, Outcome, RunFigures, Settings};
use crate::config::BackfillConfig;
use crate::progress::thousands;
use tokio_util::sync::CancellationToken;

pub async fn run(config: BackfillConfig, shutdown: CancellationToken) -> Result<(), CommandError> {
    let clients = crate::aws::load().await;
    let sink = super::prepare_archive(
        &config.archive,
        clients.s3.clone(),
        config.sse_kms_key.clone(),
        &config.spool_dir,
    )
    .await?;
    let settings = Settings {
        sink,
        segments: config.segments,
        parallel: config.parallel,
        max_rcu: config.max_rcu,
        consistent_read: config.consistent_read,
        new_scan: config.new_scan,
        flush_size_bytes: config.flush_size_bytes,
        spool_dir: config.spool_dir.clone(),
        progress: config.progress,
    };
    for table in &config.tables {
        let outcome = job::backfill_table(&clients.dynamodb, &settings, table, &shutdown)
            .await
            .map_err(|e| {
                let text = format!(
                    "backfill of `{table}` stopped: {e} (run the same command again to continue)"
                );
                if e.is_config() {
                    CommandError::Config(text)
                } else {
                    CommandError::Runtime(text)
                }
            })?;
        println!("{}", summary(table.as_str(), &outcome));
        if matches!(outcome, Outcome::Stopped { .. }) {
            break;
        }
    }
    Ok(())
}

fn summary(table: &str, outcome: &Outcome) -> String {
    match outcome {
        Outcome::Finished { marker, run } => format!(
            "backfill {table}: scan {} finished: {} items in {} files over {} segments; this run: {}",
            marker.scan_id,
            thousands(marker.items),
            thousands(marker.files),
            marker.segments,
            figures(run)
        ),
        Outcome::AlreadyFinished(marker) => format!(
            "backfill {table}: scan {} already finished at {} with {} items in {} files; nothing to do (pass --new-scan to take a new snapshot)",
            marker.scan_id,
            marker.finished_at,
            thousands(marker.items),
            thousands(marker.files)
        ),
        Outcome::Stopped { scan_id, run } => format!(
            "backfill {table}: scan {scan_id} stopped; run the same command again to continue it; this run: {}",
            figures(run)
        ),
    }
}

fn figures(run: &RunFigures) -> String {
    let secs = run.elapsed.as_secs_f64().max(0.001);
    format!(
        "{} items, {:.1} MB, {} files, {:.1} RCU in {:.1} s ({} items/s, {:.1} RCU/s)",
        thousands(run.items),
        run.bytes as f64 / 1e6,
        run.files,
        run.rcu,
        secs,
        thousands((run.items as f64 / secs) as u64),
        run.rcu / secs
    )
}
