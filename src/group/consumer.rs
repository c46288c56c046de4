//! The consumer-group protocol of KIP-848, pure: no I/O, no clock reads. Members heartbeat
//! (ConsumerGroupHeartbeat) with their subscription; the coordinator computes a target
//! assignment with a server-side assignor whenever the group epoch moves, and brings each
//! member to it step by step: a member first gives up what it must revoke (its epoch stays),
//! then takes what is free at the new epoch; partitions another member still holds come later,
//! on a heartbeat after their release. Only moved partitions change hands; nobody stops.
//! Classic members may be part of the group too (`consumer_classic.rs`).
//!
//! Membership is kept in memory like the classic groups': after a restart or a move members
//! get UNKNOWN_MEMBER_ID and join again at epoch 0.

use super::assignors::{self, Assignment, Assignor, MemberSpec};
use crate::config::GroupConfig;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

#[path = "consumer_classic.rs"]
mod classic;
pub use classic::ClassicMember;
#[path = "consumer_topics.rs"]
mod topics;
use topics::Subscriptions;
pub use topics::{TopicInfo, TopicLookup};

/// Epochs a heartbeat uses to leave: -1 for good, -2 a static member's temporary leave.
pub const LEAVE_EPOCH: i32 = -1;
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// A consumer group's state as ConsumerGroupDescribe and ListGroups name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerState {
    Empty,
    Assigning,
    Reconciling,
    Stable,
}

impl ConsumerState {
    pub fn name(self) -> &'static str {
        match self {
            ConsumerState::Empty => "Empty",
            ConsumerState::Assigning => "Assigning",
            ConsumerState::Reconciling => "Reconciling",
            ConsumerState::Stable => "Stable",
        }
    }
}

/// Errors of a heartbeat, each a Kafka code in `api`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeartbeatError {
    UnknownMemberId,
    FencedMemberEpoch,
    UnreleasedInstanceId,
    FencedInstanceId,
    UnsupportedAssignor(String),
    InvalidRegex(String),
    InvalidRequest(&'static str),
    GroupMaxSizeReached,
}

/// Where a member is on its way to its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Holds its whole target at the current epoch.
    Stable,
    /// Must revoke `revoking` before it moves on.
    Unrevoked,
    /// At the target epoch, waiting for partitions other members still hold.
    Unreleased,
}

#[derive(Debug, Clone)]
pub struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub topic_names: Vec<String>,
    pub topic_regex: Option<String>,
    regex: Option<regex::Regex>,
    /// A new regular expression is resolved on the group's next heartbeat, as Kafka resolves
    /// them in the background: a member subscribing to names and a pattern gets the named
    /// topics at once and the matched ones a heartbeat later.
    regex_pending: bool,
    pub assignor: Option<Assignor>,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    pub assigned: Assignment,
    pub revoking: Assignment,
    pub last_seen_ms: i64,
    /// While revoking: by when it must have let go, or be removed.
    revoke_deadline_ms: Option<i64>,
    /// While revoking: the target epoch the revocation is for.
    revoke_for_epoch: i32,
    /// Set for a member that speaks the classic protocol (JoinGroup, SyncGroup, Heartbeat)
    /// inside this group.
    pub classic: Option<ClassicMember>,
}

impl ConsumerMember {
    /// A member that just joined: epoch 0, nothing assigned, no subscription yet.
    pub(super) fn new(
        id: &str,
        instance_id: Option<String>,
        rebalance_timeout_ms: i32,
        now: i64,
    ) -> ConsumerMember {
        ConsumerMember {
            id: id.to_string(),
            instance_id,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            rebalance_timeout_ms,
            topic_names: Vec::new(),
            topic_regex: None,
            regex: None,
            regex_pending: false,
            assignor: None,
            epoch: 0,
            previous_epoch: 0,
            state: MemberState::Stable,
            assigned: Assignment::new(),
            revoking: Assignment::new(),
            last_seen_ms: now,
            revoke_deadline_ms: None,
            revoke_for_epoch: 0,
            classic: None,
        }
    }

    /// Whether the member subscribes to `topic`, by name or by its resolved pattern.
    pub fn subscribes(&self, topic: &str) -> bool {
        self.topic_names.iter().any(|t| t == topic)
            || (!self.regex_pending && self.regex.as_ref().is_some_and(|r| r.is_match(topic)))
    }
}

/// A heartbeat, decoded. `None` fields are unchanged since the member's last heartbeat.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    pub member_id: String,
    pub epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub topic_names: Option<Vec<String>>,
    pub topic_regex: Option<String>,
    pub assignor: Option<String>,
    pub owned: Option<Assignment>,
}

/// What a heartbeat gets back.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatReply {
    pub member_id: String,
    pub epoch: i32,
    /// Sent when the member joined, sent a full request, or its partitions changed.
    pub assignment: Option<Assignment>,
    /// The group is still on its way to its target: members should heartbeat soon.
    pub settling: bool,
}

#[derive(Debug, Clone)]
pub struct ConsumerGroup {
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    pub target: BTreeMap<String, Assignment>,
    /// Static membership: instance id → member id.
    pub static_members: BTreeMap<String, String>,
    /// The subscribed topics as last resolved: id → (name, partitions).
    pub topics: BTreeMap<Uuid, (String, i32)>,
    /// The assignor of the last target.
    pub assignor: Assignor,
    /// The union of the subscriptions; `None` once a subscription or the membership changed.
    subscriptions: Option<Subscriptions>,
    /// Members that left (epoch -1) within a session timeout: their rebalance timeout, and when.
    departed: BTreeMap<String, (i32, i64)>,
    /// When a heartbeat last moved the group epoch.
    epoch_moved_ms: i64,
}

/// For this long after a member joins or changes its subscription, members are asked to
/// heartbeat soon even if the group looks settled: consumers started together join a few
/// milliseconds apart, and the first one, alone and settled for a moment, would otherwise hear of
/// the second only a whole heartbeat interval later.
const SETTLE_WINDOW_MS: i64 = 1000;

/// Most departed members remembered per group.
const MAX_DEPARTED: usize = 1000;

impl ConsumerGroup {
    pub fn new(default_assignor: Assignor) -> ConsumerGroup {
        ConsumerGroup {
            epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            static_members: BTreeMap::new(),
            topics: BTreeMap::new(),
            assignor: default_assignor,
            subscriptions: None,
            departed: BTreeMap::new(),
            epoch_moved_ms: i64::MIN / 2,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn state(&self) -> ConsumerState {
        if self.members.is_empty() {
            ConsumerState::Empty
        } else if self.epoch != self.assignment_epoch {
            ConsumerState::Assigning
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || m.state != MemberState::Stable)
        {
            ConsumerState::Reconciling
        } else {
            ConsumerState::Stable
        }
    }

    /// Every subscribed topic name (for OffsetDelete's check).
    pub fn subscribes(&self, topic: &str) -> bool {
        self.members.values().any(|m| m.subscribes(topic))
    }

    /// A topic id's name as last resolved.
    pub fn topic_name(&self, id: &Uuid) -> Option<&str> {
        self.topics.get(id).map(|(n, _)| n.as_str())
    }

    /// ConsumerGroupHeartbeat. `topics` lists every topic a member may subscribe to.
    pub fn heartbeat(
        &mut self,
        hb: Heartbeat,
        topics: &dyn TopicLookup,
        now: i64,
        cfg: &GroupConfig,
    ) -> Result<HeartbeatReply, HeartbeatError> {
        // patterns given since the last heartbeat are resolved now
        for m in self.members.values_mut().filter(|m| m.regex_pending) {
            m.regex_pending = false;
            self.subscriptions = None;
        }
        if hb.epoch == LEAVE_EPOCH || hb.epoch == STATIC_LEAVE_EPOCH {
            return self.leave(
                &hb.member_id,
                hb.instance_id.as_deref(),
                hb.epoch,
                topics,
                now,
            );
        }
        let assignor = match hb.assignor.as_deref() {
            None => None,
            Some(name) => {
                match Assignor::parse(name).filter(|a| cfg.consumer_assignors.contains(*a)) {
                    Some(a) => Some(a),
                    None => return Err(HeartbeatError::UnsupportedAssignor(name.to_string())),
                }
            }
        };
        let regex = match hb.topic_regex.as_deref() {
            Some(r) if !r.is_empty() => Some(
                regex::Regex::new(&format!("^(?:{r})$"))
                    .map_err(|e| HeartbeatError::InvalidRegex(e.to_string()))?,
            ),
            _ => None,
        };
        let joining = hb.epoch == 0;
        let full = hb.rebalance_timeout_ms != -1
            && (hb.topic_names.is_some() || hb.topic_regex.is_some())
            && hb.owned.is_some();
        let mut bump = false;
        if joining {
            bump |= self.admit(&hb, now, cfg)?;
        } else {
            self.check_epoch(&hb)?;
        }
        let Some(m) = self.members.get_mut(&hb.member_id) else {
            return Err(HeartbeatError::UnknownMemberId);
        };
        let before = m.assigned.clone();
        m.last_seen_ms = now;
        m.client_id = hb.client_id;
        m.client_host = hb.client_host;
        if hb.rebalance_timeout_ms > 0 {
            m.rebalance_timeout_ms = hb.rebalance_timeout_ms;
        }
        if hb.rack_id.is_some() {
            m.rack_id = hb.rack_id;
        }
        if let Some(names) = hb.topic_names {
            if names != m.topic_names {
                m.topic_names = names;
                self.subscriptions = None;
                bump = true;
            }
        }
        if let Some(r) = hb.topic_regex {
            let r = (!r.is_empty()).then_some(r);
            if r != m.topic_regex {
                m.regex_pending = r.is_some();
                m.topic_regex = r;
                m.regex = regex;
                self.subscriptions = None;
                bump = true;
            }
        }
        if assignor.is_some() && assignor != m.assignor {
            m.assignor = assignor;
            bump = true;
        }
        let owned = hb.owned;
        bump |= self.refresh_topics(topics);
        if bump {
            self.epoch += 1;
            self.epoch_moved_ms = now;
        }
        self.update_target(cfg);
        self.reconcile(&hb.member_id, owned.as_ref(), now);
        let m = &self.members[&hb.member_id];
        let changed = m.assigned != before;
        Ok(HeartbeatReply {
            member_id: m.id.clone(),
            epoch: m.epoch,
            assignment: (joining || full || changed).then(|| m.assigned.clone()),
            settling: self.state() != ConsumerState::Stable
                || now - self.epoch_moved_ms < SETTLE_WINDOW_MS
                || self.members.values().any(|m| m.regex_pending),
        })
    }

    /// A member joining at epoch 0: new, a static member's replacement, or a rejoin.
    /// Returns whether the group epoch must move.
    fn admit(
        &mut self,
        hb: &Heartbeat,
        now: i64,
        cfg: &GroupConfig,
    ) -> Result<bool, HeartbeatError> {
        if hb.member_id.is_empty() {
            return Err(HeartbeatError::InvalidRequest("a member id is required"));
        }
        // A member that is in the group or has just left may rejoin without its rebalance
        // timeout: librdkafka does, when a subscribe follows an unsubscribe faster than it takes
        // in the answer to its leave. It keeps the timeout it had; anyone else must give one.
        let known = self
            .departed
            .remove(&hb.member_id)
            .map(|(t, _)| t)
            .or_else(|| {
                self.members
                    .get(&hb.member_id)
                    .map(|m| m.rebalance_timeout_ms)
            });
        let rebalance_timeout_ms = match (hb.rebalance_timeout_ms, known) {
            (-1, Some(t)) => t,
            (-1, None) => {
                return Err(HeartbeatError::InvalidRequest(
                    "RebalanceTimeoutMs must be provided in first request",
                ))
            }
            (t, _) => t,
        };
        if hb.owned.as_ref().is_some_and(|o| !o.is_empty()) {
            return Err(HeartbeatError::InvalidRequest(
                "TopicPartitions must be empty when (re-)joining",
            ));
        }
        if hb.topic_names.is_none() && hb.topic_regex.is_none() {
            return Err(HeartbeatError::InvalidRequest(
                "SubscribedTopicNames or SubscribedTopicRegex must be set in first request",
            ));
        }
        if let Some(inst) = &hb.instance_id {
            if let Some(old_id) = self.static_members.get(inst).cloned() {
                if old_id != hb.member_id {
                    let Some(old) = self.members.get(&old_id) else {
                        self.static_members.remove(inst);
                        return self.admit(hb, now, cfg);
                    };
                    // a classic member's next process may come with the new protocol (a static
                    // group's rolling upgrade): it takes over as from a member that left
                    if old.epoch != STATIC_LEAVE_EPOCH && old.classic.is_none() {
                        return Err(HeartbeatError::UnreleasedInstanceId);
                    }
                    let left = old.epoch == STATIC_LEAVE_EPOCH;
                    // the replacement takes the departed instance's place: its partitions and
                    // epoch, with no rebalance
                    let mut m = old.clone();
                    self.members.remove(&old_id);
                    let target = self.target.remove(&old_id);
                    m.id = hb.member_id.clone();
                    if left {
                        m.epoch = m.previous_epoch;
                    }
                    m.classic = None;
                    m.last_seen_ms = now;
                    self.static_members.insert(inst.clone(), m.id.clone());
                    if let Some(t) = target {
                        self.target.insert(m.id.clone(), t);
                    }
                    self.members.insert(m.id.clone(), m);
                    return Ok(false);
                }
            }
        }
        if let Some(m) = self.members.get(&hb.member_id) {
            if m.epoch != 0 || !m.assigned.is_empty() {
                // a member that lost its way and rejoins: it starts over without partitions
                self.remove(&hb.member_id);
            } else {
                return Ok(false);
            }
        } else if self.members.len() >= cfg.consumer_max_size {
            return Err(HeartbeatError::GroupMaxSizeReached);
        }
        self.members.insert(
            hb.member_id.clone(),
            ConsumerMember::new(
                &hb.member_id,
                hb.instance_id.clone(),
                rebalance_timeout_ms,
                now,
            ),
        );
        if let Some(inst) = &hb.instance_id {
            self.static_members
                .insert(inst.clone(), hb.member_id.clone());
        }
        self.subscriptions = None;
        Ok(true)
    }

    /// A heartbeat's epoch must be the member's, or its previous one with no more than it
    /// holds now (the answer that moved it on was lost).
    fn check_epoch(&self, hb: &Heartbeat) -> Result<(), HeartbeatError> {
        if hb.epoch < STATIC_LEAVE_EPOCH {
            return Err(HeartbeatError::InvalidRequest("MemberEpoch is invalid"));
        }
        if hb.member_id.is_empty() {
            return Err(HeartbeatError::InvalidRequest("MemberId can't be empty"));
        }
        let Some(m) = self.members.get(&hb.member_id) else {
            return Err(HeartbeatError::UnknownMemberId);
        };
        if m.classic.is_some() {
            // a classic member heartbeats with the classic API; this id is not one of ours
            return Err(HeartbeatError::UnknownMemberId);
        }
        if let Some(inst) = &hb.instance_id {
            if self
                .static_members
                .get(inst)
                .is_some_and(|id| *id != hb.member_id)
            {
                return Err(HeartbeatError::FencedInstanceId);
            }
        }
        if hb.epoch > m.epoch {
            return Err(HeartbeatError::FencedMemberEpoch);
        }
        if hb.epoch < m.epoch {
            let subset = hb.owned.as_ref().is_some_and(|o| is_subset(o, &m.assigned));
            if hb.epoch != m.previous_epoch || !subset {
                return Err(HeartbeatError::FencedMemberEpoch);
            }
        }
        Ok(())
    }

    fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        epoch: i32,
        topics: &dyn TopicLookup,
        now: i64,
    ) -> Result<HeartbeatReply, HeartbeatError> {
        let id = match (self.members.contains_key(member_id), instance_id) {
            (true, _) => member_id.to_string(),
            (false, Some(inst)) => self
                .static_members
                .get(inst)
                .cloned()
                .ok_or(HeartbeatError::UnknownMemberId)?,
            (false, None) => return Err(HeartbeatError::UnknownMemberId),
        };
        if epoch == STATIC_LEAVE_EPOCH && instance_id.is_some() {
            // kept with its partitions until its session ends, for its replacement to take
            if let Some(m) = self.members.get_mut(&id) {
                if m.epoch != STATIC_LEAVE_EPOCH {
                    m.previous_epoch = m.epoch;
                }
                m.epoch = STATIC_LEAVE_EPOCH;
                m.last_seen_ms = now;
            }
        } else {
            if let Some(m) = self.remove(&id) {
                if self.departed.len() >= MAX_DEPARTED {
                    self.departed.pop_first();
                }
                self.departed.insert(id, (m.rebalance_timeout_ms, now));
            }
            self.refresh_topics(topics);
            self.epoch += 1;
        }
        Ok(HeartbeatReply {
            member_id: member_id.to_string(),
            epoch,
            assignment: None,
            settling: false,
        })
    }

    fn remove(&mut self, id: &str) -> Option<ConsumerMember> {
        let m = self.members.remove(id)?;
        self.target.remove(id);
        self.subscriptions = None;
        if let Some(inst) = &m.instance_id {
            if self.static_members.get(inst).is_some_and(|i| i == id) {
                self.static_members.remove(inst);
            }
        }
        Some(m)
    }

    /// Resolves every member's subscription against `topics`; whether it changed.
    fn refresh_topics(&mut self, topics: &dyn TopicLookup) -> bool {
        let members = &self.members;
        let subs = self
            .subscriptions
            .get_or_insert_with(|| Subscriptions::of(members));
        let mut resolved = BTreeMap::new();
        topics.each_topic(&mut |name, id, partitions| {
            if subs.matches(name) {
                resolved.insert(id, (name.to_string(), partitions));
            }
        });
        if resolved != self.topics {
            self.topics = resolved;
            true
        } else {
            false
        }
    }

    /// Computes a new target when the group epoch moved past the last one.
    fn update_target(&mut self, cfg: &GroupConfig) {
        if self.epoch == self.assignment_epoch {
            return;
        }
        // the assignor most members ask for, else the configured default
        let mut votes: BTreeMap<&'static str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = m.assignor {
                *votes.entry(a.name()).or_default() += 1;
            }
        }
        self.assignor = votes
            .iter()
            .max_by_key(|(_, n)| **n)
            .and_then(|(name, _)| Assignor::parse(name))
            .unwrap_or(cfg.consumer_assignors.preferred());
        let specs: Vec<MemberSpec<'_>> = self
            .members
            .values()
            .map(|m| MemberSpec {
                id: &m.id,
                topics: self
                    .topics
                    .iter()
                    .filter(|(_, (name, _))| m.subscribes(name))
                    .map(|(id, _)| *id)
                    .collect(),
                previous: self.target.get(&m.id),
            })
            .collect();
        let counts = self.topics.iter().map(|(id, (_, n))| (*id, *n)).collect();
        let target = assignors::assign(self.assignor, &specs, &counts);
        self.target = target;
        self.assignment_epoch = self.epoch;
    }

    /// Partitions members other than `id` hold now (assigned or still revoking).
    fn held_by_others(&self, id: &str) -> BTreeSet<(Uuid, i32)> {
        let mut out = BTreeSet::new();
        for m in self.members.values().filter(|m| m.id != id) {
            for a in [&m.assigned, &m.revoking] {
                for (t, ps) in a {
                    out.extend(ps.iter().map(|p| (*t, *p)));
                }
            }
        }
        out
    }

    /// Moves a member one step toward its target (Kafka's CurrentAssignmentBuilder).
    fn reconcile(&mut self, id: &str, owned: Option<&Assignment>, now: i64) {
        let Some(m) = self.members.get(id) else {
            return;
        };
        if m.epoch == STATIC_LEAVE_EPOCH {
            return;
        }
        match m.state {
            MemberState::Stable if m.epoch == self.assignment_epoch => return,
            MemberState::Unrevoked => {
                // still holding something it must give up: it waits (unless a newer target
                // came, which may let it keep those partitions after all)
                let still_holds = match owned {
                    None => true,
                    Some(o) => overlaps(o, &m.revoking),
                };
                if still_holds && m.revoke_for_epoch == self.assignment_epoch {
                    return;
                }
                if still_holds {
                    // a newer target: recompute from what it holds, revocations included
                    let mut holding = m.assigned.clone();
                    merge(&mut holding, &m.revoking);
                    let m = self.members.get_mut(id).expect("checked above");
                    m.assigned = holding;
                    m.revoking.clear();
                }
            }
            _ => {}
        }
        let target = self.target.get(id).cloned().unwrap_or_default();
        let held = self.held_by_others(id);
        let Some(m) = self.members.get_mut(id) else {
            return;
        };
        let mut keep = Assignment::new();
        let mut revoke = Assignment::new();
        let mut unreleased = false;
        let mut next = Assignment::new();
        for (t, ps) in &m.assigned {
            for &p in ps {
                let slot = if target.get(t).is_some_and(|s| s.contains(&p)) {
                    &mut keep
                } else {
                    &mut revoke
                };
                slot.entry(*t).or_default().insert(p);
            }
        }
        for (t, ps) in &target {
            for &p in ps {
                if keep.get(t).is_some_and(|s| s.contains(&p)) {
                    continue;
                }
                if held.contains(&(*t, p)) {
                    unreleased = true;
                } else {
                    next.entry(*t).or_default().insert(p);
                }
            }
        }
        // a member whose report shows it already let go of them need not be asked to
        let still_owned = owned.is_none_or(|o| overlaps(o, &revoke));
        if !revoke.is_empty() && still_owned {
            m.state = MemberState::Unrevoked;
            m.assigned = keep;
            m.revoking = revoke;
            // a newer target while revoking does not extend the time to let go
            if m.revoke_deadline_ms.is_none() {
                m.revoke_deadline_ms = Some(now + i64::from(m.rebalance_timeout_ms.max(0)));
            }
            m.revoke_for_epoch = self.assignment_epoch;
            return;
        }
        merge(&mut next, &keep);
        if m.epoch != self.assignment_epoch {
            m.previous_epoch = m.epoch;
            m.epoch = self.assignment_epoch;
        }
        m.assigned = next;
        m.revoking.clear();
        m.revoke_deadline_ms = None;
        m.state = if unreleased {
            MemberState::Unreleased
        } else {
            MemberState::Stable
        };
    }

    /// Session and revocation timeouts; returns the members removed.
    pub fn tick(
        &mut self,
        now: i64,
        cfg: &GroupConfig,
        topics: Option<&dyn TopicLookup>,
    ) -> Vec<String> {
        let session = i64::from(cfg.consumer_session_timeout_ms);
        self.departed.retain(|_, (_, at)| now - *at <= session);
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                let session = m
                    .classic
                    .as_ref()
                    .map_or(session, |c| i64::from(c.session_timeout_ms));
                now - m.last_seen_ms > session
                    || m.revoke_deadline_ms.is_some_and(|d| now > d)
                    || m.classic.as_ref().is_some_and(|c| c.overdue(now))
            })
            .map(|m| m.id.clone())
            .collect();
        for id in &gone {
            self.remove(id);
        }
        if !gone.is_empty() {
            if let Some(t) = topics {
                self.refresh_topics(t);
            }
            self.epoch += 1;
            self.update_target(cfg);
        }
        gone
    }

    /// OffsetCommit's check of the committing member's epoch. A commit from outside the group
    /// (epoch < 0: an admin or a consumer without group management) is allowed while the group
    /// has no members. `version` is the OffsetCommit's (`None`: TxnOffsetCommit): a KIP-848
    /// member commits with v9 or later, which carries its member epoch (UNSUPPORTED_VERSION
    /// otherwise, as Kafka); a classic member of the group with any.
    pub fn check_commit(
        &self,
        member_id: &str,
        epoch: i32,
        version: Option<i16>,
    ) -> Result<(), OffsetsCheck> {
        if epoch < 0 && self.members.is_empty() {
            return Ok(());
        }
        let m = self.offsets_member(member_id)?;
        if m.classic.is_none() && version.is_some_and(|v| v < 9) {
            return Err(OffsetsCheck::UnsupportedVersion);
        }
        check_member_epoch(m, epoch)
    }

    /// OffsetFetch v9's check: a fetch naming no member is always allowed.
    pub fn check_fetch(&self, member_id: Option<&str>, epoch: i32) -> Result<(), OffsetsCheck> {
        match member_id {
            None if epoch < 0 => Ok(()),
            m => check_member_epoch(self.offsets_member(m.unwrap_or_default())?, epoch),
        }
    }

    fn offsets_member(&self, member_id: &str) -> Result<&ConsumerMember, OffsetsCheck> {
        self.members
            .get(member_id)
            .ok_or(OffsetsCheck::UnknownMember)
    }
}

/// The member epoch an OffsetCommit or OffsetFetch names against the member's own.
fn check_member_epoch(m: &ConsumerMember, epoch: i32) -> Result<(), OffsetsCheck> {
    match (epoch == m.epoch, m.classic.is_some()) {
        (true, _) => Ok(()),
        // a classic member's generation, as the classic protocol answers a stale one
        (false, true) => Err(OffsetsCheck::IllegalGeneration),
        (false, false) => Err(OffsetsCheck::StaleEpoch),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetsCheck {
    UnknownMember,
    StaleEpoch,
    IllegalGeneration,
    UnsupportedVersion,
}

fn is_subset(small: &Assignment, big: &Assignment) -> bool {
    small
        .iter()
        .all(|(t, ps)| ps.is_empty() || big.get(t).is_some_and(|b| ps.is_subset(b)))
}

fn overlaps(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .any(|(t, ps)| b.get(t).is_some_and(|q| !ps.is_disjoint(q)))
}

fn merge(into: &mut Assignment, from: &Assignment) {
    for (t, ps) in from {
        into.entry(*t).or_default().extend(ps.iter().copied());
    }
}

/// Partition count of an assignment.
pub fn partition_count(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

#[cfg(test)]
#[path = "consumer_tests.rs"]
mod tests;
