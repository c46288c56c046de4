//! One partition's remote log: its manifest, its upload queue and its remote retention.
//!
//! Uploads of a partition run one at a time and in offset order (the manifest lists contiguous
//! history); partitions upload in parallel up to the broker's upload concurrency. A failed upload
//! is retried with a growing pause until it succeeds or the partition goes away: the local
//! segment stays on disk meanwhile, because the log deletes only segments the manifest lists.

use super::shared::{Shared, TierError};
use super::store::{SegmentData, StoreError};
use crate::backoff::Backoff;
use crate::format::manifest::{self, Manifest, RemoteSegment, SegmentState};
use bytes::Bytes;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How many manifest versions are kept in the bucket (older ones are deleted).
const MANIFESTS_KEPT: u64 = 3;

/// A closed, durable local segment ready to upload: its data (lent by the log) and its
/// indexes, in the formats of [`crate::format::index`] and [`crate::format::txn_index`].
#[derive(Clone)]
pub struct UploadJob {
    pub base_offset: i64,
    pub next_offset: i64,
    pub size_bytes: u64,
    pub max_timestamp: i64,
    pub offset_of_max_timestamp: i64,
    pub data: Arc<dyn SegmentData>,
    pub index: Bytes,
    pub time_index: Bytes,
    /// The `.txnindex` object to upload with the segment (empty: none): every aborted
    /// transaction with records in the segment, wherever its marker is, so the bucket alone
    /// can answer read_committed reads (segments go up only once their transactions ended).
    pub txn_index: Bytes,
}

impl std::fmt::Debug for UploadJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadJob")
            .field("base_offset", &self.base_offset)
            .field("next_offset", &self.next_offset)
            .field("size_bytes", &self.size_bytes)
            .finish_non_exhaustive()
    }
}

pub struct RemoteLog {
    pub(super) shared: Arc<Shared>,
    pub topic: String,
    pub topic_id: Uuid,
    pub partition: i32,
    /// `topics/<topic>-<id>/<partition>`.
    pub dir: String,
    manifest: Mutex<Manifest>,
    /// Serialises manifest writers (uploader and retention).
    commit: tokio::sync::Mutex<()>,
    queue: mpsc::UnboundedSender<UploadJob>,
    retention_running: AtomicBool,
    /// Upload jobs queued or in progress.
    pending: std::sync::atomic::AtomicUsize,
    /// Cancelled when the partition is deleted or the broker stops.
    cancel: CancellationToken,
    /// A reader's view of a partition another node writes (a cluster's follower copy): it
    /// never uploads and never writes a manifest.
    read_only: bool,
}

impl RemoteLog {
    pub(super) fn fresh(
        shared: Arc<Shared>,
        topic: &str,
        topic_id: Uuid,
        partition: i32,
    ) -> Arc<RemoteLog> {
        Self::start(shared, Manifest::empty(topic, topic_id, partition), false)
    }

    /// Loads the partition's manifest and starts its uploader; `read_only`: to read its
    /// segments only, with no uploader and no manifest writes (another node owns the
    /// partition's history).
    pub(super) async fn load(
        shared: Arc<Shared>,
        (topic, topic_id, partition): (&str, Uuid, i32),
        read_only: bool,
    ) -> Result<Arc<RemoteLog>, TierError> {
        let m = Self::load_manifest(&shared, topic, topic_id, partition).await?;
        Ok(Self::start(shared, m, read_only))
    }

    /// Reads the newest manifest version that parses.
    async fn load_manifest(
        shared: &Shared,
        topic: &str,
        topic_id: Uuid,
        partition: i32,
    ) -> Result<Manifest, TierError> {
        let dir = manifest::partition_dir(topic, topic_id, partition);
        let mut versions: Vec<(u64, String)> = shared
            .store
            .list(&format!("{dir}/manifest"))
            .await?
            .into_iter()
            .filter_map(|(k, _)| manifest::manifest_version(&k).map(|v| (v, k)))
            .collect();
        versions.sort_unstable();
        let mut found = None;
        for (v, key) in versions.iter().rev() {
            let bytes = shared.store.get(key).await?;
            match serde_json::from_slice::<Manifest>(&bytes) {
                Ok(m) if m.version == *v => {
                    found = Some(m);
                    break;
                }
                Ok(_) | Err(_) => {
                    tracing::error!(
                        key,
                        "remote manifest is unreadable; trying the previous version"
                    )
                }
            }
        }
        let m = found.unwrap_or_else(|| Manifest::empty(topic, topic_id, partition));
        if m.version > 0 {
            tracing::info!(topic, partition, version = m.version, segments = m.segments.len(), range = ?m.range(), "loaded remote manifest");
        }
        Ok(m)
    }

    fn start(shared: Arc<Shared>, m: Manifest, read_only: bool) -> Arc<RemoteLog> {
        let (tx, rx) = mpsc::unbounded_channel();
        let me = Arc::new(RemoteLog {
            cancel: shared.cancel.child_token(),
            dir: manifest::partition_dir(&m.topic, m.topic_id, m.partition),
            topic: m.topic.clone(),
            topic_id: m.topic_id,
            partition: m.partition,
            manifest: Mutex::new(m),
            commit: tokio::sync::Mutex::new(()),
            queue: tx,
            retention_running: AtomicBool::new(false),
            pending: std::sync::atomic::AtomicUsize::new(0),
            shared: shared.clone(),
            read_only,
        });
        // a read-only view drops the receiver: what it is asked to upload goes nowhere
        if !read_only {
            shared.tasks.spawn(me.clone().run_uploader(rx));
        }
        me
    }

    /// Whether this is a reader's view of a partition another node writes (nothing to upload).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    pub fn manifest(&self) -> Manifest {
        self.manifest.lock().clone()
    }

    /// `[start, end)` of the readable remote offsets.
    pub fn range(&self) -> Option<(i64, i64)> {
        self.manifest.lock().range()
    }

    /// One past the last uploaded offset: local segments below it may be deleted.
    pub fn uploaded_end(&self) -> Option<i64> {
        self.manifest.lock().end_offset()
    }

    /// Bytes of readable remote segments that start below `offset` (history not on local disk).
    pub fn bytes_below(&self, offset: i64) -> u64 {
        self.manifest
            .lock()
            .readable()
            .filter(|s| s.base_offset < offset)
            .map(|s| s.size_bytes)
            .sum()
    }

    /// Bytes of every readable remote segment.
    pub fn readable_bytes(&self) -> u64 {
        self.manifest.lock().readable_bytes()
    }

    /// Largest timestamp in the remote log and the offset holding it.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        self.manifest
            .lock()
            .readable()
            .filter(|s| s.max_timestamp >= 0)
            .max_by_key(|s| s.max_timestamp)
            .map(|s| (s.offset_of_max_timestamp, s.max_timestamp))
    }

    /// Queues a closed segment for upload.
    pub fn schedule(&self, job: UploadJob) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        if self.queue.send(job).is_err() {
            self.pending.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Upload jobs queued or in progress (0: the uploader has done everything it was given).
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// Whether anything of the partition is in the bucket or on its way there.
    pub fn has_history(&self) -> bool {
        let m = self.manifest.lock();
        !m.segments.is_empty() || m.uploaded_end.is_some() || self.pending() > 0
    }

    /// Stops uploads for good (the partition was deleted, or its topic stopped tiering).
    pub fn stop(&self) {
        self.cancel.cancel();
    }

    async fn run_uploader(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<UploadJob>) {
        loop {
            let job = tokio::select! {
                j = rx.recv() => match j { Some(j) => j, None => return },
                _ = self.cancel.cancelled() => return,
            };
            let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
            // the job counts as pending until this loop is left, whichever way
            let _done = Done(&self.pending);
            loop {
                if self.uploaded_end().unwrap_or(i64::MIN) >= job.next_offset {
                    break; // already in the manifest
                }
                let permit = tokio::select! {
                    p = self.shared.upload_slots.acquire() => match p { Ok(p) => p, Err(_) => return },
                    _ = self.cancel.cancelled() => return,
                };
                let res = tokio::select! {
                    r = self.upload(&job) => r,
                    _ = self.cancel.cancelled() => return,
                };
                drop(permit);
                match res {
                    Ok(()) => {
                        self.shared.health.ok();
                        break;
                    }
                    Err(TierError::Store(StoreError::Local(e)))
                        if e.kind() == std::io::ErrorKind::NotFound =>
                    {
                        tracing::debug!(topic = %self.topic, partition = self.partition, base_offset = job.base_offset, "segment deleted locally before upload; skipped");
                        break;
                    }
                    Err(e) => {
                        if let TierError::Store(se) = &e {
                            self.shared.health.failed(se);
                        }
                        crate::metrics::tier_upload_failed();
                        tracing::warn!(topic = %self.topic, partition = self.partition, base_offset = job.base_offset, error = %e, attempt = backoff.attempts() + 1, "segment upload failed; retrying");
                        if !backoff.wait(&self.cancel).await {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Uploads the segment's objects, then lists it in a new manifest version.
    async fn upload(&self, job: &UploadJob) -> Result<(), TierError> {
        let started = std::time::Instant::now();
        let store = &self.shared.store;
        let (index, timeindex) = (job.index.clone(), job.time_index.clone());
        let txnindex = job.txn_index.clone();
        let txn_index = !txnindex.is_empty();
        let key = |ext: &str| manifest::segment_key(&self.dir, job.base_offset, ext);
        // the objects go up together; the manifest only after all of them
        futures::future::try_join4(
            store.put_data(&key("log"), job.data.clone(), job.size_bytes),
            store.put(&key("index"), index, false),
            store.put(&key("timeindex"), timeindex, false),
            async {
                if txn_index {
                    store.put(&key("txnindex"), txnindex, false).await
                } else {
                    Ok(())
                }
            },
        )
        .await?;
        let seg = RemoteSegment {
            base_offset: job.base_offset,
            next_offset: job.next_offset,
            size_bytes: job.size_bytes,
            max_timestamp: job.max_timestamp,
            offset_of_max_timestamp: job.offset_of_max_timestamp,
            state: SegmentState::CopyFinished,
            txn_index,
        };
        self.update_manifest(|m| {
            if m.end_offset().unwrap_or(i64::MIN) < seg.next_offset {
                m.segments.push(seg.clone());
                m.uploaded_end = Some(seg.next_offset);
            }
        })
        .await?;
        crate::metrics::tier_segment_uploaded(started.elapsed());
        tracing::debug!(topic = %self.topic, partition = self.partition, base_offset = job.base_offset, bytes = job.size_bytes, "segment uploaded");
        Ok(())
    }

    /// Writes `change(current)` as the next manifest version (create-only), then makes it current.
    async fn update_manifest(&self, change: impl Fn(&mut Manifest)) -> Result<(), TierError> {
        if self.read_only {
            tracing::warn!(topic = %self.topic, partition = self.partition, "a read-only view of the partition's remote log was asked to change its manifest: refused");
            return Ok(());
        }
        let _w = self.commit.lock().await;
        loop {
            let mut next = self.manifest();
            change(&mut next);
            next.version += 1;
            let key = manifest::manifest_key(&self.dir, next.version);
            let bytes = Bytes::from(next.to_json());
            match self.shared.store.put(&key, bytes.clone(), true).await {
                Ok(()) => {}
                Err(StoreError::AlreadyExists(_)) => {
                    // our own earlier attempt may have landed (a lost response): same bytes, done
                    let there = self.shared.store.get(&key).await?;
                    if there != bytes {
                        tracing::warn!(key, "manifest version already taken; reloading");
                        let m = Self::load_manifest(
                            &self.shared,
                            &self.topic,
                            self.topic_id,
                            self.partition,
                        )
                        .await?;
                        *self.manifest.lock() = m;
                        continue;
                    }
                }
                Err(e) => return Err(e.into()),
            }
            let version = next.version;
            *self.manifest.lock() = next;
            if version > MANIFESTS_KEPT {
                // old versions are never read again; their deletion does not hold up the caller
                let old = manifest::manifest_key(&self.dir, version - MANIFESTS_KEPT);
                let shared = self.shared.clone();
                self.shared.tasks.spawn(async move {
                    if let Err(e) = shared.store.delete(&old).await {
                        tracing::debug!(key = old, error = %e, "could not delete an old manifest version");
                    }
                });
            }
            return Ok(());
        }
    }

    /// The DeleteRecords floor the manifest carries, within the uploaded history (0: none).
    pub fn log_start_floor(&self) -> i64 {
        let m = self.manifest.lock();
        let floor = m.log_start_offset.unwrap_or(0);
        m.end_offset().map_or(0, |end| floor.min(end))
    }

    /// The DeleteRecords floor the manifest carries, even past the uploaded history: in a
    /// cluster a new leader continues the log past the manifest from tail chunks and the WAL,
    /// and applies this once it has.
    pub fn recorded_log_start(&self) -> i64 {
        self.manifest.lock().log_start_offset.unwrap_or(0)
    }

    /// Whether the manifest must learn a log start of `records_start`: it is past the floor
    /// the manifest carries.
    fn floor_stale(&self, records_start: i64) -> bool {
        records_start > self.manifest.lock().log_start_offset.unwrap_or(0)
    }

    /// Writes `records_start` (DeleteRecords' new log start) into the manifest, so records
    /// below it stay deleted for a broker that rebuilds the partition from the bucket (alone:
    /// within the uploaded history; in a cluster, a new leader that also replays what follows
    /// it).
    pub async fn record_log_start(&self, records_start: i64) -> Result<(), TierError> {
        if !self.floor_stale(records_start) {
            return Ok(());
        }
        self.update_manifest(|m| {
            m.log_start_offset = Some(m.log_start_offset.unwrap_or(0).max(records_start));
        })
        .await
    }

    /// Starts remote retention in the background unless a pass is already running: segments
    /// past `retention_ms` (by their newest timestamp) or beyond `retention_bytes` for the whole
    /// log (`local_only_bytes` is the part of the log not in the bucket) are deleted, manifest
    /// first (`DeleteStarted`), then their objects, then a manifest without them.
    pub fn schedule_retention(
        self: &Arc<Self>,
        retention_ms: i64,
        retention_bytes: i64,
        records_start: i64,
        local_only_bytes: u64,
        now_ms: i64,
    ) {
        if self.read_only {
            return;
        }
        let pending_deletes = self
            .manifest
            .lock()
            .segments
            .iter()
            .any(|s| s.state == SegmentState::DeleteStarted);
        let doomed = self.expired(
            retention_ms,
            retention_bytes,
            records_start,
            local_only_bytes,
            now_ms,
        );
        let floor_stale = self.floor_stale(records_start);
        if doomed.is_empty() && !pending_deletes && !floor_stale {
            return;
        }
        if self.retention_running.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        self.shared.tasks.spawn(async move {
            let run = async {
                // the floor first: a segment partly below it keeps its records in the bucket
                me.record_log_start(records_start).await?;
                me.delete_segments(doomed).await
            };
            let res = tokio::select! {
                r = run => r,
                _ = me.cancel.cancelled() => Ok(()),
            };
            if let Err(e) = res {
                tracing::warn!(topic = %me.topic, partition = me.partition, error = %e, "remote retention failed; will retry");
            }
            me.retention_running.store(false, Ordering::Release);
        });
    }

    fn expired(
        &self,
        retention_ms: i64,
        retention_bytes: i64,
        records_start: i64,
        local_only: u64,
        now: i64,
    ) -> Vec<i64> {
        let m = self.manifest.lock();
        let mut total = m.readable_bytes() as i64 + local_only as i64;
        let mut doomed = Vec::new();
        for s in m.readable() {
            let by_time =
                retention_ms >= 0 && s.max_timestamp >= 0 && now - s.max_timestamp > retention_ms;
            let by_size = retention_bytes >= 0 && total - s.size_bytes as i64 >= retention_bytes;
            let by_delete_records = s.next_offset <= records_start;
            if !(by_time || by_size || by_delete_records) {
                break;
            }
            total -= s.size_bytes as i64;
            doomed.push(s.base_offset);
        }
        doomed
    }

    async fn delete_segments(&self, doomed: Vec<i64>) -> Result<(), TierError> {
        if !doomed.is_empty() {
            self.update_manifest(|m| {
                for s in m.segments.iter_mut() {
                    if doomed.contains(&s.base_offset) {
                        s.state = SegmentState::DeleteStarted;
                    }
                }
            })
            .await?;
        }
        let deleting: Vec<(i64, bool)> = self
            .manifest()
            .segments
            .iter()
            .filter(|s| s.state == SegmentState::DeleteStarted)
            .map(|s| (s.base_offset, s.txn_index))
            .collect();
        for (base, txn_index) in &deleting {
            let exts: &[&str] = if *txn_index {
                &["log", "index", "timeindex", "txnindex"]
            } else {
                &["log", "index", "timeindex"]
            };
            for ext in exts {
                let key = manifest::segment_key(&self.dir, *base, ext);
                self.shared.store.delete(&key).await?;
            }
            self.shared
                .cache
                .forget(&manifest::segment_key(&self.dir, *base, ""));
        }
        self.update_manifest(|m| {
            m.uploaded_end = m.end_offset();
            m.segments
                .retain(|s| !deleting.iter().any(|(base, _)| *base == s.base_offset));
        })
        .await?;
        tracing::info!(topic = %self.topic, partition = self.partition, segments = deleting.len(), range = ?self.range(), "remote retention deleted segments");
        Ok(())
    }
}

/// Decrements the pending-job count when an upload job is finished with.
struct Done<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
