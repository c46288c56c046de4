//! The log cleaner for `cleanup.policy=compact`: keeps the latest record of every key, drops
//! tombstones (null values) once `delete.retention.ms` has passed, and never changes an offset.
//!
//! Only closed, finalized segments are cleaned (the active one never), and only those whose
//! newest record is older than `min.compaction.lag.ms`; a pass starts when the bytes written
//! since the last pass reach `min.cleanable.dirty.ratio` of the cleanable log. Each segment is
//! rewritten into a `.cleaned` file, fsynced, and swapped in by the [`LocalLog`] (renamed over
//! the original, indexes rebuilt): readers holding the old file keep reading it whole. The
//! cleaner sees the log only through that narrow API (closed segments, replace a segment, the
//! aborted transactions, its checkpoint).
//! A batch whose records all survive is copied byte for byte (compressed or not); a batch that
//! loses records is rebuilt uncompressed with its base offset, last offset delta, producer fields
//! and timestamps, so offsets and idempotent-producer state stay as they were.
//!
//! Transactions: cleaning stops before the last stable offset (an open transaction's records are
//! never touched), records of aborted transactions are removed and never count as a key's latest
//! value, and markers are kept.

use super::error::LogError;
use super::local_log::{ClosedSegment, LocalLog};
use crate::config::LogConfig;
use crate::format::batch::{self, BatchHeader};
use crate::format::{records, CLEANER_CHECKPOINT_FILE};
use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// What one pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanStats {
    pub segments: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub records_removed: u64,
}

/// One cleaning pass over `log`'s closed segments below `lso` if enough of them is dirty
/// (with `force`, whenever anything is cleanable: tombstones past their retention go even
/// without new data). Blocking: runs on the log's I/O executor.
pub fn clean(
    log: &LocalLog,
    config: &LogConfig,
    lso: i64,
    now: i64,
    force: bool,
) -> Result<Option<CleanStats>, LogError> {
    let checkpoint = log.read_number(CLEANER_CHECKPOINT_FILE)?.unwrap_or(0);
    // aborted offset ranges by producer id
    let mut aborted: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
    for a in log.all_aborted() {
        aborted
            .entry(a.producer_id)
            .or_default()
            .push((a.first_offset, a.last_offset));
    }
    let is_aborted = |h: &BatchHeader| {
        h.is_transactional()
            && !h.is_control()
            && aborted.get(&h.producer_id).is_some_and(|ranges| {
                ranges
                    .iter()
                    .any(|(first, last)| (*first..=*last).contains(&h.base_offset))
            })
    };
    // cleanable: closed segments up to the first one still inside the compaction lag
    let cleanable: Vec<ClosedSegment> = log
        .cleanable()
        .into_iter()
        .take_while(|s| {
            now - s.max_timestamp.max(0) >= config.min_compaction_lag_ms && s.next_offset <= lso
        })
        .collect();
    let total: u64 = cleanable.iter().map(|s| s.len).sum();
    let dirty: u64 = cleanable
        .iter()
        .filter(|s| s.next_offset > checkpoint)
        .map(|s| s.len)
        .sum();
    if total == 0 {
        return Ok(None);
    }
    if !force && (dirty == 0 || (dirty as f64) < config.min_cleanable_dirty_ratio * total as f64) {
        return Ok(None);
    }
    // the latest offset of every key in the cleanable range
    let mut latest: HashMap<Vec<u8>, i64> = HashMap::new();
    for seg in &cleanable {
        for_each_batch(&seg.file, seg.len, |h, bytes| {
            if h.is_control() || is_aborted(&h) {
                return Ok(());
            }
            let section = records::records_section(bytes, records::MAX_SECTION)?;
            for r in records::parse(&section, h.record_count)? {
                if let Some(k) = r.key {
                    latest.insert(k.to_vec(), h.base_offset + r.offset_delta as i64);
                }
            }
            Ok(())
        })?;
    }
    let horizon = now.saturating_sub(config.delete_retention_ms);
    let mut stats = CleanStats {
        segments: 0,
        bytes_before: 0,
        bytes_after: 0,
        records_removed: 0,
    };
    let interval = config.index_interval_bytes as u64;
    for seg in &cleanable {
        let cleaned = seg.stem.with_extension("log.cleaned");
        let (len, removed) = rewrite(seg, &cleaned, &latest, horizon, &is_aborted)?;
        stats.bytes_before += seg.len;
        if removed == 0 {
            crate::fs::remove_if_exists(&cleaned)?;
            stats.bytes_after += seg.len;
            continue;
        }
        stats.records_removed += removed;
        stats.bytes_after += len;
        stats.segments += 1;
        log.replace_segment(seg, &cleaned, len, interval, now)?;
    }
    let end = cleanable.last().map_or(checkpoint, |s| s.next_offset);
    log.write_number(CLEANER_CHECKPOINT_FILE, end)?;
    Ok(Some(stats))
}

/// Writes the kept batches of `seg` to `out` (fsynced). Returns (bytes written, records removed).
fn rewrite(
    seg: &ClosedSegment,
    out: &Path,
    latest: &HashMap<Vec<u8>, i64>,
    horizon: i64,
    is_aborted: &dyn Fn(&BatchHeader) -> bool,
) -> Result<(u64, u64), LogError> {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(out)?);
    let (mut written, mut removed) = (0u64, 0u64);
    for_each_batch(&seg.file, seg.len, |h, bytes| {
        if h.is_control() {
            w.write_all(bytes)?;
            written += bytes.len() as u64;
            return Ok(());
        }
        if is_aborted(&h) {
            removed += h.record_count.max(0) as u64;
            return Ok(());
        }
        let section = records::records_section(bytes, records::MAX_SECTION)?;
        let all = records::parse(&section, h.record_count)?;
        let total = all.len();
        let kept: Vec<records::Record> = all
            .into_iter()
            .filter(|r| {
                let Some(k) = r.key else { return true };
                let offset = h.base_offset + r.offset_delta as i64;
                let newest = latest.get(k).is_none_or(|&o| o == offset);
                let expired_tombstone = r.value.is_none() && h.max_timestamp < horizon;
                newest && !expired_tombstone
            })
            .collect();
        removed += (total - kept.len()) as u64;
        if kept.len() == total {
            w.write_all(bytes)?;
            written += bytes.len() as u64;
        } else if !kept.is_empty() {
            let b = records::rebuild(&h, &kept);
            w.write_all(&b)?;
            written += b.len() as u64;
        }
        Ok(())
    })?;
    let f = w.into_inner().map_err(|e| e.into_error())?;
    crate::fs::sync(&f, crate::fs::Durable::Segment, true)?;
    Ok((written, removed))
}

/// Calls `each` with every batch of a segment file (header, whole batch bytes).
fn for_each_batch(
    file: &std::fs::File,
    len: u64,
    mut each: impl FnMut(BatchHeader, &[u8]) -> Result<(), CleanError>,
) -> Result<(), LogError> {
    let mut pos = 0u64;
    let mut buf = Vec::new();
    while pos + batch::HEADER_LEN as u64 <= len {
        let mut head = [0u8; batch::HEADER_LEN];
        file.read_exact_at(&mut head, pos)?;
        let h = BatchHeader::parse(&head)?;
        let total = h.total_len();
        buf.resize(total, 0);
        file.read_exact_at(&mut buf, pos)?;
        each(h, &buf).map_err(|e| match e {
            CleanError::Io(e) => LogError::Io(e),
            CleanError::Records(e) => LogError::InvalidRecord(format!(
                "batch at offset {} cannot be compacted: {e}",
                h.base_offset
            )),
        })?;
        pos += total as u64;
    }
    Ok(())
}

enum CleanError {
    Io(std::io::Error),
    Records(records::RecordsError),
}

impl From<std::io::Error> for CleanError {
    fn from(e: std::io::Error) -> Self {
        CleanError::Io(e)
    }
}

impl From<records::RecordsError> for CleanError {
    fn from(e: records::RecordsError) -> Self {
        CleanError::Records(e)
    }
}
