//! Progress of a long copy (a backfill, an export conversion or a restore): counters the workers
//! add to, and a reporter task that shows them. On a terminal the reporter draws a bar with
//! `indicatif`; elsewhere (ECS, CI, a pipe) it logs one line every few seconds, since a bar's
//! carriage returns make an unreadable log.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const BAR_REDRAW: Duration = Duration::from_millis(250);
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Where progress goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, else log lines.
    Auto,
    Bar,
    Log,
    Off,
}

/// Counters the workers add to; the reporter reads them.
#[derive(Debug, Default)]
pub struct Progress {
    pub items: AtomicU64,
    pub bytes: AtomicU64,
    pub files: AtomicU64,
    /// Capacity units consumed (read for a backfill, write for a restore), in thousandths.
    pub capacity_milli: AtomicU64,
    pub parts_done: AtomicU64,
}

impl Progress {
    pub fn add_capacity(&self, units: f64) {
        self.capacity_milli
            .fetch_add((units * 1000.0).round() as u64, Ordering::Relaxed);
    }

    pub fn capacity(&self) -> f64 {
        self.capacity_milli.load(Ordering::Relaxed) as f64 / 1000.0
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

/// The terminal bar: indicatif draws the bar and the percentage (when the total is known), the
/// message is the rest of [`details`].
fn bar(labels: &Labels) -> ProgressBar {
    let template = if labels.expected_items > 0 {
        "{prefix} [{bar:20}] {percent}% {wide_msg}"
    } else {
        "{prefix} {wide_msg}"
    };
    let style = ProgressStyle::with_template(template)
        .expect("the templates above are valid")
        .progress_chars("#>.");
    ProgressBar::with_draw_target(
        Some(labels.expected_items.max(1)),
        ProgressDrawTarget::stderr(),
    )
    .with_style(style)
    .with_prefix(labels.title.clone())
}

/// Where the bar stands: past an estimate (a Scan's item count is approximate) it stays full,
/// and with no estimate its one step is never reached.
fn bar_position(items: u64, expected: u64) -> u64 {
    if expected == 0 {
        0
    } else {
        items.min(expected)
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
        let drawn = (sink == Sink::Bar).then(|| bar(&labels));
        let every = if drawn.is_some() {
            BAR_REDRAW
        } else {
            LOG_EVERY
        };
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
            let elapsed = started.elapsed();
            match &drawn {
                Some(bar) => {
                    bar.set_position(bar_position(progress.items(), labels.expected_items));
                    bar.set_message(details(&progress, &labels, elapsed, false));
                }
                None => tracing::info!(
                    items = progress.items(),
                    bytes = progress.bytes.load(Ordering::Relaxed),
                    files = progress.files.load(Ordering::Relaxed),
                    "{}",
                    render(&progress, &labels, elapsed)
                ),
            }
        }
        if let Some(bar) = drawn {
            bar.finish_and_clear();
        }
    })
}

/// One log line, e.g.
/// `backfill users 52% 26,000 items of ~50,000 · 12.4 MB · 410 RCU/s · 1/4 segments · 0:14 left`
pub fn render(progress: &Progress, labels: &Labels, elapsed: Duration) -> String {
    format!(
        "{} {}",
        labels.title,
        details(progress, labels, elapsed, true)
    )
}

/// The counters, rates and time left; with `percent`, the share done first (the bar shows its
/// own).
fn details(progress: &Progress, labels: &Labels, elapsed: Duration, percent: bool) -> String {
    let items = progress.items();
    let secs = elapsed.as_secs_f64().max(0.001);
    let mut out = String::new();
    let fraction = if labels.expected_items > 0 {
        Some((items as f64 / labels.expected_items as f64).min(1.0))
    } else {
        None
    };
    if let (true, Some(f)) = (percent, fraction) {
        out.push_str(&format!("{:.0}% ", f * 100.0));
    }
    out.push_str(&format!("{} items", thousands(items)));
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
        out.push_str(&format!(" · {:.0} {unit}/s", progress.capacity() / secs));
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
        p.add_capacity(1000.0);
        p.parts_done.store(1, Ordering::Relaxed);
        let labels = Labels {
            title: "backfill users".into(),
            expected_items: 50_000,
            parts: ("segments", 4),
            capacity: Some("RCU"),
        };
        let line = render(&p, &labels, Duration::from_secs(10));
        assert_eq!(
            line,
            "backfill users 50% 25,000 items of ~50,000 · 12.4 MB · 2,500 items/s · 100 RCU/s · 1/4 segments · 0:10 left"
        );
        assert!(
            details(&p, &labels, Duration::from_secs(10), false).starts_with("25,000 items"),
            "the bar draws its own percentage"
        );
        let line = render(
            &p,
            &Labels {
                expected_items: 0,
                ..labels
            },
            Duration::from_secs(10),
        );
        assert!(!line.contains('%') && !line.contains("left"), "{line}");
    }

    #[test]
    fn the_bar_stops_full_past_an_estimate_and_empty_without_one() {
        assert_eq!(bar_position(5, 10), 5);
        assert_eq!(
            bar_position(25, 10),
            10,
            "a Scan's estimate is exceeded: full"
        );
        assert_eq!(bar_position(25, 0), 0, "no estimate: no bar to fill");
        let labels = Labels {
            title: "restore users".into(),
            expected_items: 10,
            parts: ("partitions", 64),
            capacity: Some("WCU"),
        };
        let b = bar(&labels);
        b.set_draw_target(ProgressDrawTarget::hidden());
        b.set_position(bar_position(25, labels.expected_items));
        assert_eq!(b.position(), b.length().unwrap(), "drawn full");
        b.finish_and_clear();
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
