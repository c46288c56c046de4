//! DescribeTopicPartitions (KIP-966): topics and their partitions as Metadata describes them,
//! paged. Topics come sorted by name; a response holds at most `response_partition_limit`
//! partitions (and never more than [`MAX_PARTITIONS`]) and names the next one in `next_cursor`.
//! The Java Admin's `describeTopics` uses it where the broker offers it.

use super::errors::code;
use super::Handler;
use crate::security::acl::{op, resource};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

/// The most partitions one response holds (Kafka's `max.request.partition.size.limit`).
const MAX_PARTITIONS: usize = 2000;

impl Handler {
    pub(super) async fn describe_topic_partitions(
        &self,
        req: DescribeTopicPartitionsRequest,
    ) -> DescribeTopicPartitionsResponse {
        if let Some(c) = &self.cluster {
            c.fresh_view().await;
        }
        let mut resp = DescribeTopicPartitionsResponse::default();
        let all = req.topics.is_empty();
        let mut names: Vec<String> = if all {
            // every topic the principal may describe; the others are not listed
            self.catalog
                .topics()
                .into_iter()
                .map(|m| m.name)
                .filter(|n| self.allowed_quietly(op::DESCRIBE, resource::TOPIC, n))
                .collect()
        } else {
            req.topics.iter().map(|t| t.name.0.to_string()).collect()
        };
        names.sort_unstable();
        names.dedup();
        let (from_topic, from_partition) = match &req.cursor {
            Some(c) => (c.topic_name.0.to_string(), c.partition_index.max(0)),
            None => (String::new(), 0),
        };
        if req.cursor.is_some() && !all && !names.contains(&from_topic) {
            // as Kafka: a cursor must name one of the topics asked for
            resp.topics = names
                .iter()
                .map(|n| error_topic(n, ResponseError::InvalidRequest))
                .collect();
            return resp;
        }
        // at least one partition, so a client paging through always moves on
        let mut budget = usize::try_from(req.response_partition_limit)
            .unwrap_or(0)
            .clamp(1, MAX_PARTITIONS);
        for name in names.into_iter().filter(|n| *n >= from_topic) {
            if !all && !self.allowed(op::DESCRIBE, resource::TOPIC, &name) {
                resp.topics
                    .push(error_topic(&name, ResponseError::TopicAuthorizationFailed));
                continue;
            }
            let Some(meta) = self.catalog.get(&name) else {
                resp.topics
                    .push(error_topic(&name, ResponseError::UnknownTopicOrPartition));
                continue;
            };
            let first = if name == from_topic {
                from_partition
            } else {
                0
            };
            if budget == 0 {
                resp.next_cursor = Some(cursor(&name, first));
                break;
            }
            let described = self.topic_metadata(&meta, true);
            let mut t = DescribeTopicPartitionsResponseTopic::default();
            t.error_code = described.error_code;
            t.name = described.name;
            t.topic_id = described.topic_id;
            t.is_internal = described.is_internal;
            t.topic_authorized_operations = described.topic_authorized_operations;
            let rest: Vec<_> = described
                .partitions
                .into_iter()
                .filter(|p| p.partition_index >= first)
                .collect();
            let more = rest.len() > budget;
            for p in rest.into_iter().take(budget) {
                let mut d = DescribeTopicPartitionsResponsePartition::default();
                d.error_code = p.error_code;
                d.partition_index = p.partition_index;
                d.leader_id = p.leader_id;
                d.leader_epoch = p.leader_epoch;
                d.replica_nodes = p.replica_nodes;
                d.isr_nodes = p.isr_nodes;
                // no eligible leader replicas here (KIP-966's ELR): every replica is in sync
                d.eligible_leader_replicas = Some(Vec::new());
                d.last_known_elr = Some(Vec::new());
                d.offline_replicas = Vec::new();
                t.partitions.push(d);
            }
            budget -= t.partitions.len();
            let next = first + t.partitions.len() as i32;
            resp.topics.push(t);
            if more {
                resp.next_cursor = Some(cursor(&name, next));
                break;
            }
        }
        resp
    }
}

fn cursor(topic: &str, partition: i32) -> Cursor {
    let mut c = Cursor::default();
    c.topic_name = TopicName(StrBytes::from_string(topic.to_string()));
    c.partition_index = partition;
    c
}

fn error_topic(name: &str, e: ResponseError) -> DescribeTopicPartitionsResponseTopic {
    let mut t = DescribeTopicPartitionsResponseTopic::default();
    t.name = Some(TopicName(StrBytes::from_string(name.to_string())));
    t.topic_id = Uuid::nil();
    t.error_code = code(e);
    t
}
