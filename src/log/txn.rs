//! Transactions inside one partition: control batches (commit and abort markers), the open
//! transactions that hold the last stable offset back, and the aborted-transaction index.
//!
//! A transactional producer's batches carry the transactional attribute. The first one a producer
//! writes opens a transaction in the partition at its offset; the coordinator's marker (a control
//! batch from the same producer id) closes it. The last stable offset (LSO) is the first offset
//! of the oldest open transaction, or the high watermark when none is open: `read_committed`
//! consumers never read past it. An abort marker records `(producer id, first offset, marker
//! offset)` in the aborted-transaction index of the segment that holds the marker; a
//! `read_committed` fetch returns the entries overlapping what it read so the client drops
//! those records. Open transactions and the index are rebuilt at start-up from the batches the
//! log walks anyway (markers are read whole: they are a few dozen bytes), and each closed
//! segment's index is written beside it as `<base>.txnindex` (Kafka's 34-byte entries) so it can
//! travel with the segment.

use crate::batch::{self, BatchHeader, HEADER_LEN};
use std::collections::HashMap;

/// Marker types, as the control record's key says.
const ABORT: i16 = 0;
const COMMIT: i16 = 1;

const ATTRIBUTES: i16 = 0x10 | 0x20; // transactional | control

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The offset of the abort marker.
    pub last_offset: i64,
    /// The LSO once this transaction ended.
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    /// Whether the transaction has records (or its marker) in `[from, to)`.
    pub fn overlaps(&self, from: i64, to: i64) -> bool {
        self.first_offset < to && self.last_offset >= from
    }
}

/// A control batch ending `producer_id`'s transaction (offset 0; the log assigns the real one).
pub fn marker_batch(
    producer_id: i64,
    epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    now_ms: i64,
) -> Vec<u8> {
    let mut rec = Vec::new();
    rec.push(0u8); // record attributes
    batch::put_varint(&mut rec, 0); // timestamp delta
    batch::put_varint(&mut rec, 0); // offset delta
    batch::put_varint(&mut rec, 4);
    rec.extend_from_slice(&0i16.to_be_bytes()); // key version
    rec.extend_from_slice(&(if commit { COMMIT } else { ABORT }).to_be_bytes());
    batch::put_varint(&mut rec, 6);
    rec.extend_from_slice(&0i16.to_be_bytes()); // value version
    rec.extend_from_slice(&coordinator_epoch.to_be_bytes());
    batch::put_varint(&mut rec, 0); // headers
    let mut body = Vec::with_capacity(rec.len() + 2);
    batch::put_varint(&mut body, rec.len() as i64);
    body.extend_from_slice(&rec);
    let h = BatchHeader {
        base_offset: 0,
        batch_length: 0,
        magic: 2,
        crc: 0,
        attributes: ATTRIBUTES,
        last_offset_delta: 0,
        base_timestamp: now_ms,
        max_timestamp: now_ms,
        producer_id,
        producer_epoch: epoch,
        base_sequence: -1,
        record_count: 1,
    };
    crate::records::write_batch(&h, 0, now_ms, 1, &body)
}

/// Whether a whole control batch is a commit (`Some(true)`) or abort (`Some(false)`) marker;
/// `None` for other control records or a malformed one.
pub fn marker_kind(whole_batch: &[u8]) -> Option<bool> {
    let b = whole_batch.get(HEADER_LEN..)?;
    let mut pos = 0;
    let _len = batch::read_varint(b, &mut pos)?;
    pos += 1; // attributes
    batch::read_varint(b, &mut pos)?; // timestamp delta
    batch::read_varint(b, &mut pos)?; // offset delta
    let key_len = batch::read_varint(b, &mut pos)?;
    if key_len < 4 {
        return None;
    }
    let key = b.get(pos..pos + 4)?;
    match i16::from_be_bytes([key[2], key[3]]) {
        COMMIT => Some(true),
        ABORT => Some(false),
        _ => None,
    }
}

/// The partition's open transactions: producer id → first offset.
#[derive(Debug, Default)]
pub struct OpenTxns {
    open: HashMap<i64, i64>,
}

impl OpenTxns {
    /// Follows one batch entering the log (`marker`: the kind of a control batch). Returns the
    /// aborted-index entry an abort marker creates.
    pub fn observe(&mut self, h: &BatchHeader, marker: Option<bool>) -> Option<AbortedTxn> {
        if !h.is_transactional() || h.producer_id < 0 {
            return None;
        }
        if !h.is_control() {
            self.open.entry(h.producer_id).or_insert(h.base_offset);
            return None;
        }
        let first = self.open.remove(&h.producer_id)?;
        if marker != Some(false) {
            return None;
        }
        Some(AbortedTxn {
            producer_id: h.producer_id,
            first_offset: first,
            last_offset: h.base_offset,
            last_stable_offset: self.first_open().unwrap_or(h.base_offset + 1),
        })
    }

    /// The first offset of the oldest open transaction.
    pub fn first_open(&self) -> Option<i64> {
        self.open.values().min().copied()
    }

    /// The first offset of `producer_id`'s open transaction.
    pub fn open_at(&self, producer_id: i64) -> Option<i64> {
        self.open.get(&producer_id).copied()
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

const ENTRY_LEN: usize = 34;

/// Kafka's `.txnindex` format: version (i16 0), producer id, first offset, last offset, LSO.
pub fn encode_index(entries: &[AbortedTxn]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * ENTRY_LEN);
    for e in entries {
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&e.producer_id.to_be_bytes());
        out.extend_from_slice(&e.first_offset.to_be_bytes());
        out.extend_from_slice(&e.last_offset.to_be_bytes());
        out.extend_from_slice(&e.last_stable_offset.to_be_bytes());
    }
    out
}

/// Decodes a `.txnindex`; `None` when it is not a whole number of well-formed entries.
pub fn decode_index(bytes: &[u8]) -> Option<Vec<AbortedTxn>> {
    if bytes.len() % ENTRY_LEN != 0 {
        return None;
    }
    let i64_at = |c: &[u8], at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&c[at..at + 8]);
        i64::from_be_bytes(w)
    };
    bytes
        .chunks_exact(ENTRY_LEN)
        .map(|c| {
            if c[0] != 0 || c[1] != 0 {
                return None;
            }
            Some(AbortedTxn {
                producer_id: i64_at(c, 2),
                first_offset: i64_at(c, 10),
                last_offset: i64_at(c, 18),
                last_stable_offset: i64_at(c, 26),
            })
        })
        .collect()
}

/// The batches of `data` (whole batches, as a read returns them) that start below `end`, and
/// the last offset they hold.
pub fn below(data: &bytes::Bytes, end: i64) -> (bytes::Bytes, Option<i64>) {
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

    #[test]
    fn markers_are_valid_control_batches_of_their_kind() {
        for commit in [true, false] {
            let b = marker_batch(42, 3, commit, 0, 1000);
            let h = batch::validate(&b).expect("a valid batch");
            assert!(h.is_control() && h.is_transactional());
            assert_eq!((h.producer_id, h.producer_epoch), (42, 3));
            assert_eq!(marker_kind(&b), Some(commit));
        }
        assert_eq!(marker_kind(&[0u8; 10]), None);
    }

    fn header(pid: i64, base: i64, control: bool) -> BatchHeader {
        BatchHeader {
            base_offset: base,
            batch_length: 0,
            magic: 2,
            crc: 0,
            attributes: if control { ATTRIBUTES } else { 0x10 },
            last_offset_delta: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: 0,
            base_sequence: 0,
            record_count: 1,
        }
    }

    #[test]
    fn open_transactions_hold_the_lso_and_aborts_are_indexed() {
        let mut t = OpenTxns::default();
        assert_eq!(t.observe(&header(1, 10, false), None), None);
        assert_eq!(t.observe(&header(2, 11, false), None), None);
        assert_eq!(t.observe(&header(1, 12, false), None), None);
        assert_eq!(t.first_open(), Some(10));
        // producer 1 commits: the LSO moves to producer 2's first offset
        assert_eq!(t.observe(&header(1, 13, true), Some(true)), None);
        assert_eq!(t.first_open(), Some(11));
        // producer 2 aborts: an index entry spanning its records
        let e = t.observe(&header(2, 14, true), Some(false)).expect("entry");
        assert_eq!(
            e,
            AbortedTxn {
                producer_id: 2,
                first_offset: 11,
                last_offset: 14,
                last_stable_offset: 15
            }
        );
        assert!(t.is_empty());
        // a marker for a producer with nothing open here changes nothing
        assert_eq!(t.observe(&header(3, 15, true), Some(false)), None);
        let bytes = encode_index(&[e, e]);
        assert_eq!(decode_index(&bytes), Some(vec![e, e]));
        assert_eq!(decode_index(&bytes[..40]), None);
    }
}
