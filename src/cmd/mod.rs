//! The commands, one file each. `main.rs` parses arguments and calls these.

pub mod backfill;
pub mod import_export;
pub mod leases;
pub mod run;
pub mod schema;

/// How a command failed: a usage or configuration problem (exit 2) or a runtime failure (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Runtime(String),
}

impl CommandError {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Config(_) => 2,
            Self::Runtime(_) => 1,
        }
    }
}

impl From<crate::config::ConfigError> for CommandError {
    fn from(e: crate::config::ConfigError) -> Self {
        Self::Config(e.to_string())
    }
}
