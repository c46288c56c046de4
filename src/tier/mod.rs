//! Tiered storage: closed segments move to an object store; the bucket holds the history.
//!
//! Layers, bottom up: an `object_store` built from the tier URL ([`store::build`]); the retry,
//! timeout and metrics layer ([`store::Store`]) every request goes through; per partition a
//! [`RemoteLog`] owning the partition's manifest, an upload queue worked by one task, remote
//! retention and remote reads through a shared bounded [`cache::Cache`].
//!
//! The log schedules uploads (after a roll, and at start-up for closed segments the manifest does
//! not list yet) and asks for remote reads; the tier never calls into the log. The log deletes a
//! local segment only once the manifest lists it, so an outage of the object store costs local
//! disk, never data, and never blocks produce or local reads.

pub mod cache;
pub mod faults;
mod read;
pub mod remote;
mod shared;
pub mod store;

use crate::backoff::Backoff;
use crate::config::TierConfig;
use crate::format::manifest::{self, CATALOG_OBJECT};
use bytes::Bytes;
use object_store::ObjectStore;
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use store::{Store, StoreError};
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

pub use remote::{RemoteLog, UploadJob};
use shared::Shared;
pub use shared::{Failing, TierError, CHUNK};
pub use store::SegmentData;

pub struct Tier {
    shared: Arc<Shared>,
    url: String,
    /// Topic directories being deleted in the background.
    deleting: Mutex<HashSet<String>>,
}

impl Tier {
    /// The tier a config section describes.
    pub fn from_config(c: &TierConfig) -> Result<Arc<Tier>, String> {
        let (store, prefix) = store::build(&c.url, &c.store)?;
        Ok(Tier::with_store(store, prefix, c))
    }

    /// A tier over an already built store (tests wrap stores in fault layers this way).
    pub fn with_store(
        store: Arc<dyn ObjectStore>,
        prefix: object_store::path::Path,
        opts: &TierConfig,
    ) -> Arc<Tier> {
        Arc::new(Tier {
            shared: Arc::new(Shared {
                store: Store::new(store, prefix, &opts.store),
                cache: cache::Cache::new(opts.cache_bytes),
                upload_slots: Semaphore::new(opts.upload_concurrency),
                tasks: TaskTracker::new(),
                cancel: CancellationToken::new(),
                health: shared::Health::default(),
            }),
            url: opts.url.clone(),
            deleting: Mutex::new(HashSet::new()),
        })
    }

    /// The object store behind its retry, timeout and metrics layer (the cluster's WAL objects
    /// go through it).
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Writes, reads back and deletes a small object: whether the store takes the tier's
    /// requests at all (bucket, credentials, endpoint), before the broker relies on it.
    pub async fn probe(&self) -> Result<(), StoreError> {
        let key = format!("probe/{}", Uuid::new_v4().simple());
        let body = Bytes::from_static(b"tiercel start-up probe");
        let store = &self.shared.store;
        let result = async {
            store.put(&key, body.clone(), false).await?;
            if store.get(&key).await? != body {
                return Err(StoreError::Local(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "the probe object read back differs from what was written",
                )));
            }
            store.delete(&key).await
        }
        .await;
        match &result {
            Ok(()) => self.shared.health.ok(),
            Err(e) => self.shared.health.failed(e),
        }
        result
    }

    /// The object store's health as the tier last saw it: `None` when answering.
    pub fn health(&self) -> Option<Failing> {
        self.shared.health.get()
    }

    /// The catalog as last mirrored to the bucket (a lost data dir starts from it), `None`
    /// when the bucket has none.
    pub async fn fetch_catalog(&self) -> Result<Option<Bytes>, StoreError> {
        match self.shared.store.get(CATALOG_OBJECT).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Keeps `catalog.json` in the bucket in step with the catalog's `snapshots` (its bytes
    /// after every change), so the topic list (names, ids, configs, cluster id) survives the
    /// loss of the data dir. Only the latest snapshot is written: versions in between are
    /// skipped.
    pub fn mirror_catalog(&self, mut snapshots: watch::Receiver<Bytes>) {
        let shared = self.shared.clone();
        self.shared.tasks.spawn(async move {
            let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
            loop {
                let snapshot = snapshots.borrow_and_update().clone();
                match shared.store.put(CATALOG_OBJECT, snapshot, false).await {
                    Ok(()) => {
                        backoff.reset();
                        shared.health.ok();
                    }
                    Err(e) => {
                        shared.health.failed(&e);
                        tracing::warn!(error = %e, "could not mirror the catalog to the object store; retrying");
                        if !backoff.wait(&shared.cancel).await {
                            return;
                        }
                        continue;
                    }
                }
                tokio::select! {
                    r = snapshots.changed() => if r.is_err() { return },
                    _ = shared.cancel.cancelled() => return,
                }
            }
        });
    }

    /// Loads a partition's manifest (the latest version in the bucket) and starts its uploader.
    pub async fn open_partition(
        &self,
        topic: &str,
        topic_id: Uuid,
        partition: i32,
    ) -> Result<Arc<RemoteLog>, TierError> {
        RemoteLog::load(self.shared.clone(), (topic, topic_id, partition), false).await
    }

    /// A partition's manifest to read its history only (a follower copy in a cluster): no
    /// uploader, never a manifest write.
    pub async fn open_partition_read_only(
        &self,
        topic: &str,
        topic_id: Uuid,
        partition: i32,
    ) -> Result<Arc<RemoteLog>, TierError> {
        RemoteLog::load(self.shared.clone(), (topic, topic_id, partition), true).await
    }

    /// A partition of a brand-new topic (a fresh topic id: nothing to load).
    pub fn new_partition(&self, topic: &str, topic_id: Uuid, partition: i32) -> Arc<RemoteLog> {
        RemoteLog::fresh(self.shared.clone(), topic, topic_id, partition)
    }

    /// Deletes every object of a deleted topic, in the background, retrying until done.
    pub fn delete_topic(&self, topic: &str, topic_id: Uuid) {
        let dir = manifest::topic_dir(topic, topic_id);
        self.delete_dir(dir);
    }

    fn delete_dir(&self, dir: String) {
        if !self.deleting.lock().insert(dir.clone()) {
            return;
        }
        let shared = self.shared.clone();
        self.shared.tasks.spawn(async move {
            let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
            loop {
                match delete_prefix(&shared.store, &dir).await {
                    Ok(n) => {
                        shared.cache.forget(&dir);
                        tracing::info!(
                            dir,
                            objects = n,
                            "deleted remote objects of a deleted topic"
                        );
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(dir, error = %e, "deleting remote objects failed; retrying");
                        if !backoff.wait(&shared.cancel).await {
                            return;
                        }
                    }
                }
            }
        });
    }

    /// [`Tier::sweep_orphans`] as a background task.
    pub fn sweep_orphans_later(self: &Arc<Self>, live: Vec<(String, Uuid)>) {
        let me = self.clone();
        self.shared.tasks.spawn(async move {
            match me.sweep_orphans(&live).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    topics = n,
                    "deleting remote objects of topics that no longer exist"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "could not list the object store for leftovers")
                }
            }
        });
    }

    /// Removes topic directories in the bucket that no live topic owns (a deletion a crash or an
    /// outage interrupted).
    pub async fn sweep_orphans(&self, live: &[(String, Uuid)]) -> Result<usize, StoreError> {
        let keep: HashSet<String> = live
            .iter()
            .map(|(t, id)| manifest::topic_dir(t, *id))
            .collect();
        let mut n = 0;
        for name in self.shared.store.list_dirs("topics").await? {
            let dir = format!("topics/{name}");
            if !keep.contains(&dir) {
                self.delete_dir(dir);
                n += 1;
            }
        }
        Ok(n)
    }

    /// Stops uploads and background work. In-flight uploads are abandoned; the manifest is
    /// written only after a segment's objects, so an abandoned upload is simply redone.
    pub async fn shutdown(&self) {
        self.shared.cancel.cancel();
        self.shared.tasks.close();
        if tokio::time::timeout(Duration::from_secs(10), self.shared.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("tier tasks did not stop in time");
        }
    }
}

async fn delete_prefix(store: &Store, dir: &str) -> Result<usize, StoreError> {
    let objects = store.list(dir).await?;
    // manifests last, so an interrupted deletion still has a manifest naming what is left
    let (manifests, data): (Vec<_>, Vec<_>) = objects
        .into_iter()
        .partition(|(k, _)| manifest::manifest_version(k).is_some());
    let n = manifests.len() + data.len();
    for (key, _) in data.into_iter().chain(manifests) {
        store.delete(&key).await?;
    }
    Ok(n)
}
