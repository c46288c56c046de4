//! Consumer-group coordination: the pure state machine (`state`), durable offsets (`offsets`),
//! one coordinator over them (`coordinator`), and the shards that spread groups over a
//! cluster's nodes (`shards`; alone, one shard holds every group).

pub mod assignors;
pub mod consumer;
mod consumer_view;
mod coordinator;
pub mod offsets;
mod shards;
pub mod state;

pub use coordinator::{
    CommitError, ConsumerError, ConsumerGroupView, Coordinator, DeleteError, GroupKind, GroupView,
    Listed, MemberView,
};
pub use shards::Groups;
pub use state::GroupState as State;

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
