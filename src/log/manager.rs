//! All partitions of this broker: opening them at start-up (recovering after a crash),
//! creating and deleting them, their flushers, the cleaner and retention tasks, and the clean
//! shutdown that lets the next start read no log data. Every file-system call goes through the
//! shared I/O executor ([`Io`]).

use super::error::LogError;
use super::io::Io;
use super::partition::Partition;
use super::results::AppendInfo;
use super::validate::Prepared;
use crate::backoff::Backoff;
use crate::clock::SharedClock;
use crate::config::LogConfig;
use crate::format::epochs::{self, EpochEntry};
use crate::format::{partition_dir_name, CLEAN_SHUTDOWN_FILE, DELETE_SUFFIX, LEADER_EPOCH_FILE};
use crate::fs::{write_atomic, Durable};
use crate::tier::Tier;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

pub type TopicPartition = (String, i32);

/// File-system calls of the log running at once.
const IO_CONCURRENCY: usize = 64;

/// All partitions of this broker, their flushers and the retention and cleaner tasks.
pub struct LogManager {
    data_dir: PathBuf,
    clock: SharedClock,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    flush_interval: Duration,
    cancel: CancellationToken,
    tasks: TaskTracker,
    /// The last stop was not clean: partitions recover what was written after their recovery
    /// point.
    recover: bool,
    tier: Option<Arc<Tier>>,
    /// Where every file-system call of the log runs.
    io: Io,
    /// Holds read-only copies of partitions other nodes lead (a cluster's follower copies):
    /// their remote logs only read the bucket.
    copies: bool,
}

impl LogManager {
    /// Prepares the data dir. Consumes the clean-shutdown marker: from here on, a crash means
    /// the next start recovers. Finishes deletions a crash interrupted.
    pub async fn open(
        data_dir: &Path,
        clock: SharedClock,
        flush_interval: Duration,
        tier: Option<Arc<Tier>>,
    ) -> Result<LogManager, LogError> {
        let io = Io::new(IO_CONCURRENCY);
        let dir = data_dir.to_owned();
        let clean = io
            .run(move || {
                crate::fs::create_dir_durable(&dir)?;
                let marker = dir.join(CLEAN_SHUTDOWN_FILE);
                let clean = marker.exists();
                if clean {
                    std::fs::remove_file(&marker)?;
                    crate::fs::sync_dir(&dir)?;
                }
                for entry in std::fs::read_dir(&dir)? {
                    let entry = entry?;
                    if entry.file_name().to_string_lossy().ends_with(DELETE_SUFFIX) {
                        let _ = std::fs::remove_dir_all(entry.path());
                    }
                }
                Ok(clean)
            })
            .await?;
        if !clean {
            tracing::info!(data_dir = %data_dir.display(), "no clean-shutdown marker: recovering partitions");
        }
        Ok(LogManager {
            data_dir: data_dir.to_owned(),
            clock,
            partitions: RwLock::new(HashMap::new()),
            flush_interval,
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
            recover: !clean,
            tier,
            io,
            copies: false,
        })
    }

    /// A manager for copies of partitions other nodes lead (cluster mode, KIP-392 follower
    /// reads) in `dir`, which is emptied first: a copy is rebuilt from the bucket whenever it is
    /// needed, so nothing in it outlives the process. Its partitions read their remote history
    /// but never upload or write a manifest; it runs no retention or cleaner.
    pub async fn open_copies(
        dir: &Path,
        clock: SharedClock,
        flush_interval: Duration,
        tier: Arc<Tier>,
    ) -> Result<LogManager, LogError> {
        let io = Io::new(IO_CONCURRENCY);
        let d = dir.to_owned();
        io.run(move || {
            if d.exists() {
                std::fs::remove_dir_all(&d)?;
            }
            crate::fs::create_dir_durable(&d)?;
            Ok(())
        })
        .await?;
        Ok(LogManager {
            data_dir: dir.to_owned(),
            clock,
            partitions: RwLock::new(HashMap::new()),
            flush_interval,
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
            recover: false,
            tier: Some(tier),
            io,
            copies: true,
        })
    }

    pub fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.data_dir.join(partition_dir_name(topic, partition))
    }

    pub fn tier(&self) -> Option<&Arc<Tier>> {
        self.tier.as_ref()
    }

    /// Total and available bytes of the data dir's file system (`None` when unknown).
    pub async fn disk_space(&self) -> Option<(u64, u64)> {
        let dir = self.data_dir.clone();
        self.io
            .run(move || Ok(crate::fs::disk_space(&dir)))
            .await
            .ok()
            .flatten()
    }

    /// Opens an existing partition at start-up (recovering it after an unclean stop). A tiered
    /// partition first loads its remote manifest, so a lost disk continues from the bucket.
    pub async fn open_partition(
        &self,
        topic: &str,
        topic_id: Uuid,
        partition: i32,
        config: LogConfig,
    ) -> Result<Arc<Partition>, LogError> {
        let p = self
            .load_partition(topic, topic_id, partition, config)
            .await?;
        self.register(p.clone());
        Ok(p)
    }

    /// As [`LogManager::open_partition`] without serving it yet (cluster mode: a new leader
    /// catches up from the WAL first, then [`LogManager::serve`]s it).
    pub async fn load_partition(
        &self,
        topic: &str,
        topic_id: Uuid,
        partition: i32,
        config: LogConfig,
    ) -> Result<Arc<Partition>, LogError> {
        let dir = self.partition_dir(topic, partition);
        let mut attach_later = None;
        let remote = match &self.tier {
            Some(t) if config.remote_storage_enable && self.copies => Some(
                t.open_partition_read_only(topic, topic_id, partition)
                    .await?,
            ),
            Some(t) if config.remote_storage_enable => {
                match t.open_partition(topic, topic_id, partition).await {
                    Ok(r) => Some(r),
                    // with local data the partition can serve without its remote history for
                    // now; with none, its offsets would restart where the bucket may have data
                    Err(e) if self.has_segments(&dir).await => {
                        tracing::error!(topic, partition, error = %e, "remote manifest unavailable: serving local data, attaching the remote log when the object store answers");
                        attach_later = Some(t.clone());
                        None
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            _ => None,
        };
        let p = Partition::open_on(
            self.io.clone(),
            topic,
            partition,
            dir,
            config,
            self.clock.clone(),
            self.recover,
            remote,
        )
        .await?;
        if let Some(tier) = attach_later {
            self.tasks.spawn(attach_when_reachable(
                tier,
                p.clone(),
                topic_id,
                self.cancel.child_token(),
            ));
        }
        Ok(p)
    }

    async fn has_segments(&self, dir: &Path) -> bool {
        let dir = dir.to_owned();
        self.io
            .run(move || {
                Ok(std::fs::read_dir(&dir)
                    .map(|entries| {
                        entries
                            .filter_map(Result::ok)
                            .any(|e| e.file_name().to_string_lossy().ends_with(".log"))
                    })
                    .unwrap_or(false))
            })
            .await
            .unwrap_or(false)
    }

    /// Creates a brand-new partition. A directory left over from an earlier topic of the same
    /// name is moved aside first so its data can never reappear. Nothing is fsynced here: the
    /// partition's first flush makes its directory durable, before anything in it is
    /// acknowledged, so creating thousands of partitions costs no disk round trip each.
    pub async fn create_partition(
        self: &Arc<Self>,
        topic: &str,
        topic_id: Uuid,
        partition: i32,
        config: LogConfig,
    ) -> Result<Arc<Partition>, LogError> {
        let remote = match &self.tier {
            Some(t) if config.remote_storage_enable => {
                Some(t.new_partition(topic, topic_id, partition))
            }
            _ => None,
        };
        let dir = self.partition_dir(topic, partition);
        let (me, old) = (self.clone(), dir.clone());
        let discarded = self
            .io
            .run(move || match old.exists() {
                true => Ok(Some(me.discard_dir(&old)?)),
                false => Ok(None),
            })
            .await?;
        self.remove_later(discarded.into_iter().collect());
        let p = Partition::open_on(
            self.io.clone(),
            topic,
            partition,
            dir,
            config,
            self.clock.clone(),
            false,
            remote,
        )
        .await?;
        self.register(p.clone());
        Ok(p)
    }

    /// Serves a partition loaded with [`LogManager::load_partition`].
    pub fn serve(&self, p: Arc<Partition>) {
        self.register(p)
    }

    fn register(&self, p: Arc<Partition>) {
        let key = (p.topic.clone(), p.index);
        self.tasks.spawn(
            p.clone()
                .run_flusher(self.flush_interval, self.cancel.child_token()),
        );
        self.partitions.write().insert(key, p);
    }

    /// Appends prepared batches to their partitions, in order, in one trip to the I/O
    /// executor (a produce request's partitions): each succeeds or fails on its own, and the
    /// answer comes as soon as they are written. With `sync` (acks=all), the same thread then
    /// syncs the first partition written and asks the others' flushers to sync theirs (group
    /// commit: [`Partition::sync_after_append`]), so waiting for durability
    /// ([`Partition::wait_synced`]) needs no further hand-off for that partition.
    pub async fn append_all(
        &self,
        batches: Vec<(Arc<Partition>, Prepared)>,
        sync: bool,
    ) -> Vec<Result<AppendInfo, LogError>> {
        let n = batches.len();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let started = self
            .io
            .start(move || {
                let mut written: Vec<Arc<Partition>> = Vec::new();
                let results: Vec<_> = batches
                    .into_iter()
                    .map(|(p, b)| {
                        let r = p.append_prepared(b);
                        if sync && r.is_ok() {
                            written.push(p);
                        }
                        r
                    })
                    .collect();
                let _ = tx.send(results);
                // one partition is synced here; the others' flushers sync theirs meanwhile
                // (one after the other here would add their syncs' times up)
                let mut written = written.into_iter();
                if let Some(first) = written.next() {
                    written
                        .filter(|p| !Arc::ptr_eq(p, &first))
                        .for_each(|p| p.request_sync());
                    if first.sync_after_append() > 0 {
                        first.schedule_uploads();
                    }
                }
            })
            .await;
        let res = match started {
            Ok(()) => rx.await.map_err(|_| {
                LogError::Io(std::io::Error::other(
                    "log i/o task ended without an answer",
                ))
            }),
            Err(e) => Err(e),
        };
        match res {
            Ok(results) => results,
            Err(e) => {
                let msg = e.to_string();
                (0..n)
                    .map(|_| Err(LogError::Io(std::io::Error::other(msg.clone()))))
                    .collect()
            }
        }
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.partitions
            .read()
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().values().cloned().collect()
    }

    /// Whether any partition of `topic` has history in the bucket (or may have).
    pub fn has_remote_history(&self, topic: &str) -> bool {
        self.all()
            .into_iter()
            .filter(|p| p.topic == topic)
            .any(|p| p.has_remote_history())
    }

    pub fn set_topic_config(&self, topic: &str, config: &LogConfig) {
        for p in self.all().into_iter().filter(|p| p.topic == topic) {
            p.set_config(config.clone());
        }
    }

    /// Drops a topic's partitions: renames each directory to `…-delete`, then removes it in the
    /// background. In-flight readers keep their open files until they finish.
    pub async fn delete_topic(self: &Arc<Self>, topic: &str) -> Result<(), LogError> {
        let doomed: Vec<Arc<Partition>> = {
            let mut map = self.partitions.write();
            let keys: Vec<TopicPartition> =
                map.keys().filter(|(t, _)| t == topic).cloned().collect();
            keys.iter().filter_map(|k| map.remove(k)).collect()
        };
        let mut remote_topics = std::collections::HashSet::new();
        let mut dirs = Vec::new();
        for p in doomed {
            p.mark_deleted();
            if let Some(r) = p.remote() {
                remote_topics.insert(r.topic_id);
            }
            dirs.push(p.dir().to_owned());
        }
        let me = self.clone();
        let discarded = self
            .io
            .run(move || dirs.iter().map(|d| me.discard_dir(d)).collect())
            .await?;
        self.remove_later(discarded);
        if let Some(tier) = &self.tier {
            for id in remote_topics {
                tier.delete_topic(topic, id);
            }
        }
        Ok(())
    }

    /// Stops serving a partition that another node leads now (cluster mode): appends and
    /// waiters get [`LogError::NotLeader`], and its files are synced and closed as at shutdown,
    /// so this node can continue from them if the partition comes back at the next epoch.
    pub async fn release(&self, topic: &str, partition: i32) -> Result<(), LogError> {
        let Some(p) = self
            .partitions
            .write()
            .remove(&(topic.to_string(), partition))
        else {
            return Ok(());
        };
        p.mark_moved();
        p.close().await
    }

    /// The leader epochs of the partition's local copy (cluster mode), if it has a readable
    /// checkpoint.
    pub async fn local_epochs(&self, topic: &str, partition: i32) -> Option<Vec<EpochEntry>> {
        let path = self.partition_dir(topic, partition).join(LEADER_EPOCH_FILE);
        self.io
            .run(move || Ok(crate::fs::read_if_exists(&path)?))
            .await
            .ok()
            .flatten()
            .and_then(|b| epochs::decode(&b))
    }

    /// Writes the partition's leader-epoch checkpoint (cluster mode: the history as etcd has it).
    pub async fn write_epochs(
        &self,
        p: &Arc<Partition>,
        entries: &[EpochEntry],
    ) -> Result<(), LogError> {
        let path = p.dir().join(LEADER_EPOCH_FILE);
        let bytes = epochs::encode(entries);
        self.io
            .run(move || Ok(write_atomic(&path, &bytes, Durable::Metadata)?))
            .await
    }

    /// Moves a partition's local directory aside, if there is one (cluster mode: the copy is
    /// from an epoch another node continued, so it must never be served again).
    pub async fn discard_local(
        self: &Arc<Self>,
        topic: &str,
        partition: i32,
    ) -> Result<bool, LogError> {
        let dir = self.partition_dir(topic, partition);
        let me = self.clone();
        let discarded = self
            .io
            .run(move || match dir.exists() {
                true => Ok(Some(me.discard_dir(&dir)?)),
                false => Ok(None),
            })
            .await?;
        let found = discarded.is_some();
        self.remove_later(discarded.into_iter().collect());
        Ok(found)
    }

    /// Moves a partition directory aside (`…-delete`, durable at once): it is no partition's
    /// any more and is removed later. Returns where it went.
    fn discard_dir(&self, dir: &Path) -> Result<PathBuf, LogError> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let target = self.data_dir.join(format!(
            "{name}.{}{DELETE_SUFFIX}",
            uuid::Uuid::new_v4().simple(),
        ));
        std::fs::rename(dir, &target)?;
        crate::fs::sync_dir(&self.data_dir)?;
        Ok(target)
    }

    /// Removes discarded directories in the background (a large partition takes long); one
    /// left behind by a crash is removed at the next start.
    fn remove_later(&self, dirs: Vec<PathBuf>) {
        if dirs.is_empty() {
            return;
        }
        let io = self.io.clone();
        self.tasks.spawn(async move {
            let _ = io
                .run(move || {
                    for d in dirs {
                        if let Err(e) = std::fs::remove_dir_all(&d) {
                            tracing::warn!(dir = %d.display(), error = %e, "could not remove deleted partition");
                        }
                    }
                    Ok(())
                })
                .await;
        });
    }

    /// Runs retention (and idle-producer expiry) every `interval` until shutdown.
    pub fn start_retention(self: &Arc<Self>, interval: Duration, producer_expiration_ms: i64) {
        let me = self.clone();
        let cancel = self.cancel.child_token();
        self.tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = cancel.cancelled() => return,
                }
                me.enforce_retention().await;
                let cutoff = me.clock.now_ms().saturating_sub(producer_expiration_ms);
                for p in me.all() {
                    if let Err(e) = p.expire_producers(cutoff).await {
                        tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "producer expiry failed");
                    }
                }
            }
        });
    }

    /// Runs the log cleaner over compacted partitions every `backoff` until shutdown.
    pub fn start_cleaner(self: &Arc<Self>, backoff: Duration) {
        let me = self.clone();
        let cancel = self.cancel.child_token();
        self.tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = cancel.cancelled() => return,
                }
                for p in me.all().into_iter().filter(|p| p.config().cleanup_compact) {
                    if let Err(e) = p.compact(false).await {
                        tracing::error!(topic = %p.topic, partition = p.index, error = %e, "compaction failed");
                    }
                    if cancel.is_cancelled() {
                        return;
                    }
                }
            }
        });
    }

    pub async fn enforce_retention(&self) {
        for p in self.all() {
            if let Err(e) = p.enforce_retention().await {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "retention failed");
            }
        }
    }

    /// Stops flushers, syncs every partition, writes indexes, producer snapshots and the
    /// clean-shutdown marker.
    pub async fn shutdown(&self) -> Result<(), LogError> {
        use futures::StreamExt;
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        let mut clean = true;
        let mut closing = futures::stream::iter(self.all())
            .map(|p| async move { (p.close().await, p) })
            .buffer_unordered(IO_CONCURRENCY);
        while let Some((res, p)) = closing.next().await {
            if let Err(e) = res {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "close failed");
                clean = false;
            }
        }
        if self.copies {
            // the tier is the main manager's; copies are never recovered
            return Ok(());
        }
        if let Some(tier) = &self.tier {
            tier.shutdown().await;
        }
        if clean {
            let dir = self.data_dir.clone();
            self.io
                .run(move || {
                    std::fs::write(dir.join(CLEAN_SHUTDOWN_FILE), b"")?;
                    Ok(crate::fs::sync_dir(&dir)?)
                })
                .await?;
        }
        Ok(())
    }
}

/// Retries loading a partition's manifest with a growing pause, then attaches it.
async fn attach_when_reachable(
    tier: Arc<Tier>,
    p: Arc<Partition>,
    topic_id: Uuid,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        if !backoff.wait(&cancel).await {
            return;
        }
        match tier.open_partition(&p.topic, topic_id, p.index).await {
            Ok(r) => {
                tracing::info!(topic = %p.topic, partition = p.index, "remote log attached");
                p.attach_remote(r);
                return;
            }
            Err(e) => {
                tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "remote manifest still unavailable");
            }
        }
    }
}
