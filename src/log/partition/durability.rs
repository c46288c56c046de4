//! A partition's durability: waiting for acks=all, the flusher and its group-commit round.
//! The high watermark moves here (and, in a cluster, when the WAL commits: [`super::replicated`]).

use super::{LogError, Partition};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

impl Partition {
    /// Waits until every offset below `end` is durable (for acks=all).
    pub async fn wait_durable(&self, end: i64) -> Result<(), LogError> {
        let mut rx = self.hw_tx.subscribe();
        self.urgent.notify_one();
        loop {
            self.check_usable()?;
            if *rx.borrow_and_update() >= end {
                return Ok(());
            }
            if rx.changed().await.is_err() {
                return Err(LogError::Offline);
            }
        }
    }

    /// The flusher: syncs on demand (urgent) or within `flush_interval` (or the topic's
    /// `flush.ms`, if shorter) of a write (dirty).
    pub async fn run_flusher(self: Arc<Self>, flush_interval: Duration, cancel: CancellationToken) {
        loop {
            tokio::select! {
                _ = self.urgent.notified() => {}
                _ = self.dirty.notified() => {
                    let topic_ms = u64::try_from(self.config().flush_ms).unwrap_or(0);
                    let interval = flush_interval.min(Duration::from_millis(topic_ms));
                    tokio::select! {
                        _ = tokio::time::sleep(interval) => {}
                        _ = self.urgent.notified() => {}
                        _ = cancel.cancelled() => {}
                    }
                }
                _ = cancel.cancelled() => return,
                _ = self.deleted.cancelled() => return,
            }
            self.flush_once().await;
        }
    }

    /// One group-commit round: sync what was written, advance the high watermark, finalize
    /// rolled segments (and queue their uploads).
    pub async fn flush_once(self: &Arc<Self>) {
        if self.offline.load(Ordering::Acquire) {
            return;
        }
        let started = std::time::Instant::now();
        let log = self.log.clone();
        // what is appended from here on waits for the next sync
        self.unflushed.store(0, Ordering::Release);
        let res = self.io.run(move || Ok(log.flush()?)).await;
        crate::metrics::flush_latency(started.elapsed());
        match res {
            Ok(Some(flushed)) => {
                self.durable_end
                    .fetch_max(flushed.durable_end, Ordering::AcqRel);
                self.advance_hw();
                if flushed.finalized > 0 {
                    self.queue_uploads().await;
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(topic = %self.topic, partition = self.index, error = %e, "fdatasync failed; partition taken offline");
                self.go_offline();
            }
        }
    }
}
