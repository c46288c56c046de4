//! DescribeConfigs for topic, broker and (share) group resources, with sources, types and
//! synonyms.

use super::errors::code_and_message;
use super::Handler;
use crate::config::topic::ConfigEntry;
use crate::security::acl::{op, resource};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_GROUP: i8 = 32;

impl Handler {
    pub(super) fn describe_configs(
        &self,
        req: DescribeConfigsRequest,
        v: i16,
    ) -> DescribeConfigsResponse {
        let mut resp = DescribeConfigsResponse::default();
        for res in req.resources {
            let mut r = DescribeConfigsResult::default();
            r.resource_type = res.resource_type;
            r.resource_name = res.resource_name.clone();
            let name = res.resource_name.to_string();
            // DESCRIBE_CONFIGS on the topic, or on the cluster for the broker resource
            let denied = match res.resource_type {
                RESOURCE_TOPIC if !self.allowed(op::DESCRIBE_CONFIGS, resource::TOPIC, &name) => {
                    Some(ResponseError::TopicAuthorizationFailed)
                }
                RESOURCE_BROKER if !self.cluster_allowed(op::DESCRIBE_CONFIGS) => {
                    Some(ResponseError::ClusterAuthorizationFailed)
                }
                RESOURCE_GROUP if !self.allowed(op::DESCRIBE_CONFIGS, resource::GROUP, &name) => {
                    Some(ResponseError::GroupAuthorizationFailed)
                }
                _ => None,
            };
            let entries = match res.resource_type {
                _ if denied.is_some() => Err((
                    denied.unwrap_or(ResponseError::ClusterAuthorizationFailed),
                    "not authorized to describe these configs".to_string(),
                )),
                RESOURCE_TOPIC => match self.catalog.get(&name) {
                    Some(meta) => Ok(self.catalog.topic_entries(&meta.configs)),
                    None => Err((
                        ResponseError::UnknownTopicOrPartition,
                        format!("topic '{name}' does not exist"),
                    )),
                },
                RESOURCE_BROKER if name.is_empty() || name == self.config.node_id.to_string() => {
                    let bound: Vec<String> = self
                        .listeners
                        .iter()
                        .map(|(n, a)| format!("{n}://{a}"))
                        .collect();
                    let advertised: Vec<String> = self
                        .listeners
                        .iter()
                        .filter_map(|(n, _)| {
                            let (h, p) = self.advertised_listeners.get(n)?;
                            Some(format!("{n}://{h}:{p}"))
                        })
                        .collect();
                    Ok(self
                        .catalog
                        .broker_entries(&bound.join(","), &advertised.join(",")))
                }
                RESOURCE_BROKER => Err((
                    ResponseError::InvalidRequest,
                    format!("broker {name} is not this broker ({})", self.config.node_id),
                )),
                RESOURCE_GROUP => self.group_config_entries(&name),
                other => Err((
                    ResponseError::InvalidRequest,
                    format!("resource type {other} is not supported"),
                )),
            };
            match entries {
                Ok(entries) => {
                    let keys = res.configuration_keys.as_ref();
                    r.configs = entries
                        .into_iter()
                        // null or empty: every key, as Kafka answers
                        .filter(|e| {
                            keys.is_none_or(|k| {
                                k.is_empty() || k.iter().any(|k| k.as_str() == e.name)
                            })
                        })
                        .map(|e| to_wire(e, req.include_synonyms && v >= 1))
                        .collect();
                }
                Err((code, msg)) => (r.error_code, r.error_message) = code_and_message(code, msg),
            }
            resp.results.push(r);
        }
        resp
    }
}

fn to_wire(e: ConfigEntry, synonyms: bool) -> DescribeConfigsResourceResult {
    let mut c = DescribeConfigsResourceResult::default();
    c.name = StrBytes::from_static_str(e.name);
    c.value = Some(StrBytes::from_string(e.value));
    c.read_only = e.read_only;
    c.config_source = e.source as i8;
    c.config_type = e.config_type as i8;
    if synonyms {
        c.synonyms = e
            .synonyms
            .into_iter()
            .map(|(name, value, source)| {
                let mut s = DescribeConfigsSynonym::default();
                s.name = StrBytes::from_static_str(name);
                s.value = Some(StrBytes::from_string(value));
                s.source = source as i8;
                s
            })
            .collect();
    }
    c
}
