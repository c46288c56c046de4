//! One handler per Kafka API family, and the one place internal errors become Kafka error codes
//! (`errors.rs`).
//!
//! A handler runs in two phases so a connection can pipeline without reordering: [`Handler::handle`]
//! does the work whose order matters (appends, topic changes) before it returns, and hands back a
//! [`Pending`] future for the part that may wait (fsync for acks=all, long-poll fetches). The
//! server awaits those futures in request order.

mod acls;
mod alter_configs;
mod api_versions;
mod authz;
mod client_quotas;
mod cluster;
mod consumer_groups;
mod delete_records;
mod describe_configs;
mod describe_topic_partitions;
pub mod errors;
mod fetch;
pub mod fetch_memory;
pub mod fetch_session;
mod groups;
mod leader_epochs;
mod list_offsets;
mod log_dirs;
mod metadata;
mod offsets;
pub mod peers;
mod produce;
pub mod quota;
mod reassign;
pub mod sasl;
mod share_fetch;
mod share_groups;
mod telemetry;
mod topics;
mod txn;
mod txn_markers;
mod users;

use crate::catalog::{Catalog, CatalogError, NewTopic, TopicMeta};
use crate::cluster::{Cluster, NodeInfo};
use crate::config::Config;
use crate::group::Groups;
use crate::log::LogManager;
use crate::protocol::{Request, RequestContext, Response};
use kafka_protocol::messages::BrokerId;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use api_versions::api_versions_response;

/// Topics whose partitions are being created at once by one request.
const PARTITION_CREATIONS: usize = 8;

/// Who sent the request being handled, and where.
#[derive(Debug, Clone)]
pub struct Session {
    /// The listener it came in on: nodes' addresses are answered as that listener
    /// advertises them.
    pub listener: Arc<str>,
    pub peer: std::net::SocketAddr,
    /// `User:<name>` (SASL, or a client certificate), or `User:ANONYMOUS`.
    pub principal: Arc<str>,
    /// The client software's name and version, once its ApiVersions (v3+) said them (one per
    /// connection, shared by its requests).
    pub software: Arc<parking_lot::Mutex<Option<(String, String)>>>,
    /// The connection sends file slices with `sendfile` (plain TCP): a Fetch may answer with
    /// batches left in their files.
    pub send_file: bool,
}

tokio::task_local! {
    /// The session of the request being handled (set by the server around each request).
    pub static SESSION: Session;
}

/// The address of node `n` for the listener of the request being handled.
pub(crate) fn endpoint(n: &NodeInfo) -> (String, i32) {
    SESSION
        .try_with(|s| n.endpoint(Some(&s.listener)))
        .unwrap_or_else(|_| n.endpoint(None))
}

/// How a request ends.
#[derive(Debug)]
pub enum Reply {
    Send(Response),
    /// A Fetch response, holding its share of the fetch memory budget until it is written; its
    /// records that are placeholders (see [`crate::protocol::placeholder`]) are sent from these
    /// file slices.
    Fetched(
        Response,
        Option<fetch_memory::Held>,
        Vec<crate::fs::FileSlice>,
    ),
    /// No response is sent (acks=0 produce that succeeded).
    Nothing,
    /// Close the connection without a response: how Kafka tells an acks=0 producer that a
    /// produce failed, so it refreshes its metadata.
    Close,
}

/// The rest of a request.
pub type Pending = Pin<Box<dyn Future<Output = Reply> + Send>>;

fn ready(r: Response) -> Pending {
    Box::pin(std::future::ready(Reply::Send(r)))
}

/// Everything a handler may touch.
pub struct Handler {
    pub config: Config,
    pub catalog: Arc<Catalog>,
    pub logs: Arc<LogManager>,
    pub groups: Arc<Groups>,
    pub txns: Arc<crate::txn::Txns>,
    /// Host and port of the inter-broker listener (the first by default), advertised to
    /// clients of a listener that is not in `advertised_listeners`.
    pub advertised: (String, i32),
    /// Every listener's advertised host and port, by listener name.
    pub advertised_listeners: std::collections::BTreeMap<String, (String, i32)>,
    /// The address actually bound (the first listener's).
    pub listen: std::net::SocketAddr,
    /// Every listener's name and bound address, in `listeners` order.
    pub listeners: Vec<(String, std::net::SocketAddr)>,
    /// The cluster this node belongs to (`None`: it runs alone).
    pub cluster: Option<Arc<Cluster>>,
    /// Cluster mode: copies of partitions other nodes lead, for consumers in this node's rack.
    pub followers: Option<Arc<crate::log::followers::Followers>>,
    /// Partitions created per second (`topic_mutation_rate`).
    pub mutations: quota::MutationQuota,
    /// Record data in Fetch responses (`fetch_memory_max_bytes`).
    pub fetch_memory: fetch_memory::FetchMemory,
    /// Incremental fetch sessions (KIP-227).
    pub sessions: fetch_session::FetchSessions,
    /// Cancelled when the broker starts shutting down: parked long polls answer at once.
    pub stopping: tokio_util::sync::CancellationToken,
    /// `authorizer = acl`: super users and `allow_everyone_if_no_acl_found` (`None`: no
    /// authorizer, everyone may do everything).
    pub acl: Option<crate::security::acl::AclSettings>,
    /// Client quotas: a Fetch under a `consumer_byte_rate` is sized to it.
    pub quotas: Arc<crate::security::quotas::ClientQuotas>,
    /// Client telemetry (KIP-714): the subscription and what clients pushed.
    pub telemetry: Arc<crate::telemetry::Telemetry>,
    /// Share groups (KIP-932), served by a node that runs alone (`None` in a cluster).
    pub share: Option<Arc<crate::share::ShareGroups>>,
}

/// Why a partition this node has no log for is not served here: it does not exist, or (in a
/// cluster) another node leads it.
pub(crate) fn absent(
    cluster: Option<&Cluster>,
    catalog: &Catalog,
    topic: &str,
    partition: i32,
) -> kafka_protocol::error::ResponseError {
    absent_from(cluster.is_some(), catalog.get(topic).as_ref(), partition)
}

/// [`absent`] with the topic's metadata already at hand (`clustered`: this node is in a cluster).
pub(crate) fn absent_from(
    clustered: bool,
    meta: Option<&TopicMeta>,
    partition: i32,
) -> kafka_protocol::error::ResponseError {
    use kafka_protocol::error::ResponseError;
    match meta {
        Some(m) if clustered && (0..m.partitions).contains(&partition) => {
            ResponseError::NotLeaderOrFollower
        }
        _ => ResponseError::UnknownTopicOrPartition,
    }
}

/// KIP-320: a client's `current_leader_epoch` (-1: none given) against the epoch the partition
/// is served at here: older is FENCED_LEADER_EPOCH (the client must refresh its metadata),
/// newer UNKNOWN_LEADER_EPOCH (this node has not caught up with the change yet).
pub(crate) fn epoch_error(
    current: i32,
    serving: i32,
) -> Option<kafka_protocol::error::ResponseError> {
    use kafka_protocol::error::ResponseError;
    match current {
        c if c < 0 => None,
        c if c < serving => Some(ResponseError::FencedLeaderEpoch),
        c if c > serving => Some(ResponseError::UnknownLeaderEpoch),
        _ => None,
    }
}

/// KIP-951: the leader clients should go to for a partition this node does not lead, as
/// (leader id, epoch, host, port); `None` when no live node leads it.
pub(crate) fn leader_hint(
    cluster: Option<&Cluster>,
    catalog: &Catalog,
    topic: &str,
    partition: i32,
) -> Option<(i32, i32, String, i32)> {
    let meta = catalog.get(topic)?;
    let view = cluster?.view();
    let (node, epoch) = view.live_leader(meta.id, partition)?;
    let (host, port) = endpoint(node);
    Some((node.id, epoch, host, port))
}

/// The epoch a partition this node serves is led at: the one it took it over at (cluster), or
/// the catalog's.
pub(crate) fn serving_epoch(meta: &TopicMeta, log: &crate::log::Partition) -> i32 {
    log.leader_epoch()
        .unwrap_or_else(|| meta.leader_epoch(log.index))
}

/// A partition's leader epoch as clients are told it: the cluster's, or the catalog's alone.
pub(crate) fn leader_epoch(cluster: Option<&Cluster>, meta: &TopicMeta, partition: i32) -> i32 {
    match cluster {
        Some(c) => c.view().epoch(meta.id, partition).max(0),
        None => meta.leader_epoch(partition),
    }
}

impl Handler {
    pub fn node_id(&self) -> BrokerId {
        BrokerId(self.config.node_id)
    }

    /// This node as clients see it.
    pub fn me(&self) -> NodeInfo {
        NodeInfo {
            id: self.config.node_id,
            host: self.advertised.0.clone(),
            port: self.advertised.1,
            draining: self.config.decommission,
            rack: self.config.rack().map(str::to_string),
            listeners: self.advertised_listeners.clone(),
        }
    }

    /// The node coordinating the ids of `shard` of an internal coordinator topic: this one
    /// alone; in a cluster, the partition's live leader (`None` while it has none, or before
    /// the shard count is known).
    pub fn shard_leader(&self, topic: &str, shard: Option<i32>) -> Option<NodeInfo> {
        let Some(cluster) = self.cluster.as_deref() else {
            return Some(self.me());
        };
        let meta = self.catalog.get(topic)?;
        let view = cluster.view();
        view.live_leader(meta.id, shard?).map(|(n, _)| n.clone())
    }

    /// The node coordinating group `group`.
    pub fn group_coordinator(&self, group: &str) -> Option<NodeInfo> {
        self.shard_leader(crate::catalog::GROUPS_TOPIC, self.groups.shard(group))
    }

    /// The node coordinating transactional id `id`.
    pub fn txn_coordinator(&self, id: &str) -> Option<NodeInfo> {
        self.shard_leader(crate::catalog::TXNS_TOPIC, self.txns.shard(id))
    }

    /// The live nodes (id, host, port) and the controller's id, as clients are told them.
    pub fn nodes(&self) -> (Vec<NodeInfo>, i32) {
        match &self.cluster {
            None => (vec![self.me()], self.config.node_id),
            Some(c) => {
                let v = c.view();
                let mut nodes: Vec<_> = v.nodes.values().cloned().collect();
                if !v.nodes.contains_key(&self.config.node_id) {
                    nodes.push(self.me()); // answering, so alive, even if etcd has not said so yet
                }
                // every node serves admin requests (the catalog is in etcd): before the first
                // election this one stands in, so no client waits for a controller
                (nodes, v.controller.unwrap_or(self.config.node_id))
            }
        }
    }

    /// Runs the ordered part of a request and returns the rest.
    pub async fn handle(
        self: &Arc<Self>,
        ctx: &RequestContext,
        peer: std::net::SocketAddr,
        req: Request,
    ) -> Pending {
        let v = ctx.api_version;
        if self.acl.is_some() {
            if let Some(resp) = self.refuse_whole(&req, v) {
                return ready(resp);
            }
        }
        match req {
            Request::ApiVersions(r) => {
                // who the client is (v3+), for its telemetry's labels
                if !r.client_software_name.is_empty() {
                    let _ = SESSION.try_with(|s| {
                        *s.software.lock() = Some((
                            r.client_software_name.to_string(),
                            r.client_software_version.to_string(),
                        ))
                    });
                }
                ready(Response::ApiVersions(api_versions_response(
                    0,
                    self.config.transaction_version,
                    self.share.is_some(),
                )))
            }
            Request::Metadata(r) => ready(Response::Metadata(self.metadata(r, v).await)),
            Request::Produce(r) => {
                let client = ctx.client_id.as_deref().unwrap_or_default();
                self.produce(r, v, (client, peer)).await
            }
            Request::Fetch(r) => self.fetch(r, v, ctx.client_id.as_deref().unwrap_or_default()),
            Request::ListOffsets(r) => self.list_offsets(r, v),
            Request::CreateTopics(r) => {
                ready(Response::CreateTopics(self.handle_create_topics(r).await))
            }
            Request::DeleteTopics(r) => {
                ready(Response::DeleteTopics(self.delete_topics(r, v).await))
            }
            Request::CreatePartitions(r) => {
                ready(Response::CreatePartitions(self.create_partitions(r).await))
            }
            Request::DescribeConfigs(r) => {
                ready(Response::DescribeConfigs(self.describe_configs(r, v)))
            }
            Request::AlterPartitionReassignments(r) => self.alter_partition_reassignments(r, v),
            Request::ListPartitionReassignments(r) => self.list_partition_reassignments(r),
            Request::ElectLeaders(r) => self.elect_leaders(r, v),
            Request::DescribeTopicPartitions(r) => ready(Response::DescribeTopicPartitions(
                self.describe_topic_partitions(r).await,
            )),
            Request::DescribeCluster(r) => {
                ready(Response::DescribeCluster(self.describe_cluster(r, v)))
            }
            Request::FindCoordinator(r) => {
                ready(Response::FindCoordinator(self.find_coordinator(r, v)))
            }
            Request::JoinGroup(r) => {
                let client = ctx.client_id.clone().unwrap_or_default();
                self.join_group(r, v, client, format!("/{}", peer.ip()))
            }
            Request::SyncGroup(r) => self.sync_group(r, v),
            Request::Heartbeat(r) => ready(Response::Heartbeat(self.heartbeat(r, v))),
            Request::LeaveGroup(r) => ready(Response::LeaveGroup(self.leave_group(r, v))),
            Request::OffsetCommit(r) => self.offset_commit(r, v),
            Request::OffsetFetch(r) => ready(Response::OffsetFetch(self.offset_fetch(r, v))),
            Request::DescribeGroups(r) => ready(Response::DescribeGroups(self.describe_groups(r))),
            Request::ListGroups(r) => ready(Response::ListGroups(self.list_groups(r))),
            Request::DeleteGroups(r) => self.delete_groups(r),
            Request::ConsumerGroupHeartbeat(r) => {
                let client = ctx.client_id.clone().unwrap_or_default();
                ready(Response::ConsumerGroupHeartbeat(
                    self.consumer_group_heartbeat(r, v, client, format!("/{}", peer.ip())),
                ))
            }
            Request::ConsumerGroupDescribe(r) => ready(Response::ConsumerGroupDescribe(
                self.consumer_group_describe(r),
            )),
            Request::OffsetDelete(r) => self.offset_delete(r),
            Request::InitProducerId(r) => self.init_producer_id(r, v),
            Request::AddPartitionsToTxn(r) => self.add_partitions_to_txn(r, v),
            Request::AddOffsetsToTxn(r) => self.add_offsets_to_txn(r, v),
            Request::EndTxn(r) => self.end_txn(r, v),
            Request::TxnOffsetCommit(r) => self.txn_offset_commit(r, v),
            Request::WriteTxnMarkers(r) => self.write_txn_markers(r),
            Request::DescribeProducers(r) => ready(Response::DescribeProducers(
                self.describe_producers(r).await,
            )),
            Request::DescribeTransactions(r) => ready(Response::DescribeTransactions(
                self.describe_transactions(r),
            )),
            Request::ListTransactions(r) => {
                ready(Response::ListTransactions(self.list_transactions(r, v)))
            }
            Request::AlterConfigs(r) => ready(Response::AlterConfigs(self.alter_configs(r).await)),
            Request::IncrementalAlterConfigs(r) => ready(Response::IncrementalAlterConfigs(
                self.incremental_alter_configs(r).await,
            )),
            Request::DeleteRecords(r) => {
                ready(Response::DeleteRecords(self.delete_records(r).await))
            }
            Request::OffsetForLeaderEpoch(r) => ready(Response::OffsetForLeaderEpoch(
                self.offset_for_leader_epoch(r).await,
            )),
            Request::DescribeLogDirs(r) => {
                ready(Response::DescribeLogDirs(self.describe_log_dirs(r).await))
            }
            Request::DescribeUserScramCredentials(r) => ready(
                Response::DescribeUserScramCredentials(self.describe_user_scram_credentials(r)),
            ),
            Request::AlterUserScramCredentials(r) => self.alter_user_scram_credentials(r),
            Request::DescribeClientQuotas(r) => ready(Response::DescribeClientQuotas(
                self.describe_client_quotas(r),
            )),
            Request::AlterClientQuotas(r) => self.alter_client_quotas(r),
            Request::GetTelemetrySubscriptions(r) => {
                let client = ctx.client_id.as_deref().unwrap_or_default();
                ready(Response::GetTelemetrySubscriptions(
                    self.get_telemetry_subscriptions(r, client),
                ))
            }
            Request::PushTelemetry(r) => ready(Response::PushTelemetry(self.push_telemetry(r))),
            Request::ShareGroupHeartbeat(r) => {
                let client = ctx.client_id.clone().unwrap_or_default();
                ready(Response::ShareGroupHeartbeat(self.share_group_heartbeat(
                    r,
                    client,
                    format!("/{}", peer.ip()),
                )))
            }
            Request::ShareGroupDescribe(r) => {
                ready(Response::ShareGroupDescribe(self.share_group_describe(r)))
            }
            Request::ShareFetch(r) => self.share_fetch(r),
            Request::ShareAcknowledge(r) => self.share_acknowledge(r),
            Request::DescribeShareGroupOffsets(r) => ready(Response::DescribeShareGroupOffsets(
                self.describe_share_group_offsets(r),
            )),
            Request::AlterShareGroupOffsets(r) => self.alter_share_group_offsets(r),
            Request::DeleteShareGroupOffsets(r) => self.delete_share_group_offsets(r),
            Request::CreateAcls(r) => self.create_acls(r),
            Request::DescribeAcls(r) => ready(Response::DescribeAcls(self.describe_acls(r))),
            Request::DeleteAcls(r) => self.delete_acls(r),
            // a SASL listener's server answers these before a request reaches here
            req @ (Request::SaslHandshake(_) | Request::SaslAuthenticate(_)) => {
                match sasl::not_a_sasl_listener(&req) {
                    Some(resp) => ready(resp),
                    None => Box::pin(std::future::ready(Reply::Close)),
                }
            }
        }
    }

    /// Creates topics in the catalog (one durable write for all of them) and their partitions
    /// on disk (CreateTopics and auto-creation). Each topic succeeds or fails on its own.
    pub async fn create_topics(
        &self,
        topics: Vec<NewTopic>,
    ) -> Vec<Result<TopicMeta, CatalogError>> {
        use futures::StreamExt;
        // the mutation quota first: topics past it never reach the catalog
        let mut admitted = Vec::new();
        let mut results: Vec<Option<Result<TopicMeta, CatalogError>>> = Vec::new();
        for t in topics {
            match self.mutations.take(t.partitions) {
                Ok(()) => {
                    admitted.push((results.len(), t));
                    results.push(None);
                }
                Err(wait) => results.push(Some(Err(CatalogError::QuotaExceeded(wait)))),
            }
        }
        let (slots, admitted): (Vec<usize>, Vec<NewTopic>) = admitted.into_iter().unzip();
        let created = self.catalog.create_topics(admitted).await;
        let created: Vec<Result<TopicMeta, CatalogError>> = futures::stream::iter(created)
            .map(|r| async move {
                let meta = r?;
                let log_config = self.catalog.log_config(&meta);
                // in a cluster a partition is opened by the node that comes to lead it
                let local = if self.cluster.is_some() { 0 } else { meta.partitions };
                for p in 0..local {
                    self.logs
                        .create_partition(&meta.name, meta.id, p, log_config.clone())
                        .await
                        .map_err(errors::partition_storage)?;
                }
                tracing::info!(topic = %meta.name, partitions = meta.partitions, id = %meta.id, "created topic");
                Ok(meta)
            })
            .buffered(PARTITION_CREATIONS)
            .collect()
            .await;
        for (slot, r) in slots.into_iter().zip(created) {
            results[slot] = Some(r);
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or(Err(CatalogError::Conflict)))
            .collect()
    }
}
