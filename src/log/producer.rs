//! Idempotent producers: per-partition sequence state.
//!
//! For each producer id a partition remembers the epoch and the last five batches' sequence
//! ranges with their offsets, as Kafka does. A retried batch that matches one of them is a
//! duplicate and is answered with its original offsets without a second append; a gap is
//! OUT_OF_ORDER_SEQUENCE_NUMBER; an older epoch is INVALID_PRODUCER_EPOCH. The state survives
//! restarts and `kill -9` through producer snapshots (`<offset>.snapshot`, written as segments
//! are finalized) and the batch headers after the newest one, which start-up replays (every
//! idempotent batch carries its producer id, epoch and sequences).

use super::error::LogError;
use crate::format::batch::BatchHeader;
use crate::format::snapshot::{SnapshotBatch, SnapshotProducer};
use std::collections::{HashMap, VecDeque};

/// Batches remembered per producer (Kafka's max.in.flight limit for idempotence).
const REMEMBERED: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Clone)]
struct Entry {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
    last_timestamp: i64,
}

/// What to do with an idempotent batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Append,
    Duplicate(BatchMeta),
}

/// The sequence number of a batch's last record; sequences wrap after i32::MAX.
pub fn last_sequence(h: &BatchHeader) -> i32 {
    ((h.base_sequence as i64 + h.last_offset_delta as i64) % (i32::MAX as i64 + 1)) as i32
}

fn next_sequence(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

#[derive(Debug, Default)]
pub struct ProducerStates {
    producers: HashMap<i64, Entry>,
}

impl ProducerStates {
    /// Decides whether a validated idempotent batch is appended, a duplicate or refused.
    pub fn check(&self, h: &BatchHeader) -> Result<Check, LogError> {
        let first = h.base_sequence;
        if first < 0 {
            return Err(LogError::InvalidRecord(
                "idempotent batch without a base sequence".into(),
            ));
        }
        let last = last_sequence(h);
        let Some(e) = self.producers.get(&h.producer_id) else {
            return if first == 0 {
                Ok(Check::Append)
            } else {
                Err(LogError::UnknownProducerId(h.producer_id))
            };
        };
        if h.producer_epoch < e.epoch {
            return Err(LogError::InvalidProducerEpoch {
                epoch: h.producer_epoch,
                current: e.epoch,
            });
        }
        if h.producer_epoch > e.epoch {
            // a new epoch starts its sequences again
            return if first == 0 {
                Ok(Check::Append)
            } else {
                Err(LogError::OutOfOrderSequence {
                    expected: 0,
                    got: first,
                })
            };
        }
        if let Some(b) = e
            .batches
            .iter()
            .find(|b| b.first_seq == first && b.last_seq == last)
        {
            return Ok(Check::Duplicate(*b));
        }
        let expected = e
            .batches
            .back()
            .map(|b| next_sequence(b.last_seq))
            .unwrap_or(0);
        if first == expected {
            Ok(Check::Append)
        } else {
            Err(LogError::OutOfOrderSequence {
                expected,
                got: first,
            })
        }
    }

    /// A transaction marker for `producer_id` at `epoch` may be written unless the producer has
    /// already been seen with a newer epoch.
    pub fn check_marker(&self, producer_id: i64, epoch: i16) -> Result<(), LogError> {
        match self.producers.get(&producer_id) {
            Some(e) if epoch < e.epoch => Err(LogError::InvalidProducerEpoch {
                epoch,
                current: e.epoch,
            }),
            _ => Ok(()),
        }
    }

    /// Records an appended (or, at start-up, recovered) idempotent batch or transaction marker.
    pub fn record(&mut self, h: &BatchHeader, base_offset: i64, timestamp: i64) {
        if h.producer_id < 0 {
            return;
        }
        if h.is_control() {
            // a marker carries no sequence; a newer epoch (a fenced producer's transaction
            // aborted by the coordinator) restarts the producer's sequences
            if let Some(e) = self.producers.get_mut(&h.producer_id) {
                if h.producer_epoch > e.epoch {
                    e.epoch = h.producer_epoch;
                    e.batches.clear();
                }
                e.last_timestamp = e.last_timestamp.max(timestamp);
            }
            return;
        }
        let meta = BatchMeta {
            first_seq: h.base_sequence,
            last_seq: last_sequence(h),
            base_offset,
            last_offset: base_offset + h.last_offset_delta as i64,
        };
        let e = self
            .producers
            .entry(h.producer_id)
            .or_insert_with(|| Entry {
                epoch: h.producer_epoch,
                batches: VecDeque::new(),
                last_timestamp: timestamp,
            });
        if h.producer_epoch != e.epoch {
            e.epoch = h.producer_epoch;
            e.batches.clear();
        }
        e.batches.push_back(meta);
        while e.batches.len() > REMEMBERED {
            e.batches.pop_front();
        }
        e.last_timestamp = e.last_timestamp.max(timestamp);
    }

    /// Forgets producers idle since before `cutoff_ms` (producer.id.expiration.ms).
    pub fn expire(&mut self, cutoff_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| e.last_timestamp >= cutoff_ms);
        before - self.producers.len()
    }

    /// `(producer id, epoch, last sequence, last timestamp)` of every remembered producer.
    pub fn view(&self) -> Vec<(i64, i16, i32, i64)> {
        let mut v: Vec<_> = self
            .producers
            .iter()
            .map(|(id, e)| {
                let last_seq = e.batches.back().map_or(-1, |b| b.last_seq);
                (*id, e.epoch, last_seq, e.last_timestamp)
            })
            .collect();
        v.sort_unstable();
        v
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Every producer's state, for a producer snapshot.
    pub fn to_snapshot(&self) -> Vec<SnapshotProducer> {
        let mut v: Vec<SnapshotProducer> = self
            .producers
            .iter()
            .map(|(id, e)| SnapshotProducer {
                producer_id: *id,
                epoch: e.epoch,
                last_timestamp: e.last_timestamp,
                batches: e
                    .batches
                    .iter()
                    .map(|b| SnapshotBatch {
                        first_seq: b.first_seq,
                        last_seq: b.last_seq,
                        base_offset: b.base_offset,
                        last_offset: b.last_offset,
                    })
                    .collect(),
            })
            .collect();
        v.sort_unstable_by_key(|p| p.producer_id);
        v
    }

    pub fn from_snapshot(producers: &[SnapshotProducer]) -> ProducerStates {
        let producers = producers
            .iter()
            .map(|p| {
                let batches = p
                    .batches
                    .iter()
                    .rev()
                    .take(REMEMBERED)
                    .rev()
                    .map(|b| BatchMeta {
                        first_seq: b.first_seq,
                        last_seq: b.last_seq,
                        base_offset: b.base_offset,
                        last_offset: b.last_offset,
                    })
                    .collect();
                let entry = Entry {
                    epoch: p.epoch,
                    batches,
                    last_timestamp: p.last_timestamp,
                };
                (p.producer_id, entry)
            })
            .collect();
        ProducerStates { producers }
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, records: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 100,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            record_count: records,
        }
    }

    #[test]
    fn duplicates_gaps_epochs_and_wrapping() {
        let mut s = ProducerStates::default();
        assert!(matches!(
            s.check(&header(7, 0, 5, 1)),
            Err(LogError::UnknownProducerId(7))
        ));
        assert_eq!(s.check(&header(7, 0, 0, 3)).expect("first"), Check::Append);
        s.record(&header(7, 0, 0, 3), 100, 1);
        // the same batch again is a duplicate with its original offsets
        assert_eq!(
            s.check(&header(7, 0, 0, 3)).expect("dup"),
            Check::Duplicate(BatchMeta {
                first_seq: 0,
                last_seq: 2,
                base_offset: 100,
                last_offset: 102
            })
        );
        assert!(matches!(
            s.check(&header(7, 0, 4, 1)),
            Err(LogError::OutOfOrderSequence {
                expected: 3,
                got: 4
            })
        ));
        assert_eq!(s.check(&header(7, 0, 3, 1)).expect("next"), Check::Append);
        // an older epoch is fenced, a newer one restarts at 0
        s.record(&header(7, 1, 0, 1), 200, 2);
        assert!(matches!(
            s.check(&header(7, 0, 1, 1)),
            Err(LogError::InvalidProducerEpoch { .. })
        ));
        assert!(matches!(
            s.check(&header(7, 2, 5, 1)),
            Err(LogError::OutOfOrderSequence { .. })
        ));
        // sequences wrap at i32::MAX
        let mut w = ProducerStates::default();
        w.record(&header(9, 0, i32::MAX - 1, 2), 0, 0);
        assert_eq!(last_sequence(&header(9, 0, i32::MAX - 1, 2)), i32::MAX);
        assert_eq!(
            w.check(&header(9, 0, 0, 1)).expect("wrapped"),
            Check::Append
        );
        let h = header(9, 0, i32::MAX, 3);
        assert_eq!(last_sequence(&h), 1);
    }

    #[test]
    fn only_the_last_five_batches_are_remembered_and_idle_producers_expire() {
        let mut s = ProducerStates::default();
        for i in 0..8 {
            s.record(&header(1, 0, i, 1), i as i64, 10 + i as i64);
        }
        assert!(
            matches!(
                s.check(&header(1, 0, 2, 1)),
                Err(LogError::OutOfOrderSequence { .. })
            ),
            "too old to dedupe"
        );
        assert!(matches!(
            s.check(&header(1, 0, 3, 1)),
            Ok(Check::Duplicate(_))
        ));
        s.record(&header(2, 0, 0, 1), 9, 100);
        assert_eq!(s.expire(50), 1);
        assert_eq!(s.len(), 1);
    }
}
