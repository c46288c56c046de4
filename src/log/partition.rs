//! One partition, as Kafka's `UnifiedLog` over its `LocalLog`: offsets, the high watermark,
//! idempotent-producer and transaction state, the flusher, DeleteRecords and retention, and the
//! hooks to the remote log when tiered. Every file-system call goes to the
//! [`LocalLog`](super::local_log::LocalLog) on the log's I/O executor; what the runtime reads
//! (offsets, sizes) comes from in-memory state that no I/O ever holds.
//!
//! Ordering. An append runs on the I/O executor holding the sequencing lock (producer and
//! transaction state) for the whole append: deduplication, the transaction check, offset
//! assignment and the write happen in one total order, and no marker can slip in between.
//!
//! Durability (`durability.rs`). The high watermark only covers data an `fdatasync` has made
//! durable. An `acks=all` produce has the thread that appended its batch sync it right after
//! (no hand-off to another task or thread); the flusher syncs what else asks for it, and what
//! was written, within `flush_interval_ms`. One sync at a time per partition covers everything
//! appended before it (group commit): an appender that finds a sync running leaves its data to
//! that one, which goes round again. Rolled segments are made durable and finalized (indexes,
//! producer snapshot) by the sync that covers them, off the append's answer. In a cluster the high watermark also waits
//! for the bucket WAL's commit (`replicated.rs`); tier hooks are in `tiering.rs`.
//!
//! Cancellation: an append, once handed to the executor, completes even if its caller goes
//! away; a dropped `wait_durable` only stops waiting.

use super::cleaner::{self, CleanStats};
use super::error::LogError;
use super::io::Io;
use super::local_log::{LocalLog, OpenOptions, Roll};
use super::producer::Check;
use super::results::{AppendInfo, Offsets, ReadResult};
use super::retention;
use super::sequencer::{ProducerView, Sequencer};
use super::validate::{prepare, Prepared};
use crate::clock::SharedClock;
use crate::cluster::wal::WalLink;
use crate::config::{LogConfig, TimestampType};
use crate::format::batch::{self, BatchHeader};
use crate::format::txn_index::AbortedTxn;
use crate::format::{markers, read, records, LOG_START_FILE};
use crate::tier::RemoteLog;
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

pub use super::validate::Verify;

/// I/O calls at once for a partition opened on an executor of its own.
const OWN_IO: usize = 4;

pub struct Partition {
    pub topic: String,
    pub index: i32,
    pub(super) log: Arc<LocalLog>,
    io: Io,
    config: RwLock<LogConfig>,
    clock: SharedClock,
    /// Producer and transaction state, held by an append from its checks to its write.
    seq: Mutex<Sequencer>,
    /// What the runtime reads: never held across I/O.
    state: Mutex<State>,
    /// Broadcasts the high watermark; fetch long-polls and acks=all producers wait on it.
    hw_tx: watch::Sender<i64>,
    /// Wakes the flusher now (an acks=all producer is waiting).
    urgent: Notify,
    /// Group commit after appends ([`Self::sync_after_append`]): a sync is wanted / one runs.
    sync_wanted: AtomicBool,
    sync_running: AtomicBool,
    /// Records appended since the last sync (for `flush.messages`).
    unflushed: std::sync::atomic::AtomicI64,
    /// Tells the flusher there is unsynced data (flush within the interval).
    dirty: Notify,
    /// Set after an I/O error the partition cannot vouch past; every later append fails.
    offline: AtomicBool,
    /// Set when the topic is deleted: appends and waiters fail, the flusher exits.
    deleted: CancellationToken,
    /// With `deleted`: the partition is not gone, another node serves it now.
    moved: AtomicBool,
    /// The partition's history in the object store, when tiered. Set at open, or later when
    /// the object store was unreachable at start-up ([`Partition::attach_remote`]).
    remote: std::sync::OnceLock<Arc<RemoteLog>>,
    /// Itself, for callbacks that outlive a call.
    me: std::sync::Weak<Partition>,
    /// Cluster mode: the bucket WAL every append also goes to; the high watermark then follows
    /// what is committed there as well as what is synced here.
    wal: std::sync::OnceLock<WalLink>,
    /// End of what the last sync made durable locally.
    durable_end: std::sync::atomic::AtomicI64,
    /// End of what the WAL committed (cluster mode).
    committed_end: std::sync::atomic::AtomicI64,
    /// Batches handed to the WAL since this node began leading the partition.
    wal_batches: std::sync::atomic::AtomicU64,
    /// Transaction markers appended here per producer id since the partition was opened: a
    /// transactional batch verified with a remote coordinator is appended only if no marker of
    /// its producer came in between (else it could start a transaction already decided).
    markers: Mutex<HashMap<i64, u64>>,
}

struct State {
    /// Nothing below this offset is readable (DeleteRecords); persisted in `log-start-offset`.
    records_start: i64,
    high_watermark: i64,
    /// The first offset of the oldest open transaction.
    first_open: Option<i64>,
}

impl Partition {
    /// Opens (or creates) the partition in `dir` on an I/O executor of its own (tools, tests).
    /// `recover`: the broker did not stop cleanly. See [`Partition::open_on`].
    pub async fn open(
        topic: &str,
        index: i32,
        dir: PathBuf,
        config: LogConfig,
        clock: SharedClock,
        recover: bool,
        remote: Option<Arc<RemoteLog>>,
    ) -> Result<Arc<Partition>, LogError> {
        let io = Io::new(OWN_IO);
        Self::open_on(io, topic, index, dir, config, clock, recover, remote).await
    }

    /// Opens (or creates) the partition in `dir`, its files on `io`. With a `remote` log, an
    /// empty (or wholly older) local log continues where the bucket ends, and closed segments
    /// the manifest does not list yet are queued for upload.
    #[allow(clippy::too_many_arguments)]
    pub async fn open_on(
        io: Io,
        topic: &str,
        index: i32,
        dir: PathBuf,
        config: LogConfig,
        clock: SharedClock,
        recover: bool,
        remote: Option<Arc<RemoteLog>>,
    ) -> Result<Arc<Partition>, LogError> {
        let options = OpenOptions {
            clean: !recover,
            index_interval: config.index_interval_bytes as u64,
            now_ms: clock.now_ms(),
            remote_end: remote.as_ref().and_then(|r| r.uploaded_end()),
        };
        let (log, seq, records_start) = io
            .run(move || {
                let mut seq = Sequencer::default();
                let log = LocalLog::open(&dir, options, &mut seq)?;
                let records_start = log.read_number(LOG_START_FILE)?.unwrap_or(0);
                Ok((log, seq, records_start))
            })
            .await?;
        let hw = log.summary().end_offset;
        let first_open = seq.txns.first_open();
        let p = Arc::new_cyclic(|me| Partition {
            me: me.clone(),
            wal: std::sync::OnceLock::new(),
            durable_end: std::sync::atomic::AtomicI64::new(hw),
            committed_end: std::sync::atomic::AtomicI64::new(hw),
            wal_batches: std::sync::atomic::AtomicU64::new(0),
            markers: Mutex::new(HashMap::new()),
            topic: topic.to_string(),
            index,
            log: Arc::new(log),
            io,
            config: RwLock::new(config),
            clock,
            seq: Mutex::new(seq),
            state: Mutex::new(State {
                records_start,
                high_watermark: hw,
                first_open,
            }),
            hw_tx: watch::Sender::new(hw),
            urgent: Notify::new(),
            sync_wanted: AtomicBool::new(false),
            sync_running: AtomicBool::new(false),
            unflushed: std::sync::atomic::AtomicI64::new(0),
            dirty: Notify::new(),
            offline: AtomicBool::new(false),
            deleted: CancellationToken::new(),
            moved: AtomicBool::new(false),
            remote: std::sync::OnceLock::new(),
        });
        if let Some(r) = remote {
            p.attach_remote(r);
        }
        Ok(p)
    }

    /// The time on the partition's clock (what appends are stamped with).
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn dir(&self) -> &Path {
        self.log.dir()
    }

    pub fn config(&self) -> LogConfig {
        self.config.read().clone()
    }

    pub fn set_config(&self, config: LogConfig) {
        if !config.remote_storage_enable {
            // the topic stopped tiering (it became compacted before anything was uploaded)
            if let Some(remote) = self.remote.get() {
                remote.stop();
            }
        }
        *self.config.write() = config;
    }

    /// Whether any of the partition's history is in the bucket or on its way there (also when
    /// it is tiered but its remote log is not attached yet: unknown counts as yes).
    pub fn has_remote_history(&self) -> bool {
        match self.remote.get() {
            Some(r) => r.has_history(),
            None => self.config().remote_storage_enable,
        }
    }

    /// Log start (remote history included), high watermark, last stable offset and log end.
    pub fn offsets(&self) -> Offsets {
        let mut o = self.local_offsets();
        let floor = self.state.lock().records_start;
        if let Some((start, _)) = self.remote.get().and_then(|r| r.range()) {
            o.log_start_offset = o.log_start_offset.min(start).max(floor);
        }
        o
    }

    /// As [`Partition::offsets`], with the local log's start.
    fn local_offsets(&self) -> Offsets {
        let sum = self.log.summary();
        let st = self.state.lock();
        let hw = st.high_watermark;
        Offsets {
            log_start_offset: sum.start_offset.max(st.records_start),
            high_watermark: hw,
            last_stable_offset: st.first_open.map_or(hw, |f| f.min(hw)),
            log_end_offset: sum.end_offset,
        }
    }

    /// The first offset on local disk (ListOffsets -4).
    pub fn local_start_offset(&self) -> i64 {
        self.local_offsets().log_start_offset
    }

    /// Total bytes of the partition's local segments.
    pub fn size_bytes(&self) -> u64 {
        self.log.summary().size_bytes
    }

    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.hw_tx.subscribe()
    }

    /// Validates a client batch (exactly one magic-v2 batch), assigns its offsets and appends it.
    /// Data becomes visible to consumers once the flusher has synced it. Transactional batches
    /// are refused: they need [`Partition::append_verified`].
    pub async fn append(self: &Arc<Self>, data: Bytes) -> Result<AppendInfo, LogError> {
        self.append_verified(data, Arc::new(|_| Err(LogError::InvalidTxnState)))
            .await
    }

    /// As [`Partition::append`]; a transactional batch is appended only if `verify` (run under
    /// the sequencing lock, so no marker can slip in between) says its transaction holds this
    /// partition.
    pub async fn append_verified(
        self: &Arc<Self>,
        data: Bytes,
        verify: Verify,
    ) -> Result<AppendInfo, LogError> {
        let prepared = self.prepare(data, verify)?;
        let me = self.clone();
        self.io.run(move || me.append_prepared(prepared)).await
    }

    /// Checks a client batch (Kafka's batch rules, keys on compacted topics) and recompresses
    /// it when the topic says so: the CPU part of an append, done before it is queued.
    pub fn prepare(&self, data: Bytes, verify: Verify) -> Result<Prepared, LogError> {
        let p = prepare(
            data,
            self.config(),
            self.clock.now_ms(),
            verify,
            (&self.topic, self.index),
        )?;
        self.check_usable()?;
        Ok(p)
    }

    /// The write part of an append: deduplication, the transaction check, offsets, the write.
    /// Blocking: on the I/O executor (see [`crate::log::LogManager::append_all`]).
    pub(super) fn append_prepared(&self, p: Prepared) -> Result<AppendInfo, LogError> {
        let mut seq = self.seq.lock();
        self.check_usable()?;
        let h = p.header;
        if h.producer_id >= 0 {
            if let Check::Duplicate(b) = seq.producers.check(&h)? {
                // a retry of a batch already in the log: its original offsets
                return Ok(AppendInfo {
                    base_offset: b.base_offset,
                    last_offset: b.last_offset,
                    log_append_time: -1,
                    log_start_offset: self.local_start_offset(),
                });
            }
        }
        if h.is_transactional() {
            (p.verify)(&h)?;
        }
        self.append_locked(&mut seq, &p.data, h, &p.config, p.now, None, false)
    }

    /// Transaction markers of `producer_id` appended here so far (see [`Self::append`]'s
    /// remote verification).
    pub fn markers_of(&self, producer_id: i64) -> u64 {
        self.markers.lock().get(&producer_id).copied().unwrap_or(0)
    }

    /// Appends the coordinator's commit or abort marker for `producer_id` and returns its
    /// offset. A marker from an epoch older than the partition has seen is refused.
    pub async fn append_marker(
        self: &Arc<Self>,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
    ) -> Result<i64, LogError> {
        self.check_usable()?;
        let config = self.config();
        let now = self.clock.now_ms();
        let data = markers::marker_batch(producer_id, epoch, commit, coordinator_epoch, now);
        let h = batch::validate(&data)?;
        let me = self.clone();
        let offset = self
            .io
            .run(move || {
                let mut seq = me.seq.lock();
                me.check_usable()?;
                seq.producers.check_marker(producer_id, epoch)?;
                let offset = me
                    .append_locked(&mut seq, &data, h, &config, now, Some(commit), false)
                    .map(|info| info.last_offset)?;
                *me.markers.lock().entry(producer_id).or_default() += 1;
                Ok(offset)
            })
            .await?;
        // segments this transaction held back from the bucket may go up now
        self.queue_uploads().await;
        Ok(offset)
    }

    /// Assigns offsets to a validated batch and writes it; `marker` is a control batch's kind.
    /// With `replay`, the batch is one the WAL committed (a new leader catching up): it keeps
    /// its offsets, timestamps and epoch and is not sent to the WAL again. Runs on the I/O
    /// executor under the sequencing lock.
    #[allow(clippy::too_many_arguments)]
    fn append_locked(
        &self,
        seq: &mut Sequencer,
        data: &[u8],
        h: BatchHeader,
        config: &LogConfig,
        now: i64,
        marker: Option<bool>,
        replay: bool,
    ) -> Result<AppendInfo, LogError> {
        let base = self.log.summary().end_offset;
        let last = base + h.last_offset_delta as i64;
        let (mut head, body) = (batch::header_copy(data), &data[batch::HEADER_LEN..]);
        batch::set_base_offset(&mut head, base);
        let wal = if replay { None } else { self.wal.get() };
        if let Some(link) = wal {
            batch::set_partition_leader_epoch(&mut head, link.epoch);
        }
        let log_append_time = if replay {
            -1
        } else if config.timestamp_type == TimestampType::LogAppendTime {
            batch::set_log_append_time(&mut head, body, now);
            now
        } else {
            // validation took the max timestamp from the records; Kafka stores that one
            if BatchHeader::parse(&head).map(|d| d.max_timestamp) != Ok(h.max_timestamp) {
                batch::set_max_timestamp(&mut head, body, h.max_timestamp);
            }
            -1
        };
        let mut stored = h;
        stored.base_offset = base;
        if log_append_time >= 0 {
            stored.max_timestamp = now;
        }
        let roll = Roll {
            segment_bytes: config.segment_bytes,
            segment_ms: config.segment_ms,
            index_interval: config.index_interval_bytes as u64,
            now_ms: now,
        };
        if let Err(e) = self
            .log
            .append(&head, body, &stored, roll, &mut |at| seq.snapshot(at))
        {
            // a full disk leaves the segment whole (the write was cut back); other errors may not
            if e.raw_os_error() != Some(libc::ENOSPC) {
                self.go_offline();
            }
            tracing::error!(topic = %self.topic, partition = self.index, error = %e, "append failed");
            return Err(LogError::Io(e));
        }
        if let Some(link) = wal {
            self.submit_to_wal(link, &head, body, base, last);
        }
        seq.producers.record(&stored, base, now);
        if let Some(aborted) = seq.txns.observe(&stored, marker) {
            self.log.note_aborted(aborted);
        }
        self.state.lock().first_open = seq.txns.first_open();
        let records = last - base + 1;
        if self.unflushed.fetch_add(records, Ordering::AcqRel) + records >= config.flush_messages {
            self.request_sync();
        }
        self.dirty.notify_one();
        Ok(AppendInfo {
            base_offset: base,
            last_offset: last,
            log_append_time,
            log_start_offset: self.local_start_offset(),
        })
    }

    pub(super) fn check_usable(&self) -> Result<(), LogError> {
        if self.deleted.is_cancelled() {
            if self.moved.load(Ordering::Acquire) {
                return Err(LogError::NotLeader);
            }
            return Err(LogError::Deleted);
        }
        self.check_readable()
    }

    /// Reads stop with the partition's disk: after a failed write or fsync (not a full disk)
    /// what the files hold is unknown, so Fetch gets KAFKA_STORAGE_ERROR, as from a Kafka
    /// broker whose log dir went offline.
    fn check_readable(&self) -> Result<(), LogError> {
        if self.offline.load(Ordering::Acquire) {
            return Err(LogError::Offline);
        }
        Ok(())
    }

    /// Marks the partition as served elsewhere now (cluster mode): appends and waiters fail
    /// with [`LogError::NotLeader`], the flusher stops.
    pub fn mark_moved(&self) {
        self.moved.store(true, Ordering::Release);
        self.mark_deleted();
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

    /// OFFSET_OUT_OF_RANGE unless `offset` is within the local log (its end included).
    fn check_local(&self, offset: i64) -> Result<(), LogError> {
        let local = self.local_offsets();
        if offset < local.log_start_offset || offset > local.log_end_offset {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: local.log_start_offset,
                log_end: local.log_end_offset,
            });
        }
        Ok(())
    }

    /// Reads whole batches from local disk starting with the one holding `offset`, up to the
    /// high watermark.
    pub async fn read(
        self: &Arc<Self>,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<ReadResult, LogError> {
        self.check_readable()?;
        self.check_local(offset)?;
        let offsets = self.offsets();
        if offset >= offsets.high_watermark {
            return Ok(ReadResult {
                records: Bytes::new(),
                offsets,
            });
        }
        let log = self.log.clone();
        let records = self
            .io
            .run(move || Ok(log.read(offset, max_bytes, min_one)?))
            .await?;
        Ok(ReadResult { records, offsets })
    }

    /// Reads whole batches starting with the one holding `offset`, from local disk or, below the
    /// local log start, from the remote log.
    pub async fn fetch(
        self: &Arc<Self>,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<ReadResult, LogError> {
        self.check_readable()?;
        let Some(remote) = self.remote.get() else {
            return self.read(offset, max_bytes, min_one).await;
        };
        // retention may move the local start between the check and the read: look again once
        for _ in 0..2 {
            let local_start = self.local_start_offset();
            if offset >= local_start {
                match self.read(offset, max_bytes, min_one).await {
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
                Ok(None) => self.read(local_start, max_bytes, min_one).await,
                Err(e) => Err(e.into()),
            };
        }
        self.read(offset, max_bytes, min_one).await
    }

    /// A `read_committed` fetch: whole batches below the last stable offset, and the aborted
    /// transactions that overlap them (the client drops their records).
    pub async fn fetch_committed(
        self: &Arc<Self>,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<(ReadResult, Vec<AbortedTxn>), LogError> {
        let mut r = self.fetch(offset, max_bytes, min_one).await?;
        let (records, last) = read::batches_below(&r.records, r.offsets.last_stable_offset);
        r.records = records;
        let end = last.map_or(offset, |l| l + 1);
        if end <= offset {
            return Ok((r, Vec::new()));
        }
        let mut aborted = Vec::new();
        if let Some(remote) = self.remote() {
            if offset < self.local_start_offset() {
                // the read came from the bucket: so may the transactions it overlaps
                for e in remote.aborted_between(offset, end).await? {
                    if !aborted.contains(&e) {
                        aborted.push(e);
                    }
                }
            }
        }
        for e in self.aborted_between(offset, end).await? {
            if !aborted.contains(&e) {
                aborted.push(e);
            }
        }
        Ok((r, aborted))
    }

    /// Aborted transactions with records in `[from, to)`, from the local log.
    pub async fn aborted_between(
        self: &Arc<Self>,
        from: i64,
        to: i64,
    ) -> Result<Vec<AbortedTxn>, LogError> {
        let log = self.log.clone();
        self.io.run(move || Ok(log.aborted_between(from, to))).await
    }

    /// ListOffsets by timestamp over the whole log, remote history first.
    pub async fn find_offset_for_timestamp(
        self: &Arc<Self>,
        ts: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        if let Some(remote) = self.remote.get() {
            let below = self.local_start_offset();
            if let Some((h, bytes)) = remote.find_timestamp(ts, below).await? {
                return Ok(Some(records::first_at_or_after(&bytes, &h, ts)));
            }
        }
        self.offset_for_timestamp(ts).await
    }

    /// Kafka's ListOffsets by timestamp: the first offset whose batch has a timestamp `>= ts`
    /// and its timestamp, among durable local data. `None` when there is none.
    pub async fn offset_for_timestamp(
        self: &Arc<Self>,
        ts: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        let log = self.log.clone();
        self.io
            .run(move || {
                Ok(log
                    .find_timestamp(ts)?
                    .map(|(found, bytes)| records::first_at_or_after(&bytes, &found.header, ts)))
            })
            .await
    }

    /// The offset and timestamp of the record with the largest timestamp (ListOffsets -3).
    pub async fn max_timestamp(self: &Arc<Self>) -> Result<Option<(i64, i64)>, LogError> {
        let hw = self.state.lock().high_watermark;
        let log = self.log.clone();
        let local = self.io.run(move || Ok(log.max_timestamp(hw))).await?;
        let remote = self.remote.get().and_then(|r| r.max_timestamp());
        let batch = match (local, remote) {
            // the earliest offset wins a tie, as in Kafka
            (Some(l), Some(r)) if r.1 >= l.1 => Some(r),
            (Some(l), _) => Some(l),
            (None, r) => r,
        };
        let Some((batch_offset, ts)) = batch else {
            return Ok(None);
        };
        // Segments know the batch holding the max timestamp (its last offset); as Kafka 3.8+
        // the answer names the record: the first one stamped `ts`, found inside that batch.
        Ok(Some(match self.find_offset_for_timestamp(ts).await? {
            Some((offset, found)) if found == ts && offset <= batch_offset => (offset, ts),
            _ => (batch_offset, ts),
        }))
    }

    /// DeleteRecords: makes everything below `offset` (-1: the high watermark) unreadable and
    /// deletes the segments wholly below it, locally now and remotely through retention.
    /// Returns the new log start offset.
    pub async fn delete_records(self: &Arc<Self>, offset: i64) -> Result<i64, LogError> {
        self.check_usable()?;
        let current = self.offsets();
        let target = if offset == -1 {
            current.high_watermark
        } else {
            offset
        };
        if target < 0 || target > current.high_watermark {
            return Err(LogError::OffsetOutOfRange {
                offset: target,
                log_start: current.log_start_offset,
                log_end: current.high_watermark,
            });
        }
        if target <= current.log_start_offset {
            return Ok(current.log_start_offset);
        }
        let me = self.clone();
        self.io
            .run(move || {
                me.persist_log_start(target)?;
                let doomed = me.log.closed_below(target);
                Ok(me.log.delete_segments(&doomed)?)
            })
            .await?;
        tracing::info!(topic = %self.topic, partition = self.index, log_start_offset = target, "records deleted");
        if let Some(remote) = self.remote.get() {
            // the bucket learns the floor before the client hears of it; if the store is down
            // the local file holds it and remote retention writes it once the store answers
            if let Err(e) = remote.record_log_start(target).await {
                tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "could not record the log start in the remote manifest yet");
            }
        }
        self.enforce_retention().await?;
        Ok(target)
    }

    /// Writes the log start `target` to its file, then makes it the partition's (on the I/O
    /// executor).
    pub(super) fn persist_log_start(&self, target: i64) -> Result<(), LogError> {
        self.log.write_number(LOG_START_FILE, target)?;
        let mut st = self.state.lock();
        st.records_start = st.records_start.max(target);
        Ok(())
    }

    /// Deletes closed local segments beyond `retention.ms` / `retention.bytes` (the whole log,
    /// remote history included) and, once uploaded, beyond `local.retention.ms/bytes`; then
    /// starts remote retention. Returns how many local segments were deleted.
    pub async fn enforce_retention(self: &Arc<Self>) -> Result<usize, LogError> {
        let config = self.config();
        let now = self.clock.now_ms();
        let remote = self.remote.get();
        let uploaded = remote.and_then(|r| r.uploaded_end());
        let summary = self.log.summary();
        let remote_only = remote.map_or(0, |r| r.bytes_below(summary.start_offset));
        let doomed = retention::expired(&summary, &config, now, uploaded, remote_only);
        let deleted = if doomed.is_empty() {
            0
        } else {
            let log = self.log.clone();
            self.io
                .run(move || Ok(log.delete_segments(&doomed)?))
                .await?
        };
        if deleted > 0 {
            tracing::info!(topic = %self.topic, partition = self.index, segments = deleted, local_start_offset = self.local_start_offset(), "retention deleted local segments");
        }
        if let Some(remote) = remote {
            let summary = self.log.summary();
            let local_only = retention::local_only_bytes(&summary, uploaded);
            let records_start = self.state.lock().records_start;
            remote.schedule_retention(
                config.retention_ms,
                config.retention_bytes,
                records_start,
                local_only,
                now,
            );
        }
        Ok(deleted)
    }

    /// One compaction pass if the partition is compacted and enough of it is dirty (with
    /// `force`, whenever anything is cleanable).
    pub async fn compact(self: &Arc<Self>, force: bool) -> Result<Option<CleanStats>, LogError> {
        let config = self.config();
        // the cleaner never rewrites what the bucket holds
        if !config.cleanup_compact || self.remote().is_some_and(|r| r.has_history()) {
            return Ok(None);
        }
        let now = self.clock.now_ms();
        let lso = self.offsets().last_stable_offset;
        let me = self.clone();
        self.io
            .run(move || {
                let stats = cleaner::clean(&me.log, &config, lso, now, force)?;
                if let Some(s) = &stats {
                    tracing::info!(topic = %me.topic, partition = me.index, segments = s.segments, records_removed = s.records_removed, bytes_before = s.bytes_before, bytes_after = s.bytes_after, "compacted");
                    crate::metrics::compacted(s.bytes_before.saturating_sub(s.bytes_after));
                }
                Ok(stats)
            })
            .await
    }

    /// Forgets idempotent producers idle since before `cutoff_ms`.
    pub async fn expire_producers(self: &Arc<Self>, cutoff_ms: i64) -> Result<usize, LogError> {
        let me = self.clone();
        self.io
            .run(move || Ok(me.seq.lock().producers.expire(cutoff_ms)))
            .await
    }

    /// The producers this partition remembers, with their open transactions.
    pub async fn producers(self: &Arc<Self>) -> Result<Vec<ProducerView>, LogError> {
        let me = self.clone();
        self.io.run(move || Ok(me.seq.lock().views())).await
    }

    /// Clean shutdown: syncs everything, writes every segment's indexes and the producer state
    /// as of the log end, so the next start reads no log data.
    pub async fn close(self: &Arc<Self>) -> Result<(), LogError> {
        let me = self.clone();
        self.io
            .run(move || {
                let seq = me.seq.lock();
                let end = me.log.summary().end_offset;
                Ok(me.log.close(seq.snapshot(end))?)
            })
            .await
    }
}

mod durability;
mod replicated;
mod sliced;
mod tiering;

#[cfg(test)]
#[path = "partition_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "txn_tests.rs"]
mod txn_tests;

#[cfg(test)]
#[path = "cleaner_tests.rs"]
mod cleaner_tests;

#[cfg(test)]
#[path = "durability_tests.rs"]
mod durability_tests;
