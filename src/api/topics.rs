//! CreateTopics, DeleteTopics, CreatePartitions.

use super::errors::{catalog_error, code_and_message, partition_storage};
use super::{quota, Handler};
use crate::catalog::{CatalogError, NewTopic};
use crate::security::acl::{op, resource};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, HashSet};
use uuid::Uuid;

/// A created (or, validate-only, creatable) topic: id, partitions, configs.
type Created = (Uuid, i32, BTreeMap<String, String>);

impl Handler {
    pub(super) async fn handle_create_topics(
        &self,
        req: CreateTopicsRequest,
    ) -> CreateTopicsResponse {
        let mut resp = CreateTopicsResponse::default();
        let mut seen = HashSet::new();
        let duplicates: HashSet<String> = req
            .topics
            .iter()
            .filter(|t| !seen.insert(t.name.0.to_string()))
            .map(|t| t.name.0.to_string())
            .collect();
        // decide every topic first, then create the valid ones together (one catalog write)
        let mut outcomes: Vec<Option<Result<Created, CatalogError>>> = Vec::new();
        let mut to_create = Vec::new();
        // CREATE on the cluster, or on each topic
        let cluster_create =
            self.allowed_quietly(op::CREATE, resource::CLUSTER, super::authz::CLUSTER_NAME);
        for t in &req.topics {
            let name = t.name.0.to_string();
            if !cluster_create && !self.allowed(op::CREATE, resource::TOPIC, &name) {
                outcomes.push(Some(Err(CatalogError::TopicNotAuthorized(name))));
                continue;
            }
            if duplicates.contains(&name) {
                outcomes.push(Some(Err(CatalogError::InvalidRequest(format!(
                    "create topics request contains duplicate topic '{name}'"
                )))));
                continue;
            }
            match self.new_topic(&name, t) {
                Err(e) => outcomes.push(Some(Err(e))),
                Ok(new) if req.validate_only => outcomes.push(Some(
                    self.catalog
                        .check_new_topic(&new)
                        .map(|()| (Uuid::nil(), new.partitions, new.configs)),
                )),
                Ok(new) => {
                    to_create.push((outcomes.len(), new));
                    outcomes.push(None);
                }
            }
        }
        let (slots, news): (Vec<usize>, Vec<NewTopic>) = to_create.into_iter().unzip();
        for (slot, created) in slots.into_iter().zip(self.create_topics(news).await) {
            if let Err(CatalogError::QuotaExceeded(wait)) = &created {
                resp.throttle_time_ms = resp.throttle_time_ms.max(quota::throttle_ms(*wait));
            }
            outcomes[slot] = Some(created.map(|m| (m.id, m.partitions, m.configs)));
        }
        for (t, outcome) in req.topics.iter().zip(outcomes) {
            let mut r = CreatableTopicResult::default();
            r.name = t.name.clone();
            r.num_partitions = -1;
            r.replication_factor = -1;
            match outcome.unwrap_or(Err(CatalogError::Conflict)) {
                Ok((id, partitions, configs)) => {
                    r.topic_id = id;
                    r.num_partitions = partitions;
                    r.replication_factor = 1;
                    r.configs = Some(
                        self.catalog
                            .topic_entries(&configs)
                            .into_iter()
                            .map(|e| {
                                let mut c = CreatableTopicConfigs::default();
                                c.name = StrBytes::from_static_str(e.name);
                                c.value = Some(StrBytes::from_string(e.value));
                                c.read_only = e.read_only;
                                c.config_source = e.source as i8;
                                c
                            })
                            .collect(),
                    );
                }
                Err(e) => {
                    (r.error_code, r.error_message) = code_and_message(catalog_error(&e), &e);
                }
            }
            resp.topics.push(r);
        }
        resp
    }

    /// A CreateTopics entry as a topic to create: configs, partition count and replication
    /// factor (from the counts or from replica assignments to this broker).
    fn new_topic(
        &self,
        name: &str,
        t: &kafka_protocol::messages::create_topics_request::CreatableTopic,
    ) -> Result<NewTopic, CatalogError> {
        let mut configs = BTreeMap::new();
        for c in &t.configs {
            let value = c.value.as_ref().ok_or_else(|| {
                CatalogError::InvalidConfig(format!(
                    "null value not supported for topic config {}",
                    c.name
                ))
            })?;
            configs.insert(c.name.to_string(), value.to_string());
        }
        let (partitions, replication_factor) = if t.assignments.is_empty() {
            let p = if t.num_partitions == -1 {
                self.config.num_partitions
            } else {
                t.num_partitions
            };
            (p, t.replication_factor)
        } else {
            if t.num_partitions != -1 || t.replication_factor != -1 {
                return Err(CatalogError::InvalidRequest(
                    "both num_partitions or replication_factor and replica assignments were set"
                        .into(),
                ));
            }
            for (i, a) in t.assignments.iter().enumerate() {
                if a.partition_index != i as i32 || a.broker_ids != [self.node_id()] {
                    return Err(CatalogError::InvalidReplicaAssignment(format!(
                        "partition {} must be assigned to broker {} only",
                        a.partition_index, self.config.node_id
                    )));
                }
            }
            (t.assignments.len() as i32, 1)
        };
        Ok(NewTopic {
            name: name.to_string(),
            partitions,
            replication_factor,
            configs,
        })
    }

    pub(super) async fn delete_topics(
        &self,
        req: DeleteTopicsRequest,
        v: i16,
    ) -> DeleteTopicsResponse {
        let mut resp = DeleteTopicsResponse::default();
        let targets: Vec<(Option<String>, Uuid)> = if v >= 6 {
            req.topics
                .iter()
                .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
                .collect()
        } else {
            req.topic_names
                .iter()
                .map(|n| (Some(n.0.to_string()), Uuid::nil()))
                .collect()
        };
        for (name, id) in targets {
            let mut r = DeletableTopicResult::default();
            r.topic_id = id;
            let meta = match &name {
                Some(n) => self.catalog.get(n),
                None => self.catalog.get_by_id(id),
            };
            r.name = name
                .clone()
                .or(meta.as_ref().map(|m| m.name.clone()))
                .map(|n| TopicName(StrBytes::from_string(n)));
            // DELETE on the topic (refused whether or not it exists, as Kafka does for names)
            let target = meta.as_ref().map(|m| m.name.clone()).or(name.clone());
            if let Some(t) = target.filter(|t| !self.allowed(op::DELETE, resource::TOPIC, t)) {
                (r.error_code, r.error_message) = code_and_message(
                    ResponseError::TopicAuthorizationFailed,
                    format!("not authorized to delete topic '{t}'"),
                );
                resp.responses.push(r);
                continue;
            }
            let Some(meta) = meta else {
                let code = if name.is_none() {
                    ResponseError::UnknownTopicId
                } else {
                    ResponseError::UnknownTopicOrPartition
                };
                (r.error_code, r.error_message) = code_and_message(code, "topic does not exist");
                resp.responses.push(r);
                continue;
            };
            r.topic_id = meta.id;
            if crate::catalog::is_coordinator_topic(&meta.name) {
                (r.error_code, r.error_message) = code_and_message(
                    ResponseError::InvalidTopicException,
                    "the coordinators' internal topic cannot be deleted",
                );
                resp.responses.push(r);
                continue;
            }
            let result = match self.catalog.delete_topic(&meta.name).await {
                Ok(_) => self
                    .logs
                    .delete_topic(&meta.name)
                    .await
                    .map_err(partition_storage),
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => {
                    tracing::info!(topic = %meta.name, "deleted topic");
                    // committed offsets of the topic go too (durably, in the background)
                    let groups = self.groups.clone();
                    let topic = meta.name.clone();
                    tokio::spawn(async move { groups.delete_topic(&topic).await });
                }
                Err(e) => (r.error_code, r.error_message) = code_and_message(catalog_error(&e), &e),
            }
            resp.responses.push(r);
        }
        resp
    }

    pub(super) async fn create_partitions(
        &self,
        req: CreatePartitionsRequest,
    ) -> CreatePartitionsResponse {
        let mut resp = CreatePartitionsResponse::default();
        for t in req.topics {
            let mut r = CreatePartitionsTopicResult::default();
            r.name = t.name.clone();
            let name = t.name.0.to_string();
            if !self.allowed(op::ALTER, resource::TOPIC, &name) {
                (r.error_code, r.error_message) = code_and_message(
                    ResponseError::TopicAuthorizationFailed,
                    format!("not authorized to alter topic '{name}'"),
                );
                resp.results.push(r);
                continue;
            }
            if crate::catalog::is_coordinator_topic(&name) {
                (r.error_code, r.error_message) = code_and_message(
                    ResponseError::InvalidTopicException,
                    "the coordinators' internal topic keeps its partition count",
                );
                resp.results.push(r);
                continue;
            }
            let result = self
                .grow(&name, t.count, t.assignments.as_deref(), req.validate_only)
                .await;
            if let Err(e) = result {
                if let CatalogError::QuotaExceeded(wait) = &e {
                    resp.throttle_time_ms = resp.throttle_time_ms.max(quota::throttle_ms(*wait));
                }
                (r.error_code, r.error_message) = code_and_message(catalog_error(&e), &e);
            }
            resp.results.push(r);
        }
        resp
    }

    async fn grow(
        &self,
        name: &str,
        count: i32,
        assignments: Option<
            &[kafka_protocol::messages::create_partitions_request::CreatePartitionsAssignment],
        >,
        validate_only: bool,
    ) -> Result<(), CatalogError> {
        let before = self
            .catalog
            .get(name)
            .ok_or_else(|| CatalogError::UnknownTopic(name.to_string()))?;
        if let Some(a) = assignments {
            if a.len() as i64 != count as i64 - before.partitions as i64
                || a.iter().any(|x| x.broker_ids != [self.node_id()])
            {
                return Err(CatalogError::InvalidReplicaAssignment(format!(
                    "assignments must list broker {} once for each of the {} new partitions",
                    self.config.node_id,
                    count - before.partitions
                )));
            }
        }
        if !validate_only && count > before.partitions {
            self.mutations
                .take(count - before.partitions)
                .map_err(CatalogError::QuotaExceeded)?;
        }
        let after = self
            .catalog
            .add_partitions(name, count, !validate_only)
            .await?;
        if validate_only {
            return Ok(());
        }
        let config = self.catalog.log_config(&after);
        for p in before.partitions..after.partitions {
            self.logs
                .create_partition(name, after.id, p, config.clone())
                .await
                .map_err(partition_storage)?;
        }
        tracing::info!(
            topic = name,
            partitions = after.partitions,
            "added partitions"
        );
        Ok(())
    }
}
