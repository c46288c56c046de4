//! A partition's segment files, as Kafka's `LocalLog`: append (rolling when a segment is full
//! or old), read whole batches, make written data durable, finalize rolled segments, replace
//! and delete closed segments, recover at start-up and close cleanly. Synchronous: every method
//! may block on the file system and runs on the log's I/O executor, except [`LocalLog::summary`],
//! an in-memory view the runtime may read at any time.
//!
//! Durability. Appends write to the page cache; [`LocalLog::flush`] `fdatasync`s what was
//! written (the rolled segments first, then the active one, and the directory entries of new
//! segments) and says up to which offset everything is durable: the partition's high watermark.
//! A roll only closes the active segment and creates the next one; the closed segment's
//! `fdatasync`, its index files and the producer snapshot as of its end happen in the next
//! flush, off the append path ("finalizing" it). A segment is uploaded only once finalized.
//!
//! Restart. A `<offset>.snapshot` file is written only when every segment below that offset is
//! durable with its index files, so it is also the recovery point: at start-up the segments
//! below the newest valid snapshot are loaded from their index files (reading only the batches
//! after each one's last index entry) and only the segments after it are walked, and
//! CRC-checked after an unclean stop. After a clean shutdown every segment, the active one
//! included, is loaded from its index files. Restart time follows the size of the active
//! segment, not of the log.

use super::segment::{self, Observe, Segment};
use crate::format::batch::BatchHeader;
use crate::format::read::{Found, Target};
use crate::format::txn_index::AbortedTxn;
use crate::format::{self, offset_of_file};
use crate::fs::{read_if_exists, remove_if_exists, sync, sync_dir, write_atomic, Durable};
use crate::tier::UploadJob;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Producer snapshots kept per partition (older ones are deleted).
const SNAPSHOTS_KEPT: usize = 2;

/// How a partition's state is rebuilt at start-up: from a snapshot, then from the batches
/// after it.
pub trait Replay {
    /// Takes the state as of `offset` from a snapshot file's bytes; `false` when they are not a
    /// valid snapshot (the next older one is tried).
    fn load(&mut self, offset: i64, bytes: &[u8]) -> bool;
    /// Forgets a loaded snapshot: every batch of the log will be replayed.
    fn reset(&mut self);
    /// One batch after the snapshot, in log order, with a control batch's marker kind.
    fn batch(&mut self, h: &BatchHeader, marker: Option<bool>) -> Option<AbortedTxn>;
    /// The state as of `offset` (every batch below it replayed), as a snapshot file's bytes.
    fn snapshot(&self, offset: i64) -> Vec<u8>;
}

/// When to roll: the topic's segment size and age, and the index interval.
#[derive(Debug, Clone, Copy)]
pub struct Roll {
    pub segment_bytes: i64,
    pub segment_ms: i64,
    pub index_interval: u64,
    pub now_ms: i64,
}

/// A closed segment as the runtime sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    pub base_offset: i64,
    pub next_offset: i64,
    pub len: u64,
    /// Largest timestamp, -1 when empty.
    pub max_timestamp: i64,
    pub created_ms: i64,
    /// Durable with its index files (and so may be uploaded).
    pub finalized: bool,
}

impl SegmentInfo {
    /// The newest time in the segment: its largest timestamp, or its creation when empty.
    pub fn newest_ms(&self) -> i64 {
        if self.max_timestamp >= 0 {
            self.max_timestamp
        } else {
            self.created_ms
        }
    }
}

/// What the runtime may know of the log without waiting on it.
#[derive(Debug, Clone, Default)]
pub struct LogSummary {
    /// The first local offset (the first segment's base).
    pub start_offset: i64,
    /// One past the last offset written.
    pub end_offset: i64,
    /// Base offset of the active segment.
    pub active_base: i64,
    /// Bytes of every segment.
    pub size_bytes: u64,
    /// Every segment but the active one, oldest first.
    pub closed: Arc<Vec<SegmentInfo>>,
}

/// What a flush made durable.
#[derive(Debug, Clone, Default)]
pub struct Flushed {
    /// Everything below this offset is durable.
    pub durable_end: i64,
    /// Rolled segments finalized by this flush.
    pub finalized: usize,
}

struct Segments {
    map: BTreeMap<i64, Segment>,
    /// Rolled segments not finalized yet, oldest first, each with the producer snapshot as of
    /// its end (the next segment's base).
    rolled: VecDeque<(i64, i64, Vec<u8>)>,
    /// Whether the partition directory's own entry is durable (a new partition's is not).
    dir_durable: bool,
}

impl Segments {
    fn active(&self) -> &Segment {
        self.map
            .values()
            .next_back()
            .unwrap_or_else(|| unreachable!("a log always has an active segment"))
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.map
            .values_mut()
            .next_back()
            .unwrap_or_else(|| unreachable!("a log always has an active segment"))
    }

    fn is_finalized(&self, base: i64) -> bool {
        !self.rolled.iter().any(|(b, _, _)| *b == base)
    }
}

pub struct LocalLog {
    dir: PathBuf,
    segments: Mutex<Segments>,
    summary: Mutex<LogSummary>,
    /// Held for a whole [`Self::flush`]: one sync at a time, so a caller that waited for
    /// another's sync usually finds its data already covered (group commit) and syncs nothing.
    /// Set once a flush failed: a later `fsync` of the same file may report success for pages
    /// the failed one lost (the error is reported once), so no later flush may succeed.
    syncing: Mutex<bool>,
}

/// Start-up options.
#[derive(Debug, Clone, Copy)]
pub struct OpenOptions {
    /// The broker stopped cleanly: every segment's index files and a snapshot at the log end
    /// were written.
    pub clean: bool,
    pub index_interval: u64,
    pub now_ms: i64,
    /// Where the remote log ends, when tiered: an empty (or older) local log continues there.
    pub remote_end: Option<i64>,
}

impl LocalLog {
    /// Opens (or creates) the log in `dir`, rebuilding `replay`'s state.
    pub fn open(dir: &Path, o: OpenOptions, replay: &mut dyn Replay) -> io::Result<LocalLog> {
        crate::fs::create_dir_durable(dir)?;
        let mut bases = Vec::new();
        let mut snapshots = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(base) = offset_of_file(name, "log") {
                bases.push(base);
            } else if let Some(at) = offset_of_file(name, "snapshot") {
                snapshots.push(at);
            } else if name.ends_with(".tmp") || name.ends_with(".cleaned") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        bases.sort_unstable();
        snapshots.sort_unstable();
        let mut map = BTreeMap::new();
        let mut recovery_point = None;
        let mut trusted = load_snapshot(dir, &snapshots, replay)?;
        // with a snapshot, the segments below it load from their indexes; a segment below it
        // whose indexes fail to load means the snapshot cannot be trusted: replay everything
        for attempt in 0..2 {
            map.clear();
            match open_segments(dir, &bases, trusted, &o, replay)? {
                Some((m, point)) => {
                    map = m;
                    recovery_point = point;
                    break;
                }
                None if attempt == 0 => {
                    tracing::warn!(dir = %dir.display(), "index files below the recovery point are unusable: walking the whole log");
                    trusted = None;
                    replay.reset();
                }
                None => unreachable!("without a snapshot every segment is walked"),
            }
        }
        let local_end = map.values().next_back().map(|s: &Segment| s.next_offset);
        if let (Some(local_end), Some(remote_end)) = (local_end, o.remote_end) {
            if local_end < remote_end {
                // the bucket holds everything this disk has and more (an old copy of the disk)
                tracing::warn!(dir = %dir.display(), local_end, remote_end, "local log ends before the remote log: local segments replaced by the remote history");
                for seg in std::mem::take(&mut map).into_values() {
                    seg.delete_files()?;
                }
                for at in &snapshots {
                    remove_if_exists(&dir.join(format::segment_file(*at, "snapshot")))?;
                }
                replay.reset();
            }
        }
        // a walk of closed segments ends with a recovery point at the active segment, so the
        // next start after a crash does not walk them again
        if let Some((at, bytes)) = recovery_point {
            if map.contains_key(&at) {
                write_atomic(
                    &dir.join(format::segment_file(at, "snapshot")),
                    &bytes,
                    Durable::Metadata,
                )?;
            }
        }
        // a new (or emptied) directory's entries become durable with its first flush
        let dir_durable = !map.is_empty();
        if map.is_empty() {
            let base = o.remote_end.unwrap_or(0);
            map.insert(base, Segment::create(dir, base, o.now_ms)?);
        }
        let log = LocalLog {
            dir: dir.to_owned(),
            segments: Mutex::new(Segments {
                map,
                rolled: VecDeque::new(),
                dir_durable,
            }),
            summary: Mutex::new(LogSummary::default()),
            syncing: Mutex::new(false),
        };
        log.publish(&log.segments.lock(), true);
        Ok(log)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The in-memory view: never waits on the file system.
    pub fn summary(&self) -> LogSummary {
        self.summary.lock().clone()
    }

    /// Refreshes the summary; `closed_changed` when segments were added, removed or changed.
    fn publish(&self, s: &Segments, closed_changed: bool) {
        let mut sum = self.summary.lock();
        let active = s.active();
        if closed_changed {
            let n = s.map.len() - 1;
            let closed: Vec<SegmentInfo> = s
                .map
                .values()
                .take(n)
                .map(|seg| SegmentInfo {
                    base_offset: seg.base_offset,
                    next_offset: seg.next_offset,
                    len: seg.len,
                    max_timestamp: seg.max_timestamp,
                    created_ms: seg.created_ms,
                    finalized: s.is_finalized(seg.base_offset),
                })
                .collect();
            sum.closed = Arc::new(closed);
            sum.start_offset = s.map.keys().next().copied().unwrap_or(active.base_offset);
        }
        sum.end_offset = active.next_offset;
        sum.active_base = active.base_offset;
        sum.size_bytes = sum.closed.iter().map(|c| c.len).sum::<u64>() + active.len;
    }

    /// Appends a validated batch (its patched header and the rest), rolling first when the
    /// active segment is full or old. `snapshot(offset)` gives the producer state as of
    /// `offset` when a roll needs it. The write happens outside the lock; callers serialize
    /// appends (the partition's sequencing lock).
    pub fn append(
        &self,
        head: &[u8],
        body: &[u8],
        h: &BatchHeader,
        roll: Roll,
        snapshot: &mut dyn FnMut(i64) -> Vec<u8>,
    ) -> io::Result<()> {
        let total = (head.len() + body.len()) as u64;
        let (file, pos, fill_to, base) = {
            let mut s = self.segments.lock();
            let active = s.active();
            let needs_roll = !active.is_empty()
                && (active.len + total > roll.segment_bytes as u64
                    || roll.now_ms - active.created_ms >= roll.segment_ms
                    || !active.can_hold_offset(h.last_offset()));
            if needs_roll {
                self.roll(&mut s, h.base_offset, roll.now_ms, snapshot(h.base_offset))?;
            }
            let active = s.active_mut();
            let (file, pos, fill_to) = active.prepare_append(total);
            (file, pos, fill_to, active.base_offset)
        };
        segment::write_at(&file, head, body, pos, fill_to)?;
        let mut s = self.segments.lock();
        if let Some(seg) = s.map.get_mut(&base) {
            seg.appended(h, pos, total, roll.index_interval);
        }
        self.publish(&s, false);
        Ok(())
    }

    /// Rolls the active segment without an append when it holds data and is at least
    /// `max_age_ms` old or `max_bytes` big (a cluster bounds what only its WAL holds this way).
    /// Callers serialize it with appends. Returns whether it rolled.
    pub fn roll_if_due(
        &self,
        now_ms: i64,
        max_age_ms: i64,
        max_bytes: u64,
        snapshot: &mut dyn FnMut(i64) -> Vec<u8>,
    ) -> io::Result<bool> {
        let mut s = self.segments.lock();
        let active = s.active();
        if active.is_empty() || (now_ms - active.created_ms < max_age_ms && active.len < max_bytes)
        {
            return Ok(false);
        }
        let base = active.next_offset;
        self.roll(&mut s, base, now_ms, snapshot(base))?;
        Ok(true)
    }

    /// Closes the active segment and starts a new one at `base`; the closed segment is
    /// finalized by the next flush.
    fn roll(&self, s: &mut Segments, base: i64, now: i64, snapshot: Vec<u8>) -> io::Result<()> {
        let active = s.active_mut();
        active.release_reserved()?;
        let rolled = active.base_offset;
        let seg = Segment::create(&self.dir, base, now)?;
        s.map.insert(base, seg);
        s.rolled.push_back((rolled, base, snapshot));
        self.publish(s, true);
        Ok(())
    }

    /// Records a transaction aborted by a marker just appended (in the active segment).
    pub fn note_aborted(&self, entry: AbortedTxn) {
        self.segments.lock().active_mut().note_aborted(entry);
    }

    /// Makes everything written so far durable (rolled segments, then the active one, then new
    /// directory entries) and finalizes the rolled segments: their index files, then the
    /// producer snapshot as of their end. `None` when there was nothing to do.
    pub fn flush(&self) -> io::Result<Option<Flushed>> {
        let mut failed = self.syncing.lock();
        if *failed {
            return Err(io::Error::other(
                "an earlier sync of this log failed; nothing written since is known durable",
            ));
        }
        let res = self.flush_locked();
        *failed = res.is_err();
        res
    }

    fn flush_locked(&self) -> io::Result<Option<Flushed>> {
        let (plan, end, new_entries, dir_new) = {
            let s = self.segments.lock();
            let plan: Vec<(i64, Arc<std::fs::File>, u64)> = s
                .map
                .values()
                .filter(|seg| seg.needs_sync())
                .map(|seg| (seg.base_offset, seg.file(), seg.len))
                .collect();
            if plan.is_empty() && s.rolled.is_empty() {
                return Ok(None);
            }
            let new_entries: Vec<i64> = s
                .map
                .values()
                .filter(|seg| !seg.entry_durable)
                .map(|seg| seg.base_offset)
                .collect();
            (plan, s.active().next_offset, new_entries, !s.dir_durable)
        };
        for (_, file, _) in &plan {
            sync(file, Durable::Segment, false)?;
        }
        if !new_entries.is_empty() || dir_new {
            sync_dir(&self.dir)?;
        }
        if dir_new {
            if let Some(parent) = self.dir.parent() {
                sync_dir(parent)?;
            }
        }
        {
            let mut s = self.segments.lock();
            s.dir_durable = true;
            for (base, _, len) in &plan {
                if let Some(seg) = s.map.get_mut(base) {
                    seg.durable_len = seg.durable_len.max(*len);
                }
            }
            for base in &new_entries {
                if let Some(seg) = s.map.get_mut(base) {
                    seg.entry_durable = true;
                }
            }
        }
        let finalized = self.finalize_rolled()?;
        Ok(Some(Flushed {
            durable_end: end,
            finalized,
        }))
    }

    /// Whether [`Self::flush`] has anything to do: a look that never waits (the segments lock
    /// can be held across file-system calls, as in a roll), so a busy lock counts as yes.
    pub fn needs_flush(&self) -> bool {
        let Some(s) = self.segments.try_lock() else {
            return true;
        };
        !s.dir_durable || !s.rolled.is_empty() || s.map.values().any(|seg| seg.needs_sync())
    }

    /// Writes the index files and producer snapshot of each rolled segment whose data is
    /// durable, oldest first.
    fn finalize_rolled(&self) -> io::Result<usize> {
        let mut done = 0;
        loop {
            let next = {
                let mut s = self.segments.lock();
                let Some(&(base, at, _)) = s.rolled.front() else {
                    break;
                };
                match s.map.get_mut(&base) {
                    Some(seg) if seg.durable_len < seg.len => break,
                    Some(seg) => Some((base, at, seg.index_files())),
                    // deleted meanwhile (retention): its snapshot is still a valid state
                    None => Some((base, at, None)),
                }
            };
            let Some((base, at, files)) = next else { break };
            if let Some(files) = &files {
                files.write()?;
            }
            let snapshot = {
                let mut s = self.segments.lock();
                if let (Some(files), Some(seg)) = (&files, s.map.get_mut(&base)) {
                    seg.indexes_written(files);
                }
                match s.rolled.front() {
                    Some((b, _, _)) if *b == base => s.rolled.pop_front().map(|(_, _, b)| b),
                    _ => None,
                }
            };
            if let Some(bytes) = snapshot {
                self.write_snapshot(at, &bytes)?;
            }
            self.publish(&self.segments.lock(), true);
            done += 1;
        }
        Ok(done)
    }

    /// Writes `<at>.snapshot` and deletes all but the newest few.
    fn write_snapshot(&self, at: i64, bytes: &[u8]) -> io::Result<()> {
        write_atomic(
            &self.dir.join(format::segment_file(at, "snapshot")),
            bytes,
            Durable::Metadata,
        )?;
        let mut existing: Vec<i64> = std::fs::read_dir(&self.dir)?
            .filter_map(Result::ok)
            .filter_map(|e| offset_of_file(e.file_name().to_str()?, "snapshot"))
            .collect();
        existing.sort_unstable();
        let n = existing.len().saturating_sub(SNAPSHOTS_KEPT);
        for old in &existing[..n] {
            remove_if_exists(&self.dir.join(format::segment_file(*old, "snapshot")))?;
        }
        Ok(())
    }

    /// Whole batches starting with the one holding `offset` (or the first after it), among
    /// durable data: at most `max_bytes`, except that with `min_one` the first batch comes
    /// whole. Empty when nothing durable holds `offset` or anything after it.
    pub fn read(&self, offset: i64, max_bytes: usize, min_one: bool) -> io::Result<Bytes> {
        match self.locate(offset)? {
            Some((file, found, limit)) => {
                segment::read_batches(&file, &found, limit, max_bytes, min_one)
            }
            None => Ok(Bytes::new()),
        }
    }

    /// The batches [`LocalLog::read`] would read, left in their file, cut before the first batch
    /// that starts at or after `below`. `None` when there are none.
    pub fn slice(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
        below: i64,
    ) -> io::Result<Option<segment::Sliced>> {
        match self.locate(offset)? {
            Some((file, found, limit)) => {
                segment::slice_batches(&file, &found, limit, (max_bytes, min_one), below)
            }
            None => Ok(None),
        }
    }

    /// The durable batch holding `offset` (or the first after it): its file, where it is, and
    /// where the file's durable data ends.
    fn locate(&self, offset: i64) -> io::Result<Option<(Arc<std::fs::File>, Found, u64)>> {
        let mut after: Option<i64> = None;
        loop {
            let candidate = {
                let s = self.segments.lock();
                // the segment holding `offset`, else the next ones (compaction can leave a
                // segment without its last offsets)
                let start = match after {
                    None => s
                        .map
                        .range(..=offset)
                        .next_back()
                        .map_or(i64::MIN, |(b, _)| *b),
                    Some(b) => b.saturating_add(1),
                };
                s.map
                    .range(start..)
                    .map(|(_, seg)| seg)
                    .find(|seg| seg.next_offset > offset)
                    .map(|seg| {
                        (
                            seg.base_offset,
                            seg.file(),
                            seg.index_position(offset),
                            seg.durable_len,
                        )
                    })
            };
            let Some((base, file, pos, limit)) = candidate else {
                return Ok(None);
            };
            if let Some(found) = segment::locate(&file, pos, limit, Target::Offset(offset))? {
                return Ok(Some((file, found, limit)));
            }
            after = Some(base);
        }
    }

    /// The first durable batch with a max timestamp `>= ts`, whole, with its header.
    pub fn find_timestamp(&self, ts: i64) -> io::Result<Option<(Found, Bytes)>> {
        let candidates: Vec<(Arc<std::fs::File>, u64, u64)> = {
            let s = self.segments.lock();
            s.map
                .values()
                .filter(|seg| seg.max_timestamp >= ts && seg.durable_len > 0)
                .map(|seg| (seg.file(), seg.time_position(ts), seg.durable_len))
                .collect()
        };
        for (file, pos, limit) in candidates {
            if let Some(found) = segment::locate(&file, pos, limit, Target::Timestamp(ts))? {
                let bytes = segment::read_batches(&file, &found, limit, 0, true)?;
                return Ok(Some((found, bytes)));
            }
        }
        Ok(None)
    }

    /// The offset and timestamp of the record with the largest timestamp below `hw`.
    pub fn max_timestamp(&self, hw: i64) -> Option<(i64, i64)> {
        let s = self.segments.lock();
        s.map
            .values()
            .filter(|seg| seg.max_timestamp >= 0 && seg.offset_of_max_timestamp < hw)
            .max_by_key(|seg| seg.max_timestamp)
            .map(|seg| (seg.offset_of_max_timestamp, seg.max_timestamp))
    }

    /// Aborted transactions with records in `[from, to)`. A transaction's marker never comes
    /// before its records, so only segments from the one holding `from` onwards are searched.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        let s = self.segments.lock();
        let start = s
            .map
            .range(..=from)
            .next_back()
            .map_or(i64::MIN, |(k, _)| *k);
        s.map
            .range(start..)
            .flat_map(|(_, seg)| seg.aborted.iter())
            .filter(|e| e.overlaps(from, to))
            .copied()
            .collect()
    }

    /// Every aborted transaction the local log knows.
    pub fn all_aborted(&self) -> Vec<AbortedTxn> {
        let s = self.segments.lock();
        s.map.values().flat_map(|seg| seg.aborted.clone()).collect()
    }

    /// Upload jobs for finalized closed segments past `uploaded_end` and wholly below `below`
    /// (the oldest open transaction), each with every aborted transaction reaching into it
    /// (their markers may be in later segments, all still local: segments go up in order).
    pub fn upload_jobs(&self, uploaded_end: i64, below: i64) -> Vec<UploadJob> {
        let s = self.segments.lock();
        let closed = s.map.len().saturating_sub(1);
        let mut jobs = Vec::new();
        for seg in s.map.values().take(closed) {
            if seg.next_offset > below || !s.is_finalized(seg.base_offset) {
                break;
            }
            if seg.next_offset <= uploaded_end || seg.is_empty() {
                continue;
            }
            let aborted: Vec<AbortedTxn> = s
                .map
                .range(seg.base_offset..)
                .flat_map(|(_, later)| later.aborted.iter())
                .filter(|a| a.overlaps(seg.base_offset, seg.next_offset))
                .copied()
                .collect();
            jobs.push(UploadJob {
                txn_index: Bytes::from(crate::format::txn_index::encode(&aborted)),
                base_offset: seg.base_offset,
                next_offset: seg.next_offset,
                size_bytes: seg.len,
                max_timestamp: seg.max_timestamp,
                offset_of_max_timestamp: seg.offset_of_max_timestamp,
                data: seg.lend(),
                index: seg.index_bytes(),
                time_index: seg.time_index_bytes(),
            });
        }
        jobs
    }

    /// Deletes closed segments (never the active one). Returns how many went.
    pub fn delete_segments(&self, bases: &[i64]) -> io::Result<usize> {
        let removed: Vec<Segment> = {
            let mut s = self.segments.lock();
            let active = s.active().base_offset;
            let gone: Vec<Segment> = bases
                .iter()
                .filter(|b| **b != active)
                .filter_map(|b| s.map.remove(b))
                .collect();
            if !gone.is_empty() {
                self.publish(&s, true);
            }
            gone
        };
        for seg in &removed {
            seg.delete_files()?;
        }
        Ok(removed.len())
    }

    /// Closed segments wholly below `offset` (DeleteRecords).
    pub fn closed_below(&self, offset: i64) -> Vec<i64> {
        let sum = self.summary();
        sum.closed
            .iter()
            .filter(|c| c.next_offset <= offset)
            .map(|c| c.base_offset)
            .collect()
    }

    /// Closed, finalized segments for the cleaner: (base, len, max timestamp, next offset, file,
    /// stem).
    pub fn cleanable(&self) -> Vec<ClosedSegment> {
        let s = self.segments.lock();
        let n = s.map.len().saturating_sub(1);
        s.map
            .values()
            .take(n)
            .take_while(|seg| s.is_finalized(seg.base_offset))
            .map(|seg| ClosedSegment {
                base: seg.base_offset,
                len: seg.len,
                max_timestamp: seg.max_timestamp,
                next_offset: seg.next_offset,
                file: seg.file(),
                stem: seg.stem().to_path_buf(),
            })
            .collect()
    }

    /// Replaces a closed segment's data with a cleaned copy (fsynced by the cleaner) and
    /// rebuilds its indexes; an emptied segment goes, except the first (its base offset is the
    /// log start offset). Does nothing when the segment changed or went meanwhile.
    pub fn replace_segment(
        &self,
        seg: &ClosedSegment,
        cleaned: &Path,
        cleaned_len: u64,
        index_interval: u64,
        now: i64,
    ) -> io::Result<()> {
        let mut s = self.segments.lock();
        let still_there = s.map.get(&seg.base).is_some_and(|cur| cur.len == seg.len);
        let is_active = s.map.keys().next_back() == Some(&seg.base);
        if !still_there || is_active {
            drop(s);
            return remove_if_exists(cleaned);
        }
        let is_first = s.map.keys().next() == Some(&seg.base);
        if cleaned_len == 0 && !is_first {
            if let Some(old) = s.map.remove(&seg.base) {
                old.delete_files()?;
            }
            self.publish(&s, true);
            drop(s);
            return remove_if_exists(cleaned);
        }
        std::fs::rename(cleaned, seg.stem.with_extension("log"))?;
        sync_dir(&self.dir)?;
        let mut fresh = Segment::recover(
            &self.dir,
            seg.base,
            true,
            index_interval,
            now,
            &mut |_, _| None,
        )?;
        // markers stay where they were, so the aborted-transaction entries do too
        if let Some(old) = s.map.get(&seg.base) {
            for entry in &old.aborted {
                fresh.note_aborted(*entry);
            }
        }
        fresh.write_indexes()?;
        s.map.insert(seg.base, fresh);
        self.publish(&s, true);
        Ok(())
    }

    /// A small decimal file in the partition directory (`log-start-offset`, the cleaner's
    /// checkpoint), `None` when absent.
    pub fn read_number(&self, name: &str) -> io::Result<Option<i64>> {
        match read_if_exists(&self.dir.join(name))? {
            None => Ok(None),
            Some(b) => format::parse_decimal(&b).map(Some).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} does not hold an offset", self.dir.join(name).display()),
                )
            }),
        }
    }

    pub fn write_number(&self, name: &str, value: i64) -> io::Result<()> {
        write_atomic(
            &self.dir.join(name),
            value.to_string().as_bytes(),
            Durable::Metadata,
        )
    }

    /// Clean shutdown: everything durable, every segment's index files written and the producer
    /// state as of the log end (`snapshot`) saved, so the next start reads no log data.
    pub fn close(&self, snapshot: Vec<u8>) -> io::Result<()> {
        self.flush()?;
        let (files, end) = {
            let mut s = self.segments.lock();
            let end = s.active().next_offset;
            let mut files = Vec::new();
            for seg in s.map.values_mut() {
                seg.release_reserved()?;
                if let Some(f) = seg.index_files() {
                    files.push((seg.base_offset, f));
                }
            }
            (files, end)
        };
        {
            let s = self.segments.lock();
            sync(&s.active().file(), Durable::Segment, false)?;
        }
        for (_, f) in &files {
            f.write()?;
        }
        {
            let mut s = self.segments.lock();
            for (base, f) in &files {
                if let Some(seg) = s.map.get_mut(base) {
                    seg.indexes_written(f);
                }
            }
        }
        self.write_snapshot(end, &snapshot)
    }
}

/// A closed segment as the cleaner reads it.
pub struct ClosedSegment {
    pub base: i64,
    pub len: u64,
    pub max_timestamp: i64,
    pub next_offset: i64,
    pub file: Arc<std::fs::File>,
    pub stem: PathBuf,
}

/// Loads the newest snapshot `replay` accepts; its offset.
fn load_snapshot(dir: &Path, offsets: &[i64], replay: &mut dyn Replay) -> io::Result<Option<i64>> {
    for at in offsets.iter().rev() {
        let path = dir.join(format::segment_file(*at, "snapshot"));
        if let Some(bytes) = read_if_exists(&path)? {
            if replay.load(*at, &bytes) {
                return Ok(Some(*at));
            }
            tracing::warn!(snapshot = %path.display(), "producer snapshot unreadable; trying an older one");
        }
    }
    Ok(None)
}

/// Opens every segment: from its index files below the snapshot at `trusted` (and, after a
/// clean stop, the active one too), otherwise by walking it (CRC-checked after an unclean
/// stop) while `replay` sees the batches at or after the snapshot. `None` when a segment below
/// the snapshot cannot be loaded from its indexes. When closed segments were walked, also the
/// snapshot as of the active segment's base (a new recovery point) to write.
fn open_segments(
    dir: &Path,
    bases: &[i64],
    trusted: Option<i64>,
    o: &OpenOptions,
    replay: &mut dyn Replay,
) -> io::Result<Option<Opened>> {
    let mut map = BTreeMap::new();
    let mut walked_closed = false;
    let mut point = None;
    let from = trusted.unwrap_or(i64::MIN);
    for (i, &base) in bases.iter().enumerate() {
        let next_base = bases.get(i + 1).copied();
        let below = trusted.is_some() && next_base.is_some_and(|nb| nb <= from);
        let is_last = next_base.is_none();
        if below || (is_last && o.clean && trusted.is_some()) {
            match Segment::load(dir, base, o.now_ms)? {
                Some(seg) if below || seg.next_offset == from => {
                    map.insert(base, seg);
                    continue;
                }
                _ if below => return Ok(None),
                _ => {}
            }
        }
        if is_last && walked_closed && trusted != Some(base) {
            point = Some((base, replay.snapshot(base)));
        }
        let mut observe = |h: &BatchHeader, marker: Option<bool>| {
            if h.base_offset >= from {
                replay.batch(h, marker)
            } else {
                None
            }
        };
        let observe: &mut Observe<'_> = &mut observe;
        let mut seg = Segment::recover(dir, base, !o.clean, o.index_interval, o.now_ms, observe)?;
        if !is_last {
            // walked closed segments are finalized now: durable, with their index files
            if !o.clean {
                sync(&seg.file(), Durable::Segment, false)?;
            }
            seg.write_indexes()?;
            walked_closed = true;
        }
        map.insert(base, seg);
    }
    Ok(Some((map, point)))
}

/// The opened segments, and a recovery point to write (offset, snapshot bytes).
type Opened = (BTreeMap<i64, Segment>, Option<(i64, Vec<u8>)>);
