//! The consumer-group protocol of KIP-848: ConsumerGroupHeartbeat (join, heartbeat, leave,
//! reconcile) and ConsumerGroupDescribe. The state machine is [`crate::group::consumer`].

use super::errors::code;
use super::groups::{group_error, s, valid_group_id, Subscribable};
use super::Handler;
use crate::group::assignors::Assignment;
use crate::group::consumer::{Heartbeat, HeartbeatError};
use crate::group::ConsumerError;
use crate::security::acl::{op, resource};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member, TopicPartitions as DescribedTopic,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment as HeartbeatAssignment, TopicPartitions as AssignedTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use uuid::Uuid;

/// The heartbeat interval given while a group reconciles: a member that must revoke, or waits
/// for partitions another member releases, learns it within this rather than a whole
/// `group_consumer_heartbeat_interval_ms` later, so a rebalance takes well under a second.
const SETTLING_HEARTBEAT_MS: i32 = 250;

/// ConsumerGroupDescribe's member type (v1): a member of the consumer protocol.
const MEMBER_TYPE_CONSUMER: i8 = 1;
/// ConsumerGroupDescribe v1's member type of a member that speaks the classic protocol.
const MEMBER_TYPE_CLASSIC: i8 = 0;

fn heartbeat_error(e: &HeartbeatError) -> (ResponseError, String) {
    match e {
        HeartbeatError::UnknownMemberId => (
            ResponseError::UnknownMemberId,
            "unknown member id".to_string(),
        ),
        HeartbeatError::FencedMemberEpoch => (
            ResponseError::FencedMemberEpoch,
            "the member epoch is fenced; rejoin with epoch 0".to_string(),
        ),
        HeartbeatError::UnreleasedInstanceId => (
            ResponseError::UnreleasedInstanceId,
            "the instance id is still used by another member".to_string(),
        ),
        HeartbeatError::FencedInstanceId => (
            ResponseError::FencedInstanceId,
            "the instance id belongs to another member".to_string(),
        ),
        HeartbeatError::UnsupportedAssignor(a) => (
            ResponseError::UnsupportedAssignor,
            format!("assignor {a:?} is not enabled (group_consumer_assignors)"),
        ),
        HeartbeatError::InvalidRegex(why) => (
            ResponseError::InvalidRegularExpression,
            format!("invalid SubscribedTopicRegex: {why}"),
        ),
        HeartbeatError::InvalidRequest(why) => (ResponseError::InvalidRequest, why.to_string()),
        HeartbeatError::GroupMaxSizeReached => (
            ResponseError::GroupMaxSizeReached,
            "the group has reached group_consumer_max_size members".to_string(),
        ),
    }
}

impl Handler {
    pub(super) fn consumer_group_heartbeat(
        &self,
        req: ConsumerGroupHeartbeatRequest,
        v: i16,
        client_id: String,
        client_host: String,
    ) -> ConsumerGroupHeartbeatResponse {
        let mut resp = ConsumerGroupHeartbeatResponse::default();
        let group_id = req.group_id.0.to_string();
        let refuse = |mut resp: ConsumerGroupHeartbeatResponse, e: ResponseError, msg: String| {
            resp.error_code = code(e);
            resp.error_message = Some(s(msg));
            resp
        };
        if !valid_group_id(&group_id) {
            return refuse(
                resp,
                ResponseError::InvalidGroupId,
                "invalid group id".into(),
            );
        }
        if req.instance_id.as_ref().is_some_and(|i| i.is_empty()) {
            return refuse(
                resp,
                ResponseError::InvalidRequest,
                "InstanceId can't be empty".into(),
            );
        }
        if req.rack_id.as_ref().is_some_and(|r| r.is_empty()) {
            return refuse(
                resp,
                ResponseError::InvalidRequest,
                "RackId can't be empty".into(),
            );
        }
        let mut member_id = req.member_id.to_string();
        if req.member_epoch == 0 && member_id.is_empty() {
            if v >= 1 {
                // KIP-1082: the client names itself
                return refuse(
                    resp,
                    ResponseError::InvalidRequest,
                    "MemberId can't be empty".into(),
                );
            }
            member_id = Uuid::new_v4().simple().to_string();
        }
        let owned = req.topic_partitions.map(|ts| {
            let mut a = Assignment::new();
            for t in ts {
                a.entry(t.topic_id).or_default().extend(t.partitions);
            }
            a.retain(|_, ps| !ps.is_empty());
            a
        });
        let epoch = req.member_epoch;
        let hb = Heartbeat {
            member_id: member_id.clone(),
            epoch: req.member_epoch,
            instance_id: req.instance_id.map(|i| i.to_string()),
            rack_id: req.rack_id.map(|r| r.to_string()),
            client_id,
            client_host,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            topic_names: req
                .subscribed_topic_names
                .map(|ns| ns.into_iter().map(|n| n.0.to_string()).collect()),
            topic_regex: req.subscribed_topic_regex.map(|r| r.to_string()),
            assignor: req.server_assignor.map(|a| a.to_string()),
            owned,
        };
        tracing::trace!(group = %group_id, member = %member_id, epoch, timeout = hb.rebalance_timeout_ms, names = ?hb.topic_names, owned = ?hb.owned.as_ref().map(|o| o.values().map(|p| p.len()).sum::<usize>()), "consumer group heartbeat");
        let topics = Subscribable(self.catalog.snapshot());
        let result = self
            .groups
            .get(&group_id)
            .map_err(ConsumerError::Group)
            .and_then(|c| c.consumer_heartbeat(&group_id, hb, &topics));
        match result {
            Ok(r) => {
                tracing::trace!(group = %group_id, member = %member_id, epoch = r.epoch, assignment = ?r.assignment.as_ref().map(|o| o.values().map(|p| p.len()).sum::<usize>()), "consumer group heartbeat answered");
                resp.member_id = Some(s(r.member_id));
                resp.member_epoch = r.epoch;
                let interval = self.config.group_consumer_heartbeat_interval_ms;
                resp.heartbeat_interval_ms = if r.settling {
                    interval.min(SETTLING_HEARTBEAT_MS)
                } else {
                    interval
                };
                resp.assignment = r.assignment.map(|a| {
                    let mut out = HeartbeatAssignment::default();
                    out.topic_partitions = a
                        .into_iter()
                        .map(|(id, ps)| {
                            let mut t = AssignedTopic::default();
                            t.topic_id = id;
                            t.partitions = ps.into_iter().collect();
                            t
                        })
                        .collect();
                    out
                });
                resp
            }
            Err(ConsumerError::Heartbeat(e)) => {
                tracing::debug!(group = %group_id, member = %member_id, epoch, error = ?e, "consumer group heartbeat refused");
                let (err, msg) = heartbeat_error(&e);
                refuse(resp, err, msg)
            }
            Err(ConsumerError::Group(e)) => {
                let msg = match e {
                    crate::group::state::GroupError::GroupIdNotFound => {
                        format!("group {group_id} is a classic group with members, not a consumer group")
                    }
                    _ => format!("{e:?}"),
                };
                refuse(resp, group_error(e), msg)
            }
        }
    }

    pub(super) fn consumer_group_describe(
        &self,
        req: ConsumerGroupDescribeRequest,
    ) -> ConsumerGroupDescribeResponse {
        let mut resp = ConsumerGroupDescribeResponse::default();
        for id in req.group_ids {
            let mut g = DescribedGroup::default();
            g.authorized_operations = super::authz::NOT_REQUESTED;
            if !self.allowed(op::DESCRIBE, resource::GROUP, &id.0) {
                g.error_code = code(ResponseError::GroupAuthorizationFailed);
                g.group_id = id;
                resp.groups.push(g);
                continue;
            }
            let view = match self.groups.get(&id.0) {
                Ok(c) => c.consumer_describe(&id.0),
                Err(e) => {
                    g.error_code = code(group_error(e));
                    g.group_id = id;
                    resp.groups.push(g);
                    continue;
                }
            };
            let Some(view) = view else {
                g.error_code = code(ResponseError::GroupIdNotFound);
                g.error_message = Some(s(format!("group {} is not a consumer group", &*id.0)));
                g.group_id = id;
                resp.groups.push(g);
                continue;
            };
            g.authorized_operations =
                self.authorized_ops(req.include_authorized_operations, resource::GROUP, &id.0);
            g.group_id = id;
            g.group_state = StrBytes::from_static_str(view.state);
            g.group_epoch = view.epoch;
            g.assignment_epoch = view.assignment_epoch;
            g.assignor_name = StrBytes::from_static_str(view.assignor);
            let described = |a: &Assignment| described_assignment(a, &view.topics);
            g.members = view
                .members
                .iter()
                .map(|(m, target)| {
                    let mut d = Member::default();
                    d.member_id = s(m.id.clone());
                    d.instance_id = m.instance_id.clone().map(s);
                    d.rack_id = m.rack_id.clone().map(s);
                    d.member_epoch = m.epoch;
                    d.client_id = s(m.client_id.clone());
                    d.client_host = s(m.client_host.clone());
                    d.subscribed_topic_names = m
                        .topic_names
                        .iter()
                        .map(|t| TopicName(s(t.clone())))
                        .collect();
                    d.subscribed_topic_regex = m.topic_regex.clone().map(s);
                    d.assignment = described(&m.assigned);
                    d.target_assignment = described(target);
                    d.member_type = if m.classic.is_some() {
                        MEMBER_TYPE_CLASSIC
                    } else {
                        MEMBER_TYPE_CONSUMER
                    };
                    d
                })
                .collect();
            resp.groups.push(g);
        }
        resp
    }
}

fn described_assignment(
    a: &Assignment,
    topics: &BTreeMap<Uuid, (String, i32)>,
) -> DescribedAssignment {
    let mut out = DescribedAssignment::default();
    out.topic_partitions = a
        .iter()
        .map(|(id, ps)| {
            let mut t = DescribedTopic::default();
            t.topic_id = *id;
            t.topic_name = TopicName(s(topics
                .get(id)
                .map(|(n, _)| n.clone())
                .unwrap_or_default()));
            t.partitions = ps.iter().copied().collect();
            t
        })
        .collect();
    out
}
