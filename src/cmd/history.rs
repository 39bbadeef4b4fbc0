//! `dynamo-archiver history`: one item's timeline. Files are pruned by `dt` range and by the
//! `keys` column's statistics in their footers, so only row groups that can hold the key are read.

use super::CommandError;
use crate::archive::layout::{dt_of_key, ArchiveKey};
use crate::archive::ArchiveSink;
use crate::audit::history::{self, Event};
use crate::config::HistoryConfig;
use crate::encode::read::{opt_str, ArchiveRows};
use arrow_array::StringArray;
use parquet::file::statistics::Statistics;

/// Footers read at once.
const READS_IN_FLIGHT: usize = 8;

pub async fn run(config: HistoryConfig) -> Result<(), CommandError> {
    let candidates = config.keys.candidates();
    let sink = super::read_archive(&config.archive).await;
    let runtime = |e: crate::archive::SinkError| CommandError::Runtime(e.to_string());
    let keys: Vec<String> = sink
        .list_tree(&format!("{}/", config.table))
        .await
        .map_err(runtime)?
        .into_iter()
        .filter(|k| ArchiveKey::holds_rows(k))
        .filter(|k| {
            let dt = dt_of_key(k).unwrap_or("");
            config.from.as_deref().is_none_or(|f| dt >= f)
                && config.to.as_deref().is_none_or(|t| dt <= t)
        })
        .collect();
    let total = keys.len();
    let mut events = Vec::new();
    let mut read = 0usize;
    let mut tasks = tokio::task::JoinSet::new();
    let mut queue = keys.into_iter();
    loop {
        while tasks.len() < READS_IN_FLIGHT {
            let Some(key) = queue.next() else { break };
            let (sink, candidates) = (sink.clone(), candidates.clone());
            tasks.spawn(async move { events_of(&sink, &key, &candidates).await });
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let (was_read, found) = joined
            .expect("history tasks do not panic")
            .map_err(runtime)?;
        read += usize::from(was_read);
        events.extend(found);
    }
    events.sort_by(|a: &Event, b: &Event| (a.time_ms, &a.order).cmp(&(b.time_ms, &b.order)));
    tracing::info!(files = total, files_read = read, "pruned by key statistics");
    let key = config.keys.given().join(", ");
    if config.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&events).expect("events serialise")
        );
    } else {
        print!("{}", history::render_text(&key, &events));
    }
    Ok(())
}

/// The item's events in one file: `(whether the file's rows were read, events)`.
async fn events_of(
    sink: &ArchiveSink,
    key: &str,
    candidates: &[String],
) -> Result<(bool, Vec<Event>), crate::archive::SinkError> {
    let footer = sink.parquet_footer(key).await?;
    let keys_column = footer
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.name() == "keys");
    let groups: Vec<usize> = footer
        .row_groups()
        .iter()
        .enumerate()
        .filter(|(_, rg)| {
            let stats = keys_column.and_then(|i| rg.column(i).statistics());
            match stats {
                Some(Statistics::ByteArray(s)) => match (s.min_bytes_opt(), s.max_bytes_opt()) {
                    (Some(min), Some(max)) => history::may_hold(candidates, min, max),
                    _ => true,
                },
                _ => true,
            }
        })
        .map(|(i, _)| i)
        .collect();
    if groups.is_empty() {
        return Ok((false, Vec::new()));
    }
    let bytes = bytes::Bytes::from(sink.read(key, None).await?);
    let (key, candidates) = (key.to_owned(), candidates.to_vec());
    let events =
        tokio::task::spawn_blocking(move || matching_rows(&key, bytes, groups, &candidates))
            .await
            .expect("decoding does not panic");
    events
        .map(|e| (true, e))
        .map_err(|message| crate::archive::SinkError::Io {
            location: message.0,
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, message.1),
        })
}

/// The columns a timeline shows.
const HISTORY_COLUMNS: &[&str] = &[
    "keys",
    "event_name",
    "event_time",
    "new_image",
    "old_image",
    "shard_id",
    "sequence_number",
    "user_identity",
];

fn matching_rows(
    key: &str,
    bytes: bytes::Bytes,
    groups: Vec<usize>,
    candidates: &[String],
) -> Result<Vec<Event>, (String, String)> {
    let bad = |e: &dyn std::fmt::Display| (key.to_owned(), e.to_string());
    let reader = ArchiveRows::open(bytes, HISTORY_COLUMNS, Some(groups)).map_err(|e| bad(&e))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| bad(&e))?;
        let text = |name: &str| batch.text(name).map_err(|e| bad(&e));
        let (keys, names, news, olds, shards, seqs, who) = (
            text("keys")?,
            text("event_name")?,
            text("new_image")?,
            text("old_image")?,
            text("shard_id")?,
            text("sequence_number")?,
            text("user_identity")?,
        );
        let times = batch.event_times().map_err(|e| bad(&e))?;
        let opt = |a: &StringArray, i: usize| opt_str(a, i).map(str::to_owned);
        for i in 0..batch.len() {
            if !candidates.iter().any(|c| c == keys.value(i)) {
                continue;
            }
            let (old, new) = (opt(olds, i), opt(news, i));
            let time_ms = times.value(i);
            out.push(Event {
                time: crate::clock::rfc3339(time_ms),
                time_ms,
                event: names.value(i).to_owned(),
                who: history::who(opt_str(who, i)),
                changes: history::diff(old.as_deref(), new.as_deref()),
                file: key.to_owned(),
                order: history::order_key(opt_str(shards, i), opt_str(seqs, i)),
            });
        }
    }
    Ok(out)
}
