//! AlterConfigs (replace a resource's dynamic configs) and IncrementalAlterConfigs (set, delete,
//! append, subtract), for topics, for the broker's dynamic topic defaults and for share groups. Changes are
//! validated, persisted in the catalog and applied to the running partitions at once.

use super::errors::{catalog_error, code_and_message};
use super::Handler;
use crate::catalog::CatalogError;
use crate::config::topic::ConfigType;
use crate::security::acl::{op, resource};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use std::collections::{BTreeMap, HashSet};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_GROUP: i8 = 32;

/// One requested change.
enum Op {
    Set(String, String),
    Delete(String),
    Append(String, String),
    Subtract(String, String),
}

impl Op {
    fn name(&self) -> &str {
        match self {
            Op::Set(n, _) | Op::Delete(n) | Op::Append(n, _) | Op::Subtract(n, _) => n,
        }
    }
}

type Failure = (ResponseError, String);

impl Handler {
    pub(super) async fn alter_configs(&self, req: AlterConfigsRequest) -> AlterConfigsResponse {
        let mut resp = AlterConfigsResponse::default();
        for res in req.resources {
            let ops: Result<Vec<Op>, Failure> = res
                .configs
                .iter()
                .map(|c| match &c.value {
                    Some(v) => Ok(Op::Set(c.name.to_string(), v.to_string())),
                    None => Err((
                        ResponseError::InvalidRequest,
                        format!("null value not supported for {}", c.name.as_str()),
                    )),
                })
                .collect();
            let outcome = self
                .alter(
                    res.resource_type,
                    res.resource_name.as_str(),
                    ops,
                    true,
                    req.validate_only,
                )
                .await;
            let mut r = alter_configs_response::AlterConfigsResourceResponse::default();
            r.resource_type = res.resource_type;
            r.resource_name = res.resource_name.clone();
            if let Err((code, msg)) = outcome {
                (r.error_code, r.error_message) = code_and_message(code, msg);
            }
            resp.responses.push(r);
        }
        resp
    }

    pub(super) async fn incremental_alter_configs(
        &self,
        req: IncrementalAlterConfigsRequest,
    ) -> IncrementalAlterConfigsResponse {
        let mut resp = IncrementalAlterConfigsResponse::default();
        for res in req.resources {
            let ops: Result<Vec<Op>, Failure> = res
                .configs
                .iter()
                .map(|c| {
                    let name = c.name.to_string();
                    let value = c.value.as_ref().map(|v| v.to_string());
                    match (c.config_operation, value) {
                        (1, _) => Ok(Op::Delete(name)),
                        (0, Some(v)) => Ok(Op::Set(name, v)),
                        (2, Some(v)) => Ok(Op::Append(name, v)),
                        (3, Some(v)) => Ok(Op::Subtract(name, v)),
                        (0..=3, None) => Err((
                            ResponseError::InvalidRequest,
                            format!("null value not supported for {name}"),
                        )),
                        (op, _) => Err((
                            ResponseError::InvalidRequest,
                            format!("unknown config operation {op} for {name}"),
                        )),
                    }
                })
                .collect();
            let outcome = self
                .alter(
                    res.resource_type,
                    res.resource_name.as_str(),
                    ops,
                    false,
                    req.validate_only,
                )
                .await;
            let mut r = incremental_alter_configs_response::AlterConfigsResourceResponse::default();
            r.resource_type = res.resource_type;
            r.resource_name = res.resource_name.clone();
            if let Err((code, msg)) = outcome {
                (r.error_code, r.error_message) = code_and_message(code, msg);
            }
            resp.responses.push(r);
        }
        resp
    }

    /// Applies `ops` (unless reading them failed) to one resource. `replace` (AlterConfigs)
    /// drops every override the request does not name.
    async fn alter(
        &self,
        resource_type: i8,
        name: &str,
        ops: Result<Vec<Op>, Failure>,
        replace: bool,
        validate_only: bool,
    ) -> Result<(), Failure> {
        // ALTER_CONFIGS on the topic, or on the cluster for the broker resource
        match resource_type {
            2 if !self.allowed(op::ALTER_CONFIGS, resource::TOPIC, name) => {
                return Err((
                    ResponseError::TopicAuthorizationFailed,
                    format!("not authorized to alter the configs of topic '{name}'"),
                ))
            }
            RESOURCE_GROUP if !self.allowed(op::ALTER_CONFIGS, resource::GROUP, name) => {
                return Err((
                    ResponseError::GroupAuthorizationFailed,
                    format!("not authorized to alter the configs of group '{name}'"),
                ))
            }
            4 | 8 if !self.cluster_allowed(op::ALTER_CONFIGS) => {
                return Err((
                    ResponseError::ClusterAuthorizationFailed,
                    "not authorized to alter the broker's configs".into(),
                ))
            }
            _ => {}
        }
        let ops = ops?;
        let mut seen = HashSet::new();
        if let Some(dup) = ops.iter().find(|o| !seen.insert(o.name().to_string())) {
            return Err((
                ResponseError::InvalidRequest,
                format!("duplicate config key {}", dup.name()),
            ));
        }
        let apply = !validate_only;
        let failed = |e: CatalogError| (catalog_error(&e), e.to_string());
        match resource_type {
            RESOURCE_TOPIC => {
                let meta = self
                    .catalog
                    .alter_topic_configs(
                        name,
                        |configs| {
                            let current = self.catalog.topic_entries(configs);
                            let effective = |n: &str| {
                                current
                                    .iter()
                                    .find(|e| e.name == n)
                                    .map(|e| (e.value.clone(), e.config_type))
                            };
                            edit(configs, &ops, replace, &effective)
                        },
                        self.logs.has_remote_history(name),
                        apply,
                    )
                    .await
                    .map_err(failed)?;
                if apply {
                    let lc = self.catalog.log_config(&meta);
                    self.logs.set_topic_config(name, &lc);
                    tracing::info!(topic = name, configs = ?meta.configs, "topic configs changed");
                }
                Ok(())
            }
            RESOURCE_BROKER => {
                let default = name.is_empty();
                if !default && name != self.config.node_id.to_string() {
                    return Err((
                        ResponseError::InvalidRequest,
                        format!("broker {name} is not this broker ({})", self.config.node_id),
                    ));
                }
                let entries = self.catalog.broker_entries("", "");
                let effective = |n: &str| {
                    entries
                        .iter()
                        .find(|e| e.name == n)
                        .map(|e| (e.value.clone(), e.config_type))
                };
                self.catalog
                    .alter_broker_configs(
                        default,
                        |configs| edit(configs, &ops, replace, &effective),
                        apply,
                    )
                    .await
                    .map_err(failed)?;
                if apply {
                    for t in self.catalog.topics() {
                        self.logs
                            .set_topic_config(&t.name, &self.catalog.log_config(&t));
                    }
                    tracing::info!(broker = name, "dynamic broker configs changed");
                }
                Ok(())
            }
            RESOURCE_GROUP => {
                let changes = ops
                    .into_iter()
                    .map(|o| match o {
                        Op::Set(k, v) => Ok((k, Some(v))),
                        Op::Delete(k) => Ok((k, None)),
                        Op::Append(k, _) | Op::Subtract(k, _) => Err((
                            ResponseError::InvalidRequest,
                            format!("{k} is not a list: APPEND and SUBTRACT do not apply"),
                        )),
                    })
                    .collect::<Result<Vec<_>, Failure>>()?;
                self.alter_group_configs(name, changes, replace, apply)
                    .await
            }
            other => Err((
                ResponseError::InvalidRequest,
                format!("resource type {other} cannot be altered"),
            )),
        }
    }
}

/// Applies the operations to an override map. `effective` gives a key's current value and
/// type (the base that APPEND and SUBTRACT work on).
fn edit(
    configs: &mut BTreeMap<String, String>,
    ops: &[Op],
    replace: bool,
    effective: &dyn Fn(&str) -> Option<(String, ConfigType)>,
) -> Result<(), CatalogError> {
    if replace {
        configs.clear();
    }
    for op in ops {
        match op {
            Op::Set(n, v) => {
                configs.insert(n.clone(), v.clone());
            }
            Op::Delete(n) => {
                configs.remove(n);
            }
            Op::Append(n, v) | Op::Subtract(n, v) => {
                let (current, ty) = effective(n).ok_or_else(|| {
                    CatalogError::InvalidConfig(format!("unknown config name: {n}"))
                })?;
                if ty != ConfigType::List {
                    return Err(CatalogError::InvalidConfig(format!(
                        "{n} is not a list: APPEND and SUBTRACT apply to list configs only"
                    )));
                }
                let mut items: Vec<String> = current
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if matches!(op, Op::Append(..)) {
                        if !items.iter().any(|i| i == item) {
                            items.push(item.to_string());
                        }
                    } else {
                        items.retain(|i| i != item);
                    }
                }
                configs.insert(n.clone(), items.join(","));
            }
        }
    }
    Ok(())
}
