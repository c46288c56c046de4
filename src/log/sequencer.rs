//! The partition's sequencing state: idempotent producers' recent batches and the open
//! transactions, rebuilt at start-up from the newest producer snapshot and the batches after it
//! (it is the log's [`Replay`]), and snapshotted as of an offset when a segment rolls and at a
//! clean shutdown. The partition holds it under its sequencing lock for a whole append.

use super::local_log::Replay;
use super::open_txns::OpenTxns;
use super::producer::ProducerStates;
use crate::format::batch::BatchHeader;
use crate::format::snapshot::{self, ProducerSnapshot};
use crate::format::txn_index::AbortedTxn;

/// One producer as DescribeProducers shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerView {
    pub producer_id: i64,
    pub epoch: i16,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    /// The first offset of the producer's open transaction here, or -1.
    pub current_txn_start_offset: i64,
}

/// Idempotent producers' recent batches and the open transactions.
#[derive(Default)]
pub struct Sequencer {
    pub producers: ProducerStates,
    pub txns: OpenTxns,
}

impl Sequencer {
    /// The state as of `offset`, as a snapshot file's bytes.
    pub fn snapshot(&self, offset: i64) -> Vec<u8> {
        snapshot::encode(&ProducerSnapshot {
            offset,
            producers: self.producers.to_snapshot(),
            open_txns: self.txns.to_snapshot(),
        })
    }
}

impl Sequencer {
    /// The producers, with their open transactions (DescribeProducers).
    pub fn views(&self) -> Vec<ProducerView> {
        self.producers
            .view()
            .into_iter()
            .map(
                |(producer_id, epoch, last_sequence, last_timestamp)| ProducerView {
                    producer_id,
                    epoch,
                    last_sequence,
                    last_timestamp,
                    current_txn_start_offset: self.txns.open_at(producer_id).unwrap_or(-1),
                },
            )
            .collect()
    }
}

impl Replay for Sequencer {
    fn load(&mut self, offset: i64, bytes: &[u8]) -> bool {
        let Some(s) = snapshot::decode(bytes, offset) else {
            return false;
        };
        self.producers = ProducerStates::from_snapshot(&s.producers);
        self.txns = OpenTxns::from_snapshot(&s.open_txns);
        true
    }

    fn reset(&mut self) {
        *self = Sequencer::default();
    }

    fn batch(&mut self, h: &BatchHeader, marker: Option<bool>) -> Option<AbortedTxn> {
        self.producers.record(h, h.base_offset, h.max_timestamp);
        self.txns.observe(h, marker)
    }

    fn snapshot(&self, offset: i64) -> Vec<u8> {
        Sequencer::snapshot(self, offset)
    }
}
