//! The catalog of a cluster, in etcd: one key per topic and per set of dynamic broker configs
//! under `<prefix>/catalog/`, and the cluster's identity under `<prefix>/cluster`.
//!
//! A commit applies its changes to the latest state this node has read (the same rules as
//! every store, [`CatalogState::apply`]), then writes the keys that changed in one etcd
//! transaction guarded by each key's modification revision: if any other node changed one of
//! them meanwhile, nothing is written, the state is read again and the changes are decided
//! again. A topic per key keeps every etcd request small (etcd refuses requests over 1.5 MiB)
//! whatever the number of topics; a request creating many topics is written in transactions of
//! [`TXN_CHANGES`] topics each (etcd allows 128 operations in one).
//!
//! Other nodes' changes arrive through [`EtcdCatalog::load`], called by the cluster's poller
//! with every key under the catalog prefix whenever etcd's revision moves.

use super::state::{CatalogError, CatalogState, Change, TopicMeta};
use super::store::CatalogStore;
use crate::etcd::{Compare, Etcd, Kv, Op};
use bytes::Bytes;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio::sync::watch;

/// The format of the keys this version writes; a cluster written by a newer one is refused.
pub const CLUSTER_FORMAT: u32 = 1;
/// Changes written per etcd transaction.
const TXN_CHANGES: usize = 48;
/// How often a chunk of changes that lost a race is decided again.
const ATTEMPTS: usize = 16;

/// `<prefix>/cluster`: what every node of the cluster must agree on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClusterRecord {
    pub cluster_id: String,
    /// The bucket every node tiers to and reads from.
    pub tier_url: String,
    pub format: u32,
}

struct Loaded {
    state: Arc<CatalogState>,
    /// Modification revision of every catalog key read.
    revs: HashMap<Vec<u8>, i64>,
    /// The etcd revision `state` was read at.
    revision: i64,
}

pub struct EtcdCatalog {
    etcd: Arc<Etcd>,
    prefix: String,
    node_id: i32,
    loaded: RwLock<Loaded>,
    commits: tokio::sync::Mutex<()>,
    snapshots: watch::Sender<Bytes>,
}

fn refused(e: crate::etcd::EtcdError) -> CatalogError {
    CatalogError::Io(std::io::Error::other(e.to_string()))
}

impl EtcdCatalog {
    /// Joins the cluster's catalog: creates `<prefix>/cluster` if this is the first node, else
    /// checks this node tiers to the same bucket and understands the format; then reads the
    /// topics.
    pub async fn open(
        etcd: Arc<Etcd>,
        prefix: &str,
        node_id: i32,
        tier_url: &str,
    ) -> Result<Arc<EtcdCatalog>, CatalogError> {
        let key = format!("{prefix}/cluster").into_bytes();
        let mine = ClusterRecord {
            cluster_id: super::state::new_cluster_id(),
            tier_url: tier_url.to_string(),
            format: CLUSTER_FORMAT,
        };
        let value = serde_json::to_vec(&mine).map_err(|e| CatalogError::Io(e.into()))?;
        let r = etcd
            .txn(
                &[Compare::CreateRevision(key.clone(), 0)],
                &[Op::Put {
                    key: key.clone(),
                    value,
                    lease: 0,
                }],
                &[Op::Get(key.clone())],
            )
            .await
            .map_err(refused)?;
        let record = if r.succeeded {
            tracing::info!(cluster_id = %mine.cluster_id, prefix, "created a new cluster in etcd");
            mine
        } else {
            let kv = r.gets.first().and_then(|g| g.first()).ok_or_else(|| {
                CatalogError::Refused(format!("{prefix}/cluster vanished while joining"))
            })?;
            let record: ClusterRecord = serde_json::from_slice(&kv.value).map_err(|e| {
                CatalogError::Refused(format!("{prefix}/cluster in etcd is unreadable: {e}"))
            })?;
            if record.format > CLUSTER_FORMAT {
                return Err(CatalogError::Refused(format!(
                    "the cluster at {prefix} was written by a newer Tiercel (format {}, this one reads up to {CLUSTER_FORMAT})",
                    record.format
                )));
            }
            if record.tier_url != tier_url {
                return Err(CatalogError::Refused(format!(
                    "this node's tier_url `{tier_url}` is not the cluster's bucket `{}` (every node of the cluster at {prefix} must share one)",
                    record.tier_url
                )));
            }
            record
        };
        let me = Arc::new(EtcdCatalog {
            etcd,
            prefix: prefix.to_string(),
            node_id,
            loaded: RwLock::new(Loaded {
                state: Arc::new(CatalogState::new(record.cluster_id)),
                revs: HashMap::new(),
                revision: 0,
            }),
            commits: tokio::sync::Mutex::new(()),
            snapshots: watch::Sender::new(Bytes::new()),
        });
        me.refresh().await?;
        Ok(me)
    }

    /// The prefix of every catalog key.
    pub fn key_prefix(&self) -> String {
        format!("{}/catalog/", self.prefix)
    }

    fn topic_key(&self, name: &str) -> Vec<u8> {
        format!("{}/catalog/topics/{name}", self.prefix).into_bytes()
    }

    fn acls_key(&self) -> Vec<u8> {
        format!("{}/catalog/acls", self.prefix).into_bytes()
    }

    fn quotas_key(&self) -> Vec<u8> {
        format!("{}/catalog/quotas", self.prefix).into_bytes()
    }

    fn user_key(&self, name: &str) -> Vec<u8> {
        format!("{}/catalog/users/{name}", self.prefix).into_bytes()
    }

    fn broker_key(&self, default: bool) -> Vec<u8> {
        if default {
            format!("{}/catalog/broker-default", self.prefix).into_bytes()
        } else {
            format!("{}/catalog/broker/{}", self.prefix, self.node_id).into_bytes()
        }
    }

    /// Reads every catalog key again.
    pub async fn refresh(&self) -> Result<(), CatalogError> {
        let (revision, kvs) = self
            .etcd
            .range_prefix(self.key_prefix().as_bytes())
            .await
            .map_err(refused)?;
        self.load(revision, &kvs);
        Ok(())
    }

    /// Replaces the state with the catalog keys `kvs` read at `revision` (ignored if older than
    /// what is loaded). A key that does not parse is skipped with a log line.
    pub fn load(&self, revision: i64, kvs: &[Kv]) {
        let topics_prefix = format!("{}/catalog/topics/", self.prefix).into_bytes();
        let (mine, default) = (self.broker_key(false), self.broker_key(true));
        let users_prefix = format!("{}/catalog/users/", self.prefix).into_bytes();
        let acls_key = self.acls_key();
        let quotas_key = self.quotas_key();
        let mut loaded = self.loaded.write();
        if revision < loaded.revision {
            return;
        }
        let mut state = CatalogState::new(loaded.state.cluster_id.clone());
        let mut revs = HashMap::new();
        for kv in kvs {
            if kv.key.starts_with(&topics_prefix) {
                match serde_json::from_slice::<TopicMeta>(&kv.value) {
                    Ok(t) => {
                        state.topics.insert(t.name.clone(), t);
                    }
                    Err(e) => {
                        tracing::error!(key = %String::from_utf8_lossy(&kv.key), error = %e, "unreadable topic in etcd: skipped");
                        continue;
                    }
                }
            } else if kv.key == acls_key {
                match serde_json::from_slice(&kv.value) {
                    Ok(acls) => state.acls = acls,
                    Err(e) => {
                        tracing::error!(key = %String::from_utf8_lossy(&kv.key), error = %e, "unreadable ACLs in etcd: skipped");
                        continue;
                    }
                }
            } else if kv.key == quotas_key {
                match serde_json::from_slice(&kv.value) {
                    Ok(quotas) => state.quotas = quotas,
                    Err(e) => {
                        tracing::error!(key = %String::from_utf8_lossy(&kv.key), error = %e, "unreadable client quotas in etcd: skipped");
                        continue;
                    }
                }
            } else if let Some(name) = kv.key.strip_prefix(users_prefix.as_slice()) {
                match serde_json::from_slice(&kv.value) {
                    Ok(creds) => {
                        let name = String::from_utf8_lossy(name).into_owned();
                        state.users.insert(name, creds);
                    }
                    Err(e) => {
                        tracing::error!(key = %String::from_utf8_lossy(&kv.key), error = %e, "unreadable user in etcd: skipped");
                        continue;
                    }
                }
            } else if kv.key == mine || kv.key == default {
                match serde_json::from_slice::<BTreeMap<String, String>>(&kv.value) {
                    Ok(m) if kv.key == mine => state.broker_configs = m,
                    Ok(m) => state.broker_default_configs = m,
                    Err(e) => {
                        tracing::error!(key = %String::from_utf8_lossy(&kv.key), error = %e, "unreadable broker configs in etcd: skipped");
                        continue;
                    }
                }
            } else {
                continue;
            }
            revs.insert(kv.key.clone(), kv.mod_revision);
        }
        let changed = !same(&loaded.state, &state);
        *loaded = Loaded {
            state: Arc::new(state),
            revs,
            revision,
        };
        if changed {
            if let Ok(json) = serde_json::to_vec_pretty(&*loaded.state) {
                self.snapshots.send_replace(Bytes::from(json));
            }
        }
    }

    /// One chunk of changes: decided on the latest state and written in one transaction,
    /// again on a newer state after a lost race.
    async fn commit_chunk(
        &self,
        changes: &[Change],
    ) -> Result<Vec<Result<(), CatalogError>>, CatalogError> {
        for _ in 0..ATTEMPTS {
            let (base, revs) = {
                let l = self.loaded.read();
                (l.state.clone(), l.revs.clone())
            };
            let mut next = CatalogState::clone(&base);
            let results: Vec<Result<(), CatalogError>> =
                changes.iter().map(|c| next.apply(c.clone())).collect();
            let (compares, ops) = self.diff(&base, &next, &revs)?;
            if ops.is_empty() {
                return Ok(results);
            }
            let r = self.etcd.txn(&compares, &ops, &[]).await.map_err(refused)?;
            self.refresh().await?;
            if r.succeeded {
                return Ok(results);
            }
        }
        Ok(changes
            .iter()
            .map(|_| Err(CatalogError::Conflict))
            .collect())
    }

    /// The writes that turn `base` into `next`, each guarded by the key's revision in `base`.
    fn diff(
        &self,
        base: &CatalogState,
        next: &CatalogState,
        revs: &HashMap<Vec<u8>, i64>,
    ) -> Result<(Vec<Compare>, Vec<Op>), CatalogError> {
        let mut compares = Vec::new();
        let mut ops = Vec::new();
        // each write (a value, or None to delete) is guarded by the key's revision as read
        let mut write = |key: Vec<u8>, value: Option<Vec<u8>>| {
            let rev = revs.get(&key).copied().unwrap_or(0);
            compares.push(Compare::ModRevision(key.clone(), rev));
            ops.push(match value {
                Some(value) => Op::Put {
                    key,
                    value,
                    lease: 0,
                },
                None => Op::Delete(key),
            });
        };
        for (name, t) in &next.topics {
            if base.topics.get(name) != Some(t) {
                write(self.topic_key(name), Some(to_json(t)?));
            }
        }
        for name in base.topics.keys() {
            if !next.topics.contains_key(name) {
                write(self.topic_key(name), None);
            }
        }
        for (default, b, n) in [
            (false, &base.broker_configs, &next.broker_configs),
            (
                true,
                &base.broker_default_configs,
                &next.broker_default_configs,
            ),
        ] {
            if b != n {
                write(self.broker_key(default), Some(to_json(n)?));
            }
        }
        if base.acls != next.acls {
            write(self.acls_key(), Some(to_json(&next.acls)?));
        }
        if base.quotas != next.quotas {
            write(self.quotas_key(), Some(to_json(&next.quotas)?));
        }
        for (name, creds) in &next.users {
            if base.users.get(name) != Some(creds) {
                write(self.user_key(name), Some(to_json(creds)?));
            }
        }
        for name in base.users.keys() {
            if !next.users.contains_key(name) {
                write(self.user_key(name), None);
            }
        }
        Ok((compares, ops))
    }
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>, CatalogError> {
    serde_json::to_vec(v).map_err(|e| CatalogError::Io(e.into()))
}

fn same(a: &CatalogState, b: &CatalogState) -> bool {
    a.topics == b.topics
        && a.broker_configs == b.broker_configs
        && a.broker_default_configs == b.broker_default_configs
        && a.users == b.users
        && a.acls == b.acls
        && a.quotas == b.quotas
}

#[async_trait::async_trait]
impl CatalogStore for EtcdCatalog {
    fn state(&self) -> Arc<CatalogState> {
        self.loaded.read().state.clone()
    }

    async fn commit(
        &self,
        changes: Vec<Change>,
    ) -> Result<Vec<Result<(), CatalogError>>, CatalogError> {
        let _one_at_a_time = self.commits.lock().await;
        let mut results = Vec::with_capacity(changes.len());
        for chunk in changes.chunks(TXN_CHANGES) {
            results.extend(self.commit_chunk(chunk).await?);
        }
        Ok(results)
    }

    fn snapshots(&self) -> watch::Receiver<Bytes> {
        self.snapshots.subscribe()
    }
}
