//! Typed views for analysts (`schema --infer`): a sample of the archive says which attributes a
//! table's items have and of which types, and the views expose each as its own typed column,
//! with the table's latest state and its state at an instant, in plain SQL for Athena and DuckDB.
//!
//! # Layout
//!
//! - [`sample`]: the shell. Which files and rows to read, and reading only their `keys`,
//!   `new_image` and `old_image` column chunks.
//! - [`infer`]: pure. What the sampled images say: tags, number widths, list elements.
//! - [`plan`]: pure. Columns from that: SQL types and names.
//! - [`naming`]: pure. Quoting, and column names distinct in every engine.
//! - [`render`]: pure. The SQL of both dialects.
//!
//! Why the views order and select rows as they do (and how that equals `snapshot --as-of`) is in
//! `src/views/design.md`.

pub mod infer;
pub mod naming;
pub mod plan;
pub mod render;
pub mod sample;

use crate::encode::parquet::arrow_schema;
use sample::SampleReport;

/// The archive's own columns of the views, in order: schema v1's, then the `dt` partition.
pub fn raw_columns() -> Vec<String> {
    arrow_schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .chain(["dt".to_owned()])
        .collect()
}

/// Comment lines saying what the views were inferred from.
pub fn about(report: &SampleReport, sample_rows: u64) -> Vec<String> {
    let s = &report.sample;
    let days = match &report.days {
        Some((a, b)) if a == b => format!("dt {a}"),
        Some((a, b)) => format!("{} days from dt {a} to {b}", report.days_read),
        None => "no day".into(),
    };
    let mut lines = vec![
        format!(
            "Inferred by dynamo-archiver {} `schema --infer --sample {sample_rows}`: {} rows ({} images) from {} of the table's {} files ({days}).",
            env!("CARGO_PKG_VERSION"),
            s.rows,
            s.images,
            report.files_read,
            report.files_total,
        ),
    ];
    if s.unreadable > 0 {
        lines.push(format!(
            "{} images or keys were not DynamoDB JSON items and were left out of the inference.",
            s.unreadable
        ));
    }
    let l = &report.lineage;
    if l.pairs.is_empty() {
        lines.push(
            "Across shards, a key's changes are ordered by the creation time in the shard id (shardId-<ms>-...); the files read name no parent shard to check that against.".to_owned(),
        );
    } else if l.violations.is_empty() {
        lines.push(format!(
            "Across shards, a key's changes are ordered by the creation time in the shard id (shardId-<ms>-...); in the {} parent/child shard pairs of the files read, every child was created after its parent.",
            l.pairs.len()
        ));
    } else {
        let (child, parent) = &l.violations[0];
        lines.push(format!(
            "WARNING: {} of {} parent/child shard pairs are not ordered by the creation time in their ids (e.g. {} after {}); for keys whose changes span such shards, _latest and _as_of may pick the wrong change (see docs/ARCHIVE.md, \"Ordering events\").",
            l.violations.len(),
            l.pairs.len(),
            naming::comment_name(child),
            naming::comment_name(parent),
        ));
    }
    lines
}
