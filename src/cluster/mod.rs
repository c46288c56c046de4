//! Cluster membership and partition leadership, kept in etcd.
//!
//! Keys, under the cluster's prefix:
//!
//! | key | value | lifetime |
//! |---|---|---|
//! | `/cluster` | [`ClusterRecord`]: cluster id, the shared bucket, key format | forever |
//! | `/nodes/<id>` | [`NodeInfo`]: the node's advertised address | the node's lease |
//! | `/controller` | the controller's node id | the controller's lease |
//! | `/leaders/<topic id>/<partition>` | [`Leadership`]: leader node and epoch | until the topic is deleted |
//! | `/moves/<topic id>/<partition>` | the node the controller asks the leader to hand over to | until handed over |
//! | `/assign/<topic id>/<partition>` | the node an operator assigned the partition to (AlterPartitionReassignments): its preferred leader | until cancelled or the topic is deleted |
//! | `/epochs/<topic id>/<partition>` | the partition's leader-epoch history | until the topic is deleted |
//! | `/wal/<node>/<object>-<n>`, `/tiered/…` | committed WAL batches and how far manifests and tail chunks reach ([`wal`], [`tail`]) | until those cover them |
//! | `/producer-ids` | the next unreserved producer id | forever |
//! | `/catalog/…` | topics and dynamic configs ([`crate::catalog::EtcdCatalog`]) | |
//!
//! A node is live while its key exists: the key is attached to a lease that the node renews
//! every third of its TTL, so a node that dies, hangs or loses etcd for a TTL disappears. A
//! node also counts its own lease as lost once a TTL has passed since the last renewal etcd
//! confirmed (measured from when the renewal was *sent*), and from then on leads nothing, even
//! if its partitions have not moved yet: a paused node that wakes up cannot act on stale
//! leadership.
//!
//! One node is the controller (the first to create `/controller`, attached to its lease). It
//! gives every partition without a live leader to the live node that leads the fewest, in one
//! etcd transaction per partition that checks the old leader is still gone and bumps the
//! epoch; epochs only grow. When a node joins, the controller asks the most loaded nodes to
//! hand partitions over (a `/moves/` key, apart from the leadership key so that asking does not
//! disturb the leader's WAL commits, which are guarded by that key); the owner stops serving the
//! partition first and then writes the new leader itself ([`Cluster::hand_over`]), so no two
//! nodes ever serve one partition. A node that stops does the same for all of its partitions.
//!
//! Every node polls etcd's revision (a few times a second) and re-reads the prefix when it moved;
//! the view it builds ([`View`]) is what Metadata answers and what decides which partitions the
//! node serves.

mod controller;
pub mod tail;
pub mod wal;

use crate::catalog::{Catalog, EtcdCatalog};
use crate::etcd::{Compare, Etcd, EtcdError, Kv, Op};
use crate::format::epochs::{self, EpochEntry};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use crate::catalog::ClusterRecord;

/// How often etcd's revision is polled for changes.
const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error("node id {0} is in use by another live node of this cluster")]
    NodeIdInUse(i32),
    #[error("{0}")]
    Invalid(String),
}

/// A live node as registered under `/nodes/<id>`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: i32,
    pub host: String,
    pub port: i32,
    /// Started with `--decommission`: it takes no partitions and hands its own to the others.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub draining: bool,
    /// `--rack`: consumers with this `client.rack` are served by this node (KIP-392).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
    /// Every listener's advertised address by listener name; `host`/`port` are the
    /// inter-broker listener's. Clients are answered with the address of the listener they
    /// connected to (a listener the node lacks: `host`/`port`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub listeners: std::collections::BTreeMap<String, (String, i32)>,
}

impl NodeInfo {
    /// The address clients of `listener` are told.
    pub fn endpoint(&self, listener: Option<&str>) -> (String, i32) {
        listener
            .and_then(|l| self.listeners.get(l))
            .cloned()
            .unwrap_or_else(|| (self.host.clone(), self.port))
    }
}

/// A partition's leader, `/leaders/<topic id>/<partition>`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Leadership {
    pub node: i32,
    pub epoch: i32,
    /// The node that led the epoch before (-1: none): a new leader that was not it knows its
    /// own copy of the partition, if any, is from an older epoch.
    #[serde(default = "no_node")]
    pub previous: i32,
}

fn no_node() -> i32 {
    -1
}

/// What this node knows of the cluster, as of an etcd revision.
#[derive(Debug, Default)]
pub struct View {
    pub revision: i64,
    /// Live nodes.
    pub nodes: BTreeMap<i32, NodeInfo>,
    /// Creation revision of each live node's key (the controller's guard that a node is the
    /// same registration it saw).
    pub node_revs: HashMap<i32, i64>,
    pub controller: Option<i32>,
    /// Each partition's leadership and the modification revision of its key.
    pub leaders: HashMap<(Uuid, i32), (Leadership, i64)>,
    /// Moves the controller asked for: partition → (target node, the move key's revision).
    pub moves: HashMap<(Uuid, i32), (i32, i64)>,
    /// Partitions assigned to a node by an operator: partition → (node, the key's revision).
    pub assigned: HashMap<(Uuid, i32), (i32, i64)>,
    /// The highest modification revision among the leadership keys read.
    pub leaders_rev: i64,
}

impl View {
    /// The partition's leader, if it is live.
    pub fn live_leader(&self, topic: Uuid, partition: i32) -> Option<(&NodeInfo, i32)> {
        let (l, _) = self.leaders.get(&(topic, partition))?;
        self.nodes.get(&l.node).map(|n| (n, l.epoch))
    }

    /// The node an operator assigned the partition to, if that node is live and may lead.
    pub fn assigned_live(&self, topic: Uuid, partition: i32) -> Option<i32> {
        self.assigned
            .get(&(topic, partition))
            .map(|(n, _)| *n)
            .filter(|n| self.eligible(*n))
    }

    /// Whether node `n` is live and may be given partitions (it is not draining).
    pub fn eligible(&self, n: i32) -> bool {
        self.nodes.get(&n).is_some_and(|i| !i.draining)
    }

    /// The partition's leader epoch (-1 before it ever had a leader).
    pub fn epoch(&self, topic: Uuid, partition: i32) -> i32 {
        self.leaders
            .get(&(topic, partition))
            .map_or(-1, |(l, _)| l.epoch)
    }
}

struct Lease {
    id: i64,
    /// Creation revision of this node's key under that lease: the WAL's commits are guarded
    /// by it, so a node whose key was re-created (it lost its lease meanwhile) cannot commit
    /// on the strength of an old decision.
    node_rev: i64,
    /// Until when the lease is surely alive (last confirmed renewal's send time + TTL).
    valid_until: Instant,
}

pub struct Cluster {
    etcd: Arc<Etcd>,
    prefix: String,
    me: NodeInfo,
    ttl: Duration,
    lease: Mutex<Lease>,
    view: watch::Sender<Arc<View>>,
    catalog: Arc<EtcdCatalog>,
}

impl Cluster {
    /// Registers this node: a new lease and the node key, created only if no live node has the
    /// same id.
    pub async fn join(
        etcd: Arc<Etcd>,
        prefix: &str,
        me: NodeInfo,
        ttl: Duration,
        catalog: Arc<EtcdCatalog>,
    ) -> Result<Arc<Cluster>, ClusterError> {
        let c = Arc::new(Cluster {
            etcd,
            prefix: prefix.to_string(),
            me,
            ttl,
            lease: Mutex::new(Lease {
                id: 0,
                node_rev: 0,
                valid_until: Instant::now(),
            }),
            view: watch::Sender::new(Arc::new(View::default())),
            catalog,
        });
        c.register().await?;
        c.poll_once().await?;
        tracing::info!(
            node = c.me.id,
            prefix,
            lease_ttl_ms = ttl.as_millis() as u64,
            "joined the cluster"
        );
        Ok(c)
    }

    pub fn node_id(&self) -> i32 {
        self.me.id
    }

    pub fn view(&self) -> Arc<View> {
        self.view.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<View>> {
        self.view.subscribe()
    }

    /// Until when this node's lease is surely alive, as of the last renewal etcd confirmed.
    pub fn lease_deadline(&self) -> Instant {
        self.lease.lock().valid_until
    }

    /// Whether this node's lease is surely alive now.
    pub fn lease_valid(&self) -> bool {
        Instant::now() < self.lease.lock().valid_until
    }

    fn key(&self, rest: &str) -> Vec<u8> {
        format!("{}/{rest}", self.prefix).into_bytes()
    }

    fn node_key(&self, id: i32) -> Vec<u8> {
        self.key(&format!("nodes/{id}"))
    }

    fn leader_key(&self, topic: Uuid, partition: i32) -> Vec<u8> {
        self.key(&format!("leaders/{topic}/{partition}"))
    }

    fn move_key(&self, topic: Uuid, partition: i32) -> Vec<u8> {
        self.key(&format!("moves/{topic}/{partition}"))
    }

    fn assign_key(&self, topic: Uuid, partition: i32) -> Vec<u8> {
        self.key(&format!("assign/{topic}/{partition}"))
    }

    /// AlterPartitionReassignments: assigns the partition to `node` (its preferred leader from
    /// now on; the controller moves it there while that node is live), or with `None` removes
    /// the assignment.
    pub async fn assign(
        &self,
        topic: Uuid,
        partition: i32,
        node: Option<i32>,
    ) -> Result<(), ClusterError> {
        let key = self.assign_key(topic, partition);
        let op = match node {
            Some(n) => Op::Put {
                key,
                value: n.to_string().into_bytes(),
                lease: 0,
            },
            None => Op::Delete(key),
        };
        self.etcd.txn(&[], &[op], &[]).await?;
        Ok(())
    }

    /// A new lease and this node's key under it.
    async fn register(&self) -> Result<(), ClusterError> {
        let ttl_s = self.ttl.as_secs().max(1) as i64;
        let sent = Instant::now();
        let id = self.etcd.lease_grant(ttl_s).await?;
        let key = self.node_key(self.me.id);
        let value =
            serde_json::to_vec(&self.me).map_err(|e| ClusterError::Invalid(e.to_string()))?;
        let r = self
            .etcd
            .txn(
                &[Compare::CreateRevision(key.clone(), 0)],
                &[
                    Op::Put {
                        key: key.clone(),
                        value,
                        lease: id,
                    },
                    Op::Get(key.clone()),
                ],
                &[],
            )
            .await?;
        if !r.succeeded {
            let _ = self.etcd.lease_revoke(id).await;
            return Err(ClusterError::NodeIdInUse(self.me.id));
        }
        let node_rev = r
            .gets
            .first()
            .and_then(|g| g.first())
            .map_or(r.revision, |kv| kv.create_revision);
        *self.lease.lock() = Lease {
            id,
            node_rev,
            valid_until: sent + self.ttl,
        };
        Ok(())
    }

    /// Renews the lease every third of its TTL; registers again after losing it.
    async fn keep_alive(self: Arc<Self>, cancel: CancellationToken) {
        let every = self.ttl / 3;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = cancel.cancelled() => return,
            }
            let id = self.lease.lock().id;
            let sent = Instant::now();
            match self.etcd.lease_keepalive(id).await {
                Ok(ttl) if ttl > 0 => {
                    self.lease.lock().valid_until = sent + self.ttl;
                    crate::metrics::cluster_lease(true);
                }
                Ok(_) => {
                    tracing::error!(node = self.me.id, "this node's etcd lease expired: it leads nothing until it is registered again");
                    crate::metrics::cluster_lease(false);
                    if let Err(e) = self.register().await {
                        tracing::error!(node = self.me.id, error = %e, "registering again failed; retrying");
                    } else {
                        tracing::info!(node = self.me.id, "registered again with a new lease");
                    }
                }
                Err(e) => {
                    crate::metrics::cluster_etcd_error("keepalive");
                    crate::metrics::cluster_lease(self.lease_valid());
                    tracing::warn!(node = self.me.id, error = %e, "renewing the etcd lease failed");
                }
            }
        }
    }

    /// Reads the membership, leadership and catalog keys again and publishes the view (and the
    /// catalog). WAL records are not read here: only a new leader and the collector need them.
    async fn poll_once(&self) -> Result<(), ClusterError> {
        let started = Instant::now();
        let mut kvs = Vec::new();
        let mut revision = i64::MAX;
        for part in ["nodes/", "leaders/", "moves/", "assign/", "catalog/"] {
            let (rev, mut found) = self.etcd.range_prefix(&self.key(part)).await?;
            revision = revision.min(rev);
            kvs.append(&mut found);
        }
        let (rev, mut found) = self.etcd.range(&self.key("controller"), None).await?;
        revision = revision.min(rev);
        kvs.append(&mut found);
        crate::metrics::cluster_etcd_request(started.elapsed());
        let catalog_prefix = self.catalog.key_prefix().into_bytes();
        let catalog_kvs: Vec<Kv> = kvs
            .iter()
            .filter(|kv| kv.key.starts_with(&catalog_prefix))
            .cloned()
            .collect();
        self.catalog.load(revision, &catalog_kvs);
        let view = self.parse_view(revision, &kvs);
        // two reads at once (the poller and a Metadata request) publish in revision order
        self.view.send_if_modified(|old| {
            if view.revision < old.revision {
                return false;
            }
            if view.controller != old.controller {
                tracing::info!(controller = ?view.controller, "controller");
            }
            *old = Arc::new(view);
            true
        });
        Ok(())
    }

    /// The view, read again first if a leadership changed since it was read: what Metadata
    /// answers, so no node ever shows an older leader epoch than one any node showed before
    /// (falls back to the last view when etcd does not answer).
    pub async fn fresh_view(&self) -> Arc<View> {
        let v = self.view();
        match self.etcd.latest_mod_revision(&self.key("leaders/")).await {
            Ok(Some(rev)) if rev > v.leaders_rev => {
                if let Err(e) = self.poll_once().await {
                    tracing::debug!(error = %e, "reading the cluster state for Metadata failed");
                }
                self.view()
            }
            _ => v,
        }
    }

    fn parse_view(&self, revision: i64, kvs: &[Kv]) -> View {
        let nodes_prefix = self.key("nodes/");
        let leaders_prefix = self.key("leaders/");
        let moves_prefix = self.key("moves/");
        let assign_prefix = self.key("assign/");
        let controller = self.key("controller");
        let mut v = View {
            revision,
            ..View::default()
        };
        for kv in kvs {
            if let Some(rest) = kv.key.strip_prefix(nodes_prefix.as_slice()) {
                if let Ok(n) = serde_json::from_slice::<NodeInfo>(&kv.value) {
                    if String::from_utf8_lossy(rest) == n.id.to_string() {
                        v.node_revs.insert(n.id, kv.create_revision);
                        v.nodes.insert(n.id, n);
                    }
                }
            } else if let Some(rest) = kv.key.strip_prefix(leaders_prefix.as_slice()) {
                match (
                    partition_of(rest),
                    serde_json::from_slice::<Leadership>(&kv.value),
                ) {
                    (Some(tp), Ok(l)) => {
                        v.leaders_rev = v.leaders_rev.max(kv.mod_revision);
                        v.leaders.insert(tp, (l, kv.mod_revision));
                    }
                    _ => {
                        tracing::warn!(key = %String::from_utf8_lossy(&kv.key), "unreadable leadership key in etcd: ignored")
                    }
                }
            } else if let Some(rest) = kv.key.strip_prefix(moves_prefix.as_slice()) {
                let to = String::from_utf8_lossy(&kv.value).parse::<i32>().ok();
                if let (Some(tp), Some(to)) = (partition_of(rest), to) {
                    v.moves.insert(tp, (to, kv.mod_revision));
                }
            } else if let Some(rest) = kv.key.strip_prefix(assign_prefix.as_slice()) {
                let to = String::from_utf8_lossy(&kv.value).parse::<i32>().ok();
                if let (Some(tp), Some(to)) = (partition_of(rest), to) {
                    v.assigned.insert(tp, (to, kv.mod_revision));
                }
            } else if kv.key == controller {
                v.controller = String::from_utf8_lossy(&kv.value).parse().ok();
            }
        }
        v
    }

    /// Re-reads the prefix whenever etcd's revision moves.
    async fn watch(self: Arc<Self>, cancel: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = cancel.cancelled() => return,
            }
            let started = Instant::now();
            match self.etcd.revision().await {
                Ok(rev) => {
                    crate::metrics::cluster_etcd_request(started.elapsed());
                    if rev == self.view().revision {
                        continue;
                    }
                    if let Err(e) = self.poll_once().await {
                        crate::metrics::cluster_etcd_error("range");
                        tracing::warn!(error = %e, "reading the cluster state from etcd failed");
                    }
                }
                Err(e) => {
                    crate::metrics::cluster_etcd_error("revision");
                    tracing::warn!(error = %e, "etcd unreachable");
                }
            }
        }
    }

    /// Starts the lease renewal, the poller and the controller loop.
    pub fn start(
        self: &Arc<Self>,
        catalog: Arc<Catalog>,
        cancel: CancellationToken,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            tokio::spawn(self.clone().keep_alive(cancel.clone())),
            tokio::spawn(self.clone().watch(cancel.clone())),
            tokio::spawn(controller::run(self.clone(), catalog, cancel)),
        ]
    }

    /// Hands a partition this node leads (and no longer serves) to `to`, at the next epoch.
    /// Fails without effect if the leadership changed since `seen` (its key's revision).
    pub async fn hand_over(
        &self,
        topic: Uuid,
        partition: i32,
        from: Leadership,
        seen: i64,
        to: i32,
    ) -> Result<bool, ClusterError> {
        let key = self.leader_key(topic, partition);
        let next = Leadership {
            node: to,
            epoch: from.epoch + 1,
            previous: self.me.id,
        };
        let r = self
            .etcd
            .txn(
                &[Compare::ModRevision(key.clone(), seen)],
                &[
                    Op::Put {
                        key,
                        value: to_json(&next),
                        lease: 0,
                    },
                    Op::Delete(self.move_key(topic, partition)),
                ],
                &[],
            )
            .await?;
        if r.succeeded {
            crate::metrics::cluster_epoch_change();
            tracing::info!(%topic, partition, to, epoch = next.epoch, "handed the partition over");
        }
        Ok(r.succeeded)
    }

    /// Records that this node leads the partition at `epoch` from offset `start`, in the
    /// partition's leader-epoch history kept in etcd (`/epochs/<topic id>/<partition>`, the
    /// checkpoint's text), guarded by the leadership this node holds (`guard`: its key's
    /// revision). Returns the whole history, for the local checkpoint and OffsetForLeaderEpoch.
    pub async fn record_epoch(
        &self,
        topic: Uuid,
        partition: i32,
        epoch: i32,
        start: i64,
        guard: i64,
    ) -> Result<Vec<EpochEntry>, ClusterError> {
        let key = self.key(&format!("epochs/{topic}/{partition}"));
        for _ in 0..16 {
            let (_, kvs) = self.etcd.range(&key, None).await?;
            let (old, rev) = kvs.first().map_or((Vec::new(), 0), |kv| {
                (
                    epochs::decode(&kv.value).unwrap_or_default(),
                    kv.mod_revision,
                )
            });
            let next = epochs::begin(&old, epoch, start);
            let r = self
                .etcd
                .txn(
                    &[
                        Compare::ModRevision(key.clone(), rev),
                        Compare::ModRevision(self.leader_key(topic, partition), guard),
                    ],
                    &[Op::Put {
                        key: key.clone(),
                        value: epochs::encode(&next),
                        lease: 0,
                    }],
                    &[Op::Get(self.leader_key(topic, partition))],
                )
                .await?;
            if r.succeeded {
                return Ok(next);
            }
            if r.gets
                .first()
                .and_then(|g| g.first())
                .map(|kv| kv.mod_revision)
                != Some(guard)
            {
                return Err(ClusterError::Invalid(
                    "the partition's leadership changed while taking it over".into(),
                ));
            }
        }
        Err(ClusterError::Invalid(
            "recording the leader epoch kept losing races".into(),
        ))
    }

    /// Reserves `size` producer ids no node of the cluster has handed out: `[start, end)`.
    pub async fn reserve_producer_ids(&self, size: i64) -> Result<(i64, i64), ClusterError> {
        let key = self.key("producer-ids");
        for _ in 0..64 {
            let (_, kvs) = self.etcd.range(&key, None).await?;
            let (start, rev) = match kvs.first() {
                Some(kv) => (
                    String::from_utf8_lossy(&kv.value)
                        .parse::<i64>()
                        .map_err(|_| {
                            ClusterError::Invalid(format!(
                                "{} is not a number",
                                String::from_utf8_lossy(&kv.value)
                            ))
                        })?,
                    kv.mod_revision,
                ),
                None => (0, 0),
            };
            let end = start + size;
            let r = self
                .etcd
                .txn(
                    &[Compare::ModRevision(key.clone(), rev)],
                    &[Op::Put {
                        key: key.clone(),
                        value: end.to_string().into_bytes(),
                        lease: 0,
                    }],
                    &[],
                )
                .await?;
            if r.succeeded {
                return Ok((start, end));
            }
        }
        Err(ClusterError::Invalid(
            "reserving producer ids kept losing races".into(),
        ))
    }

    /// Leaves the cluster: hands every partition this node leads to the other live nodes
    /// (the caller stopped serving them), then ends the lease so the node key and, if this node
    /// was the controller, the controller key go at once.
    pub async fn leave(&self) {
        let view = self.view();
        let others: Vec<i32> = view
            .nodes
            .keys()
            .copied()
            .filter(|n| *n != self.me.id)
            .collect();
        if !others.is_empty() {
            let mut load: HashMap<i32, usize> = others.iter().map(|n| (*n, 0)).collect();
            for (l, _) in view.leaders.values() {
                if let Some(c) = load.get_mut(&l.node) {
                    *c += 1;
                }
            }
            let mine: Vec<_> = view
                .leaders
                .iter()
                .filter(|(_, (l, _))| l.node == self.me.id)
                .map(|(k, v)| (*k, *v))
                .collect();
            for ((t, p), (l, rev)) in mine {
                let Some((&to, _)) = load.iter().min_by_key(|(n, c)| (**c, **n)) else {
                    break;
                };
                match self.hand_over(t, p, l, rev, to).await {
                    Ok(true) => *load.entry(to).or_default() += 1,
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "handing partitions over at shutdown failed");
                        break;
                    }
                }
            }
        }
        let id = self.lease.lock().id;
        if let Err(e) = self.etcd.lease_revoke(id).await {
            tracing::warn!(error = %e, "ending the etcd lease failed: the node key expires with it");
        }
    }
}

/// `<topic id>/<partition>` (the end of a per-partition key).
pub(super) fn partition_of(rest: &[u8]) -> Option<(Uuid, i32)> {
    let rest = String::from_utf8_lossy(rest);
    let (t, p) = rest.split_once('/')?;
    Some((Uuid::parse_str(t).ok()?, p.parse::<i32>().ok()?))
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    // the cluster's own small structs: serializing them cannot fail
    serde_json::to_vec(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leadership_written_before_previous_existed_reads_as_none() {
        let l: Leadership = serde_json::from_slice(br#"{"node":2,"epoch":5}"#).unwrap();
        assert_eq!((l.node, l.epoch, l.previous), (2, 5, -1));
        let again: Leadership = serde_json::from_slice(&to_json(&l)).unwrap();
        assert_eq!(again, l);
    }
}
