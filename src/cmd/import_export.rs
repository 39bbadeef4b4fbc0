//! `dynamo-archiver import-export`: a DynamoDB Export to S3 into the archive.

use super::CommandError;
use crate::config::ImportExportConfig;
use crate::export::job::{self, Outcome, Settings};
use crate::export::source::ExportSource;
use crate::progress::thousands;
use tokio_util::sync::CancellationToken;

pub async fn run(
    config: ImportExportConfig,
    shutdown: CancellationToken,
) -> Result<(), CommandError> {
    let clients = crate::aws::load().await;
    let source = ExportSource::parse(&config.export, clients.s3.clone())
        .map_err(|m| CommandError::Config(format!("invalid --export `{}`: {m}", config.export)))?;
    let sink = super::prepare_archive(
        &config.archive,
        clients.s3.clone(),
        config.sse_kms_key.clone(),
        &config.spool_dir,
    )
    .await?;
    let settings = Settings {
        sink,
        table: config.table.clone(),
        from_table: config.from_table.clone(),
        key_names: config.key_attributes.clone(),
        parallel: config.parallel,
        spool_dir: config.spool_dir.clone(),
        progress: config.progress,
    };
    let table = &config.table;
    let outcome = job::import(&source, &clients.dynamodb, &settings, &shutdown)
        .await
        .map_err(|e| {
            let text = format!("import-export into `{table}` stopped: {e}");
            if e.is_config() {
                CommandError::Config(text)
            } else {
                CommandError::Runtime(text)
            }
        })?;
    let line = match outcome {
        Outcome::Finished {
            marker,
            items_this_run,
            elapsed,
        } => {
            let secs = elapsed.as_secs_f64().max(0.001);
            format!(
                "import-export {table}: {} ({}) finished: {} items from {} data files; this run: {} items in {secs:.1} s ({} items/s)",
                marker.export_arn,
                marker.export_type,
                thousands(marker.items),
                marker.data_files,
                thousands(items_this_run),
                thousands((items_this_run as f64 / secs) as u64),
            )
        }
        Outcome::AlreadyFinished(marker) => format!(
            "import-export {table}: {} was already converted at {} ({} items); nothing to do",
            marker.export_arn,
            marker.finished_at,
            thousands(marker.items)
        ),
        Outcome::Stopped { done, total } => format!(
            "import-export {table}: stopped after {done} of {total} data files; run the same command again to continue"
        ),
    };
    println!("{line}");
    Ok(())
}
