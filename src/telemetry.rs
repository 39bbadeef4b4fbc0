//! Logging: JSON lines (the default, for CloudWatch Logs) or human text, filtered by `RUST_LOG`
//! (default `info`). Item contents are only ever logged at debug level.

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (CloudWatch Logs Insights reads its fields).
    Json,
    /// Human text, coloured on a terminal.
    Text,
}

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn,aws_sdk_s3=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests calling into the library) is harmless; ignore it.
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            // The `worker` span (see `cmd::run`) puts the worker id on every line of the worker
            // and its shard tasks, as `"span":{"worker":"…"}`.
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
}
