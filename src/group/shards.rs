//! The group coordinator split in shards. Alone, one shard holds every group. In a cluster, a
//! group belongs to shard `hash(group id) % N` (Java's `String.hashCode`, as Kafka picks a
//! `__consumer_offsets` partition), where N is the partition count of the internal topic
//! `__tiercel_groups`; whoever leads a partition of that topic coordinates its shard, with
//! the shard's offsets kept in the partition. The broker loads a shard when this node comes to
//! lead its partition and drops it when the leadership goes, so coordination spreads over the
//! nodes and follows failover. Requests for a shard led elsewhere get NOT_COORDINATOR, for one
//! still loading COORDINATOR_LOAD_IN_PROGRESS: clients find the coordinator again and retry.

use super::coordinator::Coordinator;
use super::state::GroupError;
use super::state::GroupState;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The shard of `id` among `count` (Kafka's `Utils.abs(id.hashCode()) % count`).
pub fn shard_of(id: &str, count: i32) -> i32 {
    let mut h: i32 = 0;
    for unit in id.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    (h & 0x7fff_ffff) % count.max(1)
}

#[derive(Clone)]
enum Shard {
    /// Being loaded for this leader epoch.
    Loading(i32),
    /// Served, loaded at this leader epoch.
    Ready(i32, Arc<Coordinator>),
}

pub struct Groups {
    /// Shards the group ids are spread over (0 until a cluster node has read the topic).
    count: AtomicI32,
    shards: RwLock<HashMap<i32, Shard>>,
}

impl Groups {
    /// One shard, served here, holding every group.
    pub fn alone(c: Coordinator) -> Groups {
        Groups {
            count: AtomicI32::new(1),
            shards: RwLock::new(HashMap::from([(0, Shard::Ready(0, Arc::new(c)))])),
        }
    }

    /// A cluster node's: no shard until the broker loads one.
    pub fn sharded() -> Groups {
        Groups {
            count: AtomicI32::new(0),
            shards: RwLock::new(HashMap::new()),
        }
    }

    pub fn set_count(&self, count: i32) {
        self.count.store(count, Ordering::Release);
    }

    pub fn count(&self) -> i32 {
        self.count.load(Ordering::Acquire)
    }

    /// The shard a group belongs to, once the count is known.
    pub fn shard(&self, group_id: &str) -> Option<i32> {
        let n = self.count();
        (n > 0).then(|| shard_of(group_id, n))
    }

    /// The coordinator of `group_id` if this node serves its shard.
    pub fn get(&self, group_id: &str) -> Result<Arc<Coordinator>, GroupError> {
        let shard = self
            .shard(group_id)
            .ok_or(GroupError::CoordinatorLoadInProgress)?;
        match self.shards.read().get(&shard) {
            Some(Shard::Ready(_, c)) => Ok(c.clone()),
            Some(Shard::Loading(_)) => Err(GroupError::CoordinatorLoadInProgress),
            None => Err(GroupError::NotCoordinator),
        }
    }

    /// The coordinator of a shard served here.
    pub fn get_shard(&self, shard: i32) -> Option<Arc<Coordinator>> {
        match self.shards.read().get(&shard) {
            Some(Shard::Ready(_, c)) => Some(c.clone()),
            _ => None,
        }
    }

    /// The shards held here: (shard, leader epoch, whether loaded).
    pub fn held(&self) -> Vec<(i32, i32, bool)> {
        self.shards
            .read()
            .iter()
            .map(|(s, sh)| match sh {
                Shard::Loading(e) => (*s, *e, false),
                Shard::Ready(e, _) => (*s, *e, true),
            })
            .collect()
    }

    /// Marks `shard` as loading for `epoch` (dropping an older load of it).
    pub fn loading(&self, shard: i32, epoch: i32) {
        if let Some(Shard::Ready(_, old)) = self.shards.write().insert(shard, Shard::Loading(epoch))
        {
            old.release_waiters();
        }
    }

    /// Serves `shard` from `c`, if it is still being loaded for `epoch`.
    pub fn loaded(&self, shard: i32, epoch: i32, c: Coordinator) -> bool {
        let mut shards = self.shards.write();
        match shards.get(&shard) {
            Some(Shard::Loading(e)) if *e == epoch => {
                shards.insert(shard, Shard::Ready(epoch, Arc::new(c)));
                true
            }
            _ => false,
        }
    }

    /// Stops serving (or loading) `shard`: its members' parked requests are answered and they
    /// rejoin through the shard's new coordinator.
    pub fn unload(&self, shard: i32) {
        if let Some(Shard::Ready(_, c)) = self.shards.write().remove(&shard) {
            c.release_waiters();
        }
    }

    /// A load of `shard` for `epoch` failed: it is tried again on the next round.
    pub fn failed(&self, shard: i32, epoch: i32) {
        let mut shards = self.shards.write();
        if matches!(shards.get(&shard), Some(Shard::Loading(e)) if *e == epoch) {
            shards.remove(&shard);
        }
    }

    /// Every coordinator served here.
    pub fn all(&self) -> Vec<Arc<Coordinator>> {
        self.shards
            .read()
            .values()
            .filter_map(|s| match s {
                Shard::Ready(_, c) => Some(c.clone()),
                Shard::Loading(_) => None,
            })
            .collect()
    }

    /// Every group coordinated here: `(id, protocol type, state)`, by id.
    pub fn list(&self) -> Vec<(String, String, GroupState)> {
        let mut out: Vec<_> = self.all().iter().flat_map(|c| c.list()).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Every group coordinated here with committed offsets.
    pub fn groups_with_offsets(&self) -> Vec<String> {
        self.all()
            .iter()
            .flat_map(|c| c.groups_with_offsets())
            .collect()
    }

    /// Removes a deleted topic's offsets from every shard served here.
    pub async fn delete_topic(&self, topic: &str) {
        for c in self.all() {
            c.delete_topic(topic).await;
        }
    }

    pub fn release_waiters(&self) {
        for c in self.all() {
            c.release_waiters();
        }
    }

    /// Ticks every shard every `interval` until `cancel`.
    pub async fn run(self: Arc<Self>, interval: Duration, cancel: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {
                    for c in self.all() {
                        c.tick().await;
                    }
                }
                _ = cancel.cancelled() => {
                    self.release_waiters();
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_follow_java_string_hash_code() {
        // "my-group".hashCode() == -1906497762 in Java, 240985886 with the sign bit cleared;
        // "" hashes to 0
        assert_eq!(shard_of("my-group", 50), 240985886 % 50);
        assert_eq!(shard_of("", 16), 0);
        // a negative hash is made positive by clearing the sign bit, as Kafka's Utils.abs
        // ("polygenelubricants".hashCode() == i32::MIN)
        assert_eq!(shard_of("polygenelubricants", 7), 0);
        for id in ["a", "group-1", "日本語", "😀"] {
            assert!((0..16).contains(&shard_of(id, 16)));
        }
    }
}
