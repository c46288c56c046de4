//! Transaction coordinator: transactional ids, their producer ids and epochs, and the two-phase
//! end of every transaction.
//!
//! Ending a transaction first records the decision (PrepareCommit / PrepareAbort),
//! then writes a marker into every partition of the transaction and waits until they are
//! durable, ends the transactional offsets in every group, and finally records CompleteCommit /
//! CompleteAbort. A crash anywhere in between leaves the decision in the log; the coordinator's
//! tick finishes it after restart, so a transaction is either committed in full or aborted in
//! full, never half visible. Writing a marker twice (a retried finish) is harmless.
//!
//! Producers are fenced by epoch: InitProducerId for a transactional id bumps the epoch and
//! aborts whatever the previous holder left open (with the bumped epoch, so its late writes are
//! refused); a transaction open past its timeout is aborted the same way. Produce is verified
//! against the coordinator under the partition lock: a transactional batch is appended only
//! while its producer's transaction is Ongoing and holds that partition, so no batch can land
//! after its transaction's marker (no hanging transactions).
//!
//! Every state change is written to the transaction log before it is answered: alone a file in
//! the data dir (fsynced), in a cluster the shard's partition of `__tiercel_transactions` (in
//! the bucket and committed in etcd, like acks=all data), so the shard's next leader continues
//! every transaction ([`Txns`]).

mod producer_ids;
pub mod txn_log;
mod v2;

pub use producer_ids::ProducerIds;

use crate::clock::SharedClock;
use crate::config::TxnConfig;
use crate::journal::Journal;
use crate::log::{LogError, LogManager};
use crate::shard::{Absent, Released, Shards};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use txn_log::{TxnLog, TxnMeta, TxnRecord, TxnState};

/// The consumer groups' side of a transaction: offsets sent with TxnOffsetCommit are pending
/// until the transaction ends, then become committed offsets (commit) or vanish (abort). The
/// broker wires the group coordinator in; the transaction coordinator knows only this.
#[async_trait::async_trait]
pub trait GroupOffsets: Send + Sync + 'static {
    /// Ends `producer_id`'s transactional offsets in `group`, durably.
    async fn end_transaction(
        &self,
        group: &str,
        producer_id: i64,
        commit: bool,
    ) -> std::io::Result<()>;
}

/// A transaction's outcome for the partitions it wrote to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub producer_id: i64,
    pub epoch: i16,
    pub commit: bool,
    pub coordinator_epoch: i32,
}

/// Cluster mode: how the coordinator writes markers into partitions other nodes lead (the
/// broker wires in a WriteTxnMarkers client).
#[async_trait::async_trait]
pub trait RemoteMarkers: Send + Sync + 'static {
    /// Writes `marker` into each of `partitions` (topic, index) through its leader; `Ok` once
    /// every one is durable, or its topic is gone.
    async fn write(&self, marker: Marker, partitions: Vec<(String, i32)>) -> Result<(), String>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    #[error("transaction timeout outside 1..=transaction_max_timeout_ms")]
    InvalidTimeout,
    #[error("the producer's epoch is not the transactional id's current one")]
    Fenced,
    #[error("unknown transactional id or producer id")]
    InvalidMapping,
    #[error("the previous transaction is still being completed")]
    Concurrent,
    #[error("the request does not fit the transaction's state")]
    InvalidState,
    #[error("the transaction log or a partition could not be written")]
    Storage,
    #[error("another node coordinates this transactional id")]
    NotCoordinator,
    #[error("this node is loading the transactional id's shard")]
    LoadInProgress,
}

impl From<crate::shard::Absent> for TxnError {
    fn from(a: crate::shard::Absent) -> TxnError {
        match a {
            crate::shard::Absent::Elsewhere => TxnError::NotCoordinator,
            crate::shard::Absent::Loading => TxnError::LoadInProgress,
        }
    }
}

/// What every transaction coordinator of a node shares.
#[derive(Clone)]
pub struct TxnDeps {
    pub cfg: TxnConfig,
    pub logs: Arc<LogManager>,
    pub groups: Arc<dyn GroupOffsets>,
    pub clock: SharedClock,
    /// Cluster mode: where markers for partitions led by other nodes go.
    pub remote: Option<Arc<dyn RemoteMarkers>>,
}

pub struct TxnCoordinator {
    journal: Journal<TxnLog>,
    /// Serializes the operations on one transactional id.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    ids: Arc<ProducerIds>,
    logs: Arc<LogManager>,
    groups: Arc<dyn GroupOffsets>,
    clock: SharedClock,
    cfg: TxnConfig,
    remote: Option<Arc<dyn RemoteMarkers>>,
    /// Written into markers: alone 0; in a cluster the leader epoch of this coordinator's
    /// shard, so markers of a later coordinator carry a higher one (as in Kafka).
    coordinator_epoch: i32,
}

impl TxnCoordinator {
    /// Opens the transaction log in `data_dir` (alone). `legacy_reserved_to` is the end of the
    /// last producer-id block a data dir of an earlier version recorded in its own file.
    pub fn open(
        data_dir: &Path,
        deps: TxnDeps,
        legacy_reserved_to: i64,
    ) -> std::io::Result<TxnCoordinator> {
        let journal: Journal<TxnLog> =
            Journal::open(data_dir.join(crate::format::TRANSACTIONS_FILE))?;
        let reserved_to = journal
            .read()
            .producer_ids_reserved_to
            .max(legacy_reserved_to);
        let ids = Arc::new(ProducerIds::new(reserved_to, None));
        Ok(Self::with_journal(journal, deps, ids, 0))
    }

    /// A coordinator over a transaction log already loaded (in a cluster, a shard's internal
    /// partition, led at `coordinator_epoch`).
    pub fn with_journal(
        journal: Journal<TxnLog>,
        deps: TxnDeps,
        ids: Arc<ProducerIds>,
        coordinator_epoch: i32,
    ) -> TxnCoordinator {
        TxnCoordinator {
            journal,
            locks: Mutex::new(HashMap::new()),
            ids,
            logs: deps.logs,
            groups: deps.groups,
            clock: deps.clock,
            cfg: deps.cfg,
            remote: deps.remote,
            coordinator_epoch,
        }
    }

    /// A producer id never handed out before (for idempotent producers and new transactional
    /// ids).
    pub async fn new_producer_id(&self) -> Result<i64, TxnError> {
        self.ids.next(Some(&self.journal)).await.map_err(|e| {
            tracing::error!(error = %e, "allocating a producer id failed");
            TxnError::Storage
        })
    }

    async fn lock(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = self.locks.lock().entry(id.to_string()).or_default().clone();
        m.lock_owned().await
    }

    pub fn get(&self, id: &str) -> Option<TxnMeta> {
        self.journal.read().txns.get(id).cloned()
    }

    /// Every transactional id with its state.
    pub fn list(&self) -> Vec<(String, TxnMeta)> {
        let log = self.journal.read();
        log.txns
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// How many transactions are open (Ongoing).
    pub fn ongoing(&self) -> usize {
        let log = self.journal.read();
        log.txns
            .values()
            .filter(|m| m.state == TxnState::Ongoing)
            .count()
    }

    async fn put(&self, id: &str, meta: TxnMeta) -> Result<(), TxnError> {
        self.journal
            .write(vec![TxnRecord::Put {
                id: id.to_string(),
                meta,
            }])
            .await
            .map_err(|e| {
                tracing::error!(transactional_id = id, error = %e, "writing the transaction log failed");
                TxnError::Storage
            })
    }

    /// InitProducerId with a transactional id: a producer id and a new epoch, fencing the
    /// previous holder. `expected` is the producer id and epoch a recovering producer (KIP-360)
    /// still holds.
    pub async fn init_producer_id(
        &self,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), TxnError> {
        if timeout_ms <= 0 || timeout_ms > self.cfg.max_timeout_ms {
            return Err(TxnError::InvalidTimeout);
        }
        let _guard = self.lock(id).await;
        let now = self.clock.now_ms();
        let Some(mut meta) = self.get(id) else {
            let pid = self.new_producer_id().await?;
            self.put(id, TxnMeta::empty((pid, 0), (-1, -1), timeout_ms, now))
                .await?;
            tracing::info!(
                transactional_id = id,
                producer_id = pid,
                "new transactional id"
            );
            return Ok((pid, 0));
        };
        if let Some((pid, epoch)) = expected {
            let current = pid == meta.producer_id && epoch == meta.epoch;
            let retried = pid == meta.last_producer_id && epoch == meta.last_epoch;
            if retried && !meta.state.is_prepare() {
                // the answer to an earlier InitProducerId was lost: give it again
                return Ok((meta.producer_id, meta.epoch));
            }
            if !current && !retried {
                return Err(TxnError::Fenced);
            }
        }
        match meta.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                return Err(TxnError::Concurrent);
            }
            TxnState::Ongoing => {
                tracing::info!(
                    transactional_id = id,
                    producer_id = meta.producer_id,
                    epoch = meta.epoch,
                    "new producer instance: aborting the previous one's open transaction"
                );
                meta = self.fence_and_abort(id, meta).await?;
            }
            _ => {}
        }
        let (pid, epoch) = if meta.epoch >= i16::MAX - 1 {
            let pid = self.new_producer_id().await?;
            (pid, 0)
        } else {
            (meta.producer_id, meta.epoch + 1)
        };
        let last = (meta.producer_id, meta.epoch);
        self.put(id, TxnMeta::empty((pid, epoch), last, timeout_ms, now))
            .await?;
        Ok((pid, epoch))
    }

    /// The transactional id's state if `producer_id` and `epoch` are its current ones.
    fn current(&self, id: &str, producer_id: i64, epoch: i16) -> Result<TxnMeta, TxnError> {
        let meta = self.get(id).ok_or(TxnError::InvalidMapping)?;
        if meta.producer_id != producer_id {
            return Err(TxnError::InvalidMapping);
        }
        if meta.epoch != epoch {
            return Err(TxnError::Fenced);
        }
        Ok(meta)
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn with `groups`): the transaction is Ongoing
    /// and holds them, durably, once this returns.
    pub async fn add(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        groups: &[String],
    ) -> Result<(), TxnError> {
        let _guard = self.lock(id).await;
        let meta = self.current(id, producer_id, epoch)?;
        if meta.state.is_prepare() {
            return Err(TxnError::Concurrent);
        }
        let ongoing = meta.state == TxnState::Ongoing;
        if ongoing
            && partitions.iter().all(|p| meta.partitions.contains(p))
            && groups.iter().all(|g| meta.groups.contains(g))
        {
            return Ok(());
        }
        let now = self.clock.now_ms();
        let mut next = meta;
        next.partitions.extend(partitions.iter().cloned());
        next.groups.extend(groups.iter().cloned());
        next.state = TxnState::Ongoing;
        if !ongoing {
            next.started_ms = now;
        }
        next.updated_ms = now;
        self.put(id, next).await
    }

    /// AddPartitionsToTxn's verify-only form: whether each partition is in the open transaction.
    pub fn holds(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<Vec<bool>, TxnError> {
        let meta = self.current(id, producer_id, epoch)?;
        let ongoing = meta.state == TxnState::Ongoing;
        Ok(partitions
            .iter()
            .map(|p| ongoing && meta.partitions.contains(p))
            .collect())
    }

    /// TxnOffsetCommit's check: the producer is current and its transaction holds the group.
    pub fn check_offsets(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        group: &str,
    ) -> Result<(), TxnError> {
        let meta = self.current(id, producer_id, epoch)?;
        if meta.state != TxnState::Ongoing || !meta.groups.contains(group) {
            return Err(TxnError::InvalidState);
        }
        Ok(())
    }

    /// The produce-time check for a transactional batch (run under the partition lock).
    pub fn verify_produce(
        &self,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), LogError> {
        let log = self.journal.read();
        let meta = log
            .by_producer
            .get(&producer_id)
            .and_then(|id| log.txns.get(id))
            .ok_or(LogError::InvalidTxnState)?;
        if epoch != meta.epoch {
            return Err(LogError::InvalidProducerEpoch {
                epoch,
                current: meta.epoch,
            });
        }
        if meta.state != TxnState::Ongoing
            || !meta.partitions.contains(&(topic.to_string(), partition))
        {
            return Err(LogError::InvalidTxnState);
        }
        Ok(())
    }

    /// EndTxn: commits or aborts the open transaction. Returns once every marker is durable
    /// and the outcome is in the transaction log.
    pub async fn end(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<(), TxnError> {
        let _guard = self.lock(id).await;
        let meta = self.current(id, producer_id, epoch)?;
        match (meta.state, commit) {
            (TxnState::Ongoing, _) => {
                let mut prepared = meta;
                prepared.state = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                prepared.updated_ms = self.clock.now_ms();
                self.put(id, prepared.clone()).await?;
                self.finish(id, prepared).await.map(|_| ())
            }
            // a retry of an EndTxn that already completed
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(()),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(TxnError::Concurrent)
            }
            _ => Err(TxnError::InvalidState),
        }
    }

    /// Aborts an Ongoing transaction with the epoch bumped, so its producer is fenced.
    async fn fence_and_abort(&self, id: &str, meta: TxnMeta) -> Result<TxnMeta, TxnError> {
        let mut fenced = meta;
        fenced.epoch = fenced.epoch.saturating_add(1);
        fenced.state = TxnState::PrepareAbort;
        fenced.updated_ms = self.clock.now_ms();
        self.put(id, fenced.clone()).await?;
        self.finish(id, fenced).await
    }

    /// Writes the markers of a decided transaction, ends its group offsets and records the
    /// outcome.
    async fn finish(&self, id: &str, meta: TxnMeta) -> Result<TxnMeta, TxnError> {
        let commit = meta.state == TxnState::PrepareCommit;
        let mut written = Vec::new();
        let mut elsewhere = Vec::new();
        for (topic, index) in &meta.partitions {
            let Some(p) = self.logs.get(topic, *index) else {
                if self.remote.is_some() {
                    elsewhere.push((topic.clone(), *index));
                }
                continue; // alone: the topic was deleted
            };
            match p
                .append_marker(meta.producer_id, meta.epoch, commit, self.coordinator_epoch)
                .await
            {
                Ok(offset) => written.push((p, offset + 1)),
                Err(LogError::Deleted) => {}
                Err(e) => {
                    tracing::error!(transactional_id = id, topic = %topic, partition = index, error = %e, "writing a transaction marker failed; will retry");
                    return Err(TxnError::Storage);
                }
            }
        }
        for (p, end) in written {
            match p.wait_durable(end).await {
                Ok(()) | Err(LogError::Deleted) => {}
                Err(e) => {
                    tracing::error!(transactional_id = id, topic = %p.topic, partition = p.index, error = %e, "a transaction marker did not become durable; will retry");
                    return Err(TxnError::Storage);
                }
            }
        }
        if let (false, Some(remote)) = (elsewhere.is_empty(), &self.remote) {
            let marker = Marker {
                producer_id: meta.producer_id,
                epoch: meta.epoch,
                commit,
                coordinator_epoch: self.coordinator_epoch,
            };
            if let Err(e) = remote.write(marker, elsewhere).await {
                tracing::error!(transactional_id = id, error = %e, "writing transaction markers through other nodes failed; will retry");
                return Err(TxnError::Storage);
            }
        }
        for group in &meta.groups {
            if let Err(e) = self
                .groups
                .end_transaction(group, meta.producer_id, commit)
                .await
            {
                tracing::error!(transactional_id = id, group = %group, error = %e, "ending transactional offsets failed; will retry");
                return Err(TxnError::Storage);
            }
        }
        let mut done = meta;
        done.state = if commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        done.partitions.clear();
        done.groups.clear();
        done.started_ms = -1;
        done.updated_ms = self.clock.now_ms();
        if done.next_producer_id >= 0 {
            // transactions v2 with the epoch exhausted: the id goes on under a new producer id
            done.last_producer_id = done.producer_id;
            done.producer_id = done.next_producer_id;
            done.epoch = 0;
            done.next_producer_id = -1;
        }
        self.put(id, done.clone()).await?;
        crate::metrics::transaction_ended(commit);
        Ok(done)
    }

    /// Aborts transactions open past their timeout, finishes decided ones (after a crash or a
    /// failed marker write) and forgets transactional ids idle past their expiration.
    pub async fn tick(&self) {
        let now = self.clock.now_ms();
        for (id, meta) in self.list() {
            let timed_out =
                meta.state == TxnState::Ongoing && now - meta.started_ms > meta.timeout_ms as i64;
            let idle = matches!(
                meta.state,
                TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
            ) && now - meta.updated_ms > self.cfg.id_expiration_ms;
            if !(timed_out || idle || meta.state.is_prepare()) {
                continue;
            }
            let _guard = self.lock(&id).await;
            // look again under the lock: a request may have moved it on
            let Some(meta) = self.get(&id) else { continue };
            let now = self.clock.now_ms();
            let result = match meta.state {
                TxnState::Ongoing if now - meta.started_ms > meta.timeout_ms as i64 => {
                    tracing::info!(transactional_id = %id, producer_id = meta.producer_id, timeout_ms = meta.timeout_ms, "transaction timed out: aborting it and fencing its producer");
                    self.fence_and_abort(&id, meta).await.map(|_| ())
                }
                TxnState::PrepareCommit | TxnState::PrepareAbort => {
                    tracing::info!(transactional_id = %id, state = meta.state.name(), "finishing a decided transaction");
                    self.finish(&id, meta).await.map(|_| ())
                }
                TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
                    if now - meta.updated_ms > self.cfg.id_expiration_ms =>
                {
                    self.journal
                        .write(vec![TxnRecord::Remove { id: id.clone() }])
                        .await
                        .map_err(|_| TxnError::Storage)
                }
                _ => Ok(()),
            };
            if let Err(e) = result {
                tracing::warn!(transactional_id = %id, error = %e, "transaction housekeeping failed; will retry");
            }
        }
        // forget the locks of expired ids nobody holds or waits for (a new request clones the
        // lock under the map's mutex, so none can be between lookup and use)
        let live = self.journal.read();
        self.locks
            .lock()
            .retain(|id, m| live.txns.contains_key(id) || Arc::strong_count(m) > 1);
    }
}

impl Released for TxnCoordinator {
    /// Nothing is parked on a transaction coordinator: requests in flight finish or fail on the
    /// log, which no longer accepts this node's writes.
    fn released(&self) {}
}

/// The transaction coordinator split in shards ([`crate::shard`]): alone, one shard holds every
/// transactional id; in a cluster, an id belongs to a shard of the internal topic
/// `__tiercel_transactions`, whose leader coordinates it and keeps its transaction log in that
/// partition. A coordinator that comes to lead a shard finds in its log every transaction's
/// state, finishes those already decided (its first tick) and times out the open ones as their
/// old coordinator would have. Producer ids come from one cluster-wide counter in etcd.
pub struct Txns {
    pub shards: Arc<Shards<TxnCoordinator>>,
    /// Cluster mode: producer ids for idempotent producers, whatever shards are here.
    ids: Option<Arc<ProducerIds>>,
    abort_interval: Duration,
    clock: SharedClock,
}

impl Txns {
    /// One shard, served here, holding every transactional id.
    pub fn alone(c: TxnCoordinator) -> Txns {
        let (abort_interval, clock) = (c.cfg.abort_interval, c.clock.clone());
        Txns {
            shards: Arc::new(Shards::single(c)),
            ids: None,
            abort_interval,
            clock,
        }
    }

    /// A cluster node's: no shard until the broker loads one; `ids` allocates cluster-wide.
    pub fn sharded(ids: Arc<ProducerIds>, deps: &TxnDeps) -> Txns {
        Txns {
            shards: Arc::new(Shards::empty()),
            ids: Some(ids),
            abort_interval: deps.cfg.abort_interval,
            clock: deps.clock.clone(),
        }
    }

    /// The coordinator of transactional id `id` if this node serves its shard.
    pub fn get(&self, id: &str) -> Result<Arc<TxnCoordinator>, Absent> {
        self.shards.get(id)
    }

    /// The shard `id` belongs to, once the count is known.
    pub fn shard(&self, id: &str) -> Option<i32> {
        self.shards.shard(id)
    }

    /// A producer id never handed out before (InitProducerId without a transactional id).
    pub async fn new_producer_id(&self) -> Result<i64, TxnError> {
        if let Some(ids) = &self.ids {
            return ids.next(None).await.map_err(|e| {
                tracing::error!(error = %e, "allocating a producer id failed");
                TxnError::Storage
            });
        }
        match self.shards.get_shard(0) {
            Some((_, c)) => c.new_producer_id().await,
            None => Err(TxnError::Storage),
        }
    }

    /// Every transactional id coordinated here, with its state.
    pub fn list(&self) -> Vec<(String, TxnMeta)> {
        let mut out: Vec<_> = self.shards.all().iter().flat_map(|c| c.list()).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Open transactions coordinated here.
    pub fn ongoing(&self) -> usize {
        self.shards.all().iter().map(|c| c.ongoing()).sum()
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Ticks every shard held here (the first tick at once, then every abort interval, and at
    /// once for a shard just loaded: it finishes what the previous coordinator left decided).
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut ticked: std::collections::HashMap<i32, i32> = Default::default();
        let mut last = tokio::time::Instant::now();
        loop {
            let due = last.elapsed() >= self.abort_interval || ticked.is_empty();
            let held = self.shards.held();
            for (shard, epoch) in &held {
                let fresh = ticked.get(shard) != Some(epoch);
                if !(due || fresh) {
                    continue;
                }
                if let Some((e, c)) = self.shards.get_shard(*shard) {
                    c.tick().await;
                    ticked.insert(*shard, e);
                }
            }
            ticked.retain(|s, _| held.contains_key(s));
            if due {
                last = tokio::time::Instant::now();
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200).min(self.abort_interval)) => {}
                _ = cancel.cancelled() => return,
            }
        }
    }
}
