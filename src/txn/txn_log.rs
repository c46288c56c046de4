//! The transaction log's records and the state they rebuild: one [`TxnMeta`] per
//! transactional id, and the end of the last reserved producer-id block, kept in a
//! [`crate::journal::Journal`] at `<data_dir>/transactions.log`.

use crate::journal::Journaled;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Kafka's transaction states (the fencing state is PrepareAbort with the bumped epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    /// The name DescribeTransactions and ListTransactions use.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    /// Markers are being written: the transaction is decided but not finished.
    pub fn is_prepare(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxnMeta {
    pub producer_id: i64,
    /// The producer id and epoch before the last InitProducerId (KIP-360 retries), or -1.
    pub last_producer_id: i64,
    pub epoch: i16,
    pub last_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<(String, i32)>,
    pub groups: BTreeSet<String>,
    /// When the open transaction started, -1 when none is open.
    pub started_ms: i64,
    pub updated_ms: i64,
    /// Transactions v2 (KIP-890): the producer id the transactional id moves to once the
    /// transaction being ended completes (its epoch was exhausted), or -1.
    #[serde(default = "no_producer_id")]
    pub next_producer_id: i64,
}

fn no_producer_id() -> i64 {
    -1
}

impl TxnMeta {
    /// A transactional id with no transaction open, holding `(producer id, epoch)` and
    /// remembering the `last` pair it replaces.
    pub fn empty(current: (i64, i16), last: (i64, i16), timeout_ms: i32, now_ms: i64) -> TxnMeta {
        TxnMeta {
            producer_id: current.0,
            last_producer_id: last.0,
            epoch: current.1,
            last_epoch: last.1,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            started_ms: -1,
            updated_ms: now_ms,
            next_producer_id: -1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TxnRecord {
    Put {
        id: String,
        meta: TxnMeta,
    },
    Remove {
        id: String,
    },
    /// Producer ids below `reserved_to` may have been handed out (see `producer_ids`).
    ProducerIds {
        reserved_to: i64,
    },
}

#[derive(Debug, Default)]
pub struct TxnLog {
    pub txns: BTreeMap<String, TxnMeta>,
    /// Current producer id → transactional id.
    pub by_producer: HashMap<i64, String>,
    /// End of the last reserved producer-id block.
    pub producer_ids_reserved_to: i64,
}

impl Journaled for TxnLog {
    type Record = TxnRecord;

    fn apply(&mut self, r: &TxnRecord) {
        match r {
            TxnRecord::Put { id, meta } => {
                if let Some(old) = self.txns.insert(id.clone(), meta.clone()) {
                    if old.producer_id != meta.producer_id {
                        self.by_producer.remove(&old.producer_id);
                    }
                }
                self.by_producer.insert(meta.producer_id, id.clone());
            }
            TxnRecord::Remove { id } => {
                if let Some(old) = self.txns.remove(id) {
                    self.by_producer.remove(&old.producer_id);
                }
            }
            TxnRecord::ProducerIds { reserved_to } => {
                self.producer_ids_reserved_to = self.producer_ids_reserved_to.max(*reserved_to);
            }
        }
    }

    fn snapshot(&self) -> Vec<TxnRecord> {
        let ids = TxnRecord::ProducerIds {
            reserved_to: self.producer_ids_reserved_to,
        };
        std::iter::once(ids)
            .chain(self.txns.iter().map(|(id, meta)| TxnRecord::Put {
                id: id.clone(),
                meta: meta.clone(),
            }))
            .collect()
    }

    fn live(&self) -> usize {
        self.txns.len() + 1
    }
}
