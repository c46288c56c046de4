//! One backoff for every retry loop: exponential pauses with jitter, capped, that end early when
//! the work is cancelled. Retries of object-store requests, uploads, catalog mirroring, topic
//! deletions in the bucket and manifests at start-up all pause through it.

use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    attempts: u32,
}

impl Backoff {
    /// Pauses start at `initial` and double up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            next: initial,
            attempts: 0,
        }
    }

    /// The pause before the next retry (with up to a quarter more or less, so retrying clients
    /// do not move in lockstep), then doubles the one after.
    pub fn next_pause(&mut self) -> Duration {
        let d = jitter(self.next);
        self.next = (self.next * 2).min(self.max);
        self.attempts += 1;
        d
    }

    /// Pauses before the next retry. Returns `false` at once when `cancel` fires: stop retrying.
    pub async fn wait(&mut self, cancel: &CancellationToken) -> bool {
        let pause = self.next_pause();
        tokio::select! {
            _ = tokio::time::sleep(pause) => true,
            _ = cancel.cancelled() => false,
        }
    }

    /// Pauses taken since the last success.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// After a success: the next failure pauses `initial` again.
    pub fn reset(&mut self) {
        self.next = self.initial;
        self.attempts = 0;
    }
}

/// `d` scaled by a random factor in `[0.75, 1.25)`.
fn jitter(d: Duration) -> Duration {
    let r = uuid::Uuid::new_v4().as_u128() as u64 % 1000;
    d.mul_f64(0.75 + r as f64 / 2000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_cap_and_reset() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let pauses: Vec<Duration> = (0..4).map(|_| b.next_pause()).collect();
        let within = |d: Duration, base: u64| {
            d >= Duration::from_millis(base * 3 / 4) && d < Duration::from_millis(base * 5 / 4)
        };
        assert!(within(pauses[0], 100), "{pauses:?}");
        assert!(within(pauses[1], 200), "{pauses:?}");
        assert!(within(pauses[2], 350), "{pauses:?}");
        assert!(within(pauses[3], 350), "{pauses:?}");
        assert_eq!(b.attempts(), 4);
        b.reset();
        assert!(within(b.next_pause(), 100));
    }

    #[tokio::test]
    async fn a_cancelled_wait_returns_at_once() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let mut b = Backoff::new(Duration::from_secs(60), Duration::from_secs(60));
        let started = std::time::Instant::now();
        assert!(!b.wait(&cancel).await);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
