//! A partition's durability: waiting for acks=all, the flusher and its group-commit round.
//! The high watermark moves here (and, in a cluster, when the WAL commits: [`super::replicated`]).

use super::{LogError, Partition};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

impl Partition {
    /// Waits until every offset below `end` is durable (for acks=all), asking the flusher for a
    /// sync if it is not yet.
    pub async fn wait_durable(&self, end: i64) -> Result<(), LogError> {
        self.wait_for(end, true).await
    }

    /// Waits until every offset below `end` is durable, where a sync covering it is already on
    /// its way ([`Self::sync_after_append`], or [`Self::request_sync`] at the append). The flusher's interval round stays the
    /// backstop.
    pub async fn wait_synced(&self, end: i64) -> Result<(), LogError> {
        self.wait_for(end, false).await
    }

    /// Asks the flusher for a sync now.
    pub(in crate::log) fn request_sync(&self) {
        self.urgent.notify_one();
    }

    async fn wait_for(&self, end: i64, ask: bool) -> Result<(), LogError> {
        let mut rx = self.hw_tx.subscribe();
        if ask && *rx.borrow() < end {
            self.request_sync();
        }
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
        if self.offline.load(Ordering::Acquire) || !self.log.needs_flush() {
            return;
        }
        let me = self.clone();
        let finalized = self.io.run(move || Ok(me.sync_here())).await;
        if matches!(finalized, Ok(n) if n > 0) {
            self.queue_uploads().await;
        }
    }

    /// Makes what was just appended durable, on the calling (blocking) thread, unless a sync
    /// already runs there: then that one goes round again and covers it. So one thread at a
    /// time syncs a partition and the others leave at once, however many appends arrive.
    /// Returns how many rolled segments were finalized.
    pub(in crate::log) fn sync_after_append(&self) -> usize {
        // wanted before running is looked at: a syncer that stops after this append's look
        // cannot have missed it (it looks at `wanted` after clearing `running`)
        self.sync_wanted.store(true, Ordering::SeqCst);
        let mut finalized = 0;
        while !self.sync_running.swap(true, Ordering::SeqCst) {
            // cleared even if the sync panics: else no appender would ever sync here again
            let running = Running(&self.sync_running);
            // whatever was appended before this point is covered by the sync that follows
            self.sync_wanted.store(false, Ordering::SeqCst);
            finalized += self.sync_here();
            drop(running);
            if !self.sync_wanted.load(Ordering::SeqCst) {
                break;
            }
        }
        finalized
    }

    /// A group-commit round on the calling thread, which must be one that may block (the log's
    /// I/O executor): syncs what was written, advances the high watermark and returns how many
    /// rolled segments were finalized (their uploads are for the caller to queue). Syncs of one
    /// partition take turns; one that waited for another usually finds nothing left to sync.
    pub(in crate::log) fn sync_here(&self) -> usize {
        // a deleted partition's directory may be gone: nothing there to make durable
        if self.offline.load(Ordering::Acquire) || self.deleted.is_cancelled() {
            return 0;
        }
        let started = std::time::Instant::now();
        // what is appended from here on waits for the next sync
        self.unflushed.store(0, Ordering::Release);
        let res = self.log.flush();
        if !matches!(res, Ok(None)) {
            crate::metrics::flush_latency(started.elapsed());
        }
        match res {
            Ok(Some(flushed)) => {
                self.durable_end
                    .fetch_max(flushed.durable_end, Ordering::AcqRel);
                self.advance_hw();
                flushed.finalized
            }
            Ok(None) => 0,
            Err(e) => {
                self.go_offline();
                tracing::error!(topic = %self.topic, partition = self.index, error = %e, "fdatasync failed; partition taken offline");
                0
            }
        }
    }
}

/// Clears a partition's "a sync runs" flag when dropped.
struct Running<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}
