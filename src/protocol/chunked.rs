//! A response buffer that keeps large record sets by reference. The codec writes a Fetch
//! response field by field; when it writes a partition's records, which are already `Bytes`
//! read from a segment or the remote cache, this buffer recognises the very slice (same
//! address, same length) and keeps a reference to it instead of copying it. The response then
//! goes out as a list of chunks in one vectored write: the framing the codec wrote and the
//! record sets as they were read.

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;
use std::ops::Range;

/// Record sets shorter than this are copied: a reference costs an I/O vector entry.
pub const MIN_SHARED: usize = 4096;

pub struct ChunkedBuf {
    /// What the codec wrote since the last shared chunk.
    head: BytesMut,
    /// Finished chunks, in order.
    chunks: Vec<Bytes>,
    /// Bytes in `chunks`.
    done: usize,
    /// Record sets that may be kept by reference, in the order the codec will write them.
    shared: Vec<Bytes>,
    /// The next candidate in `shared` (the codec writes them in order).
    next: usize,
}

impl ChunkedBuf {
    /// A buffer that keeps the given record sets by reference when the codec writes them.
    pub fn new(shared: Vec<Bytes>) -> ChunkedBuf {
        ChunkedBuf {
            head: BytesMut::with_capacity(512),
            chunks: Vec::with_capacity(2 * shared.len() + 1),
            done: 0,
            shared,
            next: 0,
        }
    }

    /// The chunks, in order.
    pub fn into_chunks(mut self) -> Vec<Bytes> {
        if !self.head.is_empty() {
            self.chunks.push(self.head.freeze());
        }
        self.chunks
    }

    /// The candidate `src` is, if it is one: the same memory, not merely equal bytes.
    fn shared_slice(&mut self, src: &[u8]) -> Option<Bytes> {
        if src.len() < MIN_SHARED {
            return None;
        }
        let i = (self.next..self.shared.len()).find(|&i| {
            let b = &self.shared[i];
            b.as_ptr() == src.as_ptr() && b.len() == src.len()
        })?;
        self.next = i + 1;
        Some(self.shared[i].clone())
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
                    self.chunks.push(head);
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
