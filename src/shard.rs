//! Coordinator shards: the groups and the transactional ids are each split over the partitions
//! of an internal topic, as Kafka splits them over `__consumer_offsets` and
//! `__transaction_state`. An id belongs to shard `hash(id) % N` (Java's `String.hashCode`, as
//! Kafka picks the partition); whoever leads that partition coordinates the shard and keeps its
//! state there. A node holds the shards it comes to lead: loading while it reads the shard's
//! state out of the partition, then ready, and dropped when the leadership goes. Alone, one
//! shard, always ready, holds every id.

use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

/// The shard of `id` among `count` (Kafka's `Utils.abs(id.hashCode()) % count`).
pub fn shard_of(id: &str, count: i32) -> i32 {
    let mut h: i32 = 0;
    for unit in id.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    (h & 0x7fff_ffff) % count.max(1)
}

/// What a coordinator does when its shard leaves this node: answer what it holds parked.
pub trait Released: Send + Sync + 'static {
    fn released(&self);
}

/// Why an id's coordinator is not here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Absent {
    /// Another node leads the shard (NOT_COORDINATOR).
    Elsewhere,
    /// This node is loading it (COORDINATOR_LOAD_IN_PROGRESS).
    Loading,
}

enum Slot<C> {
    /// Being loaded for this leader epoch.
    Loading(i32),
    /// Served, loaded at this leader epoch.
    Ready(i32, Arc<C>),
}

pub struct Shards<C> {
    /// Shards the ids are spread over (0 until a cluster node has read its topic).
    count: AtomicI32,
    slots: RwLock<HashMap<i32, Slot<C>>>,
}

impl<C: Released> Shards<C> {
    /// One shard, served here, holding every id.
    pub fn single(c: C) -> Shards<C> {
        Shards {
            count: AtomicI32::new(1),
            slots: RwLock::new(HashMap::from([(0, Slot::Ready(0, Arc::new(c)))])),
        }
    }

    /// A cluster node's: no shard until one is loaded.
    pub fn empty() -> Shards<C> {
        Shards {
            count: AtomicI32::new(0),
            slots: RwLock::new(HashMap::new()),
        }
    }

    pub fn set_count(&self, count: i32) {
        self.count.store(count, Ordering::Release);
    }

    /// The shard `id` belongs to, once the count is known.
    pub fn shard(&self, id: &str) -> Option<i32> {
        let n = self.count.load(Ordering::Acquire);
        (n > 0).then(|| shard_of(id, n))
    }

    /// The coordinator of `id`, if this node serves its shard.
    pub fn get(&self, id: &str) -> Result<Arc<C>, Absent> {
        let shard = self.shard(id).ok_or(Absent::Loading)?;
        match self.slots.read().get(&shard) {
            Some(Slot::Ready(_, c)) => Ok(c.clone()),
            Some(Slot::Loading(_)) => Err(Absent::Loading),
            None => Err(Absent::Elsewhere),
        }
    }

    /// The coordinator of a shard served here, with the leader epoch it was loaded at.
    pub fn get_shard(&self, shard: i32) -> Option<(i32, Arc<C>)> {
        match self.slots.read().get(&shard) {
            Some(Slot::Ready(e, c)) => Some((*e, c.clone())),
            _ => None,
        }
    }

    /// The shards held here, loaded or loading, with their leader epochs.
    pub fn held(&self) -> HashMap<i32, i32> {
        self.slots
            .read()
            .iter()
            .map(|(s, slot)| match slot {
                Slot::Loading(e) | Slot::Ready(e, _) => (*s, *e),
            })
            .collect()
    }

    /// Marks `shard` as loading for `epoch`, releasing an older load of it.
    pub fn loading(&self, shard: i32, epoch: i32) {
        if let Some(Slot::Ready(_, old)) = self.slots.write().insert(shard, Slot::Loading(epoch)) {
            old.released();
        }
    }

    /// Serves `shard` from `c` if it is still being loaded for `epoch`; else `c` is released.
    pub fn loaded(&self, shard: i32, epoch: i32, c: C) -> bool {
        let mut slots = self.slots.write();
        if matches!(slots.get(&shard), Some(Slot::Loading(e)) if *e == epoch) {
            slots.insert(shard, Slot::Ready(epoch, Arc::new(c)));
            return true;
        }
        drop(slots);
        c.released();
        false
    }

    /// A load of `shard` for `epoch` failed: it is tried again on the next look.
    pub fn failed(&self, shard: i32, epoch: i32) {
        let mut slots = self.slots.write();
        if matches!(slots.get(&shard), Some(Slot::Loading(e)) if *e == epoch) {
            slots.remove(&shard);
        }
    }

    /// Stops serving (or loading) `shard`.
    pub fn unload(&self, shard: i32) {
        if let Some(Slot::Ready(_, c)) = self.slots.write().remove(&shard) {
            c.released();
        }
    }

    /// Every coordinator served here.
    pub fn all(&self) -> Vec<Arc<C>> {
        self.slots
            .read()
            .values()
            .filter_map(|s| match s {
                Slot::Ready(_, c) => Some(c.clone()),
                Slot::Loading(_) => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn shards_follow_java_string_hash_code() {
        // "my-group".hashCode() == -1906497762 in Java, 240985886 with the sign bit cleared;
        // "" hashes to 0
        assert_eq!(shard_of("my-group", 50), 240985886 % 50);
        assert_eq!(shard_of("", 16), 0);
        // i32::MIN ("polygenelubricants".hashCode()) clears to 0, as with Kafka's Utils.abs
        assert_eq!(shard_of("polygenelubricants", 7), 0);
        for id in ["a", "group-1", "日本語", "😀"] {
            assert!((0..16).contains(&shard_of(id, 16)));
        }
    }

    #[derive(Default)]
    struct Counted(Arc<AtomicUsize>);
    impl Released for Counted {
        fn released(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_shard_is_served_only_when_loaded_for_its_current_epoch() {
        let s: Shards<Counted> = Shards::empty();
        assert_eq!(s.get("g").err(), Some(Absent::Loading), "count unknown");
        s.set_count(4);
        let shard = shard_of("g", 4);
        assert_eq!(s.get("g").err(), Some(Absent::Elsewhere));
        s.loading(shard, 3);
        assert_eq!(s.get("g").err(), Some(Absent::Loading));
        // a newer leadership began while epoch 2's load ran: that load is dropped
        let stale = Counted::default();
        let released = stale.0.clone();
        s.loading(shard, 3);
        assert!(!s.loaded(shard, 2, stale));
        assert_eq!(released.load(Ordering::SeqCst), 1);
        let current = Counted::default();
        let released = current.0.clone();
        assert!(s.loaded(shard, 3, current));
        assert!(s.get("g").is_ok());
        assert_eq!(s.held(), HashMap::from([(shard, 3)]));
        s.unload(shard);
        assert_eq!(
            released.load(Ordering::SeqCst),
            1,
            "parked requests answered"
        );
        assert_eq!(s.get("g").err(), Some(Absent::Elsewhere));
        s.loading(shard, 4);
        s.failed(shard, 4);
        assert!(s.held().is_empty(), "a failed load is tried again");
    }
}
