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
