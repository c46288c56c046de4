//! Metadata: brokers, cluster id, topics and partitions; auto-creates topics when allowed.

use super::errors::{catalog_error, code};
use super::quota;
use super::Handler;
use crate::catalog::{validate_topic_name, CatalogError, NewTopic, TopicMeta};
use crate::security::acl::{op, resource};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use uuid::Uuid;

impl Handler {
    pub(super) async fn metadata(&self, req: MetadataRequest, v: i16) -> MetadataResponse {
        let mut resp = MetadataResponse::default();
        if let Some(c) = &self.cluster {
            c.fresh_view().await;
        }
        let (nodes, controller) = self.nodes();
        resp.brokers = nodes
            .into_iter()
            .map(|n| {
                let mut b = MetadataResponseBroker::default();
                b.node_id = BrokerId(n.id);
                let (host, port) = super::endpoint(&n);
                b.host = StrBytes::from_string(host);
                b.port = port;
                b.rack = n.rack.map(StrBytes::from_string);
                b
            })
            .collect();
        resp.cluster_id = Some(StrBytes::from_string(self.catalog.cluster_id()));
        resp.controller_id = BrokerId(controller);
        resp.cluster_authorized_operations = self.authorized_ops(
            req.include_cluster_authorized_operations,
            resource::CLUSTER,
            super::authz::CLUSTER_NAME,
        );
        let topic_ops = req.include_topic_authorized_operations;
        // v0: an empty list means all topics; v1+: null means all
        let all = match &req.topics {
            None => true,
            Some(t) => v == 0 && t.is_empty(),
        };
        if all {
            resp.topics = self
                .catalog
                .topics()
                .iter()
                // a topic the principal may not describe is not listed
                .filter(|m| self.allowed_quietly(op::DESCRIBE, resource::TOPIC, &m.name))
                .map(|m| self.topic_metadata(m, topic_ops))
                .collect();
            return resp;
        }
        // v0–v3 always allow auto-creation; later versions say so in the request
        let allow_create =
            self.config.auto_create_topics_enable && (v < 4 || req.allow_auto_topic_creation);
        let requested = req.topics.unwrap_or_default();
        // auto-creation needs CREATE on the cluster or on the topic, as in Kafka
        let cluster_create =
            self.allowed_quietly(op::CREATE, resource::CLUSTER, super::authz::CLUSTER_NAME);
        let may_create = |n: &str| cluster_create || self.allowed(op::CREATE, resource::TOPIC, n);
        // every unknown, valid name is created at once: one catalog write for the request
        let missing: Vec<String> = if allow_create {
            let mut names: Vec<String> = requested
                .iter()
                .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
                .filter(|n| self.catalog.get(n).is_none() && validate_topic_name(n).is_ok())
                .filter(|n| may_create(n))
                .collect();
            names.sort_unstable();
            names.dedup();
            names
        } else {
            Vec::new()
        };
        let mut failed: BTreeMap<String, CatalogError> = BTreeMap::new();
        if !missing.is_empty() {
            let news = missing.iter().map(|name| NewTopic {
                name: name.clone(),
                partitions: self.config.num_partitions,
                replication_factor: -1,
                configs: BTreeMap::new(),
            });
            for (name, r) in missing.iter().zip(self.create_topics(news.collect()).await) {
                match r {
                    // a concurrent request created it first
                    Ok(_) | Err(CatalogError::TopicExists(_)) => {}
                    // past the mutation quota: unknown for now (clients retry), and the client
                    // is told to slow down
                    Err(CatalogError::QuotaExceeded(wait)) => {
                        resp.throttle_time_ms = resp.throttle_time_ms.max(quota::throttle_ms(wait));
                    }
                    Err(e) => {
                        tracing::warn!(topic = %name, error = %e, "auto-creating topic failed");
                        failed.insert(name.clone(), e);
                    }
                }
            }
        }
        for t in requested {
            let entry = match t.name {
                // a topic the principal may not describe (or create) is refused whether it
                // exists or not, so its existence is not told
                Some(name)
                    if !self.allowed(op::DESCRIBE, resource::TOPIC, &name.0)
                        || (self.catalog.get(&name.0).is_none()
                            && allow_create
                            && !may_create(&name.0)) =>
                {
                    error_topic(
                        Some(&name.0),
                        Uuid::nil(),
                        ResponseError::TopicAuthorizationFailed,
                    )
                }
                Some(name) => self.topic_by_name(&name.0, &failed, topic_ops),
                None => match self.catalog.get_by_id(t.topic_id) {
                    Some(m) if !self.allowed(op::DESCRIBE, resource::TOPIC, &m.name) => {
                        error_topic(None, t.topic_id, ResponseError::TopicAuthorizationFailed)
                    }
                    Some(m) => self.topic_metadata(&m, topic_ops),
                    None => error_topic(None, t.topic_id, ResponseError::UnknownTopicId),
                },
            };
            resp.topics.push(entry);
        }
        resp
    }

    fn topic_by_name(
        &self,
        name: &str,
        failed: &BTreeMap<String, CatalogError>,
        ops: bool,
    ) -> MetadataResponseTopic {
        if let Some(m) = self.catalog.get(name) {
            return self.topic_metadata(&m, ops);
        }
        if let Err(e) = validate_topic_name(name) {
            return error_topic(Some(name), Uuid::nil(), catalog_error(&e));
        }
        match failed.get(name) {
            Some(e) => error_topic(Some(name), Uuid::nil(), catalog_error(e)),
            None => error_topic(
                Some(name),
                Uuid::nil(),
                ResponseError::UnknownTopicOrPartition,
            ),
        }
    }

    /// `ops`: whether the client asked for the topic's authorized operations.
    pub(super) fn topic_metadata(&self, m: &TopicMeta, ops: bool) -> MetadataResponseTopic {
        let mut t = MetadataResponseTopic::default();
        t.name = Some(TopicName(StrBytes::from_string(m.name.clone())));
        t.topic_authorized_operations = self.authorized_ops(ops, resource::TOPIC, &m.name);
        t.topic_id = m.id;
        t.is_internal = m.name.starts_with("__");
        let view = self.cluster.as_ref().map(|c| c.view());
        t.partitions = (0..m.partitions)
            .map(|i| {
                let mut p = MetadataResponsePartition::default();
                p.partition_index = i;
                let (leader, epoch) = match &view {
                    None => (Some(self.node_id()), m.leader_epoch(i)),
                    Some(v) => (
                        v.live_leader(m.id, i).map(|(n, _)| BrokerId(n.id)),
                        v.epoch(m.id, i).max(0),
                    ),
                };
                p.leader_epoch = epoch;
                match leader {
                    Some(l) => {
                        p.leader_id = l;
                        p.replica_nodes = replicas(l, view.as_deref());
                        p.isr_nodes = p.replica_nodes.clone();
                    }
                    None => {
                        // between a leader's loss and the controller's next decision
                        p.error_code = code(ResponseError::LeaderNotAvailable);
                        p.leader_id = BrokerId(-1);
                    }
                }
                p
            })
            .collect();
        t
    }
}

/// A partition's replicas as clients are told them: its leader first, then (in a cluster) every
/// other live node, since each can serve its reads from the bucket (KIP-392: a consumer's
/// preferred read replica must be one of them). They are all in sync: what a follower serves is
/// what the leader committed to the bucket.
fn replicas(leader: BrokerId, view: Option<&crate::cluster::View>) -> Vec<BrokerId> {
    let mut out = vec![leader];
    if let Some(v) = view {
        out.extend(
            v.nodes
                .keys()
                .filter(|n| **n != leader.0)
                .map(|n| BrokerId(*n)),
        );
    }
    out
}

fn error_topic(name: Option<&str>, id: Uuid, e: ResponseError) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    t.name = name.map(|n| TopicName(StrBytes::from_string(n.to_string())));
    t.topic_id = id;
    t.error_code = code(e);
    t
}
