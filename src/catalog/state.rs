//! What the catalog holds and the changes it accepts: the cluster id, the topics (name, topic
//! id, partition count, config overrides and each partition's leader epoch) and the dynamic
//! broker configs; changes that either apply whole to the latest state or fail with the reason.
//! Every store ([`super::store::CatalogStore`]) applies them with these same rules, so a change
//! decided against a stale view can never overwrite a newer one.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    #[error("{0}")]
    InvalidTopic(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{0}")]
    InvalidRequest(String),
    /// The principal may not do this to the topic (checked before the catalog is asked).
    #[error("not authorized to access topic '{0}'")]
    TopicNotAuthorized(String),
    #[error("user '{user}' has no {mechanism} credential")]
    UnknownCredential { user: String, mechanism: String },
    /// The state changed since the change was decided; decide again.
    #[error("the catalog changed meanwhile")]
    Conflict,
    /// This node may not use the catalog (a cluster it does not belong to).
    #[error("{0}")]
    Refused(String),
    /// Refused before reaching the catalog: the broker's topic mutation quota (KIP-599) is
    /// used up for this long.
    #[error("the topic mutation quota (topic_mutation_rate) is exceeded; retry in {} ms", .0.as_millis())]
    QuotaExceeded(std::time::Duration),
    #[error("catalog i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("catalog file {path} is unreadable: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    /// Topic-level overrides only; defaults come from the broker config.
    pub configs: BTreeMap<String, String>,
    /// Each partition's leader epoch (a partition not listed, from a catalog written before
    /// epochs were stored, is at 0). An epoch only ever grows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leader_epochs: Vec<i32>,
}

impl TopicMeta {
    pub fn leader_epoch(&self, partition: i32) -> i32 {
        usize::try_from(partition)
            .ok()
            .and_then(|p| self.leader_epochs.get(p))
            .copied()
            .unwrap_or(0)
    }
}

/// The whole catalog (the `catalog.json` document).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CatalogState {
    pub cluster_id: String,
    pub topics: BTreeMap<String, TopicMeta>,
    /// Dynamic broker configs set on this broker's id (AlterConfigs).
    #[serde(default)]
    pub broker_configs: BTreeMap<String, String>,
    /// Dynamic broker configs set on the cluster default (empty resource name).
    #[serde(default)]
    pub broker_default_configs: BTreeMap<String, String>,
    /// SASL users: each user's SCRAM credentials by mechanism (`SCRAM-SHA-256`,
    /// `SCRAM-SHA-512`). Never a password: what SCRAM's server side keeps (RFC 5802).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub users: BTreeMap<String, BTreeMap<String, ScramCredential>>,
    /// ACL bindings, each once, in the order they were created.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acls: Vec<AclBinding>,
    /// Client quotas (`producer_byte_rate`, `consumer_byte_rate`, `request_percentage`) by the
    /// entity they apply to; an entity with no value left is removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quotas: Vec<ClientQuota>,
}

/// A user or client id a quota names: one by name, or the default for all those with no quota
/// of their own.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum QuotaName {
    Default,
    Named(String),
}

/// What a client quota applies to: a user, a client id, or a user's use of one client id
/// (Kafka's quota entities; at least one part is set).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QuotaEntity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<QuotaName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<QuotaName>,
}

/// The quota values set on one entity, by key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClientQuota {
    pub entity: QuotaEntity,
    pub values: BTreeMap<String, f64>,
}

/// One ACL binding, with Kafka's codes for the resource type, pattern type, operation and
/// permission (see `security::acl`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct AclBinding {
    pub resource_type: i8,
    pub name: String,
    pub pattern_type: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission: i8,
}

/// What a server keeps of a SCRAM password (RFC 5802 §3), base64 in the catalog.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: String,
    pub stored_key: String,
    pub server_key: String,
    pub iterations: u32,
}

/// One change, with the precondition that makes it safe to apply to whatever state is latest.
#[derive(Debug, Clone)]
pub enum Change {
    /// Adds a topic; fails if the name (or one that collides with it) is taken.
    CreateTopic(TopicMeta),
    /// Replaces a topic, if it is still exactly `expected`.
    UpdateTopic {
        expected: TopicMeta,
        next: TopicMeta,
    },
    /// Removes a topic, if it still has this id.
    DeleteTopic { name: String, id: Uuid },
    /// Replaces the dynamic broker configs (with `default`, the cluster default's), if they are
    /// still `expected`.
    SetBrokerConfigs {
        default: bool,
        expected: BTreeMap<String, String>,
        next: BTreeMap<String, String>,
    },
    /// Adds ACL bindings (one already present is left as it is).
    CreateAcls(Vec<AclBinding>),
    /// Removes these ACL bindings (those already gone are ignored).
    DeleteAcls(Vec<AclBinding>),
    /// Sets and removes quota values of one entity (removing a value that is not set is not
    /// an error); an entity left with no value is dropped.
    AlterQuota {
        entity: QuotaEntity,
        set: BTreeMap<String, f64>,
        remove: Vec<String>,
    },
    /// Sets (or with `None` deletes, if present) one SCRAM credential of a user.
    SetScramCredential {
        user: String,
        mechanism: String,
        credential: Option<ScramCredential>,
    },
}

impl CatalogState {
    pub fn new(cluster_id: String) -> CatalogState {
        CatalogState {
            cluster_id,
            topics: BTreeMap::new(),
            broker_configs: BTreeMap::new(),
            broker_default_configs: BTreeMap::new(),
            users: BTreeMap::new(),
            acls: Vec::new(),
            quotas: Vec::new(),
        }
    }

    /// Applies `change` if its precondition holds.
    pub fn apply(&mut self, change: Change) -> Result<(), CatalogError> {
        match change {
            Change::CreateTopic(meta) => {
                self.check_name_free(&meta.name)?;
                self.topics.insert(meta.name.clone(), meta);
            }
            Change::UpdateTopic { expected, next } => {
                match self.topics.get(&expected.name) {
                    None => return Err(CatalogError::UnknownTopic(expected.name)),
                    Some(current) if *current != expected => return Err(CatalogError::Conflict),
                    Some(_) => {}
                }
                self.topics.insert(next.name.clone(), next);
            }
            Change::DeleteTopic { name, id } => match self.topics.get(&name) {
                Some(t) if t.id == id => {
                    self.topics.remove(&name);
                }
                _ => return Err(CatalogError::UnknownTopic(name)),
            },
            Change::SetBrokerConfigs {
                default,
                expected,
                next,
            } => {
                let current = if default {
                    &mut self.broker_default_configs
                } else {
                    &mut self.broker_configs
                };
                if *current != expected {
                    return Err(CatalogError::Conflict);
                }
                *current = next;
            }
            Change::CreateAcls(bindings) => {
                for b in bindings {
                    if !self.acls.contains(&b) {
                        self.acls.push(b);
                    }
                }
            }
            Change::DeleteAcls(bindings) => self.acls.retain(|b| !bindings.contains(b)),
            Change::AlterQuota {
                entity,
                set,
                remove,
            } => {
                let at = match self.quotas.iter().position(|q| q.entity == entity) {
                    Some(i) => i,
                    None => {
                        self.quotas.push(ClientQuota {
                            entity,
                            values: BTreeMap::new(),
                        });
                        self.quotas.len() - 1
                    }
                };
                let values = &mut self.quotas[at].values;
                for key in remove {
                    values.remove(&key);
                }
                values.extend(set);
                if values.is_empty() {
                    self.quotas.remove(at);
                }
            }
            Change::SetScramCredential {
                user,
                mechanism,
                credential: Some(c),
            } => {
                self.users.entry(user).or_default().insert(mechanism, c);
            }
            Change::SetScramCredential {
                user,
                mechanism,
                credential: None,
            } => {
                let creds = self.users.get_mut(&user);
                if creds.and_then(|c| c.remove(&mechanism)).is_none() {
                    return Err(CatalogError::UnknownCredential { user, mechanism });
                }
                if self.users.get(&user).is_some_and(BTreeMap::is_empty) {
                    self.users.remove(&user);
                }
            }
        }
        Ok(())
    }

    /// A new topic's name is free: not taken, and not equal to a topic's name with '.' and '_'
    /// swapped (they collide in metric names, as Kafka says).
    pub fn check_name_free(&self, name: &str) -> Result<(), CatalogError> {
        if self.topics.contains_key(name) {
            return Err(CatalogError::TopicExists(name.to_string()));
        }
        let collides = |a: &str| a.replace('.', "_");
        if let Some(other) = self.topics.keys().find(|t| collides(t) == collides(name)) {
            return Err(CatalogError::InvalidTopic(format!(
                "topic '{name}' collides with existing topic '{other}' ('.' and '_' are equivalent in metric names)"
            )));
        }
        Ok(())
    }
}

/// A cluster id in Kafka's form: a random UUID as 22 characters of URL-safe base64.
pub fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bits = Uuid::new_v4().as_u128();
    (0..22)
        .map(|i| ALPHABET[((bits >> (i * 6)) & 63) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn acl_bindings_are_kept_once_and_removed_exactly() {
        let b = |name: &str| AclBinding {
            resource_type: 2,
            name: name.into(),
            pattern_type: 3,
            principal: "User:a".into(),
            host: "*".into(),
            operation: 3,
            permission: 3,
        };
        let mut s = CatalogState::new("c".into());
        let create = Change::CreateAcls(vec![b("x"), b("y"), b("x")]);
        s.apply(create).expect("create");
        assert_eq!(s.acls, vec![b("x"), b("y")]);
        s.apply(Change::CreateAcls(vec![b("y")])).expect("again");
        assert_eq!(s.acls.len(), 2);
        s.apply(Change::DeleteAcls(vec![b("x"), b("z")]))
            .expect("delete");
        assert_eq!(s.acls, vec![b("y")]);
        let json = serde_json::to_string(&s).expect("json");
        let back: CatalogState = serde_json::from_str(&json).expect("parse");
        assert_eq!(back.acls, s.acls);
    }

    #[test]
    fn quota_values_are_set_removed_and_dropped_with_the_last() {
        let alice = QuotaEntity {
            user: Some(QuotaName::Named("alice".into())),
            client_id: None,
        };
        let defaults = QuotaEntity {
            user: Some(QuotaName::Default),
            client_id: Some(QuotaName::Default),
        };
        let alter =
            |entity: &QuotaEntity, set: &[(&str, f64)], remove: &[&str]| Change::AlterQuota {
                entity: entity.clone(),
                set: set.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
                remove: remove.iter().map(|k| k.to_string()).collect(),
            };
        let mut s = CatalogState::new("c".into());
        s.apply(alter(&alice, &[("producer_byte_rate", 1024.0)], &[]))
            .expect("set");
        s.apply(alter(&defaults, &[("request_percentage", 50.0)], &["x"]))
            .expect("set default");
        s.apply(alter(
            &alice,
            &[("consumer_byte_rate", 2048.0)],
            &["producer_byte_rate"],
        ))
        .expect("replace");
        assert_eq!(s.quotas.len(), 2);
        assert_eq!(s.quotas[0].entity, alice);
        assert_eq!(
            s.quotas[0].values.keys().collect::<Vec<_>>(),
            ["consumer_byte_rate"]
        );
        let json = serde_json::to_string(&s).expect("json");
        let back: CatalogState = serde_json::from_str(&json).expect("parse");
        assert_eq!(back.quotas, s.quotas);
        s.apply(alter(&alice, &[], &["consumer_byte_rate"]))
            .expect("remove");
        assert_eq!(s.quotas.len(), 1, "alice's entity went with its last value");
        assert_eq!(s.quotas[0].entity, defaults);
    }

    use super::*;

    fn topic(name: &str, partitions: i32) -> TopicMeta {
        TopicMeta {
            name: name.into(),
            id: Uuid::new_v4(),
            partitions,
            configs: BTreeMap::new(),
            leader_epochs: vec![0; partitions as usize],
        }
    }

    #[test]
    fn changes_apply_only_to_the_state_they_were_decided_on() {
        let mut s = CatalogState::new(new_cluster_id());
        let t = topic("a.b", 2);
        s.apply(Change::CreateTopic(t.clone())).expect("create");
        assert!(matches!(
            s.apply(Change::CreateTopic(topic("a.b", 1))),
            Err(CatalogError::TopicExists(_))
        ));
        assert!(matches!(
            s.apply(Change::CreateTopic(topic("a_b", 1))),
            Err(CatalogError::InvalidTopic(_))
        ));
        let mut grown = t.clone();
        grown.partitions = 3;
        s.apply(Change::UpdateTopic {
            expected: t.clone(),
            next: grown.clone(),
        })
        .expect("update");
        assert!(
            matches!(
                s.apply(Change::UpdateTopic {
                    expected: t.clone(),
                    next: t.clone(),
                }),
                Err(CatalogError::Conflict)
            ),
            "a change decided on the old topic is refused"
        );
        assert!(matches!(
            s.apply(Change::DeleteTopic {
                name: "a.b".into(),
                id: Uuid::new_v4(),
            }),
            Err(CatalogError::UnknownTopic(_))
        ));
        s.apply(Change::DeleteTopic {
            name: "a.b".into(),
            id: t.id,
        })
        .expect("delete");
        assert!(s.topics.is_empty());
        let mut next = BTreeMap::new();
        next.insert("log.retention.ms".to_string(), "5".to_string());
        s.apply(Change::SetBrokerConfigs {
            default: true,
            expected: BTreeMap::new(),
            next: next.clone(),
        })
        .expect("set");
        assert!(matches!(
            s.apply(Change::SetBrokerConfigs {
                default: true,
                expected: BTreeMap::new(),
                next,
            }),
            Err(CatalogError::Conflict)
        ));
        assert_eq!(grown.leader_epoch(2), 0);
        assert_eq!(grown.leader_epoch(-1), 0);
    }
}
