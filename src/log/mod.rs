//! The log: per-partition segment files, offset assignment, durability and retention.
//!
//! Owns `<data_dir>/<topic>-<partition>/` directories. Knows nothing of the Kafka wire beyond the
//! record-batch format it stores ([`crate::format`]). Guarantees on crash: every offset below a
//! partition's high watermark was fsynced and survives `kill -9`; start-up after an unclean stop
//! CRC-checks what was written after the last recovery point (the newest producer snapshot) and
//! truncates a torn tail.
//!
//! The rooms, top down: [`manager`] (all partitions, start-up, shutdown) → [`partition`]
//! (offsets, high watermark, producer and transaction state, flusher, tier hooks) →
//! `local_log` (the segment files, synchronous, on the I/O executor `io`) → `segment` (one
//! segment). Beside them: `cleaner` (compaction over the local log), `retention` (what to
//! delete), `validate` (client batch rules), [`producer`] (idempotence), `open_txns`.

pub mod catch_up;
#[allow(clippy::disallowed_methods)] // storage: runs on the I/O executor
mod cleaner;
mod error;
pub mod followers;
mod io;
mod journal_log;
#[allow(clippy::disallowed_methods)] // storage: runs on the I/O executor
mod local_log;
#[allow(clippy::disallowed_methods)] // storage: runs on the I/O executor
mod manager;
mod open_txns;
pub mod partition;
pub mod producer;
mod results;
mod retention;
#[allow(clippy::disallowed_methods)] // storage: runs on the I/O executor
mod segment;
mod sequencer;
#[cfg(test)]
mod tiered_tests;
mod validate;

pub use crate::config::LogConfig;
pub use cleaner::CleanStats;
pub use error::LogError;
pub use io::Io;
pub use journal_log::PartitionJournal;
pub use manager::{LogManager, TopicPartition};
pub use partition::Partition;
pub use results::{AppendInfo, Offsets, Outbound, ReadResult, Sent};
pub use sequencer::ProducerView;
pub use validate::{Prepared, Verify};
