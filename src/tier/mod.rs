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
pub mod manifest;
mod read;
pub mod remote;
pub mod store;

use crate::catalog::Catalog;
use crate::config::Config;
use bytes::Bytes;
use object_store::ObjectStore;
use parking_lot::Mutex;
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use store::{Store, StoreError, StoreOptions};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

pub use remote::{RemoteLog, UploadJob};

/// Remote segment data is fetched and cached in pieces of this size.
pub const CHUNK: u64 = 1 << 20;

const CATALOG_KEY: &str = "catalog.json";

#[derive(Debug, thiserror::Error)]
pub enum TierError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("remote segment {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
}

#[derive(Debug, Clone)]
pub struct TierOptions {
    pub cache_bytes: u64,
    pub upload_concurrency: usize,
    pub store: StoreOptions,
}

impl TierOptions {
    pub fn from_config(c: &Config) -> TierOptions {
        TierOptions {
            cache_bytes: c.tier_cache_bytes,
            upload_concurrency: c.tier_upload_concurrency.max(1),
            store: StoreOptions {
                request_timeout: Duration::from_millis(c.tier_request_timeout_ms),
                max_attempts: c.tier_request_attempts,
                s3_endpoint: c.tier_s3_endpoint.clone(),
                s3_region: c.tier_s3_region.clone(),
                s3_access_key_id: c.tier_s3_access_key_id.clone(),
                s3_secret_access_key: c.tier_s3_secret_access_key.clone(),
                s3_allow_http: c.tier_s3_allow_http,
                s3_virtual_hosted_style: c.tier_s3_virtual_hosted_style,
            },
        }
    }
}

/// What every partition's remote log shares.
pub(crate) struct Shared {
    pub store: Store,
    pub cache: cache::Cache,
    pub upload_slots: Semaphore,
    pub tasks: TaskTracker,
    pub cancel: CancellationToken,
}

pub struct Tier {
    shared: Arc<Shared>,
    url: String,
    /// Topic directories being deleted in the background.
    deleting: Mutex<HashSet<String>>,
}

impl Tier {
    /// The tier the config asks for: `None` for `tier_url = "none"`. An empty URL means the
    /// embedded default, a directory `<data_dir>.tier` beside the data dir.
    pub fn from_config(c: &Config) -> Result<Option<Arc<Tier>>, String> {
        let Some(url) = c.effective_tier_url()? else {
            return Ok(None);
        };
        let opts = TierOptions::from_config(c);
        let (store, prefix) = store::build(&url, &opts.store)?;
        Ok(Some(Tier::with_store(store, prefix, &url, opts)))
    }

    /// A tier over an already built store (tests wrap stores in fault layers this way).
    pub fn with_store(
        store: Arc<dyn ObjectStore>,
        prefix: object_store::path::Path,
        url: &str,
        opts: TierOptions,
    ) -> Arc<Tier> {
        Arc::new(Tier {
            shared: Arc::new(Shared {
                store: Store::new(store, prefix, &opts.store),
                cache: cache::Cache::new(opts.cache_bytes),
                upload_slots: Semaphore::new(opts.upload_concurrency),
                tasks: TaskTracker::new(),
                cancel: CancellationToken::new(),
            }),
            url: url.to_string(),
            deleting: Mutex::new(HashSet::new()),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Restores `catalog.json` from the bucket when the data dir has none (a lost disk).
    /// Returns whether a catalog was restored.
    pub async fn restore_catalog(&self, data_dir: &Path) -> Result<bool, StoreError> {
        let local = data_dir.join(CATALOG_KEY);
        if local.exists() {
            return Ok(false);
        }
        match self.shared.store.get(CATALOG_KEY).await {
            Ok(bytes) => {
                std::fs::create_dir_all(data_dir)?;
                crate::log::segment::write_atomic(&local, &bytes)?;
                tracing::warn!(data_dir = %data_dir.display(), url = %self.url, "no local catalog: restored topics from the object store");
                Ok(true)
            }
            Err(StoreError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Keeps `catalog.json` in the bucket in step with the local catalog, so the topic list
    /// (names, ids, configs, cluster id) survives the loss of the data dir.
    pub fn mirror_catalog(&self, catalog: Arc<Catalog>) {
        let shared = self.shared.clone();
        let mut changes = catalog.subscribe();
        self.shared.tasks.spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                changes.borrow_and_update();
                let snapshot = Bytes::from(catalog.to_json());
                match shared.store.put(CATALOG_KEY, snapshot, false).await {
                    Ok(()) => backoff = Duration::from_millis(200),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not mirror the catalog to the object store; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = shared.cancel.cancelled() => return,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                        continue;
                    }
                }
                tokio::select! {
                    r = changes.changed() => if r.is_err() { return },
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
        RemoteLog::load(self.shared.clone(), topic, topic_id, partition).await
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
            let mut backoff = Duration::from_millis(500);
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
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = shared.cancel.cancelled() => return,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(60));
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
