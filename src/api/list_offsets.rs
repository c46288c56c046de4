//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3), earliest local (-4), latest
//! tiered (-5, KIP-1005) and by timestamp through the time index. From v10 a lookup that reads
//! the bucket is bounded by the request's `timeout_ms` (KIP-1075: REQUEST_TIMED_OUT).

use super::errors::{code, log_error};
use super::{Handler, Pending, Reply};
use crate::catalog::Catalog;
use crate::cluster::Cluster;
use crate::log::partition::Partition;
use crate::log::LogManager;
use crate::protocol::Response;
use crate::security::acl::{op, resource};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL: i64 = -4;
pub const LATEST_TIERED: i64 = -5;

impl Handler {
    pub(super) fn list_offsets(&self, mut req: ListOffsetsRequest, v: i16) -> Pending {
        let logs = self.logs.clone();
        let catalog = self.catalog.clone();
        let cluster = self.cluster.clone();
        // topics the principal may not describe: TOPIC_AUTHORIZATION_FAILED
        let (asked, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut req.topics)
            .into_iter()
            .partition(|t| self.allowed(op::DESCRIBE, resource::TOPIC, &t.name.0));
        req.topics = asked;
        Box::pin(async move {
            let mut resp = list_offsets(&logs, &catalog, cluster.as_deref(), req, v).await;
            for t in denied {
                let mut tr = ListOffsetsTopicResponse::default();
                tr.name = t.name;
                for p in t.partitions {
                    let mut pr = ListOffsetsPartitionResponse::default();
                    pr.partition_index = p.partition_index;
                    pr.timestamp = -1;
                    pr.offset = -1;
                    pr.error_code = code(ResponseError::TopicAuthorizationFailed);
                    tr.partitions.push(pr);
                }
                resp.topics.push(tr);
            }
            Reply::Send(Response::ListOffsets(resp))
        })
    }
}

/// Every partition in order; a timestamp lookup may read remote segments.
async fn list_offsets(
    logs: &LogManager,
    catalog: &Catalog,
    cluster: Option<&Cluster>,
    req: ListOffsetsRequest,
    v: i16,
) -> ListOffsetsResponse {
    let mut resp = ListOffsetsResponse::default();
    let req_isolation = req.isolation_level;
    let limit = (v >= 10 && req.timeout_ms > 0)
        .then(|| std::time::Duration::from_millis(req.timeout_ms as u64));
    for t in req.topics {
        let mut tr = ListOffsetsTopicResponse::default();
        tr.name = t.name.clone();
        let meta = catalog.get(&t.name.0);
        for p in t.partitions {
            let mut pr = ListOffsetsPartitionResponse::default();
            pr.partition_index = p.partition_index;
            pr.timestamp = -1;
            pr.offset = -1;
            if v >= 4 {
                pr.leader_epoch = meta
                    .as_ref()
                    .map_or(0, |m| super::leader_epoch(cluster, m, p.partition_index));
            }
            let log = logs.get(&t.name.0, p.partition_index);
            // KIP-320: a client with another idea of the leader epoch is refused
            let refused = match (&log, &meta) {
                (Some(l), Some(m)) => {
                    super::epoch_error(p.current_leader_epoch, super::serving_epoch(m, l))
                }
                _ => None,
            };
            match log.filter(|_| refused.is_none()) {
                None if refused.is_some() => {
                    pr.error_code = code(refused.unwrap_or(ResponseError::UnknownServerError))
                }
                None => {
                    pr.error_code = code(super::absent(
                        cluster,
                        catalog,
                        &t.name.0,
                        p.partition_index,
                    ))
                }
                Some(log) => {
                    let o = log.offsets();
                    match p.timestamp {
                        // read_committed consumers start at the last stable offset
                        LATEST if req_isolation == 1 => pr.offset = o.last_stable_offset,
                        LATEST => pr.offset = o.high_watermark,
                        EARLIEST => pr.offset = o.log_start_offset,
                        EARLIEST_LOCAL => pr.offset = log.local_start_offset(),
                        LATEST_TIERED => {
                            (pr.offset, pr.leader_epoch) =
                                latest_tiered(logs, cluster, &log, pr.leader_epoch).await
                        }
                        MAX_TIMESTAMP => match within(limit, &log, log.max_timestamp()).await {
                            Ok(Some((off, ts))) => {
                                pr.offset = off;
                                pr.timestamp = ts;
                            }
                            Ok(None) => {}
                            Err(e) => pr.error_code = code(e),
                        },
                        ts => match within(limit, &log, log.find_offset_for_timestamp(ts)).await {
                            Ok(Some((off, found_ts))) => {
                                pr.offset = off;
                                pr.timestamp = found_ts;
                            }
                            Ok(None) => {}
                            Err(e) => pr.error_code = code(e),
                        },
                    }
                }
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    resp
}

/// A lookup of `log` that may read the bucket, within the request's time limit (v10+).
async fn within<T>(
    limit: Option<std::time::Duration>,
    log: &Partition,
    lookup: impl std::future::Future<Output = Result<T, crate::log::LogError>>,
) -> Result<T, ResponseError> {
    let done = match limit {
        Some(l) => tokio::time::timeout(l, lookup)
            .await
            .map_err(|_| ResponseError::RequestTimedOut)?,
        None => lookup.await,
    };
    done.map_err(|e| {
        tracing::warn!(topic = %log.topic, partition = log.index, error = %e, "offset lookup failed");
        log_error(&e)
    })
}

/// KIP-1005: the last offset uploaded to the bucket and the leader epoch it was written in;
/// `(-1, -1)` while nothing is, or when the topic is not tiered, as Kafka answers.
async fn latest_tiered(
    logs: &LogManager,
    cluster: Option<&Cluster>,
    log: &Partition,
    serving_epoch: i32,
) -> (i64, i32) {
    let Some(last) = log
        .remote()
        .and_then(|r| r.uploaded_end())
        .filter(|&end| end > 0)
        .map(|end| end - 1)
    else {
        return (-1, -1);
    };
    // one node has one epoch; a cluster's partition keeps its history
    if cluster.is_none() {
        return (last, serving_epoch);
    }
    let history = logs
        .local_epochs(&log.topic, log.index)
        .await
        .unwrap_or_default();
    let epoch = history
        .iter()
        .rev()
        .find(|e| e.start_offset <= last)
        .map_or(serving_epoch, |e| e.epoch);
    (last, epoch)
}
