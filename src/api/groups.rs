//! Consumer-group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! DescribeGroups, ListGroups, DeleteGroups.

use super::errors::code;
use super::{Handler, Pending, Reply};
use crate::catalog::CatalogState;
use crate::group::consumer::TopicLookup;
use crate::group::state::{GroupError, JoinRequest, JoinResult};
use crate::group::DeleteError;
use crate::protocol::Response;
use crate::security::acl::{op, resource};
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

/// FindCoordinator key types.
const KEY_GROUP: i8 = 0;
const KEY_TRANSACTION: i8 = 1;
/// Longest group id accepted; longer ones are refused as INVALID_GROUP_ID.
const MAX_GROUP_ID_LEN: usize = 255;

pub(super) fn group_error(e: GroupError) -> ResponseError {
    match e {
        GroupError::UnknownMemberId => ResponseError::UnknownMemberId,
        GroupError::IllegalGeneration => ResponseError::IllegalGeneration,
        GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress,
        GroupError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
        GroupError::InvalidSessionTimeout => ResponseError::InvalidSessionTimeout,
        GroupError::MemberIdRequired => ResponseError::MemberIdRequired,
        GroupError::FencedInstanceId => ResponseError::FencedInstanceId,
        GroupError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
        GroupError::GroupMaxSizeReached => ResponseError::GroupMaxSizeReached,
        GroupError::NotCoordinator => ResponseError::NotCoordinator,
        GroupError::CoordinatorLoadInProgress => ResponseError::CoordinatorLoadInProgress,
        GroupError::StaleMemberEpoch => ResponseError::StaleMemberEpoch,
        GroupError::GroupIdNotFound => ResponseError::GroupIdNotFound,
        GroupError::UnsupportedVersion => ResponseError::UnsupportedVersion,
    }
}

pub(super) fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// Group ids must be non-empty and of reasonable length.
pub(super) fn valid_group_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_GROUP_ID_LEN
}

impl Handler {
    pub(super) fn find_coordinator(
        &self,
        req: FindCoordinatorRequest,
        v: i16,
    ) -> FindCoordinatorResponse {
        let mut resp = FindCoordinatorResponse::default();
        let refused = |e: ResponseError, msg: &str| Err((code(e), Some(s(msg))));
        let answer = |key: &str| -> Result<(i32, String, i32), (i16, Option<StrBytes>)> {
            if req.key_type == KEY_TRANSACTION
                && !key.is_empty()
                && !self.allowed(op::DESCRIBE, resource::TRANSACTIONAL_ID, key)
            {
                refused(
                    ResponseError::TransactionalIdAuthorizationFailed,
                    "not authorized",
                )
            } else if req.key_type == KEY_GROUP
                && valid_group_id(key)
                && !self.allowed(op::DESCRIBE, resource::GROUP, key)
            {
                refused(ResponseError::GroupAuthorizationFailed, "not authorized")
            } else if req.key_type == KEY_TRANSACTION {
                if key.is_empty() {
                    refused(ResponseError::InvalidRequest, "empty transactional id")
                } else {
                    self.txn_coordinator(key)
                        .map(|n| {
                            let (host, port) = super::endpoint(&n);
                            (n.id, host, port)
                        })
                        .ok_or_else(|| {
                            (
                                code(ResponseError::CoordinatorNotAvailable),
                                Some(s("the transactional id's coordinator shard has no live leader yet")),
                            )
                        })
                }
            } else if req.key_type != KEY_GROUP {
                refused(
                    ResponseError::InvalidRequest,
                    "unknown coordinator key type",
                )
            } else if !valid_group_id(key) {
                refused(ResponseError::InvalidGroupId, "invalid group id")
            } else {
                self.group_coordinator(key)
                    .map(|n| {
                        let (host, port) = super::endpoint(&n);
                        (n.id, host, port)
                    })
                    .ok_or_else(|| {
                        (
                            code(ResponseError::CoordinatorNotAvailable),
                            Some(s("the group's coordinator shard has no live leader yet")),
                        )
                    })
            }
        };
        if v >= 4 {
            resp.coordinators = req
                .coordinator_keys
                .iter()
                .map(|k| {
                    let mut c = Coordinator::default();
                    c.key = k.clone();
                    match answer(k) {
                        Ok((id, host, port)) => {
                            c.node_id = BrokerId(id);
                            c.host = s(host);
                            c.port = port;
                        }
                        Err((code, msg)) => {
                            c.error_code = code;
                            c.error_message = msg;
                            c.node_id = BrokerId(-1);
                            c.port = -1;
                        }
                    }
                    c
                })
                .collect();
        } else {
            match answer(&req.key) {
                Ok((id, host, port)) => {
                    resp.node_id = BrokerId(id);
                    resp.host = s(host);
                    resp.port = port;
                }
                Err((code, msg)) => {
                    resp.error_code = code;
                    if v >= 1 {
                        resp.error_message = msg;
                    }
                    resp.node_id = BrokerId(-1);
                    resp.port = -1;
                }
            }
        }
        resp
    }

    pub(super) fn join_group(
        self: &Arc<Self>,
        req: JoinGroupRequest,
        v: i16,
        client_id: String,
        peer: String,
    ) -> Pending {
        let group_id = req.group_id.0.to_string();
        if !valid_group_id(&group_id) {
            let mut r = JoinGroupResponse::default();
            r.error_code = code(ResponseError::InvalidGroupId);
            r.generation_id = -1;
            return super::ready(Response::JoinGroup(r));
        }
        let join = JoinRequest {
            member_id: req.member_id.to_string(),
            instance_id: if v >= 5 {
                req.group_instance_id.map(|i| i.to_string())
            } else {
                None
            },
            client_id,
            client_host: peer,
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: if v >= 1 {
                req.rebalance_timeout_ms
            } else {
                req.session_timeout_ms
            },
            protocol_type: req.protocol_type.to_string(),
            protocols: req
                .protocols
                .iter()
                // copied: a slice would keep the whole request frame alive while the member is
                // in the group
                .map(|p| (p.name.to_string(), Bytes::copy_from_slice(&p.metadata)))
                .collect(),
            require_known_member_id: v >= 4,
        };
        let me = self.clone();
        let topics = Subscribable(self.catalog.snapshot());
        Box::pin(async move {
            let r = match me.groups.get(&group_id) {
                Ok(c) => c.join(&group_id, join, &topics).await,
                Err(e) => JoinResult::error(e, &join.member_id),
            };
            let mut resp = JoinGroupResponse::default();
            resp.error_code = r.error.map(|e| code(group_error(e))).unwrap_or(0);
            resp.generation_id = r.generation;
            if v >= 7 {
                resp.protocol_type = Some(s(r.protocol_type));
            }
            resp.protocol_name = Some(s(r.protocol_name));
            resp.leader = s(r.leader);
            resp.member_id = s(r.member_id);
            resp.members = r
                .members
                .into_iter()
                .map(|(id, inst, meta)| {
                    let mut m = JoinGroupResponseMember::default();
                    m.member_id = s(id);
                    if v >= 5 {
                        m.group_instance_id = inst.map(s);
                    }
                    m.metadata = meta;
                    m
                })
                .collect();
            Reply::Send(Response::JoinGroup(resp))
        })
    }

    pub(super) fn sync_group(self: &Arc<Self>, req: SyncGroupRequest, v: i16) -> Pending {
        let me = self.clone();
        // everything kept is copied out of the request frame first: the sync may wait for the
        // leader for a whole rebalance, and an assignment is kept for the generation
        let instance = if v >= 3 {
            req.group_instance_id.map(|i| i.to_string())
        } else {
            None
        };
        let assignments: Vec<(String, Bytes)> = req
            .assignments
            .into_iter()
            .map(|a| {
                (
                    a.member_id.to_string(),
                    Bytes::copy_from_slice(&a.assignment),
                )
            })
            .collect();
        let (group_id, member_id) = (req.group_id.0.to_string(), req.member_id.to_string());
        let generation = req.generation_id;
        // v5+: the protocol the member was told at its join
        let (ptype, pname) = if v >= 5 {
            (
                req.protocol_type.map(|t| t.to_string()),
                req.protocol_name.map(|n| n.to_string()),
            )
        } else {
            (None, None)
        };
        Box::pin(async move {
            let r = match me.groups.get(&group_id) {
                Ok(c) => {
                    c.sync(
                        &group_id,
                        &member_id,
                        instance.as_deref(),
                        generation,
                        assignments,
                        (ptype.as_deref(), pname.as_deref()),
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            let mut resp = SyncGroupResponse::default();
            match r {
                Ok((ptype, pname, assignment)) => {
                    if v >= 5 {
                        resp.protocol_type = Some(s(ptype));
                        resp.protocol_name = Some(s(pname));
                    }
                    resp.assignment = assignment;
                }
                Err(e) => resp.error_code = code(group_error(e)),
            }
            Reply::Send(Response::SyncGroup(resp))
        })
    }

    pub(super) fn heartbeat(&self, req: HeartbeatRequest, v: i16) -> HeartbeatResponse {
        let instance = if v >= 3 {
            req.group_instance_id.map(|i| i.to_string())
        } else {
            None
        };
        let mut resp = HeartbeatResponse::default();
        let beat = self.groups.get(&req.group_id.0).and_then(|c| {
            c.heartbeat(
                &req.group_id.0,
                &req.member_id,
                instance.as_deref(),
                req.generation_id,
            )
        });
        if let Err(e) = beat {
            resp.error_code = code(group_error(e));
        }
        resp
    }

    pub(super) fn leave_group(&self, req: LeaveGroupRequest, v: i16) -> LeaveGroupResponse {
        let mut resp = LeaveGroupResponse::default();
        let members: Vec<(String, Option<String>)> = if v >= 3 {
            req.members
                .iter()
                .map(|m| {
                    (
                        m.member_id.to_string(),
                        m.group_instance_id.as_ref().map(|i| i.to_string()),
                    )
                })
                .collect()
        } else {
            vec![(req.member_id.to_string(), None)]
        };
        let results = match self.groups.get(&req.group_id.0) {
            Ok(c) => c.leave(&req.group_id.0, &members),
            Err(e) => {
                resp.error_code = code(group_error(e));
                return resp;
            }
        };
        if v >= 3 {
            resp.members = members
                .into_iter()
                .zip(results)
                .map(|((id, inst), r)| {
                    let mut m = MemberResponse::default();
                    m.member_id = s(id);
                    m.group_instance_id = inst.map(s);
                    m.error_code = r.err().map(|e| code(group_error(e))).unwrap_or(0);
                    m
                })
                .collect();
        } else if let Some(Err(e)) = results.into_iter().next() {
            resp.error_code = code(group_error(e));
        }
        resp
    }

    pub(super) fn describe_groups(&self, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
        let mut resp = DescribeGroupsResponse::default();
        for id in req.groups {
            let mut g = DescribedGroup::default();
            if !self.allowed(op::DESCRIBE, resource::GROUP, &id.0) {
                g.error_code = code(ResponseError::GroupAuthorizationFailed);
                g.group_id = id;
                g.authorized_operations = super::authz::NOT_REQUESTED;
                resp.groups.push(g);
                continue;
            }
            let view = match self.groups.get(&id.0) {
                Ok(c) => c.describe(&id.0),
                Err(e) => {
                    g.error_code = code(group_error(e));
                    g.group_id = id;
                    resp.groups.push(g);
                    continue;
                }
            };
            g.authorized_operations =
                self.authorized_ops(req.include_authorized_operations, resource::GROUP, &id);
            g.group_id = id;
            g.group_state = StrBytes::from_static_str(view.state);
            g.protocol_type = s(view.protocol_type);
            g.protocol_data = s(view.protocol_name);
            g.members = view
                .members
                .into_iter()
                .map(|m| {
                    let mut d = DescribedGroupMember::default();
                    d.member_id = s(m.member_id);
                    d.group_instance_id = m.instance_id.map(s);
                    d.client_id = s(m.client_id);
                    d.client_host = s(m.client_host);
                    d.member_metadata = m.metadata;
                    d.member_assignment = m.assignment;
                    d
                })
                .collect();
            resp.groups.push(g);
        }
        resp
    }

    pub(super) fn list_groups(&self, req: ListGroupsRequest) -> ListGroupsResponse {
        let mut resp = ListGroupsResponse::default();
        let states: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
        let types: Vec<String> = req.types_filter.iter().map(|s| s.to_lowercase()).collect();
        // DESCRIBE on the cluster lists every group; otherwise those the principal may describe
        let all = self.allowed_quietly(op::DESCRIBE, resource::CLUSTER, super::authz::CLUSTER_NAME);
        for g in self.groups.list() {
            if !states.is_empty() && !states.contains(&g.state.to_lowercase()) {
                continue;
            }
            if !all && !self.allowed_quietly(op::DESCRIBE, resource::GROUP, &g.id) {
                continue;
            }
            if !types.is_empty() && !types.iter().any(|t| t == g.kind.name()) {
                continue;
            }
            let mut l = ListedGroup::default();
            l.group_id = GroupId(s(g.id));
            l.protocol_type = s(g.protocol_type);
            l.group_state = StrBytes::from_static_str(g.state);
            l.group_type = StrBytes::from_static_str(g.kind.name());
            resp.groups.push(l);
        }
        for (id, state) in self.share.as_ref().map(|s| s.list()).unwrap_or_default() {
            let wanted = (states.is_empty() || states.contains(&state.to_lowercase()))
                && (types.is_empty() || types.iter().any(|t| t == "share"))
                && (all || self.allowed_quietly(op::DESCRIBE, resource::GROUP, &id));
            if wanted {
                let mut l = ListedGroup::default();
                l.group_id = GroupId(s(id));
                l.protocol_type = s("share");
                l.group_state = StrBytes::from_static_str(state);
                l.group_type = StrBytes::from_static_str("share");
                resp.groups.push(l);
            }
        }
        resp
    }

    pub(super) fn delete_groups(self: &Arc<Self>, req: DeleteGroupsRequest) -> Pending {
        let me = self.clone();
        Box::pin(async move {
            let mut resp = DeleteGroupsResponse::default();
            for id in req.groups_names {
                let mut r = DeletableGroupResult::default();
                if !me.allowed(op::DELETE, resource::GROUP, &id.0) {
                    r.error_code = code(ResponseError::GroupAuthorizationFailed);
                    r.group_id = id;
                    resp.results.push(r);
                    continue;
                }
                if let Some(deleted) = me.delete_share_group(&id.0).await {
                    r.error_code = deleted.err().map(code).unwrap_or(0);
                    r.group_id = id;
                    resp.results.push(r);
                    continue;
                }
                let deleted = match me.groups.get(&id.0) {
                    Ok(c) => c.delete_group(&id.0).await,
                    Err(e) => Err(DeleteError::Unavailable(e)),
                };
                r.error_code = match deleted {
                    Ok(()) => 0,
                    Err(e) => code(delete_error(e)),
                };
                r.group_id = id;
                resp.results.push(r);
            }
            Reply::Send(Response::DeleteGroups(resp))
        })
    }
}

pub(super) fn delete_error(e: DeleteError) -> ResponseError {
    match e {
        DeleteError::NotFound => ResponseError::GroupIdNotFound,
        DeleteError::NotEmpty => ResponseError::NonEmptyGroup,
        DeleteError::SubscribedToTopic => ResponseError::GroupSubscribedToTopic,
        DeleteError::Storage => ResponseError::NotCoordinator,
        DeleteError::Unavailable(g) => group_error(g),
    }
}

/// The topics members may subscribe to: the catalog's, internal ones (`__…`) never matched.
pub(super) struct Subscribable(pub(super) std::sync::Arc<CatalogState>);

impl TopicLookup for Subscribable {
    fn each_topic(&self, f: &mut dyn FnMut(&str, uuid::Uuid, i32)) {
        for t in self.0.topics.values().filter(|t| !t.name.starts_with("__")) {
            f(&t.name, t.id, t.partitions);
        }
    }
}
