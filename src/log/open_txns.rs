//! Transactions inside one partition: the open transactions that hold the last stable offset
//! back, and the aborted-transaction index entries that abort markers create.
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

use crate::format::batch::BatchHeader;
use crate::format::txn_index::AbortedTxn;
use std::collections::HashMap;

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

    /// (producer id, first offset) of every open transaction, for a producer snapshot.
    pub fn to_snapshot(&self) -> Vec<(i64, i64)> {
        let mut v: Vec<(i64, i64)> = self.open.iter().map(|(p, f)| (*p, *f)).collect();
        v.sort_unstable();
        v
    }

    pub fn from_snapshot(open: &[(i64, i64)]) -> OpenTxns {
        OpenTxns {
            open: open.iter().copied().collect(),
        }
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, base: i64, control: bool) -> BatchHeader {
        BatchHeader {
            base_offset: base,
            batch_length: 0,
            magic: 2,
            crc: 0,
            attributes: if control {
                crate::format::markers::ATTRIBUTES
            } else {
                0x10
            },
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
    }
}
