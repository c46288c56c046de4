//! Share groups (KIP-932, "queues for Kafka"): many members consume the same partitions, each
//! record handed to one member at a time under an acquisition lock, acknowledged one by one
//! (accept, release, reject), delivered again after a release or an expired lock, and archived
//! after `delivery_limit` deliveries. The records stay in the log; the queue is a view of it.
//!
//! - [`membership`]: ShareGroupHeartbeat and the assignment of partitions to members;
//! - [`partition`]: one share-partition's records (the pure state machine);
//! - [`sessions`]: share sessions (what each member fetches here);
//! - [`store`]: the durable share-partition state and group configs.
//!
//! [`ShareGroups`] holds them all for this node. A share-partition is written to the store
//! after each acknowledgement before the acknowledgement is answered; what changes without a
//! request to answer (a lock expiring, a member leaving) is marked dirty and written by
//! [`ShareGroups::tick`]. A lock is never written: after a restart, records that were acquired
//! are delivered again (at least once), and records acknowledged are not.

pub mod membership;
pub mod partition;
pub mod sessions;
pub mod store;

use crate::clock::SharedClock;
pub use crate::config::ShareConfig;
use membership::{Heartbeat, HeartbeatError, Reply, Resolve, ShareGroup};
use parking_lot::Mutex;
use partition::{AckError, Acquired, Limits, Moves, SharePartition};
use sessions::{Outcome, Session, SessionError, Sessions, TopicPartition};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use store::{Key, Record, ShareStore};
use uuid::Uuid;

/// The group config that says where a new share-partition starts.
pub const AUTO_OFFSET_RESET: &str = "share.auto.offset.reset";
/// Group configs a share group accepts (IncrementalAlterConfigs on a GROUP resource).
pub const GROUP_CONFIGS: &[&str] = &[AUTO_OFFSET_RESET];

/// Where a share-partition without state starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reset {
    Earliest,
    Latest,
    /// The first record at or after `now - ms`.
    ByDuration(i64),
}

impl Reset {
    /// "earliest", "latest" or "by_duration:<ISO-8601 duration>" (PnDTnHnMnS).
    pub fn parse(s: &str) -> Option<Reset> {
        match s.trim() {
            "earliest" => Some(Reset::Earliest),
            "latest" => Some(Reset::Latest),
            s => parse_duration(s.strip_prefix("by_duration:")?).map(Reset::ByDuration),
        }
    }
}

/// Milliseconds of an ISO-8601 duration of days, hours, minutes and seconds ("P1DT2H", "PT30M",
/// "PT0.5S").
fn parse_duration(s: &str) -> Option<i64> {
    let rest = s.strip_prefix('P')?;
    let (days, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut ms: f64 = 0.0;
    let mut parts = 0;
    let mut take = |text: &str, units: &[(char, f64)]| -> Option<()> {
        let mut num = String::new();
        for c in text.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
            } else {
                let unit = units.iter().find(|(u, _)| *u == c)?.1;
                ms += num.parse::<f64>().ok()? * unit;
                num.clear();
                parts += 1;
            }
        }
        num.is_empty().then_some(())
    };
    take(days, &[('D', 86_400_000.0)])?;
    if let Some(t) = time {
        take(t, &[('H', 3_600_000.0), ('M', 60_000.0), ('S', 1000.0)])?;
    }
    (parts > 0 && ms.is_finite() && ms >= 0.0).then_some(ms as i64)
}

/// A group as ShareGroupDescribe and ListGroups show it.
pub type GroupView = ShareGroup;

pub struct ShareGroups {
    cfg: ShareConfig,
    clock: SharedClock,
    store: ShareStore,
    groups: Mutex<BTreeMap<String, ShareGroup>>,
    partitions: Mutex<HashMap<Key, Arc<Mutex<SharePartition>>>>,
    sessions: Mutex<Sessions>,
    dirty: Mutex<HashSet<Key>>,
    /// Topic names by id, as requests resolved them (for metric labels).
    names: Mutex<HashMap<Uuid, String>>,
    seq: AtomicU64,
    /// Woken when records become available again (released, timed out): parked fetches look.
    released: tokio::sync::Notify,
}

impl ShareGroups {
    pub fn open(data_dir: &Path, cfg: ShareConfig, clock: SharedClock) -> io::Result<ShareGroups> {
        let store = ShareStore::open(data_dir)?;
        let seq = store
            .read()
            .partitions
            .values()
            .map(|s| s.seq)
            .max()
            .unwrap_or(0);
        Ok(ShareGroups {
            sessions: Mutex::new(Sessions::new(cfg.max_sessions)),
            cfg,
            clock,
            store,
            groups: Mutex::new(BTreeMap::new()),
            partitions: Mutex::new(HashMap::new()),
            dirty: Mutex::new(HashSet::new()),
            names: Mutex::new(HashMap::new()),
            seq: AtomicU64::new(seq + 1),
            released: tokio::sync::Notify::new(),
        })
    }

    pub fn config(&self) -> &ShareConfig {
        &self.cfg
    }

    pub fn limits(&self) -> Limits {
        Limits {
            lock_ms: self.cfg.lock_ms,
            delivery_limit: self.cfg.delivery_limit,
            max_locks: self.cfg.max_locks,
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// ShareGroupHeartbeat. Members silent past the session timeout are removed first (their
    /// sessions end and their records go back).
    pub fn heartbeat(
        &self,
        group: &str,
        hb: Heartbeat,
        resolve: Resolve,
    ) -> Result<Reply, HeartbeatError> {
        let now = self.clock.now_ms();
        let (r, gone) = {
            let mut groups = self.groups.lock();
            if hb.epoch != 0 && !groups.contains_key(group) {
                return Err(HeartbeatError::UnknownMemberId);
            }
            if !groups.contains_key(group) && groups.len() >= self.cfg.max_groups {
                return Err(HeartbeatError::TooManyGroups);
            }
            let g = groups.entry(group.to_string()).or_default();
            let mut gone = g.expire(now, self.cfg.session_timeout_ms, resolve);
            let left = (hb.epoch == -1).then(|| hb.member_id.clone());
            let r = g.heartbeat(hb, resolve, now, self.cfg.max_size);
            if let (Some(m), Ok(_)) = (left, &r) {
                gone.push(m);
            }
            if g.members.is_empty() {
                groups.remove(group);
            }
            (r, gone)
        };
        for m in gone {
            self.member_left(group, &m);
        }
        r
    }

    /// A member left or was removed: its session ends and what it held goes back.
    fn member_left(&self, group: &str, member: &str) {
        let ended = self.sessions.lock().close(group, member);
        if let Some(s) = ended {
            self.release(group, member, &s);
        }
        tracing::debug!(group, member, "share group member left");
    }

    /// Gives back what `member` holds in the partitions of an ended session.
    fn release(&self, group: &str, member: &str, s: &Session) {
        let limits = self.limits();
        let mut any = false;
        for (topic, partition) in &s.partitions {
            let key = (group.to_string(), *topic, *partition);
            let Some(p) = self.partitions.lock().get(&key).cloned() else {
                continue;
            };
            let mut moves = Moves::default();
            if p.lock().release_member(member, &limits, &mut moves) {
                self.dirty.lock().insert(key.clone());
                self.count(&key, &moves);
                any = true;
            }
        }
        if any {
            self.released.notify_waiters();
        }
    }

    /// A ShareFetch's session step. What a replaced session held goes back at once; what a
    /// closed session or the partitions forgotten hold is returned, for
    /// [`ShareGroups::session_close`] once the request's acknowledgements are applied.
    pub fn session_fetch(
        &self,
        group: &str,
        member: &str,
        epoch: i32,
        add: &[TopicPartition],
        forget: &[TopicPartition],
    ) -> Result<Outcome, SessionError> {
        let mut o = self
            .sessions
            .lock()
            .fetch(group, member, epoch, add, forget)?;
        if epoch == 0 {
            if let Some(s) = o.ended.take() {
                self.release(group, member, &s);
            }
        }
        Ok(o)
    }

    /// Gives back what the member holds in an ended session (or forgotten partitions), once the
    /// request's acknowledgements were applied.
    pub fn session_close(&self, group: &str, member: &str, s: &Session) {
        self.release(group, member, s);
    }

    /// Checks a ShareAcknowledge's epoch without moving it; a final one returns the session
    /// (closed) for [`ShareGroups::session_close`].
    pub fn session_step_ack(
        &self,
        group: &str,
        member: &str,
        epoch: i32,
    ) -> Result<Option<Session>, SessionError> {
        self.sessions.lock().acknowledge(group, member, epoch)
    }

    /// Woken when records of some share-partition become available again.
    pub fn released(&self) -> tokio::sync::futures::Notified<'_> {
        self.released.notified()
    }

    /// The share-partition, from memory or the store (`None`: it has no state yet).
    pub fn partition(&self, key: &Key) -> Option<Arc<Mutex<SharePartition>>> {
        if let Some(p) = self.partitions.lock().get(key) {
            return Some(p.clone());
        }
        // never the store's lock inside the partitions' (the journal's writer takes the store's
        // for writing: a reader queued behind it would hold up everyone on the partitions)
        let stored = self.store.read().partitions.get(key).cloned()?;
        let restored = SharePartition::restore(stored.start, &stored.runs);
        let p = self
            .partitions
            .lock()
            .entry(key.clone())
            .or_insert_with(|| Arc::new(Mutex::new(restored)))
            .clone();
        Some(p)
    }

    /// The share-partition, started at `offset` if it has no state yet.
    pub fn partition_or_start(&self, key: &Key, offset: i64) -> Arc<Mutex<SharePartition>> {
        if let Some(p) = self.partition(key) {
            return p;
        }
        let mut parts = self.partitions.lock();
        parts
            .entry(key.clone())
            .or_insert_with(|| {
                tracing::info!(group = %key.0, topic = %key.1, partition = key.2, offset, "share-partition starts");
                self.dirty.lock().insert(key.clone());
                Arc::new(Mutex::new(SharePartition::new(offset)))
            })
            .clone()
    }

    /// Where a fetch should read (see [`SharePartition::next_fetch_offset`]), once what the log
    /// no longer holds is dropped and expired locks are released.
    pub fn next_fetch_offset(
        &self,
        key: &Key,
        p: &Mutex<SharePartition>,
        log_start: i64,
        high_watermark: i64,
    ) -> Option<i64> {
        let limits = self.limits();
        let mut moves = Moves::default();
        let (changed, from) = {
            let mut p = p.lock();
            let skipped = p.skip_to(log_start);
            let expired = p.expire(self.clock.now_ms(), &limits, &mut moves);
            (
                skipped || expired,
                p.next_fetch_offset(high_watermark, &limits),
            )
        };
        if changed {
            self.dirty.lock().insert(key.clone());
        }
        self.count(key, &moves);
        from
    }

    /// Acquires records for a fetch (see [`SharePartition::acquire`]) within what was `read`
    /// and below the high watermark; expired locks go back first.
    pub fn acquire(
        &self,
        key: &Key,
        p: &Mutex<SharePartition>,
        member: &str,
        read: (i64, i64),
        high_watermark: i64,
        max_records: usize,
    ) -> Acquired {
        let limits = self.limits();
        let now = self.clock.now_ms();
        let mut moves = Moves::default();
        let got = {
            let mut p = p.lock();
            if p.expire(now, &limits, &mut moves) {
                self.dirty.lock().insert(key.clone());
            }
            let upto = read.1.min(high_watermark - 1);
            p.acquire(
                member,
                (read.0, upto),
                max_records,
                now,
                &limits,
                &mut moves,
            )
        };
        self.count(key, &moves);
        got
    }

    /// Applies a member's acknowledgements to a share-partition and writes its state; resolves
    /// once the state survives a crash.
    pub async fn acknowledge(
        &self,
        key: &Key,
        member: &str,
        batches: &[(i64, i64, Vec<i8>)],
    ) -> Result<Result<(), AckError>, io::Error> {
        let Some(p) = self.partition(key) else {
            return Ok(Err(AckError::InvalidRecordState));
        };
        let limits = self.limits();
        let mut moves = Moves::default();
        let r = {
            let mut p = p.lock();
            p.expire(self.clock.now_ms(), &limits, &mut moves);
            p.acknowledge(member, batches, &limits, &mut moves)
        };
        self.count(key, &moves);
        if moves.released > 0 || moves.timed_out > 0 {
            self.released.notify_waiters();
        }
        if r.is_ok() || moves != Moves::default() {
            self.persist(key, &p).await?;
        }
        Ok(r)
    }

    /// Writes one share-partition's state.
    async fn persist(&self, key: &Key, p: &Mutex<SharePartition>) -> io::Result<()> {
        let record = {
            let p = p.lock();
            Record::Partition {
                group: key.0.clone(),
                topic: key.1,
                partition: key.2,
                seq: self.seq.fetch_add(1, Ordering::Relaxed),
                start: p.start(),
                runs: p.runs(),
            }
        };
        self.dirty.lock().remove(key);
        self.store.write(vec![record]).await
    }

    /// Runs every second: removes silent members, expires locks, writes what changed, and
    /// refreshes the gauges. `high_watermark` gives a topic id's name and a partition's high
    /// watermark, when this node has it.
    pub async fn tick(&self, high_watermark: &(dyn Fn(Uuid, i32) -> Option<(String, i64)> + Sync)) {
        let now = self.clock.now_ms();
        let mut gone = Vec::new();
        {
            let mut groups = self.groups.lock();
            for (name, g) in groups.iter_mut() {
                // topics are not looked up here: the next heartbeat resolves them again
                let keep = g.topics.clone();
                let resolve = move |t: &str| keep.get(t).copied();
                for m in g.expire(now, self.cfg.session_timeout_ms, &resolve) {
                    gone.push((name.clone(), m));
                }
            }
            groups.retain(|_, g| !g.members.is_empty());
        }
        for (g, m) in gone {
            tracing::info!(group = %g, member = %m, "share group member removed: no heartbeat within the session timeout");
            self.member_left(&g, &m);
        }
        let limits = self.limits();
        let parts: Vec<(Key, Arc<Mutex<SharePartition>>)> = self
            .partitions
            .lock()
            .iter()
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect();
        let mut released = false;
        for (key, p) in &parts {
            let mut moves = Moves::default();
            let (start, in_flight, acquired) = {
                let mut p = p.lock();
                if p.expire(now, &limits, &mut moves) {
                    self.dirty.lock().insert(key.clone());
                    released = true;
                }
                (p.start(), p.in_flight(), p.acquired_count())
            };
            self.count(key, &moves);
            if let Some((topic, hw)) = high_watermark(key.1, key.2) {
                let topic = self.names.lock().get(&key.1).cloned().unwrap_or(topic);
                crate::metrics::share_partition(
                    &key.0,
                    &topic,
                    key.2,
                    in_flight,
                    acquired,
                    hw - start,
                );
            }
        }
        if released {
            self.released.notify_waiters();
        }
        let dirty: Vec<Key> = self.dirty.lock().iter().cloned().collect();
        for key in dirty {
            let Some(p) = self.partitions.lock().get(&key).cloned() else {
                self.dirty.lock().remove(&key);
                continue;
            };
            if let Err(e) = self.persist(&key, &p).await {
                tracing::warn!(group = %key.0, partition = key.2, error = %e, "could not write a share-partition's state; will retry");
                self.dirty.lock().insert(key);
            }
        }
    }

    /// Every share group: with members, or with stored state.
    pub fn list(&self) -> Vec<(String, &'static str)> {
        let mut out: BTreeMap<String, &'static str> = self
            .store
            .read()
            .partitions
            .keys()
            .map(|k| (k.0.clone(), "Empty"))
            .collect();
        for g in self.store.read().configs.keys() {
            out.entry(g.clone()).or_insert("Empty");
        }
        for (name, g) in self.groups.lock().iter() {
            out.insert(name.clone(), g.state());
        }
        out.into_iter().collect()
    }

    /// Whether `group` is a share group here (with members or state).
    pub fn contains(&self, group: &str) -> bool {
        // one lock at a time
        if self.groups.lock().contains_key(group) {
            return true;
        }
        if self.store.read().partitions.keys().any(|k| k.0 == group) {
            return true;
        }
        self.partitions.lock().keys().any(|k| k.0 == group)
    }

    /// Whether `member` is a member of `group` now.
    pub fn is_member(&self, group: &str, member: &str) -> bool {
        self.groups
            .lock()
            .get(group)
            .is_some_and(|g| g.members.contains_key(member))
    }

    /// The group with its members (`None`: no member now).
    pub fn describe(&self, group: &str) -> Option<GroupView> {
        self.groups.lock().get(group).cloned()
    }

    /// Share-partitions of a group with their start offsets.
    pub fn start_offsets(&self, group: &str) -> BTreeMap<(Uuid, i32), i64> {
        let mut out: BTreeMap<(Uuid, i32), i64> = self
            .store
            .read()
            .partitions
            .iter()
            .filter(|(k, _)| k.0 == group)
            .map(|(k, s)| ((k.1, k.2), s.start))
            .collect();
        for (k, p) in self.partitions.lock().iter().filter(|(k, _)| k.0 == group) {
            out.insert((k.1, k.2), p.lock().start());
        }
        out
    }

    /// Sets share-partitions' start offsets, or forgets them (`None`); the group must have no
    /// member.
    pub async fn set_start_offsets(
        &self,
        group: &str,
        offsets: Vec<((Uuid, i32), Option<i64>)>,
    ) -> Result<(), SetError> {
        if self.groups.lock().contains_key(group) {
            return Err(SetError::NonEmpty);
        }
        let mut records = Vec::new();
        for ((topic, partition), offset) in offsets {
            let key = (group.to_string(), topic, partition);
            let seq = self.seq.fetch_add(1, Ordering::Relaxed);
            match offset {
                Some(o) => {
                    let p = self.partition_or_start(&key, o);
                    let mut p = p.lock();
                    p.reset_to(o);
                    records.push(Record::Partition {
                        group: group.to_string(),
                        topic,
                        partition,
                        seq,
                        start: o,
                        runs: Vec::new(),
                    });
                }
                None => {
                    self.partitions.lock().remove(&key);
                    self.dirty.lock().remove(&key);
                    records.push(Record::Forget {
                        group: group.to_string(),
                        topic,
                        partition,
                        seq,
                    });
                }
            }
        }
        self.store.write(records).await.map_err(SetError::Io)
    }

    /// DeleteGroups: a share group without members is forgotten with its state and configs.
    pub async fn delete_group(&self, group: &str) -> Result<(), SetError> {
        if self.groups.lock().contains_key(group) {
            return Err(SetError::NonEmpty);
        }
        for (member, s) in self.sessions.lock().close_group(group) {
            tracing::debug!(group, member = %member, partitions = s.partitions.len(), "share session dropped with its group");
        }
        self.partitions.lock().retain(|k, _| k.0 != group);
        self.dirty.lock().retain(|k| k.0 != group);
        self.store
            .write(vec![Record::ForgetGroup {
                group: group.to_string(),
            }])
            .await
            .map_err(SetError::Io)
    }

    /// A group config, if set.
    pub fn group_config(&self, group: &str, key: &str) -> Option<String> {
        self.store.read().configs.get(group)?.get(key).cloned()
    }

    /// Every config set on a group.
    pub fn group_configs(&self, group: &str) -> BTreeMap<String, String> {
        self.store
            .read()
            .configs
            .get(group)
            .cloned()
            .unwrap_or_default()
    }

    /// Sets (`Some`) or removes group configs, durably.
    pub async fn set_group_configs(
        &self,
        group: &str,
        changes: Vec<(String, Option<String>)>,
    ) -> io::Result<()> {
        let records = changes
            .into_iter()
            .map(|(key, value)| Record::Config {
                group: group.to_string(),
                key,
                value,
            })
            .collect();
        self.store.write(records).await
    }

    /// Where a new share-partition of `group` starts.
    pub fn reset_of(&self, group: &str) -> Reset {
        self.group_config(group, AUTO_OFFSET_RESET)
            .and_then(|s| Reset::parse(&s))
            .or_else(|| Reset::parse(&self.cfg.auto_offset_reset))
            .unwrap_or(Reset::Latest)
    }

    /// Remembers a topic's name for the metrics.
    pub fn name_topic(&self, id: Uuid, name: &str) {
        let mut names = self.names.lock();
        if names.get(&id).map(String::as_str) != Some(name) {
            names.insert(id, name.to_string());
        }
    }

    fn count(&self, key: &Key, moves: &Moves) {
        if *moves == Moves::default() {
            return;
        }
        let topic = self
            .names
            .lock()
            .get(&key.1)
            .cloned()
            .unwrap_or_else(|| key.1.to_string());
        let events = [
            ("acquired", moves.acquired),
            ("redelivered", moves.redelivered),
            ("acknowledged", moves.acknowledged),
            ("released", moves.released),
            ("rejected", moves.rejected),
            ("archived", moves.archived),
            ("lock_timeout", moves.timed_out),
        ];
        crate::metrics::share_records(&key.0, &topic, key.2, &events);
    }

    /// Open share sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.lock().len()
    }
}

/// Why AlterShareGroupOffsets, DeleteShareGroupOffsets or DeleteGroups did not apply.
#[derive(Debug)]
pub enum SetError {
    /// The group has members.
    NonEmpty,
    Io(io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_parse_as_kafka_writes_them() {
        assert_eq!(Reset::parse("earliest"), Some(Reset::Earliest));
        assert_eq!(Reset::parse("latest"), Some(Reset::Latest));
        assert_eq!(
            Reset::parse("by_duration:P1DT1H30M"),
            Some(Reset::ByDuration(86_400_000 + 5_400_000))
        );
        assert_eq!(
            Reset::parse("by_duration:PT0.5S"),
            Some(Reset::ByDuration(500))
        );
        for bad in [
            "",
            "newest",
            "by_duration:",
            "by_duration:P",
            "by_duration:1H",
            "by_duration:PT5X",
        ] {
            assert_eq!(Reset::parse(bad), None, "{bad}");
        }
    }
}
