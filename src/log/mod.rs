//! The log: per-partition segment files, offset assignment, durability and retention.
//!
//! Owns `<data_dir>/<topic>-<partition>/` directories. Knows nothing of the Kafka wire beyond the
//! record-batch format it stores (`crate::format::batch`). Guarantees on crash: every offset at or below
//! a partition's high watermark was fsynced and survives `kill -9`; start-up after an unclean stop
//! (no clean-shutdown marker) CRC-checks the active segment and truncates a torn tail.

mod cleaner;
mod error;
mod io;
mod manager;
mod markers;
pub mod partition;
pub mod producer;
mod retention;
pub mod segment;
#[cfg(test)]
mod tiered_tests;
pub mod txn_index;
mod validate;

pub use crate::config::LogConfig;
pub use cleaner::CleanStats;
pub use error::LogError;
pub use manager::{LogManager, TopicPartition};
pub use markers::ProducerView;
pub use partition::{AppendInfo, Offsets, ReadResult};
