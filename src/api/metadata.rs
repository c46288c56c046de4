//! Metadata: brokers, cluster id, topics and partitions; auto-creates topics when allowed.

use super::errors::catalog_error;
use super::Handler;
use crate::catalog::{validate_topic_name, CatalogError, TopicMeta};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Leader epoch of every partition: one node that never changes leadership.
pub const LEADER_EPOCH: i32 = 0;

impl Handler {
    pub(super) fn metadata(&self, req: MetadataRequest, v: i16) -> MetadataResponse {
        let mut resp = MetadataResponse::default();
        let mut broker = MetadataResponseBroker::default();
        broker.node_id = self.node_id();
        broker.host = StrBytes::from_string(self.advertised.0.clone());
        broker.port = self.advertised.1;
        resp.brokers = vec![broker];
        resp.cluster_id = Some(StrBytes::from_string(self.catalog.cluster_id()));
        resp.controller_id = self.node_id();
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
                .map(|m| self.topic_metadata(m))
                .collect();
            return resp;
        }
        // v0–v3 always allow auto-creation; later versions say so in the request
        let allow_create =
            self.config.auto_create_topics_enable && (v < 4 || req.allow_auto_topic_creation);
        for t in req.topics.unwrap_or_default() {
            let entry = match t.name {
                Some(name) => self.topic_by_name(&name.0, allow_create),
                None => match self.catalog.get_by_id(t.topic_id) {
                    Some(m) => self.topic_metadata(&m),
                    None => error_topic(None, t.topic_id, ResponseError::UnknownTopicId),
                },
            };
            resp.topics.push(entry);
        }
        resp
    }

    fn topic_by_name(&self, name: &str, allow_create: bool) -> MetadataResponseTopic {
        if let Some(m) = self.catalog.get(name) {
            return self.topic_metadata(&m);
        }
        if let Err(e) = validate_topic_name(name) {
            return error_topic(Some(name), Uuid::nil(), catalog_error(&e));
        }
        if !allow_create {
            return error_topic(
                Some(name),
                Uuid::nil(),
                ResponseError::UnknownTopicOrPartition,
            );
        }
        match self.create_topic(name, self.config.num_partitions, -1, BTreeMap::new()) {
            Ok(m) => self.topic_metadata(&m),
            // a concurrent request created it first
            Err(CatalogError::TopicExists(_)) => match self.catalog.get(name) {
                Some(m) => self.topic_metadata(&m),
                None => error_topic(
                    Some(name),
                    Uuid::nil(),
                    ResponseError::UnknownTopicOrPartition,
                ),
            },
            Err(e) => {
                tracing::warn!(topic = name, error = %e, "auto-creating topic failed");
                error_topic(Some(name), Uuid::nil(), catalog_error(&e))
            }
        }
    }

    fn topic_metadata(&self, m: &TopicMeta) -> MetadataResponseTopic {
        let mut t = MetadataResponseTopic::default();
        t.name = Some(TopicName(StrBytes::from_string(m.name.clone())));
        t.topic_id = m.id;
        t.is_internal = m.name.starts_with("__");
        t.partitions = (0..m.partitions)
            .map(|i| {
                let mut p = MetadataResponsePartition::default();
                p.partition_index = i;
                p.leader_id = self.node_id();
                p.leader_epoch = LEADER_EPOCH;
                p.replica_nodes = vec![self.node_id()];
                p.isr_nodes = vec![self.node_id()];
                p
            })
            .collect();
        t
    }
}

fn error_topic(name: Option<&str>, id: Uuid, code: ResponseError) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    t.name = name.map(|n| TopicName(StrBytes::from_string(n.to_string())));
    t.topic_id = id;
    t.error_code = code.code();
    t
}
