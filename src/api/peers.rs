//! Cluster mode: what one node asks another for a transaction. The coordinator writes markers
//! into partitions other nodes lead with WriteTxnMarkers; a leader that is not the coordinator
//! verifies a transactional batch with the coordinator first (AddPartitionsToTxn v4, verify
//! only; for a transactions v2 producer, adding the partition), as Kafka's partition leaders do
//! since KIP-890.

use crate::catalog::Catalog;
use crate::cluster::{Cluster, NodeInfo};
use crate::protocol::client;
use crate::txn::{Marker, RemoteMarkers};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest, GroupId,
    ProducerId, TopicName, TransactionalId, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// How long one node waits for another's answer.
const PEER_TIMEOUT: Duration = Duration::from_secs(30);

fn addr(n: &NodeInfo) -> String {
    format!("{}:{}", n.host, n.port)
}

/// Writes markers through the partitions' leaders.
pub struct PeerMarkers {
    pub cluster: Arc<Cluster>,
    pub catalog: Arc<Catalog>,
}

#[async_trait::async_trait]
impl RemoteMarkers for PeerMarkers {
    async fn write(&self, marker: Marker, partitions: Vec<(String, i32)>) -> Result<(), String> {
        let view = self.cluster.fresh_view().await;
        // leader node → topic → partitions
        let mut by_leader: BTreeMap<i32, (NodeInfo, BTreeMap<String, Vec<i32>>)> = BTreeMap::new();
        for (topic, index) in partitions {
            let Some(meta) = self.catalog.get(&topic) else {
                continue; // deleted: nothing to end
            };
            if index >= meta.partitions {
                continue;
            }
            let Some((node, _)) = view.live_leader(meta.id, index) else {
                return Err(format!("{topic}-{index} has no live leader"));
            };
            by_leader
                .entry(node.id)
                .or_insert_with(|| (node.clone(), BTreeMap::new()))
                .1
                .entry(topic)
                .or_default()
                .push(index);
        }
        for (_, (node, topics)) in by_leader {
            let mut m = WritableTxnMarker::default();
            m.producer_id = ProducerId(marker.producer_id);
            m.producer_epoch = marker.epoch;
            m.transaction_result = marker.commit;
            m.coordinator_epoch = marker.coordinator_epoch;
            for (topic, indexes) in topics {
                let mut t = WritableTxnMarkerTopic::default();
                t.name = TopicName(StrBytes::from_string(topic));
                t.partition_indexes = indexes;
                m.topics.push(t);
            }
            let mut req = WriteTxnMarkersRequest::default();
            req.markers = vec![m];
            let resp = client::call(&addr(&node), 1, &req, PEER_TIMEOUT)
                .await
                .map_err(|e| format!("WriteTxnMarkers to node {}: {e}", node.id))?;
            for m in &resp.markers {
                for t in &m.topics {
                    for p in &t.partitions {
                        // a topic deleted meanwhile has nothing left to end
                        let gone = ResponseError::try_from_code(p.error_code)
                            == Some(ResponseError::UnknownTopicOrPartition);
                        if p.error_code != 0 && !gone {
                            return Err(format!(
                                "node {} refused the marker for {}-{}: error {}",
                                node.id, t.name.0, p.partition_index, p.error_code
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Transactions v2: TxnOffsetCommit v5 on a node that is not the transaction's coordinator adds
/// the group to the transaction there first (AddOffsetsToTxn), as Kafka's group coordinators
/// do. A coordinator that cannot answer is COORDINATOR_NOT_AVAILABLE (the client retries); a
/// stale epoch INVALID_PRODUCER_EPOCH, as Kafka answers TxnOffsetCommit.
pub async fn add_offsets(
    node: Option<NodeInfo>,
    transactional_id: &str,
    (producer_id, epoch): (i64, i16),
    group: &str,
) -> Result<(), ResponseError> {
    let Some(node) = node else {
        return Err(ResponseError::CoordinatorNotAvailable);
    };
    let mut req = AddOffsetsToTxnRequest::default();
    req.transactional_id = TransactionalId(StrBytes::from_string(transactional_id.to_string()));
    req.producer_id = ProducerId(producer_id);
    req.producer_epoch = epoch;
    req.group_id = GroupId(StrBytes::from_string(group.to_string()));
    let resp: AddOffsetsToTxnResponse = match client::call(&addr(&node), 3, &req, PEER_TIMEOUT)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(coordinator = node.id, error = %e, "adding a group to a transaction at its coordinator failed");
            return Err(ResponseError::CoordinatorNotAvailable);
        }
    };
    coordinator_answer(resp.error_code, ResponseError::CoordinatorNotAvailable)
}

/// A transaction coordinator's answer to another node, as that node answers its client: a
/// coordinator that cannot answer now is `unavailable` (an error the client retries), a stale
/// epoch INVALID_PRODUCER_EPOCH (as Kafka's partition leaders and group coordinators say it).
fn coordinator_answer(code: i16, unavailable: ResponseError) -> Result<(), ResponseError> {
    match ResponseError::try_from_code(code) {
        None => Ok(()),
        Some(ResponseError::ProducerFenced) => Err(ResponseError::InvalidProducerEpoch),
        Some(
            ResponseError::NotCoordinator
            | ResponseError::CoordinatorNotAvailable
            | ResponseError::CoordinatorLoadInProgress,
        ) => Err(unavailable),
        Some(e) => Err(e),
    }
}

/// One transactional producer's batches in a Produce request, to verify with the coordinator.
pub struct ToVerify<'a> {
    pub transactional_id: &'a str,
    pub producer_id: i64,
    pub epoch: i16,
    pub partitions: Vec<(String, i32)>,
}

/// Asks the transaction's coordinator (`node`, the leader of its shard) whether each
/// partition is in the producer's open transaction, or with `add` (a Produce v12+ of a
/// transactions v2 producer) to add those that are not. Per partition: `Ok` or the error to
/// answer the batch with. Errors a producer should retry (no coordinator, coordinator busy, no
/// answer) come back as NOT_ENOUGH_REPLICAS and a stale epoch as INVALID_PRODUCER_EPOCH, as
/// Kafka answers them to a producer.
pub async fn verify(
    node: Option<NodeInfo>,
    v: &ToVerify<'_>,
    add: bool,
) -> BTreeMap<(String, i32), Result<(), ResponseError>> {
    let retry = |parts: &[(String, i32)]| {
        parts
            .iter()
            .map(|k| (k.clone(), Err(ResponseError::NotEnoughReplicas)))
            .collect()
    };
    let Some(node) = node else {
        return retry(&v.partitions);
    };
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in &v.partitions {
        by_topic.entry(t).or_default().push(*p);
    }
    let mut txn = AddPartitionsToTxnTransaction::default();
    txn.transactional_id = TransactionalId(StrBytes::from_string(v.transactional_id.to_string()));
    txn.producer_id = ProducerId(v.producer_id);
    txn.producer_epoch = v.epoch;
    txn.verify_only = !add;
    for (t, parts) in by_topic {
        let mut topic = AddPartitionsToTxnTopic::default();
        topic.name = TopicName(StrBytes::from_string(t.to_string()));
        topic.partitions = parts;
        txn.topics.push(topic);
    }
    let mut req = AddPartitionsToTxnRequest::default();
    req.transactions = vec![txn];
    let resp = match client::call(&addr(&node), 4, &req, PEER_TIMEOUT).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(coordinator = node.id, error = %e, "verifying a transactional produce with the coordinator failed");
            return retry(&v.partitions);
        }
    };
    // a producer retries NOT_ENOUGH_REPLICAS, also while the previous transaction's markers
    // are being written (CONCURRENT_TRANSACTIONS)
    let mapped = |code: i16| match coordinator_answer(code, ResponseError::NotEnoughReplicas) {
        Err(ResponseError::ConcurrentTransactions) => Err(ResponseError::NotEnoughReplicas),
        r => r,
    };
    if resp.error_code != 0 {
        let e = mapped(resp.error_code);
        return v.partitions.iter().map(|k| (k.clone(), e)).collect();
    }
    // a partition the answer does not mention stays a retriable failure
    let mut out: BTreeMap<(String, i32), Result<(), ResponseError>> = retry(&v.partitions);
    for r in &resp.results_by_transaction {
        for t in &r.topic_results {
            for p in &t.results_by_partition {
                out.insert(
                    (t.name.0.to_string(), p.partition_index),
                    mapped(p.partition_error_code),
                );
            }
        }
    }
    out
}
