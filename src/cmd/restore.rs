//! `dynamo-archiver restore`: a table, or one item, put back into DynamoDB as it stood at an
//! instant (`restore::job`).

use super::CommandError;
use crate::config::RestoreConfig;
use crate::restore::job::{self, Settings};
use tokio_util::sync::CancellationToken;

pub async fn run(config: RestoreConfig, stop: CancellationToken) -> Result<(), CommandError> {
    let clients = crate::aws::load().await;
    let sink = crate::archive::ArchiveSink::new(&config.archive, clients.s3.clone(), None);
    let settings = Settings {
        sink,
        archive: config.archive.to_string(),
        table: config.table.clone(),
        as_of_ms: config.as_of_ms,
        to_table: config.to_table.clone(),
        create: config.create,
        key_attributes: config.key_attributes.clone(),
        in_place: config.in_place,
        dry_run: config.dry_run,
        keys: config.keys.clone(),
        max_wcu: config.max_wcu,
        parallel: config.parallel,
        spool_dir: config.spool_dir.clone(),
        progress: config.progress,
    };
    let report = job::restore(&clients, &settings, &stop)
        .await
        .map_err(|e| {
            if e.is_config() {
                CommandError::Config(e.to_string())
            } else {
                CommandError::Runtime(e.to_string())
            }
        })?;
    if report.dry_run {
        return Ok(());
    }
    let w = report.written;
    let done = if report.stopped {
        "stopped (run the same command to continue)"
    } else {
        "done"
    };
    println!(
        "restore {} → {} {done}: wrote {} items ({} puts, {} overwrites, {} deletes), {:.0} WCU in {:.1} s ({:.1} WCU/s); {} already written by an earlier run, {} confirmed written by reading back; record {}",
        config.table,
        config.to_table,
        w.writes(),
        w.puts,
        w.overwrites,
        w.deletes,
        report.wcu,
        report.elapsed_seconds,
        report.wcu / report.elapsed_seconds.max(0.001),
        report.already_done,
        report.confirmed,
        report.run_id.as_deref().map_or("none".to_owned(), |id| {
            config.archive.describe(&crate::archive::layout::restore_record_key(
                &config.table,
                id,
                "started",
            ))
        }),
    );
    Ok(())
}
