//! Reading whole batches out of a segment, the same way wherever its bytes live: a local file
//! (positional reads) or an object in the bucket (range reads through a cache). The rules are
//! here, the I/O with the caller (sans-I/O): a [`Walk`] says which header bytes it needs next and
//! is fed them until it finds the batch holding an offset (or the first with a timestamp at or
//! after one); [`read_len`] says how much to read from there; [`whole_batches`] cuts what was
//! read to whole batches. A fetch always starts with the batch that holds the fetch offset.

use super::batch::{self, BatchError, BatchHeader, HEADER_LEN};
use bytes::Bytes;

/// What a walk looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The first batch whose last offset is `>=` this offset.
    Offset(i64),
    /// The first batch whose max timestamp is `>=` this timestamp.
    Timestamp(i64),
}

impl Target {
    fn hit(self, h: &BatchHeader) -> bool {
        match self {
            Target::Offset(o) => h.last_offset() >= o,
            Target::Timestamp(ts) => h.max_timestamp >= ts,
        }
    }
}

/// A walk over batch headers from a start position (an index entry's) to `limit`.
#[derive(Debug, Clone)]
pub struct Walk {
    pos: u64,
    limit: u64,
    target: Target,
}

/// A batch the walk found: where it starts and its header.
#[derive(Debug, Clone, Copy)]
pub struct Found {
    pub position: u64,
    pub header: BatchHeader,
}

impl Walk {
    pub fn new(start: u64, limit: u64, target: Target) -> Walk {
        Walk {
            pos: start,
            limit,
            target,
        }
    }

    /// Where the next header is and its length, `None` once the walk reached `limit`.
    pub fn next(&self) -> Option<(u64, usize)> {
        (self.pos + HEADER_LEN as u64 <= self.limit).then_some((self.pos, HEADER_LEN))
    }

    /// Feeds the header bytes at [`Walk::next`]'s position: the batch when it is the target,
    /// `None` to go on, an error when the bytes are not a batch header.
    pub fn feed(&mut self, head: &[u8]) -> Result<Option<Found>, BatchError> {
        let header = BatchHeader::parse(head)?;
        if self.target.hit(&header) {
            return Ok(Some(Found {
                position: self.pos,
                header,
            }));
        }
        self.pos += header.total_len() as u64;
        Ok(None)
    }

    /// The position the walk is at (an error message's "where").
    pub fn position(&self) -> u64 {
        self.pos
    }
}

/// How many bytes to read from a found batch when at most `max_bytes` are wanted and `limit`
/// is where readable data ends: with `min_one` the first batch whole even when larger; 0 when
/// not even the first batch fits.
pub fn read_len(found: &Found, limit: u64, max_bytes: usize, min_one: bool) -> u64 {
    let batch_len = found.header.total_len() as u64;
    let available = limit.saturating_sub(found.position);
    let want = if min_one {
        (max_bytes as u64).max(batch_len)
    } else {
        max_bytes as u64
    }
    .min(available);
    if want < batch_len {
        0
    } else {
        want
    }
}

/// The whole batches at the front of `data` (a read stops at a byte budget, not a boundary).
pub fn whole_batches(data: Bytes) -> Bytes {
    let mut end = 0usize;
    while end < data.len() {
        match batch::peek_frame(&data[end..]) {
            Ok((_, len)) if end + len <= data.len() => end += len,
            _ => break,
        }
    }
    data.slice(..end)
}

/// The batches of `data` (whole batches, as a read returns them) that start below `end`, and
/// the last offset they hold.
pub fn batches_below(data: &Bytes, end: i64) -> (Bytes, Option<i64>) {
    let (mut pos, mut last) = (0, None);
    while let Some(head) = data.get(pos..pos + HEADER_LEN) {
        let Ok(h) = BatchHeader::parse(head) else {
            break;
        };
        if h.base_offset >= end || pos + h.total_len() > data.len() {
            break;
        }
        last = Some(h.last_offset());
        pos += h.total_len();
    }
    (data.slice(..pos), last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::batch::tests::make_batch;

    #[test]
    fn batches_below_keep_whole_batches_starting_below_the_end() {
        let mut data = Vec::new();
        for (base, n) in [(0, 3), (3, 2), (5, 4)] {
            let mut b = make_batch(0, n, 10, 0);
            batch::set_base_offset(&mut b, base);
            data.extend_from_slice(&b);
        }
        let data = Bytes::from(data);
        let first = make_batch(0, 3, 10, 0).len();
        let second = make_batch(0, 2, 10, 0).len();
        let below = |end| {
            let (b, last) = batches_below(&data, end);
            (b.len(), last)
        };
        assert_eq!(below(3), (first, Some(2)));
        assert_eq!(below(5), (first + second, Some(4)));
        assert_eq!(below(9), (data.len(), Some(8)));
        assert_eq!(below(0), (0, None));
        // an end inside a batch keeps the batch that starts below it
        assert_eq!(below(4), (first + second, Some(4)));
        // a read cut short mid-batch keeps the whole ones
        let (b, last) = batches_below(&data.slice(..first + 10), 100);
        assert_eq!((b.len(), last), (first, Some(2)));
    }

    #[test]
    fn a_walk_finds_the_batch_holding_an_offset_and_reads_whole_batches() {
        let mut data = Vec::new();
        for i in 0..5 {
            let mut b = make_batch(0, 3, 50, 100 + i);
            batch::set_base_offset(&mut b, i * 3);
            data.extend_from_slice(&b);
        }
        let data = Bytes::from(data);
        let run = |target| {
            let mut w = Walk::new(0, data.len() as u64, target);
            while let Some((pos, len)) = w.next() {
                let head = &data[pos as usize..pos as usize + len];
                if let Some(f) = w.feed(head).expect("header") {
                    return Some(f);
                }
            }
            None
        };
        let f = run(Target::Offset(7)).expect("found");
        assert_eq!(f.header.base_offset, 6);
        let f2 = run(Target::Timestamp(103)).expect("found");
        assert_eq!(f2.header.base_offset, 9);
        assert!(run(Target::Offset(15)).is_none());
        let one = f.header.total_len() as u64;
        assert_eq!(read_len(&f, data.len() as u64, 1, true), one);
        assert_eq!(read_len(&f, data.len() as u64, 1, false), 0);
        assert_eq!(
            read_len(&f, data.len() as u64, 1 << 20, true),
            data.len() as u64 - f.position
        );
        let cut = data.slice(f.position as usize..f.position as usize + one as usize + 10);
        assert_eq!(whole_batches(cut).len() as u64, one);
        let mut w = Walk::new(0, 100, Target::Offset(0));
        assert!(
            w.feed(&[0u8; HEADER_LEN]).is_err(),
            "garbage is not a header"
        );
    }
}
