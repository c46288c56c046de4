//! Cluster mode: makes the partitions this node serves follow their leadership in etcd.
//!
//! On every new view (and every half second) the node
//! 1. releases every partition it serves but no longer leads at the epoch it opened it with
//!    (another node took it, the topic went, the controller asked to move it, or this node's
//!    lease lapsed): appends and waiters get NOT_LEADER_OR_FOLLOWER, the files are synced;
//! 2. hands partitions marked `moving_to` another node over to it (after releasing them);
//! 3. opens every partition it leads and does not serve yet. Its local copy is used only if it
//!    belongs to the epoch chain that leads here: the copy's last epoch (from its
//!    `leader-epoch-checkpoint`) is the current epoch (a restart), or the one before when this
//!    node also led that one. Any other copy is from an epoch another node continued and is
//!    moved aside, and the partition starts from the bucket's manifest.

use crate::catalog::Catalog;
use crate::cluster::Cluster;
use crate::log::LogManager;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const RECHECK: Duration = Duration::from_millis(500);

/// Partitions this node serves: (topic id, partition) → (topic name, epoch it was opened at).
type Serving = HashMap<(Uuid, i32), (String, i32)>;

pub(super) async fn run(
    cluster: Arc<Cluster>,
    catalog: Arc<Catalog>,
    logs: Arc<LogManager>,
    cancel: CancellationToken,
) {
    let mut views = cluster.subscribe();
    let mut serving = Serving::new();
    loop {
        sync(&cluster, &catalog, &logs, &mut serving).await;
        tokio::select! {
            _ = views.changed() => {}
            _ = tokio::time::sleep(RECHECK) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

async fn sync(cluster: &Cluster, catalog: &Catalog, logs: &Arc<LogManager>, serving: &mut Serving) {
    let view = cluster.view();
    let me = cluster.node_id();
    let lease = cluster.lease_valid();
    catalog.set_live_nodes(view.nodes.len());
    let topics: HashMap<Uuid, crate::catalog::TopicMeta> =
        catalog.topics().into_iter().map(|t| (t.id, t)).collect();
    // 1. what this node must stop serving
    let stale: Vec<((Uuid, i32), (String, i32))> = serving
        .iter()
        .filter(|((t, p), (_, epoch))| {
            let exists = topics.get(t).is_some_and(|m| *p < m.partitions);
            let still = view
                .leaders
                .get(&(*t, *p))
                .is_some_and(|(l, _)| l.node == me && l.epoch == *epoch && l.moving_to.is_none());
            !(lease && exists && still)
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
    for ((t, p), (l, rev)) in mine {
        let Some(meta) = topics.get(&t).filter(|m| p < m.partitions) else {
            continue;
        };
        if let Some(to) = l.moving_to {
            if !serving.contains_key(&(t, p)) {
                if let Err(e) = cluster.hand_over(t, p, l, rev, to).await {
                    tracing::warn!(topic = %meta.name, partition = p, error = %e, "handing the partition over failed");
                }
            }
            continue;
        }
        if serving.contains_key(&(t, p)) {
            continue;
        }
        let local = logs.local_epochs(&meta.name, p).await;
        let last = local.as_ref().and_then(|e| e.last()).map(|e| e.epoch);
        let continues = last == Some(l.epoch) || (l.previous == me && last == Some(l.epoch - 1));
        if !continues {
            match logs.discard_local(&meta.name, p).await {
                Ok(true) => {
                    tracing::warn!(topic = %meta.name, partition = p, local_epoch = ?last, epoch = l.epoch, "the local copy is from an epoch another node continued: moved aside, starting from the bucket")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(topic = %meta.name, partition = p, error = %e, "cannot move a stale copy aside");
                    continue;
                }
            }
        }
        let opened = logs
            .open_partition(&meta.name, t, p, catalog.log_config(meta))
            .await;
        match opened {
            Ok(part) => {
                if let Err(e) = logs.begin_epoch(&part, l.epoch).await {
                    tracing::error!(topic = %meta.name, partition = p, error = %e, "recording the leader epoch failed: not serving the partition");
                    let _ = logs.release(&meta.name, p).await;
                    continue;
                }
                tracing::info!(topic = %meta.name, partition = p, epoch = l.epoch, log_end_offset = part.offsets().log_end_offset, "leading the partition");
                serving.insert((t, p), (meta.name.clone(), l.epoch));
            }
            Err(e) => {
                tracing::error!(topic = %meta.name, partition = p, error = %e, "opening the partition failed; retrying");
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
