//! Progress of a long copy (a backfill, an export conversion or a restore): shared counters, and a reporter
//! task that draws a bar on a terminal or logs a line every few seconds elsewhere (ECS, CI).

use crate::config::cli::ProgressMode;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const BAR_REDRAW: Duration = Duration::from_millis(250);
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Counters the workers add to; the reporter reads them.
#[derive(Debug, Default)]
pub struct Progress {
    pub items: AtomicU64,
    pub bytes: AtomicU64,
    pub files: AtomicU64,
    /// Capacity units (read for a backfill, write for a restore), in thousandths.
    pub rcu_milli: AtomicU64,
    pub parts_done: AtomicU64,
}

impl Progress {
    pub fn add_rcu(&self, units: f64) {
        self.rcu_milli
            .fetch_add((units * 1000.0).round() as u64, Ordering::Relaxed);
    }

    pub fn rcu(&self) -> f64 {
        self.rcu_milli.load(Ordering::Relaxed) as f64 / 1000.0
    }

    pub fn items(&self) -> u64 {
        self.items.load(Ordering::Relaxed)
    }
}

/// What the reporter shows besides the counters.
#[derive(Debug, Clone)]
pub struct Labels {
    /// e.g. `backfill users`
    pub title: String,
    /// Items expected in this run (an estimate; 0 when unknown).
    pub expected_items: u64,
    /// Name of the parts being counted (`segments`, `files`) and how many there are.
    pub parts: (&'static str, u64),
    /// The capacity unit to show a rate of: `RCU` (backfill), `WCU` (restore), or none (export
    /// conversion).
    pub capacity: Option<&'static str>,
}

/// Where the reporter writes, once `auto` is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    Bar,
    Log,
    Off,
}

fn sink(mode: ProgressMode) -> Sink {
    match mode {
        ProgressMode::Bar => Sink::Bar,
        ProgressMode::Log => Sink::Log,
        ProgressMode::Off => Sink::Off,
        ProgressMode::Auto if std::io::stderr().is_terminal() => Sink::Bar,
        ProgressMode::Auto => Sink::Log,
    }
}

/// Reports until `stop` is cancelled; the caller awaits the handle.
pub fn spawn_reporter(
    mode: ProgressMode,
    progress: Arc<Progress>,
    labels: Labels,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let sink = sink(mode);
    tokio::spawn(async move {
        if sink == Sink::Off {
            return;
        }
        let started = Instant::now();
        let every = if sink == Sink::Bar {
            BAR_REDRAW
        } else {
            LOG_EVERY
        };
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
            let line = render(&progress, &labels, started.elapsed(), sink == Sink::Bar);
            if sink == Sink::Bar {
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r\x1b[2K{line}");
                let _ = err.flush();
            } else {
                tracing::info!(
                    items = progress.items(),
                    bytes = progress.bytes.load(Ordering::Relaxed),
                    files = progress.files.load(Ordering::Relaxed),
                    "{line}"
                );
            }
        }
        if sink == Sink::Bar {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    })
}

/// One progress line, e.g.
/// `backfill users [#####.....] 52% 26,000/50,000 items · 12.4 MB · 410 RCU/s · 1/4 segments · 0:14 left`
pub fn render(progress: &Progress, labels: &Labels, elapsed: Duration, bar: bool) -> String {
    let items = progress.items();
    let secs = elapsed.as_secs_f64().max(0.001);
    let mut out = labels.title.clone();
    let fraction = if labels.expected_items > 0 {
        Some((items as f64 / labels.expected_items as f64).min(1.0))
    } else {
        None
    };
    if let (true, Some(f)) = (bar, fraction) {
        const WIDTH: usize = 20;
        let filled = (f * WIDTH as f64).round() as usize;
        out.push_str(&format!(
            " [{}{}]",
            "#".repeat(filled),
            ".".repeat(WIDTH - filled)
        ));
    }
    if let Some(f) = fraction {
        out.push_str(&format!(" {:.0}%", f * 100.0));
    }
    out.push_str(&format!(" {} items", thousands(items)));
    if labels.expected_items > 0 {
        out.push_str(&format!(" of ~{}", thousands(labels.expected_items)));
    }
    out.push_str(&format!(
        " · {:.1} MB",
        progress.bytes.load(Ordering::Relaxed) as f64 / 1e6
    ));
    out.push_str(&format!(
        " · {} items/s",
        thousands((items as f64 / secs) as u64)
    ));
    if let Some(unit) = labels.capacity {
        out.push_str(&format!(" · {:.0} {unit}/s", progress.rcu() / secs));
    }
    out.push_str(&format!(
        " · {}/{} {}",
        progress.parts_done.load(Ordering::Relaxed),
        labels.parts.1,
        labels.parts.0
    ));
    if let Some(f) = fraction.filter(|f| *f > 0.0 && *f < 1.0) {
        let left = secs * (1.0 - f) / f;
        out.push_str(&format!(" · {} left", clock(left as u64)));
    }
    out
}

pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn clock(secs: u64) -> String {
    if secs >= 3600 {
        format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
    } else {
        format!("{}:{:02}", secs / 60, secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_shows_counts_rate_and_time_left() {
        let p = Progress::default();
        p.items.store(25_000, Ordering::Relaxed);
        p.bytes.store(12_400_000, Ordering::Relaxed);
        p.add_rcu(1000.0);
        p.parts_done.store(1, Ordering::Relaxed);
        let labels = Labels {
            title: "backfill users".into(),
            expected_items: 50_000,
            parts: ("segments", 4),
            capacity: Some("RCU"),
        };
        let line = render(&p, &labels, Duration::from_secs(10), true);
        assert_eq!(
            line,
            "backfill users [##########..........] 50% 25,000 items of ~50,000 · 12.4 MB · 2,500 items/s · 100 RCU/s · 1/4 segments · 0:10 left"
        );
        let line = render(
            &p,
            &Labels {
                expected_items: 0,
                ..labels
            },
            Duration::from_secs(10),
            false,
        );
        assert!(!line.contains('%') && !line.contains("left"), "{line}");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
