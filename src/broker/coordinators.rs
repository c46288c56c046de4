//! Cluster mode: makes the coordinators' shards ([`crate::shard`]) follow the leadership of
//! their internal topics. The first node up creates each topic (tiered, kept until the journal
//! in it trims it); after that, on every new view and every half second, this node loads each
//! shard whose partition it now serves (reading the shard's state out of the partition; its ids
//! get COORDINATOR_LOAD_IN_PROGRESS meanwhile) and drops each shard whose partition it no longer
//! serves. Offsets of topics deleted through another node are removed from the group shards
//! held here.

use crate::catalog::{Catalog, CatalogError, NewTopic};
use crate::cluster::Cluster;
use crate::group::Groups;
use crate::log::{LogManager, Partition};
use crate::shard::{Released, Shards};
use futures::future::BoxFuture;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const RECHECK: Duration = Duration::from_millis(500);

/// Builds a shard's coordinator from its partition (the leader epoch it serves it at).
pub(super) type Loader<C> =
    Arc<dyn Fn(Arc<Partition>, i32) -> BoxFuture<'static, std::io::Result<C>> + Send + Sync>;

/// One kind of coordinator and the internal topic its shards follow.
pub(super) struct Follow<C> {
    /// For the logs: "group" or "transaction".
    pub what: &'static str,
    pub topic: &'static str,
    /// Partitions of the topic when this node creates it.
    pub partitions: i32,
    pub shards: Arc<Shards<C>>,
    pub load: Loader<C>,
}

/// What every kind of shard needs from the node.
pub(super) struct Node {
    pub cluster: Arc<Cluster>,
    pub catalog: Arc<Catalog>,
    pub logs: Arc<LogManager>,
}

/// The internal topics' settings: tiered (so the WAL and tail chunks behind them are
/// collected), never removed by retention (the journal trims them after each snapshot), batches
/// up to the journal's largest.
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

/// Follows the group and transaction shards until `cancel`.
pub(super) async fn run<T: Released>(
    node: Node,
    groups: (Arc<Groups>, Follow<crate::group::Coordinator>),
    txns: Follow<T>,
    cancel: CancellationToken,
) {
    let (groups, group_shards) = groups;
    let node = Arc::new(node);
    let group_shards = Arc::new(group_shards);
    let txns = Arc::new(txns);
    let mut views = node.cluster.subscribe();
    let mut topics: HashSet<String> = HashSet::new();
    loop {
        group_shards.step(&node).await;
        txns.step(&node).await;
        forget_deleted(&node.catalog, &groups, &mut topics).await;
        tokio::select! {
            _ = views.changed() => {}
            _ = tokio::time::sleep(RECHECK) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

impl<C: Released> Follow<C> {
    async fn step(self: &Arc<Self>, node: &Arc<Node>) {
        self.ensure_topic(node).await;
        self.follow(node);
    }

    async fn ensure_topic(&self, node: &Node) {
        if node.catalog.get(self.topic).is_some() {
            return;
        }
        let t = NewTopic {
            name: self.topic.to_string(),
            partitions: self.partitions,
            replication_factor: -1,
            configs: topic_configs(),
        };
        match node.catalog.create_topic(t).await {
            Ok(_) => tracing::info!(
                topic = self.topic,
                partitions = self.partitions,
                "created the {} coordinators' topic",
                self.what
            ),
            Err(CatalogError::TopicExists(_)) => {}
            Err(e) => {
                tracing::warn!(topic = self.topic, error = %e, "could not create the {} coordinators' topic yet", self.what)
            }
        }
    }

    /// Loads the shards whose partitions this node serves, drops the others.
    fn follow(self: &Arc<Self>, node: &Node) {
        let Some(meta) = node.catalog.get(self.topic) else {
            return;
        };
        self.shards.set_count(meta.partitions);
        let me = node.cluster.node_id();
        let view = node.cluster.view();
        let held = self.shards.held();
        for shard in 0..meta.partitions {
            let led = view
                .live_leader(meta.id, shard)
                .filter(|(n, _)| n.id == me)
                .map(|(_, e)| e);
            let served = led.and_then(|e| {
                node.logs
                    .get(self.topic, shard)
                    .filter(|p| p.leader_epoch() == Some(e) && !p.is_moved())
                    .map(|p| (e, p))
            });
            match (served, held.get(&shard)) {
                (Some((e, _)), Some(h)) if *h == e => {}
                (Some((e, p)), _) => {
                    self.shards.loading(shard, e);
                    tokio::spawn(self.clone().load(shard, e, p));
                }
                (None, Some(_)) => {
                    tracing::info!(shard, "no longer coordinating this shard's {}s", self.what);
                    self.shards.unload(shard);
                }
                (None, None) => {}
            }
        }
    }

    async fn load(self: Arc<Self>, shard: i32, epoch: i32, p: Arc<Partition>) {
        let started = std::time::Instant::now();
        match (self.load)(p, epoch).await {
            Ok(c) => {
                if self.shards.loaded(shard, epoch, c) {
                    tracing::info!(
                        shard,
                        epoch,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "coordinating this shard's {}s",
                        self.what
                    );
                }
            }
            Err(e) => {
                tracing::warn!(shard, epoch, error = %e, "loading a {} coordinator shard failed; will retry", self.what);
                self.shards.failed(shard, epoch);
            }
        }
    }
}

/// Removes, from the group shards held here, the offsets of topics that went since the last
/// look.
async fn forget_deleted(catalog: &Catalog, groups: &Groups, known: &mut HashSet<String>) {
    let now: HashSet<String> = catalog.topics().into_iter().map(|t| t.name).collect();
    let gone: Vec<String> = known.difference(&now).cloned().collect();
    *known = now;
    for topic in gone {
        groups.delete_topic(&topic).await;
    }
}
