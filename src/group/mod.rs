//! Consumer-group coordination: the pure state machine (`state`), durable offsets (`offsets`),
//! one coordinator over them (`coordinator`), and the shards that spread groups over a
//! cluster's nodes (`shards`; alone, one shard holds every group).

mod coordinator;
pub mod offsets;
mod shards;
pub mod state;

pub use coordinator::{CommitError, Coordinator, DeleteError, GroupView, MemberView};
pub use shards::Groups;
pub use state::GroupState as State;
