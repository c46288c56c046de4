//! The node's write-ahead log in the bucket: what makes an acknowledged record survive the loss
//! of the node that took it.
//!
//! Every batch a partition leader appends is also handed to [`Wal::submit`]. One committer task
//! takes everything queued, writes it as one create-only object ([`crate::format::wal`]) and
//! then commits the object in one etcd transaction guarded by this node's registration and by
//! each partition's leadership key as it was when the node began leading it. Only then is the
//! batch reported committed (the partition's high watermark, and with it acks=all, follows).
//! A node that lost its lease or a partition fails the guard and can never acknowledge: the
//! batch is reported fenced. While one commit is in flight the next batches queue, so the
//! number of objects and etcd writes follows the commit latency, not the request rate.
//!
//! The records stay until the partition's manifest or its tail chunks ([`super::tail`]) cover
//! them: leaders publish how far their partitions are held outside the WAL
//! (`<prefix>/tiered/<topic id>/<partition>`), and the controller deletes WAL objects and records
//! whose batches are all below that (or of deleted topics).

use super::Cluster;
use crate::backoff::Backoff;
use crate::etcd::{Compare, Op};
use crate::format::wal::{object_key, record_key, WalEntry, WalRecord};
use crate::tier::store::StoreError;
use crate::tier::Tier;
use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Partitions guarded by one etcd record (etcd allows 128 compares in a transaction).
const PARTITIONS_PER_RECORD: usize = 100;
/// How often the controller looks for WAL objects the bucket's manifests cover.
const GC_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, thiserror::Error)]
pub enum WalError {
    /// This node no longer leads the partition (or lost its lease): never acknowledged.
    #[error("fenced: this node no longer leads the partition")]
    Fenced,
}

/// A partition's tie to the WAL: where its batches go and what guards their commits.
#[derive(Clone)]
pub struct WalLink {
    pub wal: Arc<Wal>,
    pub topic: Uuid,
    pub partition: i32,
    pub epoch: i32,
    /// Modification revision of the partition's leadership key when this node began leading it.
    pub guard: i64,
}

/// Committed WAL batches by partition, each list in offset order with its object's key.
pub type Committed = HashMap<(Uuid, i32), Vec<(String, WalEntry)>>;

/// A partition of one commit: its leadership guard and which queued batches are its.
type Guarded = ((Uuid, i32), (i64, Vec<usize>));

/// Called once a submitted batch is committed (or fenced).
pub type Done = Box<dyn FnOnce(Result<(), WalError>) + Send>;

struct Pending {
    topic: Uuid,
    partition: i32,
    epoch: i32,
    guard: i64,
    base: i64,
    last: i64,
    data: Bytes,
    done: Done,
}

pub struct Wal {
    cluster: Arc<Cluster>,
    tier: Arc<Tier>,
    queue: Mutex<Vec<Pending>>,
    wake: Notify,
    /// Leaderships (topic, partition, guard) with a batch that was not committed: their later
    /// batches are fenced without trying, so a partition's committed batches never have a gap.
    fenced: Mutex<HashSet<(Uuid, i32, i64)>>,
}

impl Wal {
    pub fn new(cluster: Arc<Cluster>, tier: Arc<Tier>) -> Arc<Wal> {
        Arc::new(Wal {
            cluster,
            tier,
            queue: Mutex::new(Vec::new()),
            wake: Notify::new(),
            fenced: Mutex::new(HashSet::new()),
        })
    }

    /// Queues a batch (its stored bytes, offsets assigned) for the next commit. Never blocks.
    pub fn submit(&self, link: &WalLink, base: i64, last: i64, data: Bytes, done: Done) {
        self.queue.lock().push(Pending {
            topic: link.topic,
            partition: link.partition,
            epoch: link.epoch,
            guard: link.guard,
            base,
            last,
            data,
            done,
        });
        self.wake.notify_one();
    }

    /// The committer: one commit at a time, each taking everything queued.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = cancel.cancelled() => {
                    for p in std::mem::take(&mut *self.queue.lock()) {
                        (p.done)(Err(WalError::Fenced));
                    }
                    return;
                }
            }
            loop {
                let batch = std::mem::take(&mut *self.queue.lock());
                if batch.is_empty() {
                    break;
                }
                self.commit(batch, &cancel).await;
            }
        }
    }

    async fn commit(&self, batch: Vec<Pending>, cancel: &CancellationToken) {
        let started = Instant::now();
        let (mut batch, doomed): (Vec<Pending>, Vec<Pending>) = {
            let fenced = self.fenced.lock();
            batch
                .into_iter()
                .partition(|p| !fenced.contains(&(p.topic, p.partition, p.guard)))
        };
        fence_all(doomed);
        if batch.is_empty() {
            return;
        }
        // each partition's batches side by side: a take-over reads them in one range
        batch.sort_by_key(|p| (p.topic, p.partition, p.base));
        let node = self.cluster.node_id();
        let mut object = BytesMut::with_capacity(batch.iter().map(|p| p.data.len()).sum());
        let mut entries = Vec::with_capacity(batch.len());
        for p in &batch {
            entries.push(WalEntry {
                topic: p.topic,
                partition: p.partition,
                epoch: p.epoch,
                base: p.base,
                last: p.last,
                pos: object.len() as u64,
                len: p.data.len() as u64,
            });
            object.extend_from_slice(&p.data);
        }
        let key = object_key(node);
        let data = object.freeze();
        // a commit is tried only while the lease it started under is surely alive: a lapse
        // ends it, even if the lease is renewed meanwhile (etcd may even have kept it)
        let deadline = self.cluster.lease_deadline();
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        loop {
            match self.tier.store().put(&key, data.clone(), true).await {
                // the key is this commit's own: an attempt that timed out had written it
                Ok(()) | Err(StoreError::AlreadyExists(_)) => break,
                Err(e) => {
                    if Instant::now() >= deadline || cancel.is_cancelled() {
                        tracing::warn!(error = %e, "WAL object not written before the lease ran out");
                        return self.fence(batch);
                    }
                    tracing::warn!(error = %e, "writing a WAL object failed; retrying");
                    if !backoff.wait(cancel).await {
                        return self.fence(batch);
                    }
                }
            }
        }
        // one record per group of partitions, each guarded by those partitions' leadership
        let mut by_partition: BTreeMap<(Uuid, i32), (i64, Vec<usize>)> = BTreeMap::new();
        for (i, p) in batch.iter().enumerate() {
            by_partition
                .entry((p.topic, p.partition))
                .or_insert((p.guard, Vec::new()))
                .1
                .push(i);
        }
        let groups: Vec<Vec<Guarded>> = by_partition
            .into_iter()
            .collect::<Vec<_>>()
            .chunks(PARTITIONS_PER_RECORD)
            .map(<[_]>::to_vec)
            .collect();
        let mut outcome: Vec<bool> = vec![false; batch.len()];
        let mut committed_any = false;
        let mut uncertain = false;
        for (chunk, group) in groups.into_iter().enumerate() {
            let rkey = self.cluster.key(&record_key(&key, chunk));
            let (committed, unknown) = self
                .commit_record(rkey, &key, &entries, group.clone(), deadline, cancel)
                .await;
            uncertain |= unknown;
            for ((t, p), (guard, idx)) in group {
                let ok = committed.contains(&(t, p));
                committed_any |= ok;
                if !ok {
                    // nothing of this leadership may be committed after a batch that was not
                    self.fenced.lock().insert((t, p, guard));
                }
                for i in idx {
                    outcome[i] = ok;
                }
            }
        }
        crate::metrics::cluster_wal_commit(started.elapsed(), data.len());
        // an object no record names is garbage, unless an attempt whose answer was lost may
        // have committed one (then it stays: a record may name it)
        if !committed_any && !uncertain {
            let _ = self.tier.store().delete(&key).await;
        }
        for (p, ok) in batch.into_iter().zip(outcome) {
            (p.done)(if ok { Ok(()) } else { Err(WalError::Fenced) });
        }
    }

    /// Writes one WAL record for the batches of `group` whose partitions this node still leads
    /// (their leadership keys unchanged) while its registration holds; a partition whose guard
    /// fails is dropped from the record and the rest tried again. Retries while etcd is
    /// unreachable, until `deadline` (the lease the commit started under). Returns the
    /// partitions committed, and whether an attempt's outcome is unknown (its answer was lost:
    /// the record may be committed even though it is reported fenced).
    async fn commit_record(
        &self,
        key: Vec<u8>,
        object: &str,
        entries: &[WalEntry],
        mut group: Vec<Guarded>,
        deadline: Instant,
        cancel: &CancellationToken,
    ) -> (HashSet<(Uuid, i32)>, bool) {
        let mut unknown = false;
        let node = self.cluster.node_id();
        let node_key = self.cluster.node_key(node);
        let node_rev = self.cluster.lease.lock().node_rev;
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
        while !group.is_empty() {
            if Instant::now() >= deadline {
                tracing::warn!("WAL commit not written before the lease ran out");
                break;
            }
            let mut guards = vec![Compare::CreateRevision(node_key.clone(), node_rev)];
            let mut current = vec![Op::Get(node_key.clone())];
            let mut record = WalRecord {
                object: object.to_string(),
                entries: Vec::new(),
            };
            for ((t, p), (guard, idx)) in &group {
                let leader_key = self.cluster.leader_key(*t, *p);
                guards.push(Compare::ModRevision(leader_key.clone(), *guard));
                current.push(Op::Get(leader_key));
                record.entries.extend(idx.iter().map(|i| entries[*i]));
            }
            let put = Op::Put {
                key: key.clone(),
                value: super::to_json(&record),
                lease: 0,
            };
            match self.cluster.etcd.txn(&guards, &[put], &current).await {
                Ok(r) if r.succeeded => {
                    return (group.iter().map(|(tp, _)| *tp).collect(), unknown)
                }
                Ok(r) => {
                    let rev_of = |i: usize| {
                        r.gets
                            .get(i)
                            .and_then(|g| g.first())
                            .map_or(0, |kv| kv.mod_revision)
                    };
                    let node_now = r
                        .gets
                        .first()
                        .and_then(|g| g.first())
                        .map_or(0, |kv| kv.create_revision);
                    if node_now != node_rev {
                        tracing::warn!("a WAL commit was fenced: this node's registration is gone");
                        break;
                    }
                    let before = group.len();
                    let kept: Vec<Guarded> = group
                        .iter()
                        .enumerate()
                        .filter(|(i, (_, (guard, _)))| rev_of(i + 1) == *guard)
                        .map(|(_, g)| g.clone())
                        .collect();
                    for ((t, p), _) in group.iter().filter(|g| !kept.contains(g)) {
                        tracing::warn!(topic = %t, partition = p, "a WAL commit was fenced: another node leads the partition now");
                    }
                    group = kept;
                    if group.len() == before {
                        // the guards changed back and forth meanwhile: look again
                        if !backoff.wait(cancel).await {
                            break;
                        }
                    }
                }
                Err(e) => {
                    crate::metrics::cluster_etcd_error("wal");
                    unknown = true;
                    tracing::warn!(error = %e, "committing a WAL record failed; retrying");
                    if !backoff.wait(cancel).await {
                        break;
                    }
                }
            }
        }
        (HashSet::new(), unknown)
    }

    /// Fails batches for good: their leaderships commit nothing more.
    fn fence(&self, batch: Vec<Pending>) {
        {
            let mut fenced = self.fenced.lock();
            for p in &batch {
                fenced.insert((p.topic, p.partition, p.guard));
            }
        }
        fence_all(batch);
    }

    /// Forgets that a partition's earlier leadership was fenced (it is led again, under a new
    /// guard).
    pub fn forget_fenced(&self, topic: Uuid, partition: i32) {
        self.fenced
            .lock()
            .retain(|(t, p, _)| (*t, *p) != (topic, partition));
    }

    /// Every committed WAL batch of every partition, in offset order, with its object's key.
    pub async fn committed_all(&self) -> Result<Committed, super::ClusterError> {
        Ok(self.committed_since(0).await?.1)
    }

    /// As [`Wal::committed_all`], only the records committed at etcd revision `revision` or
    /// later (all of them for 0), with the revision the answer is as of: a reader that asks
    /// again from one past it misses no commit.
    pub async fn committed_since(
        &self,
        revision: i64,
    ) -> Result<(i64, Committed), super::ClusterError> {
        let prefix = self.cluster.key("wal/");
        let (at, kvs) = match revision {
            r if r <= 0 => self.cluster.etcd.range_prefix(&prefix).await?,
            r => self.cluster.etcd.range_prefix_since(&prefix, r).await?,
        };
        let mut out: Committed = HashMap::new();
        for kv in kvs {
            let Ok(r) = serde_json::from_slice::<WalRecord>(&kv.value) else {
                tracing::error!(key = %String::from_utf8_lossy(&kv.key), "unreadable WAL record: ignored");
                continue;
            };
            for e in r.entries {
                out.entry((e.topic, e.partition))
                    .or_default()
                    .push((r.object.clone(), e));
            }
        }
        for v in out.values_mut() {
            v.sort_by_key(|(_, e)| e.base);
        }
        Ok((at, out))
    }

    /// Bytes of a WAL object (one committed batch, or adjacent ones).
    pub async fn read_range(
        &self,
        object: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, crate::tier::store::StoreError> {
        self.tier.store().get_range(object, range).await
    }

    /// Publishes how far a partition this node leads is in the bucket's manifest.
    pub async fn publish_tiered(&self, topic: Uuid, partition: i32, end: i64) -> bool {
        let key = self.cluster.key(&format!("tiered/{topic}/{partition}"));
        self.cluster
            .etcd
            .txn(
                &[],
                &[Op::Put {
                    key,
                    value: end.to_string().into_bytes(),
                    lease: 0,
                }],
                &[],
            )
            .await
            .is_ok()
    }

    /// The controller's sweep: every WAL record whose batches the manifests and tail chunks
    /// cover (or whose topics are gone) is deleted with its object; so are the tiering marks,
    /// tail chunks and leader-epoch histories of deleted topics.
    pub async fn collect(&self, live_topics: &HashSet<Uuid>) -> Result<usize, super::ClusterError> {
        let etcd = &self.cluster.etcd;
        let (_, tiered) = etcd.range_prefix(&self.cluster.key("tiered/")).await?;
        let tiered_prefix = self.cluster.key("tiered/");
        let mut ends: HashMap<(Uuid, i32), i64> = HashMap::new();
        let mut deleted_topics = HashSet::new();
        for kv in &tiered {
            let parsed = kv
                .key
                .strip_prefix(tiered_prefix.as_slice())
                .and_then(super::partition_of);
            let end = String::from_utf8_lossy(&kv.value).parse::<i64>().ok();
            if let (Some(tp), Some(end)) = (parsed, end) {
                if live_topics.contains(&tp.0) {
                    ends.insert(tp, end);
                } else {
                    deleted_topics.insert(tp.0);
                    let _ = etcd.txn(&[], &[Op::Delete(kv.key.clone())], &[]).await;
                }
            }
        }
        let tails = super::tail::Tails::new(self.tier.clone());
        for t in deleted_topics {
            if let Err(e) = tails.delete_topic(t).await {
                tracing::warn!(topic_id = %t, error = %e, "deleting the tail chunks of a deleted topic failed");
            }
        }
        // leader-epoch histories of deleted topics
        let epochs_prefix = self.cluster.key("epochs/");
        let (_, histories) = etcd.range_prefix(&epochs_prefix).await?;
        for kv in histories {
            let topic = kv
                .key
                .strip_prefix(epochs_prefix.as_slice())
                .and_then(super::partition_of);
            if topic.is_some_and(|(t, _)| !live_topics.contains(&t)) {
                let _ = etcd.txn(&[], &[Op::Delete(kv.key.clone())], &[]).await;
            }
        }
        let (_, records) = etcd.range_prefix(&self.cluster.key("wal/")).await?;
        let mut removed = 0;
        for kv in records {
            let Ok(r) = serde_json::from_slice::<WalRecord>(&kv.value) else {
                continue;
            };
            let covered = r.entries.iter().all(|e| {
                !live_topics.contains(&e.topic)
                    || ends
                        .get(&(e.topic, e.partition))
                        .is_some_and(|end| *end > e.last)
            });
            if !covered {
                continue;
            }
            let gone = etcd
                .txn(
                    &[Compare::ModRevision(kv.key.clone(), kv.mod_revision)],
                    &[Op::Delete(kv.key.clone())],
                    &[],
                )
                .await?;
            if gone.succeeded {
                // other records (other groups of the same object) may still name it: the
                // object goes when none does
                removed += 1;
                let others = self.object_still_named(&r.object).await?;
                if !others {
                    if let Err(e) = self.tier.store().delete(&r.object).await {
                        tracing::warn!(object = %r.object, error = %e, "deleting a WAL object failed");
                    }
                }
            }
        }
        Ok(removed)
    }

    async fn object_still_named(&self, object: &str) -> Result<bool, super::ClusterError> {
        let (_, kvs) = self
            .cluster
            .etcd
            .range_prefix(&self.cluster.key(&format!("{object}-")))
            .await?;
        Ok(!kvs.is_empty())
    }

    /// Runs [`Wal::collect`] while this node is the controller.
    pub async fn run_collector(
        self: Arc<Self>,
        catalog: Arc<crate::catalog::Catalog>,
        cancel: CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(GC_EVERY) => {}
                _ = cancel.cancelled() => return,
            }
            let me = self.cluster.node_id();
            if self.cluster.view().controller != Some(me) || !self.cluster.lease_valid() {
                continue;
            }
            let live: HashSet<Uuid> = catalog.topics().iter().map(|t| t.id).collect();
            match self.collect(&live).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(
                    records = n,
                    "WAL records the bucket's manifests cover removed"
                ),
                Err(e) => tracing::warn!(error = %e, "collecting WAL records failed"),
            }
        }
    }
}

fn fence_all(batch: Vec<Pending>) {
    for p in batch {
        (p.done)(Err(WalError::Fenced));
    }
}
