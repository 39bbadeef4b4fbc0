//! Where an archive (or a snapshot's output) lives: an S3 bucket and prefix, or a local folder.
//! Parsed once from the user's text; every store, encoder and command takes the parsed value.

use std::path::PathBuf;

/// An archive location that cannot hold a bad bucket name or an unknown scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveUri {
    S3 { bucket: String, prefix: String },
    Local(PathBuf),
}

/// Why a text is not an archive location; `message` says how to write one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid --archive `{uri}`: {message}")]
pub struct BadArchiveUri {
    pub uri: String,
    pub message: String,
}

impl ArchiveUri {
    pub fn parse(uri: &str) -> Result<Self, BadArchiveUri> {
        let bad = |message: &str| BadArchiveUri {
            uri: uri.to_owned(),
            message: message.to_owned(),
        };
        if uri.trim().is_empty() {
            return Err(bad(
                "it is empty; give s3://bucket/prefix or a local directory",
            ));
        }
        if let Some(rest) = uri.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            validate_bucket(bucket).map_err(|m| bad(&m))?;
            let prefix = prefix.trim_matches('/').to_owned();
            return Ok(Self::S3 {
                bucket: bucket.to_owned(),
                prefix,
            });
        }
        if let Some(path) = uri.strip_prefix("file://") {
            return Ok(Self::Local(PathBuf::from(path)));
        }
        if let Some((scheme, _)) = uri.split_once("://") {
            return Err(bad(&format!(
                "the scheme `{scheme}://` is not supported; give s3://bucket/prefix or a local directory"
            )));
        }
        if uri.starts_with("s3:") || uri.starts_with("S3:") {
            return Err(bad("write S3 locations as s3://bucket/prefix"));
        }
        Ok(Self::Local(PathBuf::from(uri)))
    }

    /// The location of one object or file below the archive root, from a `/`-separated key.
    pub fn describe(&self, key: &str) -> String {
        match self {
            Self::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}/{key}"),
            Self::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}/{key}"),
            Self::Local(dir) => dir.join(key).display().to_string(),
        }
    }
}

impl std::fmt::Display for ArchiveUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Self::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            Self::Local(dir) => write!(f, "{}", dir.display()),
        }
    }
}

/// S3 bucket naming rules: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html>
fn validate_bucket(bucket: &str) -> Result<(), String> {
    if bucket.is_empty() {
        return Err("no bucket name; write it as s3://bucket/prefix".into());
    }
    let ok_chars = bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let ok_ends = bucket.as_bytes()[0].is_ascii_alphanumeric()
        && bucket.as_bytes()[bucket.len() - 1].is_ascii_alphanumeric();
    if !(3..=63).contains(&bucket.len()) || !ok_chars || !ok_ends {
        return Err(format!(
            "`{bucket}` is not a valid bucket name (3-63 characters of a-z, 0-9, '-' and '.', starting and ending with a letter or digit)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_uris() {
        assert_eq!(
            ArchiveUri::parse("s3://my-bucket/a/b/").unwrap(),
            ArchiveUri::S3 {
                bucket: "my-bucket".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(
            ArchiveUri::parse("s3://my-bucket").unwrap(),
            ArchiveUri::S3 {
                bucket: "my-bucket".into(),
                prefix: "".into()
            }
        );
        assert_eq!(
            ArchiveUri::parse("/tmp/x").unwrap(),
            ArchiveUri::Local("/tmp/x".into())
        );
        for bad in [
            "",
            "s3://",
            "s3:/bucket/x",
            "s3://Bad_Bucket/x",
            "http://x/y",
            "s3://ab",
        ] {
            assert!(ArchiveUri::parse(bad).is_err(), "{bad}");
        }
    }
}
