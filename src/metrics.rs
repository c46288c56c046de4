//! Every metric name in one place. The Prometheus exporter (`metrics_listen`) is wired up by the
//! observability work; until then these record into the `metrics` facade's no-op recorder.

use std::time::Duration;

pub const FLUSH_SECONDS: &str = "tiercel_log_flush_seconds";

/// Latency of one group-commit `fdatasync`.
pub fn flush_latency(d: Duration) {
    metrics::histogram!(FLUSH_SECONDS).record(d.as_secs_f64());
}
