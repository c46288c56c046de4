//! Builds and owns the components: catalog, log manager, API handler and server. Start-up
//! recovery happens in [`Broker::bind`] before the listener accepts anything; [`Broker::run`]
//! serves until the shutdown future resolves, then stops accepting, lets connections finish
//! their in-flight requests, flushes every partition and writes the clean-shutdown marker.
//!
//! In a cluster (`etcd_endpoints` set) the catalog is in etcd, the node registers itself after
//! binding its listener, and [`leadership`] opens and releases partitions as their leadership
//! comes and goes; at shutdown the node hands its partitions to the others before it stops.

mod coordinators;
mod leadership;
mod shares;
mod tails;

use crate::api::Handler;
use crate::catalog::{Catalog, CatalogError, CatalogStore, EtcdCatalog, FileCatalog};
use crate::clock::{SharedClock, SystemClock};
use crate::cluster::wal::Wal;
use crate::cluster::{Cluster, ClusterError, NodeInfo};
use crate::config::Config;
use crate::etcd::Etcd;
use crate::group::{Coordinator, Groups};
use crate::log::{LogError, LogManager};
use crate::server::{http, Server};
use crate::tier::Tier;
use crate::txn::{GroupOffsets, ProducerIds, TxnCoordinator, TxnDeps, Txns};
use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Where a cluster node keeps its follower copies, inside the data dir (emptied at start-up).
const FOLLOWER_COPIES_DIR: &str = "follower-copies";
/// How often state gauges (partition offsets, group sizes, process memory) are refreshed.
const GAUGE_REFRESH: Duration = Duration::from_secs(1);

/// How often group session and rebalance timeouts are checked.
const GROUP_TICK: Duration = Duration::from_millis(100);

/// Time limit of one etcd request.
const ETCD_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// This node cannot join the cluster as configured (exit code 2).
    #[error("cluster: {0}")]
    Cluster(String),
    #[error("log: {0}")]
    Log(#[from] LogError),
    /// A setting that could not be applied.
    #[error("config: {0}")]
    Config(String),
    #[error("{0}")]
    Metrics(String),
    #[error("tiered storage: {0}")]
    Tier(String),
    /// The object store refused the start-up probe for good (exit code 2).
    #[error("the object store refuses the tier's requests: {0} (fix the bucket or credentials, or set tier_start_degraded to start on local data)")]
    TierRefused(String),
}

pub struct Broker {
    /// The Kafka listeners: socket, bound address, and what their connections need.
    listeners: Vec<(TcpListener, SocketAddr, Arc<crate::server::Endpoint>)>,
    /// The TLS certificate of SSL and SASL_SSL listeners, reloaded when its files change.
    tls: Option<Arc<crate::security::tls::Tls>>,
    /// `/metrics` and `/ready`.
    http: TcpListener,
    tier: Option<Arc<Tier>>,
    server: Arc<Server>,
    logs: Arc<LogManager>,
    groups: Arc<Groups>,
    txns: Arc<Txns>,
    /// Cluster mode: what a transaction coordinator shard is built with.
    txn_deps: TxnDeps,
    producer_ids: Option<Arc<ProducerIds>>,
    cluster: Option<(Arc<Cluster>, Arc<Wal>)>,
    clock: SharedClock,
    /// The first listener's bound address.
    pub local_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
}

impl Broker {
    /// Each listener's name and bound address, in `listeners` order.
    pub fn listener_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.listeners
            .iter()
            .map(|(_, bound, e)| (e.name.to_string(), *bound))
            .collect()
    }

    /// Opens the data dir, recovers every partition, binds the listener.
    pub async fn bind(config: Config) -> Result<Broker, BrokerError> {
        Self::bind_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn bind_with_clock(
        config: Config,
        clock: SharedClock,
    ) -> Result<Broker, BrokerError> {
        // a tier that cannot even be built (an unusable URL or directory) is the operator's to
        // fix, like a bad flag
        let tier = match config.tier().map_err(BrokerError::TierRefused)? {
            Some(t) => Some(Tier::from_config(&t).map_err(BrokerError::TierRefused)?),
            None => None,
        };
        Self::bind_with(config, clock, tier).await
    }

    /// Binds with an already built tier (tests pass stores wrapped in fault layers).
    pub async fn bind_with(
        config: Config,
        clock: SharedClock,
        tier: Option<Arc<Tier>>,
    ) -> Result<Broker, BrokerError> {
        if let Some(kind) = crate::fs::skipped_fsync() {
            tracing::warn!(
                "{}={kind}: {kind} fsyncs are skipped; acknowledged data can be lost on power loss (a switch for testing the tests, never for use)",
                crate::fs::SKIP_FSYNC_ENV
            );
        }
        if let Some(t) = &tier {
            match t.probe().await {
                Ok(()) => tracing::info!(url = t.url(), "object store answers"),
                Err(e) if e.is_permanent() && !config.tier_start_degraded => {
                    return Err(BrokerError::TierRefused(format!("{}: {e}", t.url())));
                }
                Err(e) => {
                    tracing::error!(url = t.url(), error = %e, permanent = e.is_permanent(), "object store unusable at start-up: serving local data; uploads keep retrying and /ready reports it")
                }
            }
        }
        let (store, etcd) = open_catalog(&config, tier.as_ref()).await?;
        let catalog = Arc::new(Catalog::new(store.clone(), &config));
        let logs = Arc::new(
            LogManager::open(
                &config.data_dir,
                clock.clone(),
                Duration::from_millis(config.flush_interval_ms),
                tier.clone(),
            )
            .await?,
        );
        let started = std::time::Instant::now();
        // partitions open concurrently: with a tier, each first reads its manifest
        let wanted: Vec<(crate::catalog::TopicMeta, i32)> = catalog
            .topics()
            .into_iter()
            .flat_map(|t| (0..t.partitions).map(move |p| (t.clone(), p)))
            .collect();
        // a node of a cluster opens only the partitions it comes to lead
        let wanted = if etcd.is_some() { Vec::new() } else { wanted };
        let partitions = wanted.len();
        {
            use futures::StreamExt;
            let mut opened = futures::stream::iter(wanted.into_iter().map(|(t, p)| {
                let logs = logs.clone();
                let lc = catalog.log_config(&t);
                async move { logs.open_partition(&t.name, t.id, p, lc).await }
            }))
            .buffer_unordered(16);
            while let Some(r) = opened.next().await {
                r?;
            }
        }
        if let Some(t) = &tier {
            if etcd.is_none() {
                t.mirror_catalog(catalog.snapshots());
            }
            let live: Vec<(String, uuid::Uuid)> = catalog
                .topics()
                .into_iter()
                .map(|t| (t.name, t.id))
                .collect();
            t.sweep_orphans_later(live);
            tracing::info!(url = t.url(), "tiering closed segments");
        }
        tracing::info!(
            partitions,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "logs loaded"
        );
        logs.start_cleaner(Duration::from_millis(config.log_cleaner_backoff_ms));
        logs.start_retention(
            Duration::from_millis(config.log_retention_check_interval_ms),
            config.producer_id_expiration_ms,
        );
        // alone, one coordinator holds every group in the data dir; a cluster node holds the
        // shards it comes to lead (see `coordinators`)
        let groups = if etcd.is_some() {
            Arc::new(Groups::sharded())
        } else {
            let c = Coordinator::open(&config.data_dir, config.groups(), clock.clone())
                .map_err(|e| BrokerError::Log(LogError::Io(e)))?;
            c.forget_deleted_topics(|t| catalog.get(t).is_some()).await;
            Arc::new(Groups::alone(c))
        };
        crate::metrics::install().map_err(BrokerError::Metrics)?;
        let http = TcpListener::bind(config.metrics_listen)
            .await
            .map_err(|source| BrokerError::Bind {
                addr: config.metrics_listen,
                source,
            })?;
        let metrics_addr = http.local_addr().map_err(|source| BrokerError::Bind {
            addr: config.metrics_listen,
            source,
        })?;
        let specs = config
            .listeners()
            .map_err(|e| BrokerError::Config(e.to_string()))?;
        let tls = if specs.iter().any(|l| l.protocol.tls()) {
            let files = crate::security::tls::TlsFiles {
                certificate: config.ssl_certificate.clone().into(),
                key: config.ssl_key.clone().into(),
                ca: (!config.ssl_ca.is_empty()).then(|| config.ssl_ca.clone().into()),
                client_auth: crate::security::tls::ClientAuth::parse(&config.ssl_client_auth),
            };
            Some(
                crate::security::tls::Tls::load(files)
                    .await
                    .map_err(BrokerError::Config)?,
            )
        } else {
            None
        };
        let mut listeners = Vec::new();
        let mut advertised_listeners = std::collections::BTreeMap::new();
        for spec in &specs {
            let listener =
                TcpListener::bind(spec.bind)
                    .await
                    .map_err(|source| BrokerError::Bind {
                        addr: spec.bind,
                        source,
                    })?;
            let bound = listener.local_addr().map_err(|source| BrokerError::Bind {
                addr: spec.bind,
                source,
            })?;
            advertised_listeners.insert(spec.name.clone(), spec.advertised_or(bound));
            let endpoint = crate::server::Endpoint {
                name: spec.name.as_str().into(),
                protocol: spec.protocol,
                tls: tls.clone().filter(|_| spec.protocol.tls()),
            };
            listeners.push((listener, bound, Arc::new(endpoint)));
        }
        let inter = config
            .inter_broker_listener(&specs)
            .ok_or_else(|| BrokerError::Config("no listener".into()))?;
        if config.clustered() && inter.protocol != crate::config::SecurityProtocol::Plaintext {
            return Err(BrokerError::Config(format!(
                "inter_broker_listener_name: nodes of a cluster reach each other over a PLAINTEXT listener; `{}` is {}",
                inter.name,
                inter.protocol.name()
            )));
        }
        let advertised = advertised_listeners
            .get(&inter.name)
            .cloned()
            .ok_or_else(|| BrokerError::Config("no inter-broker listener".into()))?;
        let local_addr = listeners
            .first()
            .map(|(_, bound, _)| *bound)
            .ok_or_else(|| BrokerError::Config("no listener".into()))?;
        let cluster = match (etcd, &store) {
            (Some((etcd, etcd_catalog)), _) => Some(
                Cluster::join(
                    etcd,
                    &config.etcd_prefix,
                    NodeInfo {
                        id: config.node_id,
                        host: advertised.0.clone(),
                        port: advertised.1,
                        draining: config.decommission,
                        rack: config.rack().map(str::to_string),
                        listeners: advertised_listeners.clone(),
                    },
                    Duration::from_millis(config.cluster_lease_ttl_ms),
                    etcd_catalog,
                )
                .await
                .map_err(|e| match e {
                    ClusterError::Etcd(e) => {
                        BrokerError::Cluster(format!("etcd at {}: {e}", config.etcd_endpoints))
                    }
                    e => BrokerError::Cluster(e.to_string()),
                })?,
            ),
            (None, _) => None,
        };
        let cluster = match (cluster, &tier) {
            (Some(c), Some(t)) => Some((c.clone(), Wal::new(c, t.clone()))),
            (Some(_), None) => {
                return Err(BrokerError::Cluster(
                    "a cluster needs the shared bucket (tier_url)".into(),
                ))
            }
            (None, _) => None,
        };
        let legacy_ids =
            crate::fs::read_if_exists(&config.data_dir.join(crate::format::PRODUCER_IDS_FILE))
                .map_err(|e| BrokerError::Log(LogError::Io(e)))?
                .map_or(0, |b| crate::format::parse_decimal(&b).unwrap_or(0));
        let peers = cluster.as_ref().map(|(c, _)| {
            Arc::new(crate::api::peers::PeerMarkers {
                cluster: c.clone(),
                catalog: catalog.clone(),
            })
        });
        let txn_deps = TxnDeps {
            cfg: config.transactions(),
            logs: logs.clone(),
            groups: Arc::new(TxnGroupOffsets {
                groups: groups.clone(),
                peers: peers.clone(),
            }),
            clock: clock.clone(),
            remote: peers.map(|p| p as Arc<dyn crate::txn::RemoteMarkers>),
        };
        // alone, one coordinator keeps every transactional id in the data dir; a cluster node
        // holds the shards it comes to lead, and producer ids come from etcd
        let producer_ids = cluster
            .as_ref()
            .map(|(c, _)| Arc::new(ProducerIds::new(0, Some(c.clone()))));
        let txns = Arc::new(match &producer_ids {
            Some(ids) => Txns::sharded(ids.clone(), &txn_deps),
            None => Txns::alone(
                TxnCoordinator::open(&config.data_dir, txn_deps.clone(), legacy_ids)
                    .map_err(|e| BrokerError::Log(LogError::Io(e)))?,
            ),
        });
        let followers = match (&cluster, &tier) {
            (Some((c, wal)), Some(t)) => Some(crate::log::followers::Followers::new(
                c.clone(),
                wal.clone(),
                crate::cluster::tail::Tails::new(t.clone()),
                Arc::new(
                    LogManager::open_copies(
                        &config.data_dir.join(FOLLOWER_COPIES_DIR),
                        clock.clone(),
                        Duration::from_millis(config.flush_interval_ms),
                        t.clone(),
                    )
                    .await?,
                ),
            )),
            _ => None,
        };
        let quotas = Arc::new(crate::security::quotas::ClientQuotas::new(catalog.clone()));
        // share groups are served by a node that runs alone
        let share = match &cluster {
            Some(_) => None,
            None => Some(Arc::new(
                crate::share::ShareGroups::open(&config.data_dir, config.shares(), clock.clone())
                    .map_err(|e| BrokerError::Log(LogError::Io(e)))?,
            )),
        };
        let handler = Arc::new(Handler {
            share,
            cluster: cluster.as_ref().map(|(c, _)| c.clone()),
            followers,
            advertised,
            advertised_listeners,
            listeners: listeners
                .iter()
                .map(|(_, bound, e)| (e.name.to_string(), *bound))
                .collect(),
            listen: local_addr,
            catalog,
            logs: logs.clone(),
            groups: groups.clone(),
            txns: txns.clone(),
            mutations: crate::api::quota::MutationQuota::new(config.topic_mutation_rate),
            stopping: CancellationToken::new(),
            fetch_memory: crate::api::fetch_memory::FetchMemory::new(config.fetch_memory_max_bytes),
            sessions: crate::api::fetch_session::FetchSessions::new(
                config.max_incremental_fetch_session_cache_slots,
            ),
            acl: crate::security::acl::AclSettings::from_config(&config),
            quotas: quotas.clone(),
            telemetry: Arc::new(crate::telemetry::Telemetry::new(config.telemetry())),
            config: config.clone(),
        });
        let oauth = if config
            .sasl_enabled_mechanisms
            .split(',')
            .any(|m| m.trim() == "OAUTHBEARER")
        {
            Some(
                crate::security::oauth::OAuth::load(
                    config.sasl_oauthbearer_jwks_file.clone().into(),
                    &config.sasl_oauthbearer_expected_audience,
                    &config.sasl_oauthbearer_expected_issuer,
                    &config.sasl_oauthbearer_sub_claim_name,
                    Duration::from_secs(config.sasl_oauthbearer_clock_skew_seconds),
                )
                .await
                .map_err(BrokerError::Config)?,
            )
        } else {
            None
        };
        let security = Arc::new(
            crate::security::Security::new(handler.catalog.clone(), &config, oauth)
                .map_err(BrokerError::Config)?,
        );
        let server = Arc::new(Server {
            security,
            quotas,
            handler,
            max_frame: config.socket_request_max_bytes as usize,
            connections: Arc::new(Semaphore::new(config.max_connections)),
            per_ip: Arc::new(crate::server::per_ip::PerIp::new(
                config.max_connections_per_ip,
                crate::config::ip_overrides(&config.max_connections_per_ip_overrides).map_err(
                    |e| BrokerError::Config(format!("max_connections_per_ip_overrides: {e}")),
                )?,
            )),
            max_idle: (config.connections_max_idle_ms > 0)
                .then(|| Duration::from_millis(config.connections_max_idle_ms)),
        });
        Ok(Broker {
            listeners,
            tls,
            http,
            tier,
            metrics_addr,
            server,
            logs,
            groups,
            txns,
            txn_deps,
            producer_ids,
            cluster,
            clock,
            local_addr,
        })
    }

    /// Cluster mode: the group coordinator's shards, each loaded from its partition of the
    /// groups topic.
    fn group_shards(
        &self,
        catalog: &Arc<crate::catalog::Catalog>,
    ) -> coordinators::Follow<Coordinator> {
        let (cfg, clock, catalog) = (
            self.server.handler.config.groups(),
            self.clock.clone(),
            catalog.clone(),
        );
        coordinators::Follow {
            what: "group",
            topic: crate::catalog::GROUPS_TOPIC,
            partitions: self.server.handler.config.offsets_topic_num_partitions,
            shards: self.groups.shards.clone(),
            load: Arc::new(move |p, _epoch| {
                let (cfg, clock, catalog) = (cfg.clone(), clock.clone(), catalog.clone());
                Box::pin(async move {
                    let backend = Arc::new(crate::log::PartitionJournal::new(p));
                    let store = crate::group::offsets::OffsetStore::open_on(backend).await?;
                    let c = Coordinator::with_store(store, cfg, clock);
                    c.forget_deleted_topics(|t| catalog.get(t).is_some()).await;
                    Ok(c)
                })
            }),
        }
    }

    /// Cluster mode: the transaction coordinator's shards, each loaded from its partition of
    /// the transactions topic and writing markers at that partition's leader epoch.
    fn txn_shards(&self) -> coordinators::Follow<TxnCoordinator> {
        let (deps, ids) = (self.txn_deps.clone(), self.producer_ids.clone());
        coordinators::Follow {
            what: "transaction",
            topic: crate::catalog::TXNS_TOPIC,
            partitions: self
                .server
                .handler
                .config
                .transaction_state_log_num_partitions,
            shards: self.txns.shards.clone(),
            load: Arc::new(move |p, epoch| {
                let (deps, ids) = (deps.clone(), ids.clone());
                Box::pin(async move {
                    let ids = ids.ok_or_else(|| std::io::Error::other("no producer ids"))?;
                    let backend = Arc::new(crate::log::PartitionJournal::new(p));
                    let journal = crate::journal::Journal::open_on(backend).await?;
                    Ok(TxnCoordinator::with_journal(journal, deps, ids, epoch))
                })
            }),
        }
    }

    /// Serves until `shutdown` resolves, then drains and closes cleanly.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), BrokerError> {
        let follows = self.cluster.as_ref().map(|_| {
            (
                self.group_shards(&self.server.handler.catalog),
                self.txn_shards(),
            )
        });
        let cancel = CancellationToken::new();
        let conns = TaskTracker::new();
        let listening: Vec<String> = self
            .listeners
            .iter()
            .map(|(_, bound, e)| format!("{}://{bound}", e.name))
            .collect();
        let advertised: Vec<String> = self
            .server
            .handler
            .advertised_listeners
            .iter()
            .map(|(n, (h, p))| format!("{n}://{h}:{p}"))
            .collect();
        tracing::info!(listeners = %listening.join(","), advertised = %advertised.join(","), metrics = %format!("http://{}/metrics", self.metrics_addr), cluster_id = %self.server.handler.catalog.cluster_id(), "tiercel ready");
        let mut accept = Vec::new();
        for (listener, _, endpoint) in self.listeners {
            accept.push(tokio::spawn(self.server.clone().serve(
                listener,
                endpoint,
                cancel.clone(),
                conns.clone(),
            )));
        }
        if let Some(tls) = self.tls.clone() {
            accept.push(tokio::spawn(tls.watch(cancel.clone())));
        }
        if let Some(oauth) = self.server.security.oauth.clone() {
            accept.push(tokio::spawn(oauth.watch(cancel.clone())));
        }
        let telemetry = self.server.handler.telemetry.clone();
        let http = tokio::spawn(http::serve(
            self.http,
            readiness(self.tier.clone(), cancel.clone()),
            Arc::new(move || {
                use crate::clock::Clock;
                telemetry.render(crate::clock::SystemClock.now_ms())
            }),
            cancel.clone(),
            conns.clone(),
        ));
        let ticker = tokio::spawn(self.groups.clone().run(GROUP_TICK, cancel.clone()));
        let txn_ticker = tokio::spawn(self.txns.clone().run(cancel.clone()));
        let mut cluster_tasks = Vec::new();
        if let (Some((c, wal)), Some(tier), Some((group_shards, txn_shards))) =
            (&self.cluster, &self.tier, follows)
        {
            let catalog = self.server.handler.catalog.clone();
            cluster_tasks = c.start(catalog.clone(), cancel.clone());
            cluster_tasks.push(tokio::spawn(wal.clone().run(cancel.clone())));
            cluster_tasks.push(tokio::spawn(
                wal.clone().run_collector(catalog.clone(), cancel.clone()),
            ));
            cluster_tasks.push(tokio::spawn(coordinators::run(
                coordinators::Node {
                    cluster: c.clone(),
                    catalog: catalog.clone(),
                    logs: self.logs.clone(),
                },
                (self.groups.clone(), group_shards),
                txn_shards,
                cancel.clone(),
            )));
            if let Some(f) = &self.server.handler.followers {
                cluster_tasks.push(tokio::spawn(f.clone().run(cancel.clone())));
            }
            cluster_tasks.push(tokio::spawn(leadership::run(
                c.clone(),
                catalog,
                self.logs.clone(),
                wal.clone(),
                Arc::new(crate::cluster::tail::Tails::new(tier.clone())),
                leadership::TailBound {
                    max_age_ms: i64::try_from(self.server.handler.config.cluster_roll_ms)
                        .unwrap_or(i64::MAX),
                    max_bytes: self.server.handler.config.cluster_roll_bytes,
                },
                cancel.clone(),
            )));
        }
        let shares = self.server.handler.share.clone().map(|s| {
            let catalog = self.server.handler.catalog.clone();
            tokio::spawn(shares::run(s, self.logs.clone(), catalog, cancel.clone()))
        });
        let gauges = tokio::spawn(refresh_gauges(
            self.logs.clone(),
            self.groups.clone(),
            self.txns.clone(),
            cancel.clone(),
        ));
        shutdown.await;
        tracing::info!("shutting down: draining connections");
        cancel.cancel();
        self.server.handler.stopping.cancel();
        for a in accept {
            let _ = a.await;
        }
        let _ = http.await;
        let _ = ticker.await;
        let _ = txn_ticker.await;
        let _ = gauges.await;
        if let Some(s) = shares {
            let _ = s.await;
        }
        for t in cluster_tasks {
            let _ = t.await;
        }
        if let Some((c, _)) = &self.cluster {
            leadership::leave(c, &self.logs).await;
        }
        if let Some(f) = &self.server.handler.followers {
            f.shutdown().await;
        }
        conns.close();
        let drain = Duration::from_millis(self.server.handler.config.shutdown_timeout_ms);
        if tokio::time::timeout(drain, conns.wait()).await.is_err() {
            tracing::warn!("connections did not drain in time");
        }
        self.logs.shutdown().await?;
        tracing::info!("shutdown complete");
        Ok(())
    }
}

/// The catalog store: the file in the data dir (restored from the bucket if the data dir was
/// lost), or in a cluster etcd (with the client to it).
async fn open_catalog(
    config: &Config,
    tier: Option<&Arc<Tier>>,
) -> Result<(Arc<dyn CatalogStore>, Option<(Arc<Etcd>, Arc<EtcdCatalog>)>), BrokerError> {
    if config.clustered() {
        let url = match config.effective_tier_url() {
            Ok(Some(u)) => u,
            _ => {
                return Err(BrokerError::Cluster(
                    "a cluster needs a shared tier_url".into(),
                ))
            }
        };
        let etcd = Arc::new(
            Etcd::new(&config.etcd_endpoints, ETCD_TIMEOUT)
                .map_err(|e| BrokerError::Cluster(e.to_string()))?,
        );
        let store = EtcdCatalog::open(etcd.clone(), &config.etcd_prefix, config.node_id, &url)
            .await
            .map_err(|e| BrokerError::Cluster(e.to_string()))?;
        return Ok((store.clone(), Some((etcd, store))));
    }
    let mut restore = None;
    if let Some(t) = tier {
        if !FileCatalog::exists(&config.data_dir) {
            restore = t.fetch_catalog().await.map_err(|e| {
                BrokerError::Tier(format!("restoring the catalog from {}: {e}", t.url()))
            })?;
        }
    }
    Ok((FileCatalog::open(&config.data_dir, restore).await?, None))
}

/// `/ready`: the broker serves Kafka clients (until shutdown starts) and its object store, if
/// it has one, answers.
fn readiness(tier: Option<Arc<Tier>>, stopping: CancellationToken) -> http::ReadyCheck {
    Arc::new(move || {
        let mut ready = !stopping.is_cancelled();
        let mut detail = String::from(if ready {
            "kafka: serving\n"
        } else {
            "kafka: shutting down\n"
        });
        match tier.as_ref().map(|t| (t.url(), t.health())) {
            None => detail.push_str("tier: off\n"),
            Some((url, None)) => detail.push_str(&format!("tier: ok ({url})\n")),
            Some((url, Some(f))) => {
                ready = false;
                let kind = if f.permanent { "refusing" } else { "failing" };
                detail.push_str(&format!(
                    "tier: {kind} for {} s ({url}): {}\n",
                    f.since.elapsed().as_secs(),
                    f.error
                ));
            }
        }
        http::Readiness { ready, detail }
    })
}

/// The group coordinator as the transaction coordinator sees it: the group's shard here, or
/// in a cluster a marker to the node that leads the shard (retried by the transaction
/// coordinator until it is durable).
struct TxnGroupOffsets {
    groups: Arc<Groups>,
    peers: Option<Arc<crate::api::peers::PeerMarkers>>,
}

#[async_trait::async_trait]
impl GroupOffsets for TxnGroupOffsets {
    async fn end_transaction(
        &self,
        group: &str,
        producer_id: i64,
        commit: bool,
    ) -> std::io::Result<()> {
        use crate::txn::RemoteMarkers;
        match (
            self.groups.get(group),
            &self.peers,
            self.groups.shard(group),
        ) {
            (Ok(c), _, _) => c.end_transaction(group, producer_id, commit).await,
            (Err(_), Some(peers), Some(shard)) => {
                let marker = crate::txn::Marker {
                    producer_id,
                    epoch: 0,
                    commit,
                    coordinator_epoch: 0,
                };
                peers
                    .write(
                        marker,
                        vec![(crate::catalog::GROUPS_TOPIC.to_string(), shard)],
                    )
                    .await
                    .map_err(std::io::Error::other)
            }
            (Err(e), _, _) => Err(std::io::Error::other(format!(
                "group {group}'s coordinator is not available: {e:?}"
            ))),
        }
    }
}

/// Mirrors partition, group and process state into gauges every second.
async fn refresh_gauges(
    logs: Arc<LogManager>,
    groups: Arc<Groups>,
    txns: Arc<Txns>,
    cancel: CancellationToken,
) {
    // groups given series so far: series are never removed, so their number is capped
    let mut exported: HashSet<String> = HashSet::new();
    loop {
        crate::metrics::transactions_open(txns.ongoing());
        for p in logs.all() {
            if let Some(r) = p.remote() {
                let (lag_bytes, lag_segments) = p.upload_lag();
                crate::metrics::tier_partition(
                    &p.topic,
                    p.index,
                    lag_bytes,
                    lag_segments,
                    r.readable_bytes(),
                );
            }
            let o = p.offsets();
            crate::metrics::partition(
                &p.topic,
                p.index,
                crate::metrics::PartitionGauges {
                    log_start_offset: o.log_start_offset,
                    high_watermark: o.high_watermark,
                    last_stable_offset: o.last_stable_offset,
                    log_end_offset: o.log_end_offset,
                    size_bytes: p.size_bytes(),
                },
            );
        }
        // per-group series only for groups with members or offsets (not for every name a
        // JoinGroup ever tried), and for at most MAX_GROUP_SERIES groups
        let with_offsets: HashSet<String> = groups.groups_with_offsets().into_iter().collect();
        let mut admit = |group: &str| {
            exported.contains(group)
                || (exported.len() < crate::metrics::MAX_GROUP_SERIES
                    && exported.insert(group.to_string()))
        };
        for g in groups.list() {
            if (g.members > 0 || with_offsets.contains(&g.id)) && admit(&g.id) {
                crate::metrics::group_members(&g.id, g.members);
                crate::metrics::group_state(&g.id, g.state, crate::group::STATE_NAMES);
            }
        }
        for group in with_offsets.iter().filter(|g| exported.contains(*g)) {
            let Ok(coordinator) = groups.get(group) else {
                continue;
            };
            for ((topic, partition), c) in coordinator.committed_all(group) {
                if let Some(p) = logs.get(&topic, partition) {
                    let hw = p.offsets().high_watermark;
                    crate::metrics::group_lag(group, &topic, partition, hw - c.offset);
                }
            }
        }
        crate::metrics::process();
        crate::metrics::upkeep();
        tokio::select! {
            _ = tokio::time::sleep(GAUGE_REFRESH) => {}
            _ = cancel.cancelled() => return,
        }
    }
}
