//! The catalog: cluster id and topics (name, topic id, partition count, config overrides).
//!
//! Persisted as `<data_dir>/catalog.json`, rewritten atomically (temp file, fsync, rename, fsync
//! dir) before any change becomes visible, so a crash leaves either the old or the new catalog.
//! Topic-config semantics (keys, rules, resolution) are the config's ([`crate::config::topic`]).

use crate::config::topic::{self as topic_config, BrokerDefaults, ConfigEntry, TopicConfigError};
use crate::config::{Config, LogConfig};
use crate::fs::write_atomic;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// Upper bound on partitions per topic: each one is a directory, files and a flusher task.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;
/// Kafka's limit on topic name length.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

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
    #[error("catalog i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("catalog file {path} is unreadable: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

impl From<TopicConfigError> for CatalogError {
    fn from(e: TopicConfigError) -> Self {
        match e {
            TopicConfigError::Invalid(m) => CatalogError::InvalidConfig(m),
            TopicConfigError::NotDynamic(m) => CatalogError::InvalidRequest(m),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    /// Topic-level overrides only; defaults come from the broker config.
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    cluster_id: String,
    topics: BTreeMap<String, TopicMeta>,
    /// Dynamic broker configs set on this broker's id (AlterConfigs).
    #[serde(default)]
    broker_configs: BTreeMap<String, String>,
    /// Dynamic broker configs set on the cluster default (empty resource name).
    #[serde(default)]
    broker_default_configs: BTreeMap<String, String>,
}

pub struct Catalog {
    path: PathBuf,
    state: RwLock<State>,
    /// Serialises writers so each rewrite starts from the latest state.
    write: Mutex<()>,
    broker: Config,
    /// The catalog's bytes after every committed change (the tier mirrors them to the bucket).
    snapshots: tokio::sync::watch::Sender<bytes::Bytes>,
}

impl Catalog {
    /// Whether `data_dir` holds a catalog.
    pub fn exists(data_dir: &Path) -> bool {
        data_dir.join(crate::format::CATALOG_FILE).exists()
    }

    /// Loads `catalog.json` from `data_dir`, or creates one: from `restore` (the copy in the
    /// bucket, when the data dir was lost) or new, with a new cluster id.
    pub fn open(
        data_dir: &Path,
        broker: &Config,
        restore: Option<bytes::Bytes>,
    ) -> Result<Catalog, CatalogError> {
        let path = data_dir.join(crate::format::CATALOG_FILE);
        if let Some(bytes) = restore {
            if !path.exists() {
                std::fs::create_dir_all(data_dir)?;
                write_atomic(&path, &bytes)?;
                tracing::warn!(data_dir = %data_dir.display(), "no local catalog: restored topics from the object store");
            }
        }
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| CatalogError::Corrupt {
                path: path.clone(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let state = State {
                    cluster_id: new_cluster_id(),
                    topics: BTreeMap::new(),
                    broker_configs: BTreeMap::new(),
                    broker_default_configs: BTreeMap::new(),
                };
                std::fs::create_dir_all(data_dir)?;
                write_atomic(&path, &to_json(&state)?)?;
                state
            }
            Err(e) => return Err(e.into()),
        };
        let snapshot = bytes::Bytes::from(to_json(&state)?);
        Ok(Catalog {
            path,
            state: RwLock::new(state),
            write: Mutex::new(()),
            broker: broker.clone(),
            snapshots: tokio::sync::watch::Sender::new(snapshot),
        })
    }

    pub fn cluster_id(&self) -> String {
        self.state.read().cluster_id.clone()
    }

    pub fn topics(&self) -> Vec<TopicMeta> {
        self.state.read().topics.values().cloned().collect()
    }

    pub fn get(&self, name: &str) -> Option<TopicMeta> {
        self.state.read().topics.get(name).cloned()
    }

    pub fn get_by_id(&self, id: Uuid) -> Option<TopicMeta> {
        self.state
            .read()
            .topics
            .values()
            .find(|t| t.id == id)
            .cloned()
    }

    /// Checks a creation request without applying it (also used by validate-only requests).
    pub fn check_new_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), CatalogError> {
        validate_topic_name(name)?;
        let state = self.state.read();
        if state.topics.contains_key(name) {
            return Err(CatalogError::TopicExists(name.to_string()));
        }
        let collides = |a: &str| a.replace('.', "_");
        if let Some(other) = state.topics.keys().find(|t| collides(t) == collides(name)) {
            return Err(CatalogError::InvalidTopic(format!(
                "topic '{name}' collides with existing topic '{other}' ('.' and '_' are equivalent in metric names)"
            )));
        }
        drop(state);
        check_partition_count(partitions)?;
        if replication_factor != -1 && replication_factor != 1 {
            return Err(CatalogError::InvalidReplicationFactor(format!(
                "unable to replicate the partition {replication_factor} time(s): the target replication factor of {replication_factor} cannot be reached because only 1 broker(s) are registered"
            )));
        }
        topic_config::validate_overrides(configs)?;
        Ok(())
    }

    /// Creates a topic and persists the catalog.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicMeta, CatalogError> {
        let _w = self.write.lock();
        self.check_new_topic(name, partitions, replication_factor, &configs)?;
        let meta = TopicMeta {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions,
            configs,
        };
        self.commit(|s| {
            s.topics.insert(name.to_string(), meta.clone());
        })?;
        Ok(meta)
    }

    pub fn delete_topic(&self, name: &str) -> Result<TopicMeta, CatalogError> {
        let _w = self.write.lock();
        let meta = self
            .get(name)
            .ok_or_else(|| CatalogError::UnknownTopic(name.to_string()))?;
        self.commit(|s| {
            s.topics.remove(name);
        })?;
        Ok(meta)
    }

    /// Raises a topic's partition count (validate-only when `apply` is false).
    pub fn add_partitions(
        &self,
        name: &str,
        count: i32,
        apply: bool,
    ) -> Result<TopicMeta, CatalogError> {
        let _w = self.write.lock();
        let mut meta = self
            .get(name)
            .ok_or_else(|| CatalogError::UnknownTopic(name.to_string()))?;
        if count <= meta.partitions {
            return Err(CatalogError::InvalidPartitions(format!(
                "topic currently has {} partitions, which is higher than the requested {count}",
                meta.partitions
            )));
        }
        check_partition_count(count)?;
        meta.partitions = count;
        if apply {
            let m = meta.clone();
            self.commit(|s| {
                s.topics.insert(m.name.clone(), m);
            })?;
        }
        Ok(meta)
    }

    /// The effective log settings of a topic.
    pub fn log_config(&self, meta: &TopicMeta) -> LogConfig {
        let s = self.state.read();
        topic_config::resolve(&meta.configs, &Self::defaults(&self.broker, &s))
    }

    fn defaults<'a>(broker: &'a Config, s: &'a State) -> BrokerDefaults<'a> {
        BrokerDefaults {
            config: broker,
            dynamic: &s.broker_configs,
            dynamic_default: &s.broker_default_configs,
        }
    }

    /// DescribeConfigs entries for a topic's overrides.
    pub fn topic_entries(&self, configs: &BTreeMap<String, String>) -> Vec<ConfigEntry> {
        let s = self.state.read();
        topic_config::topic_config_entries(configs, &Self::defaults(&self.broker, &s))
    }

    /// DescribeConfigs entries for this broker.
    pub fn broker_entries(&self, listen: &str, advertised: &str) -> Vec<ConfigEntry> {
        let s = self.state.read();
        topic_config::broker_config_entries(&Self::defaults(&self.broker, &s), listen, advertised)
    }

    /// Changes a topic's overrides with `change`, validates the result and (with `apply`)
    /// persists it. Returns the topic as it is (or would be) afterwards.
    pub fn alter_topic_configs(
        &self,
        name: &str,
        change: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), CatalogError>,
        apply: bool,
    ) -> Result<TopicMeta, CatalogError> {
        let _w = self.write.lock();
        let mut meta = self
            .get(name)
            .ok_or_else(|| CatalogError::UnknownTopic(name.to_string()))?;
        let before = meta.configs.clone();
        change(&mut meta.configs)?;
        topic_config::validate_overrides(&meta.configs)?;
        if before.get("remote.storage.enable") != meta.configs.get("remote.storage.enable") {
            return Err(CatalogError::InvalidConfig(
                "remote.storage.enable can only be set when the topic is created".into(),
            ));
        }
        if apply {
            let m = meta.clone();
            self.commit(|s| {
                s.topics.insert(m.name.clone(), m);
            })?;
        }
        Ok(meta)
    }

    /// Changes the dynamic broker configs (this broker's, or with `default` the cluster
    /// default) with `change`, validates and (with `apply`) persists them.
    pub fn alter_broker_configs(
        &self,
        default: bool,
        change: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), CatalogError>,
        apply: bool,
    ) -> Result<(), CatalogError> {
        let _w = self.write.lock();
        let mut configs = {
            let s = self.state.read();
            if default {
                s.broker_default_configs.clone()
            } else {
                s.broker_configs.clone()
            }
        };
        change(&mut configs)?;
        topic_config::validate_broker_overrides(&configs)?;
        if apply {
            self.commit(|s| {
                if default {
                    s.broker_default_configs = configs;
                } else {
                    s.broker_configs = configs;
                }
            })?;
        }
        Ok(())
    }

    pub fn broker_config(&self) -> &Config {
        &self.broker
    }

    fn commit(&self, change: impl FnOnce(&mut State)) -> Result<(), CatalogError> {
        let mut next = self.state.read().clone();
        change(&mut next);
        let bytes = bytes::Bytes::from(to_json(&next)?);
        write_atomic(&self.path, &bytes)?;
        *self.state.write() = next;
        self.snapshots.send_replace(bytes);
        Ok(())
    }

    /// The catalog's bytes, now and after every committed change.
    pub fn snapshots(&self) -> tokio::sync::watch::Receiver<bytes::Bytes> {
        self.snapshots.subscribe()
    }
}

fn to_json(state: &State) -> Result<Vec<u8>, CatalogError> {
    serde_json::to_vec_pretty(state).map_err(|e| CatalogError::Io(std::io::Error::other(e)))
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

/// A cluster id in Kafka's form: a random UUID as 22 characters of URL-safe base64.
fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bits = Uuid::new_v4().as_u128();
    (0..22)
        .map(|i| ALPHABET[((bits >> (i * 6)) & 63) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_test-2").is_ok());
        for bad in ["", ".", "..", "a b", "ü", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
    }

    #[test]
    fn catalog_persists_and_rejects_duplicates_and_collisions() {
        let dir = tempfile::tempdir().expect("tmp");
        let cfg = Config::default();
        let c = Catalog::open(dir.path(), &cfg, None).expect("open");
        let id = c.cluster_id();
        assert_eq!(id.len(), 22);
        let t = c
            .create_topic("a.b", 3, -1, BTreeMap::new())
            .expect("create");
        assert!(matches!(
            c.create_topic("a.b", 1, 1, BTreeMap::new()),
            Err(CatalogError::TopicExists(_))
        ));
        assert!(matches!(
            c.create_topic("a_b", 1, 1, BTreeMap::new()),
            Err(CatalogError::InvalidTopic(_))
        ));
        assert!(matches!(
            c.create_topic("x", 1, 3, BTreeMap::new()),
            Err(CatalogError::InvalidReplicationFactor(_))
        ));
        assert!(matches!(
            c.create_topic("x", 0, 1, BTreeMap::new()),
            Err(CatalogError::InvalidPartitions(_))
        ));
        c.add_partitions("a.b", 5, true).expect("grow");
        drop(c);
        let c = Catalog::open(dir.path(), &cfg, None).expect("reopen");
        assert_eq!(c.cluster_id(), id);
        let again = c.get("a.b").expect("persisted");
        assert_eq!(again.id, t.id);
        assert_eq!(again.partitions, 5);
        c.delete_topic("a.b").expect("delete");
        assert!(Catalog::open(dir.path(), &cfg, None)
            .expect("reopen")
            .get("a.b")
            .is_none());
    }

    #[test]
    fn corrupt_catalog_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("catalog.json"), b"{not json").expect("write");
        let e = Catalog::open(dir.path(), &Config::default(), None)
            .err()
            .expect("error");
        assert!(e.to_string().contains("catalog.json"), "{e}");
    }
}
