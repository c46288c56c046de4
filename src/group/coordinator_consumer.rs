//! The coordinator's side of KIP-848 groups: ConsumerGroupHeartbeat and ConsumerGroupDescribe,
//! member epochs in OffsetFetch, and the online conversions of a live group between the classic
//! protocol and KIP-848's.

use super::{Coordinator, Entry};
use crate::group::consumer::{
    ConsumerGroup, ConsumerMember, Heartbeat, HeartbeatError, HeartbeatReply, OffsetsCheck,
    TopicLookup,
};
use crate::group::state::{Group, GroupError, GroupState};
use std::collections::BTreeMap;

impl Coordinator {
    /// OffsetFetch v9+: a KIP-848 member's fetch must carry its current epoch.
    pub fn check_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        epoch: i32,
    ) -> Result<(), GroupError> {
        let Some(entry) = self.entry(group_id) else {
            return Ok(());
        };
        let e = entry.lock();
        match e.consumer.as_ref() {
            Some(c) => c.check_fetch(member_id, epoch).map_err(offsets_check_error),
            None => Ok(()),
        }
    }

    /// ConsumerGroupHeartbeat. `topics` lists every topic members may subscribe to.
    pub fn consumer_heartbeat(
        &self,
        group_id: &str,
        hb: Heartbeat,
        topics: &dyn TopicLookup,
    ) -> Result<HeartbeatReply, ConsumerError> {
        let entry = if hb.epoch == 0 {
            self.entry_or_create(group_id)
                .ok_or(ConsumerError::Group(GroupError::CoordinatorNotAvailable))?
        } else {
            self.entry(group_id)
                .ok_or(ConsumerError::Heartbeat(HeartbeatError::UnknownMemberId))?
        };
        let mut e = entry.lock();
        let now = self.clock.now_ms();
        if e.consumer.is_none() {
            if hb.epoch != 0 {
                return Err(ConsumerError::Heartbeat(HeartbeatError::UnknownMemberId));
            }
            if e.group.state != GroupState::Empty {
                return self.upgrade(&mut e, hb, topics, now);
            }
        }
        let Entry {
            group, consumer, ..
        } = &mut *e;
        let c = consumer
            .get_or_insert_with(|| ConsumerGroup::new(self.cfg.consumer_assignors.preferred()));
        let before = c.epoch;
        let r = c.heartbeat(hb, topics, now, &self.cfg);
        if c.epoch != before {
            tracing::debug!(
                group = group_id,
                epoch = c.epoch,
                members = c.members.len(),
                "consumer group epoch moved"
            );
        }
        if c.is_empty() {
            group.empty_since_ms = now;
        }
        self.maybe_downgrade(&mut e, now);
        r.map_err(ConsumerError::Heartbeat)
    }

    /// A classic group with members that a member of the new protocol joins becomes a KIP-848
    /// group, if the policy allows and its members can be carried over (else GROUP_ID_NOT_FOUND,
    /// as Kafka answers), and only once the joining member is admitted: a refused heartbeat
    /// leaves the classic group as it was. Pending JoinGroup and SyncGroup calls are answered
    /// REBALANCE_IN_PROGRESS: those members join again, into the new group.
    fn upgrade(
        &self,
        e: &mut Entry,
        hb: Heartbeat,
        topics: &dyn TopicLookup,
        now: i64,
    ) -> Result<HeartbeatReply, ConsumerError> {
        let refused = ConsumerError::Group(GroupError::GroupIdNotFound);
        if !self.cfg.consumer_migration_policy.upgrades() || e.group.state == GroupState::Dead {
            return Err(refused);
        }
        let Some(mut c) = ConsumerGroup::from_classic(&e.group, topics, &self.cfg) else {
            tracing::info!(group = %e.group.id, "a classic group's members cannot be carried over to the consumer protocol (not consumers, too many, or an assignor's user data): the new member is refused");
            return Err(refused);
        };
        let r = c
            .heartbeat(hb, topics, now, &self.cfg)
            .map_err(ConsumerError::Heartbeat)?;
        tracing::info!(group = %e.group.id, generation = e.group.generation, members = c.members.len(), "classic group converted to the consumer protocol");
        // dropped senders answer REBALANCE_IN_PROGRESS (see `join` and `sync`)
        e.joins.clear();
        e.syncs.clear();
        e.group = Group::new(&e.group.id, now);
        e.consumer = Some(c);
        Ok(r)
    }

    /// A KIP-848 group left with classic members only becomes a classic group again, if the
    /// policy allows (and the classic group size limit does).
    pub(super) fn maybe_downgrade(&self, e: &mut Entry, now: i64) {
        let Some(c) = e.consumer.as_mut() else {
            return;
        };
        if !self.cfg.consumer_migration_policy.downgrades()
            || !c.only_classic()
            || c.members.len() > self.cfg.max_size
        {
            return;
        }
        let group = c.to_classic(&e.group.id, now, &self.cfg);
        tracing::info!(group = %group.id, generation = group.generation, members = group.members.len(), "consumer group converted back to the classic protocol (no member of the new protocol is left)");
        e.group = group;
        e.consumer = None;
    }

    /// ConsumerGroupDescribe: `None` when the group is not a KIP-848 group.
    pub fn consumer_describe(&self, group_id: &str) -> Option<ConsumerGroupView> {
        let entry = self.entry(group_id)?;
        let e = entry.lock();
        let c = e.consumer.as_ref()?;
        Some(ConsumerGroupView {
            state: c.state().name(),
            epoch: c.epoch,
            assignment_epoch: c.assignment_epoch,
            assignor: c.assignor.name(),
            members: c
                .members
                .values()
                .map(|m| (m.clone(), c.target.get(&m.id).cloned().unwrap_or_default()))
                .collect(),
            topics: c.topics.clone(),
        })
    }
}

/// Why a ConsumerGroupHeartbeat was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerError {
    Group(GroupError),
    Heartbeat(HeartbeatError),
}

/// A KIP-848 group as ConsumerGroupDescribe shows it: each member with its target.
#[derive(Debug, Clone)]
pub struct ConsumerGroupView {
    pub state: &'static str,
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: &'static str,
    pub members: Vec<(ConsumerMember, crate::group::assignors::Assignment)>,
    /// Topic id → (name, partitions) as the group last resolved them.
    pub topics: BTreeMap<uuid::Uuid, (String, i32)>,
}

pub(super) fn offsets_check_error(x: OffsetsCheck) -> GroupError {
    match x {
        OffsetsCheck::UnknownMember => GroupError::UnknownMemberId,
        OffsetsCheck::StaleEpoch => GroupError::StaleMemberEpoch,
        OffsetsCheck::IllegalGeneration => GroupError::IllegalGeneration,
        OffsetsCheck::UnsupportedVersion => GroupError::UnsupportedVersion,
    }
}
