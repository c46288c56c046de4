//! WriteTxnMarkers: what a transaction coordinator sends the leader of each partition of a
//! decided transaction (in a cluster, the coordinator and the leader are often different
//! nodes). Each marker is appended and answered once it is durable, as the coordinator's own
//! markers are.

use super::errors::{code, log_error};
use super::{Handler, Pending, Reply};
use crate::protocol::Response;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use std::sync::Arc;

impl Handler {
    pub(super) fn write_txn_markers(self: &Arc<Self>, req: WriteTxnMarkersRequest) -> Pending {
        let me = self.clone();
        Box::pin(async move {
            let mut resp = WriteTxnMarkersResponse::default();
            // what only brokers send: CLUSTER_ACTION on the cluster
            let denied = !me.cluster_allowed(crate::security::acl::op::CLUSTER_ACTION);
            for m in req.markers {
                let mut mr = WritableTxnMarkerResult::default();
                mr.producer_id = m.producer_id;
                for t in m.topics {
                    let mut tr = WritableTxnMarkerTopicResult::default();
                    tr.name = t.name.clone();
                    for index in t.partition_indexes {
                        let mut pr = WritableTxnMarkerPartitionResult::default();
                        pr.partition_index = index;
                        if denied {
                            pr.error_code = code(
                                kafka_protocol::error::ResponseError::ClusterAuthorizationFailed,
                            );
                            tr.partitions.push(pr);
                            continue;
                        }
                        if t.name.0.as_str() == crate::catalog::GROUPS_TOPIC {
                            pr.error_code = me
                                .end_group_offsets(index, m.producer_id.0, m.transaction_result)
                                .await;
                            tr.partitions.push(pr);
                            continue;
                        }
                        pr.error_code = match me.logs.get(&t.name.0, index) {
                            None => code(super::absent(
                                me.cluster.as_deref(),
                                &me.catalog,
                                &t.name.0,
                                index,
                            )),
                            Some(p) => {
                                let written = p
                                    .append_marker(
                                        m.producer_id.0,
                                        m.producer_epoch,
                                        m.transaction_result,
                                        m.coordinator_epoch,
                                    )
                                    .await;
                                let durable = match written {
                                    Ok(offset) => p.wait_durable(offset + 1).await,
                                    Err(e) => Err(e),
                                };
                                match durable {
                                    Ok(()) => 0,
                                    Err(e) => {
                                        tracing::warn!(topic = %p.topic, partition = index, producer_id = m.producer_id.0, error = %e, "a transaction marker from the coordinator was not written");
                                        code(log_error(&e))
                                    }
                                }
                            }
                        };
                        tr.partitions.push(pr);
                    }
                    mr.topics.push(tr);
                }
                resp.markers.push(mr);
            }
            Reply::Send(Response::WriteTxnMarkers(resp))
        })
    }

    /// A marker for a shard of the groups topic: the transaction's offsets pending in that
    /// shard's groups are committed or dropped, durably.
    async fn end_group_offsets(&self, shard: i32, producer_id: i64, commit: bool) -> i16 {
        let Some(c) = self.groups.get_shard(shard) else {
            return code(ResponseError::NotCoordinator);
        };
        match c.end_producer(producer_id, commit).await {
            Ok(()) => 0,
            Err(e) => {
                tracing::warn!(shard, producer_id, error = %e, "ending a transaction's group offsets failed");
                code(ResponseError::NotCoordinator)
            }
        }
    }
}
