//! The log's error: what an append, a read or a partition change can fail with. `api` maps
//! each kind to the Kafka error code a Kafka broker returns.

use crate::format::batch::BatchError;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("partition is offline after an earlier storage error")]
    Offline,
    #[error("the topic was deleted")]
    Deleted,
    #[error("this node no longer leads the partition")]
    NotLeader,
    #[error("offset {offset} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    #[error("batch of {size} bytes exceeds max.message.bytes {max}")]
    RecordTooLarge { size: usize, max: usize },
    #[error("corrupt batch: {0}")]
    Corrupt(BatchError),
    /// The compressed records of a batch do not decode (or name an undefined codec).
    #[error("corrupt records: {0}")]
    CorruptRecords(String),
    /// A compressed batch expands past the broker's cap.
    #[error("{0}")]
    UncompressedTooLarge(String),
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// Some records of a batch are invalid: the batch is refused, naming them (KIP-467).
    #[error("invalid records at batch indexes {indexes:?}: {message}")]
    InvalidRecords { indexes: Vec<i32>, message: String },
    #[error("invalid timestamp: {0}")]
    InvalidTimestamp(String),
    #[error("transactional batches need a transaction")]
    InvalidTxnState,
    /// The transaction was verified with its coordinator, but a marker of the producer was
    /// written here since: verify again (retriable).
    #[error("the transaction changed while its batch was verified")]
    TxnVerificationStale,
    #[error("unknown producer id {0}")]
    UnknownProducerId(i64),
    #[error("producer epoch {epoch} is older than the current {current}")]
    InvalidProducerEpoch { epoch: i16, current: i16 },
    #[error("out of order sequence: expected {expected}, got {got}")]
    OutOfOrderSequence { expected: i32, got: i32 },
    #[error("tiered storage: {0}")]
    Tier(#[from] crate::tier::TierError),
}

impl From<BatchError> for LogError {
    fn from(e: BatchError) -> Self {
        match e {
            BatchError::BadMagic(m) => {
                LogError::InvalidRecord(format!("magic {m} is not supported; only v2 batches"))
            }
            BatchError::BadCount { .. } | BatchError::NotOneBatch => {
                LogError::InvalidRecord(e.to_string())
            }
            other => LogError::Corrupt(other),
        }
    }
}
