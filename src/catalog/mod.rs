//! The catalog: cluster id and topics (name, topic id, partition count, config overrides,
//! partition leader epochs) and the dynamic broker configs.
//!
//! [`Catalog`] is the broker's view: it validates requests (topic names, partition counts,
//! replication factors, configs through [`crate::config::topic`]) and turns them into
//! [`Change`]s with preconditions, which a [`CatalogStore`] applies to its latest state and makes
//! durable. Reads come from the store's last committed snapshot and never wait. A change that
//! lost a race (`Conflict`) is decided again on the new state. A node alone keeps it in
//! [`FileCatalog`] (`catalog.json` in the data dir); a node of a cluster in [`EtcdCatalog`].

mod etcd;
#[allow(clippy::disallowed_methods)] // storage: the writer thread and start-up
mod file;
mod state;
mod store;

pub use etcd::{ClusterRecord, EtcdCatalog};
pub use file::FileCatalog;
pub use state::{
    AclBinding, CatalogError, CatalogState, Change, ClientQuota, QuotaEntity, QuotaName,
    ScramCredential, TopicMeta,
};
pub use store::CatalogStore;

use crate::config::topic::{self as topic_config, BrokerDefaults, ConfigEntry, TopicConfigError};
use crate::config::{Config, LogConfig};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::watch;
use uuid::Uuid;

/// Upper bound on partitions per topic: each one is a directory, files and a flusher task.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;
/// Kafka's limit on topic name length.
pub const MAX_TOPIC_NAME_LEN: usize = 249;
/// How often a change that lost a race is decided again before giving up.
const ATTEMPTS: usize = 16;

impl From<TopicConfigError> for CatalogError {
    fn from(e: TopicConfigError) -> Self {
        match e {
            TopicConfigError::Invalid(m) => CatalogError::InvalidConfig(m),
            TopicConfigError::NotDynamic(m) => CatalogError::InvalidRequest(m),
        }
    }
}

/// Cluster mode: the internal topic whose partitions shard the consumer-group coordinators
/// (each partition's leader coordinates the groups hashed to it and keeps their offsets in it).
pub const GROUPS_TOPIC: &str = "__tiercel_groups";

/// Cluster mode: the internal topic whose partitions shard the transaction coordinators (each
/// partition's leader coordinates the transactional ids hashed to it and keeps their log in it).
pub const TXNS_TOPIC: &str = "__tiercel_transactions";

/// Whether clients may not write to, delete, resize or trim `name` (the coordinators' own
/// topics).
pub fn is_coordinator_topic(name: &str) -> bool {
    name == GROUPS_TOPIC || name == TXNS_TOPIC
}

/// A topic to create.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

pub struct Catalog {
    store: Arc<dyn CatalogStore>,
    broker: Config,
    /// Nodes alive in the cluster (1 alone): the highest replication factor accepted.
    live_nodes: std::sync::atomic::AtomicUsize,
}

impl Catalog {
    pub fn new(store: Arc<dyn CatalogStore>, broker: &Config) -> Catalog {
        Catalog {
            store,
            broker: broker.clone(),
            live_nodes: std::sync::atomic::AtomicUsize::new(1),
        }
    }

    /// Sets how many nodes are alive (cluster mode), for replication-factor checks.
    pub fn set_live_nodes(&self, n: usize) {
        self.live_nodes
            .store(n.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    pub fn cluster_id(&self) -> String {
        self.store.state().cluster_id.clone()
    }

    /// The whole catalog as it is now (a snapshot: it never changes under the caller).
    pub fn snapshot(&self) -> Arc<CatalogState> {
        self.store.state()
    }

    pub fn topics(&self) -> Vec<TopicMeta> {
        self.store.state().topics.values().cloned().collect()
    }

    pub fn get(&self, name: &str) -> Option<TopicMeta> {
        self.store.state().topics.get(name).cloned()
    }

    pub fn get_by_id(&self, id: Uuid) -> Option<TopicMeta> {
        self.store
            .state()
            .topics
            .values()
            .find(|t| t.id == id)
            .cloned()
    }

    /// A user's SCRAM credential for `mechanism` (`SCRAM-SHA-256`, `SCRAM-SHA-512`).
    pub fn scram_credential(&self, user: &str, mechanism: &str) -> Option<ScramCredential> {
        self.store.state().users.get(user)?.get(mechanism).cloned()
    }

    /// Every user with each of their credentials' mechanism and iterations.
    pub fn users(&self) -> BTreeMap<String, Vec<(String, u32)>> {
        let state = self.store.state();
        state
            .users
            .iter()
            .map(|(u, creds)| {
                let infos = creds.iter().map(|(m, c)| (m.clone(), c.iterations));
                (u.clone(), infos.collect())
            })
            .collect()
    }

    /// Every ACL binding.
    pub fn acls(&self) -> Vec<AclBinding> {
        self.store.state().acls.clone()
    }

    /// `f` over the ACL bindings, without copying them.
    pub fn with_acls<R>(&self, f: impl FnOnce(&[AclBinding]) -> R) -> R {
        f(&self.store.state().acls)
    }

    /// `f` over the client quotas, without copying them.
    pub fn with_quotas<R>(&self, f: impl FnOnce(&[ClientQuota]) -> R) -> R {
        f(&self.store.state().quotas)
    }

    /// Alters client quotas, durably, in one write: each entity's change as
    /// (entity, values to set, keys to remove).
    pub async fn alter_quotas(
        &self,
        changes: Vec<(QuotaEntity, BTreeMap<String, f64>, Vec<String>)>,
    ) -> Result<Vec<Result<(), CatalogError>>, CatalogError> {
        let changes = changes
            .into_iter()
            .map(|(entity, set, remove)| Change::AlterQuota {
                entity,
                set,
                remove,
            })
            .collect();
        self.store.commit(changes).await
    }

    /// Adds or removes ACL bindings, durably.
    pub async fn change_acls(&self, change: Change) -> Result<(), CatalogError> {
        self.commit_one(change).await
    }

    /// Sets or deletes SCRAM credentials; each change succeeds or fails on its own (deleting
    /// a credential that does not exist fails).
    pub async fn set_scram_credentials(
        &self,
        changes: Vec<(String, String, Option<ScramCredential>)>,
    ) -> Result<Vec<Result<(), CatalogError>>, CatalogError> {
        let changes = changes
            .into_iter()
            .map(|(user, mechanism, credential)| Change::SetScramCredential {
                user,
                mechanism,
                credential,
            })
            .collect();
        self.store.commit(changes).await
    }

    /// Checks a creation request without applying it (also used by validate-only requests).
    pub fn check_new_topic(&self, t: &NewTopic) -> Result<(), CatalogError> {
        validate_topic_name(&t.name)?;
        self.store.state().check_name_free(&t.name)?;
        check_partition_count(t.partitions)?;
        let live = self.live_nodes.load(std::sync::atomic::Ordering::Relaxed);
        let rf = t.replication_factor;
        if rf != -1 && (rf < 1 || rf as usize > live) {
            return Err(CatalogError::InvalidReplicationFactor(format!(
                "unable to replicate the partition {rf} time(s): the target replication factor of {rf} cannot be reached because only {live} broker(s) are registered"
            )));
        }
        topic_config::validate_overrides(&t.configs)?;
        let explicit = t.configs.get("remote.storage.enable").map(String::as_str);
        if explicit == Some("true") && self.log_config_of(&t.configs).cleanup_compact {
            return Err(not_compactable(&t.name));
        }
        Ok(())
    }

    /// Creates topics, all in one durable write; each succeeds or fails on its own.
    pub async fn create_topics(
        &self,
        topics: Vec<NewTopic>,
    ) -> Vec<Result<TopicMeta, CatalogError>> {
        let mut results: Vec<Option<Result<TopicMeta, CatalogError>>> = Vec::new();
        let mut changes = Vec::new();
        let mut waiting = Vec::new();
        for t in topics {
            match self.check_new_topic(&t) {
                Ok(()) => {
                    let meta = TopicMeta {
                        id: Uuid::new_v4(),
                        leader_epochs: vec![0; t.partitions as usize],
                        name: t.name,
                        partitions: t.partitions,
                        configs: t.configs,
                    };
                    waiting.push((results.len(), meta.clone()));
                    changes.push(Change::CreateTopic(meta));
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        if !changes.is_empty() {
            match self.store.commit(changes).await {
                Ok(outcomes) => {
                    for ((i, meta), outcome) in waiting.into_iter().zip(outcomes) {
                        results[i] = Some(outcome.map(|()| meta));
                    }
                }
                Err(e) => {
                    for (i, _) in waiting {
                        results[i] =
                            Some(Err(CatalogError::Io(std::io::Error::other(e.to_string()))));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or(Err(CatalogError::Conflict)))
            .collect()
    }

    /// Creates one topic.
    pub async fn create_topic(&self, t: NewTopic) -> Result<TopicMeta, CatalogError> {
        self.create_topics(vec![t])
            .await
            .pop()
            .unwrap_or(Err(CatalogError::Conflict))
    }

    pub async fn delete_topic(&self, name: &str) -> Result<TopicMeta, CatalogError> {
        let meta = self
            .get(name)
            .ok_or_else(|| CatalogError::UnknownTopic(name.to_string()))?;
        self.commit_one(Change::DeleteTopic {
            name: name.to_string(),
            id: meta.id,
        })
        .await?;
        Ok(meta)
    }

    /// Raises a topic's partition count (validate-only when `apply` is false).
    pub async fn add_partitions(
        &self,
        name: &str,
        count: i32,
        apply: bool,
    ) -> Result<TopicMeta, CatalogError> {
        self.update_topic(name, apply, |meta| {
            if count <= meta.partitions {
                return Err(CatalogError::InvalidPartitions(format!(
                    "topic currently has {} partitions, which is higher than the requested {count}",
                    meta.partitions
                )));
            }
            check_partition_count(count)?;
            meta.leader_epochs.resize(meta.partitions as usize, 0);
            meta.leader_epochs.resize(count as usize, 0);
            meta.partitions = count;
            Ok(())
        })
        .await
    }

    /// Changes a topic's overrides with `change`, validates the result and (with `apply`)
    /// persists it. Returns the topic as it is (or would be) afterwards. `bucket_has_history`:
    /// whether any of the topic's records are in the bucket (or may be).
    pub async fn alter_topic_configs(
        &self,
        name: &str,
        change: impl Fn(&mut BTreeMap<String, String>) -> Result<(), CatalogError>,
        bucket_has_history: bool,
        apply: bool,
    ) -> Result<TopicMeta, CatalogError> {
        const REMOTE: &str = "remote.storage.enable";
        self.update_topic(name, apply, |meta| {
            let before = meta.configs.clone();
            change(&mut meta.configs)?;
            topic_config::validate_overrides(&meta.configs)?;
            // set only when the topic is created: an AlterConfigs replacing every override
            // keeps it
            if let (None, Some(v)) = (meta.configs.get(REMOTE), before.get(REMOTE)) {
                meta.configs.insert(REMOTE.into(), v.clone());
            }
            if before.get(REMOTE) != meta.configs.get(REMOTE) {
                return Err(CatalogError::InvalidConfig(
                    "remote.storage.enable can only be set when the topic is created".into(),
                ));
            }
            // A tiered topic's history is in the bucket, which the cleaner cannot rewrite, and a
            // compacted topic opens without its remote log: Kafka refuses compaction on a topic
            // with remote storage. Topics here are tiered by default, though, where Kafka's are
            // not: a topic tiered only by that default, with nothing in the bucket yet, becomes a
            // local compacted topic (as if created with remote.storage.enable=false).
            if self.log_config_of(&before).remote_storage_enable
                && self.log_config_of(&meta.configs).cleanup_compact
            {
                let asked_for_tiering = before.get(REMOTE).map(String::as_str) == Some("true");
                if asked_for_tiering || bucket_has_history {
                    return Err(not_compactable(name));
                }
                meta.configs.insert(REMOTE.into(), "false".into());
            }
            Ok(())
        })
        .await
    }

    /// Changes the dynamic broker configs (this broker's, or with `default` the cluster
    /// default) with `change`, validates and (with `apply`) persists them.
    pub async fn alter_broker_configs(
        &self,
        default: bool,
        change: impl Fn(&mut BTreeMap<String, String>) -> Result<(), CatalogError>,
        apply: bool,
    ) -> Result<(), CatalogError> {
        for _ in 0..ATTEMPTS {
            let state = self.store.state();
            let expected = if default {
                state.broker_default_configs.clone()
            } else {
                state.broker_configs.clone()
            };
            let mut next = expected.clone();
            change(&mut next)?;
            topic_config::validate_broker_overrides(&next)?;
            let compact_default = next
                .get("log.cleanup.policy")
                .is_some_and(|p| p.contains("compact"));
            if compact_default && self.broker.tier_url != "none" {
                return Err(CatalogError::InvalidConfig(
                    "log.cleanup.policy cannot include compact while the broker tiers topics: remote log storage is only supported for cleanup.policy=delete (tier_url=none turns tiering off)".into(),
                ));
            }
            if !apply {
                return Ok(());
            }
            match self
                .commit_one(Change::SetBrokerConfigs {
                    default,
                    expected,
                    next,
                })
                .await
            {
                Err(CatalogError::Conflict) => continue,
                other => return other,
            }
        }
        Err(CatalogError::Conflict)
    }

    /// Read-modify-write of one topic, decided again when another change got there first.
    async fn update_topic(
        &self,
        name: &str,
        apply: bool,
        change: impl Fn(&mut TopicMeta) -> Result<(), CatalogError>,
    ) -> Result<TopicMeta, CatalogError> {
        for _ in 0..ATTEMPTS {
            let expected = self
                .get(name)
                .ok_or_else(|| CatalogError::UnknownTopic(name.to_string()))?;
            let mut next = expected.clone();
            change(&mut next)?;
            if !apply {
                return Ok(next);
            }
            match self
                .commit_one(Change::UpdateTopic {
                    expected,
                    next: next.clone(),
                })
                .await
            {
                Ok(()) => return Ok(next),
                Err(CatalogError::Conflict) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(CatalogError::Conflict)
    }

    async fn commit_one(&self, change: Change) -> Result<(), CatalogError> {
        self.store
            .commit(vec![change])
            .await?
            .pop()
            .unwrap_or(Err(CatalogError::Conflict))
    }

    /// The effective log settings of a topic.
    pub fn log_config(&self, meta: &TopicMeta) -> LogConfig {
        self.log_config_of(&meta.configs)
    }

    /// The effective log settings of a topic with these overrides.
    fn log_config_of(&self, configs: &BTreeMap<String, String>) -> LogConfig {
        let s = self.store.state();
        topic_config::resolve(configs, &self.defaults(&s))
    }

    fn defaults<'a>(&'a self, s: &'a CatalogState) -> BrokerDefaults<'a> {
        BrokerDefaults {
            config: &self.broker,
            dynamic: &s.broker_configs,
            dynamic_default: &s.broker_default_configs,
        }
    }

    /// DescribeConfigs entries for a topic's overrides.
    pub fn topic_entries(&self, configs: &BTreeMap<String, String>) -> Vec<ConfigEntry> {
        let s = self.store.state();
        topic_config::topic_config_entries(configs, &self.defaults(&s))
    }

    /// DescribeConfigs entries for this broker.
    pub fn broker_entries(&self, listen: &str, advertised: &str) -> Vec<ConfigEntry> {
        let s = self.store.state();
        topic_config::broker_config_entries(&self.defaults(&s), listen, advertised)
    }

    pub fn broker_config(&self) -> &Config {
        &self.broker
    }

    /// The catalog's bytes, now and after every committed change.
    pub fn snapshots(&self) -> watch::Receiver<Bytes> {
        self.store.snapshots()
    }
}

/// Kafka's refusal of compaction on a tiered topic.
fn not_compactable(topic: &str) -> CatalogError {
    CatalogError::InvalidConfig(format!(
        "remote log storage is only supported for topics with cleanup.policy=delete: topic '{topic}' keeps its history in the object store"
    ))
}

fn check_partition_count(partitions: i32) -> Result<(), CatalogError> {
    if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&partitions) {
        return Err(CatalogError::InvalidPartitions(format!(
            "number of partitions must be between 1 and {MAX_PARTITIONS_PER_TOPIC}, got {partitions}"
        )));
    }
    Ok(())
}

/// Kafka's topic-name rules: 1–249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), CatalogError> {
    if name.is_empty() {
        return Err(CatalogError::InvalidTopic(
            "topic name is illegal, it can't be empty".into(),
        ));
    }
    if name == "." || name == ".." {
        return Err(CatalogError::InvalidTopic(
            "topic name cannot be \".\" or \"..\"".into(),
        ));
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(CatalogError::InvalidTopic(format!(
            "topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LEN} characters"
        )));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(CatalogError::InvalidTopic(format!(
            "topic name '{name}' is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_topic(name: &str, partitions: i32, rf: i16) -> NewTopic {
        NewTopic {
            name: name.into(),
            partitions,
            replication_factor: rf,
            configs: BTreeMap::new(),
        }
    }

    async fn open(dir: &std::path::Path) -> Catalog {
        let store = FileCatalog::open(dir, None).await.expect("open");
        Catalog::new(store, &Config::default())
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_test-2").is_ok());
        for bad in ["", ".", "..", "a b", "ü", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
    }

    #[tokio::test]
    async fn catalog_persists_and_rejects_duplicates_and_collisions() {
        let dir = tempfile::tempdir().expect("tmp");
        let c = open(dir.path()).await;
        let id = c.cluster_id();
        assert_eq!(id.len(), 22);
        let t = c
            .create_topic(new_topic("a.b", 3, -1))
            .await
            .expect("create");
        assert_eq!(t.leader_epochs, vec![0, 0, 0]);
        assert!(matches!(
            c.create_topic(new_topic("a.b", 1, 1)).await,
            Err(CatalogError::TopicExists(_))
        ));
        assert!(matches!(
            c.create_topic(new_topic("a_b", 1, 1)).await,
            Err(CatalogError::InvalidTopic(_))
        ));
        assert!(matches!(
            c.create_topic(new_topic("x", 1, 3)).await,
            Err(CatalogError::InvalidReplicationFactor(_))
        ));
        assert!(matches!(
            c.create_topic(new_topic("x", 0, 1)).await,
            Err(CatalogError::InvalidPartitions(_))
        ));
        c.add_partitions("a.b", 5, true).await.expect("grow");
        drop(c);
        let c = open(dir.path()).await;
        assert_eq!(c.cluster_id(), id);
        let again = c.get("a.b").expect("persisted");
        assert_eq!(again.id, t.id);
        assert_eq!(again.partitions, 5);
        assert_eq!(again.leader_epochs.len(), 5);
        c.delete_topic("a.b").await.expect("delete");
        assert!(open(dir.path()).await.get("a.b").is_none());
    }

    #[tokio::test]
    async fn concurrent_creations_are_batched_and_each_answered() {
        let dir = tempfile::tempdir().expect("tmp");
        let c = Arc::new(open(dir.path()).await);
        let batch = |prefix: &'static str| {
            let c = c.clone();
            tokio::spawn(async move {
                let topics = (0..500).map(|i| new_topic(&format!("{prefix}{i}"), 1, -1));
                c.create_topics(topics.collect()).await
            })
        };
        let (a, b) = (batch("a"), batch("b"));
        let (a, b) = (a.await.expect("join"), b.await.expect("join"));
        assert!(a.iter().chain(b.iter()).all(Result::is_ok));
        let again = c
            .create_topics(vec![new_topic("a1", 1, -1), new_topic("fresh", 1, -1)])
            .await;
        assert!(matches!(again[0], Err(CatalogError::TopicExists(_))));
        assert!(again[1].is_ok());
        drop(c);
        assert_eq!(open(dir.path()).await.topics().len(), 1001);
    }

    #[tokio::test]
    async fn a_lost_race_is_decided_again() {
        let dir = tempfile::tempdir().expect("tmp");
        let c = Arc::new(open(dir.path()).await);
        c.create_topic(new_topic("t", 1, -1)).await.expect("create");
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let c = c.clone();
                tokio::spawn(async move {
                    c.alter_topic_configs(
                        "t",
                        |m| {
                            m.insert(format!("k{i}"), "v".into());
                            Ok(())
                        },
                        false,
                        false,
                    )
                    .await
                })
            })
            .collect();
        for t in tasks {
            assert!(t.await.expect("join").is_err(), "unknown keys are refused");
        }
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let c = c.clone();
                tokio::spawn(async move { c.add_partitions("t", 2 + i, true).await })
            })
            .collect();
        for t in tasks {
            let _ = t.await.expect("join");
        }
        let t = c.get("t").expect("topic");
        assert_eq!(t.partitions, 9, "the largest count wins, none is lost");
        assert_eq!(t.leader_epochs.len(), 9);
    }

    #[tokio::test]
    async fn a_tiered_topic_cannot_become_compacted() {
        let dir = tempfile::tempdir().expect("tmp");
        let c = open(dir.path()).await; // the default config tiers topics
        c.create_topic(new_topic("tiered", 1, -1))
            .await
            .expect("create");
        assert!(
            c.log_config(&c.get("tiered").expect("t"))
                .remote_storage_enable
        );
        let compact = |m: &mut BTreeMap<String, String>| {
            m.insert("cleanup.policy".into(), "compact".into());
            Ok(())
        };
        // with history in the bucket: refused, as Kafka refuses compaction with remote storage
        assert!(matches!(
            c.alter_topic_configs("tiered", compact, true, true).await,
            Err(CatalogError::InvalidConfig(_))
        ));
        assert!(
            matches!(
                c.alter_topic_configs("tiered", compact, true, false).await,
                Err(CatalogError::InvalidConfig(_))
            ),
            "validate-only says the same"
        );
        // a topic that asked for tiering when it was created: refused even with nothing uploaded
        let mut asked = new_topic("asked", 1, -1);
        asked
            .configs
            .insert("remote.storage.enable".into(), "true".into());
        c.create_topic(asked).await.expect("create");
        assert!(matches!(
            c.alter_topic_configs("asked", compact, false, true).await,
            Err(CatalogError::InvalidConfig(_))
        ));
        // tiered only by the broker's default, nothing in the bucket yet: it becomes a local
        // compacted topic, and stays local
        c.create_topic(new_topic("fresh", 1, -1))
            .await
            .expect("create");
        let t = c
            .alter_topic_configs("fresh", compact, false, true)
            .await
            .expect("compacted before anything was tiered");
        let lc = c.log_config(&t);
        assert!(lc.cleanup_compact && !lc.remote_storage_enable);
        assert_eq!(
            t.configs.get("remote.storage.enable").map(String::as_str),
            Some("false")
        );
        let delete_again = |m: &mut BTreeMap<String, String>| {
            m.clear();
            m.insert("cleanup.policy".into(), "delete".into());
            Ok(())
        };
        let t = c
            .alter_topic_configs("fresh", delete_again, false, true)
            .await
            .expect("replace every override");
        assert!(!c.log_config(&t).remote_storage_enable, "stays local");
        // a compacted topic is created local; asking for both is refused
        let mut local = new_topic("local", 1, -1);
        local
            .configs
            .insert("cleanup.policy".into(), "compact".into());
        let t = c
            .create_topic(local.clone())
            .await
            .expect("compacted topics stay local");
        assert!(!c.log_config(&t).remote_storage_enable);
        let mut both = local;
        both.name = "both".into();
        both.configs
            .insert("remote.storage.enable".into(), "true".into());
        assert!(matches!(
            c.create_topic(both).await,
            Err(CatalogError::InvalidConfig(_))
        ));
        // nor may the broker's default policy become compact while it tiers
        let default_compact = |m: &mut BTreeMap<String, String>| {
            m.insert("log.cleanup.policy".into(), "compact,delete".into());
            Ok(())
        };
        assert!(matches!(
            c.alter_broker_configs(true, default_compact, true).await,
            Err(CatalogError::InvalidConfig(_))
        ));
        assert!(!c.log_config(&c.get("tiered").expect("t")).cleanup_compact);
    }

    #[tokio::test]
    async fn corrupt_catalog_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("catalog.json"), b"{not json").expect("write");
        let e = FileCatalog::open(dir.path(), None)
            .await
            .err()
            .expect("error");
        assert!(e.to_string().contains("catalog.json"), "{e}");
    }
}
