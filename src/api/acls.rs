//! CreateAcls, DescribeAcls and DeleteAcls (v1–3): ACL bindings kept in the catalog (the file
//! alone, etcd in a cluster). Without an authorizer they answer SECURITY_DISABLED, as Kafka
//! does; creating and deleting needs ALTER on the cluster, describing DESCRIBE.

use super::errors::{catalog_error, code_and_message};
use super::{ready, Handler, Pending};
use crate::catalog::{AclBinding, Change};
use crate::protocol::Response;
use crate::security::acl::{check_binding, op, Filter};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

fn delete_filter(f: &DeleteAclsFilter) -> Filter {
    Filter {
        resource_type: f.resource_type_filter,
        name: f.resource_name_filter.as_ref().map(|n| n.to_string()),
        pattern_type: f.pattern_type_filter,
        principal: f.principal_filter.as_ref().map(|n| n.to_string()),
        host: f.host_filter.as_ref().map(|n| n.to_string()),
        operation: f.operation,
        permission: f.permission_type,
    }
}

impl Handler {
    /// Why an ACL request is refused as a whole: no authorizer, or not allowed `o` on the
    /// cluster.
    fn acl_refusal(&self, o: i8) -> Option<(ResponseError, &'static str)> {
        if self.acl.is_none() {
            return Some((
                ResponseError::SecurityDisabled,
                "no authorizer is configured (authorizer = acl)",
            ));
        }
        (!self.cluster_allowed(o)).then_some((
            ResponseError::ClusterAuthorizationFailed,
            "not authorized on the cluster",
        ))
    }

    pub(super) fn create_acls(self: &Arc<Self>, req: CreateAclsRequest) -> Pending {
        let mut resp = CreateAclsResponse::default();
        if let Some((e, msg)) = self.acl_refusal(op::ALTER) {
            resp.results = req
                .creations
                .iter()
                .map(|_| {
                    let mut r = AclCreationResult::default();
                    (r.error_code, r.error_message) = code_and_message(e, msg);
                    r
                })
                .collect();
            return ready(Response::CreateAcls(resp));
        }
        let checked: Vec<Result<AclBinding, String>> = req
            .creations
            .into_iter()
            .map(|c| {
                let b = AclBinding {
                    resource_type: c.resource_type,
                    name: c.resource_name.to_string(),
                    pattern_type: c.resource_pattern_type,
                    principal: c.principal.to_string(),
                    host: c.host.to_string(),
                    operation: c.operation,
                    permission: c.permission_type,
                };
                check_binding(&b).map(|()| b)
            })
            .collect();
        let me = self.clone();
        Box::pin(async move {
            let valid: Vec<AclBinding> = checked.iter().filter_map(|c| c.clone().ok()).collect();
            let stored = if valid.is_empty() {
                Ok(())
            } else {
                me.catalog.change_acls(Change::CreateAcls(valid)).await
            };
            let mut resp = CreateAclsResponse::default();
            resp.results = checked
                .into_iter()
                .map(|c| {
                    let mut r = AclCreationResult::default();
                    match (c, &stored) {
                        (Err(msg), _) => {
                            (r.error_code, r.error_message) =
                                code_and_message(ResponseError::InvalidRequest, msg)
                        }
                        (Ok(_), Err(e)) => {
                            (r.error_code, r.error_message) = code_and_message(catalog_error(e), e)
                        }
                        (Ok(b), Ok(())) => {
                            tracing::info!(principal = %b.principal, resource = %b.name, "ACL created")
                        }
                    }
                    r
                })
                .collect();
            super::Reply::Send(Response::CreateAcls(resp))
        })
    }

    pub(super) fn describe_acls(&self, req: DescribeAclsRequest) -> DescribeAclsResponse {
        let mut resp = DescribeAclsResponse::default();
        if let Some((e, msg)) = self.acl_refusal(op::DESCRIBE) {
            (resp.error_code, resp.error_message) = code_and_message(e, msg);
            return resp;
        }
        let filter = Filter {
            resource_type: req.resource_type_filter,
            name: req.resource_name_filter.map(|n| n.to_string()),
            pattern_type: req.pattern_type_filter,
            principal: req.principal_filter.map(|n| n.to_string()),
            host: req.host_filter.map(|n| n.to_string()),
            operation: req.operation,
            permission: req.permission_type,
        };
        if let Err(msg) = filter.check() {
            (resp.error_code, resp.error_message) =
                code_and_message(ResponseError::InvalidRequest, msg);
            return resp;
        }
        self.catalog.with_acls(|bindings| {
            for b in bindings.iter().filter(|b| filter.matches(b)) {
                let mut d = AclDescription::default();
                d.principal = StrBytes::from_string(b.principal.clone());
                d.host = StrBytes::from_string(b.host.clone());
                d.operation = b.operation;
                d.permission_type = b.permission;
                let same = |r: &DescribeAclsResource| {
                    r.resource_type == b.resource_type
                        && r.pattern_type == b.pattern_type
                        && r.resource_name.as_str() == b.name
                };
                match resp.resources.iter_mut().find(|r| same(r)) {
                    Some(r) => r.acls.push(d),
                    None => {
                        let mut r = DescribeAclsResource::default();
                        r.resource_type = b.resource_type;
                        r.resource_name = StrBytes::from_string(b.name.clone());
                        r.pattern_type = b.pattern_type;
                        r.acls.push(d);
                        resp.resources.push(r);
                    }
                }
            }
        });
        resp
    }

    pub(super) fn delete_acls(self: &Arc<Self>, req: DeleteAclsRequest) -> Pending {
        let mut resp = DeleteAclsResponse::default();
        if let Some((e, msg)) = self.acl_refusal(op::ALTER) {
            resp.filter_results = req
                .filters
                .iter()
                .map(|_| {
                    let mut r = DeleteAclsFilterResult::default();
                    (r.error_code, r.error_message) = code_and_message(e, msg);
                    r
                })
                .collect();
            return ready(Response::DeleteAcls(resp));
        }
        let filters: Vec<Filter> = req.filters.iter().map(delete_filter).collect();
        let me = self.clone();
        Box::pin(async move {
            let bindings = me.catalog.acls();
            let matched: Vec<Result<Vec<AclBinding>, String>> = filters
                .iter()
                .map(|f| {
                    f.check()
                        .map(|()| bindings.iter().filter(|b| f.matches(b)).cloned().collect())
                })
                .collect();
            let gone: Vec<AclBinding> = matched
                .iter()
                .filter_map(|m| m.as_ref().ok())
                .flatten()
                .cloned()
                .collect();
            let stored = if gone.is_empty() {
                Ok(())
            } else {
                me.catalog.change_acls(Change::DeleteAcls(gone)).await
            };
            let mut resp = DeleteAclsResponse::default();
            resp.filter_results = matched
                .into_iter()
                .map(|m| {
                    let mut r = DeleteAclsFilterResult::default();
                    match (m, &stored) {
                        (Err(msg), _) => {
                            (r.error_code, r.error_message) =
                                code_and_message(ResponseError::InvalidRequest, msg)
                        }
                        (Ok(_), Err(e)) => {
                            (r.error_code, r.error_message) = code_and_message(catalog_error(e), e)
                        }
                        (Ok(list), Ok(())) => {
                            r.matching_acls = list
                                .into_iter()
                                .map(|b| {
                                    let mut m = DeleteAclsMatchingAcl::default();
                                    m.resource_type = b.resource_type;
                                    m.resource_name = StrBytes::from_string(b.name);
                                    m.pattern_type = b.pattern_type;
                                    m.principal = StrBytes::from_string(b.principal);
                                    m.host = StrBytes::from_string(b.host);
                                    m.operation = b.operation;
                                    m.permission_type = b.permission;
                                    m
                                })
                                .collect();
                        }
                    }
                    r
                })
                .collect();
            super::Reply::Send(Response::DeleteAcls(resp))
        })
    }
}
