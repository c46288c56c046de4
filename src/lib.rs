//! Tiercel: a Kafka wire-protocol compatible broker that keeps each partition as segments on
//! local disk and tiers closed segments to object storage. See `README.md` for users and the module docs for the invariants each part keeps.
//!
//! Layers, top down; a module imports only modules below it (`tests/layers.rs` checks this on
//! the source): `broker` → `server` (bytes, connections) → `api` (one handler per Kafka API,
//! the one place internal errors become Kafka error codes) → `protocol` (frames ↔ typed
//! requests) → `group` / `txn` (coordinators) → `log` (partitions and their segment files) /
//! `journal` (small durable state) → `tier` (object store: uploads, manifests, remote reads; it
//! never calls back into `log`) → `catalog` → the leaves: `format` (every persisted format),
//! `fs` (file-system primitives), `config`, `metrics`, `clock`, `backoff`, `alloc`.
//!
//! What may block a tokio worker is written down in `clippy.toml`: file-system calls only in the
//! storage modules (`fs`, `journal`, the log's segment files, the catalog's file), which run
//! them on a blocking executor.

#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod alloc;
pub mod api;
pub mod backoff;
pub mod broker;
pub mod catalog;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod etcd;
pub mod format;
/// Storage module: the file-system primitives themselves.
#[allow(clippy::disallowed_methods)]
pub mod fs;
pub mod group;
/// Storage module: its writer thread does the journal's file I/O.
#[allow(clippy::disallowed_methods)]
pub mod journal;
pub mod log;
pub mod metrics;
pub mod protocol;
pub mod security;
pub mod server;
pub mod shard;
pub mod share;
pub mod telemetry;
pub mod tier;
pub mod txn;

#[global_allocator]
static GLOBAL: alloc::LazyLargeAlloc = alloc::LazyLargeAlloc;
