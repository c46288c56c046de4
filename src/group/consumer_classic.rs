//! Classic members inside a KIP-848 group, and the online conversion of a live group between the
//! two protocols, as Kafka 4 does it (`group_consumer_migration_policy`).
//!
//! - Upgrade: when a member of the new protocol joins a classic group that has members, the group
//!   becomes a KIP-848 group ([`ConsumerGroup::from_classic`]). Each classic member keeps its
//!   generation as its epoch and its last assignment as its target, so nobody stops.
//! - Classic members then stay in the group through the classic API. A JoinGroup is
//!   reconciled at once against the target, with the partitions the member says it owns. It is
//!   answered with no leader and no member list, so the client runs no assignor. SyncGroup hands
//!   out what the member holds now, and Heartbeat answers REBALANCE_IN_PROGRESS when the member
//!   has more to do: a newer epoch to catch up with, partitions to give up, or released
//!   partitions to take.
//! - Downgrade: when the last member of the new protocol leaves, the group becomes a classic
//!   group again ([`ConsumerGroup::to_classic`]). It rebalances at the group epoch, and each
//!   member holds its target until it rejoins.

use super::*;
use crate::group::state::{
    leaving_member, Group, GroupError, JoinRequest, JoinResult, Member, SyncResult,
};
use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::Decodable;
use std::collections::HashMap;

/// The classic protocol type of consumers; the only one that can share a group with KIP-848
/// members.
pub const PROTOCOL_TYPE: &str = "consumer";

/// What a classic member adds to a member of a KIP-848 group.
#[derive(Debug, Clone)]
pub struct ClassicMember {
    pub session_timeout_ms: i32,
    /// `(protocol name, metadata)` as its last JoinGroup listed them.
    pub protocols: Vec<(String, Bytes)>,
    /// Told to rejoin: removed if it has not by then.
    join_deadline_ms: Option<i64>,
    /// Joined: removed if it has not synced by then.
    sync_deadline_ms: Option<i64>,
}

impl ClassicMember {
    /// The protocol its JoinGroup and SyncGroup are answered with: its most preferred.
    pub fn protocol_name(&self) -> &str {
        self.protocols.first().map_or("", |(n, _)| n.as_str())
    }

    pub(super) fn overdue(&self, now: i64) -> bool {
        self.join_deadline_ms.is_some_and(|d| now > d)
            || self.sync_deadline_ms.is_some_and(|d| now > d)
    }
}

impl ConsumerGroup {
    /// Whether members are left and every one of them speaks the classic protocol: the group
    /// may become a classic group again.
    pub fn only_classic(&self) -> bool {
        !self.members.is_empty() && self.members.values().all(|m| m.classic.is_some())
    }

    /// The group a live classic group becomes when a member of the new protocol joins it.
    /// `None` when it cannot be carried over: not consumers, more members than a KIP-848 group
    /// may have, or a subscription or assignment that does not decode or carries an assignor's
    /// user data, which would be lost.
    pub fn from_classic(
        g: &Group,
        topics: &dyn TopicLookup,
        cfg: &GroupConfig,
    ) -> Option<ConsumerGroup> {
        if g.protocol_type.as_deref() != Some(PROTOCOL_TYPE)
            || g.members.len() >= cfg.consumer_max_size
        {
            return None;
        }
        let mut ids = HashMap::new();
        topics.each_topic(&mut |name, id, _| {
            ids.insert(name.to_string(), id);
        });
        let id_of = |name: &str| ids.get(name).copied();
        let mut c = ConsumerGroup::new(cfg.consumer_assignors.preferred());
        c.epoch = g.generation;
        c.assignment_epoch = g.generation;
        for m in g.members.values() {
            let metadata = match &g.protocol_name {
                Some(p) => m.metadata_for(p),
                None => m.protocols.first()?.1.clone(),
            };
            let sub = decode_subscription(&metadata)?;
            let assigned = if m.assignment.is_empty() {
                // between a rebalance's join and sync phases: what a cooperative member still
                // consumes is what its subscription says it owns (an eager one gave all up)
                owned_by_id(&sub, id_of)
            } else {
                let a = decode_assignment(&m.assignment)?;
                if a.user_data.as_ref().is_some_and(|u| !u.is_empty()) {
                    return None;
                }
                by_id(
                    a.assigned_partitions
                        .iter()
                        .map(|t| (t.topic.0.as_str(), &t.partitions[..])),
                    id_of,
                )
            };
            if let Some(inst) = &m.instance_id {
                c.static_members.insert(inst.clone(), m.id.clone());
            }
            c.target.insert(m.id.clone(), assigned.clone());
            let mut cm = ConsumerMember::new(
                &m.id,
                m.instance_id.clone(),
                m.rebalance_timeout_ms,
                m.last_seen_ms,
            );
            cm.rack_id = sub.rack_id.map(|r| r.to_string());
            cm.client_id = m.client_id.clone();
            cm.client_host = m.client_host.clone();
            cm.topic_names = sub.topics.iter().map(|t| t.to_string()).collect();
            cm.epoch = g.generation;
            cm.previous_epoch = g.generation;
            cm.assigned = assigned;
            cm.classic = Some(ClassicMember {
                session_timeout_ms: m.session_timeout_ms,
                protocols: m.protocols.clone(),
                join_deadline_ms: None,
                sync_deadline_ms: None,
            });
            c.members.insert(m.id.clone(), cm);
        }
        c.refresh_topics(topics);
        Some(c)
    }

    /// The classic group this one becomes once only classic members are left.
    pub fn to_classic(&mut self, group_id: &str, now: i64, cfg: &GroupConfig) -> Group {
        // the target without the members that left, for what DescribeGroups shows until the
        // members rejoin
        self.update_target(cfg);
        let name = |id: &Uuid| self.topic_name(id).map(str::to_string);
        let members = self
            .members
            .values()
            .filter_map(|m| {
                let c = m.classic.as_ref()?;
                let target = self.target.get(&m.id).cloned().unwrap_or_default();
                Some(Member {
                    id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: c.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocols: c.protocols.clone(),
                    assignment: super::super::view::assignment_bytes(&target, name),
                    awaiting_join: false,
                    awaiting_sync: false,
                    last_seen_ms: now,
                })
            })
            .collect();
        Group::converted(group_id, self.epoch, members, now, cfg)
    }

    /// Whether a protocol of `protocols` is one every other classic member supports.
    fn supports_classic(&self, member_id: &str, protocols: &[(String, Bytes)]) -> bool {
        protocols.iter().any(|(n, _)| {
            self.members
                .values()
                .filter(|m| m.id != member_id)
                .filter_map(|m| m.classic.as_ref())
                .all(|c| c.protocols.iter().any(|(p, _)| p == n))
        })
    }

    /// JoinGroup from a classic member: answered at once, at the member's epoch once it has
    /// moved toward its target as far as the partitions it owns allow.
    pub fn classic_join(
        &mut self,
        req: JoinRequest,
        topics: &dyn TopicLookup,
        now: i64,
        cfg: &GroupConfig,
    ) -> JoinResult {
        let fail = |e| JoinResult::error(e, &req.member_id);
        if req.session_timeout_ms < cfg.min_session_timeout_ms
            || req.session_timeout_ms > cfg.max_session_timeout_ms
        {
            return fail(GroupError::InvalidSessionTimeout);
        }
        if req.protocol_type != PROTOCOL_TYPE
            || req.protocols.is_empty()
            || !self.supports_classic(&req.member_id, &req.protocols)
        {
            return fail(GroupError::InconsistentGroupProtocol);
        }
        let Some(sub) = req
            .protocols
            .iter()
            .find_map(|(_, m)| decode_subscription(m))
        else {
            return fail(GroupError::InconsistentGroupProtocol);
        };
        let unknown = req.member_id.is_empty();
        let id = if unknown {
            Uuid::new_v4().to_string()
        } else {
            req.member_id.clone()
        };
        let replaces = req
            .instance_id
            .as_ref()
            .and_then(|i| self.static_members.get(i))
            .cloned();
        if replaces.is_none()
            && !self.members.contains_key(&id)
            && self.members.len() >= cfg.consumer_max_size
        {
            return fail(GroupError::GroupMaxSizeReached);
        }
        if unknown && req.require_known_member_id && req.instance_id.is_none() {
            return JoinResult::error(GroupError::MemberIdRequired, &id);
        }
        let mut bump = false;
        let mut replaced = false;
        match (&req.instance_id, replaces) {
            (Some(_), None) if !unknown => return fail(GroupError::UnknownMemberId),
            (Some(_), Some(old)) if old != id && !unknown => {
                return fail(GroupError::FencedInstanceId)
            }
            (Some(inst), Some(old)) if old != id => {
                // a new process of the same static member takes the old one's place, whichever
                // protocol the old one spoke
                if let Some(mut m) = self.members.remove(&old) {
                    m.id = id.clone();
                    if m.epoch == STATIC_LEAVE_EPOCH {
                        m.epoch = m.previous_epoch;
                    }
                    m.topic_regex = None;
                    m.regex = None;
                    m.regex_pending = false;
                    m.assignor = None;
                    if let Some(t) = self.target.remove(&old) {
                        self.target.insert(id.clone(), t);
                    }
                    self.members.insert(id.clone(), m);
                    self.subscriptions = None;
                    replaced = true;
                }
                self.static_members.insert(inst.clone(), id.clone());
            }
            _ => {}
        }
        match self.members.get(&id) {
            Some(m) if m.classic.is_none() && !replaced => {
                return fail(GroupError::UnknownMemberId)
            }
            Some(_) => {}
            None => {
                self.members.insert(
                    id.clone(),
                    ConsumerMember::new(
                        &id,
                        req.instance_id.clone(),
                        req.rebalance_timeout_ms,
                        now,
                    ),
                );
                if let Some(inst) = &req.instance_id {
                    self.static_members.insert(inst.clone(), id.clone());
                }
                self.subscriptions = None;
                bump = true;
            }
        }
        let Some(m) = self.members.get_mut(&id) else {
            return fail(GroupError::UnknownMemberId);
        };
        m.last_seen_ms = now;
        m.client_id = req.client_id.clone();
        m.client_host = req.client_host.clone();
        if req.rebalance_timeout_ms > 0 {
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        }
        if let Some(r) = &sub.rack_id {
            m.rack_id = Some(r.to_string());
        }
        m.classic = Some(ClassicMember {
            session_timeout_ms: req.session_timeout_ms,
            protocols: req.protocols.clone(),
            join_deadline_ms: None,
            sync_deadline_ms: Some(now + i64::from(m.rebalance_timeout_ms.max(0))),
        });
        let names: Vec<String> = sub.topics.iter().map(|t| t.to_string()).collect();
        if names != m.topic_names {
            m.topic_names = names;
            self.subscriptions = None;
            bump = true;
        }
        bump |= self.refresh_topics(topics);
        if bump {
            self.epoch += 1;
        }
        self.update_target(cfg);
        let owned = self.owned_by_name(&sub);
        self.reconcile(&id, Some(&owned), now);
        let m = &self.members[&id];
        JoinResult {
            error: None,
            generation: m.epoch,
            protocol_type: PROTOCOL_TYPE.to_string(),
            protocol_name: m
                .classic
                .as_ref()
                .map(|c| c.protocol_name().to_string())
                .unwrap_or_default(),
            leader: String::new(),
            member_id: id,
            members: Vec::new(),
        }
    }

    /// The partitions a subscription says its member owns, by topic id.
    fn owned_by_name(&self, sub: &ConsumerProtocolSubscription) -> Assignment {
        let ids: HashMap<&str, Uuid> = self
            .topics
            .iter()
            .map(|(id, (n, _))| (n.as_str(), *id))
            .collect();
        owned_by_id(sub, |name| ids.get(name).copied())
    }

    fn classic_member(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<&mut ConsumerMember, GroupError> {
        if let Some(inst) = instance_id {
            if self
                .static_members
                .get(inst)
                .is_some_and(|id| id != member_id)
            {
                return Err(GroupError::FencedInstanceId);
            }
        }
        match self.members.get_mut(member_id) {
            Some(m) if m.classic.is_some() => Ok(m),
            _ => Err(GroupError::UnknownMemberId),
        }
    }

    /// SyncGroup from a classic member: what it holds now, in the consumer protocol's encoding.
    /// `protocol` is the type and name the request names (v5+), which must be those its join
    /// was answered with.
    pub fn classic_sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: i64,
        protocol: (Option<&str>, Option<&str>),
    ) -> SyncResult {
        let group_epoch = self.epoch;
        let m = self.classic_member(member_id, instance_id)?;
        if generation != m.epoch {
            return Err(GroupError::IllegalGeneration);
        }
        m.last_seen_ms = now;
        let rebalance = i64::from(m.rebalance_timeout_ms.max(0));
        let Some(c) = m.classic.as_mut() else {
            return Err(GroupError::UnknownMemberId);
        };
        if protocol.0.is_some_and(|t| t != PROTOCOL_TYPE)
            || protocol.1.is_some_and(|n| n != c.protocol_name())
        {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        if group_epoch > m.epoch && m.state != MemberState::Unrevoked {
            // a newer epoch came since its join; a member still revoking finishes that first
            c.join_deadline_ms.get_or_insert(now + rebalance);
            return Err(GroupError::RebalanceInProgress);
        }
        c.sync_deadline_ms = None;
        let protocol = c.protocol_name().to_string();
        let assigned = m.assigned.clone();
        let name = |id: &Uuid| self.topic_name(id).map(str::to_string);
        Ok((
            PROTOCOL_TYPE.to_string(),
            protocol,
            super::super::view::assignment_bytes(&assigned, name),
        ))
    }

    /// Heartbeat from a classic member: REBALANCE_IN_PROGRESS while it has more to do, so it
    /// joins again.
    pub fn classic_heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: i64,
    ) -> Result<(), GroupError> {
        let group_epoch = self.epoch;
        let waiting = self.waiting_on_unreleased(member_id);
        let m = self.classic_member(member_id, instance_id)?;
        if generation != m.epoch {
            return Err(GroupError::IllegalGeneration);
        }
        m.last_seen_ms = now;
        let rejoin = m.epoch < group_epoch
            || m.state == MemberState::Unrevoked
            || (m.state == MemberState::Unreleased && !waiting);
        let rebalance = i64::from(m.rebalance_timeout_ms.max(0));
        match m.classic.as_mut() {
            Some(c) if rejoin => {
                c.join_deadline_ms.get_or_insert(now + rebalance);
                Err(GroupError::RebalanceInProgress)
            }
            _ => Ok(()),
        }
    }

    /// Whether a member waits for a partition of its target that another member still holds.
    fn waiting_on_unreleased(&self, id: &str) -> bool {
        let Some(m) = self.members.get(id) else {
            return false;
        };
        if m.state != MemberState::Unreleased {
            return false;
        }
        let held = self.held_by_others(id);
        self.target.get(id).is_some_and(|t| {
            t.iter().any(|(topic, ps)| {
                ps.iter().any(|p| {
                    !m.assigned.get(topic).is_some_and(|a| a.contains(p))
                        && held.contains(&(*topic, *p))
                })
            })
        })
    }

    /// LeaveGroup for a member (by member id, or by instance id for a static one).
    pub fn classic_leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        cfg: &GroupConfig,
    ) -> Result<(), GroupError> {
        let id = leaving_member(&self.static_members, member_id, instance_id)?;
        self.remove(&id).ok_or(GroupError::UnknownMemberId)?;
        self.epoch += 1;
        self.update_target(cfg);
        Ok(())
    }
}

/// The partitions a subscription says its member owns, by topic id (unknown topics left out).
fn owned_by_id(
    sub: &ConsumerProtocolSubscription,
    id_of: impl Fn(&str) -> Option<Uuid>,
) -> Assignment {
    by_id(
        sub.owned_partitions
            .iter()
            .map(|t| (t.topic.0.as_str(), &t.partitions[..])),
        id_of,
    )
}

/// Partitions listed by topic name, by topic id (unknown topics left out).
fn by_id<'a>(
    named: impl Iterator<Item = (&'a str, &'a [i32])>,
    id_of: impl Fn(&str) -> Option<Uuid>,
) -> Assignment {
    let mut out = Assignment::new();
    for (name, ps) in named {
        if let Some(id) = id_of(name) {
            out.entry(id).or_default().extend(ps.iter().copied());
        }
    }
    out
}

/// A consumer-protocol subscription of any version (newer ones read as the newest known, as
/// Kafka reads them).
pub(crate) fn decode_subscription(metadata: &[u8]) -> Option<ConsumerProtocolSubscription> {
    decode_versioned(metadata)
}

fn decode_assignment(bytes: &[u8]) -> Option<ConsumerProtocolAssignment> {
    decode_versioned(bytes)
}

/// A consumer-protocol message: its version, then its fields (both messages have versions 0-3).
fn decode_versioned<T: Decodable>(bytes: &[u8]) -> Option<T> {
    let mut buf = Bytes::copy_from_slice(bytes);
    if buf.remaining() < 2 {
        return None;
    }
    let version = buf.get_i16();
    if version < 0 {
        return None;
    }
    T::decode(&mut buf, version.min(3)).ok()
}

#[cfg(test)]
#[path = "consumer_classic_tests.rs"]
mod tests;
