//! Kafka's authorizer semantics over ACL bindings: which bindings match a resource (LITERAL
//! names, the `*` wildcard, PREFIXED patterns), DENY over ALLOW, the operations READ, WRITE,
//! DELETE and ALTER implying DESCRIBE and ALTER_CONFIGS implying DESCRIBE_CONFIGS, super users,
//! `allow_everyone_if_no_acl_found`, and the binding filters of DescribeAcls and DeleteAcls
//! (ANY and MATCH). The bindings themselves are kept in the catalog.

use crate::catalog::AclBinding;

/// Kafka's `ResourceType` codes.
pub mod resource {
    pub const ANY: i8 = 1;
    pub const TOPIC: i8 = 2;
    pub const GROUP: i8 = 3;
    pub const CLUSTER: i8 = 4;
    pub const TRANSACTIONAL_ID: i8 = 5;
    pub const DELEGATION_TOKEN: i8 = 6;
    pub const USER: i8 = 7;
}

/// Kafka's `PatternType` codes.
pub mod pattern {
    pub const ANY: i8 = 1;
    pub const MATCH: i8 = 2;
    pub const LITERAL: i8 = 3;
    pub const PREFIXED: i8 = 4;
}

/// Kafka's `AclOperation` codes.
pub mod op {
    pub const ANY: i8 = 1;
    pub const ALL: i8 = 2;
    pub const READ: i8 = 3;
    pub const WRITE: i8 = 4;
    pub const CREATE: i8 = 5;
    pub const DELETE: i8 = 6;
    pub const ALTER: i8 = 7;
    pub const DESCRIBE: i8 = 8;
    pub const CLUSTER_ACTION: i8 = 9;
    pub const DESCRIBE_CONFIGS: i8 = 10;
    pub const ALTER_CONFIGS: i8 = 11;
    pub const IDEMPOTENT_WRITE: i8 = 12;
    pub const CREATE_TOKENS: i8 = 13;
    pub const DESCRIBE_TOKENS: i8 = 14;
}

/// Kafka's `AclPermissionType` codes.
pub mod permission {
    pub const ANY: i8 = 1;
    pub const DENY: i8 = 2;
    pub const ALLOW: i8 = 3;
}

/// The literal resource name that matches every name.
pub const WILDCARD: &str = "*";
/// The principal and host that match every principal and host.
pub const WILDCARD_PRINCIPAL: &str = "User:*";

/// The operations a resource type has, in Kafka's order (for KIP-430 authorized operations).
pub fn operations_of(resource_type: i8) -> &'static [i8] {
    use op::*;
    match resource_type {
        resource::TOPIC => &[
            READ,
            WRITE,
            CREATE,
            DELETE,
            ALTER,
            DESCRIBE,
            DESCRIBE_CONFIGS,
            ALTER_CONFIGS,
        ],
        resource::GROUP => &[READ, DELETE, DESCRIBE],
        resource::CLUSTER => &[
            CREATE,
            CLUSTER_ACTION,
            DESCRIBE_CONFIGS,
            ALTER_CONFIGS,
            IDEMPOTENT_WRITE,
            ALTER,
            DESCRIBE,
        ],
        resource::TRANSACTIONAL_ID => &[DESCRIBE, WRITE],
        resource::DELEGATION_TOKEN => &[DESCRIBE],
        resource::USER => &[CREATE_TOKENS, DESCRIBE_TOKENS],
        _ => &[],
    }
}

/// `authorizer = acl`.
#[derive(Debug, Clone)]
pub struct AclSettings {
    pub super_users: Vec<String>,
    pub allow_if_no_acl: bool,
}

impl AclSettings {
    /// From the config: `None` when there is no authorizer.
    pub fn from_config(c: &crate::config::Config) -> Option<AclSettings> {
        (c.authorizer == "acl").then(|| AclSettings {
            super_users: c
                .super_users
                .split(';')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
            allow_if_no_acl: c.allow_everyone_if_no_acl_found,
        })
    }
}

/// A binding that is acceptable to store: a concrete resource type, pattern, operation and
/// permission, a `Type:name` principal, and a name the pattern allows (`Err`: why not).
pub fn check_binding(b: &AclBinding) -> Result<(), String> {
    if !(resource::TOPIC..=resource::USER).contains(&b.resource_type) {
        return Err("a binding needs a concrete resource type".into());
    }
    if b.pattern_type != pattern::LITERAL && b.pattern_type != pattern::PREFIXED {
        return Err("a binding's pattern type is LITERAL or PREFIXED".into());
    }
    if !(op::ALL..=op::DESCRIBE_TOKENS).contains(&b.operation) {
        return Err("a binding needs a concrete operation".into());
    }
    if b.permission != permission::ALLOW && b.permission != permission::DENY {
        return Err("a binding's permission is ALLOW or DENY".into());
    }
    if b.operation != op::ALL && !operations_of(b.resource_type).contains(&b.operation) {
        return Err("the operation does not apply to the resource type".into());
    }
    match b.principal.split_once(':') {
        Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
        _ => return Err(format!("principal `{}` is not Type:name", b.principal)),
    }
    if b.host.is_empty() {
        return Err("a binding needs a host (or *)".into());
    }
    if b.name.is_empty() {
        return Err("a binding needs a resource name".into());
    }
    if b.resource_type == resource::CLUSTER && b.name != "kafka-cluster" {
        return Err("the cluster resource is named kafka-cluster".into());
    }
    if b.pattern_type == pattern::PREFIXED && b.name == WILDCARD {
        return Err("a PREFIXED pattern cannot be the wildcard".into());
    }
    Ok(())
}

/// Whether binding `b`'s pattern covers resource `name` of `resource_type`.
fn covers(b: &AclBinding, resource_type: i8, name: &str) -> bool {
    b.resource_type == resource_type
        && match b.pattern_type {
            pattern::LITERAL => b.name == name || b.name == WILDCARD,
            pattern::PREFIXED => name.starts_with(b.name.as_str()),
            _ => false,
        }
}

fn principal_matches(b: &AclBinding, principal: &str) -> bool {
    b.principal == principal || b.principal == WILDCARD_PRINCIPAL
}

fn host_matches(b: &AclBinding, host: &str) -> bool {
    b.host == WILDCARD || b.host == host
}

/// The operations an ALLOW binding for `acl_op` grants beyond itself.
fn allow_grants(acl_op: i8, wanted: i8) -> bool {
    acl_op == op::ALL
        || acl_op == wanted
        || (wanted == op::DESCRIBE
            && matches!(acl_op, op::READ | op::WRITE | op::DELETE | op::ALTER))
        || (wanted == op::DESCRIBE_CONFIGS && acl_op == op::ALTER_CONFIGS)
}

/// Who may do what: the bindings and the authorizer's settings.
pub struct Authorizer<'a> {
    pub bindings: &'a [AclBinding],
    pub super_users: &'a [String],
    pub allow_if_no_acl: bool,
}

impl Authorizer<'_> {
    /// Whether `principal` connected from `host` may do `operation` on resource `name` of
    /// `resource_type`, as Kafka's authorizer decides.
    pub fn allows(
        &self,
        principal: &str,
        host: &str,
        operation: i8,
        resource_type: i8,
        name: &str,
    ) -> bool {
        if self.super_users.iter().any(|s| s == principal) {
            return true;
        }
        let mut any_on_resource = false;
        let mut allowed = false;
        for b in self
            .bindings
            .iter()
            .filter(|b| covers(b, resource_type, name))
        {
            any_on_resource = true;
            if !principal_matches(b, principal) || !host_matches(b, host) {
                continue;
            }
            match b.permission {
                permission::DENY if b.operation == op::ALL || b.operation == operation => {
                    return false;
                }
                permission::ALLOW if allow_grants(b.operation, operation) => allowed = true,
                _ => {}
            }
        }
        allowed || (!any_on_resource && self.allow_if_no_acl)
    }

    /// Whether `principal` may do `operation` on some resource of `resource_type` (Kafka's
    /// `authorizeByResourceType`: IDEMPOTENT_WRITE through WRITE on any topic): an ALLOW
    /// binding for it that no DENY on every such resource cancels.
    pub fn allows_any(
        &self,
        principal: &str,
        host: &str,
        operation: i8,
        resource_type: i8,
    ) -> bool {
        if self.super_users.iter().any(|s| s == principal) {
            return true;
        }
        let relevant = |b: &&AclBinding| {
            b.resource_type == resource_type
                && principal_matches(b, principal)
                && host_matches(b, host)
        };
        let denied_everywhere = self.bindings.iter().filter(relevant).any(|b| {
            b.permission == permission::DENY
                && (b.operation == op::ALL || b.operation == operation)
                && b.pattern_type == pattern::LITERAL
                && b.name == WILDCARD
        });
        if denied_everywhere {
            return false;
        }
        let allowed = self.bindings.iter().filter(relevant).any(|b| {
            b.permission == permission::ALLOW
                && (b.operation == op::ALL || b.operation == operation)
        });
        allowed
            || (self.allow_if_no_acl
                && !self
                    .bindings
                    .iter()
                    .any(|b| b.resource_type == resource_type))
    }
}

/// A DescribeAcls or DeleteAcls filter.
#[derive(Debug, Clone)]
pub struct Filter {
    pub resource_type: i8,
    pub name: Option<String>,
    pub pattern_type: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission: i8,
}

impl Filter {
    /// Refusals Kafka gives for a filter (`Err`: the message for INVALID_REQUEST).
    pub fn check(&self) -> Result<(), String> {
        if !(resource::ANY..=resource::USER).contains(&self.resource_type) {
            return Err("unknown resource type in the filter".into());
        }
        if !(pattern::ANY..=pattern::PREFIXED).contains(&self.pattern_type) {
            return Err("unknown pattern type in the filter".into());
        }
        if !(op::ANY..=op::DESCRIBE_TOKENS).contains(&self.operation) {
            return Err("unknown operation in the filter".into());
        }
        if !(permission::ANY..=permission::ALLOW).contains(&self.permission) {
            return Err("unknown permission type in the filter".into());
        }
        Ok(())
    }

    pub fn matches(&self, b: &AclBinding) -> bool {
        let resource = self.resource_type == resource::ANY || self.resource_type == b.resource_type;
        let pattern = match (self.pattern_type, &self.name) {
            (pattern::ANY, None) | (pattern::MATCH, None) => true,
            (pattern::ANY, Some(n)) => b.name == *n,
            (pattern::MATCH, Some(n)) => match b.pattern_type {
                pattern::LITERAL => b.name == *n || b.name == WILDCARD,
                pattern::PREFIXED => n.starts_with(b.name.as_str()),
                _ => false,
            },
            (p, n) => b.pattern_type == p && n.as_ref().is_none_or(|n| b.name == *n),
        };
        resource
            && pattern
            && self.principal.as_ref().is_none_or(|p| b.principal == *p)
            && self.host.as_ref().is_none_or(|h| b.host == *h)
            && (self.operation == op::ANY || self.operation == b.operation)
            && (self.permission == permission::ANY || self.permission == b.permission)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(rt: i8, name: &str, pt: i8, principal: &str, host: &str, o: i8, perm: i8) -> AclBinding {
        AclBinding {
            resource_type: rt,
            name: name.into(),
            pattern_type: pt,
            principal: principal.into(),
            host: host.into(),
            operation: o,
            permission: perm,
        }
    }

    use pattern::{LITERAL, PREFIXED};
    use permission::{ALLOW, DENY};
    use resource::{CLUSTER, GROUP, TOPIC};

    #[test]
    fn kafka_authorizer_decisions() {
        let bindings = vec![
            acl(TOPIC, "orders", LITERAL, "User:alice", "*", op::READ, ALLOW),
            acl(TOPIC, "pay-", PREFIXED, "User:bob", "*", op::WRITE, ALLOW),
            acl(TOPIC, "pay-secret", LITERAL, "User:bob", "*", op::ALL, DENY),
            acl(
                TOPIC,
                "*",
                LITERAL,
                "User:carol",
                "10.0.0.1",
                op::DESCRIBE,
                ALLOW,
            ),
            acl(
                TOPIC,
                "audit",
                LITERAL,
                "User:*",
                "*",
                op::ALTER_CONFIGS,
                ALLOW,
            ),
            acl(GROUP, "g", LITERAL, "User:alice", "*", op::READ, ALLOW),
            acl(TOPIC, "shared", LITERAL, "User:*", "*", op::READ, ALLOW),
            acl(TOPIC, "shared", LITERAL, "User:eve", "*", op::READ, DENY),
        ];
        let supers = vec!["User:admin".to_string()];
        let a = Authorizer {
            bindings: &bindings,
            super_users: &supers,
            allow_if_no_acl: false,
        };
        let cases: &[(&str, &str, i8, i8, &str, bool)] = &[
            ("User:alice", "1.2.3.4", op::READ, TOPIC, "orders", true),
            ("User:alice", "1.2.3.4", op::DESCRIBE, TOPIC, "orders", true), // READ implies DESCRIBE
            ("User:alice", "1.2.3.4", op::WRITE, TOPIC, "orders", false),
            ("User:bob", "h", op::WRITE, TOPIC, "pay-in", true), // prefixed
            ("User:bob", "h", op::DESCRIBE, TOPIC, "pay-in", true), // WRITE implies DESCRIBE
            ("User:bob", "h", op::WRITE, TOPIC, "pay-secret", false), // DENY over ALLOW
            ("User:bob", "h", op::WRITE, TOPIC, "payments", false),
            (
                "User:carol",
                "10.0.0.1",
                op::DESCRIBE,
                TOPIC,
                "anything",
                true,
            ), // wildcard
            (
                "User:carol",
                "10.0.0.2",
                op::DESCRIBE,
                TOPIC,
                "anything",
                false,
            ), // host
            ("User:carol", "10.0.0.1", op::READ, TOPIC, "anything", false),
            ("User:dave", "h", op::DESCRIBE_CONFIGS, TOPIC, "audit", true), // ALTER_CONFIGS implies
            ("User:dave", "h", op::ALTER_CONFIGS, TOPIC, "audit", true),
            ("User:alice", "h", op::READ, GROUP, "g", true),
            ("User:alice", "h", op::DELETE, GROUP, "g", false),
            ("User:zed", "h", op::READ, TOPIC, "shared", true), // User:* principal
            ("User:eve", "h", op::READ, TOPIC, "shared", false),
            ("User:admin", "h", op::ALTER, CLUSTER, "kafka-cluster", true), // super user
            (
                "User:alice",
                "h",
                op::ALTER,
                CLUSTER,
                "kafka-cluster",
                false,
            ), // no ACL, not allowed
        ];
        for (p, h, o, rt, name, want) in cases {
            assert_eq!(
                a.allows(p, h, *o, *rt, name),
                *want,
                "{p} {h} op {o} on {rt}:{name}"
            );
        }
        // allow_everyone_if_no_acl_found: only resources without any binding
        let open = Authorizer {
            allow_if_no_acl: true,
            ..a
        };
        assert!(open.allows("User:x", "h", op::ALTER, CLUSTER, "kafka-cluster"));
        assert!(!open.allows("User:x", "h", op::READ, TOPIC, "orders"));
        // IDEMPOTENT_WRITE through WRITE on any topic
        assert!(a.allows_any("User:bob", "h", op::WRITE, TOPIC));
        assert!(!a.allows_any("User:alice", "h", op::WRITE, TOPIC));
    }

    #[test]
    fn filters_as_describe_and_delete_use_them() {
        let bindings = [
            acl(TOPIC, "orders", LITERAL, "User:alice", "*", op::READ, ALLOW),
            acl(TOPIC, "*", LITERAL, "User:bob", "*", op::READ, ALLOW),
            acl(TOPIC, "ord", PREFIXED, "User:carol", "*", op::WRITE, DENY),
            acl(GROUP, "orders", LITERAL, "User:alice", "*", op::READ, ALLOW),
        ];
        let f = |rt, name: Option<&str>, pt| Filter {
            resource_type: rt,
            name: name.map(str::to_string),
            pattern_type: pt,
            principal: None,
            host: None,
            operation: op::ANY,
            permission: permission::ANY,
        };
        let count = |flt: Filter| bindings.iter().filter(|b| flt.matches(b)).count();
        assert_eq!(count(f(resource::ANY, None, pattern::ANY)), 4);
        assert_eq!(count(f(TOPIC, Some("orders"), pattern::ANY)), 1);
        assert_eq!(count(f(TOPIC, Some("orders"), pattern::MATCH)), 3);
        assert_eq!(count(f(TOPIC, None, PREFIXED)), 1);
        assert_eq!(count(f(resource::ANY, Some("orders"), LITERAL)), 2);
        let mut by_principal = f(resource::ANY, None, pattern::ANY);
        by_principal.principal = Some("User:alice".into());
        assert_eq!(count(by_principal), 2);
    }

    #[test]
    fn bindings_kafka_refuses() {
        let ok = acl(TOPIC, "t", LITERAL, "User:a", "*", op::READ, ALLOW);
        assert!(check_binding(&ok).is_ok());
        for bad in [
            AclBinding {
                resource_type: resource::ANY,
                ..ok.clone()
            },
            AclBinding {
                pattern_type: pattern::MATCH,
                ..ok.clone()
            },
            AclBinding {
                operation: op::ANY,
                ..ok.clone()
            },
            AclBinding {
                permission: permission::ANY,
                ..ok.clone()
            },
            AclBinding {
                principal: "alice".into(),
                ..ok.clone()
            },
            AclBinding {
                operation: op::CLUSTER_ACTION,
                ..ok.clone()
            },
            AclBinding {
                name: "*".into(),
                pattern_type: PREFIXED,
                ..ok.clone()
            },
            AclBinding {
                resource_type: CLUSTER,
                name: "other".into(),
                operation: op::ALTER,
                ..ok.clone()
            },
        ] {
            assert!(check_binding(&bad).is_err(), "{bad:?}");
        }
    }
}
