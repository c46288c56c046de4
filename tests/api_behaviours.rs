//! Broker behaviours checked at the API level, each against what Apache Kafka answers:
//! DescribeCluster, topic-id lookups and the connection limit (`cluster`); OffsetDelete and
//! DeleteGroups (`groups`); the batched AddPartitionsToTxn, ListTransactions' duration filter,
//! PrepareAbort recovery and transactional-id expiry (`txn`); transactions v2 (`txn_v2`); client telemetry (`telemetry`); ListOffsets' MAX_TIMESTAMP and
//! EARLIEST_LOCAL, and LogAppendTime topics (`offsets`); validate_only and list operations of
//! the config APIs (`configs`); segment.ms and retention.ms on the wall clock (`retention`);
//! incremental fetch sessions (`sessions`); KIP-848 consumer groups (`consumer_groups`); share
//! groups (`share_groups`).
//!
//! Each asserts Kafka's answer.

#![allow(clippy::disallowed_methods)] // a test (or benchmark) reads and writes its files directly

mod common;

#[path = "api_behaviours/cluster.rs"]
mod cluster;
#[path = "api_behaviours/configs.rs"]
mod configs;
#[path = "api_behaviours/consumer_groups.rs"]
mod consumer_groups;
#[path = "api_behaviours/group_migration.rs"]
mod group_migration;
#[path = "api_behaviours/groups.rs"]
mod groups;
#[path = "api_behaviours/offsets.rs"]
mod offsets;
#[path = "api_behaviours/retention.rs"]
mod retention;
#[path = "api_behaviours/sessions.rs"]
mod sessions;
#[path = "api_behaviours/share_groups.rs"]
mod share_groups;
#[path = "api_behaviours/telemetry.rs"]
mod telemetry;
#[path = "api_behaviours/txn.rs"]
mod txn;
#[path = "api_behaviours/txn_v2.rs"]
mod txn_v2;
#[path = "api_behaviours/util.rs"]
mod util;
