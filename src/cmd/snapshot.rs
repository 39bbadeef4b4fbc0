//! `dynamo-archiver snapshot`: the table as of an instant, in bounded memory (`audit::state`),
//! written as Parquet or as a DynamoDB import folder (`audit::snapshot_out`).

use super::CommandError;
use crate::archive::layout;
use crate::audit::coverage::{self, Uncovered};
use crate::audit::snapshot_out::SnapshotFormat;
use crate::audit::snapshot_out::{self, DynamoJsonOut, ImportSummary, ParquetOut};
use crate::audit::state;
use crate::config::SnapshotConfig;

pub async fn run(config: SnapshotConfig) -> Result<(), CommandError> {
    let runtime = |e: &dyn std::fmt::Display| CommandError::Runtime(e.to_string());
    let source = super::read_archive(&config.archive).await;
    let out = super::read_archive(&config.out).await;
    out.check_writable()
        .await
        .map_err(|e| CommandError::Config(e.to_string()))?;
    std::fs::create_dir_all(&config.spool_dir).map_err(|e| runtime(&e))?;
    let stamp = crate::clock::stamp(config.as_of_ms);
    let work = config.spool_dir.join(format!(
        "snapshot-{}-{stamp}-{}",
        config.table,
        std::process::id()
    ));
    let _cleanup = crate::spool::WorkDir(work.clone());
    let spilled = state::spill_table(&source, config.table.as_str(), &work.join("spill"), None)
        .await
        .map_err(|e| runtime(&e))?;
    warn_if_uncovered(&source, &config, &spilled.facts).await;
    let table = config.table.to_string();
    let files_read = spilled.files;
    let result = match config.format {
        SnapshotFormat::Parquet => {
            let path = work.join("out.parquet");
            let as_of = config.as_of_ms;
            let (file, summary) = tokio::task::spawn_blocking(move || {
                let mut writer = ParquetOut::create(&path)?;
                let mut summary = Summary::default();
                for i in 0..spilled.partitions() {
                    let part = spilled.fold(i, as_of).map_err(|e| e.to_string())?;
                    summary.add(&part);
                    writer.write(&part)?;
                }
                Ok::<_, String>((writer.finish()?, summary))
            })
            .await
            .expect("folding does not panic")
            .map_err(|e| runtime(&e))?;
            let key = layout::as_of_key(&table, &stamp);
            out.publish_retrying(&key, &file)
                .await
                .map_err(|e| runtime(&e))?;
            (summary, config.out.describe(&key))
        }
        SnapshotFormat::DynamodbJson => {
            let dir = work.join("data");
            std::fs::create_dir_all(&dir).map_err(|e| runtime(&e))?;
            let as_of = config.as_of_ms;
            let (files, summary) = tokio::task::spawn_blocking(move || {
                let mut writer = DynamoJsonOut::new(&dir);
                let mut summary = Summary::default();
                for i in 0..spilled.partitions() {
                    let part = spilled.fold(i, as_of).map_err(|e| e.to_string())?;
                    summary.add(&part);
                    writer.write(&part)?;
                }
                Ok::<_, String>((writer.finish()?, summary))
            })
            .await
            .expect("folding does not panic")
            .map_err(|e| runtime(&e))?;
            let mut keyed = Vec::new();
            for (n, f) in files.iter().enumerate() {
                let key = layout::as_of_export_data_key(&table, &stamp, n);
                out.publish_retrying(&key, &f.file)
                    .await
                    .map_err(|e| runtime(&e))?;
                keyed.push((key, f));
            }
            let folder = layout::as_of_export_dir(&table, &stamp);
            let manifest = ImportSummary {
                table: table.clone(),
                as_of: crate::clock::rfc3339(config.as_of_ms),
                item_count: summary.items,
                output_format: "DYNAMODB_JSON",
                compression: "GZIP",
                data_files: files.len(),
                data_prefix: format!("{folder}data/"),
                created_at: crate::clock::now_rfc3339(),
                archiver_version: env!("CARGO_PKG_VERSION"),
            };
            // Manifests last: a folder that has them is complete.
            let files_body = snapshot_out::manifest_files(&keyed);
            for (name, body) in [
                ("manifest-files.json", files_body.into_bytes()),
                (
                    "manifest-summary.json",
                    serde_json::to_vec_pretty(&manifest).expect("a manifest serialises"),
                ),
            ] {
                out.publish_bytes(&format!("{folder}{name}"), &body, &work)
                    .await
                    .map_err(|e| runtime(&e))?;
            }
            (summary, config.out.describe(&folder))
        }
    };
    let (summary, written_to) = result;
    println!(
        "snapshot {} as of {}: {} items ({} from changes, {} from SNAPSHOT rows), {} keys absent at that instant, from {} files; written to {}",
        config.table,
        crate::clock::rfc3339(config.as_of_ms),
        summary.items,
        summary.from_changes,
        summary.items - summary.from_changes,
        summary.absent,
        files_read,
        written_to
    );
    Ok(())
}

/// A snapshot is a report, not a change: an instant the archive cannot vouch for is warned about,
/// not refused (`restore` refuses it).
async fn warn_if_uncovered(
    source: &crate::archive::ArchiveSink,
    config: &SnapshotConfig,
    facts: &coverage::ArchiveFacts,
) {
    let baselines = match state::baselines(source, &config.table, facts).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!("cannot read the archive's snapshot markers: {e}");
            return;
        }
    };
    match coverage::coverage(facts, &baselines) {
        Ok(c) if c.from_ms <= config.as_of_ms => {}
        Ok(c) => tracing::warn!(
            table = %config.table,
            "the archive answers only from {}: the state before is incomplete (docs/AUDIT.md, \"A table as of an instant\")",
            crate::clock::rfc3339(c.from_ms)
        ),
        Err(Uncovered::NoStream) => tracing::warn!(
            table = %config.table,
            "the archive holds no stream records: the state is that of its snapshots only"
        ),
        Err(Uncovered::NoBaseline { stream_start_ms }) => tracing::warn!(
            table = %config.table,
            "no complete snapshot taken after the stream began ({}): items never changed since are missing; run `backfill`",
            crate::clock::rfc3339(stream_start_ms)
        ),
    }
    if !facts.gaps.is_empty() {
        tracing::warn!(table = %config.table, gaps = facts.gaps.len(), "the archive records lost stream records (`verify` lists them): items they changed may be wrong");
    }
}

#[derive(Debug, Default)]
struct Summary {
    items: u64,
    from_changes: u64,
    absent: u64,
}

impl Summary {
    fn add(&mut self, part: &state::PartitionState) {
        self.items += part.items.len() as u64;
        self.from_changes += part.items.iter().filter(|i| i.from_change).count() as u64;
        self.absent += part.absent;
    }
}
