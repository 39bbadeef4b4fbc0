//! SQL for analysts: the Athena/Glue DDL (with partition projection on `dt`) and a DuckDB view
//! over one table's folder of the archive. Generated from the Arrow schema, so they cannot drift.

use super::parquet::arrow_schema;
use crate::archive::ArchiveUri;
use crate::types::TableName;
use arrow_schema::DataType;

/// The first `dt` partition projection accepts; DynamoDB Streams launched in 2014.
const PROJECTION_START: &str = "2014-01-01";

/// The SQL base name of a DynamoDB table (which may hold `-` and `.`): lower case, other
/// characters than letters and digits as `_`. Every table, view and macro made for the table
/// is named `<base>_<something>`.
pub fn sql_base(table: &TableName) -> String {
    table
        .as_str()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// A SQL identifier for a DynamoDB table name: the table (Athena) or view (DuckDB) of its raw
/// archive rows.
pub fn sql_name(table: &TableName) -> String {
    format!("{}_changes", sql_base(table))
}

fn athena_type(t: &DataType) -> &'static str {
    match t {
        DataType::Utf8 => "string",
        DataType::Int64 => "bigint",
        DataType::Timestamp(_, _) => "timestamp",
        DataType::Binary => "binary",
        _ => "string",
    }
}

/// The folder of a table in the archive, ending in `/`, as the engines address it.
fn table_location(archive: &ArchiveUri, table: &TableName) -> String {
    match archive {
        ArchiveUri::S3 { .. } => format!("{}/{table}/", archive),
        ArchiveUri::Local(_) => format!("{}/", archive.describe(table.as_str())),
    }
}

/// The columns, their types and nullability, one per line.
pub fn schema_text() -> String {
    arrow_schema()
        .fields()
        .iter()
        .map(|f| {
            format!(
                "{:<20} {:<10} {}\n",
                f.name(),
                athena_type(f.data_type()),
                if f.is_nullable() { "null" } else { "not null" }
            )
        })
        .collect()
}

pub fn athena_ddl(archive: &ArchiveUri, table: &TableName) -> String {
    let cols: Vec<String> = arrow_schema()
        .fields()
        .iter()
        .map(|f| format!("  `{}` {}", f.name(), athena_type(f.data_type())))
        .collect();
    let location = table_location(archive, table);
    format!(
        "CREATE EXTERNAL TABLE IF NOT EXISTS `{name}` (\n{cols}\n)\nPARTITIONED BY (`dt` string)\nSTORED AS PARQUET\nLOCATION '{location}'\nTBLPROPERTIES (\n  'projection.enabled' = 'true',\n  'projection.dt.type' = 'date',\n  'projection.dt.format' = 'yyyy-MM-dd',\n  'projection.dt.range' = '{PROJECTION_START},NOW',\n  'projection.dt.interval' = '1',\n  'projection.dt.interval.unit' = 'DAYS',\n  'storage.location.template' = '{location}dt=${{dt}}/',\n  'parquet.compression' = 'ZSTD'\n);\n",
        name = sql_name(table),
        cols = cols.join(",\n"),
    )
}

pub fn duckdb_view(archive: &ArchiveUri, table: &TableName) -> String {
    format!(
        "CREATE OR REPLACE VIEW \"{name}\" AS\n  SELECT * FROM read_parquet('{location}dt=*/*.parquet', hive_partitioning = true, union_by_name = true);\n",
        name = sql_name(table),
        location = table_location(archive, table),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_schema_file_matches_the_code() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../schemas/archive-v1.json")).unwrap();
        assert_eq!(
            doc["schema_version"].as_i64().unwrap().to_string(),
            super::super::parquet::SCHEMA_VERSION
        );
        let cols = doc["columns"].as_array().unwrap();
        let fields = arrow_schema();
        assert_eq!(cols.len(), fields.fields().len());
        for (c, f) in cols.iter().zip(fields.fields()) {
            assert_eq!(c["name"], f.name().as_str());
            assert_eq!(c["type"], athena_type(f.data_type()));
            assert_eq!(c["nullable"], f.is_nullable());
        }
    }

    #[test]
    fn ddl_names_every_column_and_projects_dt() {
        let a = ArchiveUri::S3 {
            bucket: "b".into(),
            prefix: "p".into(),
        };
        let t = TableName::new("my-table.v2");
        let ddl = athena_ddl(&a, &t);
        for f in arrow_schema().fields() {
            assert!(ddl.contains(&format!("`{}`", f.name())), "{}", f.name());
        }
        assert!(ddl.contains("`my_table_v2_changes`"));
        assert!(ddl.contains("LOCATION 's3://b/p/my-table.v2/'"));
        assert!(ddl.contains("'storage.location.template' = 's3://b/p/my-table.v2/dt=${dt}/'"));
        let view = duckdb_view(
            &ArchiveUri::Local("/data/a".into()),
            &TableName::new("users"),
        );
        assert!(
            view.contains("read_parquet('/data/a/users/dt=*/*.parquet', hive_partitioning = true, union_by_name = true)")
        );
    }
}
