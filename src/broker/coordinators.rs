//! Cluster mode: makes the group coordinator's shards follow the leadership of the internal
//! groups topic. The first node up creates the topic (`offsets_topic_num_partitions`
//! partitions, tiered, kept until the journal itself trims it); after that, on every new view
//! and every half second, this node loads each shard whose partition it now serves (reading
//! the shard's offsets out of the partition, COORDINATOR_LOAD_IN_PROGRESS meanwhile) and drops
//! each shard whose partition it no longer serves. Offsets of topics deleted through another
//! node are removed from the shards held here.

use crate::catalog::{Catalog, CatalogError, NewTopic, GROUPS_TOPIC};
use crate::clock::SharedClock;
use crate::cluster::Cluster;
use crate::group::offsets::OffsetStore;
use crate::group::state::GroupConfig;
use crate::group::{Coordinator, Groups};
use crate::log::{LogManager, PartitionJournal};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const RECHECK: Duration = Duration::from_millis(500);

pub(super) struct Shards {
    pub cluster: Arc<Cluster>,
    pub catalog: Arc<Catalog>,
    pub logs: Arc<LogManager>,
    pub groups: Arc<Groups>,
    pub cfg: GroupConfig,
    pub clock: SharedClock,
    /// Partitions of the groups topic when this node creates it.
    pub partitions: i32,
}

/// The groups topic's settings: tiered (so the WAL and tail chunks behind it are collected),
/// never removed by retention (the journal trims it after each snapshot), batches up to the
/// journal's largest.
fn topic_configs() -> BTreeMap<String, String> {
    [
        ("cleanup.policy", "delete"),
        ("remote.storage.enable", "true"),
        ("retention.ms", "-1"),
        ("retention.bytes", "-1"),
        ("max.message.bytes", "2097152"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

impl Shards {
    pub(super) async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut views = self.cluster.subscribe();
        let mut topics: HashSet<String> = HashSet::new();
        loop {
            self.ensure_topic().await;
            self.follow();
            self.forget_deleted(&mut topics).await;
            tokio::select! {
                _ = views.changed() => {}
                _ = tokio::time::sleep(RECHECK) => {}
                _ = cancel.cancelled() => return,
            }
        }
    }

    async fn ensure_topic(&self) {
        if self.catalog.get(GROUPS_TOPIC).is_some() {
            return;
        }
        let t = NewTopic {
            name: GROUPS_TOPIC.to_string(),
            partitions: self.partitions,
            replication_factor: -1,
            configs: topic_configs(),
        };
        match self.catalog.create_topic(t).await {
            Ok(_) => tracing::info!(
                topic = GROUPS_TOPIC,
                partitions = self.partitions,
                "created the group coordinators' topic"
            ),
            Err(CatalogError::TopicExists(_)) => {}
            Err(e) => {
                tracing::warn!(topic = GROUPS_TOPIC, error = %e, "could not create the group coordinators' topic yet")
            }
        }
    }

    /// Loads the shards whose partitions this node serves, drops the others.
    fn follow(self: &Arc<Self>) {
        let Some(meta) = self.catalog.get(GROUPS_TOPIC) else {
            return;
        };
        self.groups.set_count(meta.partitions);
        let me = self.cluster.node_id();
        let view = self.cluster.view();
        let held: HashMap<i32, i32> = self
            .groups
            .held()
            .into_iter()
            .map(|(s, e, _)| (s, e))
            .collect();
        for shard in 0..meta.partitions {
            let led = view
                .live_leader(meta.id, shard)
                .filter(|(n, _)| n.id == me)
                .map(|(_, e)| e);
            let served = led.and_then(|e| {
                self.logs
                    .get(GROUPS_TOPIC, shard)
                    .filter(|p| p.leader_epoch() == Some(e) && !p.is_moved())
                    .map(|p| (e, p))
            });
            match (served, held.get(&shard)) {
                (Some((e, _)), Some(h)) if *h == e => {}
                (Some((e, p)), _) => {
                    self.groups.loading(shard, e);
                    tokio::spawn(self.clone().load(shard, e, p));
                }
                (None, Some(_)) => {
                    tracing::info!(shard, "no longer coordinating this shard's groups");
                    self.groups.unload(shard);
                }
                (None, None) => {}
            }
        }
    }

    async fn load(self: Arc<Self>, shard: i32, epoch: i32, p: Arc<crate::log::Partition>) {
        let started = std::time::Instant::now();
        let backend = Arc::new(PartitionJournal::new(p, self.clock.clone()));
        match OffsetStore::open_on(backend).await {
            Ok(store) => {
                let groups = store.groups().len();
                let c = Coordinator::with_store(store, self.cfg.clone(), self.clock.clone());
                c.forget_deleted_topics(|t| self.catalog.get(t).is_some())
                    .await;
                if self.groups.loaded(shard, epoch, c) {
                    tracing::info!(
                        shard,
                        epoch,
                        groups,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "coordinating this shard's groups"
                    );
                }
            }
            Err(e) => {
                tracing::warn!(shard, epoch, error = %e, "loading a group coordinator shard failed; will retry");
                self.groups.failed(shard, epoch);
            }
        }
    }

    /// Removes, from the shards held here, the offsets of topics that went since the last look.
    async fn forget_deleted(&self, known: &mut HashSet<String>) {
        let now: HashSet<String> = self.catalog.topics().into_iter().map(|t| t.name).collect();
        let gone: Vec<String> = known.difference(&now).cloned().collect();
        *known = now;
        for topic in gone {
            self.groups.delete_topic(&topic).await;
        }
    }
}
