//! OffsetCommit, OffsetFetch, OffsetDelete.

use super::errors::code;
use super::groups::{delete_error, group_error, valid_group_id};
use super::{Handler, Pending, Reply};
use crate::group::CommitError;
use crate::protocol::Response;
use crate::security::acl::{op, resource};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;

pub(super) fn commit_error(e: CommitError) -> ResponseError {
    match e {
        CommitError::Group(g) => group_error(g),
        CommitError::MetadataTooLarge => ResponseError::OffsetMetadataTooLarge,
        // as Kafka maps a failed append to its offsets partition: the client finds the
        // coordinator again and retries (in a cluster the shard has usually moved)
        CommitError::Storage => ResponseError::NotCoordinator,
    }
}

/// A partition of an OffsetCommit and the error found before committing, if any.
type PartitionCheck = (i32, Option<ResponseError>);

/// One partition's committed offset as OffsetFetch reports it.
struct Fetched {
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    metadata: String,
    error: i16,
}

impl Handler {
    pub(super) fn offset_commit(self: &Arc<Self>, req: OffsetCommitRequest, v: i16) -> Pending {
        let me = self.clone();
        Box::pin(async move {
            let group = req.group_id.0.to_string();
            // READ on the group, and on each topic
            let group_denied = !me.allowed(op::READ, resource::GROUP, &group);
            // which partitions exist decides per-partition errors; the rest goes to the group
            let mut wanted = Vec::new();
            let mut shape: Vec<(TopicName, Vec<PartitionCheck>)> = Vec::new();
            for t in &req.topics {
                let meta = me.catalog.get(&t.name.0);
                let topic_denied =
                    !group_denied && !me.allowed(op::READ, resource::TOPIC, &t.name.0);
                let mut parts = Vec::new();
                for p in &t.partitions {
                    let known = meta
                        .as_ref()
                        .is_some_and(|m| (0..m.partitions).contains(&p.partition_index));
                    if group_denied || topic_denied {
                        let e = if group_denied {
                            ResponseError::GroupAuthorizationFailed
                        } else {
                            ResponseError::TopicAuthorizationFailed
                        };
                        parts.push((p.partition_index, Some(e)));
                    } else if known {
                        let epoch = if v >= 6 { p.committed_leader_epoch } else { -1 };
                        wanted.push((
                            t.name.0.to_string(),
                            p.partition_index,
                            p.committed_offset,
                            epoch,
                            p.committed_metadata.as_ref().map(|m| m.to_string()),
                        ));
                        parts.push((p.partition_index, None));
                    } else {
                        parts.push((
                            p.partition_index,
                            Some(ResponseError::UnknownTopicOrPartition),
                        ));
                    }
                }
                shape.push((
                    TopicName(StrBytes::from_string(t.name.0.to_string())),
                    parts,
                ));
            }
            let instance = if v >= 7 {
                req.group_instance_id.as_ref().map(|i| i.to_string())
            } else {
                None
            };
            let outcome = if !valid_group_id(&group) {
                Err(ResponseError::InvalidGroupId)
            } else {
                match me.groups.get(&group) {
                    Ok(c) => c
                        .commit(
                            &group,
                            req.generation_id_or_member_epoch,
                            &req.member_id,
                            instance.as_deref(),
                            v,
                            wanted,
                        )
                        .await
                        .map_err(commit_error),
                    Err(e) => Err(group_error(e)),
                }
            };
            let mut per_partition = match &outcome {
                Ok(results) => results.clone().into_iter(),
                Err(_) => Vec::new().into_iter(),
            };
            let mut resp = OffsetCommitResponse::default();
            for (name, parts) in shape {
                let mut tr = OffsetCommitResponseTopic::default();
                tr.name = name;
                for (index, err) in parts {
                    let mut pr = OffsetCommitResponsePartition::default();
                    pr.partition_index = index;
                    pr.error_code = match (err, &outcome) {
                        (Some(e), _) => code(e),
                        (None, Err(e)) => code(*e),
                        (None, Ok(_)) => per_partition
                            .next()
                            .and_then(|r| r.err())
                            .map(|e| code(commit_error(e)))
                            .unwrap_or(0),
                    };
                    tr.partitions.push(pr);
                }
                resp.topics.push(tr);
            }
            Reply::Send(Response::OffsetCommit(resp))
        })
    }

    /// Committed offsets of `group` for the named partitions, or every committed one.
    fn fetch_group(
        &self,
        group: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
        require_stable: bool,
    ) -> Result<Vec<(String, Vec<Fetched>)>, ResponseError> {
        // DESCRIBE on the group; a topic the principal may not describe is refused when named
        // and left out when all are asked for, as Kafka does
        if !self.allowed(op::DESCRIBE, resource::GROUP, group) {
            return Err(ResponseError::GroupAuthorizationFailed);
        }
        let coordinator = self.groups.get(group).map_err(group_error)?;
        let committed = coordinator.committed_all(group);
        let fetched = |topic: &str, p: i32| match committed.get(&(topic.to_string(), p)) {
            // an open transaction will commit an offset here: the client asks again later
            _ if require_stable && coordinator.has_pending(group, topic, p) => Fetched {
                partition: p,
                offset: -1,
                leader_epoch: -1,
                metadata: String::new(),
                error: code(ResponseError::UnstableOffsetCommit),
            },
            Some(c) => Fetched {
                partition: p,
                offset: c.offset,
                leader_epoch: c.leader_epoch,
                metadata: c.metadata.clone().unwrap_or_default(),
                error: 0,
            },
            None => Fetched {
                partition: p,
                offset: -1,
                leader_epoch: -1,
                metadata: String::new(),
                error: 0,
            },
        };
        Ok(match topics {
            Some(ts) => ts
                .into_iter()
                .map(|(t, ps)| {
                    let parts = if self.allowed(op::DESCRIBE, resource::TOPIC, &t) {
                        ps.iter().map(|&p| fetched(&t, p)).collect()
                    } else {
                        ps.iter()
                            .map(|&p| Fetched {
                                partition: p,
                                offset: -1,
                                leader_epoch: -1,
                                metadata: String::new(),
                                error: code(ResponseError::TopicAuthorizationFailed),
                            })
                            .collect()
                    };
                    (t, parts)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<Fetched>> = BTreeMap::new();
                for (t, p) in committed.keys() {
                    if !self.allowed_quietly(op::DESCRIBE, resource::TOPIC, t) {
                        continue;
                    }
                    by_topic.entry(t.clone()).or_default().push(fetched(t, *p));
                }
                by_topic.into_iter().collect()
            }
        })
    }

    pub(super) fn offset_fetch(&self, req: OffsetFetchRequest, v: i16) -> OffsetFetchResponse {
        let mut resp = OffsetFetchResponse::default();
        if v >= 8 {
            for g in req.groups {
                let topics = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes))
                        .collect()
                });
                let mut gr = OffsetFetchResponseGroup::default();
                // v9: a KIP-848 member fetches with its current epoch
                let member_check = if v >= 9
                    && self.allowed_quietly(op::DESCRIBE, resource::GROUP, &g.group_id.0)
                {
                    self.groups.get(&g.group_id.0).and_then(|c| {
                        c.check_fetch(&g.group_id.0, g.member_id.as_deref(), g.member_epoch)
                    })
                } else {
                    Ok(())
                };
                let fetched = match member_check
                    .map_err(group_error)
                    .and_then(|()| self.fetch_group(&g.group_id.0, topics, req.require_stable))
                {
                    Ok(f) => f,
                    Err(e) => {
                        gr.error_code = code(e);
                        Vec::new()
                    }
                };
                for (t, parts) in fetched {
                    let mut tr = OffsetFetchResponseTopics::default();
                    tr.name = TopicName(StrBytes::from_string(t));
                    tr.partitions = parts
                        .into_iter()
                        .map(|f| {
                            let mut p = OffsetFetchResponsePartitions::default();
                            p.partition_index = f.partition;
                            p.committed_offset = f.offset;
                            p.committed_leader_epoch = f.leader_epoch;
                            p.metadata = Some(StrBytes::from_string(f.metadata));
                            p.error_code = f.error;
                            p
                        })
                        .collect();
                    gr.topics.push(tr);
                }
                gr.group_id = g.group_id;
                resp.groups.push(gr);
            }
            return resp;
        }
        let topics = req.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes))
                .collect()
        });
        let fetched = match self.fetch_group(&req.group_id.0, topics, v >= 7 && req.require_stable)
        {
            Ok(f) => f,
            Err(e) => {
                resp.error_code = code(e);
                Vec::new()
            }
        };
        for (t, parts) in fetched {
            let mut tr = OffsetFetchResponseTopic::default();
            tr.name = TopicName(StrBytes::from_string(t));
            tr.partitions = parts
                .into_iter()
                .map(|f| {
                    let mut p = OffsetFetchResponsePartition::default();
                    p.partition_index = f.partition;
                    p.committed_offset = f.offset;
                    if v >= 5 {
                        p.committed_leader_epoch = f.leader_epoch;
                    }
                    p.metadata = Some(StrBytes::from_string(f.metadata));
                    p.error_code = f.error;
                    p
                })
                .collect();
            resp.topics.push(tr);
        }
        resp
    }

    pub(super) fn offset_delete(self: &Arc<Self>, req: OffsetDeleteRequest) -> Pending {
        let me = self.clone();
        Box::pin(async move {
            let mut resp = OffsetDeleteResponse::default();
            // DELETE on the group, READ on each topic
            if !me.allowed(op::DELETE, resource::GROUP, &req.group_id.0) {
                resp.error_code = code(ResponseError::GroupAuthorizationFailed);
                return Reply::Send(Response::OffsetDelete(resp));
            }
            for t in req.topics {
                if !me.allowed(op::READ, resource::TOPIC, &t.name.0) {
                    let mut tr = OffsetDeleteResponseTopic::default();
                    tr.name = t.name.clone();
                    tr.partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            let mut pr = OffsetDeleteResponsePartition::default();
                            pr.partition_index = p.partition_index;
                            pr.error_code = code(ResponseError::TopicAuthorizationFailed);
                            pr
                        })
                        .collect();
                    resp.topics.push(tr);
                    continue;
                }
                let parts: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
                let mut tr = OffsetDeleteResponseTopic::default();
                let deleted = match me.groups.get(&req.group_id.0) {
                    Ok(c) => c.delete_offsets(&req.group_id.0, &t.name.0, &parts).await,
                    Err(e) => Err(crate::group::DeleteError::Unavailable(e)),
                };
                match deleted {
                    Ok(results) => {
                        tr.partitions = parts
                            .iter()
                            .zip(results)
                            .map(|(p, r)| {
                                let mut pr = OffsetDeleteResponsePartition::default();
                                pr.partition_index = *p;
                                pr.error_code = r.err().map(|e| code(delete_error(e))).unwrap_or(0);
                                pr
                            })
                            .collect();
                    }
                    Err(e) => {
                        resp.error_code = code(delete_error(e));
                        return Reply::Send(Response::OffsetDelete(resp));
                    }
                }
                tr.name = t.name;
                resp.topics.push(tr);
            }
            Reply::Send(Response::OffsetDelete(resp))
        })
    }
}
