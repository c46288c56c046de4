//! The group coordinator split in shards ([`crate::shard`]): alone, one shard holds every group;
//! in a cluster, a group belongs to a shard of the internal topic `__tiercel_groups`, whose
//! leader coordinates it and keeps its offsets in that partition. Requests for a shard led
//! elsewhere get NOT_COORDINATOR, for one still loading COORDINATOR_LOAD_IN_PROGRESS: clients
//! find the coordinator again and retry.

use super::coordinator::{Coordinator, Listed};
use super::state::GroupError;
use crate::shard::{Absent, Released, Shards};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

impl Released for Coordinator {
    fn released(&self) {
        self.release_waiters();
    }
}

pub struct Groups {
    pub shards: Arc<Shards<Coordinator>>,
}

impl From<Absent> for GroupError {
    fn from(a: Absent) -> GroupError {
        match a {
            Absent::Elsewhere => GroupError::NotCoordinator,
            Absent::Loading => GroupError::CoordinatorLoadInProgress,
        }
    }
}

impl Groups {
    /// One shard, served here, holding every group.
    pub fn alone(c: Coordinator) -> Groups {
        Groups {
            shards: Arc::new(Shards::single(c)),
        }
    }

    /// A cluster node's: no shard until the broker loads one.
    pub fn sharded() -> Groups {
        Groups {
            shards: Arc::new(Shards::empty()),
        }
    }

    /// The shard a group belongs to, once the count is known.
    pub fn shard(&self, group_id: &str) -> Option<i32> {
        self.shards.shard(group_id)
    }

    /// The coordinator of `group_id` if this node serves its shard.
    pub fn get(&self, group_id: &str) -> Result<Arc<Coordinator>, GroupError> {
        self.shards.get(group_id).map_err(GroupError::from)
    }

    /// The coordinator of a shard served here.
    pub fn get_shard(&self, shard: i32) -> Option<Arc<Coordinator>> {
        self.shards.get_shard(shard).map(|(_, c)| c)
    }

    /// Every group coordinated here, by id.
    pub fn list(&self) -> Vec<Listed> {
        let mut out: Vec<_> = self.shards.all().iter().flat_map(|c| c.list()).collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Every group coordinated here with committed offsets.
    pub fn groups_with_offsets(&self) -> Vec<String> {
        self.shards
            .all()
            .iter()
            .flat_map(|c| c.groups_with_offsets())
            .collect()
    }

    /// Removes a deleted topic's offsets from every shard served here.
    pub async fn delete_topic(&self, topic: &str) {
        for c in self.shards.all() {
            c.delete_topic(topic).await;
        }
    }

    /// Ticks every shard every `interval` until `cancel`.
    pub async fn run(self: Arc<Self>, interval: Duration, cancel: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {
                    for c in self.shards.all() {
                        c.tick().await;
                    }
                }
                _ = cancel.cancelled() => {
                    for c in self.shards.all() {
                        c.release_waiters();
                    }
                    return;
                }
            }
        }
    }
}
