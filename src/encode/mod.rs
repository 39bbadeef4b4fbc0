//! From DynamoDB data to archive bytes: canonical DynamoDB JSON, the row of schema v1, the Parquet
//! writer, and the SQL that reads it back.

pub mod ddb_json;
pub mod ddl;
pub mod json_line;
pub mod key_query;
pub mod parquet;
pub mod read;
pub mod record;
pub mod stream_json;
pub mod stream_split;
