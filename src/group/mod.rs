//! Consumer-group coordination: the pure state machines of the classic protocol (`state`) and
//! of KIP-848 (`consumer`, with its server-side `assignors`), durable offsets (`offsets`), one
//! coordinator over them (`coordinator`), what DescribeGroups shows (`view`), and the shards
//! that spread groups over a cluster's nodes (`shards`; alone, one shard holds every group).

pub mod assignors;
pub mod consumer;
mod coordinator;
pub mod offsets;
mod shards;
pub mod state;
mod view;

pub use coordinator::{
    CommitError, ConsumerError, ConsumerGroupView, Coordinator, DeleteError, GroupKind, Listed,
};
pub use shards::Groups;
pub use state::GroupState as State;
pub use view::{GroupView, MemberView};

/// Every state name of either protocol, as the group state metric labels them.
pub const STATE_NAMES: &[&str] = &[
    "Empty",
    "PreparingRebalance",
    "CompletingRebalance",
    "Stable",
    "Dead",
    "Assigning",
    "Reconciling",
];

/// The group settings unit tests use.
#[cfg(test)]
pub(crate) fn test_config() -> crate::config::GroupConfig {
    crate::config::GroupConfig {
        min_session_timeout_ms: 6000,
        max_session_timeout_ms: 1_800_000,
        initial_rebalance_delay_ms: 3000,
        max_size: 100,
        max_groups: 1000,
        offsets_retention_ms: 60_000,
        offset_metadata_max_bytes: 100,
        consumer_session_timeout_ms: 45_000,
        consumer_heartbeat_interval_ms: 5_000,
        consumer_max_size: 3,
        consumer_assignors: crate::config::Assignors::default(),
        consumer_migration_policy: crate::config::MigrationPolicy::default(),
    }
}
