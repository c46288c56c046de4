//! Share groups' membership and administration (KIP-932): ShareGroupHeartbeat,
//! ShareGroupDescribe, DescribeShareGroupOffsets, AlterShareGroupOffsets and
//! DeleteShareGroupOffsets. Records move in `share_fetch.rs`; the state is [`crate::share`].

use super::errors::code;
use super::groups::{s, valid_group_id};
use super::{Handler, Pending, Reply};
use crate::protocol::Response;
use crate::security::acl::{op, resource};
use crate::share::membership::{Heartbeat, HeartbeatError};
use crate::share::{Reset, SetError, ShareGroups, AUTO_OFFSET_RESET, GROUP_CONFIGS};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use std::sync::Arc;
use uuid::Uuid;

const NOT_IN_CLUSTER: &str = "share groups are not served in cluster mode";

fn heartbeat_error(e: HeartbeatError, group: &str) -> (ResponseError, String) {
    match e {
        HeartbeatError::InvalidRequest(why) => (ResponseError::InvalidRequest, why.to_string()),
        HeartbeatError::UnknownMemberId => (
            ResponseError::UnknownMemberId,
            format!("unknown member of share group {group}; rejoin with epoch 0"),
        ),
        HeartbeatError::FencedMemberEpoch => (
            ResponseError::FencedMemberEpoch,
            "the member epoch is fenced; rejoin with epoch 0".into(),
        ),
        HeartbeatError::TooManyGroups => (
            ResponseError::CoordinatorNotAvailable,
            "the broker holds group_max_count share groups".into(),
        ),
        HeartbeatError::GroupMaxSizeReached => (
            ResponseError::GroupMaxSizeReached,
            "the share group has reached group_share_max_size members".into(),
        ),
    }
}

fn set_error(e: SetError) -> (ResponseError, String) {
    match e {
        SetError::NonEmpty => (
            ResponseError::NonEmptyGroup,
            "the share group has members: stop them first".into(),
        ),
        SetError::Io(e) => {
            tracing::warn!(error = %e, "could not write share group state");
            (ResponseError::KafkaStorageError, e.to_string())
        }
    }
}

impl Handler {
    /// The share groups, if this node serves them and the principal may do `operation` on
    /// `group`; otherwise the error to answer.
    pub(super) fn share_for(
        &self,
        group: &str,
        operation: i8,
    ) -> Result<Arc<ShareGroups>, (ResponseError, String)> {
        let Some(share) = self.share.clone() else {
            return Err((ResponseError::UnsupportedVersion, NOT_IN_CLUSTER.into()));
        };
        if !self.allowed(operation, resource::GROUP, group) {
            return Err((
                ResponseError::GroupAuthorizationFailed,
                format!("not authorized for group '{group}'"),
            ));
        }
        Ok(share)
    }

    /// Whether `group` is a classic or consumer group here (a share group may not take its id).
    fn other_group(&self, group: &str) -> bool {
        self.groups.list().iter().any(|g| g.id == group)
    }

    pub(super) fn share_group_heartbeat(
        &self,
        req: ShareGroupHeartbeatRequest,
        client_id: String,
        client_host: String,
    ) -> ShareGroupHeartbeatResponse {
        let mut resp = ShareGroupHeartbeatResponse::default();
        let refuse = |mut resp: ShareGroupHeartbeatResponse, e: ResponseError, msg: String| {
            resp.error_code = code(e);
            resp.error_message = Some(s(msg));
            resp
        };
        let Some(share) = self.share.as_ref() else {
            return refuse(
                resp,
                ResponseError::UnsupportedVersion,
                NOT_IN_CLUSTER.into(),
            );
        };
        let group = req.group_id.0.to_string();
        if !valid_group_id(&group) {
            return refuse(
                resp,
                ResponseError::InvalidGroupId,
                "invalid group id".into(),
            );
        }
        if req.rack_id.as_ref().is_some_and(|r| r.is_empty()) {
            return refuse(
                resp,
                ResponseError::InvalidRequest,
                "RackId can't be empty".into(),
            );
        }
        if req.member_epoch == 0 && self.other_group(&group) {
            return refuse(
                resp,
                ResponseError::GroupIdNotFound,
                format!("group {group} is not a share group"),
            );
        }
        let subscribed = req
            .subscribed_topic_names
            .map(|ns| ns.into_iter().map(|n| n.0.to_string()).collect::<Vec<_>>());
        if let Some(names) = &subscribed {
            if let Some(n) = names
                .iter()
                .find(|n| !self.allowed(op::READ, resource::TOPIC, n))
            {
                return refuse(
                    resp,
                    ResponseError::TopicAuthorizationFailed,
                    format!("not authorized to read topic '{n}'"),
                );
            }
        }
        let member_id = req.member_id.to_string();
        let hb = Heartbeat {
            member_id: member_id.clone(),
            epoch: req.member_epoch,
            rack: req.rack_id.map(|r| r.to_string()),
            subscribed,
            client_id,
            client_host,
        };
        let catalog = self.catalog.snapshot();
        let resolve = |name: &str| {
            catalog
                .topics
                .get(name)
                .filter(|t| !t.name.starts_with("__"))
                .map(|t| (t.id, t.partitions))
        };
        match share.heartbeat(&group, hb, &resolve) {
            Ok(r) => {
                tracing::trace!(group, member = %member_id, epoch = r.epoch, assignment = ?r.assignment, "share group heartbeat answered");
                resp.member_id = Some(s(member_id));
                resp.member_epoch = r.epoch;
                resp.heartbeat_interval_ms = share.config().heartbeat_interval_ms;
                resp.assignment = r.assignment.map(|a| {
                    let mut out = share_group_heartbeat_response::Assignment::default();
                    out.topic_partitions = a
                        .into_iter()
                        .map(|(id, ps)| {
                            let mut t = share_group_heartbeat_response::TopicPartitions::default();
                            t.topic_id = id;
                            t.partitions = ps.into_iter().collect();
                            t
                        })
                        .collect();
                    out
                });
                resp
            }
            Err(e) => {
                tracing::debug!(group, member = %member_id, epoch = req.member_epoch, error = ?e, "share group heartbeat refused");
                let (e, msg) = heartbeat_error(e, &group);
                refuse(resp, e, msg)
            }
        }
    }

    pub(super) fn share_group_describe(
        &self,
        req: ShareGroupDescribeRequest,
    ) -> ShareGroupDescribeResponse {
        use share_group_describe_response::{Assignment, DescribedGroup, Member, TopicPartitions};
        let mut resp = ShareGroupDescribeResponse::default();
        for id in req.group_ids {
            let mut g = DescribedGroup::default();
            g.authorized_operations = super::authz::NOT_REQUESTED;
            let group = id.0.to_string();
            g.group_id = id;
            let Some(share) = self.share.as_ref() else {
                g.error_code = code(ResponseError::UnsupportedVersion);
                g.error_message = Some(s(NOT_IN_CLUSTER));
                resp.groups.push(g);
                continue;
            };
            if !self.allowed(op::DESCRIBE, resource::GROUP, &group) {
                g.error_code = code(ResponseError::GroupAuthorizationFailed);
                resp.groups.push(g);
                continue;
            }
            g.assignor_name = s("simple");
            match share.describe(&group) {
                Some(view) => {
                    g.group_state = s(view.state());
                    g.group_epoch = view.epoch;
                    g.assignment_epoch = view.epoch;
                    let names: std::collections::BTreeMap<Uuid, String> = view
                        .topics
                        .iter()
                        .map(|(n, (id, _))| (*id, n.clone()))
                        .collect();
                    g.members = view
                        .members
                        .values()
                        .map(|m| {
                            let mut out = Member::default();
                            out.member_id = s(m.id.clone());
                            out.rack_id = m.rack.clone().map(s);
                            out.member_epoch = m.epoch;
                            out.client_id = s(m.client_id.clone());
                            out.client_host = s(m.client_host.clone());
                            out.subscribed_topic_names = m
                                .subscribed
                                .iter()
                                .map(|t| TopicName(s(t.clone())))
                                .collect();
                            let mut a = Assignment::default();
                            a.topic_partitions = view
                                .target
                                .get(&m.id)
                                .into_iter()
                                .flatten()
                                .map(|(id, ps)| {
                                    let mut t = TopicPartitions::default();
                                    t.topic_id = *id;
                                    t.topic_name =
                                        TopicName(s(names.get(id).cloned().unwrap_or_default()));
                                    t.partitions = ps.iter().copied().collect();
                                    t
                                })
                                .collect();
                            out.assignment = a;
                            out
                        })
                        .collect();
                }
                None if share.contains(&group) => g.group_state = s("Empty"),
                None => {
                    g.error_code = code(ResponseError::GroupIdNotFound);
                    g.error_message = Some(s(format!("group {group} is not a share group")));
                    g.group_state = s("Dead");
                }
            }
            resp.groups.push(g);
        }
        resp
    }

    pub(super) fn describe_share_group_offsets(
        &self,
        req: DescribeShareGroupOffsetsRequest,
    ) -> DescribeShareGroupOffsetsResponse {
        use describe_share_group_offsets_response::*;
        let mut resp = DescribeShareGroupOffsetsResponse::default();
        for rg in req.groups {
            let mut g = DescribeShareGroupOffsetsResponseGroup::default();
            let group = rg.group_id.0.to_string();
            g.group_id = rg.group_id;
            let Some(share) = self.share.as_ref() else {
                g.error_code = code(ResponseError::UnsupportedVersion);
                g.error_message = Some(s(NOT_IN_CLUSTER));
                resp.groups.push(g);
                continue;
            };
            if !self.allowed(op::DESCRIBE, resource::GROUP, &group) {
                g.error_code = code(ResponseError::GroupAuthorizationFailed);
                resp.groups.push(g);
                continue;
            }
            let starts = share.start_offsets(&group);
            // the topics asked for, or every topic the group has state for
            let wanted: Vec<(String, Option<Vec<i32>>)> = match rg.topics {
                Some(ts) => ts
                    .into_iter()
                    .map(|t| (t.topic_name.0.to_string(), Some(t.partitions)))
                    .collect(),
                None => {
                    let ids: std::collections::BTreeSet<Uuid> =
                        starts.keys().map(|k| k.0).collect();
                    ids.into_iter()
                        .filter_map(|id| self.catalog.get_by_id(id))
                        .map(|m| (m.name, None))
                        .collect()
                }
            };
            for (name, partitions) in wanted {
                let mut t = DescribeShareGroupOffsetsResponseTopic::default();
                t.topic_name = TopicName(s(name.clone()));
                let meta = self.catalog.get(&name);
                t.topic_id = meta.as_ref().map(|m| m.id).unwrap_or_default();
                let ps: Vec<i32> = match (partitions, &meta) {
                    (Some(p), _) => p,
                    (None, Some(m)) => starts.keys().filter(|k| k.0 == m.id).map(|k| k.1).collect(),
                    (None, None) => Vec::new(),
                };
                for p in ps {
                    let mut d = DescribeShareGroupOffsetsResponsePartition::default();
                    d.partition_index = p;
                    d.leader_epoch = -1;
                    match &meta {
                        None => d.error_code = code(ResponseError::UnknownTopicOrPartition),
                        Some(_) if !self.allowed(op::DESCRIBE, resource::TOPIC, &name) => {
                            d.error_code = code(ResponseError::TopicAuthorizationFailed)
                        }
                        Some(m) => {
                            d.start_offset = starts.get(&(m.id, p)).copied().unwrap_or(-1);
                            if d.start_offset >= 0 {
                                d.leader_epoch = m.leader_epoch(p);
                            }
                        }
                    }
                    t.partitions.push(d);
                }
                g.topics.push(t);
            }
            resp.groups.push(g);
        }
        resp
    }

    pub(super) fn alter_share_group_offsets(
        self: &Arc<Self>,
        req: AlterShareGroupOffsetsRequest,
    ) -> Pending {
        let me = self.clone();
        Box::pin(async move {
            use alter_share_group_offsets_response::*;
            let mut resp = AlterShareGroupOffsetsResponse::default();
            let group = req.group_id.0.to_string();
            let share = match me.share_for(&group, op::READ) {
                Ok(share) => share,
                Err((e, msg)) => {
                    resp.error_code = code(e);
                    resp.error_message = Some(s(msg));
                    return Reply::Send(Response::AlterShareGroupOffsets(resp));
                }
            };
            let mut changes = Vec::new();
            for t in req.topics {
                let name = t.topic_name.0.to_string();
                let meta = me.catalog.get(&name);
                let mut rt = AlterShareGroupOffsetsResponseTopic::default();
                rt.topic_name = t.topic_name;
                rt.topic_id = meta.as_ref().map(|m| m.id).unwrap_or_default();
                for p in t.partitions {
                    let mut d = AlterShareGroupOffsetsResponsePartition::default();
                    d.partition_index = p.partition_index;
                    match &meta {
                        Some(m) if (0..m.partitions).contains(&p.partition_index) => {
                            if !me.allowed(op::READ, resource::TOPIC, &name) {
                                d.error_code = code(ResponseError::TopicAuthorizationFailed);
                            } else if p.start_offset < 0 {
                                d.error_code = code(ResponseError::InvalidRequest);
                            } else {
                                changes.push(((m.id, p.partition_index), Some(p.start_offset)));
                            }
                        }
                        _ => d.error_code = code(ResponseError::UnknownTopicOrPartition),
                    }
                    rt.partitions.push(d);
                }
                resp.responses.push(rt);
            }
            if let Err(e) = share.set_start_offsets(&group, changes).await {
                let (e, msg) = set_error(e);
                resp.error_code = code(e);
                resp.error_message = Some(s(msg));
            }
            Reply::Send(Response::AlterShareGroupOffsets(resp))
        })
    }

    pub(super) fn delete_share_group_offsets(
        self: &Arc<Self>,
        req: DeleteShareGroupOffsetsRequest,
    ) -> Pending {
        let me = self.clone();
        Box::pin(async move {
            use delete_share_group_offsets_response::*;
            let mut resp = DeleteShareGroupOffsetsResponse::default();
            let group = req.group_id.0.to_string();
            let share = match me.share_for(&group, op::DELETE) {
                Ok(share) => share,
                Err((e, msg)) => {
                    resp.error_code = code(e);
                    resp.error_message = Some(s(msg));
                    return Reply::Send(Response::DeleteShareGroupOffsets(resp));
                }
            };
            let starts = share.start_offsets(&group);
            let mut changes = Vec::new();
            for t in req.topics {
                let name = t.topic_name.0.to_string();
                let mut rt = DeleteShareGroupOffsetsResponseTopic::default();
                rt.topic_name = t.topic_name;
                match me.catalog.get(&name) {
                    Some(m) => {
                        rt.topic_id = m.id;
                        changes.extend(starts.keys().filter(|k| k.0 == m.id).map(|k| (*k, None)));
                    }
                    None => rt.error_code = code(ResponseError::UnknownTopicOrPartition),
                }
                resp.responses.push(rt);
            }
            if let Err(e) = share.set_start_offsets(&group, changes).await {
                let (e, msg) = set_error(e);
                resp.error_code = code(e);
                resp.error_message = Some(s(msg));
            }
            Reply::Send(Response::DeleteShareGroupOffsets(resp))
        })
    }

    /// A group's configs for DescribeConfigs: each share-group key with the group's value or
    /// the broker's default.
    pub(super) fn group_config_entries(
        &self,
        group: &str,
    ) -> Result<Vec<crate::config::topic::ConfigEntry>, (ResponseError, String)> {
        use crate::config::topic::{ConfigEntry, ConfigSource, ConfigType};
        let Some(share) = self.share.as_ref() else {
            return Err((ResponseError::InvalidRequest, NOT_IN_CLUSTER.into()));
        };
        let set = share.group_configs(group);
        Ok(GROUP_CONFIGS
            .iter()
            .map(|&name| {
                let default =
                    (name == AUTO_OFFSET_RESET).then(|| share.config().auto_offset_reset.clone());
                let (value, source) = match set.get(name) {
                    Some(v) => (v.clone(), ConfigSource::DynamicGroup),
                    None => (default.clone().unwrap_or_default(), ConfigSource::Default),
                };
                ConfigEntry {
                    name,
                    value: value.clone(),
                    source,
                    config_type: ConfigType::String,
                    read_only: false,
                    synonyms: vec![(name, value, source)],
                }
            })
            .collect())
    }

    /// Sets or removes share-group configs (`replace`: every config not named is removed).
    pub(super) async fn alter_group_configs(
        &self,
        group: &str,
        mut changes: Vec<(String, Option<String>)>,
        replace: bool,
        apply: bool,
    ) -> Result<(), (ResponseError, String)> {
        let Some(share) = self.share.as_ref() else {
            return Err((ResponseError::InvalidRequest, NOT_IN_CLUSTER.into()));
        };
        if !valid_group_id(group) {
            return Err((ResponseError::InvalidGroupId, "invalid group id".into()));
        }
        if self.other_group(group) {
            return Err((
                ResponseError::InvalidRequest,
                format!("group {group} is not a share group: it has no configs to alter"),
            ));
        }
        for (k, v) in &changes {
            if !GROUP_CONFIGS.contains(&k.as_str()) {
                return Err((
                    ResponseError::InvalidConfig,
                    format!("unknown group config {k}"),
                ));
            }
            if let Some(v) = v {
                if k == AUTO_OFFSET_RESET && Reset::parse(v).is_none() {
                    return Err((
                        ResponseError::InvalidConfig,
                        format!("{k} must be earliest, latest or by_duration:<ISO-8601 duration>, not {v:?}"),
                    ));
                }
            }
        }
        if replace {
            for k in share.group_configs(group).into_keys() {
                if !changes.iter().any(|(c, _)| *c == k) {
                    changes.push((k, None));
                }
            }
        }
        if !apply {
            return Ok(());
        }
        share.set_group_configs(group, changes).await.map_err(|e| {
            tracing::warn!(group, error = %e, "could not write group configs");
            (ResponseError::KafkaStorageError, e.to_string())
        })?;
        tracing::info!(group, configs = ?share.group_configs(group), "group configs changed");
        Ok(())
    }

    /// DeleteGroups of a share group: `None` when `group` is not one.
    pub(super) async fn delete_share_group(
        &self,
        group: &str,
    ) -> Option<Result<(), ResponseError>> {
        let share: &Arc<ShareGroups> = self.share.as_ref()?;
        if !share.contains(group) {
            return None;
        }
        Some(match share.delete_group(group).await {
            Ok(()) => Ok(()),
            Err(e) => Err(set_error(e).0),
        })
    }
}
