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

use crate::catalog::Catalog;
use crate::catalog::TopicMeta;
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
        dyn std::future::Future<Output = (&'a TopicMeta, i32, Leadership, Result<i64, String>)>
            + Send
            + 'a,
    >,
>;

/// Partitions this node serves: (topic id, partition) → (topic name, epoch it was opened at).
type Serving = HashMap<(Uuid, i32), (String, i32)>;

pub(super) async fn run(
    cluster: Arc<Cluster>,
    catalog: Arc<Catalog>,
    logs: Arc<LogManager>,
    wal: Arc<Wal>,
    cancel: CancellationToken,
) {
    let mut views = cluster.subscribe();
    let mut serving = Serving::new();
    let mut tiered = HashMap::new();
    loop {
        sync(&cluster, &catalog, &logs, &wal, &mut serving, &mut tiered).await;
        tokio::select! {
            _ = views.changed() => {}
            _ = tokio::time::sleep(RECHECK) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

async fn sync(
    cluster: &Cluster,
    catalog: &Catalog,
    logs: &Arc<LogManager>,
    wal: &Arc<Wal>,
    serving: &mut Serving,
    tiered: &mut HashMap<(Uuid, i32), i64>,
) {
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
                let r = take_over(cluster, logs, catalog, meta, p, l, link, history).await;
                (meta, p, l, r)
            });
            taking.push(fut);
        }
        let mut taking = futures::stream::iter(taking).buffer_unordered(TAKE_OVERS);
        while let Some((meta, p, l, r)) = taking.next().await {
            match r {
                Ok(end) => {
                    tracing::info!(topic = %meta.name, partition = p, epoch = l.epoch, log_end_offset = end, "leading the partition");
                    serving.insert((meta.id, p), (meta.name.clone(), l.epoch));
                }
                Err(e) => {
                    tracing::error!(topic = %meta.name, partition = p, epoch = l.epoch, error = %e, "taking the partition over failed; retrying");
                }
            }
        }
    }
    publish_tiered(logs, wal, serving, tiered).await;
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
/// what the WAL committed beyond it, records the epoch and serves. Returns the log end.
#[allow(clippy::too_many_arguments)]
async fn take_over(
    cluster: &Cluster,
    logs: &Arc<LogManager>,
    catalog: &Catalog,
    meta: &TopicMeta,
    p: i32,
    l: Leadership,
    link: WalLink,
    committed: Vec<(String, crate::format::wal::WalEntry)>,
) -> Result<i64, String> {
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
    let config = catalog.log_config(meta);
    let mut part = load(logs, meta, p, config.clone()).await?;
    let committed_end = committed
        .last()
        .map(|(_, e)| e.last + 1)
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
    if let Err(e) = catch_up(&part, &link, &committed).await {
        let _ = part.close().await;
        return Err(e);
    }
    let end = part.offsets().log_end_offset;
    if let Some(want) = committed_end {
        if end < want {
            let _ = part.close().await;
            return Err(format!(
                "the log ends at {end} but the committed history reaches {want}: a gap between the bucket's manifest and the WAL"
            ));
        }
    }
    let history = match cluster
        .record_epoch(meta.id, p, l.epoch, end, link.guard)
        .await
    {
        Ok(h) => h,
        Err(e) => {
            let _ = part.close().await;
            return Err(format!("recording the leader epoch: {e}"));
        }
    };
    if let Err(e) = logs.write_epochs(&part, &history).await {
        let _ = part.close().await;
        return Err(format!("writing the leader-epoch checkpoint: {e}"));
    }
    link.wal.forget_fenced(meta.id, p);
    part.attach_wal(link);
    logs.serve(part);
    Ok(end)
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

/// Batches read from the bucket at once while catching up.
const CATCH_UP_READS: usize = 32;

/// Appends every committed WAL batch past the log end, in offset order (read from the bucket
/// [`CATCH_UP_READS`] at a time: one partition's batches are spread over many objects).
async fn catch_up(
    part: &Arc<Partition>,
    link: &WalLink,
    committed: &[(String, crate::format::wal::WalEntry)],
) -> Result<(), String> {
    let from = part.offsets().log_end_offset;
    let reads: Vec<_> = committed
        .iter()
        .filter(|(_, e)| e.last >= from)
        .map(|(object, e)| {
            let (wal, object, e) = (link.wal.clone(), object.clone(), *e);
            async move {
                wal.read(&object, &e)
                    .await
                    .map_err(|err| format!("reading WAL object {object}: {err}"))
            }
        })
        .collect();
    let total = reads.len();
    let mut reads = futures::stream::iter(reads)
        .buffered(CATCH_UP_READS)
        .chunks(CATCH_UP_READS);
    while let Some(chunk) = reads.next().await {
        let batches = chunk.into_iter().collect::<Result<Vec<_>, String>>()?;
        match part.append_committed(batches).await {
            Ok(()) => {}
            Err(LogError::InvalidRecord(m)) => return Err(m),
            Err(err) => return Err(format!("appending committed batches: {err}")),
        }
    }
    let replayed = total;
    if replayed > 0 {
        tracing::info!(topic = %part.topic, partition = part.index, batches = replayed, "caught up from the WAL");
    }
    Ok(())
}

/// Tells the cluster how far each partition this node serves is tiered, so WAL records the
/// manifests cover can go.
async fn publish_tiered(
    logs: &LogManager,
    wal: &Wal,
    serving: &Serving,
    published: &mut HashMap<(Uuid, i32), i64>,
) {
    published.retain(|k, _| serving.contains_key(k));
    for ((t, p), (name, _)) in serving {
        let Some(end) = logs
            .get(name, *p)
            .and_then(|part| part.remote().and_then(|r| r.uploaded_end()))
        else {
            continue;
        };
        if published.get(&(*t, *p)) != Some(&end) && wal.publish_tiered(*t, *p, end).await {
            published.insert((*t, *p), end);
        }
    }
}
