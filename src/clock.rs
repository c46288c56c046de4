//! Injected time. Everything that depends on wall-clock time (retention, segment age,
//! LogAppendTime) asks a [`Clock`], so tests advance time instead of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

pub type SharedClock = Arc<dyn Clock>;

/// The real wall clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// A clock tests move by hand.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(start_ms: i64) -> Self {
        ManualClock(AtomicI64::new(start_ms))
    }
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// At most one event per period of wall-clock time, counting those passed over meanwhile: for
/// log lines a client could otherwise make the broker repeat in a loop.
pub struct Throttle {
    period_secs: u64,
    /// The period (wall-clock seconds / `period_secs`) of the last event let through.
    last: std::sync::atomic::AtomicU64,
    passed: std::sync::atomic::AtomicU64,
}

impl Throttle {
    pub const fn new(period_secs: u64) -> Throttle {
        Throttle {
            period_secs,
            last: std::sync::atomic::AtomicU64::new(0),
            passed: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// `Some(n)` when this event goes ahead (`n` were passed over since the last one that did),
    /// `None` when it is passed over.
    pub fn pass(&self) -> Option<u64> {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.pass_at(secs)
    }

    fn pass_at(&self, secs: u64) -> Option<u64> {
        let period = secs / self.period_secs.max(1);
        if self.last.swap(period, Ordering::Relaxed) == period {
            self.passed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.passed.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_a_period_goes_ahead_with_the_count_passed_over() {
        let t = Throttle::new(60);
        assert_eq!(t.pass_at(6_000), Some(0));
        assert_eq!(t.pass_at(6_001), None);
        assert_eq!(t.pass_at(6_059), None);
        assert_eq!(
            t.pass_at(6_060),
            Some(2),
            "the next minute, two passed over"
        );
        assert_eq!(t.pass_at(6_061), None);
    }
}
