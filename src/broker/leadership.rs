//! Cluster mode: makes the partitions this node serves follow their leadership in etcd.
//!
//! On every new view (and every half second) the node
//! 1. releases every partition it serves but no longer leads at the epoch it opened it with
//!    (another node took it, the topic went, the controller asked to move it, or this node's
//!    lease lapsed): appends and waiters get NOT_LEADER_OR_FOLLOWER, the files are synced;
//! 2. hands partitions the controller asked to move (`/moves/`) to their target (after
//!    releasing them);
//! 3. opens every partition it leads and does not serve yet. Its local copy is used only if it
//!    belongs to the epoch chain that leads here: the copy's last epoch (from its
//!    `leader-epoch-checkpoint`) is the current epoch (a restart), or the one before when this
//!    node also led that one. Any other copy is from an epoch another node continued and is
//!    moved aside, and the partition starts from the bucket's manifest.

use super::tails::{self, TailState};
use crate::catalog::Catalog;
use crate::catalog::TopicMeta;
use crate::cluster::tail::Tails;
use crate::cluster::wal::{Wal, WalLink};
use crate::cluster::{Cluster, Leadership};
use crate::log::{LogError, LogManager, Partition};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const RECHECK: Duration = Duration::from_millis(500);
/// Partitions taken over at once.
const TAKE_OVERS: usize = 8;

type TakeOver<'a> = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = (&'a TopicMeta, i32, Leadership, Result<TailState, String>),
            > + Send
            + 'a,
    >,
>;

/// Partitions this node serves: (topic id, partition) → (topic name, epoch it was opened at).
type Serving = HashMap<(Uuid, i32), (String, i32)>;

/// How much of a partition only the WAL may hold: past either bound its active segment is
/// rolled and tiered, so the manifest soon covers it and a take-over replays at most this much.
#[derive(Debug, Clone, Copy)]
pub(super) struct TailBound {
    pub max_age_ms: i64,
    pub max_bytes: u64,
}

pub(super) async fn run(
    cluster: Arc<Cluster>,
    catalog: Arc<Catalog>,
    logs: Arc<LogManager>,
    wal: Arc<Wal>,
    tails: Arc<Tails>,
    tail: TailBound,
    cancel: CancellationToken,
) {
    let mut views = cluster.subscribe();
    let mut serving = Serving::new();
    let mut states = HashMap::new();
    let mut tiered = HashMap::new();
    loop {
        let node = Node {
            cluster: &cluster,
            catalog: &catalog,
            logs: &logs,
            wal: &wal,
            tails: &tails,
        };
        sync(node, &mut serving, &mut states).await;
        roll_due(&logs, &serving, tail).await;
        tails::keep(&logs, &tails, &serving, &mut states).await;
        publish_tiered(&wal, &serving, &states, &mut tiered).await;
        tokio::select! {
            _ = views.changed() => {}
            _ = tokio::time::sleep(RECHECK) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

/// What the leadership driver works with.
#[derive(Clone, Copy)]
struct Node<'a> {
    cluster: &'a Cluster,
    catalog: &'a Catalog,
    logs: &'a Arc<LogManager>,
    wal: &'a Arc<Wal>,
    tails: &'a Tails,
}

async fn sync(node: Node<'_>, serving: &mut Serving, states: &mut HashMap<(Uuid, i32), TailState>) {
    let Node {
        cluster,
        catalog,
        logs,
        wal,
        ..
    } = node;
    let view = cluster.view();
    let me = cluster.node_id();
    let lease = cluster.lease_valid();
    catalog.set_live_nodes(view.nodes.len());
    let topics: HashMap<Uuid, TopicMeta> =
        catalog.topics().into_iter().map(|t| (t.id, t)).collect();
    // 1. what this node must stop serving
    let stale: Vec<((Uuid, i32), (String, i32))> = serving
        .iter()
        .filter(|((t, p), (name, epoch))| {
            let exists = topics.get(t).is_some_and(|m| *p < m.partitions);
            // a fenced WAL commit stopped it: taken over again from what was committed
            let fenced = logs.get(name, *p).is_none_or(|part| part.is_moved());
            let still = view
                .leaders
                .get(&(*t, *p))
                .is_some_and(|(l, _)| l.node == me && l.epoch == *epoch)
                && !view.moves.contains_key(&(*t, *p));
            !(lease && exists && still) || fenced
        })
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    for ((t, p), (name, epoch)) in stale {
        serving.remove(&(t, p));
        let gone = !topics.contains_key(&t);
        let r = if gone {
            logs.delete_topic(&name).await
        } else {
            logs.release(&name, p).await
        };
        match r {
            Ok(()) if gone => {
                tracing::info!(topic = %name, "topic deleted: its partitions here are removed")
            }
            Ok(()) => {
                tracing::info!(topic = %name, partition = p, epoch, "no longer leading the partition")
            }
            Err(e) => {
                tracing::error!(topic = %name, partition = p, error = %e, "releasing the partition failed")
            }
        }
    }
    if !lease {
        crate::metrics::cluster_partitions(0, view.nodes.len());
        return;
    }
    // 2. and 3.
    let mut mine: Vec<_> = view
        .leaders
        .iter()
        .filter(|(_, (l, _))| l.node == me)
        .map(|(k, v)| (*k, *v))
        .collect();
    mine.sort_unstable_by_key(|(k, _)| *k);
    let mut gained = Vec::new();
    for ((t, p), (l, rev)) in mine {
        let Some(meta) = topics.get(&t).filter(|m| p < m.partitions) else {
            continue;
        };
        if let Some((to, _)) = view.moves.get(&(t, p)).copied() {
            if !serving.contains_key(&(t, p)) {
                if let Err(e) = cluster.hand_over(t, p, l, rev, to).await {
                    tracing::warn!(topic = %meta.name, partition = p, error = %e, "handing the partition over failed");
                }
            }
            continue;
        }
        if !serving.contains_key(&(t, p)) {
            gained.push((meta, p, l, rev));
        }
    }
    if !gained.is_empty() {
        // one read of the WAL records for every partition gained, then the take-overs at once
        let mut committed = match wal.committed_all().await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "reading the WAL records failed; retrying");
                return;
            }
        };
        let mut taking = Vec::with_capacity(gained.len());
        for (meta, p, l, rev) in gained {
            let link = WalLink {
                wal: wal.clone(),
                topic: meta.id,
                partition: p,
                epoch: l.epoch,
                guard: rev,
            };
            let history = committed.remove(&(meta.id, p)).unwrap_or_default();
            let fut: TakeOver<'_> = Box::pin(async move {
                let r = take_over(node, meta, p, l, link, history).await;
                (meta, p, l, r)
            });
            taking.push(fut);
        }
        let mut taking = futures::stream::iter(taking).buffer_unordered(TAKE_OVERS);
        while let Some((meta, p, l, r)) = taking.next().await {
            match r {
                Ok(st) => {
                    let end = logs
                        .get(&meta.name, p)
                        .map(|part| part.offsets().log_end_offset);
                    tracing::info!(topic = %meta.name, partition = p, epoch = l.epoch, log_end_offset = ?end, "leading the partition");
                    serving.insert((meta.id, p), (meta.name.clone(), l.epoch));
                    states.insert((meta.id, p), st);
                }
                Err(e) => {
                    tracing::error!(topic = %meta.name, partition = p, epoch = l.epoch, error = %e, "taking the partition over failed; retrying");
                }
            }
        }
    }
    crate::metrics::cluster_partitions(serving.len(), view.nodes.len());
}

/// Controlled shutdown: stops serving every partition, hands them to the other live nodes and
/// ends this node's lease.
pub(super) async fn leave(cluster: &Cluster, logs: &LogManager) {
    for p in logs.all() {
        if let Err(e) = logs.release(&p.topic, p.index).await {
            tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "closing the partition failed");
        }
    }
    cluster.leave().await;
    tracing::info!("left the cluster: partitions handed over");
}

/// Makes this node the partition's leader: loads its local copy if that belongs to the epoch
/// chain that leads here (else moves it aside and starts from the bucket's manifest), appends
/// what the tail chunks and the WAL committed beyond it, records the epoch and serves.
async fn take_over(
    node: Node<'_>,
    meta: &TopicMeta,
    p: i32,
    l: Leadership,
    link: WalLink,
    committed: Vec<(String, crate::format::wal::WalEntry)>,
) -> Result<TailState, String> {
    let Node {
        cluster,
        catalog,
        logs,
        tails,
        ..
    } = node;
    let me = cluster.node_id();
    let local = logs.local_epochs(&meta.name, p).await;
    let last = local.as_ref().and_then(|e| e.last()).map(|e| e.epoch);
    let continues = last == Some(l.epoch) || (l.previous == me && last == Some(l.epoch - 1));
    if !continues {
        discard(
            logs,
            meta,
            p,
            format!("its last epoch {last:?} is not in the chain to {}", l.epoch),
        )
        .await?;
    }
    let chunks = tails
        .list(meta.id, p)
        .await
        .map_err(|e| format!("listing the tail chunks: {e}"))?;
    let config = catalog.log_config(meta);
    let mut part = load(logs, meta, p, config.clone()).await?;
    let committed_end = committed
        .last()
        .map(|(_, e)| e.last + 1)
        .max(chunks.iter().map(|c| c.end).max())
        .max(part.remote().and_then(|r| r.uploaded_end()));
    if let Some(end) = committed_end {
        if part.offsets().log_end_offset > end {
            // written here but never committed (not acknowledged): the committed history wins
            let _ = part.close().await;
            drop(part);
            discard(
                logs,
                meta,
                p,
                format!("it holds uncommitted records past {end}"),
            )
            .await?;
            part = load(logs, meta, p, config).await?;
        }
    }
    let res = async {
        crate::log::catch_up::catch_up(&part, &link.wal, tails, &chunks, &committed).await?;
        let end = part.offsets().log_end_offset;
        if let Some(want) = committed_end.filter(|w| end < *w) {
            return Err(format!(
                "the log ends at {end} but the committed history reaches {want}: a gap between the bucket's manifest, the tail chunks and the WAL"
            ));
        }
        let history = cluster
            .record_epoch(meta.id, p, l.epoch, end, link.guard)
            .await
            .map_err(|e| format!("recording the leader epoch: {e}"))?;
        logs.write_epochs(&part, &history)
            .await
            .map_err(|e| format!("writing the leader-epoch checkpoint: {e}"))
    }
    .await;
    if let Err(e) = res {
        let _ = part.close().await;
        return Err(e);
    }
    link.wal.forget_fenced(meta.id, p);
    part.attach_wal(link);
    // a DeleteRecords past the manifest's segments holds for the new leader too
    let floor = part.remote().map_or(0, |r| r.recorded_log_start());
    if let Err(e) = part.restore_log_start(floor).await {
        let _ = part.close().await;
        return Err(format!("applying the log start {floor}: {e}"));
    }
    let st = TailState::after_take_over(&part, chunks);
    logs.serve(part);
    Ok(st)
}

async fn load(
    logs: &Arc<LogManager>,
    meta: &TopicMeta,
    p: i32,
    config: crate::log::LogConfig,
) -> Result<Arc<Partition>, String> {
    logs.load_partition(&meta.name, meta.id, p, config)
        .await
        .map_err(|e| format!("opening the partition: {e}"))
}

async fn discard(
    logs: &Arc<LogManager>,
    meta: &TopicMeta,
    p: i32,
    why: String,
) -> Result<(), String> {
    match logs.discard_local(&meta.name, p).await {
        Ok(true) => {
            tracing::warn!(topic = %meta.name, partition = p, "local copy moved aside: {why}");
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(e) => Err(format!("moving the local copy aside: {e}")),
    }
}

/// Rolls the active segment of every partition served whose WAL-only tail passed the bound.
async fn roll_due(logs: &LogManager, serving: &Serving, tail: TailBound) {
    for ((_, p), (name, _)) in serving {
        let Some(part) = logs.get(name, *p) else {
            continue;
        };
        match part.roll_if_due(tail.max_age_ms, tail.max_bytes).await {
            Ok(true) => {
                tracing::debug!(topic = %name, partition = p, "segment rolled to bound the WAL tail")
            }
            Ok(false) | Err(LogError::NotLeader) | Err(LogError::Offline) => {}
            Err(e) => {
                tracing::warn!(topic = %name, partition = p, error = %e, "rolling the segment failed")
            }
        }
    }
}

/// Tells the cluster how far each partition this node serves is held outside the WAL (its
/// manifest and tail chunks), so the WAL records below can go.
async fn publish_tiered(
    wal: &Wal,
    serving: &Serving,
    states: &HashMap<(Uuid, i32), TailState>,
    published: &mut HashMap<(Uuid, i32), i64>,
) {
    published.retain(|k, _| serving.contains_key(k));
    for (k, st) in states {
        if published.get(k) != Some(&st.end) && wal.publish_tiered(k.0, k.1, st.end).await {
            published.insert(*k, st.end);
        }
    }
}
