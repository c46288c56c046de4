//! What a partition's operations answer: the offsets an append assigned, the offsets a read
//! reports, whole batches read.

use bytes::Bytes;

/// What an append assigned.
#[derive(Debug, Clone, Copy)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The broker time written into the batch for LogAppendTime topics, else -1.
    pub log_append_time: i64,
    pub log_start_offset: i64,
}

/// Offsets a fetch reports beside its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offsets {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    /// The first offset of the oldest open transaction, or the high watermark.
    pub last_stable_offset: i64,
    pub log_end_offset: i64,
}

/// A read of whole batches.
#[derive(Debug, Clone)]
pub struct ReadResult {
    pub records: Bytes,
    pub offsets: Offsets,
}

/// The records a fetch sends: bytes in memory, or whole batches left in their segment's file,
/// for the connection to send with `sendfile`.
#[derive(Debug, Clone)]
pub enum Outbound {
    Mem(Bytes),
    File(crate::fs::FileSlice),
}

/// A fetch of local data that may send its batches by reference.
#[derive(Debug, Clone)]
pub struct Sent {
    pub records: Outbound,
    /// Records in the batches, from their headers.
    pub count: u64,
    pub offsets: Offsets,
    /// For a `read_committed` fetch: the aborted transactions the batches overlap.
    pub aborted: Vec<crate::format::txn_index::AbortedTxn>,
}
