//! All partitions of this broker: opening them at start-up (recovering after a crash),
//! creating and deleting them, their flushers, the cleaner and retention tasks, and the clean
//! shutdown that lets the next start skip recovery.

use super::error::LogError;
use super::io::Io;
use super::partition::Partition;
use crate::backoff::Backoff;
use crate::clock::SharedClock;
use crate::config::LogConfig;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::tier::Tier;

pub type TopicPartition = (String, i32);

/// File-system calls of the log running at once.
const IO_CONCURRENCY: usize = 64;

/// Marker written at clean shutdown; its absence at start-up means recovery must scan.
use crate::format::CLEAN_SHUTDOWN_FILE as CLEAN_SHUTDOWN;

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

fn has_segments(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().ends_with(".log"))
        })
        .unwrap_or(false)
}

/// All partitions of this broker, their flushers and the retention task.
pub struct LogManager {
    data_dir: PathBuf,
    clock: SharedClock,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    flush_interval: Duration,
    cancel: CancellationToken,
    tasks: TaskTracker,
    recover: bool,
    tier: Option<Arc<Tier>>,
    /// Where every file-system call of the log runs.
    io: Io,
}

impl LogManager {
    /// Prepares the data dir. Consumes the clean-shutdown marker: from here on, a crash means
    /// the next start recovers.
    pub fn new(
        data_dir: &Path,
        clock: SharedClock,
        flush_interval: Duration,
        tier: Option<Arc<Tier>>,
    ) -> Result<LogManager, LogError> {
        std::fs::create_dir_all(data_dir)?;
        let marker = data_dir.join(CLEAN_SHUTDOWN);
        let clean = marker.exists();
        if clean {
            std::fs::remove_file(&marker)?;
            crate::fs::sync_dir(data_dir)?;
        } else {
            tracing::info!(data_dir = %data_dir.display(), "no clean-shutdown marker: recovering partitions");
        }
        // finish deletions a crash interrupted
        for entry in std::fs::read_dir(data_dir)? {
            let entry = entry?;
            if entry
                .file_name()
                .to_string_lossy()
                .ends_with(crate::format::DELETE_SUFFIX)
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
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
            io: Io::new(IO_CONCURRENCY),
        })
    }

    pub fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.data_dir
            .join(crate::format::partition_dir_name(topic, partition))
    }

    pub fn tier(&self) -> Option<&Arc<Tier>> {
        self.tier.as_ref()
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
        let dir = self.partition_dir(topic, partition);
        let mut attach_later = None;
        let remote = match &self.tier {
            Some(t) if config.remote_storage_enable => {
                match t.open_partition(topic, topic_id, partition).await {
                    Ok(r) => Some(r),
                    // with local data the partition can serve without its remote history for
                    // now; with none, its offsets would restart where the bucket may have data
                    Err(e) if has_segments(&dir) => {
                        tracing::error!(topic, partition, error = %e, "remote manifest unavailable: serving local data, attaching the remote log when the object store answers");
                        attach_later = Some(t.clone());
                        None
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            _ => None,
        };
        let p = Partition::open(
            topic,
            partition,
            dir,
            config,
            self.clock.clone(),
            self.recover,
            remote,
        )?;
        self.register(p.clone());
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

    /// Creates a brand-new partition (its files on the I/O executor). A directory left over
    /// from an earlier topic of the same name is moved aside first so its data can never
    /// reappear.
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
        let me = self.clone();
        let topic = topic.to_string();
        let p = self
            .io
            .run(move || me.create_partition_files(&topic, partition, config, remote))
            .await?;
        self.register(p.clone());
        Ok(p)
    }

    fn create_partition_files(
        &self,
        topic: &str,
        partition: i32,
        config: LogConfig,
        remote: Option<Arc<crate::tier::RemoteLog>>,
    ) -> Result<Arc<Partition>, LogError> {
        let dir = self.partition_dir(topic, partition);
        if dir.exists() {
            let old = self.discard_dir(&dir)?;
            self.remove_later(vec![old]);
        }
        let p = Partition::open(
            topic,
            partition,
            dir,
            config,
            self.clock.clone(),
            false,
            remote,
        )?;
        crate::fs::sync_dir(&self.data_dir)?;
        Ok(p)
    }

    fn register(&self, p: Arc<Partition>) {
        let key = (p.topic.clone(), p.index);
        self.tasks.spawn(
            p.clone()
                .run_flusher(self.flush_interval, self.cancel.child_token()),
        );
        self.partitions.write().insert(key, p);
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

    /// Moves a partition directory aside (`…-delete`, durable at once): it is no partition's
    /// any more and is removed later. Returns where it went.
    fn discard_dir(&self, dir: &Path) -> Result<PathBuf, LogError> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let target = self.data_dir.join(format!(
            "{name}.{}{}",
            uuid::Uuid::new_v4().simple(),
            crate::format::DELETE_SUFFIX
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
        self.tasks.spawn_blocking(move || {
            for d in dirs {
                if let Err(e) = std::fs::remove_dir_all(&d) {
                    tracing::warn!(dir = %d.display(), error = %e, "could not remove deleted partition");
                }
            }
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
                me.enforce_retention();
                let cutoff = me.clock.now_ms().saturating_sub(producer_expiration_ms);
                for p in me.all() {
                    p.expire_producers(cutoff);
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
                    let res = tokio::task::spawn_blocking({
                        let p = p.clone();
                        move || p.compact(false)
                    })
                    .await;
                    match res {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            tracing::error!(topic = %p.topic, partition = p.index, error = %e, "compaction failed")
                        }
                        Err(e) => {
                            tracing::error!(topic = %p.topic, partition = p.index, error = %e, "compaction task failed")
                        }
                    }
                    if cancel.is_cancelled() {
                        return;
                    }
                }
            }
        });
    }

    pub fn enforce_retention(&self) {
        for p in self.all() {
            if let Err(e) = p.enforce_retention() {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "retention failed");
            }
        }
    }

    /// Stops flushers, syncs every partition, writes indexes and the clean-shutdown marker.
    pub async fn shutdown(&self) -> Result<(), LogError> {
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        let mut clean = true;
        for p in self.all() {
            if let Err(e) = p.close() {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "close failed");
                clean = false;
            }
        }
        if let Some(tier) = &self.tier {
            tier.shutdown().await;
        }
        if clean {
            std::fs::write(self.data_dir.join(CLEAN_SHUTDOWN), b"")?;
            crate::fs::sync_dir(&self.data_dir)?;
        }
        Ok(())
    }
}
