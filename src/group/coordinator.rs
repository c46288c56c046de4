//! One group coordinator: this thin async driver over the pure state machine
//! ([`super::state`]) and durable offsets ([`super::offsets`]) holds each group behind its own
//! lock (one group's work never waits for another's), parks JoinGroup/SyncGroup requests until
//! the state machine completes them, and ticks every group on an injected clock for session and
//! rebalance timeouts.
//!
//! Membership is kept in memory: after a restart (or a move to another node), groups come back
//! Empty with their committed offsets, and members rejoin (their next heartbeat gets
//! UNKNOWN_MEMBER_ID).

use super::consumer::{ConsumerGroup, TopicLookup};
use super::offsets::{Committed, OffsetStore, Record};
use super::state::{
    Answer, Completion, Group, GroupConfig, GroupError, GroupState, JoinRequest, JoinResult,
    SyncResult,
};
use super::view::{GroupView, MemberView};
use crate::clock::SharedClock;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// A parked request's way back.
struct Entry {
    group: Group,
    /// Set while the group is a KIP-848 consumer group; `group` then stays Empty.
    consumer: Option<ConsumerGroup>,
    joins: HashMap<String, oneshot::Sender<JoinResult>>,
    syncs: HashMap<String, oneshot::Sender<SyncResult>>,
}

impl Entry {
    fn deliver(&mut self, completions: Vec<Completion>) {
        for c in completions {
            match c {
                Completion::Join(id, r) => {
                    if r.error.is_none() && r.leader == id {
                        // once per rebalance: the leader's answer
                        tracing::info!(
                            group = %self.group.id,
                            generation = r.generation,
                            members = r.members.len(),
                            protocol = %r.protocol_name,
                            "group rebalanced"
                        );
                    }
                    if let Some(tx) = self.joins.remove(&id) {
                        let _ = tx.send(r);
                    }
                }
                Completion::Sync(id, r) => {
                    if let Some(tx) = self.syncs.remove(&id) {
                        let _ = tx.send(r);
                    }
                }
            }
        }
    }
}

/// Why an offset commit was refused, per request or per partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitError {
    Group(GroupError),
    MetadataTooLarge,
    Storage,
}

pub struct Coordinator {
    groups: Mutex<HashMap<String, Arc<Mutex<Entry>>>>,
    store: OffsetStore,
    cfg: GroupConfig,
    clock: SharedClock,
    /// Set at shutdown: joins and syncs are answered at once instead of waiting on a
    /// rebalance this broker will not finish.
    stopping: AtomicBool,
}

impl Coordinator {
    pub fn open(
        data_dir: &Path,
        cfg: GroupConfig,
        clock: SharedClock,
    ) -> std::io::Result<Coordinator> {
        Ok(Self::with_store(OffsetStore::open(data_dir)?, cfg, clock))
    }

    /// A coordinator over offsets already loaded (in a cluster, a shard's internal partition).
    pub fn with_store(store: OffsetStore, cfg: GroupConfig, clock: SharedClock) -> Coordinator {
        let now = clock.now_ms();
        let mut groups = HashMap::new();
        for g in store.groups() {
            // Groups come back Empty: membership is not journaled, so whether a group had
            // members when the broker stopped is unknown. Expiry counts from now, never from
            // the newest commit: a stable group that commits rarely would otherwise lose its
            // offsets at the first tick, before its members could rejoin. A group that really
            // was empty keeps its offsets one retention period longer; none is lost early.
            let group = Group::new(&g, now);
            groups.insert(
                g,
                Arc::new(Mutex::new(Entry {
                    group,
                    consumer: None,
                    joins: HashMap::new(),
                    syncs: HashMap::new(),
                })),
            );
        }
        Coordinator {
            groups: Mutex::new(groups),
            store,
            cfg,
            clock,
            stopping: AtomicBool::new(false),
        }
    }

    fn entry(&self, group_id: &str) -> Option<Arc<Mutex<Entry>>> {
        self.groups.lock().get(group_id).cloned()
    }

    /// The group, created Empty if this is the first time it is named; `None` when it is new
    /// and the broker already holds `max_groups` groups.
    fn entry_or_create(&self, group_id: &str) -> Option<Arc<Mutex<Entry>>> {
        let mut groups = self.groups.lock();
        if let Some(e) = groups.get(group_id) {
            return Some(e.clone());
        }
        if groups.len() >= self.cfg.max_groups {
            at_group_limit(group_id, self.cfg.max_groups);
            return None;
        }
        Some(self.insert_new(&mut groups, group_id))
    }

    /// A group that holds offsets is listed and described (Empty if it has no members): puts
    /// it back if it is gone, past `max_groups` too (its offsets are committed whatever the
    /// count).
    fn keep_listed(&self, group_id: &str) {
        let mut groups = self.groups.lock();
        if !groups.contains_key(group_id) {
            self.insert_new(&mut groups, group_id);
        }
    }

    fn insert_new(
        &self,
        groups: &mut HashMap<String, Arc<Mutex<Entry>>>,
        group_id: &str,
    ) -> Arc<Mutex<Entry>> {
        let e = Arc::new(Mutex::new(Entry {
            group: Group::new(group_id, self.clock.now_ms()),
            consumer: None,
            joins: HashMap::new(),
            syncs: HashMap::new(),
        }));
        groups.insert(group_id.to_string(), e.clone());
        e
    }

    /// JoinGroup: resolves when the rebalance completes (or at once for errors and resends, and
    /// for a classic member of a KIP-848 group). `topics` lists every topic members may
    /// subscribe to.
    pub async fn join(
        &self,
        group_id: &str,
        req: JoinRequest,
        topics: &(dyn TopicLookup + Sync),
    ) -> JoinResult {
        let member_id = req.member_id.clone();
        let Some(entry) = self.entry_or_create(group_id) else {
            return JoinResult::error(GroupError::CoordinatorNotAvailable, &member_id);
        };
        let rx = {
            let mut e = entry.lock();
            let mut out = Vec::new();
            if self.stopping.load(Ordering::Acquire) {
                return rebalancing(member_id);
            }
            let now = self.clock.now_ms();
            if let Some(c) = e.consumer.as_mut().filter(|c| !c.is_empty()) {
                // a KIP-848 group with members: a classic member joins it as one of them
                if !self.cfg.consumer_migration_policy.mixes() {
                    return JoinResult::error(GroupError::InconsistentGroupProtocol, &member_id);
                }
                let r = c.classic_join(req, topics, now, &self.cfg);
                self.maybe_downgrade(&mut e, now);
                return r;
            }
            e.consumer = None;
            let answer = e.group.join(req, self.clock.now_ms(), &self.cfg, &mut out);
            e.deliver(out);
            match answer {
                Answer::Now(r) => return r,
                Answer::Pending(id) => {
                    let (tx, rx) = oneshot::channel();
                    e.joins.insert(id, tx);
                    rx
                }
            }
        };
        rx.await.unwrap_or_else(|_| rebalancing(member_id))
    }

    pub async fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
        protocol: (Option<&str>, Option<&str>),
    ) -> SyncResult {
        let Some(entry) = self.entry(group_id) else {
            return Err(GroupError::UnknownMemberId);
        };
        let rx = {
            let mut e = entry.lock();
            if self.stopping.load(Ordering::Acquire) {
                return Err(GroupError::RebalanceInProgress);
            }
            if let Some(c) = e.consumer.as_mut() {
                let now = self.clock.now_ms();
                return c.classic_sync(member_id, instance_id, generation, now, protocol);
            }
            let mut out = Vec::new();
            let answer = e.group.sync(
                member_id,
                instance_id,
                generation,
                assignments,
                self.clock.now_ms(),
                &mut out,
            );
            e.deliver(out);
            match answer {
                Answer::Now(r) => return r,
                Answer::Pending(id) => {
                    let (tx, rx) = oneshot::channel();
                    e.syncs.insert(id, tx);
                    rx
                }
            }
        };
        rx.await.unwrap_or(Err(GroupError::RebalanceInProgress))
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        let entry = self.entry(group_id).ok_or(GroupError::UnknownMemberId)?;
        let mut e = entry.lock();
        let now = self.clock.now_ms();
        if let Some(c) = e.consumer.as_mut() {
            return c.classic_heartbeat(member_id, instance_id, generation, now);
        }
        e.group.heartbeat(member_id, instance_id, generation, now)
    }

    /// LeaveGroup for each `(member id, instance id)`; one result per member.
    pub fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Vec<Result<(), GroupError>> {
        let Some(entry) = self.entry(group_id) else {
            return members
                .iter()
                .map(|_| Err(GroupError::UnknownMemberId))
                .collect();
        };
        let mut e = entry.lock();
        let now = self.clock.now_ms();
        if let Some(c) = e.consumer.as_mut() {
            let results = members
                .iter()
                .map(|(m, i)| c.classic_leave(m, i.as_deref(), &self.cfg))
                .collect();
            if c.is_empty() {
                e.group.empty_since_ms = now;
            }
            self.maybe_downgrade(&mut e, now);
            return results;
        }
        let mut out = Vec::new();
        let results = members
            .iter()
            .map(|(m, i)| e.group.leave(m, i.as_deref(), now, &self.cfg, &mut out))
            .collect();
        e.deliver(out);
        results
    }

    /// OffsetCommit of request `version`. `generation` -1 with an empty member id is a commit
    /// from outside any generation, allowed only while the group has no members (as in Kafka).
    #[allow(clippy::too_many_arguments)]
    pub async fn commit(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        version: i16,
        offsets: Vec<(String, i32, i64, i32, Option<String>)>,
    ) -> Result<Vec<Result<(), CommitError>>, CommitError> {
        self.check_committer(group_id, generation, member_id, instance_id, Some(version))?;
        let (results, records) =
            self.commit_records(group_id, offsets, |group, topic, partition, value| {
                Record::Commit {
                    group,
                    topic,
                    partition,
                    value,
                }
            });
        self.write_commits(group_id, records).await?;
        Ok(results)
    }

    /// TxnOffsetCommit: offsets held pending under `producer_id` until its transaction ends
    /// ([`Coordinator::end_transaction`]). Producers outside any generation (`generation` -1,
    /// no member id: clients before KIP-447) are not checked against the group's members.
    pub async fn commit_transactional(
        &self,
        group_id: &str,
        producer_id: i64,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        offsets: Vec<(String, i32, i64, i32, Option<String>)>,
    ) -> Result<Vec<Result<(), CommitError>>, CommitError> {
        self.check_committer(group_id, generation, member_id, instance_id, None)?;
        let (results, records) =
            self.commit_records(group_id, offsets, |group, topic, partition, value| {
                Record::TxnCommit {
                    group,
                    producer_id,
                    topic,
                    partition,
                    value,
                }
            });
        self.write_commits(group_id, records).await?;
        Ok(results)
    }

    /// Applies (`commit`) or drops the offsets `producer_id` committed in its transaction.
    pub async fn end_transaction(
        &self,
        group_id: &str,
        producer_id: i64,
        commit: bool,
    ) -> std::io::Result<()> {
        if commit {
            // the group exists from now on, as if the offsets had been committed directly
            self.keep_listed(group_id);
        }
        self.store
            .write(vec![Record::TxnEnd {
                group: group_id.to_string(),
                producer_id,
                commit,
            }])
            .await
    }

    /// A transaction marker for this shard (cluster mode: the transaction's coordinator is
    /// another node): ends `producer_id`'s pending offsets in every group that has some.
    pub async fn end_producer(&self, producer_id: i64, commit: bool) -> std::io::Result<()> {
        for group in self.store.groups_pending_from(producer_id) {
            self.end_transaction(&group, producer_id, commit).await?;
        }
        Ok(())
    }

    /// Whether an open transaction holds an offset for the partition.
    pub fn has_pending(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        self.store.has_pending(group_id, topic, partition)
    }

    /// Producers with transactional offsets pending in the group.
    pub fn pending_producers(&self, group_id: &str) -> Vec<i64> {
        self.store.pending_producers(group_id)
    }

    /// Checks that a commit comes from a member of the current generation. An OffsetCommit
    /// (`version`: its request version) outside any generation is allowed while the group has
    /// no members; a TxnOffsetCommit (`None`) outside any generation always is.
    fn check_committer(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        version: Option<i16>,
    ) -> Result<(), CommitError> {
        let simple = version.is_some();
        let entry = self
            .entry_or_create(group_id)
            .ok_or(CommitError::Group(GroupError::CoordinatorNotAvailable))?;
        let mut e = entry.lock();
        let now = self.clock.now_ms();
        let outside = generation < 0 && member_id.is_empty();
        if let Some(c) = e.consumer.as_ref() {
            if outside && !simple {
                return Ok(());
            }
            // KIP-848: the generation field carries the member epoch
            c.check_commit(member_id, generation, version)
                .map_err(|x| CommitError::Group(offsets_check_error(x)))?;
            if c.is_empty() {
                e.group.empty_since_ms = e.group.empty_since_ms.max(now);
            }
            return Ok(());
        }
        let g = &mut e.group;
        // as Kafka: a commit at generation -1 while the group has no members is accepted
        // whatever member id it names (a consumer that assign()s its partitions may send the id
        // it would use in a group)
        let admin = simple && generation < 0 && g.members.is_empty();
        if admin || (outside && !simple) {
            // simple (admin or assign()-based) commit: it counts as activity, so offsets
            // expire `offsets_retention` after the last commit, not after the first
            g.empty_since_ms = g.empty_since_ms.max(now);
            return Ok(());
        }
        if g.state == GroupState::Dead {
            return Err(CommitError::Group(GroupError::CoordinatorNotAvailable));
        }
        if let Some(inst) = instance_id {
            if g.static_members.get(inst).is_some_and(|id| id != member_id) {
                return Err(CommitError::Group(GroupError::FencedInstanceId));
            }
        }
        if !g.members.contains_key(member_id) {
            return Err(CommitError::Group(GroupError::UnknownMemberId));
        }
        if generation != g.generation {
            return Err(CommitError::Group(GroupError::IllegalGeneration));
        }
        if g.state == GroupState::CompletingRebalance {
            return Err(CommitError::Group(GroupError::RebalanceInProgress));
        }
        if let Some(m) = g.members.get_mut(member_id) {
            m.last_seen_ms = now;
        }
        Ok(())
    }

    /// Per-partition results and the records to write for a commit.
    fn commit_records(
        &self,
        group_id: &str,
        offsets: Vec<(String, i32, i64, i32, Option<String>)>,
        make: impl Fn(String, String, i32, Committed) -> Record,
    ) -> (Vec<Result<(), CommitError>>, Vec<Record>) {
        let now = self.clock.now_ms();
        let mut results = Vec::with_capacity(offsets.len());
        let mut records = Vec::new();
        for (topic, partition, offset, leader_epoch, metadata) in offsets {
            if metadata
                .as_ref()
                .is_some_and(|m| m.len() > self.cfg.offset_metadata_max_bytes)
            {
                results.push(Err(CommitError::MetadataTooLarge));
                continue;
            }
            results.push(Ok(()));
            let value = Committed {
                offset,
                leader_epoch,
                metadata,
                commit_ms: now,
            };
            records.push(make(group_id.to_string(), topic, partition, value));
        }
        (results, records)
    }

    async fn write_commits(&self, group_id: &str, records: Vec<Record>) -> Result<(), CommitError> {
        if !records.is_empty() {
            if let Err(e) = self.store.write(records).await {
                tracing::warn!(group = group_id, error = %e, "committing offsets failed (the client finds the coordinator again)");
                return Err(CommitError::Storage);
            }
            // the tick may have found the group empty and without offsets while the write was
            // on its way and dropped it
            self.keep_listed(group_id);
        }
        Ok(())
    }

    pub fn committed(&self, group_id: &str, topic: &str, partition: i32) -> Option<Committed> {
        self.store.get(group_id, topic, partition)
    }

    /// Every group with committed offsets (with or without members).
    pub fn groups_with_offsets(&self) -> Vec<String> {
        self.store.groups()
    }

    pub fn committed_all(&self, group_id: &str) -> BTreeMap<(String, i32), Committed> {
        self.store.group(group_id)
    }

    pub fn describe(&self, group_id: &str) -> GroupView {
        let Some(entry) = self.entry(group_id) else {
            return GroupView {
                group_id: group_id.to_string(),
                state: GroupState::Dead.name(),
                protocol_type: String::new(),
                protocol_name: String::new(),
                members: Vec::new(),
            };
        };
        let e = entry.lock();
        if let Some(c) = e.consumer.as_ref() {
            return super::view::described(group_id, c);
        }
        let g = &e.group;
        let protocol = g.protocol_name.clone().unwrap_or_default();
        GroupView {
            group_id: group_id.to_string(),
            state: g.state.name(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol_name: protocol.clone(),
            members: g
                .members
                .values()
                .map(|m| MemberView {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: m
                        .protocols
                        .iter()
                        .find(|(n, _)| *n == protocol)
                        .map(|(_, b)| b.clone())
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Every group, by id.
    pub fn list(&self) -> Vec<Listed> {
        let entries: Vec<Arc<Mutex<Entry>>> = self.groups.lock().values().cloned().collect();
        let mut out: Vec<Listed> = entries
            .iter()
            .filter_map(|e| {
                let e = e.lock();
                if let Some(c) = e.consumer.as_ref() {
                    return Some(Listed {
                        id: e.group.id.clone(),
                        protocol_type: "consumer".to_string(),
                        state: c.state().name(),
                        kind: GroupKind::Consumer,
                        members: c.members.len(),
                    });
                }
                (e.group.state != GroupState::Dead).then(|| Listed {
                    id: e.group.id.clone(),
                    protocol_type: e.group.protocol_type.clone().unwrap_or_default(),
                    state: e.group.state.name(),
                    kind: GroupKind::Classic,
                    members: e.group.members.len(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// DeleteGroups: only groups without members; removes their offsets.
    pub async fn delete_group(&self, group_id: &str) -> Result<(), DeleteError> {
        let entry = self.entry(group_id).ok_or(DeleteError::NotFound)?;
        {
            let mut e = entry.lock();
            // sessions that ran out since the last tick end now, as Kafka's per-member timers
            // would have ended them: a group whose last member's session just expired is empty
            let mut out = Vec::new();
            e.group.tick(self.clock.now_ms(), &self.cfg, &mut out);
            e.deliver(out);
            let now = self.clock.now_ms();
            if let Some(c) = e.consumer.as_mut() {
                c.tick(now, &self.cfg, None);
                if !c.is_empty() {
                    return Err(DeleteError::NotEmpty);
                }
                e.consumer = None;
            }
            match e.group.state {
                GroupState::Dead => return Err(DeleteError::NotFound),
                GroupState::Empty => e.group.mark_dead(),
                _ => return Err(DeleteError::NotEmpty),
            }
        }
        self.groups.lock().remove(group_id);
        self.store
            .write(vec![Record::DeleteGroup {
                group: group_id.to_string(),
            }])
            .await
            .map_err(|_| DeleteError::Storage)
    }

    /// OffsetDelete: the group must not be subscribed to the topic (subscriptions are read from
    /// the members' consumer-protocol metadata).
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        topic: &str,
        partitions: &[i32],
    ) -> Result<Vec<Result<(), DeleteError>>, DeleteError> {
        let entry = self.entry(group_id).ok_or(DeleteError::NotFound)?;
        let subscribed = {
            let e = entry.lock();
            if e.group.state == GroupState::Dead {
                return Err(DeleteError::NotFound);
            }
            e.consumer.as_ref().is_some_and(|c| c.subscribes(topic))
                || e.group
                    .member_metadata()
                    .iter()
                    .any(|m| subscription_topics(m).iter().any(|t| t == topic))
        };
        if subscribed {
            return Ok(partitions
                .iter()
                .map(|_| Err(DeleteError::SubscribedToTopic))
                .collect());
        }
        let records = partitions
            .iter()
            .map(|p| Record::DeleteOffset {
                group: group_id.to_string(),
                topic: topic.to_string(),
                partition: *p,
            })
            .collect();
        self.store
            .write(records)
            .await
            .map_err(|_| DeleteError::Storage)?;
        Ok(partitions.iter().map(|_| Ok(())).collect())
    }

    /// Removes every group's offsets for a deleted topic.
    pub async fn delete_topic(&self, topic: &str) {
        if let Err(e) = self
            .store
            .write(vec![Record::DeleteTopic {
                topic: topic.to_string(),
            }])
            .await
        {
            tracing::error!(topic, error = %e, "removing committed offsets of a deleted topic failed");
        }
    }

    /// Start-up: removes committed offsets of topics that no longer exist (`exists` says which
    /// do). Deleting a topic removes its offsets after the catalog change; a crash in between
    /// left them behind, to be read by a later topic of the same name. Returns how many topics
    /// had offsets removed.
    pub async fn forget_deleted_topics(&self, exists: impl Fn(&str) -> bool) -> usize {
        let mut gone = std::collections::BTreeSet::new();
        for g in self.store.groups() {
            for (topic, _) in self.store.group(&g).into_keys() {
                if !exists(&topic) {
                    gone.insert(topic);
                }
            }
        }
        let records: Vec<Record> = gone
            .iter()
            .map(|t| Record::DeleteTopic { topic: t.clone() })
            .collect();
        if records.is_empty() {
            return 0;
        }
        tracing::info!(topics = ?gone, "removing committed offsets of deleted topics");
        if let Err(e) = self.store.write(records).await {
            tracing::error!(error = %e, "removing committed offsets of deleted topics failed");
        }
        gone.len()
    }

    /// One pass of timeouts over every group, and expiry of empty groups' offsets.
    pub async fn tick(&self) {
        let now = self.clock.now_ms();
        let entries: Vec<Arc<Mutex<Entry>>> = self.groups.lock().values().cloned().collect();
        let mut expired = Vec::new();
        let mut vanished = Vec::new();
        for entry in entries {
            let mut e = entry.lock();
            let mut out = Vec::new();
            e.group.tick(now, &self.cfg, &mut out);
            e.deliver(out);
            if e.group.state != GroupState::Empty {
                continue;
            }
            let Entry {
                group, consumer, ..
            } = &mut *e;
            if let Some(c) = consumer.as_mut() {
                let gone = c.tick(now, &self.cfg, None);
                if !gone.is_empty() {
                    tracing::info!(group = %group.id, members = ?gone, "consumer group members removed (session or revocation timeout)");
                    if c.is_empty() {
                        group.empty_since_ms = now;
                    }
                }
                if !c.is_empty() {
                    self.maybe_downgrade(&mut e, now);
                    continue;
                }
            }
            if e.group.members.is_empty()
                && e.group.pending.is_empty()
                && !self.store.holds_offsets(&e.group.id)
            {
                // nothing left of it (its last member, or a member id it handed out, expired
                // or left, and it never committed): gone now, as in Kafka, not an offsets
                // retention period later
                e.group.mark_dead();
                vanished.push(e.group.id.clone());
            } else if now - e.group.empty_since_ms >= self.cfg.offsets_retention_ms {
                e.group.mark_dead();
                expired.push(e.group.id.clone());
            }
        }
        if !vanished.is_empty() {
            let mut groups = self.groups.lock();
            for g in &vanished {
                groups.remove(g);
            }
        }
        for g in expired {
            self.groups.lock().remove(&g);
            tracing::info!(group = %g, "offsets of empty group expired (offsets_retention_minutes)");
            if let Err(e) = self
                .store
                .write(vec![Record::DeleteGroup { group: g.clone() }])
                .await
            {
                tracing::error!(group = %g, error = %e, "expiring offsets failed");
            }
        }
    }

    /// Shutdown: every pending JoinGroup and SyncGroup is answered REBALANCE_IN_PROGRESS now,
    /// and later ones at once (the members rejoin, with this broker once it is back), rather
    /// than holding their connections until the rebalance timeout while the broker drains.
    pub fn release_waiters(&self) {
        self.stopping.store(true, Ordering::Release);
        let entries: Vec<Arc<Mutex<Entry>>> = self.groups.lock().values().cloned().collect();
        for entry in entries {
            let mut e = entry.lock();
            // a dropped sender answers REBALANCE_IN_PROGRESS (see `join` and `sync`)
            e.joins.clear();
            e.syncs.clear();
        }
    }

    /// Ticks every `interval` until `cancel`.
    pub async fn run(self: Arc<Self>, interval: Duration, cancel: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => self.tick().await,
                _ = cancel.cancelled() => {
                    self.release_waiters();
                    return;
                }
            }
        }
    }
}

/// Whether a group speaks the classic protocol or KIP-848's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    Classic,
    Consumer,
}

impl GroupKind {
    pub fn name(self) -> &'static str {
        match self {
            GroupKind::Classic => "classic",
            GroupKind::Consumer => "consumer",
        }
    }
}

/// A group as ListGroups shows it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub id: String,
    pub protocol_type: String,
    pub state: &'static str,
    pub kind: GroupKind,
    pub members: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteError {
    NotFound,
    NotEmpty,
    SubscribedToTopic,
    Storage,
    /// The group's shard is not served here (yet).
    Unavailable(GroupError),
}

/// Topics in a ConsumerProtocolSubscription (any version): `i16 version, [string topic]`.
pub(super) fn subscription_topics(metadata: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    if metadata.len() < 6 {
        return out;
    }
    let n = i32::from_be_bytes([metadata[2], metadata[3], metadata[4], metadata[5]]);
    let mut pos = 6;
    for _ in 0..n.clamp(0, 10_000) {
        let Some(len) = metadata
            .get(pos..pos + 2)
            .map(|b| i16::from_be_bytes([b[0], b[1]]))
        else {
            break;
        };
        pos += 2;
        let Some(name) = metadata.get(pos..pos + len.max(0) as usize) else {
            break;
        };
        out.push(String::from_utf8_lossy(name).into_owned());
        pos += len.max(0) as usize;
    }
    out
}

/// Logs (at most once a minute) that a new group was refused for `max_groups`.
fn at_group_limit(group_id: &str, max: usize) {
    static EVERY_MINUTE: crate::clock::Throttle = crate::clock::Throttle::new(60);
    if EVERY_MINUTE.pass().is_some() {
        tracing::warn!(group = group_id, max, "refusing a new consumer group: the broker holds group_max_count groups already (COORDINATOR_NOT_AVAILABLE until some expire)");
    }
}

/// The answer to a JoinGroup the coordinator will not complete (shutdown, a dropped waiter):
/// REBALANCE_IN_PROGRESS, so the member joins again.
fn rebalancing(member_id: String) -> JoinResult {
    JoinResult {
        error: Some(GroupError::RebalanceInProgress),
        generation: -1,
        protocol_type: String::new(),
        protocol_name: String::new(),
        leader: String::new(),
        member_id,
        members: Vec::new(),
    }
}

#[path = "coordinator_consumer.rs"]
mod consumer;
use consumer::offsets_check_error;
pub use consumer::{ConsumerError, ConsumerGroupView};

#[cfg(test)]
#[path = "coordinator_tests.rs"]
mod tests;
