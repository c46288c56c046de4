//! One log segment: `<base offset>.log` with its sparse `.index` and `.timeindex`, and the
//! `.txnindex` of transactions aborted by markers in it (written only when there are some).
//!
//! Invariants: `len` is the number of valid bytes in the `.log` file and every byte below it is
//! a sequence of whole, CRC-checked batches with strictly increasing offsets; `durable_len <= len`
//! is what an `fdatasync` has covered. Appends write at `len` with `pwrite`; a failed write is
//! cut off again (`set_len(len)`), so a full disk leaves no partial batch behind.

use crate::format::batch::{self, BatchHeader, HEADER_LEN};
use crate::format::index::{self, OffsetEntry, TimeEntry};
use crate::format::markers;
use crate::format::txn_index::{self, AbortedTxn};
use crate::fs::{preallocate, write_all_vectored_at, write_atomic};
use bytes::{Bytes, BytesMut};
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Disk space is reserved ahead of appends in steps of this size.
const RESERVE_STEP: u64 = 8 << 20;

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
    /// Set once the indexes on disk match memory (a closed segment after roll or load).
    indexes_on_disk: bool,
    /// File blocks are reserved (fallocate, size unchanged) up to here.
    reserved_to: u64,
}

/// What a header walk found: the batch that holds an offset.
pub struct Located {
    pub position: u64,
    pub batch_len: usize,
}

impl Segment {
    fn path(&self, ext: &str) -> PathBuf {
        self.stem.with_extension(ext)
    }

    /// Creates a new empty segment. The directory entry is synced by the caller.
    pub fn create(dir: &Path, base_offset: i64, now_ms: i64) -> io::Result<Segment> {
        let stem = dir.join(crate::format::file_stem(base_offset));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(stem.with_extension("log"))?;
        Ok(Segment::empty(base_offset, stem, file, now_ms))
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
            reserved_to: 0,
        }
    }

    /// Opens an existing segment. With `recover`, every batch is read and CRC-checked and the file
    /// is truncated at the first torn or corrupt byte; otherwise the indexes on disk are trusted
    /// when well-formed and the file is only walked batch header to batch header.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        recover: bool,
        index_interval: u64,
        now_ms: i64,
        observe: &mut dyn FnMut(&BatchHeader, Option<bool>) -> Option<AbortedTxn>,
    ) -> io::Result<Segment> {
        let stem = dir.join(crate::format::file_stem(base_offset));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(stem.with_extension("log"))?;
        let file_len = file.metadata()?.len();
        let created_ms = file
            .metadata()?
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .unwrap_or(now_ms);
        let mut seg = Segment::empty(base_offset, stem, file, created_ms);
        let valid_len = seg.scan(file_len, recover, index_interval, observe)?;
        if valid_len < file_len {
            tracing::warn!(
                segment = %seg.path("log").display(),
                valid_len,
                file_len,
                "truncating torn or corrupt segment tail"
            );
            seg.file.set_len(valid_len)?;
            seg.file.sync_data()?;
        }
        seg.len = valid_len;
        seg.durable_len = valid_len;
        if !recover {
            seg.load_indexes_if_valid();
        }
        Ok(seg)
    }

    /// Walks the file from the start, rebuilding indexes and offsets. With `verify`, reads every
    /// batch whole and checks its CRC. Returns the length of the valid prefix.
    fn scan(
        &mut self,
        file_len: u64,
        verify: bool,
        index_interval: u64,
        observe: &mut dyn FnMut(&BatchHeader, Option<bool>) -> Option<AbortedTxn>,
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
            self.note_batch(&h, pos, index_interval);
            if let Some(entry) = observe(&h, marker) {
                self.aborted.push(entry);
            }
            expected_next = h.last_offset() + 1;
            pos += total;
        }
        Ok(pos)
    }

    /// Marks the indexes on disk as current when they equal the ones the scan rebuilt, so a clean
    /// shutdown need not rewrite them. (Start-up always walks the segment; trusting the files to
    /// skip that walk is a later optimisation.)
    fn load_indexes_if_valid(&mut self) {
        let offsets = std::fs::read(self.path("index")).ok();
        let times = std::fs::read(self.path("timeindex")).ok();
        let aborted_current = self.aborted.is_empty()
            || std::fs::read(self.path("txnindex"))
                .ok()
                .and_then(|b| txn_index::decode(&b))
                .is_some_and(|a| a == self.aborted);
        if let (Some(o), Some(t)) = (offsets, times) {
            if o == self.index && t == self.time_index && aborted_current {
                self.indexes_on_disk = true;
            }
        }
    }

    /// Records a batch appended at `pos` in the in-memory state and indexes.
    fn note_batch(&mut self, h: &BatchHeader, pos: u64, index_interval: u64) {
        let rel = (h.base_offset - self.base_offset) as u32;
        let total = h.total_len() as u64;
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
            // max timestamp below the entry's: a lookup may start its walk there
            if self.bytes_since_index == 0 {
                index::push_time(
                    &mut self.time_index,
                    TimeEntry {
                        timestamp: h.max_timestamp,
                        relative_offset: rel,
                    },
                );
            }
        }
        self.bytes_since_index += total;
        self.next_offset = h.last_offset() + 1;
        self.indexes_on_disk = false;
    }

    /// Appends one validated batch given as its (patched) header and the rest of its bytes,
    /// written with one `pwritev` so the record bytes are never copied in user space.
    pub fn append(
        &mut self,
        head: &[u8],
        body: &[u8],
        h: &BatchHeader,
        index_interval: u64,
    ) -> io::Result<()> {
        let end = self.len + (head.len() + body.len()) as u64;
        if end > self.reserved_to {
            self.reserve(end);
        }
        if let Err(e) = write_all_vectored_at(&self.file, &[head, body], self.len) {
            // leave no partial batch behind: cut the file back to the last whole batch
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        let pos = self.len;
        self.len += (head.len() + body.len()) as u64;
        self.note_batch(h, pos, index_interval);
        Ok(())
    }

    /// Records a transaction aborted by a marker in this segment.
    pub fn note_aborted(&mut self, entry: AbortedTxn) {
        self.aborted.push(entry);
        self.indexes_on_disk = false;
    }

    /// Reserves disk blocks ahead of the writes (`fallocate` with `FALLOC_FL_KEEP_SIZE`, so the
    /// file's length still ends at the last batch). Allocating in large steps spares the file
    /// system a block allocation per page written. Best effort: on file systems without
    /// fallocate, or when the disk is nearly full, writes simply allocate as they go.
    fn reserve(&mut self, end: u64) {
        let target = end.div_ceil(RESERVE_STEP) * RESERVE_STEP;
        // on failure, don't retry on every append: move on as if reserved
        let _ = preallocate(&self.file, self.reserved_to, target);
        self.reserved_to = target;
    }

    /// Gives back blocks reserved past the end of the data (roll, clean shutdown).
    pub fn release_reserved(&mut self) -> io::Result<()> {
        if self.reserved_to > self.len {
            self.file.set_len(self.len)?;
            self.reserved_to = self.len;
        }
        Ok(())
    }

    pub fn file(&self) -> Arc<File> {
        self.file.clone()
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

    /// Writes `.index` and `.timeindex` (temp file, fsync, rename) unless already current.
    pub fn write_indexes(&mut self) -> io::Result<()> {
        if self.indexes_on_disk {
            return Ok(());
        }
        write_atomic(&self.path("index"), &self.index)?;
        write_atomic(&self.path("timeindex"), &self.time_index)?;
        if !self.aborted.is_empty() {
            write_atomic(&self.path("txnindex"), &txn_index::encode(&self.aborted))?;
        }
        self.indexes_on_disk = true;
        Ok(())
    }

    /// Removes the segment's files.
    pub fn delete_files(&self) -> io::Result<()> {
        for ext in ["log", "index", "timeindex", "txnindex"] {
            match std::fs::remove_file(self.path(ext)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
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

/// Walks batch headers in `file` from `pos` up to `limit` and returns the first batch whose last
/// offset is `>= offset` (or, with `by_time`, whose max timestamp is `>= ts`).
pub fn locate(
    file: &File,
    mut pos: u64,
    limit: u64,
    target: Target,
) -> io::Result<Option<(Located, BatchHeader)>> {
    let mut head = [0u8; HEADER_LEN];
    while pos + HEADER_LEN as u64 <= limit {
        file.read_exact_at(&mut head, pos)?;
        let h = BatchHeader::parse(&head).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("at position {pos}: {e}"),
            )
        })?;
        let total = h.total_len() as u64;
        let hit = match target {
            Target::Offset(o) => h.last_offset() >= o,
            Target::Timestamp(ts) => h.max_timestamp >= ts,
        };
        if hit {
            return Ok(Some((
                Located {
                    position: pos,
                    batch_len: total as usize,
                },
                h,
            )));
        }
        pos += total;
    }
    Ok(None)
}

#[derive(Debug, Clone, Copy)]
pub enum Target {
    Offset(i64),
    Timestamp(i64),
}

/// Reads whole batches from `start` within `[start, limit)`: at most `max_bytes`, except that with
/// `min_one` the first batch is returned whole even when larger. Never returns a partial batch.
pub fn read_batches(
    file: &File,
    start: Located,
    limit: u64,
    max_bytes: usize,
    min_one: bool,
) -> io::Result<Bytes> {
    let available = limit.saturating_sub(start.position) as usize;
    let want = if min_one {
        max_bytes.max(start.batch_len)
    } else {
        max_bytes
    }
    .min(available);
    if want < start.batch_len {
        return Ok(Bytes::new());
    }
    let mut buf = BytesMut::zeroed(want);
    file.read_exact_at(&mut buf, start.position)?;
    let mut end = 0usize;
    while end < buf.len() {
        match batch::peek_frame(&buf[end..]) {
            Ok((_, len)) if end + len <= buf.len() => end += len,
            _ => break,
        }
    }
    buf.truncate(end);
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::batch::tests::make_batch;

    fn append(seg: &mut Segment, offset: i64, n: i32, ts: i64) {
        let mut b = make_batch(0, n, 100, ts);
        batch::set_base_offset(&mut b, offset);
        let h = batch::validate(&b).expect("valid");
        // split anywhere: the two parts are written as one batch
        let cut = b.len() / 3;
        seg.append(&b[..cut], &b[cut..], &h, 512).expect("append");
    }

    #[test]
    fn append_read_and_recover_truncates_torn_tail() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut seg = Segment::create(dir.path(), 100, 0).expect("create");
        for i in 0..20 {
            append(&mut seg, 100 + i * 3, 3, 1000 + i);
        }
        assert_eq!(seg.next_offset, 160);
        let good_len = seg.len;
        let file = seg.file();
        // find and read the batch holding offset 131
        let (loc, h) = locate(&file, seg.index_position(131), seg.len, Target::Offset(131))
            .expect("io")
            .expect("found");
        assert_eq!(h.base_offset, 130);
        let bytes = read_batches(&file, loc, seg.len, 1, true).expect("read");
        assert_eq!(
            batch::validate(&bytes)
                .expect("one whole batch")
                .base_offset,
            130
        );
        // by timestamp: first batch with max ts >= 1005 is the sixth (base 115)
        let (_, h) = locate(
            &file,
            seg.time_position(1005),
            seg.len,
            Target::Timestamp(1005),
        )
        .expect("io")
        .expect("found");
        assert_eq!(h.base_offset, 115);
        // tear the tail: garbage after the last whole batch, and a half-written batch
        let mut torn = make_batch(160, 2, 100, 5);
        torn.truncate(torn.len() / 2);
        file.write_all_at(&torn, good_len).expect("write");
        drop(file);
        drop(seg);
        let seg = Segment::open(dir.path(), 100, true, 512, 0, &mut |_, _| None).expect("open");
        assert_eq!(seg.len, good_len);
        assert_eq!(seg.next_offset, 160);
        assert_eq!(
            std::fs::metadata(dir.path().join(crate::format::segment_file(100, "log")))
                .expect("meta")
                .len(),
            good_len
        );
    }

    #[test]
    fn corrupt_byte_in_middle_truncates_from_that_batch() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut seg = Segment::create(dir.path(), 0, 0).expect("create");
        for i in 0..10 {
            append(&mut seg, i, 1, 1);
        }
        let batch_len = seg.len / 10;
        let file = seg.file();
        // flip a byte inside the 5th batch's records
        file.write_all_at(&[0xAB], batch_len * 4 + 70)
            .expect("write");
        drop(file);
        drop(seg);
        let seg = Segment::open(dir.path(), 0, true, 512, 0, &mut |_, _| None).expect("open");
        assert_eq!(seg.next_offset, 4);
        assert_eq!(seg.len, batch_len * 4);
    }

    #[test]
    fn indexes_persist_and_reload() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut seg = Segment::create(dir.path(), 0, 0).expect("create");
        for i in 0..50 {
            append(&mut seg, i * 2, 2, 10 + i);
        }
        seg.write_indexes().expect("write");
        let idx = seg.index.clone();
        drop(seg);
        let seg = Segment::open(dir.path(), 0, false, 512, 0, &mut |_, _| None).expect("open");
        assert!(seg.indexes_on_disk);
        assert_eq!(seg.index, idx);
        assert!(
            index::offset_entries(&seg.index) > 5,
            "sparse index has entries: {}",
            index::offset_entries(&seg.index)
        );
    }
}

#[cfg(test)]
mod recovery_props {
    use super::*;
    use crate::format::batch::tests::make_batch;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever happens to the bytes of a segment (flips, truncation, garbage appended),
        /// recovery never panics and keeps exactly a prefix of whole, valid batches.
        #[test]
        fn recovery_keeps_a_valid_prefix(
            batches in 1usize..12,
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
            cut in any::<usize>(),
            garbage in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let dir = tempfile::tempdir().expect("tmp");
            let mut data = Vec::new();
            let mut ends = vec![0usize];
            let mut off = 0i64;
            for i in 0..batches {
                let mut b = make_batch(0, (i % 3) as i32 + 1, 20 + i, 1000);
                batch::set_base_offset(&mut b, off);
                off += (i % 3) as i64 + 1;
                data.extend_from_slice(&b);
                ends.push(data.len());
            }
            let flipped = !flips.is_empty();
            for (pos, x) in flips {
                let n = data.len();
                data[pos % n] ^= x;
            }
            let cut = cut % (data.len() + 1);
            data.truncate(cut);
            data.extend(garbage);
            std::fs::write(dir.path().join(crate::format::segment_file(0, "log")), &data).expect("write");
            let seg = Segment::open(dir.path(), 0, true, 512, 0, &mut |_, _| None).expect("open");
            let kept = seg.len as usize;
            prop_assert!(ends.contains(&kept), "kept {} is a batch boundary", kept);
            // every kept batch is whole and passes its CRC
            let mut pos = 0;
            while pos < kept {
                let (_, len) = batch::peek_frame(&data[pos..kept]).expect("frame");
                prop_assert!(batch::validate(&data[pos..pos + len]).is_ok());
                pos += len;
            }
            // with no corruption, exactly the whole batches before the cut survive
            if !flipped {
                let whole = ends.iter().copied().filter(|&e| e <= cut).max().unwrap_or(0);
                prop_assert_eq!(kept, whole);
            }
        }
    }
}
