//! Tiercel: a Kafka wire-protocol compatible broker that keeps each partition as segments on
//! local disk and tiers closed segments to object storage. See `README.md` for users and the module docs for the invariants each part keeps.
//!
//! Layers (dependencies point down only):
//! `server` (bytes, connections) → `protocol` (frames ↔ typed requests) → `api` (one handler per
//! Kafka API, the one place internal errors become Kafka error codes) → `catalog` / `log` →
//! `tier` (object store: uploads, manifests, remote reads; it never calls back into `log`).
//! `batch`, `clock`, `config` and `metrics` are leaves.

pub mod alloc;
pub mod api;
pub mod backoff;
pub mod broker;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod format;
pub mod fs;
pub mod group;
pub mod journal;
pub mod log;
pub mod metrics;
pub mod protocol;
pub mod server;
pub mod tier;
pub mod txn;

#[global_allocator]
static GLOBAL: alloc::LazyLargeAlloc = alloc::LazyLargeAlloc;
