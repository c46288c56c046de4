//! The log cleaner for `cleanup.policy=compact`: keeps the latest record of every key, drops
//! tombstones (null values) once `delete.retention.ms` has passed, and never changes an offset.
//!
//! Only closed segments are cleaned (the active one never), and only those whose newest record
//! is older than `min.compaction.lag.ms`; a pass starts when the bytes written since the last
//! pass reach `min.cleanable.dirty.ratio` of the cleanable log. Each segment is rewritten into a
//! `.cleaned` file, fsynced, renamed over the original and its indexes rebuilt, under the
//! partition lock only for the swap: readers holding the old file keep reading it whole.
//! A batch whose records all survive is copied byte for byte (compressed or not); a batch that
//! loses records is rebuilt uncompressed with its base offset, last offset delta, producer fields
//! and timestamps, so offsets and idempotent-producer state stay as they were.
//!
//! Transactions: cleaning stops before the last stable offset (an open transaction's records are
//! never touched), records of aborted transactions are removed and never count as a key's latest
//! value, and markers are kept.

use super::error::LogError;
use super::partition::Partition;
use super::segment::Segment;
use crate::format::batch::{self, BatchHeader};
use crate::format::records;
use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::format::CLEANER_CHECKPOINT_FILE as CHECKPOINT;

/// What one pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanStats {
    pub segments: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub records_removed: u64,
}

/// A closed segment as the cleaner sees it.
struct Closed {
    base: i64,
    len: u64,
    max_timestamp: i64,
    next_offset: i64,
    file: Arc<std::fs::File>,
    stem: PathBuf,
}

impl Partition {
    /// One cleaning pass if the partition is compacted and enough of it is dirty (with `force`,
    /// whenever anything is cleanable: tombstones past their retention go even without new
    /// data). Blocking I/O: run it off the async runtime.
    pub fn compact(&self, force: bool) -> Result<Option<CleanStats>, LogError> {
        let config = self.config();
        if !config.cleanup_compact || self.remote().is_some() {
            return Ok(None);
        }
        let now = self.clock.now_ms();
        let checkpoint = read_checkpoint(&self.dir)?;
        let (closed, aborted, lso) = {
            let inner = self.inner.lock();
            // aborted offset ranges by producer id
            let mut aborted: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
            for a in inner.segments.values().flat_map(|s| s.aborted.iter()) {
                aborted
                    .entry(a.producer_id)
                    .or_default()
                    .push((a.first_offset, a.last_offset));
            }
            let lso = inner.offsets().last_stable_offset;
            let n = inner.segments.len().saturating_sub(1);
            let closed = inner
                .segments
                .values()
                .take(n)
                .map(|s| Closed {
                    base: s.base_offset,
                    len: s.len,
                    max_timestamp: s.max_timestamp,
                    next_offset: s.next_offset,
                    file: s.file(),
                    stem: s.stem().to_path_buf(),
                })
                .collect::<Vec<_>>();
            (closed, aborted, lso)
        };
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
        let cleanable: Vec<Closed> = closed
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
        if !force
            && (dirty == 0 || (dirty as f64) < config.min_cleanable_dirty_ratio * total as f64)
        {
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
                let _ = std::fs::remove_file(&cleaned);
                stats.bytes_after += seg.len;
                continue;
            }
            stats.records_removed += removed;
            stats.bytes_after += len;
            stats.segments += 1;
            self.swap(seg, &cleaned, len, interval, now)?;
        }
        let end = cleanable.last().map_or(checkpoint, |s| s.next_offset);
        crate::fs::write_atomic(&self.dir.join(CHECKPOINT), end.to_string().as_bytes())?;
        tracing::info!(topic = %self.topic, partition = self.index, segments = stats.segments, records_removed = stats.records_removed, bytes_before = stats.bytes_before, bytes_after = stats.bytes_after, "compacted");
        crate::metrics::compacted(stats.bytes_before.saturating_sub(stats.bytes_after));
        Ok(Some(stats))
    }

    /// Replaces a closed segment's file with its cleaned copy (or drops the segment when
    /// nothing is left), unless retention removed the segment meanwhile.
    fn swap(
        &self,
        seg: &Closed,
        cleaned: &Path,
        len: u64,
        interval: u64,
        now: i64,
    ) -> Result<(), LogError> {
        let mut inner = self.inner.lock();
        let still_there = inner
            .segments
            .get(&seg.base)
            .is_some_and(|s| s.len == seg.len);
        let is_active = inner.segments.keys().next_back() == Some(&seg.base);
        if !still_there || is_active {
            let _ = std::fs::remove_file(cleaned);
            return Ok(());
        }
        // an emptied segment goes, except the first: its base offset is the log start offset
        let is_first = inner.segments.keys().next() == Some(&seg.base);
        if len == 0 && !is_first {
            if let Some(old) = inner.segments.remove(&seg.base) {
                old.delete_files()?;
            }
            let _ = std::fs::remove_file(cleaned);
            return Ok(());
        }
        std::fs::rename(cleaned, seg.stem.with_extension("log"))?;
        crate::fs::sync_dir(&self.dir)?;
        let mut fresh = Segment::open(&self.dir, seg.base, true, interval, now, &mut |_, _| None)?;
        // markers stay where they were, so the aborted-transaction entries do too
        if let Some(old) = inner.segments.get(&seg.base) {
            for entry in &old.aborted {
                fresh.note_aborted(*entry);
            }
        }
        fresh.write_indexes()?;
        inner.segments.insert(seg.base, fresh);
        Ok(())
    }
}

/// Writes the kept batches of `seg` to `out` (fsynced). Returns (bytes written, records removed).
fn rewrite(
    seg: &Closed,
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
    f.sync_all()?;
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

fn read_checkpoint(dir: &Path) -> Result<i64, LogError> {
    match std::fs::read_to_string(dir.join(CHECKPOINT)) {
        Ok(t) => Ok(t.trim().parse().unwrap_or(0)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::config::LogConfig;
    use crate::format::batch::put_varint;

    const NOW: i64 = 1_700_000_000_000;

    fn config() -> LogConfig {
        LogConfig {
            segment_bytes: 300,
            segment_ms: i64::MAX,
            retention_ms: 1, // ignored: the policy is compact only
            max_message_bytes: 1 << 20,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: i64::MAX,
            index_interval_bytes: 64,
            remote_storage_enable: false,
            cleanup_compact: true,
            cleanup_delete: false,
            delete_retention_ms: 60_000,
            min_compaction_lag_ms: 0,
            ..LogConfig::default()
        }
    }

    /// A client batch of keyed records (`None` value: a tombstone).
    fn keyed(ts: i64, recs: &[(Option<&str>, Option<&str>)]) -> Vec<u8> {
        let mut section = Vec::new();
        for (i, (k, v)) in recs.iter().enumerate() {
            let mut r = vec![0u8];
            put_varint(&mut r, 0);
            put_varint(&mut r, i as i64);
            for f in [k, v] {
                match f {
                    Some(s) => {
                        put_varint(&mut r, s.len() as i64);
                        r.extend_from_slice(s.as_bytes());
                    }
                    None => put_varint(&mut r, -1),
                }
            }
            put_varint(&mut r, 0);
            put_varint(&mut section, r.len() as i64);
            section.extend(r);
        }
        let parsed = records::parse(&section, recs.len() as i32).expect("parse");
        let h = BatchHeader {
            base_offset: 0,
            batch_length: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: recs.len() as i32 - 1,
            base_timestamp: ts,
            max_timestamp: ts,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            record_count: recs.len() as i32,
        };
        records::rebuild(&h, &parsed)
    }

    /// Every (offset, key, value) readable from offset 0.
    async fn contents(p: &Partition) -> Vec<(i64, String, Option<String>)> {
        let mut out = Vec::new();
        let mut next = 0;
        let end = p.offsets().high_watermark;
        while next < end {
            let r = p.fetch(next, 1 << 20, true).await.expect("fetch");
            if r.records.is_empty() {
                break;
            }
            let mut pos = 0;
            while pos < r.records.len() {
                let (_, len) = batch::peek_frame(&r.records[pos..]).expect("frame");
                let b = &r.records[pos..pos + len];
                let h = batch::validate_stored(b).expect("stored batch");
                let s = records::records_section(b, 1 << 20).expect("section");
                for rec in records::parse(&s, h.record_count).expect("records") {
                    let key = String::from_utf8_lossy(rec.key.expect("keyed")).into_owned();
                    let value = rec.value.map(|v| String::from_utf8_lossy(v).into_owned());
                    out.push((h.base_offset + rec.offset_delta as i64, key, value));
                }
                next = h.last_offset() + 1;
                pos += len;
            }
        }
        out
    }

    #[tokio::test]
    async fn compaction_keeps_the_latest_value_per_key_and_every_offset() {
        let dir = tempfile::tempdir().expect("tmp");
        let clock = Arc::new(ManualClock::new(NOW));
        let open = |recover| {
            Partition::open(
                "c",
                0,
                dir.path().join("c-0"),
                config(),
                clock.clone(),
                recover,
                None,
            )
            .expect("open")
        };
        let p = open(false);
        // 4 rounds over keys a..d; in the last round b is deleted (tombstone)
        for round in 0..4 {
            for key in ["a", "b", "c", "d"] {
                let value = format!("{key}{round}");
                let v = if round == 3 && key == "b" {
                    None
                } else {
                    Some(value.as_str())
                };
                p.append(&keyed(clock.now_ms(), &[(Some(key), v)]))
                    .expect("append");
            }
        }
        // an extra batch with two records, one of which is superseded later
        p.append(&keyed(
            clock.now_ms(),
            &[(Some("e"), Some("e0")), (Some("a"), Some("a4"))],
        ))
        .expect("append");
        p.append(&keyed(clock.now_ms(), &[(Some("e"), Some("e1"))]))
            .expect("append");
        p.flush_once().await;
        let before = contents(&p).await;
        assert_eq!(before.len(), 19);
        // keyless records are refused on a compacted topic
        match p.append(&keyed(
            clock.now_ms(),
            &[(Some("k"), Some("x")), (None, Some("x")), (None, Some("y"))],
        )) {
            Err(LogError::InvalidRecords { indexes, .. }) => assert_eq!(indexes, vec![1, 2]),
            other => panic!("keyless records accepted: {other:?}"),
        }
        // retention never deletes a compact-only topic, whatever retention.ms says
        clock.advance(10);
        assert_eq!(p.enforce_retention().expect("retention"), 0);

        let stats = p
            .compact(true)
            .expect("compact")
            .expect("something to clean");
        assert!(
            stats.records_removed > 0 && stats.bytes_after < stats.bytes_before,
            "{stats:?}"
        );
        let after = contents(&p).await;
        // every surviving record keeps its offset and is the latest for its key among the
        // cleaned segments; nothing is invented
        for rec in &after {
            assert!(before.contains(rec), "{rec:?} was not in the log");
        }
        let mut keys: Vec<&str> = after.iter().map(|(_, k, _)| k.as_str()).collect();
        let active_start = p
            .inner
            .lock()
            .segments
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0);
        let cleaned: Vec<_> = after.iter().filter(|(o, _, _)| *o < active_start).collect();
        let mut seen = std::collections::HashSet::new();
        for (_, k, _) in &cleaned {
            assert!(seen.insert(k.clone()), "key {k} twice in the cleaned range");
        }
        keys.dedup();
        let latest = |k: &str| before.iter().rev().find(|(_, key, _)| key == k).cloned();
        for k in ["a", "b", "c", "d", "e"] {
            assert!(after.contains(&latest(k).expect("key")), "latest {k} kept");
        }
        // the tombstone for b is still there (delete.retention.ms not passed)
        assert!(after.iter().any(|(_, k, v)| k == "b" && v.is_none()));
        assert_eq!(p.offsets().log_end_offset, 19, "offsets never change");

        // past delete.retention.ms the tombstone goes too (if its segment is cleanable)
        clock.advance(60_001);
        p.compact(true).expect("compact");
        let later = contents(&p).await;
        let b_tomb = before
            .iter()
            .find(|(_, k, v)| k == "b" && v.is_none())
            .expect("tomb");
        if b_tomb.0 < active_start {
            assert!(!later.contains(b_tomb), "expired tombstone removed");
        }
        // a crash-style reopen reads the rewritten segments as valid
        drop(p);
        let p = open(true);
        assert_eq!(contents(&p).await, later);
        assert_eq!(
            p.append(&keyed(clock.now_ms(), &[(Some("z"), Some("z"))]))
                .expect("append")
                .base_offset,
            19
        );
    }

    /// `keyed` as a transactional batch of `pid` (epoch 0, sequence 0).
    fn transactional(pid: i64, recs: &[(Option<&str>, Option<&str>)]) -> Vec<u8> {
        crate::format::batch::tests::transactional(keyed(NOW, recs), pid, 0, 0)
    }

    #[tokio::test]
    async fn compaction_drops_aborted_records_and_stops_at_the_last_stable_offset() {
        let dir = tempfile::tempdir().expect("tmp");
        let clock = Arc::new(ManualClock::new(NOW));
        let p = Partition::open("c", 0, dir.path().join("c-0"), config(), clock, false, None)
            .expect("open");
        let allow: &dyn Fn(&BatchHeader) -> Result<(), LogError> = &|_| Ok(());
        p.append_verified(&transactional(7, &[(Some("a"), Some("committed"))]), allow)
            .expect("txn 7"); // 0
        p.append_marker(7, 0, true, 0).expect("commit"); // 1
        p.append_verified(&transactional(8, &[(Some("a"), Some("aborted"))]), allow)
            .expect("txn 8"); // 2
        p.append_marker(8, 0, false, 0).expect("abort"); // 3
        let filler = |p: &Partition, n: usize| {
            for i in 0..n {
                p.append(&keyed(NOW, &[(Some("z"), Some(&format!("z{i}")))]))
                    .expect("filler");
            }
        };
        filler(&p, 6);
        let open_at = p.offsets().log_end_offset;
        p.append_verified(&transactional(9, &[(Some("z"), Some("open"))]), allow)
            .expect("txn 9 stays open");
        filler(&p, 6);
        p.flush_once().await;
        assert_eq!(p.offsets().last_stable_offset, open_at);
        let stats = p.compact(true).expect("compact").expect("cleaned");
        assert!(stats.records_removed > 0, "{stats:?}");
        // what is left below the LSO: the committed a, no aborted a, the last filler before it
        let mut kept = Vec::new();
        let mut next = 0;
        while next < p.offsets().high_watermark {
            let r = p.fetch(next, 1 << 20, true).await.expect("read");
            let mut pos = 0;
            while pos < r.records.len() {
                let (_, len) = batch::peek_frame(&r.records[pos..]).expect("frame");
                let b = &r.records[pos..pos + len];
                let h = batch::validate_stored(b).expect("stored");
                if !h.is_control() {
                    let sec = records::records_section(b, 1 << 20).expect("section");
                    for rec in records::parse(&sec, h.record_count).expect("records") {
                        let v = rec.value.map(|v| String::from_utf8_lossy(v).into_owned());
                        let offset = h.base_offset + rec.offset_delta as i64;
                        kept.push((offset, v.unwrap_or_default()));
                    }
                }
                next = h.last_offset() + 1;
                pos += len;
            }
        }
        assert!(kept.contains(&(0, "committed".to_string())), "{kept:?}");
        assert!(!kept.iter().any(|(_, v)| v == "aborted"), "{kept:?}");
        assert!(
            kept.contains(&(open_at, "open".to_string())),
            "an open transaction's record is never cleaned: {kept:?}"
        );
        let after_lso = kept.iter().filter(|(o, _)| *o > open_at).count();
        assert_eq!(after_lso, 6, "nothing past the LSO is cleaned: {kept:?}");
    }
}
