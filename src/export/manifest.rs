//! The manifests of a DynamoDB Export to S3, parsed and checked (pure).
//!
//! Layout (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/S3DataExport.Output.html>):
//!
//! ```text
//! <prefix>/AWSDynamoDB/<export-id>/manifest-summary.json   one JSON object
//! <prefix>/AWSDynamoDB/<export-id>/manifest-summary.md5    base64 MD5 of it
//! <prefix>/AWSDynamoDB/<export-id>/manifest-files.json     JSON lines, one per data file
//! <prefix>/AWSDynamoDB/<export-id>/manifest-files.md5
//! <prefix>/AWSDynamoDB/<export-id>/data/<name>.json.gz     full exports
//! <prefix>/AWSDynamoDB/data/<name>.json.gz                 incremental exports (shared folder)
//! ```
//!
//! The AWS guide names the checksum files `*.checksum`; real exports write `*.md5`. Both are
//! accepted. `dataFileS3Key` is a key from the bucket's root, prefix included.

use base64::Engine;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportType {
    Full,
    Incremental,
}

/// What the conversion needs from `manifest-summary.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub export_arn: String,
    pub export_id: String,
    pub table_arn: Option<String>,
    pub export_type: ExportType,
    /// Full: the point in time the items are from (ms since the epoch).
    pub export_time_ms: Option<i64>,
    pub item_count: u64,
    pub manifest_files_key: Option<String>,
    /// Incremental: `NEW_AND_OLD_IMAGES` or `NEW_IMAGE`.
    pub output_view: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSummary {
    export_arn: String,
    table_arn: Option<String>,
    export_time: Option<String>,
    item_count: Option<u64>,
    output_format: Option<String>,
    export_type: Option<String>,
    manifest_files_s3_key: Option<String>,
    output_view: Option<String>,
}

/// One line of `manifest-files.json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataFile {
    pub item_count: u64,
    /// Base64 MD5 of the stored (gzip) object.
    pub md5_checksum: String,
    pub data_file_s3_key: String,
}

impl DataFile {
    /// The file's name without folder and `.json.gz`: the stem of the archive files made from it.
    pub fn stem(&self) -> &str {
        let name = self
            .data_file_s3_key
            .rsplit('/')
            .next()
            .unwrap_or(&self.data_file_s3_key);
        name.strip_suffix(".json.gz").unwrap_or(name)
    }
}

fn millis(text: &str) -> Result<i64, String> {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("`{text}` is not an RFC 3339 time: {e}"))?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

pub fn parse_summary(text: &[u8]) -> Result<Summary, String> {
    let raw: RawSummary = serde_json::from_slice(text).map_err(|e| e.to_string())?;
    if let Some(f) = raw
        .output_format
        .as_deref()
        .filter(|f| *f != "DYNAMODB_JSON")
    {
        return Err(format!(
            "outputFormat is {f}; only DYNAMODB_JSON exports can be converted (request the export with --export-format DYNAMODB_JSON)"
        ));
    }
    let export_type = match raw.export_type.as_deref() {
        None | Some("FULL_EXPORT") => ExportType::Full,
        Some("INCREMENTAL_EXPORT") => ExportType::Incremental,
        Some(other) => return Err(format!("unknown exportType `{other}`")),
    };
    let export_time_ms = raw.export_time.as_deref().map(millis).transpose()?;
    if export_type == ExportType::Full && export_time_ms.is_none() {
        return Err("a full export's summary has no exportTime".into());
    }
    let export_id = raw
        .export_arn
        .rsplit("/export/")
        .next()
        .filter(|id| !id.is_empty() && !id.contains('/'))
        .ok_or_else(|| {
            format!(
                "exportArn `{}` does not end in /export/<id>",
                raw.export_arn
            )
        })?
        .to_owned();
    Ok(Summary {
        export_id,
        export_arn: raw.export_arn,
        table_arn: raw.table_arn,
        export_type,
        export_time_ms,
        item_count: raw.item_count.ok_or("the summary has no itemCount")?,
        manifest_files_key: raw.manifest_files_s3_key,
        output_view: raw.output_view,
    })
}

/// Parses `manifest-files.json` and checks its counts add up to the summary's.
pub fn parse_files(text: &[u8], summary: &Summary) -> Result<Vec<DataFile>, String> {
    let text = std::str::from_utf8(text).map_err(|e| e.to_string())?;
    let mut files = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let f: DataFile = serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        files.push(f);
    }
    let sum: u64 = files.iter().map(|f| f.item_count).sum();
    if sum != summary.item_count {
        return Err(format!(
            "its item counts add up to {sum}, but manifest-summary.json says {}",
            summary.item_count
        ));
    }
    let mut stems: Vec<&str> = files.iter().map(DataFile::stem).collect();
    stems.sort_unstable();
    if stems.windows(2).any(|w| w[0] == w[1]) {
        return Err("two data files share a name".into());
    }
    Ok(files)
}

/// Base64 MD5 of `bytes`, as export manifests write it.
pub fn md5_base64(bytes: &[u8]) -> String {
    use md5::Digest;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(bytes))
}

/// Base64 of an MD5 digest computed elsewhere (as a stream).
pub fn md5_of_digest(digest: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// Checks a manifest against its `.md5` file's content (base64 MD5, whitespace ignored).
pub fn check_md5(bytes: &[u8], checksum_file: &[u8]) -> Result<(), String> {
    let want = String::from_utf8_lossy(checksum_file).trim().to_owned();
    let got = md5_base64(bytes);
    if got == want {
        Ok(())
    } else {
        Err(format!("MD5 is {got}, its checksum file says {want}"))
    }
}

/// Where a data file's key lies relative to the `AWSDynamoDB/` folder of its export (the same in
/// the bucket and in a local copy): `<export-id>/data/x.json.gz` or `data/x.json.gz`.
pub fn relative_to_aws_dynamodb(key: &str) -> Option<&str> {
    key.split_once("AWSDynamoDB/").map(|(_, rest)| rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"{"version":"2020-06-30","exportArn":"arn:aws:dynamodb:us-east-1:123456789012:table/ProductCatalog/export/01234567890123-a1b2c3d4","startTime":"2020-11-04T07:28:34.028Z","endTime":"2020-11-04T07:33:43.897Z","tableArn":"arn:aws:dynamodb:us-east-1:123456789012:table/ProductCatalog","tableId":"12345a12-abcd-123a-ab12-1234abc12345","exportTime":"2020-11-04T07:28:34.028Z","s3Bucket":"ddb-productcatalog-export","s3Prefix":"2020-Nov","s3SseAlgorithm":"AES256","s3SseKmsKeyId":null,"manifestFilesS3Key":"2020-Nov/AWSDynamoDB/01234567890123-a1b2c3d4/manifest-files.json","billedSizeBytes":0,"itemCount":8,"outputFormat":"DYNAMODB_JSON"}"#;

    #[test]
    fn a_full_summary_parses() {
        let s = parse_summary(FULL.as_bytes()).unwrap();
        assert_eq!(s.export_type, ExportType::Full);
        assert_eq!(s.export_id, "01234567890123-a1b2c3d4");
        assert_eq!(s.item_count, 8);
        assert_eq!(s.export_time_ms, Some(1_604_474_914_028));
    }

    #[test]
    fn an_incremental_summary_parses() {
        let text = r#"{"version":"2023-08-01","exportArn":"arn:aws:dynamodb:us-east-1:1:table/T/export/0171-x","startTime":"2024-05-01T00:00:00Z","endTime":"2024-05-01T00:10:00Z","tableArn":"arn:aws:dynamodb:us-east-1:1:table/T","tableId":"t","exportFromTime":"2024-04-30T00:00:00Z","exportToTime":"2024-05-01T00:00:00Z","s3Bucket":"b","s3Prefix":null,"s3SseAlgorithm":"AES256","s3SseKmsKeyId":null,"manifestFilesS3Key":"AWSDynamoDB/0171-x/manifest-files.json","billedSizeBytes":1,"itemCount":3,"outputFormat":"DYNAMODB_JSON","outputView":"NEW_AND_OLD_IMAGES","exportType":"INCREMENTAL_EXPORT"}"#;
        let s = parse_summary(text.as_bytes()).unwrap();
        assert_eq!(s.export_type, ExportType::Incremental);
        assert_eq!(s.output_view.as_deref(), Some("NEW_AND_OLD_IMAGES"));
        assert_eq!(s.export_time_ms, None);
    }

    #[test]
    fn bad_summaries_are_named() {
        let ion = FULL.replace("DYNAMODB_JSON", "ION");
        assert!(parse_summary(ion.as_bytes()).unwrap_err().contains("ION"));
        let no_count = FULL.replace(r#","itemCount":8"#, "");
        assert!(parse_summary(no_count.as_bytes())
            .unwrap_err()
            .contains("itemCount"));
        assert!(parse_summary(b"{").is_err());
    }

    #[test]
    fn file_lists_must_add_up() {
        let s = parse_summary(FULL.as_bytes()).unwrap();
        let lines = "{\"itemCount\":5,\"md5Checksum\":\"a\",\"etag\":\"e-1\",\"dataFileS3Key\":\"p/AWSDynamoDB/01234567890123-a1b2c3d4/data/abc.json.gz\"}\n{\"itemCount\":3,\"md5Checksum\":\"b\",\"etag\":\"e-1\",\"dataFileS3Key\":\"p/AWSDynamoDB/01234567890123-a1b2c3d4/data/def.json.gz\"}\n";
        let files = parse_files(lines.as_bytes(), &s).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].stem(), "abc");
        assert_eq!(
            relative_to_aws_dynamodb(&files[1].data_file_s3_key),
            Some("01234567890123-a1b2c3d4/data/def.json.gz")
        );
        let short = lines.replace("\"itemCount\":5", "\"itemCount\":4");
        assert!(parse_files(short.as_bytes(), &s)
            .unwrap_err()
            .contains("add up to 7"));
    }

    #[test]
    fn md5_checks() {
        // MD5("") in base64.
        assert_eq!(md5_base64(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
        assert!(check_md5(b"", b"1B2M2Y8AsgTpgAmY7PhCfg==\n").is_ok());
        assert!(check_md5(b"x", b"1B2M2Y8AsgTpgAmY7PhCfg==").is_err());
    }
}
