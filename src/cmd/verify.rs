//! `dynamo-archiver verify`: reads every file of the archive (or of some tables, or from a day on)
//! and reports what does not hold. Exit 0 only when every check passes.

use super::CommandError;
use crate::archive::layout::{dt_of_key, parse_key, ArchiveKey};
use crate::archive::ArchiveSink;
use crate::audit::facts::{read_facts, FileFacts};
use crate::audit::verify::{render_text, verify_table, Report};
use crate::config::VerifyConfig;

/// Files read at once.
const READS_IN_FLIGHT: usize = 8;

pub async fn run(config: VerifyConfig) -> Result<(), CommandError> {
    let sink = super::read_archive(&config.archive).await;
    let runtime = |e: crate::archive::SinkError| CommandError::Runtime(e.to_string());
    let tables: Vec<String> = if config.tables.is_empty() {
        sink.list_tables().await.map_err(runtime)?
    } else {
        config.tables.iter().map(|t| t.to_string()).collect()
    };
    if tables.is_empty() {
        return Err(CommandError::Config(format!(
            "{} holds no table folders: is --archive right?",
            config.archive
        )));
    }
    let mut reports = Vec::new();
    for table in &tables {
        let keys: Vec<String> = sink
            .list_tree(&format!("{table}/"))
            .await
            .map_err(runtime)?
            .into_iter()
            .filter(|k| k.ends_with(".parquet"))
            .filter(|k| match (&config.since, dt_of_key(k)) {
                (Some(since), Some(dt)) => dt >= since.as_str(),
                (None, Some(_)) => true,
                // End markers belong to no day: always read (they are empty).
                (_, None) => matches!(parse_key(k), ArchiveKey::End { .. }),
            })
            .collect();
        tracing::info!(table, files = keys.len(), "verifying");
        let facts = read_all(&sink, keys).await.map_err(runtime)?;
        reports.push(verify_table(table, &facts, config.since.as_deref()));
    }
    if config.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&reports).expect("a report serialises")
        );
    } else {
        print!("{}", render_text(&reports));
    }
    let problems: usize = reports.iter().map(|r: &Report| r.problems.len()).sum();
    if problems > 0 {
        return Err(CommandError::Runtime(format!(
            "verify found {problems} problems in {}",
            config.archive
        )));
    }
    let gaps: usize = reports.iter().map(Report::lost).sum();
    if gaps > 0 && !config.accept_known_gaps {
        return Err(CommandError::Runtime(format!(
            "{} records {gaps} gaps (records lost before they were read; listed above); once investigated, --accept-known-gaps accepts them",
            config.archive
        )));
    }
    Ok(())
}

async fn read_all(
    sink: &ArchiveSink,
    keys: Vec<String>,
) -> Result<Vec<FileFacts>, crate::archive::SinkError> {
    let mut out = Vec::with_capacity(keys.len());
    let mut tasks = tokio::task::JoinSet::new();
    let mut queue = keys.into_iter();
    loop {
        while tasks.len() < READS_IN_FLIGHT {
            let Some(key) = queue.next() else { break };
            let sink = sink.clone();
            tasks.spawn(async move {
                let (bytes, recorded) = sink.read_with_recorded_sha256(&key).await?;
                let facts = tokio::task::spawn_blocking(move || {
                    read_facts(&key, bytes::Bytes::from(bytes), recorded)
                })
                .await
                .expect("reading facts does not panic");
                Ok::<_, crate::archive::SinkError>(facts)
            });
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        out.push(joined.expect("read tasks do not panic")?);
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}
