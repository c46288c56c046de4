//! One partition's log: an ordered map of segments, the last one active.
//!
//! Offsets are assigned under the partition lock, so appends are totally ordered. The high
//! watermark only covers data an `fdatasync` has made durable: the partition's flusher task syncs
//! the active segment when an `acks=all` producer asks (immediately) or when data has been written
//! (within `flush_interval_ms`). One sync covers every producer waiting at that moment (group
//! commit). Rolling a segment syncs it and its indexes before the new one takes writes, so every
//! closed segment is durable and only the active one can have a torn tail after a crash.
//!
//! Cancellation: `append` does its I/O synchronously under the lock and cannot be torn by a
//! dropped future; a dropped `wait_durable` only stops waiting.

use super::error::LogError;
use super::producer::{Check, ProducerStates};
use super::segment::{locate, read_batches, Segment, Target};
use super::txn_index::OpenTxns;
use crate::clock::SharedClock;
use crate::config::LogConfig;
use crate::config::TimestampType;
use crate::format::batch::{self, BatchHeader};
use crate::tier::{RemoteLog, UploadJob};
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

pub struct Partition {
    pub topic: String,
    pub index: i32,
    pub(super) dir: PathBuf,
    pub(super) inner: Mutex<Inner>,
    config: RwLock<LogConfig>,
    pub(super) clock: SharedClock,
    /// Broadcasts the high watermark; fetch long-polls and acks=all producers wait on it.
    hw_tx: watch::Sender<i64>,
    /// Wakes the flusher now (an acks=all producer is waiting).
    urgent: Notify,
    /// Tells the flusher there is unsynced data (flush within the interval).
    dirty: Notify,
    /// Set after an I/O error the partition cannot vouch past; every later append fails.
    offline: AtomicBool,
    /// Set when the topic is deleted: appends and waiters fail, the flusher exits.
    deleted: CancellationToken,
    /// The partition's history in the object store, when tiered. Set at open, or later when
    /// the object store was unreachable at start-up ([`Partition::attach_remote`]).
    pub(super) remote: std::sync::OnceLock<Arc<RemoteLog>>,
}

pub(super) struct Inner {
    pub(super) segments: BTreeMap<i64, Segment>,
    /// Idempotent producers' recent batches, rebuilt from the log at open.
    pub(super) producers: ProducerStates,
    /// Open transactions (they hold the last stable offset back), rebuilt from the log at open.
    pub(super) txns: OpenTxns,
    /// The first local offset (the remote log, when tiered, may reach further back).
    pub(super) log_start_offset: i64,
    /// Nothing below this offset is readable (DeleteRecords); persisted in `LOG_START_FILE`.
    pub(super) records_start: i64,
    pub(super) high_watermark: i64,
}

impl Inner {
    fn active(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .unwrap_or_else(|| unreachable!("a partition always has an active segment"))
    }
    pub(super) fn offsets(&self) -> Offsets {
        let hw = self.high_watermark;
        Offsets {
            log_start_offset: self.log_start_offset,
            high_watermark: hw,
            last_stable_offset: self.txns.first_open().map_or(hw, |f| f.min(hw)),
            log_end_offset: self.next_offset(),
        }
    }
    fn next_offset(&self) -> i64 {
        self.segments
            .values()
            .next_back()
            .map(|s| s.next_offset)
            .unwrap_or(self.log_start_offset)
    }
}

/// What an append assigned.
#[derive(Debug, Clone, Copy)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The broker time written into the batch for LogAppendTime topics, else -1.
    pub log_append_time: i64,
    pub log_start_offset: i64,
}

/// Offsets a fetch reports beside its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offsets {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    /// The first offset of the oldest open transaction, or the high watermark.
    pub last_stable_offset: i64,
    pub log_end_offset: i64,
}

/// A read of whole batches.
#[derive(Debug, Clone)]
pub struct ReadResult {
    pub records: Bytes,
    pub offsets: Offsets,
}

impl Partition {
    /// Opens (or creates) the partition in `dir`. `recover` scans and repairs the active segment.
    /// With a `remote` log, an empty (or wholly older) local log continues where the bucket
    /// ends, and closed segments the manifest does not list yet are queued for upload.
    pub fn open(
        topic: &str,
        index: i32,
        dir: PathBuf,
        config: LogConfig,
        clock: SharedClock,
        recover: bool,
        remote: Option<Arc<RemoteLog>>,
    ) -> Result<Arc<Partition>, LogError> {
        std::fs::create_dir_all(&dir)?;
        let remote_end = remote.as_ref().and_then(|r| r.uploaded_end());
        let mut bases: Vec<i64> = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(stem) = name.strip_suffix(".log") {
                if let Ok(base) = stem.parse::<i64>() {
                    bases.push(base);
                }
            } else if name.ends_with(".tmp") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        bases.sort_unstable();
        let now = clock.now_ms();
        let interval = config.index_interval_bytes as u64;
        let mut segments = BTreeMap::new();
        let mut producers = ProducerStates::default();
        let mut txns = OpenTxns::default();
        for (i, &base) in bases.iter().enumerate() {
            let is_last = i + 1 == bases.len();
            let mut observe = |h: &BatchHeader, marker: Option<bool>| {
                producers.record(h, h.base_offset, h.max_timestamp);
                txns.observe(h, marker)
            };
            let mut seg =
                Segment::open(&dir, base, recover && is_last, interval, now, &mut observe)?;
            if !is_last {
                seg.write_indexes()?;
            }
            segments.insert(base, seg);
        }
        let local_end = segments.values().next_back().map(|s| s.next_offset);
        if let (Some(local_end), Some(remote_end)) = (local_end, remote_end) {
            if local_end < remote_end {
                // the bucket holds everything this disk has and more (an old copy of the disk)
                tracing::warn!(topic, partition = index, local_end, remote_end, "local log ends before the remote log: local segments replaced by the remote history");
                for seg in std::mem::take(&mut segments).into_values() {
                    seg.delete_files()?;
                }
                txns = OpenTxns::default();
            }
        }
        if segments.is_empty() {
            let base = remote_end.unwrap_or(0);
            segments.insert(base, Segment::create(&dir, base, now)?);
            crate::fs::sync_dir(&dir)?;
        }
        let records_start = read_records_start(&dir)?;
        let log_start_offset = segments
            .keys()
            .next()
            .copied()
            .unwrap_or(0)
            .max(records_start);
        let mut inner = Inner {
            segments,
            producers,
            txns,
            log_start_offset,
            records_start,
            high_watermark: 0,
        };
        inner.high_watermark = inner.next_offset();
        let hw = inner.high_watermark;
        let p = Arc::new(Partition {
            topic: topic.to_string(),
            index,
            dir,
            inner: Mutex::new(inner),
            config: RwLock::new(config),
            clock,
            hw_tx: watch::Sender::new(hw),
            urgent: Notify::new(),
            dirty: Notify::new(),
            offline: AtomicBool::new(false),
            deleted: CancellationToken::new(),
            remote: std::sync::OnceLock::new(),
        });
        if let Some(r) = remote {
            p.attach_remote(r);
        }
        Ok(p)
    }

    /// Connects the partition to its remote log and queues what it has not uploaded yet.
    /// Only the first call has an effect.
    pub fn attach_remote(&self, remote: Arc<RemoteLog>) {
        if self.remote.set(remote).is_ok() {
            if self.deleted.is_cancelled() {
                if let Some(r) = self.remote.get() {
                    r.stop();
                }
                return;
            }
            self.schedule_uploads();
        }
    }

    /// Queues every closed segment the remote manifest does not list yet, up to the oldest open
    /// transaction: as in Kafka, only segments below the last stable offset go up, so the
    /// bucket never holds records of an undecided transaction.
    pub(super) fn schedule_uploads(&self) {
        let Some(remote) = self.remote.get() else {
            return;
        };
        let uploaded = remote.uploaded_end().unwrap_or(i64::MIN);
        let inner = self.inner.lock();
        let first_open = inner.txns.first_open().unwrap_or(i64::MAX);
        let closed = inner.segments.len().saturating_sub(1);
        for seg in inner.segments.values().take(closed) {
            if seg.next_offset > first_open {
                break;
            }
            if seg.next_offset > uploaded && !seg.is_empty() {
                remote.schedule(upload_job(&inner, seg));
            }
        }
    }

    pub fn remote(&self) -> Option<&Arc<RemoteLog>> {
        self.remote.get()
    }

    /// Closed local segments not in the bucket yet: (bytes, segments).
    pub fn upload_lag(&self) -> (u64, usize) {
        let Some(remote) = self.remote.get() else {
            return (0, 0);
        };
        let uploaded = remote.uploaded_end().unwrap_or(i64::MIN);
        let inner = self.inner.lock();
        let closed = inner.segments.len().saturating_sub(1);
        inner
            .segments
            .values()
            .take(closed)
            .filter(|s| s.next_offset > uploaded && !s.is_empty())
            .fold((0, 0), |(b, n), s| (b + s.len, n + 1))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> LogConfig {
        self.config.read().clone()
    }

    pub fn set_config(&self, config: LogConfig) {
        *self.config.write() = config;
    }

    /// Log start (remote history included), high watermark and log end.
    pub fn offsets(&self) -> Offsets {
        let (mut o, floor) = {
            let inner = self.inner.lock();
            (inner.offsets(), inner.records_start)
        };
        if let Some((start, _)) = self.remote.get().and_then(|r| r.range()) {
            o.log_start_offset = o.log_start_offset.min(start).max(floor);
        }
        o
    }

    /// The first offset on local disk (ListOffsets -4).
    pub fn local_start_offset(&self) -> i64 {
        self.inner.lock().log_start_offset
    }

    /// Total bytes of the partition's segments.
    pub fn size_bytes(&self) -> u64 {
        self.inner.lock().segments.values().map(|s| s.len).sum()
    }

    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.hw_tx.subscribe()
    }

    /// Validates a client batch (exactly one magic-v2 batch), assigns its offsets and appends it.
    /// Data becomes visible to consumers once the flusher has synced it. Transactional batches
    /// are refused: they need [`Partition::append_verified`].
    pub fn append(&self, data: &[u8]) -> Result<AppendInfo, LogError> {
        self.append_verified(data, &|_| Err(LogError::InvalidTxnState))
    }

    /// As [`Partition::append`]; a transactional batch is appended only if `verify` (run under
    /// the partition lock, so no marker can slip in between) says its transaction holds this
    /// partition.
    pub fn append_verified(
        &self,
        data: &[u8],
        verify: &dyn Fn(&BatchHeader) -> Result<(), LogError>,
    ) -> Result<AppendInfo, LogError> {
        let config = self.config();
        let now = self.clock.now_ms();
        let h = super::validate::validate_client_batch(data, &config, now)?;
        if config.cleanup_compact {
            super::validate::check_keys(data, &h, &self.topic, self.index)?;
        }
        // compression.type other than `producer`: the broker recompresses, as Kafka does
        let recompressed;
        let data = match config.compression {
            Some(codec) if codec != h.compression() => {
                recompressed = crate::format::records::recompress(
                    data,
                    codec,
                    crate::format::records::MAX_SECTION,
                )
                .map_err(|e| LogError::InvalidRecord(e.to_string()))?;
                recompressed.as_slice()
            }
            _ => data,
        };
        self.check_usable()?;
        let mut inner = self.inner.lock();
        if h.producer_id >= 0 {
            if let Check::Duplicate(b) = inner.producers.check(&h)? {
                // a retry of a batch already in the log: answer with its original offsets
                return Ok(AppendInfo {
                    base_offset: b.base_offset,
                    last_offset: b.last_offset,
                    log_append_time: -1,
                    log_start_offset: inner.log_start_offset,
                });
            }
        }
        if h.is_transactional() {
            verify(&h)?;
        }
        self.append_locked(&mut inner, data, h, &config, now, None)
    }

    /// Assigns offsets to a validated batch and writes it; `marker` is a control batch's kind.
    pub(super) fn append_locked(
        &self,
        inner: &mut Inner,
        data: &[u8],
        h: BatchHeader,
        config: &LogConfig,
        now: i64,
        marker: Option<bool>,
    ) -> Result<AppendInfo, LogError> {
        let base = inner.next_offset();
        let last = base + h.last_offset_delta as i64;
        let needs_roll = {
            let active = inner.active();
            !active.is_empty()
                && (active.len + data.len() as u64 > config.segment_bytes as u64
                    || now - active.created_ms >= config.segment_ms
                    || !active.can_hold_offset(last))
        };
        if needs_roll {
            self.roll(inner, base, now)
                .inspect_err(|_| self.go_offline())?;
        }
        let (mut head, body) = (batch::header_copy(data), &data[batch::HEADER_LEN..]);
        batch::set_base_offset(&mut head, base);
        let log_append_time = if config.timestamp_type == TimestampType::LogAppendTime {
            batch::set_log_append_time(&mut head, body, now);
            now
        } else {
            -1
        };
        let mut stored = h;
        stored.base_offset = base;
        if log_append_time >= 0 {
            stored.max_timestamp = now;
        }
        let interval = config.index_interval_bytes as u64;
        if let Err(e) = inner.active().append(&head, body, &stored, interval) {
            // a full disk leaves the segment whole (the write was cut back); other errors may not
            if e.raw_os_error() != Some(libc::ENOSPC) {
                self.go_offline();
            }
            tracing::error!(topic = %self.topic, partition = self.index, error = %e, "append failed");
            return Err(LogError::Io(e));
        }
        inner.producers.record(&stored, base, now);
        if let Some(aborted) = inner.txns.observe(&stored, marker) {
            inner.active().note_aborted(aborted);
        }
        let log_start_offset = inner.log_start_offset;
        self.dirty.notify_one();
        Ok(AppendInfo {
            base_offset: base,
            last_offset: last,
            log_append_time,
            log_start_offset,
        })
    }

    /// Syncs the active segment and its indexes, then starts a new segment at `base`.
    fn roll(&self, inner: &mut Inner, base: i64, now: i64) -> Result<(), LogError> {
        let active = inner.active();
        active.release_reserved()?;
        active.file().sync_data()?;
        active.durable_len = active.len;
        active.write_indexes()?;
        let synced_to = active.next_offset;
        let rolled = active.base_offset;
        // a segment an open transaction reaches into waits for its end (append_marker)
        let upload = match self.remote.get() {
            Some(remote) if inner.txns.first_open().is_none_or(|f| synced_to <= f) => inner
                .segments
                .get(&rolled)
                .map(|s| (remote, upload_job(inner, s))),
            _ => None,
        };
        let seg = Segment::create(&self.dir, base, now)?;
        crate::fs::sync_dir(&self.dir)?;
        inner.segments.insert(base, seg);
        if let Some((remote, job)) = upload {
            remote.schedule(job);
        }
        if synced_to > inner.high_watermark {
            inner.high_watermark = synced_to;
            self.hw_tx.send_replace(synced_to);
        }
        Ok(())
    }

    pub(super) fn check_usable(&self) -> Result<(), LogError> {
        if self.deleted.is_cancelled() {
            return Err(LogError::Deleted);
        }
        if self.offline.load(Ordering::Acquire) {
            return Err(LogError::Offline);
        }
        Ok(())
    }

    /// Marks the partition deleted: its flusher stops and everyone waiting on it is released.
    pub fn mark_deleted(&self) {
        self.deleted.cancel();
        if let Some(remote) = self.remote.get() {
            remote.stop();
        }
        self.hw_tx.send_modify(|_| {});
    }

    fn go_offline(&self) {
        self.offline.store(true, Ordering::Release);
        // wake waiters so they see the failure
        self.hw_tx.send_modify(|_| {});
    }

    /// Waits until every offset below `end` is durable (for acks=all).
    pub async fn wait_durable(&self, end: i64) -> Result<(), LogError> {
        let mut rx = self.hw_tx.subscribe();
        self.urgent.notify_one();
        loop {
            self.check_usable()?;
            if *rx.borrow_and_update() >= end {
                return Ok(());
            }
            if rx.changed().await.is_err() {
                return Err(LogError::Offline);
            }
        }
    }

    /// The flusher: syncs on demand (urgent) or within `flush_interval` of a write (dirty).
    pub async fn run_flusher(self: Arc<Self>, flush_interval: Duration, cancel: CancellationToken) {
        loop {
            tokio::select! {
                _ = self.urgent.notified() => {}
                _ = self.dirty.notified() => {
                    tokio::select! {
                        _ = tokio::time::sleep(flush_interval) => {}
                        _ = self.urgent.notified() => {}
                        _ = cancel.cancelled() => {}
                    }
                }
                _ = cancel.cancelled() => return,
                _ = self.deleted.cancelled() => return,
            }
            self.flush_once().await;
        }
    }

    /// One group-commit round: sync the active segment as written so far, then advance the HW.
    pub async fn flush_once(&self) {
        if self.offline.load(Ordering::Acquire) {
            return;
        }
        let snapshot = {
            let mut inner = self.inner.lock();
            let hw = inner.high_watermark;
            let active = inner.active();
            if active.durable_len == active.len && hw >= active.next_offset {
                None
            } else {
                Some((
                    active.base_offset,
                    active.file(),
                    active.len,
                    active.next_offset,
                ))
            }
        };
        let Some((base, file, len, next)) = snapshot else {
            return;
        };
        let started = std::time::Instant::now();
        let res = tokio::task::spawn_blocking(move || file.sync_data()).await;
        crate::metrics::flush_latency(started.elapsed());
        match res {
            Ok(Ok(())) => {
                let mut inner = self.inner.lock();
                if let Some(seg) = inner.segments.get_mut(&base) {
                    seg.durable_len = seg.durable_len.max(len);
                }
                if next > inner.high_watermark {
                    inner.high_watermark = next;
                    self.hw_tx.send_replace(next);
                }
            }
            Ok(Err(e)) => {
                tracing::error!(topic = %self.topic, partition = self.index, error = %e, "fdatasync failed; partition taken offline");
                self.go_offline();
            }
            Err(e) => {
                tracing::error!(topic = %self.topic, partition = self.index, error = %e, "flush task failed");
                self.go_offline();
            }
        }
    }

    /// Reads whole batches starting with the one holding `offset`, up to the high watermark.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<ReadResult, LogError> {
        let (file, start_pos, limit, offsets) = {
            let inner = self.inner.lock();
            let offsets = inner.offsets();
            if offset < offsets.log_start_offset || offset > offsets.log_end_offset {
                return Err(LogError::OffsetOutOfRange {
                    offset,
                    log_start: offsets.log_start_offset,
                    log_end: offsets.log_end_offset,
                });
            }
            if offset >= offsets.high_watermark {
                return Ok(ReadResult {
                    records: Bytes::new(),
                    offsets,
                });
            }
            let seg = inner
                .segments
                .range(..=offset)
                .next_back()
                .map(|(_, s)| s)
                .filter(|s| s.next_offset > offset)
                // else the next segment with data (compaction can leave the first one empty)
                .or_else(|| {
                    inner
                        .segments
                        .range(offset..)
                        .map(|(_, s)| s)
                        .find(|s| s.next_offset > offset)
                });
            let Some(seg) = seg else {
                return Ok(ReadResult {
                    records: Bytes::new(),
                    offsets,
                });
            };
            (
                seg.file(),
                seg.index_position(offset),
                seg.durable_len,
                offsets,
            )
        };
        let located = locate(&file, start_pos, limit, Target::Offset(offset))?;
        let records = match located {
            Some((loc, _)) => read_batches(&file, loc, limit, max_bytes, min_one)?,
            None => Bytes::new(),
        };
        Ok(ReadResult { records, offsets })
    }

    /// Reads whole batches starting with the one holding `offset`, from local disk or, below the
    /// local log start, from the remote log.
    pub async fn fetch(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<ReadResult, LogError> {
        let Some(remote) = self.remote.get() else {
            return self.read(offset, max_bytes, min_one);
        };
        // retention may move the local start between the check and the read: look again once
        for _ in 0..2 {
            let local_start = self.local_start_offset();
            if offset >= local_start {
                match self.read(offset, max_bytes, min_one) {
                    Err(LogError::OffsetOutOfRange { .. })
                        if offset < self.local_start_offset() => {}
                    r => return r,
                }
                continue;
            }
            let offsets = self.offsets();
            if offset < offsets.log_start_offset {
                return Err(LogError::OffsetOutOfRange {
                    offset,
                    log_start: offsets.log_start_offset,
                    log_end: offsets.log_end_offset,
                });
            }
            return match remote.read(offset, max_bytes, min_one).await {
                Ok(Some(records)) => Ok(ReadResult { records, offsets }),
                // nothing remote at or after `offset` (a gap): the local log continues
                Ok(None) => self.read(local_start, max_bytes, min_one),
                Err(e) => Err(e.into()),
            };
        }
        self.read(offset, max_bytes, min_one)
    }

    /// ListOffsets by timestamp over the whole log, remote history first.
    pub async fn find_offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        if let Some(remote) = self.remote.get() {
            let below = self.local_start_offset();
            if let Some((h, bytes)) = remote.find_timestamp(ts, below).await? {
                return Ok(Some(first_record_at_or_after(&bytes, &h, ts)));
            }
        }
        self.offset_for_timestamp(ts)
    }

    /// Kafka's ListOffsets by timestamp: the first offset whose batch has a timestamp `>= ts`
    /// and its timestamp, among durable data. `None` when there is none.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        let candidates: Vec<(std::sync::Arc<std::fs::File>, u64, u64)> = {
            let inner = self.inner.lock();
            inner
                .segments
                .values()
                .filter(|s| s.max_timestamp >= ts && s.durable_len > 0)
                .map(|s| (s.file(), s.time_position(ts), s.durable_len))
                .collect()
        };
        for (file, pos, limit) in candidates {
            if let Some((loc, h)) = locate(&file, pos, limit, Target::Timestamp(ts))? {
                let bytes = read_batches(&file, loc, limit, 0, true)?;
                let exact = first_record_at_or_after(&bytes, &h, ts);
                return Ok(Some(exact));
            }
        }
        Ok(None)
    }

    /// The offset and timestamp of the record with the largest timestamp (ListOffsets -3).
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        let local = {
            let inner = self.inner.lock();
            let hw = inner.high_watermark;
            inner
                .segments
                .values()
                .filter(|s| s.max_timestamp >= 0 && s.offset_of_max_timestamp < hw)
                .max_by_key(|s| s.max_timestamp)
                .map(|s| (s.offset_of_max_timestamp, s.max_timestamp))
        };
        let remote = self.remote.get().and_then(|r| r.max_timestamp());
        match (local, remote) {
            // the earliest offset wins a tie, as in Kafka
            (Some(l), Some(r)) if r.1 >= l.1 => Some(r),
            (Some(l), _) => Some(l),
            (None, r) => r,
        }
    }

    /// Flushes everything and writes every segment's indexes (clean shutdown).
    pub fn close(&self) -> Result<(), LogError> {
        let mut inner = self.inner.lock();
        for seg in inner.segments.values_mut() {
            seg.release_reserved()?;
            seg.file().sync_data()?;
            seg.durable_len = seg.len;
            seg.write_indexes()?;
        }
        Ok(())
    }
}

pub(super) use crate::format::LOG_START_FILE;

fn read_records_start(dir: &Path) -> Result<i64, LogError> {
    match std::fs::read_to_string(dir.join(LOG_START_FILE)) {
        Ok(text) => text.trim().parse().map_err(|_| {
            LogError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} holds {text:?}, not an offset",
                    dir.join(LOG_START_FILE).display()
                ),
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// What uploading `seg` takes, including the aborted transactions that reach into it (their
/// markers may be in later segments, all still local: segments go up in order).
fn upload_job(inner: &Inner, seg: &Segment) -> UploadJob {
    let aborted: Vec<crate::format::txn_index::AbortedTxn> = inner
        .segments
        .range(seg.base_offset..)
        .flat_map(|(_, s)| s.aborted.iter())
        .filter(|a| a.overlaps(seg.base_offset, seg.next_offset))
        .copied()
        .collect();
    UploadJob {
        txn_index: bytes::Bytes::from(crate::format::txn_index::encode(&aborted)),
        base_offset: seg.base_offset,
        next_offset: seg.next_offset,
        size_bytes: seg.len,
        max_timestamp: seg.max_timestamp,
        offset_of_max_timestamp: seg.offset_of_max_timestamp,
        data: seg.lend(),
        index: seg.index_bytes(),
        time_index: seg.time_index_bytes(),
    }
}

/// Within one batch, the offset and timestamp of the first record with timestamp `>= ts`.
/// Compressed batches are decompressed (with a cap) to find it; a LogAppendTime batch has one
/// timestamp for all its records, so its first offset answers.
fn first_record_at_or_after(bytes: &[u8], h: &BatchHeader, ts: i64) -> (i64, i64) {
    if h.is_log_append_time() {
        return (h.base_offset, h.max_timestamp);
    }
    let found = crate::format::records::records_section(bytes, crate::format::records::MAX_SECTION)
        .ok()
        .and_then(|section| {
            let recs = crate::format::records::parse(&section, h.record_count).ok()?;
            recs.iter()
                .map(|r| {
                    (
                        r.offset_delta,
                        h.base_timestamp.saturating_add(r.timestamp_delta),
                    )
                })
                .find(|&(_, rts)| rts >= ts)
                .map(|(d, rts)| (h.base_offset + d as i64, rts))
        });
    found.unwrap_or((h.base_offset, h.max_timestamp))
}

#[cfg(test)]
#[path = "partition_tests.rs"]
mod tests;
