//! `dynamo-archiver schema`: the archive schema, Athena/Glue DDL and a DuckDB view per table.

use super::CommandError;
use crate::config::SchemaConfig;
use crate::encode::ddl;

pub fn run(config: &SchemaConfig) -> Result<(), CommandError> {
    println!(
        "-- Archive record schema, version {}",
        crate::encode::parquet::SCHEMA_VERSION
    );
    for line in ddl::schema_text().lines() {
        println!("--   {line}");
    }
    for table in &config.tables {
        println!("\n-- Athena / Glue: table `{table}`");
        print!("{}", ddl::athena_ddl(&config.archive, table));
        println!("\n-- DuckDB: table `{table}`");
        print!("{}", ddl::duckdb_view(&config.archive, table));
    }
    Ok(())
}
