//! `dynamo-archiver schema`: the archive schema, Athena/Glue DDL and a DuckDB view per table; with
//! `--infer`, typed views inferred from a sample of the archive (`crate::views`).

use super::CommandError;
use crate::archive::ArchiveUri;
use crate::archive::SinkError;
use crate::config::SchemaConfig;
use crate::encode::ddl;
use crate::types::TableName;
use crate::views::render::Dialect;
use crate::views::{self, plan::Plan, render, sample};

pub async fn run(config: SchemaConfig) -> Result<(), CommandError> {
    let wants = |d: Dialect| config.dialect.is_none_or(|x| x == d);
    let mut out = format!(
        "-- Archive record schema, version {}\n",
        crate::encode::parquet::SCHEMA_VERSION
    );
    for line in ddl::schema_text().lines() {
        out.push_str(&format!("--   {line}\n"));
    }
    let sink = match config.infer {
        Some(_) => Some(super::read_archive(&config.archive).await),
        None => None,
    };
    for table in &config.tables {
        let typed = match (&sink, config.infer) {
            (Some(sink), Some(rows)) => Some(infer(sink, &config.archive, table, rows).await?),
            _ => None,
        };
        if wants(Dialect::Athena) {
            out.push_str(&format!("\n-- Athena / Glue: table `{table}`\n"));
            out.push_str(&ddl::athena_ddl(&config.archive, table));
            if let Some((plan, about, last_day)) = &typed {
                out.push('\n');
                out.push_str(&typed_views(Dialect::Athena, table, plan, about, last_day));
            }
        }
        if wants(Dialect::Duckdb) {
            out.push_str(&format!("\n-- DuckDB: table `{table}`\n"));
            if typed.is_some() && matches!(config.archive, ArchiveUri::S3 { .. }) {
                out.push_str(DUCKDB_S3);
            }
            out.push_str(&ddl::duckdb_view(&config.archive, table));
            if let Some((plan, about, last_day)) = &typed {
                out.push('\n');
                out.push_str(&typed_views(Dialect::Duckdb, table, plan, about, last_day));
            }
        }
    }
    print!("{out}");
    Ok(())
}

/// DuckDB reads `s3://` through its httpfs extension, with credentials from the AWS chain
/// (environment, profile, SSO, instance or task role) through its aws extension.
const DUCKDB_S3: &str = "-- The archive is on S3: DuckDB's httpfs and aws extensions read it with the AWS credential chain.\nINSTALL httpfs;\nLOAD httpfs;\nINSTALL aws;\nLOAD aws;\nCREATE OR REPLACE SECRET dynamo_archiver_s3 (TYPE s3, PROVIDER credential_chain);\n";

/// The plan of one table's typed views, the comment lines on its sample, and its last `dt`.
async fn infer(
    sink: &crate::archive::ArchiveSink,
    archive: &ArchiveUri,
    table: &TableName,
    rows: u64,
) -> Result<(Plan, Vec<String>, Option<String>), CommandError> {
    let location = archive.describe(&format!("{table}/"));
    let report = sample::read(sink, table, location, rows)
        .await
        .map_err(|e| match e {
            sample::SampleError::NoFiles { .. } => CommandError::Config(e.to_string()),
            sample::SampleError::Sink(s) if !s.is_retryable() && !is_io(&s) => {
                CommandError::Config(s.to_string())
            }
            other => CommandError::Runtime(other.to_string()),
        })?;
    let raw = views::raw_columns();
    let raw_refs: Vec<&str> = raw.iter().map(String::as_str).collect();
    let plan = Plan::new(&report.sample, &raw_refs);
    Ok((plan, views::about(&report, rows), report.last_day))
}

fn is_io(e: &SinkError) -> bool {
    matches!(e, SinkError::Io { .. })
}

fn typed_views(
    dialect: Dialect,
    table: &TableName,
    plan: &Plan,
    about: &[String],
    last_day: &Option<String>,
) -> String {
    let v = render::Views {
        base: ddl::sql_base(table),
        raw: ddl::sql_name(table),
        raw_columns: views::raw_columns(),
        plan,
        about: about.to_vec(),
        // The template's instant: the end of the archive's last day, a state the archive holds.
        as_of_example: format!(
            "{} 23:59:59.999",
            last_day.as_deref().unwrap_or("2026-01-01")
        ),
    };
    render::render(dialect, &v)
}
