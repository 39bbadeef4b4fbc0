//! The archiver binary run as a real process: its arguments for the tests, its exit, its log,
//! and its HTTP endpoint (`/metrics`, `/healthz`).

use super::*;
use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// The archiver binary, run as a real process.
pub struct Archiver {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Archiver {
    pub fn start(stack: &Stack, args: &[&str]) -> Self {
        Self::start_env(stack, args, &[])
    }

    pub fn start_env(stack: &Stack, args: &[&str], extra_env: &[(&str, &str)]) -> Self {
        let log = stack
            .dir
            .path()
            .join(format!("archiver-{}.log", free_port()));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dynamo-archiver"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "RUST_LOG",
                std::env::var("ARCHIVER_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(stack.env())
            // Allocator settings reach the worker, for measuring memory (scripts/soak).
            .envs(std::env::vars().filter(|(k, _)| k.starts_with("MIMALLOC_")))
            .envs(
                extra_env
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string())),
            );
        Self {
            child: Some(spawn_logged(cmd, &log)),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGTERM, then a clean exit (status 0) within the contract's 20 s (plus slack).
    pub fn stop(&mut self) {
        self.signal("TERM");
        let status = self.wait(Duration::from_secs(25));
        assert!(
            status.success(),
            "clean exit after SIGTERM; log:\n{}",
            self.log_text()
        );
    }

    /// Starts `run` on one table with a local archive in the stack's directory (see
    /// [`run_args`]); returns the worker and the archive directory.
    pub fn start_local(stack: &Stack, table: &str) -> (Self, PathBuf) {
        let archive = stack.dir.path().join("archive");
        let spool = stack.dir.path().join("spool");
        let a = Self::start(
            stack,
            &run_args(table, archive.to_str().unwrap(), spool.to_str().unwrap()),
        );
        (a, archive)
    }

    /// The exit status if the process exits within `timeout`, else `None` (still running).
    pub fn exited_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "archiver did not exit within {timeout:?}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs a short command to completion: (exit code, stdout, stderr).
    pub fn output(stack: &Stack, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_dynamo-archiver"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(stack.env())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs to completion and returns (exit code, log).
    pub fn run_to_exit(stack: &Stack, args: &[&str], timeout: Duration) -> (i32, String) {
        let mut a = Self::start(stack, args);
        let status = a.wait(timeout);
        (status.code().unwrap_or(-1), a.log_text())
    }
}

/// Lines of a worker's log shown when a test fails while the worker is alive.
const LOG_TAIL_ON_FAILURE: usize = 80;

impl Drop for Archiver {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            // A test that fails while a worker runs shows the end of its log: the reason is
            // usually there, and CI keeps nothing else.
            if std::thread::panicking() {
                let log = self.log_text();
                let lines: Vec<&str> = log.lines().collect();
                let tail = &lines[lines.len().saturating_sub(LOG_TAIL_ON_FAILURE)..];
                eprintln!(
                    "--- last {} lines of {} ---\n{}",
                    tail.len(),
                    self.log.display(),
                    tail.join("\n")
                );
            }
        }
    }
}

/// Common `run` arguments for tests: fast flushes, no HTTP port clash, text logs.
pub fn run_args<'a>(table: &'a str, archive: &'a str, spool: &'a str) -> Vec<&'a str> {
    let mut args = worker_args(table, "--archive", archive, spool, "off");
    args.extend(["--log-format", "text"]);
    args
}

/// `run` on one table with fast flushes, to `output_flag output` (`--archive URI` or
/// `--firehose NAME`), serving HTTP on `http` (or `off`); no `--log-format`, so callers choose.
pub fn worker_args<'a>(
    table: &'a str,
    output_flag: &'a str,
    output: &'a str,
    spool: &'a str,
    http: &'a str,
) -> Vec<&'a str> {
    vec![
        "run",
        "--table",
        table,
        output_flag,
        output,
        "--flush-interval",
        "1s",
        "--http",
        http,
        "--spool-dir",
        spool,
        "--discovery-interval",
        "2s",
        // Leases of a killed worker are taken after this long (default 10s).
        "--failover-time",
        "3s",
    ]
}

/// A plain HTTP/1.1 GET on 127.0.0.1 (the worker's own endpoint): (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::Read;
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

/// The value of a Prometheus sample, summed over its label sets (`name{...} value` lines).
pub fn metric_total(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
