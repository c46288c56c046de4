//! DescribeClientQuotas and AlterClientQuotas (v0–1): quotas on users, client ids, the pair
//! and their defaults, kept with the catalog and enforced by `security::quotas`. Describing
//! needs DESCRIBE_CONFIGS on the cluster, altering ALTER_CONFIGS, as in Kafka.

use super::errors::{catalog_error, code_and_message};
use super::{Handler, Pending};
use crate::catalog::{ClientQuota, QuotaEntity, QuotaName};
use crate::protocol::Response;
use crate::security::acl::op;
use crate::security::quotas::KEYS;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{
    alter_client_quotas_request, alter_client_quotas_response, AlterClientQuotasRequest,
    AlterClientQuotasResponse, DescribeClientQuotasRequest, DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;

const USER: &str = "user";
const CLIENT_ID: &str = "client-id";
const IP: &str = "ip";

/// A DescribeClientQuotas filter: entity types that must have an exact name (`None`: the
/// default) and entity types that must merely be present.
struct QuotaFilter {
    exact: BTreeMap<String, Option<String>>,
    present: Vec<String>,
    strict: bool,
}

/// The parts of an entity as (type, name; `None` for the default).
fn parts(e: &QuotaEntity) -> Vec<(&'static str, Option<&str>)> {
    fn name(n: &QuotaName) -> Option<&str> {
        match n {
            QuotaName::Default => None,
            QuotaName::Named(s) => Some(s.as_str()),
        }
    }
    let mut v = Vec::new();
    if let Some(u) = &e.user {
        v.push((USER, name(u)));
    }
    if let Some(c) = &e.client_id {
        v.push((CLIENT_ID, name(c)));
    }
    v
}

impl QuotaFilter {
    fn parse(req: &DescribeClientQuotasRequest) -> Result<QuotaFilter, String> {
        let mut f = QuotaFilter {
            exact: BTreeMap::new(),
            present: Vec::new(),
            strict: req.strict,
        };
        for c in &req.components {
            let t = c.entity_type.to_string();
            if ![USER, CLIENT_ID, IP].contains(&t.as_str()) {
                return Err(format!("unknown entity type '{t}'"));
            }
            if f.exact.contains_key(&t) || f.present.contains(&t) {
                return Err(format!(
                    "entity type '{t}' cannot appear more than once in the filter"
                ));
            }
            match (c.match_type, &c._match) {
                (0, Some(m)) => {
                    f.exact.insert(t, Some(m.to_string()));
                }
                (0, None) => return Err(format!("an exact match on '{t}' needs a name")),
                (1, _) => {
                    f.exact.insert(t, None);
                }
                (2, _) => f.present.push(t),
                (m, _) => return Err(format!("unknown match type {m}")),
            }
        }
        Ok(f)
    }

    fn matches(&self, e: &QuotaEntity) -> bool {
        let parts = parts(e);
        if self.strict && parts.len() != self.exact.len() + self.present.len() {
            return false;
        }
        let get = |t: &str| parts.iter().find(|(pt, _)| *pt == t).map(|(_, n)| *n);
        self.exact
            .iter()
            .all(|(t, name)| get(t).is_some_and(|n| n == name.as_deref()))
            && self.present.iter().all(|t| get(t).is_some())
    }
}

/// An AlterClientQuotas entity, checked.
fn entity(
    parts: &[alter_client_quotas_request::EntityData],
) -> Result<QuotaEntity, (ResponseError, String)> {
    let invalid = |m: String| (ResponseError::InvalidRequest, m);
    let mut e = QuotaEntity {
        user: None,
        client_id: None,
    };
    for p in parts {
        let name = match &p.entity_name {
            None => QuotaName::Default,
            Some(n) => QuotaName::Named(n.to_string()),
        };
        let slot = match p.entity_type.as_str() {
            USER => &mut e.user,
            CLIENT_ID => &mut e.client_id,
            IP => return Err(invalid("quotas on ip entities are not supported".into())),
            t => return Err(invalid(format!("unknown entity type '{t}'"))),
        };
        if slot.is_some() {
            return Err(invalid(format!(
                "entity type '{}' appears more than once",
                p.entity_type.as_str()
            )));
        }
        *slot = Some(name);
    }
    if e.user.is_none() && e.client_id.is_none() {
        return Err(invalid("the entity is empty".into()));
    }
    Ok(e)
}

/// What to set and remove, checked: known keys, and positive values (whole numbers for byte
/// rates).
type Ops = (BTreeMap<String, f64>, Vec<String>);

fn ops(ops: &[alter_client_quotas_request::OpData]) -> Result<Ops, String> {
    let mut set = BTreeMap::new();
    let mut remove = Vec::new();
    for o in ops {
        let key = o.key.to_string();
        if !KEYS.contains(&key.as_str()) {
            return Err(format!(
                "unknown or unsupported quota key '{key}' (supported: {})",
                KEYS.join(", ")
            ));
        }
        if o.remove {
            remove.push(key);
            continue;
        }
        let v = o.value;
        if !v.is_finite() || v <= 0.0 {
            return Err(format!("{key} must be a positive number, not {v}"));
        }
        if key != "request_percentage" && v.fract() != 0.0 {
            return Err(format!("{key} must be a whole number of bytes, not {v}"));
        }
        set.insert(key, v);
    }
    Ok((set, remove))
}

fn describe_entry(q: &ClientQuota) -> EntryData {
    let mut entry = EntryData::default();
    entry.entity = parts(&q.entity)
        .into_iter()
        .map(|(t, n)| {
            let mut e = EntityData::default();
            e.entity_type = StrBytes::from_static_str(t);
            e.entity_name = n.map(|n| StrBytes::from_string(n.to_string()));
            e
        })
        .collect();
    entry.values = q
        .values
        .iter()
        .map(|(k, v)| {
            let mut d = ValueData::default();
            d.key = StrBytes::from_string(k.clone());
            d.value = *v;
            d
        })
        .collect();
    entry
}

impl Handler {
    pub(super) fn describe_client_quotas(
        &self,
        req: DescribeClientQuotasRequest,
    ) -> DescribeClientQuotasResponse {
        let mut resp = DescribeClientQuotasResponse::default();
        if !self.cluster_allowed(op::DESCRIBE_CONFIGS) {
            (resp.error_code, resp.error_message) = code_and_message(
                ResponseError::ClusterAuthorizationFailed,
                "not authorized to describe client quotas",
            );
            return resp;
        }
        let filter = match QuotaFilter::parse(&req) {
            Ok(f) => f,
            Err(msg) => {
                (resp.error_code, resp.error_message) =
                    code_and_message(ResponseError::InvalidRequest, msg);
                return resp;
            }
        };
        resp.error_message = None;
        resp.entries = Some(self.catalog.with_quotas(|quotas| {
            quotas
                .iter()
                .filter(|q| filter.matches(&q.entity))
                .map(describe_entry)
                .collect()
        }));
        resp
    }

    pub(super) fn alter_client_quotas(self: &Arc<Self>, req: AlterClientQuotasRequest) -> Pending {
        let allowed = self.cluster_allowed(op::ALTER_CONFIGS);
        let checked: Vec<_> = req
            .entries
            .iter()
            .map(|e| {
                if !allowed {
                    return Err((
                        ResponseError::ClusterAuthorizationFailed,
                        "not authorized to alter client quotas".to_string(),
                    ));
                }
                let entity = entity(&e.entity)?;
                let (set, remove) = ops(&e.ops).map_err(|m| (ResponseError::InvalidRequest, m))?;
                Ok((entity, set, remove))
            })
            .collect();
        let answer = move |results: Vec<Result<(), (ResponseError, String)>>| {
            let mut resp = AlterClientQuotasResponse::default();
            resp.entries = req
                .entries
                .iter()
                .zip(results)
                .map(|(e, r)| {
                    let mut out = alter_client_quotas_response::EntryData::default();
                    out.entity = e
                        .entity
                        .iter()
                        .map(|p| {
                            let mut d = alter_client_quotas_response::EntityData::default();
                            d.entity_type = p.entity_type.clone();
                            d.entity_name = p.entity_name.clone();
                            d
                        })
                        .collect();
                    out.error_message = None;
                    if let Err((code, msg)) = r {
                        (out.error_code, out.error_message) = code_and_message(code, msg);
                    }
                    out
                })
                .collect();
            super::Reply::Send(Response::AlterClientQuotas(resp))
        };
        let valid: Vec<_> = checked.iter().filter_map(|c| c.clone().ok()).collect();
        if req.validate_only || valid.is_empty() {
            let results = checked.into_iter().map(|c| c.map(|_| ())).collect();
            return Box::pin(std::future::ready(answer(results)));
        }
        let me = self.clone();
        Box::pin(async move {
            let stored = me.catalog.alter_quotas(valid.clone()).await;
            let mut stored = match stored {
                Ok(each) => each.into_iter(),
                Err(e) => {
                    let code = catalog_error(&e);
                    let results = checked
                        .into_iter()
                        .map(|c| c.and(Err((code, e.to_string()))))
                        .collect();
                    return answer(results);
                }
            };
            let mut applied = valid.iter();
            let results = checked
                .into_iter()
                .map(|c| {
                    c?;
                    let entity = applied.next().map(|(e, _, _)| e);
                    match stored.next() {
                        Some(Ok(())) => {
                            tracing::info!(entity = ?entity, "client quota altered");
                            Ok(())
                        }
                        Some(Err(e)) => Err((catalog_error(&e), e.to_string())),
                        None => Err((ResponseError::UnknownServerError, "not applied".into())),
                    }
                })
                .collect();
            answer(results)
        })
    }
}
