//! Authorization: with `authorizer = acl`, each API checks Kafka's operation on Kafka's
//! resource for the request's principal (`SESSION`) and answers the AUTHORIZATION_FAILED code
//! Kafka answers; denials are logged (at most once a second) and counted. Without an
//! authorizer everyone may do everything, as a Kafka broker without `authorizer.class.name`.
//!
//! Authorized operations (KIP-430) are the resource type's operations the principal may do, as
//! a bitfield of ACL operation codes, when the client asks; `NOT_REQUESTED` otherwise.

use super::{Handler, SESSION};
use crate::security::acl::{self, op, resource, Authorizer};

/// What a response carries when the request did not ask (Kafka's `Integer.MIN_VALUE`).
pub const NOT_REQUESTED: i32 = i32::MIN;

/// The cluster resource's name.
pub const CLUSTER_NAME: &str = "kafka-cluster";

fn type_name(rt: i8) -> &'static str {
    match rt {
        resource::TOPIC => "Topic",
        resource::GROUP => "Group",
        resource::CLUSTER => "Cluster",
        resource::TRANSACTIONAL_ID => "TransactionalId",
        resource::DELEGATION_TOKEN => "DelegationToken",
        resource::USER => "User",
        _ => "Unknown",
    }
}

fn op_name(o: i8) -> &'static str {
    match o {
        op::READ => "Read",
        op::WRITE => "Write",
        op::CREATE => "Create",
        op::DELETE => "Delete",
        op::ALTER => "Alter",
        op::DESCRIBE => "Describe",
        op::CLUSTER_ACTION => "ClusterAction",
        op::DESCRIBE_CONFIGS => "DescribeConfigs",
        op::ALTER_CONFIGS => "AlterConfigs",
        op::IDEMPOTENT_WRITE => "IdempotentWrite",
        _ => "Other",
    }
}

fn denied(principal: &str, host: &str, o: i8, rt: i8, name: &str) {
    static EVERY_SECOND: crate::clock::Throttle = crate::clock::Throttle::new(1);
    crate::metrics::authorization_denied(op_name(o), type_name(rt));
    if let Some(skipped) = EVERY_SECOND.pass() {
        tracing::warn!(
            principal,
            host,
            operation = op_name(o),
            resource = %format!("{}:{name}", type_name(rt)),
            skipped,
            "authorization denied"
        );
    }
}

impl Handler {
    /// Whether the request's principal may do `o` on resource `name` of type `rt` (always,
    /// without an authorizer or outside a client's request); a denial is logged and counted.
    pub(crate) fn allowed(&self, o: i8, rt: i8, name: &str) -> bool {
        self.decide(o, rt, name, true)
    }

    /// `allowed` without the log line and count (for filtering what a client sees).
    pub(crate) fn allowed_quietly(&self, o: i8, rt: i8, name: &str) -> bool {
        self.decide(o, rt, name, false)
    }

    /// `ask` with the authorizer, the request's principal and its host; allowed without an
    /// authorizer or outside a client's request.
    fn authorize(&self, ask: impl FnOnce(&Authorizer, &str, &str) -> bool) -> bool {
        let Some(settings) = &self.acl else {
            return true;
        };
        let Ok((principal, host)) =
            SESSION.try_with(|s| (s.principal.clone(), s.peer.ip().to_string()))
        else {
            return true;
        };
        self.catalog.with_acls(|bindings| {
            let authorizer = Authorizer {
                bindings,
                super_users: &settings.super_users,
                allow_if_no_acl: settings.allow_if_no_acl,
            };
            ask(&authorizer, &principal, &host)
        })
    }

    fn decide(&self, o: i8, rt: i8, name: &str, audit: bool) -> bool {
        self.authorize(|a, principal, host| {
            let yes = a.allows(principal, host, o, rt, name);
            if !yes && audit {
                denied(principal, host, o, rt, name);
            }
            yes
        })
    }

    /// Kafka's `authorizeByResourceType`: whether the principal may do `o` on some resource
    /// of type `rt` (an idempotent producer's WRITE on any topic).
    pub(crate) fn allowed_any(&self, o: i8, rt: i8) -> bool {
        self.authorize(|a, principal, host| a.allows_any(principal, host, o, rt))
    }

    /// The cluster operation `o` is allowed.
    pub(crate) fn cluster_allowed(&self, o: i8) -> bool {
        self.allowed(o, resource::CLUSTER, CLUSTER_NAME)
    }

    /// KIP-430: the operations of resource `name` of type `rt` the principal may do.
    pub(crate) fn authorized_ops(&self, asked: bool, rt: i8, name: &str) -> i32 {
        if !asked {
            return NOT_REQUESTED;
        }
        acl::operations_of(rt)
            .iter()
            .filter(|o| self.decide(**o, rt, name, false))
            .fold(0, |f, o| f | (1 << o))
    }
}

/// A response with `error_code` set (and nothing else), for the APIs whose whole request is
/// refused by one check.
macro_rules! refused {
    ($resp:ident, $variant:ident, $err:expr) => {{
        let mut r = kafka_protocol::messages::$resp::default();
        r.error_code = super::errors::code($err);
        Some(crate::protocol::Response::$variant(r))
    }};
}

impl Handler {
    /// The answer to a request one authorization check refuses as a whole (a group's members,
    /// a transaction's end, the cluster's operations), or `None` to handle it.
    pub(super) fn refuse_whole(
        &self,
        req: &crate::protocol::Request,
        v: i16,
    ) -> Option<crate::protocol::Response> {
        use crate::protocol::Request as R;
        use kafka_protocol::error::ResponseError as E;
        let group = |g: &str| self.allowed(op::READ, resource::GROUP, g);
        let txn = |id: &str| self.allowed(op::WRITE, resource::TRANSACTIONAL_ID, id);
        match req {
            R::JoinGroup(r) if !group(&r.group_id.0) => {
                let mut resp = kafka_protocol::messages::JoinGroupResponse::default();
                resp.error_code = super::errors::code(E::GroupAuthorizationFailed);
                resp.generation_id = -1;
                if v >= 7 {
                    resp.protocol_name = None;
                }
                Some(crate::protocol::Response::JoinGroup(resp))
            }
            R::SyncGroup(r) if !group(&r.group_id.0) => {
                refused!(SyncGroupResponse, SyncGroup, E::GroupAuthorizationFailed)
            }
            R::ConsumerGroupHeartbeat(r) if !group(&r.group_id.0) => refused!(
                ConsumerGroupHeartbeatResponse,
                ConsumerGroupHeartbeat,
                E::GroupAuthorizationFailed
            ),
            R::ShareGroupHeartbeat(r) if !group(&r.group_id.0) => refused!(
                ShareGroupHeartbeatResponse,
                ShareGroupHeartbeat,
                E::GroupAuthorizationFailed
            ),
            R::Heartbeat(r) if !group(&r.group_id.0) => {
                refused!(HeartbeatResponse, Heartbeat, E::GroupAuthorizationFailed)
            }
            R::LeaveGroup(r) if !group(&r.group_id.0) => {
                refused!(LeaveGroupResponse, LeaveGroup, E::GroupAuthorizationFailed)
            }
            R::EndTxn(r) if !txn(&r.transactional_id.0) => {
                refused!(
                    EndTxnResponse,
                    EndTxn,
                    E::TransactionalIdAuthorizationFailed
                )
            }
            R::AddOffsetsToTxn(r) if !txn(&r.transactional_id.0) => refused!(
                AddOffsetsToTxnResponse,
                AddOffsetsToTxn,
                E::TransactionalIdAuthorizationFailed
            ),
            R::AddOffsetsToTxn(r) if !group(&r.group_id.0) => {
                refused!(
                    AddOffsetsToTxnResponse,
                    AddOffsetsToTxn,
                    E::GroupAuthorizationFailed
                )
            }
            R::InitProducerId(r) => match &r.transactional_id {
                Some(id) if !txn(&id.0) => refused!(
                    InitProducerIdResponse,
                    InitProducerId,
                    E::TransactionalIdAuthorizationFailed
                ),
                // an idempotent producer: IDEMPOTENT_WRITE on the cluster, or WRITE on a topic
                None if !self.allowed_quietly(
                    op::IDEMPOTENT_WRITE,
                    resource::CLUSTER,
                    CLUSTER_NAME,
                ) && !self.allowed_any(op::WRITE, resource::TOPIC) =>
                {
                    self.allowed(op::IDEMPOTENT_WRITE, resource::CLUSTER, CLUSTER_NAME);
                    refused!(
                        InitProducerIdResponse,
                        InitProducerId,
                        E::ClusterAuthorizationFailed
                    )
                }
                _ => None,
            },
            R::DescribeCluster(_) if !self.cluster_allowed(op::DESCRIBE) => {
                refused!(
                    DescribeClusterResponse,
                    DescribeCluster,
                    E::ClusterAuthorizationFailed
                )
            }
            R::DescribeLogDirs(_) if !self.cluster_allowed(op::DESCRIBE) => {
                // before v3 the answer has no error code: no directories, as Kafka answers
                refused!(
                    DescribeLogDirsResponse,
                    DescribeLogDirs,
                    E::ClusterAuthorizationFailed
                )
            }
            R::AlterPartitionReassignments(_) if !self.cluster_allowed(op::ALTER) => refused!(
                AlterPartitionReassignmentsResponse,
                AlterPartitionReassignments,
                E::ClusterAuthorizationFailed
            ),
            R::ListPartitionReassignments(_) if !self.cluster_allowed(op::DESCRIBE) => refused!(
                ListPartitionReassignmentsResponse,
                ListPartitionReassignments,
                E::ClusterAuthorizationFailed
            ),
            R::ElectLeaders(_) if !self.cluster_allowed(op::ALTER) => {
                refused!(
                    ElectLeadersResponse,
                    ElectLeaders,
                    E::ClusterAuthorizationFailed
                )
            }
            R::DescribeUserScramCredentials(_) if !self.cluster_allowed(op::DESCRIBE) => refused!(
                DescribeUserScramCredentialsResponse,
                DescribeUserScramCredentials,
                E::ClusterAuthorizationFailed
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitfields_hold_kafkas_operation_codes() {
        let field = |rt| {
            acl::operations_of(rt)
                .iter()
                .fold(0i32, |f, o| f | (1 << o))
        };
        // READ..ALTER_CONFIGS without CLUSTER_ACTION (9) and IDEMPOTENT_WRITE (12)
        assert_eq!(field(resource::TOPIC), 0b0000_1101_1111_1000);
        assert_eq!(field(resource::CLUSTER).count_ones(), 7);
        assert_eq!(field(resource::CLUSTER) & (1 << op::READ), 0);
        assert_eq!(field(resource::GROUP), (1 << 3) | (1 << 6) | (1 << 8));
    }
}
