//! AlterPartitionReassignments, ListPartitionReassignments and ElectLeaders.
//!
//! Every node can read every partition's data from the bucket, so a partition's "replicas" are
//! the node that leads it; Metadata shows that node alone. Reassigning a partition to
//! `[n, ...]` makes node `n` its preferred leader (an etcd key the controller honours): the
//! controller moves the partition there (a flush, a hand-over and an epoch bump, with no data
//! to copy), moves it back whenever `n` returns after a failure, and keeps it there when it
//! evens out leaderships. A reassignment is listed while the partition is not led by its
//! assigned node. A preferred election asks for that move now and waits for it; an unclean one
//! waits for a partition without a live leader to get one (the controller gives it to a live
//! node as soon as its leader's lease ends: with the data in the bucket, no election loses
//! acknowledged records). Alone, the node is every partition's only replica.

use super::errors::code;
use super::{Handler, Pending, Reply};
use crate::catalog::TopicMeta;
use crate::protocol::Response;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;
/// Longest an ElectLeaders request waits for its elections.
const MAX_ELECTION_WAIT: Duration = Duration::from_secs(30);

fn err(e: ResponseError, message: &str) -> (i16, Option<StrBytes>) {
    (code(e), Some(StrBytes::from_string(message.to_string())))
}

impl Handler {
    /// The topic and whether `partition` is one of its partitions.
    fn partition_of(&self, topic: &str, partition: i32) -> Option<TopicMeta> {
        self.catalog
            .get(topic)
            .filter(|m| (0..m.partitions).contains(&partition))
    }

    pub(super) fn alter_partition_reassignments(
        self: &Arc<Self>,
        req: AlterPartitionReassignmentsRequest,
        v: i16,
    ) -> Pending {
        let me = self.clone();
        Box::pin(async move {
            let mut resp = AlterPartitionReassignmentsResponse::default();
            if v >= 1 {
                resp.allow_replication_factor_change = req.allow_replication_factor_change;
            }
            let strict_rf = v >= 1 && !req.allow_replication_factor_change;
            for t in req.topics {
                let mut tr = ReassignableTopicResponse::default();
                for p in t.partitions {
                    let mut pr = ReassignablePartitionResponse::default();
                    pr.partition_index = p.partition_index;
                    let replicas = p
                        .replicas
                        .map(|r| r.into_iter().map(|b| b.0).collect::<Vec<i32>>());
                    let outcome = me
                        .reassign(&t.name.0, p.partition_index, replicas, strict_rf)
                        .await;
                    if let Err((c, m)) = outcome {
                        pr.error_code = c;
                        pr.error_message = m;
                    }
                    tr.partitions.push(pr);
                }
                tr.name = t.name;
                resp.responses.push(tr);
            }
            Reply::Send(Response::AlterPartitionReassignments(resp))
        })
    }

    /// One partition's reassignment (`None`: cancel).
    async fn reassign(
        &self,
        topic: &str,
        partition: i32,
        replicas: Option<Vec<i32>>,
        strict_rf: bool,
    ) -> Result<(), (i16, Option<StrBytes>)> {
        let Some(meta) = self.partition_of(topic, partition) else {
            return Err(err(
                ResponseError::UnknownTopicOrPartition,
                "unknown topic or partition",
            ));
        };
        let (nodes, _) = self.nodes();
        let live = |n: &i32| nodes.iter().any(|node| node.id == *n);
        if let Some(r) = &replicas {
            let mut distinct = r.clone();
            distinct.sort_unstable();
            distinct.dedup();
            if r.is_empty() || distinct.len() != r.len() || !r.iter().all(live) {
                return Err(err(
                    ResponseError::InvalidReplicaAssignment,
                    "replicas must be distinct live node ids, at least one",
                ));
            }
            if strict_rf && r.len() != 1 {
                return Err(err(
                    ResponseError::InvalidReplicationFactor,
                    "each partition has one replica (its leader; the bucket holds the data): the replication factor would change",
                ));
            }
        }
        let Some(cluster) = self.cluster.as_deref() else {
            // alone: this node is every partition's only replica
            return match replicas {
                Some(r) if r == [self.config.node_id] => Ok(()),
                Some(_) => Err(err(
                    ResponseError::InvalidReplicaAssignment,
                    "a node running alone holds every partition",
                )),
                None => Err(err(
                    ResponseError::NoReassignmentInProgress,
                    "no reassignment in progress",
                )),
            };
        };
        let view = cluster.fresh_view().await;
        let node = match replicas {
            Some(r) => Some(r[0]),
            None => {
                let ongoing = view
                    .assigned
                    .get(&(meta.id, partition))
                    .is_some_and(|(n, _)| {
                        view.live_leader(meta.id, partition)
                            .is_none_or(|(l, _)| l.id != *n)
                    });
                if !ongoing {
                    return Err(err(
                        ResponseError::NoReassignmentInProgress,
                        "no reassignment in progress",
                    ));
                }
                None
            }
        };
        cluster
            .assign(meta.id, partition, node)
            .await
            .map_err(|e| err(ResponseError::RequestTimedOut, &e.to_string()))?;
        tracing::info!(topic, partition, node, "partition reassigned");
        Ok(())
    }

    pub(super) fn list_partition_reassignments(
        self: &Arc<Self>,
        req: ListPartitionReassignmentsRequest,
    ) -> Pending {
        let me = self.clone();
        Box::pin(async move {
            let mut resp = ListPartitionReassignmentsResponse::default();
            let Some(cluster) = me.cluster.as_deref() else {
                return Reply::Send(Response::ListPartitionReassignments(resp));
            };
            let view = cluster.fresh_view().await;
            let wanted: Option<BTreeMap<String, Vec<i32>>> = req.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes))
                    .collect()
            });
            let mut by_topic: BTreeMap<String, Vec<OngoingPartitionReassignment>> = BTreeMap::new();
            for meta in me.catalog.topics() {
                let asked = match &wanted {
                    Some(w) => match w.get(&meta.name) {
                        Some(ps) => Some(ps),
                        None => continue,
                    },
                    None => None,
                };
                for p in 0..meta.partitions {
                    if asked.is_some_and(|ps| !ps.contains(&p)) {
                        continue;
                    }
                    let Some((to, _)) = view.assigned.get(&(meta.id, p)) else {
                        continue;
                    };
                    let leader = view.live_leader(meta.id, p).map(|(n, _)| n.id);
                    if leader == Some(*to) {
                        continue; // done
                    }
                    let mut o = OngoingPartitionReassignment::default();
                    o.partition_index = p;
                    o.replicas = vec![BrokerId(*to)];
                    o.adding_replicas = vec![BrokerId(*to)];
                    o.removing_replicas = leader.map(BrokerId).into_iter().collect();
                    by_topic.entry(meta.name.clone()).or_default().push(o);
                }
            }
            resp.topics = by_topic
                .into_iter()
                .map(|(name, partitions)| {
                    let mut t = OngoingTopicReassignment::default();
                    t.name = TopicName(StrBytes::from_string(name));
                    t.partitions = partitions;
                    t
                })
                .collect();
            Reply::Send(Response::ListPartitionReassignments(resp))
        })
    }

    pub(super) fn elect_leaders(self: &Arc<Self>, req: ElectLeadersRequest, v: i16) -> Pending {
        let me = self.clone();
        Box::pin(async move {
            let mut resp = ElectLeadersResponse::default();
            let election = if v >= 1 { req.election_type } else { PREFERRED };
            let wanted: Vec<(String, Vec<i32>)> = match req.topic_partitions {
                Some(ts) => ts
                    .into_iter()
                    .map(|t| (t.topic.0.to_string(), t.partitions))
                    .collect(),
                None => me
                    .catalog
                    .topics()
                    .into_iter()
                    .map(|m| (m.name.clone(), (0..m.partitions).collect()))
                    .collect(),
            };
            let wait = Duration::from_millis(u64::try_from(req.timeout_ms).unwrap_or(0))
                .min(MAX_ELECTION_WAIT);
            for (topic, partitions) in wanted {
                let mut r = ReplicaElectionResult::default();
                r.topic = TopicName(StrBytes::from_string(topic.clone()));
                for p in partitions {
                    let mut pr = PartitionResult::default();
                    pr.partition_id = p;
                    if let Err((c, m)) = me.elect(&topic, p, election, wait).await {
                        pr.error_code = c;
                        pr.error_message = m;
                    }
                    r.partition_result.push(pr);
                }
                resp.replica_election_results.push(r);
            }
            Reply::Send(Response::ElectLeaders(resp))
        })
    }

    /// One partition's election: the preferred leader is its assigned node, else the node
    /// leading it.
    async fn elect(
        &self,
        topic: &str,
        partition: i32,
        election: i8,
        wait: Duration,
    ) -> Result<(), (i16, Option<StrBytes>)> {
        let not_needed = || {
            err(
                ResponseError::ElectionNotNeeded,
                "the preferred leader leads the partition",
            )
        };
        let Some(meta) = self.partition_of(topic, partition) else {
            return Err(err(
                ResponseError::UnknownTopicOrPartition,
                "unknown topic or partition",
            ));
        };
        if election != PREFERRED && election != UNCLEAN {
            return Err(err(ResponseError::InvalidRequest, "unknown election type"));
        }
        let Some(cluster) = self.cluster.as_deref() else {
            return Err(not_needed());
        };
        let deadline = Instant::now() + wait;
        let mut view = cluster.fresh_view().await;
        let leader =
            |v: &crate::cluster::View| v.live_leader(meta.id, partition).map(|(n, _)| n.id);
        if election == UNCLEAN {
            if leader(&view).is_some() {
                return Err(not_needed());
            }
            while Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(200)).await;
                view = cluster.fresh_view().await;
                if leader(&view).is_some() {
                    return Ok(());
                }
            }
            return Err(err(
                ResponseError::EligibleLeadersNotAvailable,
                "no live node has taken the partition yet",
            ));
        }
        let preferred = view.assigned.get(&(meta.id, partition)).map(|(n, _)| *n);
        match (preferred, leader(&view)) {
            (None, Some(_)) => return Err(not_needed()),
            (Some(p), Some(l)) if p == l => return Err(not_needed()),
            (Some(p), _) if !view.nodes.contains_key(&p) => {
                return Err(err(
                    ResponseError::PreferredLeaderNotAvailable,
                    "the preferred leader is not live",
                ))
            }
            (None, None) => {
                return Err(err(
                    ResponseError::PreferredLeaderNotAvailable,
                    "the partition has no live leader and no assigned one",
                ))
            }
            _ => {}
        }
        // the controller moves an assigned partition to its live node; wait for it
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            view = cluster.fresh_view().await;
            if leader(&view).is_some() && leader(&view) == preferred {
                return Ok(());
            }
        }
        Err(err(
            ResponseError::RequestTimedOut,
            "the preferred leader did not take the partition in time",
        ))
    }
}
