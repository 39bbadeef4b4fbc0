//! The Firehose output: JSON lines packed into Firehose records ([`aggregate`]) and delivered with
//! PutRecordBatch until every record is acknowledged ([`firehose`]). The Parquet archive, its
//! storage and its layout live in [`crate::archive`].

pub mod aggregate;
pub mod firehose;
