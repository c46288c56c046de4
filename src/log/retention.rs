//! Retention of a partition's log: `retention.ms/bytes` over the whole log, the local copy's
//! `local.retention.ms/bytes` once segments are in the bucket, DeleteRecords, and idle
//! idempotent producers.

use super::error::LogError;
use super::partition::{Partition, LOG_START_FILE};

impl Partition {
    /// DeleteRecords: makes everything below `offset` (-1: the high watermark) unreadable and
    /// deletes the segments wholly below it, locally now and remotely through retention.
    /// Returns the new log start offset.
    pub fn delete_records(&self, offset: i64) -> Result<i64, LogError> {
        self.check_usable()?;
        let current = self.offsets();
        let target = if offset == -1 {
            current.high_watermark
        } else {
            offset
        };
        if target < 0 || target > current.high_watermark {
            return Err(LogError::OffsetOutOfRange {
                offset: target,
                log_start: current.log_start_offset,
                log_end: current.high_watermark,
            });
        }
        if target <= current.log_start_offset {
            return Ok(current.log_start_offset);
        }
        {
            let mut inner = self.inner.lock();
            crate::fs::write_atomic(
                &self.dir.join(LOG_START_FILE),
                target.to_string().as_bytes(),
            )?;
            inner.records_start = target;
            inner.log_start_offset = inner.log_start_offset.max(target);
            let closed = inner.segments.len().saturating_sub(1);
            let doomed: Vec<i64> = inner
                .segments
                .values()
                .take(closed)
                .filter(|s| s.next_offset <= target)
                .map(|s| s.base_offset)
                .collect();
            for base in doomed {
                if let Some(seg) = inner.segments.remove(&base) {
                    seg.delete_files()?;
                }
            }
        }
        tracing::info!(topic = %self.topic, partition = self.index, log_start_offset = target, "records deleted");
        self.enforce_retention()?;
        Ok(target)
    }

    /// Deletes closed local segments beyond `retention.ms` / `retention.bytes` (the whole log,
    /// remote history included) and, once uploaded, beyond `local.retention.ms/bytes`; then
    /// starts remote retention. Returns how many local segments were deleted.
    pub fn enforce_retention(&self) -> Result<usize, LogError> {
        let config = self.config();
        let now = self.clock.now_ms();
        let uploaded = self.remote.get().and_then(|r| r.uploaded_end());
        let local_ms = config.effective_local_retention_ms();
        let local_bytes = config.effective_local_retention_bytes();
        let mut inner = self.inner.lock();
        let local_first = inner.segments.keys().next().copied().unwrap_or(0);
        let mut local: i64 = inner.segments.values().map(|s| s.len as i64).sum();
        let remote_only = self
            .remote
            .get()
            .map_or(0, |r| r.bytes_below(local_first) as i64);
        let mut total = local + remote_only;
        let mut doomed = Vec::new();
        let closed: Vec<i64> = inner.segments.keys().copied().collect();
        for base in closed.iter().take(closed.len().saturating_sub(1)) {
            let seg = &inner.segments[base];
            let len = seg.len as i64;
            let newest = if seg.max_timestamp >= 0 {
                seg.max_timestamp
            } else {
                seg.created_ms
            };
            let by_time = config.cleanup_delete
                && config.retention_ms >= 0
                && now - newest > config.retention_ms;
            let by_size = config.cleanup_delete
                && config.retention_bytes >= 0
                && total - len >= config.retention_bytes;
            let is_uploaded = uploaded.is_some_and(|u| seg.next_offset <= u);
            // (an open transaction's segments are never uploaded, so they stay local: start-up
            // rebuilds open transactions, and so the last stable offset, from local segments)
            let by_local = is_uploaded
                && ((local_ms >= 0 && now - newest > local_ms)
                    || (local_bytes >= 0 && local - len >= local_bytes));
            if !(by_time || by_size || by_local) {
                break;
            }
            if by_time || by_size {
                total -= len;
            }
            local -= len;
            doomed.push(*base);
        }
        for base in &doomed {
            if let Some(seg) = inner.segments.remove(base) {
                seg.delete_files()?;
            }
        }
        if let Some(first) = inner.segments.keys().next().copied() {
            inner.log_start_offset = inner.log_start_offset.max(first);
        }
        if !doomed.is_empty() {
            tracing::info!(topic = %self.topic, partition = self.index, segments = doomed.len(), local_start_offset = inner.log_start_offset, "retention deleted local segments");
        }
        let records_start = inner.records_start;
        let local_only: u64 = inner
            .segments
            .values()
            .filter(|s| uploaded.is_none_or(|u| s.next_offset > u))
            .map(|s| s.len)
            .sum();
        drop(inner);
        if let Some(remote) = self.remote.get() {
            remote.schedule_retention(
                config.retention_ms,
                config.retention_bytes,
                records_start,
                local_only,
                now,
            );
        }
        Ok(doomed.len())
    }

    /// Forgets idempotent producers idle since before `cutoff_ms`.
    pub fn expire_producers(&self, cutoff_ms: i64) -> usize {
        self.inner.lock().producers.expire(cutoff_ms)
    }
}
