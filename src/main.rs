//! The `dynamo-archiver` binary: parse arguments, set up logging, call the library, map the
//! outcome to an exit status (0 done, 1 runtime failure, 2 usage or configuration error).

use clap::Parser;
use dynamo_archiver::cmd::{self, CommandError};
use dynamo_archiver::config::cli::{Cli, Command};
use dynamo_archiver::config::{
    BackfillConfig, HistoryConfig, ImportExportConfig, LeasesConfig, RestoreConfig, RunConfig,
    SchemaConfig, SnapshotConfig, VerifyConfig,
};
use dynamo_archiver::telemetry;
use tokio_util::sync::CancellationToken;

/// mimalloc rather than glibc malloc, for every allocation of the process (its `override` feature
/// also serves the C libraries: ZSTD's contexts, aws-lc): glibc's arena locks and fragmentation
/// cost about a third of the worker's CPU in the soak. Two of mimalloc's defaults are changed, each
/// measured in the 64-shard soak (docs/PERFORMANCE.md): transparent huge pages are off (the
/// `no_thp` feature; with them, 192 of 267 MiB resident were 2 MiB pages backing small
/// allocations), and freed pages go back to the OS after 10 ms instead of 1 s ([`PURGE_DELAY_MS`]).
#[cfg(not(feature = "heap-profile"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// With the `heap-profile` feature, Rust's allocations are counted by dhat (C code's still go to
/// mimalloc): a profile for finding what holds memory at the peak, not a build to run.
#[cfg(feature = "heap-profile")]
#[global_allocator]
static GLOBAL: dhat::Alloc = dhat::Alloc;

/// `mi_option_purge_delay` in mimalloc 3's `mimalloc.h` (the Rust bindings leave it unnamed).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// With mimalloc's 1 s, pages freed in the last second stayed resident. Peak RSS of the 2M soak,
/// two runs each: 276 and 306 MiB at 1 s, 231 and 245 MiB at 10 ms, 199 and 209 MiB at 0 ms (but
/// about 15% fewer records per CPU-second, in madvise calls).
const PURGE_DELAY_MS: std::ffi::c_long = 10;

fn main() {
    // Before any thread starts: mimalloc's option setters are not thread-safe. An operator's
    // MIMALLOC_PURGE_DELAY (read by mimalloc itself) wins: memory against CPU is theirs to trade.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: a plain FFI call with a valid option index and value; no pointers involved.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    }
    #[cfg(feature = "heap-profile")]
    let profiler = dhat::Profiler::builder()
        .file_name(format!("dhat-heap-{}.json", std::process::id()))
        .build();
    let cli = Cli::parse();
    let code = match dispatch(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            e.downcast_ref::<CommandError>()
                .map_or(1, CommandError::exit_code)
        }
    };
    #[cfg(feature = "heap-profile")]
    drop(profiler);
    std::process::exit(code);
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => {
            let config = RunConfig::resolve(&args).map_err(CommandError::from)?;
            telemetry::init(config.log.format);
            with_signals(|shutdown| cmd::run::run(config, shutdown))
        }
        Command::Leases(args) => {
            let config = LeasesConfig::resolve(&args).map_err(CommandError::from)?;
            telemetry::init(config.log.format);
            let runtime = tokio::runtime::Runtime::new()?;
            runtime
                .block_on(cmd::leases::run(&config))
                .map_err(anyhow::Error::from)
        }
        Command::Backfill(args) => {
            let config = BackfillConfig::resolve(&args).map_err(CommandError::from)?;
            telemetry::init(config.log.format);
            with_signals(|shutdown| cmd::backfill::run(config, shutdown))
        }
        Command::ImportExport(args) => {
            let config = ImportExportConfig::resolve(&args).map_err(CommandError::from)?;
            telemetry::init(config.log.format);
            with_signals(|shutdown| cmd::import_export::run(config, shutdown))
        }
        Command::Verify(args) => {
            let config = VerifyConfig::resolve(&args).map_err(CommandError::from)?;
            telemetry::init(config.log.format);
            with_signals(|_| cmd::verify::run(config))
        }
        Command::History(args) => {
            let config = HistoryConfig::resolve(&args).map_err(CommandError::from)?;
            telemetry::init(config.log.format);
            with_signals(|_| cmd::history::run(config))
        }
        Command::Snapshot(args) => {
            let config = SnapshotConfig::resolve(&args).map_err(CommandError::from)?;
            telemetry::init(config.log.format);
            with_signals(|_| cmd::snapshot::run(config))
        }
        Command::Restore(args) => {
            let config = RestoreConfig::resolve(&args).map_err(CommandError::from)?;
            telemetry::init(config.log.format);
            with_signals(|shutdown| cmd::restore::run(config, shutdown))
        }
        Command::Schema(args) => {
            let config = SchemaConfig::resolve(&args).map_err(CommandError::from)?;
            telemetry::init(config.log.format);
            with_signals(|_| cmd::schema::run(config))
        }
    }
}

/// Runs a command on a new runtime with SIGTERM/SIGINT wired to its shutdown token.
fn with_signals<F, Fut>(command: F) -> anyhow::Result<()>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = Result<(), CommandError>>,
{
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let signals = tokio::spawn(wait_for_signal(shutdown.clone()));
        let result = command(shutdown).await;
        signals.abort();
        result.map_err(anyhow::Error::from)
    })
}

/// The first SIGTERM or SIGINT starts a clean stop; a second one exits at once (records not yet
/// checkpointed are read again on the next start, so nothing is lost either way).
async fn wait_for_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("stop signal received: writing what is held, then stopping");
    shutdown.cancel();
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::warn!("second stop signal: exiting now");
    std::process::exit(1);
}
