//! A response buffer that keeps large record sets by reference. The codec writes a Fetch
//! response field by field; when it writes a partition's records, which are already `Bytes`
//! read from a segment or the remote cache, this buffer recognises the very slice (same
//! address, same length) and keeps a reference to it instead of copying it. The response then
//! goes out as a list of chunks in one vectored write: the framing the codec wrote and the
//! record sets as they were read.
//!
//! Record sets still in their segment's file travel as a [`FileSlice`]: until the response is
//! encoded, the partition's records are a [`placeholder`] of the same length, a slice of a
//! zeroed static area that is never read (its address says which file slice it stands for), and
//! the buffer puts the file slice in its place. A placeholder the codec did not write through
//! this buffer fails the encoding, so its zeros can never reach a client.

use crate::fs::FileSlice;
use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;
use std::ops::Range;

/// Record sets shorter than this are copied: a reference costs an I/O vector entry.
pub const MIN_SHARED: usize = 4096;

/// The longest record set a [`placeholder`] stands for.
pub const PLACEHOLDER_MAX: usize = 64 << 20;
/// How many file slices one response may hold.
const PLACEHOLDERS: usize = 1 << 16;
/// Never read nor written: in `.bss`, it takes no memory.
static AREA: [u8; PLACEHOLDER_MAX + PLACEHOLDERS] = [0; PLACEHOLDER_MAX + PLACEHOLDERS];

/// The stand-in for a response's `index`-th file slice, `len` bytes long; `None` when the
/// index or the length is beyond what placeholders cover.
pub fn placeholder(index: usize, len: usize) -> Option<Bytes> {
    (index < PLACEHOLDERS && len > 0 && len <= PLACEHOLDER_MAX)
        .then(|| Bytes::from_static(&AREA[index..index + len]))
}

/// The index of the file slice `b` stands for, if it is a placeholder.
pub fn placeholder_index(b: &[u8]) -> Option<usize> {
    let at = (b.as_ptr() as usize).checked_sub(AREA.as_ptr() as usize)?;
    (at < PLACEHOLDERS && !b.is_empty()).then_some(at)
}

/// A piece of a response as it goes out: bytes, or a run of a file sent with `sendfile`.
#[derive(Debug, Clone)]
pub enum Chunk {
    Mem(Bytes),
    File(FileSlice),
}

impl Chunk {
    pub fn len(&self) -> usize {
        match self {
            Chunk::Mem(b) => b.len(),
            Chunk::File(f) => f.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A record set the buffer may keep by reference: its address and length as the codec will
/// write it, and what goes out in its place.
pub struct Candidate {
    pub at: usize,
    pub len: usize,
    pub chunk: Chunk,
}

impl Candidate {
    pub fn mem(b: &Bytes) -> Candidate {
        Candidate {
            at: b.as_ptr() as usize,
            len: b.len(),
            chunk: Chunk::Mem(b.clone()),
        }
    }

    /// A file slice, in place of the placeholder `b`.
    pub fn file(b: &Bytes, slice: FileSlice) -> Candidate {
        Candidate {
            at: b.as_ptr() as usize,
            len: b.len(),
            chunk: Chunk::File(slice),
        }
    }
}

pub struct ChunkedBuf {
    /// What the codec wrote since the last shared chunk.
    head: BytesMut,
    /// Finished chunks, in order.
    chunks: Vec<Chunk>,
    /// Bytes in `chunks`.
    done: usize,
    /// Record sets that may be kept by reference, in the order the codec will write them.
    shared: Vec<Candidate>,
    /// The next candidate in `shared` (the codec writes them in order).
    next: usize,
    /// File slices not yet put in their placeholder's place.
    files_left: usize,
}

impl ChunkedBuf {
    /// A buffer that keeps the given record sets by reference when the codec writes them.
    pub fn new(shared: Vec<Candidate>) -> ChunkedBuf {
        let files_left = shared
            .iter()
            .filter(|c| matches!(c.chunk, Chunk::File(_)))
            .count();
        ChunkedBuf {
            head: BytesMut::with_capacity(512),
            chunks: Vec::with_capacity(2 * shared.len() + 1),
            done: 0,
            shared,
            next: 0,
            files_left,
        }
    }

    /// The chunks, in order; an error when a file slice's placeholder was not written here.
    pub fn into_chunks(mut self) -> anyhow::Result<Vec<Chunk>> {
        if self.files_left > 0 {
            anyhow::bail!(
                "{} record set(s) in files were not written in place",
                self.files_left
            );
        }
        if !self.head.is_empty() {
            self.chunks.push(Chunk::Mem(self.head.freeze()));
        }
        Ok(self.chunks)
    }

    /// The candidate `src` is, if it is one: the same memory, not merely equal bytes.
    fn shared_slice(&mut self, src: &[u8]) -> Option<Chunk> {
        if src.len() < MIN_SHARED && placeholder_index(src).is_none() {
            return None;
        }
        let (at, len) = (src.as_ptr() as usize, src.len());
        let i = (self.next..self.shared.len())
            .find(|&i| self.shared[i].at == at && self.shared[i].len == len)?;
        self.next = i + 1;
        let chunk = self.shared[i].chunk.clone();
        if matches!(chunk, Chunk::File(_)) {
            self.files_left -= 1;
        }
        Some(chunk)
    }
}

// SAFETY: every method delegates to `head`, a `BytesMut`, whose own implementation upholds the
// trait's contract; `put_slice` only adds whole chunks besides.
unsafe impl BufMut for ChunkedBuf {
    fn remaining_mut(&self) -> usize {
        self.head.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of `head`'s chunk, as the contract asks
        unsafe { self.head.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.head.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        match self.shared_slice(src) {
            Some(b) => {
                if !self.head.is_empty() {
                    let head = self.head.split().freeze();
                    self.done += head.len();
                    self.chunks.push(Chunk::Mem(head));
                }
                self.done += b.len();
                self.chunks.push(b);
            }
            None => self.head.extend_from_slice(src),
        }
    }
}

impl ByteBufMut for ChunkedBuf {
    fn offset(&self) -> usize {
        self.done + self.head.len()
    }

    /// Moves within what was written since the last shared chunk; the message encoders this
    /// buffer serves never move back (only record-batch encoding does, into its own buffer).
    fn seek(&mut self, offset: usize) {
        if offset >= self.done {
            self.head.resize(offset - self.done, 0);
        }
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        let (start, end) = (
            r.start.saturating_sub(self.done),
            r.end.saturating_sub(self.done),
        );
        let end = end.min(self.head.len());
        &mut self.head[start.min(end)..end]
    }
}
