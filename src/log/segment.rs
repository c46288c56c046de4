//! One log segment: `<base offset>.log` with its sparse `.index` and `.timeindex` (kept in
//! memory as their file bytes) and the `.txnindex` of transactions aborted by markers in it
//! (written only when there are some). Only [`super::local_log::LocalLog`] uses it, from the
//! log's I/O executor: every method may block on the file system.
//!
//! Invariants: `len` is the number of valid bytes in the `.log` file and every byte below it is
//! a sequence of whole, CRC-checked batches with strictly increasing offsets; `durable_len <= len`
//! is what an `fdatasync` has covered. Appends write at `len` with `pwrite`; a failed write is
//! cut off again (`set_len(len)`), so a full disk leaves no partial batch behind. Past `len` the
//! file may hold zeros written ahead of the appends (see [`Segment::prepare_append`]); a closed
//! segment's file is cut back to `len`, and a walk after a crash drops them with any torn tail.
//!
//! A segment comes back at start-up in one of two ways: [`Segment::load`] trusts its index files
//! (written when the segment was made durable) and reads only the batches after the last index
//! entry; [`Segment::recover`] walks every batch from the start, rebuilding the indexes, and with
//! `verify` checks every CRC and truncates a torn or corrupt tail.

use crate::format::batch::{self, BatchHeader, HEADER_LEN};
use crate::format::index::{self, OffsetEntry, TimeEntry};
use crate::format::markers;
use crate::format::read::{self, Found, Target, Walk};
use crate::format::txn_index::{self, AbortedTxn};
use crate::fs::{preallocate, read_if_exists, remove_if_exists, sync, write_atomic, Durable};
use bytes::{Bytes, BytesMut};
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Disk space is reserved ahead of appends (see [`Segment::prepare_append`]): as far ahead as
/// the segment already holds, between these bounds, so a partition with N bytes of data takes
/// at most N + 1 MiB of disk.
const RESERVE_MIN: u64 = 64 << 10;
const RESERVE_MAX: u64 = 1 << 20;
/// An append smaller than this that needs new space gets it as zeros written ahead; a larger
/// one as blocks reserved with fallocate.
const FILL_BELOW: u64 = 64 << 10;
/// The least written ahead as zeros: a page (a small partition's first record costs one more).
const FILL_MIN: u64 = 4 << 10;

/// Disk reserved ahead of the data across every segment of the process; past it, appends
/// reserve nothing more (their writes allocate as they go), so many partitions with little
/// data cannot hold a megabyte each.
const RESERVED_BUDGET: u64 = 256 << 20;

/// Bytes reserved past the data, summed over every open segment.
static RESERVED_AHEAD: Reservations = Reservations::new(RESERVED_BUDGET);

/// A count of reserved bytes against a limit.
pub(super) struct Reservations {
    held: std::sync::atomic::AtomicU64,
    limit: u64,
}

impl Reservations {
    pub(super) const fn new(limit: u64) -> Reservations {
        Reservations {
            held: std::sync::atomic::AtomicU64::new(0),
            limit,
        }
    }

    /// Takes up to `want` bytes; returns what it got.
    pub(super) fn take(&self, want: u64) -> u64 {
        use std::sync::atomic::Ordering;
        let mut got = 0;
        let _ = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                got = want.min(self.limit.saturating_sub(held));
                Some(held + got)
            });
        got
    }

    pub(super) fn give_back(&self, n: u64) {
        use std::sync::atomic::Ordering;
        let _ = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                Some(held.saturating_sub(n))
            });
    }
}

/// What a start-up walk reports for each batch: its header and, for a control batch, whether
/// it commits (`Some(true)`) or aborts a transaction. Returns the aborted-transaction entry an
/// abort marker creates.
pub type Observe<'a> = dyn FnMut(&BatchHeader, Option<bool>) -> Option<AbortedTxn> + 'a;

pub struct Segment {
    pub base_offset: i64,
    stem: PathBuf,
    file: Arc<File>,
    /// Valid bytes in the `.log` file.
    pub len: u64,
    /// Bytes covered by a completed `fdatasync`.
    pub durable_len: u64,
    /// One past the last offset stored here (`base_offset` while empty).
    pub next_offset: i64,
    /// Largest batch max-timestamp seen, -1 while empty.
    pub max_timestamp: i64,
    /// Last offset of the batch holding `max_timestamp`.
    pub offset_of_max_timestamp: i64,
    /// When the segment was created (ms), for `segment.ms` rolling.
    pub created_ms: i64,
    /// The `.index` and `.timeindex` bytes ([`crate::format::index`]).
    index: Vec<u8>,
    time_index: Vec<u8>,
    bytes_since_index: u64,
    /// Transactions aborted by markers in this segment, in marker order.
    pub aborted: Vec<AbortedTxn>,
    /// Set once the indexes on disk match memory (a closed segment after it was finalized or
    /// loaded).
    indexes_on_disk: bool,
    /// Whether the `.log` file's directory entry is known durable (a new segment's is not
    /// until its directory is synced).
    pub entry_durable: bool,
    /// Space is reserved up to here: zeros written past the data, or blocks reserved past the
    /// file's length (see [`Segment::prepare_append`]).
    reserved_to: u64,
    /// Of those, the bytes past the data counted in the broker's reservation budget.
    counted: u64,
}

impl Drop for Segment {
    fn drop(&mut self) {
        // a deleted or closed segment's reservation leaves the budget with it
        RESERVED_AHEAD.give_back(self.counted);
    }
}

impl Segment {
    fn path(&self, ext: &str) -> PathBuf {
        self.stem.with_extension(ext)
    }

    /// Creates a new empty segment. Its directory entry is synced later (before anything in it
    /// is acknowledged).
    pub fn create(dir: &Path, base_offset: i64, now_ms: i64) -> io::Result<Segment> {
        let stem = dir.join(crate::format::file_stem(base_offset));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(stem.with_extension("log"))?;
        let mut seg = Segment::empty(base_offset, stem, file, now_ms);
        seg.entry_durable = false;
        Ok(seg)
    }

    /// The in-memory state of a segment with nothing known about its contents yet.
    fn empty(base_offset: i64, stem: PathBuf, file: File, created_ms: i64) -> Segment {
        Segment {
            base_offset,
            stem,
            file: Arc::new(file),
            len: 0,
            durable_len: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: -1,
            created_ms,
            index: Vec::new(),
            time_index: Vec::new(),
            bytes_since_index: 0,
            aborted: Vec::new(),
            indexes_on_disk: false,
            entry_durable: true,
            reserved_to: 0,
            counted: 0,
        }
    }

    fn open_existing(dir: &Path, base_offset: i64, now_ms: i64) -> io::Result<(Segment, u64)> {
        let stem = dir.join(crate::format::file_stem(base_offset));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(stem.with_extension("log"))?;
        let meta = file.metadata()?;
        let created_ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .unwrap_or(now_ms);
        Ok((
            Segment::empty(base_offset, stem, file, created_ms),
            meta.len(),
        ))
    }

    /// Opens a segment from its index files, reading only the batch headers after the last
    /// offset-index entry. `None` when the index files are missing or do not fit the log (the
    /// caller then walks the segment with [`Segment::recover`]).
    pub fn load(dir: &Path, base_offset: i64, now_ms: i64) -> io::Result<Option<Segment>> {
        let (mut seg, file_len) = Segment::open_existing(dir, base_offset, now_ms)?;
        let (Some(offsets), Some(times)) = (
            read_if_exists(&seg.path("index"))?,
            read_if_exists(&seg.path("timeindex"))?,
        ) else {
            return Ok(None);
        };
        if !index::offsets_valid(&offsets, file_len.max(1)) || !index::times_valid(&times) {
            return Ok(None);
        }
        let aborted = match read_if_exists(&seg.path("txnindex"))? {
            Some(b) => match txn_index::decode(&b) {
                Some(a) => a,
                None => return Ok(None),
            },
            None => Vec::new(),
        };
        let last = index::last_offset(&offsets);
        if file_len > 0 && last.is_none() {
            return Ok(None);
        }
        let start = last.map_or(0, |e| e.position as u64);
        let mut pos = start;
        let mut head = [0u8; HEADER_LEN];
        let (mut next, mut tail_max) = (base_offset, (-1i64, -1i64));
        while pos + HEADER_LEN as u64 <= file_len {
            seg.file.read_exact_at(&mut head, pos)?;
            // not a batch: the end of the data if only zeros follow (checked below)
            let Ok(h) = BatchHeader::parse(&head) else {
                break;
            };
            if h.base_offset < next || pos + h.total_len() as u64 > file_len {
                break;
            }
            if h.max_timestamp > tail_max.0 {
                tail_max = (h.max_timestamp, h.last_offset());
            }
            next = h.last_offset() + 1;
            pos += h.total_len() as u64;
        }
        // zeros written ahead of the appends may follow the data (a segment not cut back)
        if pos != file_len && !zeros_only(&seg.file, pos, file_len) {
            return Ok(None);
        }
        let (max_ts, at) = match index::last_time(&times) {
            Some(t) if t.timestamp >= tail_max.0 => {
                (t.timestamp, base_offset + t.relative_offset as i64)
            }
            _ => tail_max,
        };
        seg.len = pos;
        seg.durable_len = pos;
        seg.reserved_to = file_len;
        seg.next_offset = next;
        seg.max_timestamp = max_ts;
        seg.offset_of_max_timestamp = at;
        seg.bytes_since_index = pos - start;
        seg.index = offsets;
        seg.time_index = times;
        seg.aborted = aborted;
        seg.indexes_on_disk = true;
        Ok(Some(seg))
    }

    /// Opens a segment by walking it from the start, rebuilding its indexes. With `verify`,
    /// every batch is read whole and CRC-checked and the file is truncated at the first torn or
    /// corrupt byte; otherwise only batch headers are read. `observe` sees every batch.
    pub fn recover(
        dir: &Path,
        base_offset: i64,
        verify: bool,
        index_interval: u64,
        now_ms: i64,
        observe: &mut Observe<'_>,
    ) -> io::Result<Segment> {
        let (mut seg, file_len) = Segment::open_existing(dir, base_offset, now_ms)?;
        let valid_len = seg.scan(file_len, verify, index_interval, observe)?;
        if valid_len < file_len {
            if zeros_only(&seg.file, valid_len, file_len) {
                // the zeros written ahead of the appends (a stop without the clean shutdown's
                // cut)
                tracing::debug!(
                    segment = %seg.path("log").display(),
                    valid_len,
                    file_len,
                    "dropping the zeros written ahead of the appends"
                );
            } else {
                tracing::warn!(
                    segment = %seg.path("log").display(),
                    valid_len,
                    file_len,
                    "truncating torn or corrupt segment tail"
                );
            }
            seg.file.set_len(valid_len)?;
            sync(&seg.file, Durable::Segment, false)?;
        }
        seg.len = valid_len;
        seg.durable_len = valid_len;
        Ok(seg)
    }

    /// Walks the file from the start, rebuilding indexes and offsets. With `verify`, reads every
    /// batch whole and checks its CRC. Returns the length of the valid prefix.
    fn scan(
        &mut self,
        file_len: u64,
        verify: bool,
        index_interval: u64,
        observe: &mut Observe<'_>,
    ) -> io::Result<u64> {
        let file = self.file.clone();
        let mut reader = io::BufReader::with_capacity(1 << 20, &*file);
        let mut pos: u64 = 0;
        let mut buf: Vec<u8> = Vec::new();
        let mut head = [0u8; HEADER_LEN];
        let mut expected_next = self.base_offset;
        loop {
            if file_len - pos < HEADER_LEN as u64 {
                break;
            }
            if reader.read_exact(&mut head).is_err() {
                break;
            }
            let h = match BatchHeader::parse(&head) {
                Ok(h) => h,
                Err(_) => break,
            };
            let total = h.total_len() as u64;
            if total > file_len - pos || h.base_offset < expected_next || h.last_offset_delta < 0 {
                break;
            }
            let rest = total as usize - HEADER_LEN;
            let mut marker = None;
            if verify || h.is_control() {
                // control batches are read whole (a few dozen bytes): their kind matters
                buf.clear();
                buf.extend_from_slice(&head);
                buf.resize(total as usize, 0);
                if reader.read_exact(&mut buf[HEADER_LEN..]).is_err() {
                    break;
                }
                if verify && batch::validate_stored(&buf).is_err() {
                    break;
                }
                if h.is_control() {
                    marker = markers::marker_kind(&buf);
                }
            } else if reader.seek_relative(rest as i64).is_err() {
                break;
            }
            self.note_batch(&h, pos, total, index_interval);
            if let Some(entry) = observe(&h, marker) {
                self.aborted.push(entry);
            }
            expected_next = h.last_offset() + 1;
            pos += total;
        }
        Ok(pos)
    }

    /// Records a batch appended at `pos` in the in-memory state and indexes.
    fn note_batch(&mut self, h: &BatchHeader, pos: u64, total: u64, index_interval: u64) {
        let rel = (h.base_offset - self.base_offset) as u32;
        if self.index.is_empty() || self.bytes_since_index >= index_interval {
            index::push_offset(
                &mut self.index,
                OffsetEntry {
                    relative_offset: rel,
                    position: pos as u32,
                },
            );
            self.bytes_since_index = 0;
        }
        if h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
            self.offset_of_max_timestamp = h.last_offset();
            // time entries sit at offset-index points, so every batch before an entry has a
            // max timestamp below the entry's: a lookup may start its walk there. Each names
            // the last offset of its batch, as Kafka's do (the offset of the max timestamp).
            if self.bytes_since_index == 0 {
                index::push_time(
                    &mut self.time_index,
                    TimeEntry {
                        timestamp: h.max_timestamp,
                        relative_offset: (h.last_offset() - self.base_offset) as u32,
                    },
                );
            }
        }
        self.bytes_since_index += total;
        self.next_offset = h.last_offset() + 1;
        self.indexes_on_disk = false;
    }

    /// Where the next append of `len` bytes goes, and how far past it the caller is to fill the
    /// file with zeros after writing it ([`write_at`] does; the append's end when
    /// nothing is to be filled).
    ///
    /// Space is reserved ahead of the appends, and how depends on their size. Small appends get
    /// zeros written ahead: the blocks are then the file's already and its length does not
    /// move, so their `fdatasync` writes the data alone, where an append past the end makes it
    /// write the block map and the inode too (on the disk this was measured on, twice the syncs
    /// a second, half the CPU per sync; `benches/sync_layout.py`). Only one sync in every so
    /// many pays for that. The zeros are written past everything appended, by the appender
    /// itself (appends are serialized), so they never cover a byte of data. Large appends,
    /// whose syncs are mostly their data, get blocks reserved without a write (fallocate,
    /// length unchanged): writing zeros ahead of a stream of large batches doubles what goes to
    /// the disk.
    pub fn prepare_append(&mut self, len: u64) -> (Arc<File>, u64, u64) {
        let end = self.len + len;
        let mut fill_to = end;
        if end >= self.reserved_to {
            // what was reserved ahead becomes this append's data: it leaves the budget, and a
            // new reservation starts past the append
            RESERVED_AHEAD.give_back(std::mem::take(&mut self.counted));
            let small = len < FILL_BELOW;
            let least = if small { FILL_MIN } else { RESERVE_MIN };
            let ahead = RESERVED_AHEAD.take(end.clamp(least, RESERVE_MAX));
            let target = end + ahead;
            if small {
                fill_to = target;
            } else {
                let _ = preallocate(&self.file, self.reserved_to.max(self.len), target);
            }
            // if the reservation fails, don't retry on every append: move on as if reserved
            self.reserved_to = target;
            self.counted = ahead;
        } else {
            let used = len.min(self.counted);
            self.counted -= used;
            RESERVED_AHEAD.give_back(used);
        }
        (self.file.clone(), self.len, fill_to)
    }

    /// Records a batch of `len` bytes written at `pos` by [`Segment::prepare_append`]'s
    /// caller.
    pub fn appended(&mut self, h: &BatchHeader, pos: u64, len: u64, index_interval: u64) {
        self.len = pos + len;
        self.note_batch(h, pos, len, index_interval);
    }

    /// Appends one batch given as its (patched) header and the rest of its bytes, written with
    /// one `pwritev` so the record bytes are never copied in user space.
    #[cfg(test)]
    pub fn append(
        &mut self,
        head: &[u8],
        body: &[u8],
        h: &BatchHeader,
        index_interval: u64,
    ) -> io::Result<()> {
        let total = (head.len() + body.len()) as u64;
        let (file, pos, fill_to) = self.prepare_append(total);
        write_at(&file, head, body, pos, fill_to)?;
        self.appended(h, pos, total, index_interval);
        Ok(())
    }

    /// Records a transaction aborted by a marker in this segment.
    pub fn note_aborted(&mut self, entry: AbortedTxn) {
        self.aborted.push(entry);
        self.indexes_on_disk = false;
    }

    /// Cuts the file back to its data, giving back the zeros written ahead (roll, clean
    /// shutdown).
    pub fn release_reserved(&mut self) -> io::Result<()> {
        if self.reserved_to > self.len {
            self.file.set_len(self.len)?;
            self.reserved_to = self.len;
        }
        RESERVED_AHEAD.give_back(std::mem::take(&mut self.counted));
        Ok(())
    }

    pub fn file(&self) -> Arc<File> {
        self.file.clone()
    }

    /// Whether a sync has something to make durable here: data or the directory entry.
    pub fn needs_sync(&self) -> bool {
        self.durable_len < self.len || !self.entry_durable
    }

    /// The `.log` bytes lent to an upload (readable while the segment is in the log).
    pub fn lend(&self) -> Arc<dyn crate::tier::SegmentData> {
        Arc::new(Lent(Arc::downgrade(&self.file)))
    }

    /// The offset index as it is (or will be) on disk.
    pub fn index_bytes(&self) -> Bytes {
        Bytes::copy_from_slice(&self.index)
    }

    /// The time index as it is (or will be) on disk.
    pub fn time_index_bytes(&self) -> Bytes {
        Bytes::copy_from_slice(&self.time_index)
    }

    /// The files' common path without extension (`<dir>/<base offset>`).
    pub fn stem(&self) -> &Path {
        &self.stem
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether offsets up to `offset` still fit the index's 32-bit relative offsets.
    pub fn can_hold_offset(&self, offset: i64) -> bool {
        offset - self.base_offset <= i32::MAX as i64
    }

    /// Index position from which to walk to `offset`.
    pub fn index_position(&self, offset: i64) -> u64 {
        let rel = (offset - self.base_offset).clamp(0, u32::MAX as i64) as u32;
        index::start_position(&self.index, rel, self.len.max(1))
    }

    /// Index position from which to walk to the first batch with a timestamp `>= ts`.
    pub fn time_position(&self, ts: i64) -> u64 {
        index::time_start_position(&self.index, &self.time_index, ts, self.len.max(1))
    }

    /// The index files as they should be on disk, `None` when they already are. The time
    /// index gets a last entry for the segment's largest timestamp (as Kafka writes on roll),
    /// so a [`Segment::load`] knows it without reading the log.
    pub fn index_files(&mut self) -> Option<IndexFiles> {
        if self.indexes_on_disk {
            return None;
        }
        let last = index::last_time(&self.time_index).map_or(-1, |t| t.timestamp);
        if self.max_timestamp > last {
            index::push_time(
                &mut self.time_index,
                TimeEntry {
                    timestamp: self.max_timestamp,
                    relative_offset: (self.offset_of_max_timestamp - self.base_offset) as u32,
                },
            );
        }
        Some(IndexFiles {
            stem: self.stem.clone(),
            index: self.index.clone(),
            time_index: self.time_index.clone(),
            aborted: self.aborted.clone(),
        })
    }

    /// The index files were written as [`Segment::index_files`] gave them (unless the segment
    /// changed since: then they are written again later).
    pub fn indexes_written(&mut self, written: &IndexFiles) {
        if written.index == self.index
            && written.time_index == self.time_index
            && written.aborted == self.aborted
        {
            self.indexes_on_disk = true;
        }
    }

    /// Writes the index files now, unless already current.
    pub fn write_indexes(&mut self) -> io::Result<()> {
        if let Some(files) = self.index_files() {
            files.write()?;
            self.indexes_written(&files);
        }
        Ok(())
    }

    /// Removes the segment's files.
    pub fn delete_files(&self) -> io::Result<()> {
        for ext in ["log", "index", "timeindex", "txnindex"] {
            remove_if_exists(&self.path(ext))?;
        }
        Ok(())
    }
}

/// A segment's index files, taken to be written without holding the log's lock.
pub struct IndexFiles {
    stem: PathBuf,
    index: Vec<u8>,
    time_index: Vec<u8>,
    aborted: Vec<AbortedTxn>,
}

impl IndexFiles {
    /// Writes `.index`, `.timeindex` and `.txnindex` (each: temp file, fsync, rename).
    pub fn write(&self) -> io::Result<()> {
        write_atomic(
            &self.stem.with_extension("index"),
            &self.index,
            Durable::Metadata,
        )?;
        write_atomic(
            &self.stem.with_extension("timeindex"),
            &self.time_index,
            Durable::Metadata,
        )?;
        let txn = self.stem.with_extension("txnindex");
        if self.aborted.is_empty() {
            remove_if_exists(&txn)
        } else {
            write_atomic(&txn, &txn_index::encode(&self.aborted), Durable::Metadata)
        }
    }
}

/// Whether `[from, to)` of `file` holds nothing but zeros (looked at only when it is no longer
/// than the most ever written ahead).
fn zeros_only(file: &File, from: u64, to: u64) -> bool {
    if to.saturating_sub(from) > 2 * RESERVE_MAX {
        return false;
    }
    let mut buf = vec![0u8; (to - from) as usize];
    file.read_exact_at(&mut buf, from).is_ok() && buf.iter().all(|&b| b == 0)
}

/// `pwritev` of a batch's header and body at `pos`, then the zeros [`Segment::prepare_append`]
/// asked for up to `fill_to`; a failed write is cut back so no partial batch stays behind (a
/// failed fill only costs the zeros).
pub fn write_at(file: &File, head: &[u8], body: &[u8], pos: u64, fill_to: u64) -> io::Result<()> {
    if let Err(e) = crate::fs::write_all_vectored_at(file, &[head, body], pos) {
        let _ = file.set_len(pos);
        return Err(e);
    }
    crate::fs::fill_zeros(file, pos + (head.len() + body.len()) as u64, fill_to);
    Ok(())
}

/// A segment's file as an upload sees it: gone (`NotFound`) once the log dropped the segment.
struct Lent(std::sync::Weak<File>);

impl crate::tier::SegmentData for Lent {
    fn read_at(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        let file = self.0.upgrade().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "the segment was deleted locally")
        })?;
        let mut buf = BytesMut::zeroed(len);
        file.read_exact_at(&mut buf, pos)?;
        Ok(buf.freeze())
    }
}

/// Walks batch headers in `file` from `pos` up to `limit` to the batch `target` names.
pub fn locate(file: &File, pos: u64, limit: u64, target: Target) -> io::Result<Option<Found>> {
    let mut walk = Walk::new(pos, limit, target);
    let mut head = [0u8; HEADER_LEN];
    while let Some((at, len)) = walk.next() {
        file.read_exact_at(&mut head[..len], at)?;
        let found = walk.feed(&head).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("at position {}: {e}", walk.position()),
            )
        })?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

/// Reads whole batches from a found batch within `[start, limit)`: at most `max_bytes`, except
/// that with `min_one` the first batch is returned whole even when larger.
pub fn read_batches(
    file: &File,
    found: &Found,
    limit: u64,
    max_bytes: usize,
    min_one: bool,
) -> io::Result<Bytes> {
    let want = read::read_len(found, limit, max_bytes, min_one);
    if want == 0 {
        return Ok(Bytes::new());
    }
    let mut buf = BytesMut::zeroed(want as usize);
    file.read_exact_at(&mut buf, found.position)?;
    Ok(read::whole_batches(buf.freeze()))
}

/// Whole batches from a found batch, as [`read_batches`] would read them but left in the file:
/// the batches within `[found, limit)` and `max_bytes` (the first whole with `min_one`) that
/// start below offset `below`, walked by their headers. `None` when there are none.
pub fn slice_batches(
    file: &Arc<File>,
    found: &Found,
    limit: u64,
    (max_bytes, min_one): (usize, bool),
    below: i64,
) -> io::Result<Option<Sliced>> {
    let end = found.position + read::read_len(found, limit, max_bytes, min_one);
    let (mut pos, mut header) = (found.position, found.header);
    let (mut records, mut last) = (0u64, None);
    let mut head = [0u8; HEADER_LEN];
    loop {
        let next = pos + header.total_len() as u64;
        if next > end || header.base_offset >= below {
            break;
        }
        records += header.record_count.max(0) as u64;
        last = Some(header.last_offset());
        pos = next;
        if pos + HEADER_LEN as u64 > end {
            break;
        }
        file.read_exact_at(&mut head, pos)?;
        // what does not parse as a batch is not sent (a read would stop there as well)
        match BatchHeader::parse(&head) {
            Ok(h) => header = h,
            Err(_) => break,
        }
    }
    Ok(last.map(|last| Sliced {
        slice: crate::fs::FileSlice {
            file: file.clone(),
            pos: found.position,
            len: (pos - found.position) as usize,
        },
        records,
        last,
    }))
}

/// Batches left in their file ([`slice_batches`]).
#[derive(Debug, Clone)]
pub struct Sliced {
    pub slice: crate::fs::FileSlice,
    /// Records in the batches.
    pub records: u64,
    /// The last offset of the last batch.
    pub last: i64,
}

#[cfg(test)]
#[path = "segment_tests.rs"]
mod tests;
