//! The controller mutation quota (KIP-599): partitions created per second, broker-wide, as a
//! token bucket holding ten seconds' worth. A topic is admitted while the bucket is not empty
//! (its partitions may take it below zero, as Kafka's strict mode allows for the request that
//! crosses the line); after that, creations are refused with the time until it refills.

use crate::security::quotas::TokenBucket;
use parking_lot::Mutex;
use std::time::{Duration, Instant};

/// Seconds of the rate a burst may use at once.
const BURST_SECONDS: f64 = 10.0;

pub struct MutationQuota {
    /// Partitions per second; `None`: unlimited.
    rate: Option<f64>,
    bucket: Mutex<TokenBucket>,
}

impl MutationQuota {
    /// `rate` partitions per second; 0 is unlimited.
    pub fn new(rate: u32) -> MutationQuota {
        let rate = (rate > 0).then_some(f64::from(rate));
        MutationQuota {
            rate,
            bucket: Mutex::new(TokenBucket::full(
                rate.unwrap_or(0.0),
                BURST_SECONDS,
                Instant::now(),
            )),
        }
    }

    /// Takes `partitions` from the bucket if it is not empty; otherwise the throttle time (how
    /// long until it is).
    pub fn take(&self, partitions: i32) -> Result<(), Duration> {
        self.take_at(partitions, Instant::now())
    }

    fn take_at(&self, partitions: i32, now: Instant) -> Result<(), Duration> {
        let Some(rate) = self.rate else {
            return Ok(());
        };
        let mut b = self.bucket.lock();
        b.refill(rate, BURST_SECONDS, now);
        if b.tokens <= 0.0 {
            // until the bucket holds something again
            return Err(Duration::from_secs_f64(-b.tokens / rate + 1.0 / rate));
        }
        b.tokens -= f64::from(partitions.max(0));
        Ok(())
    }
}

/// A throttle time as the protocol's `throttle_time_ms`.
pub fn throttle_ms(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_admitted_then_creations_wait_for_the_refill() {
        let q = MutationQuota::new(100); // a burst of 1,000 partitions
        let t0 = Instant::now();
        for _ in 0..999 {
            q.take_at(1, t0).expect("within the burst");
        }
        // the last token admits a larger topic, taking the bucket below zero
        q.take_at(50, t0).expect("the bucket was not empty");
        let wait = q.take_at(1, t0).expect_err("empty");
        assert!(
            wait >= Duration::from_millis(490) && wait <= Duration::from_millis(520),
            "{wait:?}"
        );
        // half a second later it is back above zero
        q.take_at(1, t0 + Duration::from_millis(520))
            .expect("refilled");
        // unlimited
        let free = MutationQuota::new(0);
        for _ in 0..100_000 {
            free.take_at(1000, t0).expect("no quota");
        }
    }
}
