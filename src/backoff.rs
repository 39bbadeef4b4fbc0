//! Exponential backoff with full jitter, for the archiver's own retry loops (on top of the SDK's
//! standard retries): throttling and transient failures are retried until shutdown, with waits
//! that spread out so several workers do not retry in lockstep.
//! See <https://aws.amazon.com/builders-library/timeouts-retries-and-backoff-with-jitter/>.

use rand::Rng;
use std::future::Future;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
    /// The shortest wait as a fraction of the ceiling: 0 for full jitter.
    floor: f64,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            attempt: 0,
            floor: 0.0,
        }
    }

    /// For restarting something that failed (a shard task): the wait is at least 95% of its
    /// ceiling, so the jitter spreads restarts without letting them come faster than the ceiling
    /// says: from 1 s to 60 s, fewer than 70 restarts an hour (see the test).
    pub fn restart(base: Duration, cap: Duration) -> Self {
        Self {
            floor: 0.95,
            ..Self::new(base, cap)
        }
    }

    /// The wait before the next try: uniform in [floor · c, c] for c = min(cap, base · 2^attempt).
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let ms = ceiling.as_millis() as u64;
        let low = (ms as f64 * self.floor) as u64;
        Duration::from_millis(rand::rng().random_range(low.min(ms)..=ms.max(1)))
    }

    /// The upper bound of the next wait (before jitter).
    pub fn ceiling(&self) -> Duration {
        let exp = 2u32.saturating_pow(self.attempt.min(20));
        self.base.saturating_mul(exp).min(self.cap)
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Runs `op` until it succeeds, fails with an error `retryable` rejects, or has been tried
/// `max_attempts` times; between attempts it waits as `backoff` says. `on_retry` sees each error
/// that will be retried and the wait before the next attempt (to count and log it). For loops over
/// one call on top of the SDK's retries; loops with state of their own (a checkpoint that updates
/// its lease, a Firehose delivery that resends only failed entries, a reader that reopens its
/// iterator) keep their own, with the same `Backoff`.
pub async fn retry<T, E, Fut>(
    mut backoff: Backoff,
    max_attempts: Option<u32>,
    mut op: impl FnMut() -> Fut,
    retryable: impl Fn(&E) -> bool,
    mut on_retry: impl FnMut(&E, Duration),
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    loop {
        match op().await {
            Err(e)
                if retryable(&e) && max_attempts.is_none_or(|max| backoff.attempts() + 1 < max) =>
            {
                let delay = backoff.next_delay();
                on_retry(&e, delay);
                tokio::time::sleep(delay).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_and_jitters_below_it() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut ceilings = Vec::new();
        for _ in 0..10 {
            let c = b.ceiling();
            let d = b.next_delay();
            assert!(d <= c, "{d:?} > {c:?}");
            ceilings.push(c.as_millis());
        }
        assert_eq!(&ceilings[..4], &[100, 200, 400, 800]);
        assert_eq!(*ceilings.last().unwrap(), 5000);
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(100));
    }

    #[test]
    fn a_restart_backoff_allows_few_restarts_an_hour_whatever_the_jitter() {
        // A task that fails at once, restarted for an hour: even if every wait came out at its
        // shortest, the restarts stay under 70 an hour (the shard restart policy's promise).
        let mut b = Backoff::restart(Duration::from_secs(1), Duration::from_secs(60));
        let (mut elapsed, mut restarts) = (0.0, 0);
        while elapsed < 3600.0 {
            let shortest = b.ceiling().as_secs_f64() * 0.95;
            let d = b.next_delay().as_secs_f64();
            assert!(d >= shortest - 0.001 && d <= b.ceiling().as_secs_f64().max(1.0));
            elapsed += shortest;
            restarts += 1;
        }
        assert!(restarts <= 70, "{restarts} restarts in an hour");
        assert!(
            restarts >= 60,
            "still retried about once a minute: {restarts}"
        );
    }

    #[tokio::test]
    async fn retry_stops_at_success_at_a_final_error_or_at_the_attempt_limit() {
        let quick = || Backoff::new(Duration::from_millis(1), Duration::from_millis(2));
        let mut calls = 0;
        let mut retried = 0;
        let r: Result<u32, &str> = retry(
            quick(),
            None,
            || {
                calls += 1;
                let n = calls;
                async move {
                    if n < 3 {
                        Err("busy")
                    } else {
                        Ok(n)
                    }
                }
            },
            |e| *e == "busy",
            |_, _| retried += 1,
        )
        .await;
        assert_eq!((r, retried), (Ok(3), 2));

        let r: Result<u32, &str> = retry(
            quick(),
            None,
            || async { Err("denied") },
            |e| *e == "busy",
            |_, _| {},
        )
        .await;
        assert_eq!(r, Err("denied"), "a final error is returned at once");

        let mut calls = 0;
        let r: Result<u32, &str> = retry(
            quick(),
            Some(4),
            || {
                calls += 1;
                async { Err("busy") }
            },
            |_| true,
            |_, _| {},
        )
        .await;
        assert_eq!((r, calls), (Err("busy"), 4));
    }
}
