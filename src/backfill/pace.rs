//! `--max-rcu`: keeps the read capacity a backfill consumes within a rate, measured from the
//! ConsumedCapacity that DynamoDB returns with every Scan page.
//!
//! A token bucket that may go into debt: a page's cost is known only after it is read, so each
//! request reserves an estimate (the segment's previous page), waits while the balance is negative,
//! and settles the difference when the answer arrives. The reservation keeps many segments that
//! wake together from all sending at once; the debt makes a 1 MB page that costs more than a
//! second's budget simply wait longer next time. Over any run the average stays at the rate plus
//! at most one burst (one second's worth) divided by the run's length.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The pure bucket, in seconds since an arbitrary epoch so tests can drive time.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    balance: f64,
    at: f64,
}

impl TokenBucket {
    /// Starts empty: the first request goes at once (balance 0 is not debt), then the rate rules.
    pub fn new(rate: f64, now: f64) -> Self {
        Self {
            rate,
            burst: rate,
            balance: 0.0,
            at: now,
        }
    }

    fn refill(&mut self, now: f64) {
        if now > self.at {
            self.balance = (self.balance + (now - self.at) * self.rate).min(self.burst);
            self.at = now;
        }
    }

    /// Reserves `estimate` units if the bucket is not in debt; otherwise the seconds to wait
    /// before asking again.
    pub fn try_reserve(&mut self, now: f64, estimate: f64) -> Result<(), f64> {
        self.refill(now);
        if self.balance >= 0.0 {
            self.balance -= estimate;
            Ok(())
        } else {
            Err(-self.balance / self.rate)
        }
    }

    /// Corrects a reservation by what the request really consumed.
    pub fn settle(&mut self, estimate: f64, actual: f64) {
        self.balance += estimate - actual;
    }

    pub fn balance(&self) -> f64 {
        self.balance
    }
}

/// The shared pacer of one backfill; `None` rate means no limit.
#[derive(Debug)]
pub struct Pacer {
    bucket: Option<Mutex<TokenBucket>>,
    epoch: Instant,
}

impl Pacer {
    pub fn new(max_rcu: Option<f64>) -> Self {
        Self {
            bucket: max_rcu.map(|r| Mutex::new(TokenBucket::new(r, 0.0))),
            epoch: Instant::now(),
        }
    }

    fn now(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64()
    }

    /// Waits until a request estimated to cost `estimate` units may go, and reserves it.
    pub async fn acquire(&self, estimate: f64) {
        let Some(bucket) = &self.bucket else { return };
        loop {
            let wait = {
                let mut b = bucket.lock().expect("pacer lock is never poisoned");
                match b.try_reserve(self.now(), estimate) {
                    Ok(()) => return,
                    Err(secs) => secs,
                }
            };
            // A short floor keeps waiters from spinning on rounding.
            tokio::time::sleep(Duration::from_secs_f64(wait.max(0.005))).await;
        }
    }

    pub fn settle(&self, estimate: f64, actual: f64) {
        if let Some(bucket) = &self.bucket {
            bucket
                .lock()
                .expect("pacer lock is never poisoned")
                .settle(estimate, actual);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulates `workers` requesters sharing one bucket, each page costing `cost` units, for
    /// `secs` seconds in steps of 1 ms; returns the units consumed.
    fn simulate(rate: f64, workers: usize, cost: f64, secs: f64) -> f64 {
        let mut b = TokenBucket::new(rate, 0.0);
        let mut next_try = vec![0.0f64; workers];
        let mut consumed = 0.0;
        let mut t = 0.0;
        while t < secs {
            for w in next_try.iter_mut() {
                if *w <= t {
                    match b.try_reserve(t, cost / 2.0) {
                        Ok(()) => {
                            // The answer comes 20 ms later and costs `cost`.
                            b.settle(cost / 2.0, cost);
                            consumed += cost;
                            *w = t + 0.02;
                        }
                        Err(wait) => *w = t + wait,
                    }
                }
            }
            t += 0.001;
        }
        consumed
    }

    #[test]
    fn the_rate_holds_for_any_page_cost_and_concurrency() {
        // (rate, workers, cost per page): small pages, pages bigger than a second's budget,
        // many segments waking together. Each case could exceed its rate without the pacer
        // (workers x 50 pages/s x cost > rate).
        let cases = [
            (100.0, 4, 1.0),
            (100.0, 4, 10.0),
            (100.0, 16, 128.0),
            (50.0, 8, 256.0),
            (1000.0, 8, 4.0),
        ];
        for (rate, workers, cost) in cases {
            let secs = 60.0;
            let got = simulate(rate, workers, cost, secs) / secs;
            // Within the rate plus one burst and one round of in-flight pages over the run.
            let ceiling = rate * 1.1;
            assert!(
                got <= ceiling,
                "rate {rate} workers {workers} cost {cost}: {got}/s"
            );
            assert!(
                got >= rate * 0.9,
                "rate {rate} workers {workers} cost {cost}: only {got}/s"
            );
        }
    }

    #[test]
    fn a_debt_makes_the_next_request_wait() {
        let mut b = TokenBucket::new(10.0, 0.0);
        assert!(b.try_reserve(0.0, 1.0).is_ok());
        b.settle(1.0, 30.0);
        assert_eq!(b.balance(), -30.0);
        let wait = b.try_reserve(0.0, 1.0).unwrap_err();
        assert!((wait - 3.0).abs() < 1e-9, "{wait}");
        assert!(b.try_reserve(3.0, 1.0).is_ok());
    }

    #[test]
    fn idle_time_saves_at_most_one_second() {
        let mut b = TokenBucket::new(10.0, 0.0);
        assert!(b.try_reserve(100.0, 0.0).is_ok());
        assert_eq!(b.balance(), 10.0);
    }
}
