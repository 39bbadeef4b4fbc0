//! Where an export is read from: its folder in S3 (`s3://bucket/prefix/AWSDynamoDB/<id>/`) or a
//! local copy of it.

use super::manifest::relative_to_aws_dynamodb;
use super::ExportError;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub enum ExportSource {
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
        /// Key of the export's folder, without a trailing `/`.
        folder: String,
    },
    Local(PathBuf),
}

/// Checksum files are optional (exports have written `.md5`, the guide says `.checksum`).
fn optional_name(name: &str) -> bool {
    name.ends_with(".md5") || name.ends_with(".checksum")
}

/// A data file ready to be read from local disk.
#[derive(Debug)]
pub struct LocalData {
    pub path: PathBuf,
    /// Downloaded into the spool folder (removed after use), as opposed to the source itself.
    pub downloaded: bool,
}

impl ExportSource {
    pub fn parse(uri: &str, client: aws_sdk_s3::Client) -> Result<Self, String> {
        if let Some(rest) = uri.strip_prefix("s3://") {
            let (bucket, folder) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(
                    "no bucket; write it as s3://bucket/prefix/AWSDynamoDB/<export-id>/".into(),
                );
            }
            return Ok(Self::S3 {
                client,
                bucket: bucket.to_owned(),
                folder: folder.trim_end_matches('/').to_owned(),
            });
        }
        if uri.contains("://") {
            return Err(
                "give s3://bucket/prefix/AWSDynamoDB/<export-id>/ or a local folder".into(),
            );
        }
        Ok(Self::Local(PathBuf::from(uri)))
    }

    /// The location of a file of the export folder, for messages.
    pub fn location(&self, name: &str) -> String {
        match self {
            Self::S3 { bucket, folder, .. } if folder.is_empty() => format!("s3://{bucket}/{name}"),
            Self::S3 { bucket, folder, .. } => format!("s3://{bucket}/{folder}/{name}"),
            Self::Local(dir) => dir.join(name).display().to_string(),
        }
    }

    /// A file of the export folder (a manifest); `None` if it does not exist.
    pub async fn read_optional(&self, name: &str) -> Result<Option<Vec<u8>>, ExportError> {
        let location = self.location(name);
        match self {
            Self::Local(dir) => match tokio::fs::read(dir.join(name)).await {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(ExportError::Source {
                    location,
                    message: e.to_string(),
                }),
            },
            Self::S3 {
                client,
                bucket,
                folder,
            } => {
                let key = if folder.is_empty() {
                    name.to_owned()
                } else {
                    format!("{folder}/{name}")
                };
                match client.get_object().bucket(bucket).key(&key).send().await {
                    Ok(out) => {
                        let body = out.body.collect().await.map_err(|e| ExportError::Source {
                            location: location.clone(),
                            message: e.to_string(),
                        })?;
                        Ok(Some(body.into_bytes().to_vec()))
                    }
                    Err(e) if e.code() == Some("NoSuchKey") => Ok(None),
                    // Without s3:ListBucket, S3 answers a missing object with 403, not 404.
                    Err(e) if e.code() == Some("AccessDenied") && optional_name(name) => {
                        tracing::warn!(object = %location, "cannot read it (403): treated as absent; grant s3:ListBucket on the export bucket to tell missing from forbidden");
                        Ok(None)
                    }
                    Err(e) => Err(ExportError::Source {
                        location,
                        message: DisplayErrorContext(&e).to_string(),
                    }),
                }
            }
        }
    }

    pub async fn read(&self, name: &str) -> Result<Vec<u8>, ExportError> {
        self.read_optional(name)
            .await?
            .ok_or_else(|| ExportError::Source {
                location: self.location(name),
                message: "not found: is this the export's folder (it holds manifest-summary.json)?"
                    .into(),
            })
    }

    /// Where a data file named by `dataFileS3Key` is, for messages.
    pub fn data_location(&self, key: &str) -> String {
        match self {
            Self::S3 { bucket, .. } => format!("s3://{bucket}/{key}"),
            Self::Local(_) => self.local_data_path(key).display().to_string(),
        }
    }

    /// A local copy keeps the `AWSDynamoDB/` tree: the folder's parent is that folder.
    fn local_data_path(&self, key: &str) -> PathBuf {
        let Self::Local(dir) = self else {
            unreachable!("local sources only")
        };
        let root = dir.parent().unwrap_or(Path::new("."));
        match relative_to_aws_dynamodb(key) {
            Some(rel) => root.join(rel),
            None => dir.join("data").join(key.rsplit('/').next().unwrap_or(key)),
        }
    }

    /// The data file on local disk: the source itself, or a download into `spool_dir`.
    pub async fn fetch(&self, key: &str, spool_dir: &Path) -> Result<LocalData, ExportError> {
        let location = self.data_location(key);
        match self {
            Self::Local(_) => {
                let path = self.local_data_path(key);
                if !path.is_file() {
                    return Err(ExportError::Source {
                        location,
                        message: "the data file named in manifest-files.json is missing".into(),
                    });
                }
                Ok(LocalData {
                    path,
                    downloaded: false,
                })
            }
            Self::S3 { client, bucket, .. } => {
                let source_error = |message: String| ExportError::Source {
                    location: location.clone(),
                    message,
                };
                let out = client
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| {
                        source_error(if e.code() == Some("NoSuchKey") {
                            "the data file named in manifest-files.json is missing".into()
                        } else {
                            DisplayErrorContext(&e).to_string()
                        })
                    })?;
                let name = key.replace('/', "_");
                let path = spool_dir.join(format!("export-{}-{name}", std::process::id()));
                let mut file = std::fs::File::create(&path)
                    .map_err(|e| source_error(format!("cannot write {}: {e}", path.display())))?;
                let mut body = out.body;
                // Streamed to disk: a data file is never held in memory whole.
                while let Some(chunk) = body
                    .try_next()
                    .await
                    .map_err(|e| source_error(e.to_string()))?
                {
                    file.write_all(&chunk).map_err(|e| {
                        source_error(format!("cannot write {}: {e}", path.display()))
                    })?;
                }
                Ok(LocalData {
                    path,
                    downloaded: true,
                })
            }
        }
    }
}
