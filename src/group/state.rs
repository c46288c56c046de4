//! The classic consumer-group state machine, pure: no I/O, no clock reads, no async. Every
//! input carries `now`; every output that completes someone else's pending request comes back
//! as a [`Completion`] for the driver to deliver. Unit tests drive it directly.
//!
//! States follow Kafka's: Empty → PreparingRebalance → CompletingRebalance → Stable, and Dead
//! once deleted. A rebalance ends when every member has rejoined, or at the rebalance deadline
//! (members that did not rejoin are removed). A new group waits `initial_rebalance_delay_ms`
//! so members starting together land in one generation.

use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// Errors the state machine answers with; `api` maps them to Kafka codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupError {
    UnknownMemberId,
    IllegalGeneration,
    RebalanceInProgress,
    InconsistentGroupProtocol,
    InvalidSessionTimeout,
    MemberIdRequired,
    FencedInstanceId,
    CoordinatorNotAvailable,
    GroupMaxSizeReached,
    /// The group's coordinator shard is led by another node (cluster mode).
    NotCoordinator,
    /// The group's coordinator shard is being loaded on this node.
    CoordinatorLoadInProgress,
    /// A KIP-848 member's epoch is not its current one (OffsetCommit, OffsetFetch).
    StaleMemberEpoch,
    /// The group is of the other protocol and has members.
    GroupIdNotFound,
    /// A KIP-848 member's OffsetCommit is older than v9.
    UnsupportedVersion,
}

pub use crate::config::GroupConfig;

#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// `(protocol name, metadata)` in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    /// Waiting for the JoinGroup response of the current rebalance.
    pub awaiting_join: bool,
    /// Waiting for the SyncGroup response of the current generation.
    pub awaiting_sync: bool,
    pub last_seen_ms: i64,
}

impl Member {
    pub(crate) fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

/// What a JoinGroup resolves to.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinResult {
    pub error: Option<GroupError>,
    pub generation: i32,
    pub protocol_type: String,
    pub protocol_name: String,
    pub leader: String,
    pub member_id: String,
    /// Filled for the leader only: `(member id, instance id, metadata)`.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinResult {
    pub fn error(e: GroupError, member_id: &str) -> Self {
        JoinResult {
            error: Some(e),
            generation: -1,
            protocol_type: String::new(),
            protocol_name: String::new(),
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// A SyncGroup result: the member's assignment or an error.
pub type SyncResult = Result<(String, String, Bytes), GroupError>;

/// A pending request of another member that an input completed.
#[derive(Debug, Clone, PartialEq)]
pub enum Completion {
    Join(String, JoinResult),
    Sync(String, SyncResult),
}

/// The answer to an input: now, or later through a completion for the member id given.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer<T> {
    Now(T),
    Pending(String),
}

/// A JoinGroup request, decoded.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// v4+: an unknown member first gets MEMBER_ID_REQUIRED with its new id (KIP-394).
    pub require_known_member_id: bool,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub generation: i32,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined, with when.
    pub pending: BTreeMap<String, i64>,
    /// Static membership: instance id → member id.
    pub static_members: BTreeMap<String, String>,
    /// When the current rebalance must end.
    pub rebalance_deadline_ms: i64,
    /// A rebalance that starts from Empty waits until here for more members to join.
    initial_delay_until: Option<i64>,
    /// When the group last became Empty (offset expiry counts from here).
    pub empty_since_ms: i64,
    next_member_seq: u64,
}

impl Group {
    pub fn new(id: &str, now: i64) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            protocol_type: None,
            protocol_name: None,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            pending: BTreeMap::new(),
            static_members: BTreeMap::new(),
            rebalance_deadline_ms: 0,
            initial_delay_until: None,
            empty_since_ms: now,
            next_member_seq: 0,
        }
    }

    /// The classic group a KIP-848 group becomes when only classic members are left in it
    /// (online downgrade): a rebalance at `generation`, each member holding the assignment it is
    /// given until it rejoins.
    pub fn converted(
        id: &str,
        generation: i32,
        members: Vec<Member>,
        now: i64,
        cfg: &GroupConfig,
    ) -> Group {
        let mut g = Group::new(id, now);
        g.generation = generation;
        g.protocol_type = Some("consumer".to_string());
        for m in members {
            if let Some(inst) = &m.instance_id {
                g.static_members.insert(inst.clone(), m.id.clone());
            }
            g.members.insert(m.id.clone(), m);
        }
        g.protocol_name = g.select_protocol();
        g.state = GroupState::Stable;
        g.prepare_rebalance(now, cfg, &mut Vec::new());
        g
    }

    fn new_member_id(&mut self, client_id: &str, instance_id: Option<&str>) -> String {
        self.next_member_seq += 1;
        let prefix = instance_id.unwrap_or(client_id);
        // bounded: a hostile client id must not make every response huge
        let prefix: String = prefix.chars().take(64).collect();
        format!("{prefix}-{}", uuid::Uuid::new_v4())
    }

    /// Protocols every member supports, most preferred first by votes.
    fn select_protocol(&self) -> Option<String> {
        let mut common: Option<BTreeSet<&str>> = None;
        for m in self.members.values() {
            let names: BTreeSet<&str> = m.protocols.iter().map(|(n, _)| n.as_str()).collect();
            common = Some(match common {
                None => names,
                Some(c) => c.intersection(&names).copied().collect(),
            });
        }
        let common = common?;
        // each member votes for its most preferred common protocol
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((n, _)) = m
                .protocols
                .iter()
                .find(|(n, _)| common.contains(n.as_str()))
            {
                *votes.entry(n.as_str()).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(_, v)| *v)
            .map(|(n, _)| n.to_string())
    }

    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        // at least one protocol every current member also supports
        protocols.iter().any(|(n, _)| {
            self.members
                .values()
                .all(|m| m.protocols.iter().any(|(mn, _)| mn == n))
        })
    }

    fn max_rebalance_timeout(&self) -> i64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms as i64)
            .max()
            .unwrap_or(0)
    }

    /// Starts (or extends) a rebalance.
    fn prepare_rebalance(&mut self, now: i64, cfg: &GroupConfig, out: &mut Vec<Completion>) {
        // members waiting for a sync of the old generation must rejoin
        for m in self.members.values_mut() {
            if m.awaiting_sync {
                m.awaiting_sync = false;
                out.push(Completion::Sync(
                    m.id.clone(),
                    Err(GroupError::RebalanceInProgress),
                ));
            }
        }
        let initial = self.state == GroupState::Empty;
        self.state = GroupState::PreparingRebalance;
        let timeout = self.max_rebalance_timeout();
        self.rebalance_deadline_ms = now + timeout;
        self.initial_delay_until =
            initial.then(|| now + cfg.initial_rebalance_delay_ms.min(timeout));
    }

    fn add_member(&mut self, req: &JoinRequest, member_id: String, now: i64) {
        if let Some(inst) = &req.instance_id {
            self.static_members.insert(inst.clone(), member_id.clone());
        }
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        self.members.insert(
            member_id.clone(),
            Member {
                id: member_id,
                instance_id: req.instance_id.clone(),
                client_id: req.client_id.clone(),
                client_host: req.client_host.clone(),
                session_timeout_ms: req.session_timeout_ms,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                protocols: req.protocols.clone(),
                assignment: Bytes::new(),
                awaiting_join: true,
                awaiting_sync: false,
                last_seen_ms: now,
            },
        );
    }

    /// JoinGroup.
    pub fn join(
        &mut self,
        req: JoinRequest,
        now: i64,
        cfg: &GroupConfig,
        out: &mut Vec<Completion>,
    ) -> Answer<JoinResult> {
        let fail = |e| Answer::Now(JoinResult::error(e, &req.member_id));
        if self.state == GroupState::Dead {
            return fail(GroupError::CoordinatorNotAvailable);
        }
        if req.session_timeout_ms < cfg.min_session_timeout_ms
            || req.session_timeout_ms > cfg.max_session_timeout_ms
        {
            return fail(GroupError::InvalidSessionTimeout);
        }
        if req.protocol_type.is_empty()
            || req.protocols.is_empty()
            || !self.supports_protocols(&req.protocol_type, &req.protocols)
        {
            return fail(GroupError::InconsistentGroupProtocol);
        }
        if req.member_id.is_empty() {
            return self.join_unknown(req, now, cfg, out);
        }
        // a known (or pending) member
        if let Some(inst) = &req.instance_id {
            match self.static_members.get(inst) {
                Some(id) if *id != req.member_id => return fail(GroupError::FencedInstanceId),
                _ => {}
            }
        }
        if self.pending.remove(&req.member_id).is_some() {
            if self.members.len() >= cfg.max_size {
                return fail(GroupError::GroupMaxSizeReached);
            }
            self.add_member(&req, req.member_id.clone(), now);
            if self.state != GroupState::PreparingRebalance {
                self.prepare_rebalance(now, cfg, out);
            }
            self.try_complete_join(now, out);
            return self.pending_or_done(&req.member_id, out);
        }
        let Some(member) = self.members.get_mut(&req.member_id) else {
            return fail(GroupError::UnknownMemberId);
        };
        member.last_seen_ms = now;
        let unchanged = member.protocols == req.protocols;
        match self.state {
            GroupState::PreparingRebalance => {
                let m = self.members.get_mut(&req.member_id).expect("checked above");
                m.protocols = req.protocols.clone();
                m.session_timeout_ms = req.session_timeout_ms;
                m.rebalance_timeout_ms = req.rebalance_timeout_ms;
                m.awaiting_join = true;
                self.try_complete_join(now, out);
                self.pending_or_done(&req.member_id, out)
            }
            GroupState::CompletingRebalance | GroupState::Stable
                if unchanged && self.leader.as_deref() != Some(&req.member_id) =>
            {
                // a follower resending its join: answer with the current generation
                Answer::Now(self.join_result_for(&req.member_id))
            }
            _ => {
                let m = self.members.get_mut(&req.member_id).expect("checked above");
                m.protocols = req.protocols.clone();
                m.awaiting_join = true;
                self.prepare_rebalance(now, cfg, out);
                self.try_complete_join(now, out);
                self.pending_or_done(&req.member_id, out)
            }
        }
    }

    fn join_unknown(
        &mut self,
        req: JoinRequest,
        now: i64,
        cfg: &GroupConfig,
        out: &mut Vec<Completion>,
    ) -> Answer<JoinResult> {
        // static member rejoining with a new process: replace the old member id
        if let Some(inst) = req.instance_id.clone() {
            if let Some(old_id) = self.static_members.get(&inst).cloned() {
                let new_id = self.new_member_id(&req.client_id, Some(&inst));
                let Some(mut m) = self.members.remove(&old_id) else {
                    self.static_members.remove(&inst);
                    return self.join_unknown(req, now, cfg, out);
                };
                // the old incarnation's pending requests are fenced
                release_parked(&m, GroupError::FencedInstanceId, out);
                let unchanged = m.protocols == req.protocols;
                m.id = new_id.clone();
                m.last_seen_ms = now;
                m.session_timeout_ms = req.session_timeout_ms;
                m.rebalance_timeout_ms = req.rebalance_timeout_ms;
                m.protocols = req.protocols.clone();
                m.awaiting_sync = false;
                if self.leader.as_deref() == Some(&old_id) {
                    self.leader = Some(new_id.clone());
                }
                self.static_members.insert(inst, new_id.clone());
                let stable = self.state == GroupState::Stable;
                m.awaiting_join = !(stable && unchanged);
                self.members.insert(new_id.clone(), m);
                if stable && unchanged {
                    // KIP-345: same subscription, no rebalance; it keeps its assignment
                    return Answer::Now(self.join_result_for(&new_id));
                }
                if self.state != GroupState::PreparingRebalance {
                    self.prepare_rebalance(now, cfg, out);
                }
                self.try_complete_join(now, out);
                return self.pending_or_done(&new_id, out);
            }
        }
        if self.members.len() + self.pending.len() >= cfg.max_size {
            return Answer::Now(JoinResult::error(GroupError::GroupMaxSizeReached, ""));
        }
        let new_id = self.new_member_id(&req.client_id, req.instance_id.as_deref());
        if req.require_known_member_id && req.instance_id.is_none() {
            self.pending.insert(new_id.clone(), now);
            return Answer::Now(JoinResult::error(GroupError::MemberIdRequired, &new_id));
        }
        self.add_member(&req, new_id.clone(), now);
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now, cfg, out);
        }
        self.try_complete_join(now, out);
        self.pending_or_done(&new_id, out)
    }

    /// If `member` was completed by the last step, answer it now instead of through `out`.
    fn pending_or_done(&mut self, member: &str, out: &mut Vec<Completion>) -> Answer<JoinResult> {
        if let Some(i) = out
            .iter()
            .position(|c| matches!(c, Completion::Join(id, _) if id == member))
        {
            if let Completion::Join(_, r) = out.remove(i) {
                return Answer::Now(r);
            }
        }
        Answer::Pending(member.to_string())
    }

    fn join_result_for(&self, member: &str) -> JoinResult {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let is_leader = self.leader.as_deref() == Some(member);
        JoinResult {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol_name: protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member.to_string(),
            members: if is_leader {
                self.members
                    .values()
                    .map(|m| {
                        (
                            m.id.clone(),
                            m.instance_id.clone(),
                            m.metadata_for(&protocol),
                        )
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    /// Ends the join phase when every member has rejoined (or the deadline passed).
    fn try_complete_join(&mut self, now: i64, out: &mut Vec<Completion>) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined = self.members.values().all(|m| m.awaiting_join);
        let initial_delay_over = self.initial_delay_until.is_none_or(|t| now >= t);
        if !(now >= self.rebalance_deadline_ms || (all_joined && initial_delay_over)) {
            return;
        }
        self.initial_delay_until = None;
        // members that did not rejoin in time are out
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.awaiting_join)
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id);
        }
        self.generation += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.empty_since_ms = now;
            self.protocol_name = None;
            self.leader = None;
            return;
        }
        self.protocol_name = self.select_protocol();
        if self
            .leader
            .as_ref()
            .is_none_or(|l| !self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = GroupState::CompletingRebalance;
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let r = self.join_result_for(&id);
            if let Some(m) = self.members.get_mut(&id) {
                m.awaiting_join = false;
                m.last_seen_ms = now;
                m.assignment = Bytes::new();
            }
            out.push(Completion::Join(id, r));
        }
    }

    fn remove_member(&mut self, id: &str) -> Option<Member> {
        let m = self.members.remove(id)?;
        if let Some(inst) = &m.instance_id {
            if self.static_members.get(inst).map(String::as_str) == Some(id) {
                self.static_members.remove(inst);
            }
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
        Some(m)
    }

    fn check_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), GroupError> {
        if let Some(inst) = instance_id {
            if let Some(id) = self.static_members.get(inst) {
                if id != member_id {
                    return Err(GroupError::FencedInstanceId);
                }
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(GroupError::UnknownMemberId);
        }
        Ok(())
    }

    /// SyncGroup. The leader's call carries every member's assignment.
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
        now: i64,
        out: &mut Vec<Completion>,
    ) -> Answer<SyncResult> {
        if self.state == GroupState::Dead {
            return Answer::Now(Err(GroupError::CoordinatorNotAvailable));
        }
        if let Err(e) = self.check_member(member_id, instance_id) {
            return Answer::Now(Err(e));
        }
        if generation != self.generation {
            return Answer::Now(Err(GroupError::IllegalGeneration));
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_seen_ms = now;
        }
        match self.state {
            GroupState::PreparingRebalance | GroupState::Empty | GroupState::Dead => {
                Answer::Now(Err(GroupError::RebalanceInProgress))
            }
            GroupState::Stable => Answer::Now(Ok(self.sync_ok(member_id))),
            GroupState::CompletingRebalance => {
                if self.leader.as_deref() == Some(member_id) {
                    for m in self.members.values_mut() {
                        m.assignment = Bytes::new();
                    }
                    for (id, a) in assignments {
                        if let Some(m) = self.members.get_mut(&id) {
                            m.assignment = a;
                        }
                    }
                    self.state = GroupState::Stable;
                    let waiting: Vec<String> = self
                        .members
                        .values()
                        .filter(|m| m.awaiting_sync)
                        .map(|m| m.id.clone())
                        .collect();
                    for id in waiting {
                        if let Some(m) = self.members.get_mut(&id) {
                            m.awaiting_sync = false;
                        }
                        out.push(Completion::Sync(id.clone(), Ok(self.sync_ok(&id))));
                    }
                    Answer::Now(Ok(self.sync_ok(member_id)))
                } else {
                    if let Some(m) = self.members.get_mut(member_id) {
                        m.awaiting_sync = true;
                    }
                    Answer::Pending(member_id.to_string())
                }
            }
        }
    }

    fn sync_ok(&self, member: &str) -> (String, String, Bytes) {
        (
            self.protocol_type.clone().unwrap_or_default(),
            self.protocol_name.clone().unwrap_or_default(),
            self.members
                .get(member)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        )
    }

    /// Heartbeat.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: i64,
    ) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        self.check_member(member_id, instance_id)?;
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_seen_ms = now;
        }
        match self.state {
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            _ if generation != self.generation => Err(GroupError::IllegalGeneration),
            _ => Ok(()),
        }
    }

    /// LeaveGroup for one member (by member id, or by instance id for static members).
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now: i64,
        cfg: &GroupConfig,
        out: &mut Vec<Completion>,
    ) -> Result<(), GroupError> {
        let id = leaving_member(&self.static_members, member_id, instance_id)?;
        if self.pending.remove(&id).is_some() {
            return Ok(());
        }
        let m = self.remove_member(&id).ok_or(GroupError::UnknownMemberId)?;
        release_parked(&m, GroupError::UnknownMemberId, out);
        self.after_departure(now, cfg, out);
        Ok(())
    }

    fn after_departure(&mut self, now: i64, cfg: &GroupConfig, out: &mut Vec<Completion>) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                if self.members.is_empty() {
                    self.state = GroupState::Empty;
                    self.empty_since_ms = now;
                    self.generation += 1;
                    self.protocol_name = None;
                } else {
                    self.prepare_rebalance(now, cfg, out);
                }
            }
            GroupState::PreparingRebalance => self.try_complete_join(now, out),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Expires members whose session ran out and ends rebalances whose deadline passed.
    pub fn tick(&mut self, now: i64, cfg: &GroupConfig, out: &mut Vec<Completion>) {
        self.pending
            .retain(|_, since| now - *since < cfg.max_session_timeout_ms as i64);
        let expired: Vec<String> = self
            .members
            .values()
            // a member waiting for its join response is held by the rebalance deadline instead
            .filter(|m| !m.awaiting_join && now - m.last_seen_ms > m.session_timeout_ms as i64)
            .map(|m| m.id.clone())
            .collect();
        let any = !expired.is_empty();
        for id in expired {
            if let Some(m) = self.remove_member(&id) {
                release_parked(&m, GroupError::UnknownMemberId, out);
            }
        }
        if any {
            self.after_departure(now, cfg, out);
        }
        self.try_complete_join(now, out);
    }

    /// Marks the group deleted (DeleteGroups on an empty group).
    pub fn mark_dead(&mut self) {
        self.state = GroupState::Dead;
    }

    /// Topics the members subscribed to, when they speak the consumer protocol.
    pub fn member_metadata(&self) -> Vec<Bytes> {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.members
            .values()
            .map(|m| m.metadata_for(&protocol))
            .collect()
    }
}

/// The member a LeaveGroup entry names: by instance id for a static member (whose member id,
/// when given, must match), else by member id.
pub(crate) fn leaving_member(
    static_members: &BTreeMap<String, String>,
    member_id: &str,
    instance_id: Option<&str>,
) -> Result<String, GroupError> {
    let Some(inst) = instance_id else {
        return Ok(member_id.to_string());
    };
    let id = static_members
        .get(inst)
        .cloned()
        .ok_or(GroupError::UnknownMemberId)?;
    if !member_id.is_empty() && member_id != id {
        return Err(GroupError::FencedInstanceId);
    }
    Ok(id)
}

/// Answers a departing member's parked JoinGroup/SyncGroup requests with `e`.
fn release_parked(m: &Member, e: GroupError, out: &mut Vec<Completion>) {
    if m.awaiting_join {
        out.push(Completion::Join(m.id.clone(), JoinResult::error(e, &m.id)));
    }
    if m.awaiting_sync {
        out.push(Completion::Sync(m.id.clone(), Err(e)));
    }
}

#[cfg(test)]
mod tests;
