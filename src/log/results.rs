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
