//! Retention of a partition's local segments, decided over the log's summary: `retention.ms` /
//! `retention.bytes` over the whole log (remote history included), and once a segment is in
//! the bucket `local.retention.ms/bytes` over the local copy. Pure: the partition deletes what
//! this decides, on its I/O executor.

use super::local_log::LogSummary;
use crate::config::LogConfig;

/// The closed segments to delete, oldest first (retention never skips one: it stops at the
/// first segment it keeps). `uploaded` is where the remote log ends; `remote_only` the bytes of
/// remote history below the local log.
pub fn expired(
    log: &LogSummary,
    config: &LogConfig,
    now: i64,
    uploaded: Option<i64>,
    remote_only: u64,
) -> Vec<i64> {
    let local_ms = config.effective_local_retention_ms();
    let local_bytes = config.effective_local_retention_bytes();
    let mut local = log.size_bytes as i64;
    let mut total = local + remote_only as i64;
    let mut doomed = Vec::new();
    for seg in log.closed.iter() {
        let len = seg.len as i64;
        let newest = seg.newest_ms();
        let by_time =
            config.cleanup_delete && config.retention_ms >= 0 && now - newest > config.retention_ms;
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
        doomed.push(seg.base_offset);
    }
    doomed
}

/// Bytes of the local log not in the bucket (what total retention counts beside the remote
/// log).
pub fn local_only_bytes(log: &LogSummary, uploaded: Option<i64>) -> u64 {
    let closed: u64 = log
        .closed
        .iter()
        .filter(|s| uploaded.is_none_or(|u| s.next_offset > u))
        .map(|s| s.len)
        .sum();
    let active = log.size_bytes - log.closed.iter().map(|s| s.len).sum::<u64>();
    closed + active
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::local_log::SegmentInfo;
    use std::sync::Arc;

    fn summary(segs: &[(i64, i64, u64, i64)], active: u64) -> LogSummary {
        let closed: Vec<SegmentInfo> = segs
            .iter()
            .map(|&(base, next, len, ts)| SegmentInfo {
                base_offset: base,
                next_offset: next,
                len,
                max_timestamp: ts,
                created_ms: 0,
                finalized: true,
            })
            .collect();
        let size = closed.iter().map(|s| s.len).sum::<u64>() + active;
        LogSummary {
            start_offset: segs.first().map_or(0, |s| s.0),
            end_offset: segs.last().map_or(0, |s| s.1),
            active_base: segs.last().map_or(0, |s| s.1),
            size_bytes: size,
            closed: Arc::new(closed),
        }
    }

    #[test]
    fn time_size_and_local_retention_stop_at_the_first_segment_kept() {
        let log = summary(
            &[
                (0, 10, 100, 1_000),
                (10, 20, 100, 5_000),
                (20, 30, 100, 1_000),
            ],
            50,
        );
        let c = LogConfig {
            retention_ms: 2_000,
            retention_bytes: -1,
            local_retention_ms: -2,
            local_retention_bytes: -2,
            cleanup_delete: true,
            ..LogConfig::default()
        };
        // the third segment is old too, but the second is kept: retention stops there
        assert_eq!(expired(&log, &c, 4_000, None, 0), vec![0]);
        let by_size = LogConfig {
            retention_ms: -1,
            retention_bytes: 160,
            ..c.clone()
        };
        assert_eq!(expired(&log, &by_size, 4_000, None, 0), vec![0]);
        assert_eq!(
            expired(&log, &by_size, 4_000, None, 100),
            vec![0, 10],
            "remote history counts toward the total"
        );
        let compact_only = LogConfig {
            cleanup_delete: false,
            ..c.clone()
        };
        assert!(expired(&log, &compact_only, i64::MAX / 2, None, 0).is_empty());
        let local = LogConfig {
            retention_ms: -1,
            local_retention_bytes: 0,
            ..c
        };
        assert_eq!(
            expired(&log, &local, 4_000, Some(20), 0),
            vec![0, 10],
            "only uploaded segments go by local retention"
        );
        assert_eq!(local_only_bytes(&log, Some(20)), 150);
        assert_eq!(local_only_bytes(&log, None), 350);
    }
}
