//! `dynamo-archiver run`: the worker's arguments and their validation into the worker's
//! [`Settings`] and the process around it (HTTP endpoint, logs, metrics).

use super::cli::{CommonArgs, MetricsMode, StartPosition};
use super::resolve::*;
use super::{ConfigError, LogConfig};
use crate::archive::ArchiveUri;
use crate::pipeline::worker::{Output, Settings};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(60);
/// The longest `--flush-interval`: half the stream's 24-hour retention (see the check).
pub const MAX_FLUSH_INTERVAL: Duration = Duration::from_secs(12 * 3600);
pub const DEFAULT_HTTP: &str = "0.0.0.0:9464";
pub const DEFAULT_FAILOVER_TIME: Duration = Duration::from_secs(10);
pub const DEFAULT_DISCOVERY_INTERVAL: Duration = Duration::from_secs(30);
/// A shard with no successful read for this long makes `/healthz` fail: idle shards are read every
/// second and retries back off to at most 20 s, so two minutes means stuck.
pub const DEFAULT_STUCK_AFTER: Duration = Duration::from_secs(120);

#[derive(Debug, Args, Clone, Default)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Table whose stream to archive (repeat for several tables). [required]
    #[arg(
        long = "table",
        env = "ARCHIVER_TABLES",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub tables: Vec<String>,

    /// Parquet output: `s3://bucket/prefix` or a local directory. [required: this or --firehose]
    #[arg(long, env = "ARCHIVER_ARCHIVE", value_name = "URI")]
    pub archive: Option<String>,

    /// Firehose delivery stream: JSON-lines output instead of Parquet. [required: this or
    /// --archive]
    #[arg(long, env = "ARCHIVER_FIREHOSE", value_name = "NAME")]
    pub firehose: Option<String>,

    /// With --firehose: where a stream record too big for one Firehose record (1,000 KiB as a
    /// JSON line) is written whole, `s3://bucket/prefix`, with a pointer line sent to Firehose.
    /// Without it such a record stops the worker (it is never dropped). [default: none]
    #[arg(long, env = "ARCHIVER_OVERFLOW_ARCHIVE", value_name = "URI")]
    pub overflow_archive: Option<String>,

    /// DynamoDB table holding leases and checkpoints; created (on-demand billing) if missing.
    /// [default: dynamo-archiver-leases]
    #[arg(long, env = "ARCHIVER_LEASE_TABLE", value_name = "NAME")]
    pub lease_table: Option<String>,

    /// This worker's name in the lease table. [default: the ECS task id, else hostname:pid]
    #[arg(long, env = "ARCHIVER_WORKER_ID", value_name = "ID")]
    pub worker_id: Option<String>,

    /// Where a shard with no checkpoint starts. [default: trim-horizon]
    #[arg(long, env = "ARCHIVER_START_POSITION", value_name = "P")]
    pub start_position: Option<StartPosition>,

    /// The longest a record waits before it is written, e.g. 500ms, 10s, 5m. [default: 60s]
    #[arg(long, env = "ARCHIVER_FLUSH_INTERVAL", value_name = "D")]
    pub flush_interval: Option<String>,

    /// Target size of one archive file, e.g. 64MiB. [default: 128MiB]
    #[arg(long, env = "ARCHIVER_FLUSH_SIZE", value_name = "BYTES")]
    pub flush_size: Option<String>,

    /// Address for /healthz, /readyz and /metrics; `off` disables it. [default: 0.0.0.0:9464]
    #[arg(long, env = "ARCHIVER_HTTP", value_name = "ADDR")]
    pub http: Option<String>,

    /// A lease not renewed for this long may be taken by another worker. [default: 10s]
    #[arg(long, env = "ARCHIVER_FAILOVER_TIME", value_name = "D")]
    pub failover_time: Option<String>,

    /// KMS key (id or ARN) for SSE-KMS on archive objects. [default: the bucket's default encryption]
    #[arg(long, env = "ARCHIVER_SSE_KMS_KEY", value_name = "KEY")]
    pub sse_kms_key: Option<String>,

    /// Local folder where files are assembled before upload (bounded memory, see docs).
    /// [default: <system temp dir>/dynamo-archiver]
    #[arg(long, env = "ARCHIVER_SPOOL_DIR", value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,

    /// How often the streams are listed for new shards (a shard that ends triggers a listing at
    /// once). [default: 30s]
    #[arg(long, env = "ARCHIVER_DISCOVERY_INTERVAL", value_name = "D")]
    pub discovery_interval: Option<String>,

    /// The most shard leases this worker holds; the rest are left to other workers (each worker's
    /// memory and spool disk grow with the shards it holds). [default: unbounded]
    #[arg(long, env = "ARCHIVER_MAX_LEASES", value_name = "N")]
    pub max_leases: Option<u32>,

    /// `/healthz` fails when a shard this worker owns has had no successful read for this long
    /// (idle shards are read every second; retries wait up to 20 s). [default: 120s]
    #[arg(long, env = "ARCHIVER_STUCK_AFTER", value_name = "D")]
    pub stuck_after: Option<String>,

    /// Metrics also as CloudWatch embedded metric format lines on stdout, once a minute
    /// (`emf`), for alarms without a Prometheus scraper; or `off`. [default: off]
    #[arg(long, env = "ARCHIVER_METRICS", value_name = "M")]
    pub metrics: Option<MetricsMode>,
}

/// The validated configuration of `dynamo-archiver run`.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// What the worker itself takes.
    pub worker: Settings,
    pub http: Option<SocketAddr>,
    pub log: LogConfig,
    pub stuck_after: Duration,
    /// `--metrics emf`: CloudWatch embedded metric format lines on stdout too.
    pub emf_metrics: bool,
}

impl RunConfig {
    pub fn resolve(args: &RunArgs) -> Result<Self, ConfigError> {
        let file = load_file(&args.common)?;
        let tables = tables(&args.tables, file.tables.as_ref())?;
        let archive = args.archive.as_ref().or(file.archive.as_ref());
        let firehose = args.firehose.as_ref().or(file.firehose.as_ref());
        let overflow = args
            .overflow_archive
            .as_ref()
            .or(file.overflow_archive.as_ref());
        let output = match (archive, firehose) {
            (Some(_), None) if overflow.is_some() => {
                return Err(ConfigError::BadValue {
                    option: "--overflow-archive",
                    message: "it is for --firehose output only (Parquet files hold records of any size); remove it".into(),
                })
            }
            (Some(a), None) => Output::Archive(ArchiveUri::parse(a)?),
            (None, Some(stream)) => Output::Firehose {
                stream: firehose_stream(stream)?,
                overflow: overflow
                    .map(|o| {
                        ArchiveUri::parse(o).map_err(|e| ConfigError::BadValue {
                            option: "--overflow-archive",
                            message: format!("`{}`: {}", e.uri, e.message),
                        })
                    })
                    .transpose()?,
            },
            _ => return Err(ConfigError::OutputChoice),
        };
        let lease_table = lease_table(args.lease_table.as_ref(), &file)?;
        let worker_id = args
            .worker_id
            .clone()
            .or(file.worker_id.clone())
            .unwrap_or_else(default_worker_id);
        if worker_id.trim().is_empty() {
            return Err(ConfigError::BadValue {
                option: "--worker-id",
                message: "it is empty".into(),
            });
        }
        let flush_interval = duration(
            "--flush-interval",
            args.flush_interval.as_ref(),
            file.flush_interval.as_ref(),
            DEFAULT_FLUSH_INTERVAL,
        )?;
        if flush_interval < Duration::from_millis(100) {
            return Err(ConfigError::BadValue {
                option: "--flush-interval",
                message: "must be at least 100ms".into(),
            });
        }
        if flush_interval > MAX_FLUSH_INTERVAL {
            return Err(ConfigError::BadValue {
                option: "--flush-interval",
                message: "must be at most 12h: a record waits this long before it is written, and the stream keeps records only 24 hours, so a crash near the end of a longer wait could leave too little time to read them again".into(),
            });
        }
        let flush_size_bytes = flush_size(args.flush_size.as_ref(), &file)?;
        let http_text = args
            .http
            .clone()
            .or(file.http.clone())
            .unwrap_or_else(|| DEFAULT_HTTP.to_owned());
        let http = if http_text == "off" {
            None
        } else {
            Some(
                http_text
                    .parse::<SocketAddr>()
                    .map_err(|_| ConfigError::BadValue {
                        option: "--http",
                        message: format!(
                            "`{http_text}` is not an address; write it like 0.0.0.0:9464, or `off`"
                        ),
                    })?,
            )
        };
        let failover_time = duration(
            "--failover-time",
            args.failover_time.as_ref(),
            file.failover_time.as_ref(),
            DEFAULT_FAILOVER_TIME,
        )?;
        if failover_time < Duration::from_secs(1) {
            return Err(ConfigError::BadValue {
                option: "--failover-time",
                message: "must be at least 1s (leases are renewed three times per failover time)"
                    .into(),
            });
        }
        let discovery_interval = duration(
            "--discovery-interval",
            args.discovery_interval.as_ref(),
            file.discovery_interval.as_ref(),
            DEFAULT_DISCOVERY_INTERVAL,
        )?;
        if discovery_interval < Duration::from_secs(1) {
            return Err(ConfigError::BadValue {
                option: "--discovery-interval",
                message:
                    "must be at least 1s (DescribeStream allows 10 calls per second per account)"
                        .into(),
            });
        }
        let stuck_after = duration(
            "--stuck-after",
            args.stuck_after.as_ref(),
            file.stuck_after.as_ref(),
            DEFAULT_STUCK_AFTER,
        )?;
        if stuck_after < Duration::from_secs(2) {
            return Err(ConfigError::BadValue {
                option: "--stuck-after",
                message: "must be at least 2s (idle shards are read every second); keep it above 60s in production, where retries wait up to 20s".into(),
            });
        }
        let max_leases = match args.max_leases.or(file.max_leases) {
            Some(0) => {
                return Err(ConfigError::BadValue {
                    option: "--max-leases",
                    message: "must be at least 1 (leave it unset for no cap)".into(),
                })
            }
            n => n.map(|n| n as usize),
        };
        Ok(Self {
            worker: Settings {
                tables,
                output,
                lease_table,
                worker_id,
                start_position: args
                    .start_position
                    .or(file.start_position)
                    .unwrap_or(StartPosition::TrimHorizon)
                    .into(),
                flush_interval,
                flush_size_bytes,
                failover_time,
                sse_kms_key: args.sse_kms_key.clone().or(file.sse_kms_key.clone()),
                spool_dir: spool_dir(args.spool_dir.as_ref(), &file),
                discovery_interval,
                max_leases,
            },
            stuck_after,
            emf_metrics: args.metrics.or(file.metrics) == Some(MetricsMode::Emf),
            http,
            log: log_config(&args.common, &file),
        })
    }
}

/// Firehose delivery stream names: 1-64 characters of a-z, A-Z, 0-9, `_`, `.` and `-`.
/// <https://docs.aws.amazon.com/firehose/latest/APIReference/API_CreateDeliveryStream.html>
fn firehose_stream(name: &str) -> Result<String, ConfigError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !ok {
        return Err(ConfigError::BadValue {
            option: "--firehose",
            message: format!("`{name}` is not a delivery stream name (1-64 characters of a-z, A-Z, 0-9, _ . -); give the name, not the ARN"),
        });
    }
    Ok(name.to_owned())
}

/// On ECS, the last segment of `ECS_CONTAINER_METADATA_URI_V4` (`<task id>-<container id>`,
/// unique per container of a task, which is what a lease owner must be); elsewhere `hostname:pid`.
fn default_worker_id() -> String {
    if let Ok(uri) = std::env::var("ECS_CONTAINER_METADATA_URI_V4") {
        // .../v4/<task-id>-<container-id>: the segment identifies this container of this task.
        if let Some(last) = uri.trim_end_matches('/').rsplit('/').next() {
            if !last.is_empty() {
                return last.to_owned();
            }
        }
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}
