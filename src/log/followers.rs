//! Follower copies (cluster mode, KIP-392 fetch from the nearest node).
//!
//! Every node can read the bucket, so a node that does not lead a partition can still serve a
//! consumer in its rack: it keeps a *follower copy*, a local partition built the way a new
//! leader catches up (the manifest's segments are read from the bucket, then the tail chunks and
//! the WAL batches past them are appended at their own offsets) and kept current by appending
//! what the WAL commits from then on. A copy holds only committed batches, so its high
//! watermark trails the leader's by the WAL poll (about [`POLL`], or less: a fetch at its end
//! first waits for a fresh read, [`Followers::fresh`]) and never passes it; its last stable
//! offset and aborted transactions come from the markers it appended, as the leader's do.
//!
//! A copy is built on the first fetch that needs it and dropped when no consumer read it for
//! [`IDLE`], when it is [`MAX_AGE`] old (the next fetch builds it again from the manifest as it
//! is then: the leader's retention, DeleteRecords and uploads are seen at most that late, and
//! local disk holds at most that much of its tail), when this node comes to lead the partition
//! or the topic goes, and when a WAL batch it needs cannot be read or does not continue it.
//! Copies live in their own directory (emptied at start-up) and never upload or write a
//! manifest: the leader alone writes the partition's history.

use super::catch_up::{catch_up, replay_wal};
use super::{LogConfig, LogManager, Partition};
use crate::catalog::TopicMeta;
use crate::cluster::tail::Tails;
use crate::cluster::wal::Wal;
use crate::cluster::Cluster;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify, OnceCell};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How often the WAL is read for what copies lack.
pub const POLL: Duration = Duration::from_millis(100);
/// A copy no consumer read for this long is dropped.
pub const IDLE: Duration = Duration::from_secs(60);
/// A copy this old is dropped and built again on the next fetch.
pub const MAX_AGE: Duration = Duration::from_secs(600);

type Key = (Uuid, i32);

struct Copy {
    topic: String,
    built: OnceCell<Arc<Partition>>,
    /// The etcd revision the WAL records it has appended are as of.
    revision: AtomicI64,
    used: Mutex<Instant>,
    born: Instant,
    /// Being removed: it serves nothing more, and stays in the map until its files are gone,
    /// so the partition's next copy never meets them.
    closing: AtomicBool,
}

/// This node's follower copies.
pub struct Followers {
    cluster: Arc<Cluster>,
    wal: Arc<Wal>,
    tails: Tails,
    logs: Arc<LogManager>,
    copies: Mutex<HashMap<Key, Arc<Copy>>>,
    wake: Notify,
    /// The number of the last WAL read begun, and of the last one finished (its copies flushed).
    started: AtomicU64,
    finished: watch::Sender<u64>,
}

impl Followers {
    pub fn new(
        cluster: Arc<Cluster>,
        wal: Arc<Wal>,
        tails: Tails,
        logs: Arc<LogManager>,
    ) -> Arc<Followers> {
        Arc::new(Followers {
            cluster,
            wal,
            tails,
            logs,
            copies: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            started: AtomicU64::new(0),
            finished: watch::Sender::new(0),
        })
    }

    /// The copy of `meta`'s partition `p` to read from, built first if there is none (concurrent
    /// callers wait for the same build). `None` when it cannot be built now: the caller answers
    /// as a node without the partition (NOT_LEADER_OR_FOLLOWER) and the client reads from the
    /// leader.
    pub async fn serve(
        self: &Arc<Self>,
        meta: &TopicMeta,
        p: i32,
        config: LogConfig,
    ) -> Option<Arc<Partition>> {
        let key = (meta.id, p);
        let copy = self
            .copies
            .lock()
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Copy {
                    topic: meta.name.clone(),
                    built: OnceCell::new(),
                    revision: AtomicI64::new(0),
                    used: Mutex::new(Instant::now()),
                    born: Instant::now(),
                    closing: AtomicBool::new(false),
                })
            })
            .clone();
        if copy.closing.load(Ordering::Acquire) {
            return None;
        }
        *copy.used.lock() = Instant::now();
        let built = copy
            .built
            .get_or_try_init(|| self.build(&copy, meta, p, config))
            .await;
        match built {
            Ok(part) if !part.is_moved() => Some(part.clone()),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(topic = %meta.name, partition = p, error = %e, "building a follower copy failed: the leader serves the partition");
                self.forget(key, &copy);
                None
            }
        }
    }

    /// Waits (at most `limit`) for a read of the WAL that begins after this call, so the copies
    /// hold everything committed before it: a consumer at a copy's end is then told the end the
    /// leader would have told it, not one a poll old.
    pub async fn fresh(&self, limit: Duration) {
        let mut done = self.finished.subscribe();
        let after = self.started.load(Ordering::Acquire);
        self.wake.notify_one();
        let _ = tokio::time::timeout(limit, async {
            while *done.borrow_and_update() <= after {
                if done.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
    }

    async fn build(
        &self,
        copy: &Copy,
        meta: &TopicMeta,
        p: i32,
        config: LogConfig,
    ) -> Result<Arc<Partition>, String> {
        let started = Instant::now();
        // the WAL records first, then the chunks, then the manifest: each covers what the one
        // read before it may have lost since (records go once chunks or the manifest hold them;
        // chunks once the manifest does)
        let (revision, mut committed) = self
            .wal
            .committed_since(0)
            .await
            .map_err(|e| format!("reading the WAL records: {e}"))?;
        let chunks = self
            .tails
            .list(meta.id, p)
            .await
            .map_err(|e| format!("listing the tail chunks: {e}"))?;
        // a copy left by a crash of an earlier build is not trusted
        self.logs
            .discard_local(&meta.name, p)
            .await
            .map_err(|e| format!("clearing the copy's directory: {e}"))?;
        let part = self
            .logs
            .load_partition(&meta.name, meta.id, p, config)
            .await
            .map_err(|e| format!("opening the copy: {e}"))?;
        let history = committed.remove(&(meta.id, p)).unwrap_or_default();
        let res = async {
            catch_up(&part, &self.wal, &self.tails, &chunks, &history).await?;
            let floor = part.remote().map_or(0, |r| r.recorded_log_start());
            part.restore_log_start(floor)
                .await
                .map_err(|e| format!("applying the log start {floor}: {e}"))
        }
        .await;
        if let Err(e) = res {
            let _ = part.close().await;
            return Err(e);
        }
        copy.revision.store(revision, Ordering::Release);
        self.logs.serve(part.clone());
        let o = part.offsets();
        tracing::info!(topic = %meta.name, partition = p, log_start_offset = o.log_start_offset, log_end_offset = o.log_end_offset, ms = started.elapsed().as_millis() as u64, "follower copy built");
        Ok(part)
    }

    /// Removes `copy` and its files; until they are gone it stays in the map, closing (fetches
    /// answer NOT_LEADER_OR_FOLLOWER and go to the leader meanwhile).
    fn forget(self: &Arc<Self>, key: Key, copy: &Arc<Copy>) {
        if copy.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        let copy = copy.clone();
        tokio::spawn(async move {
            if copy.built.initialized() {
                let _ = me.logs.release(&copy.topic, key.1).await;
                if let Err(e) = me.logs.discard_local(&copy.topic, key.1).await {
                    tracing::warn!(topic = %copy.topic, partition = key.1, error = %e, "removing a follower copy failed");
                }
            }
            let mut copies = me.copies.lock();
            if copies.get(&key).is_some_and(|c| Arc::ptr_eq(c, &copy)) {
                copies.remove(&key);
            }
        });
    }

    /// Keeps the copies current until `cancel`: every [`POLL`] (or when poked), reads the WAL
    /// records committed since the oldest copy's revision and appends each copy's new batches;
    /// drops the copies that are idle, old, led here now, of a deleted topic, or broken.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = self.wake.notified() => {}
                _ = cancel.cancelled() => return,
            }
            self.tidy();
            self.poll().await;
        }
    }

    /// Drops the copies nobody needs any more.
    fn tidy(self: &Arc<Self>) {
        let view = self.cluster.view();
        let me = self.cluster.node_id();
        let now = Instant::now();
        let all: Vec<(Key, Arc<Copy>)> = self
            .copies
            .lock()
            .iter()
            .map(|(k, c)| (*k, c.clone()))
            .collect();
        for (key, copy) in &all {
            let why = match view.leaders.get(key) {
                None => Some("its topic is gone"),
                Some((l, _)) if l.node == me => Some("this node leads the partition now"),
                _ if now.duration_since(*copy.used.lock()) > IDLE => Some("no consumer reads it"),
                _ if now.duration_since(copy.born) > MAX_AGE => Some("it is due to be rebuilt"),
                _ => None,
            };
            if let Some(why) = why {
                if copy.built.initialized() {
                    tracing::info!(topic = %copy.topic, partition = key.1, "follower copy dropped: {why}");
                    self.forget(*key, copy);
                }
            }
        }
        crate::metrics::follower_copies(self.copies.lock().len());
    }

    /// One read of the WAL for every built copy.
    async fn poll(self: &Arc<Self>) {
        let round = self.started.fetch_add(1, Ordering::AcqRel) + 1;
        self.read_wal().await;
        self.finished.send_replace(round);
    }

    async fn read_wal(self: &Arc<Self>) {
        let ready: Vec<(Key, Arc<Copy>, Arc<Partition>)> = self
            .copies
            .lock()
            .iter()
            .filter(|(_, c)| !c.closing.load(Ordering::Acquire))
            .filter_map(|(k, c)| Some((*k, c.clone(), c.built.get()?.clone())))
            .collect();
        let Some(since) = ready
            .iter()
            .map(|(_, c, _)| c.revision.load(Ordering::Acquire))
            .min()
        else {
            return;
        };
        let (revision, committed) = match self.wal.committed_since(since + 1).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "reading the WAL records for follower copies failed; retrying");
                return;
            }
        };
        for (key, copy, part) in ready {
            if let Some(history) = committed.get(&key) {
                match replay_wal(&part, &self.wal, history).await {
                    // committed batches: visible at once, not after the flusher's interval
                    Ok((batches, _)) if batches > 0 => part.flush_once().await,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(topic = %copy.topic, partition = key.1, error = %e, "follower copy dropped: it cannot continue from the WAL");
                        self.forget(key, &copy);
                        continue;
                    }
                }
            }
            copy.revision.fetch_max(revision, Ordering::AcqRel);
        }
    }

    /// Stops every copy (at shutdown).
    pub async fn shutdown(&self) {
        self.copies.lock().clear();
        if let Err(e) = self.logs.shutdown().await {
            tracing::warn!(error = %e, "closing the follower copies failed");
        }
    }
}
