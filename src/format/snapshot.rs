//! `<20-digit offset>.snapshot` in a partition's directory: the partition's idempotent-producer
//! and open-transaction state as of that offset (everything below it applied, nothing at or
//! above). Written when a rolled segment has been made durable with its indexes, and at a clean
//! shutdown; start-up loads the newest valid one and replays only the batches after it, so a
//! restart never walks the whole log. One CRC-framed JSON record ([`super::journal`]): a torn
//! or damaged file is not a snapshot, and the previous one is used.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerSnapshot {
    /// The state is as of this offset.
    pub offset: i64,
    pub producers: Vec<SnapshotProducer>,
    /// Open transactions: (producer id, first offset).
    pub open_txns: Vec<(i64, i64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotProducer {
    pub producer_id: i64,
    pub epoch: i16,
    pub last_timestamp: i64,
    /// The last batches' sequence ranges and offsets, oldest first.
    pub batches: Vec<SnapshotBatch>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotBatch {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

pub fn encode(s: &ProducerSnapshot) -> Vec<u8> {
    let mut out = Vec::new();
    // serializing plain data cannot fail
    let _ = super::journal::encode(s, &mut out);
    out
}

/// The snapshot in `bytes`, `None` unless they are exactly one whole, valid record for
/// `offset` (the offset its file name gives).
pub fn decode(bytes: &[u8], offset: i64) -> Option<ProducerSnapshot> {
    let (mut records, valid) = super::journal::decode_prefix::<ProducerSnapshot>(bytes);
    if valid != bytes.len() || records.len() != 1 {
        return None;
    }
    records.pop().filter(|s| s.offset == offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_round_trip_and_damaged_ones_are_refused() {
        let s = ProducerSnapshot {
            offset: 42,
            producers: vec![SnapshotProducer {
                producer_id: 7,
                epoch: 1,
                last_timestamp: 99,
                batches: vec![SnapshotBatch {
                    first_seq: 0,
                    last_seq: 4,
                    base_offset: 30,
                    last_offset: 34,
                }],
            }],
            open_txns: vec![(7, 30)],
        };
        let b = encode(&s);
        assert_eq!(decode(&b, 42), Some(s));
        assert_eq!(decode(&b, 41), None, "another offset's file");
        assert_eq!(decode(&b[..b.len() - 1], 42), None);
        let mut flipped = b.clone();
        flipped[12] ^= 1;
        assert_eq!(decode(&flipped, 42), None);
    }
}
