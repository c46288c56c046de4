//! Produce: validate and append one batch per partition; acks=all waits for group-commit fsync.

use super::errors::{code, log_error};
use super::{Handler, Pending, Reply};
use crate::format::batch;
use crate::log::{AppendInfo, Io, LogError, Partition, Verify};
use crate::protocol::Response;
use crate::security::acl::{op, resource};
use crate::txn::TxnCoordinator;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// How long a produce waits for a partition this node was made leader of and is still taking
/// over (cluster mode) before it answers NOT_LEADER_OR_FOLLOWER.
const TAKE_OVER_WAIT: Duration = Duration::from_secs(5);

/// One partition's outcome, before any acks=all wait.
struct Outcome {
    index: i32,
    result: Result<AppendInfo, ResponseError>,
    message: Option<String>,
    /// Indexes of the records that made the batch invalid (KIP-467).
    record_errors: Vec<i32>,
    partition: Option<Arc<Partition>>,
}

impl Handler {
    /// The partition to append to. In a cluster, one this node has been made leader of but is
    /// still taking over (catching up from the bucket) is waited for, at most
    /// [`TAKE_OVER_WAIT`], rather than refused: a client that pipelines its requests would see
    /// the first refused and the next ones out of sequence once the partition serves, and
    /// librdkafka answers that by bumping its producer epoch and sending unconfirmed batches
    /// again under new sequences (records that may then be written twice). A connection's
    /// requests are read one after the other, so they still reach the partition in order.
    async fn served_or_coming(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        if let Some(p) = self.logs.get(topic, partition) {
            return Some(p);
        }
        let cluster = self.cluster.as_deref()?;
        let id = self.catalog.get(topic)?.id;
        let deadline = tokio::time::Instant::now() + TAKE_OVER_WAIT;
        loop {
            let view = cluster.view();
            let coming = cluster.lease_valid()
                && !view.moves.contains_key(&(id, partition))
                && view
                    .leaders
                    .get(&(id, partition))
                    .is_some_and(|(l, _)| l.node == self.config.node_id);
            if !coming || tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            if let Some(p) = self.logs.get(topic, partition) {
                return Some(p);
            }
        }
    }

    /// Checks every partition's batch, appends them all in one trip to the log's I/O executor,
    /// then returns the wait for durability (acks=all) and the response.
    pub(super) async fn produce(
        &self,
        mut req: ProduceRequest,
        v: i16,
        who: (&str, SocketAddr),
    ) -> Pending {
        // v13+ names topics by id (KIP-516): resolved first; an id that names no topic (never,
        // or no longer) is UNKNOWN_TOPIC_ID
        let mut unknown_ids = Vec::new();
        if v >= 13 {
            for t in &mut req.topic_data {
                match self.catalog.get_by_id(t.topic_id) {
                    Some(m) => t.name = TopicName(StrBytes::from_string(m.name)),
                    None => unknown_ids.push(t.topic_id),
                }
            }
        }
        let acks = req.acks;
        let valid_acks = matches!(acks, -1..=1);
        let verified = self.verify_transactional(&req, v >= 12).await;
        // the transaction's coordinator, when it is here: it checks transactional batches
        // under the partition lock
        let coordinator = req
            .transactional_id
            .as_ref()
            .and_then(|id| self.txns.get(&id.0).ok());
        // a transactional producer needs WRITE on its transactional id, every producer WRITE
        // on each topic
        let txn_denied = req
            .transactional_id
            .as_ref()
            .is_some_and(|id| !self.allowed(op::WRITE, resource::TRANSACTIONAL_ID, &id.0));
        let mut topics: Vec<((TopicName, Uuid), Vec<Outcome>)> = Vec::new();
        // (topic slot, partition slot, batch size) of each batch going to the log
        let mut queued = Vec::new();
        let mut batches = Vec::new();
        for t in req.topic_data {
            let mut outcomes = Vec::with_capacity(t.partition_data.len());
            let unknown = v >= 13 && unknown_ids.contains(&t.topic_id);
            let denied =
                !unknown && (txn_denied || !self.allowed(op::WRITE, resource::TOPIC, &t.name.0));
            for pd in t.partition_data {
                if denied || unknown {
                    outcomes.push(Outcome {
                        index: pd.index,
                        result: Err(if unknown {
                            ResponseError::UnknownTopicId
                        } else if txn_denied {
                            ResponseError::TransactionalIdAuthorizationFailed
                        } else {
                            ResponseError::TopicAuthorizationFailed
                        }),
                        message: None,
                        record_errors: Vec::new(),
                        partition: None,
                    });
                    continue;
                }
                let partition = self.served_or_coming(&t.name.0, pd.index).await;
                let mut o = Outcome {
                    index: pd.index,
                    // set below for every partition: refused here, or by the log's answer
                    result: Err(ResponseError::UnknownServerError),
                    message: None,
                    record_errors: Vec::new(),
                    partition: partition.clone(),
                };
                match (valid_acks, &partition, pd.records) {
                    (false, _, _) => o.result = Err(ResponseError::InvalidRequiredAcks),
                    (true, None, _) => {
                        o.result = Err(super::absent(
                            self.cluster.as_deref(),
                            &self.catalog,
                            &t.name.0,
                            pd.index,
                        ))
                    }
                    (true, Some(_), _) if crate::catalog::is_coordinator_topic(&t.name.0) => {
                        o.result = Err(ResponseError::InvalidTopicException);
                        o.message = Some("cannot append to an internal topic".to_string());
                    }
                    (true, Some(_), None) => {
                        o.result = Err(ResponseError::InvalidRecord);
                        o.message = Some("records are null".to_string());
                    }
                    (true, Some(p), Some(records)) => {
                        let size = records.len();
                        let verify = match verified.get(&(t.name.0.to_string(), pd.index)) {
                            // zstd came with Produce v7 (KIP-110): older requests may not use it
                            _ if v < 7 && batch::codec_of(&records) == Some(4) => {
                                Err(ResponseError::UnsupportedCompressionType)
                            }
                            None => Ok(verifier(p, coordinator.clone())),
                            Some(Ok((producer_id, seen))) => Ok(unchanged(p, *producer_id, *seen)),
                            Some(Err(e)) => Err(*e),
                        };
                        let prepared = match verify {
                            Ok(verify) => prepare(p, records, verify).await,
                            Err(e) => {
                                o.result = Err(e);
                                outcomes.push(o);
                                continue;
                            }
                        };
                        match prepared {
                            Ok(b) => {
                                queued.push((topics.len(), outcomes.len(), size));
                                batches.push((p.clone(), b));
                            }
                            Err(e) => o.refused(e, who),
                        }
                    }
                }
                outcomes.push(o);
            }
            // an owned copy: a slice would pin the whole request frame until the response is sent
            topics.push((
                (
                    TopicName(StrBytes::from_string(t.name.0.to_string())),
                    t.topic_id,
                ),
                outcomes,
            ));
        }
        let appended = self.logs.append_all(batches, acks == -1).await;
        for ((ti, pi, size), result) in queued.into_iter().zip(appended) {
            let o = &mut topics[ti].1[pi];
            match result {
                Ok(info) => {
                    if let Some(p) = &o.partition {
                        let n = (info.last_offset - info.base_offset + 1) as u64;
                        crate::metrics::produced(&p.topic, size, n);
                    }
                    o.result = Ok(info);
                }
                Err(e) => o.refused(e, who),
            }
        }
        if acks == 0 {
            let failed = topics
                .iter()
                .flat_map(|(_, o)| o.iter())
                .any(|o| o.result.is_err());
            return Box::pin(std::future::ready(if failed {
                Reply::Close
            } else {
                Reply::Nothing
            }));
        }
        let timeout = Duration::from_millis(req.timeout_ms.max(0) as u64);
        let (cluster, catalog) = (self.cluster.clone(), self.catalog.clone());
        Box::pin(async move {
            let mut resp = ProduceResponse::default();
            // hints name the current leader: read it again if a leadership changed meanwhile
            let refused_here = topics
                .iter()
                .flat_map(|(_, o)| o.iter())
                .any(|o| matches!(o.result, Err(ResponseError::NotLeaderOrFollower)));
            if let (true, Some(c)) = (refused_here, &cluster) {
                c.fresh_view().await;
            }
            for ((name, id), outcomes) in topics {
                let mut tr = TopicProduceResponse::default();
                tr.name = name;
                tr.topic_id = id;
                for mut o in outcomes {
                    if acks == -1 {
                        if let (Ok(info), Some(p)) = (&o.result, &o.partition) {
                            match tokio::time::timeout(
                                timeout,
                                // the append's own thread syncs it (group commit)
                                p.wait_synced(info.last_offset + 1),
                            )
                            .await
                            {
                                Ok(Ok(())) => {}
                                Ok(Err(e)) => {
                                    o.message = Some(e.to_string());
                                    o.result = Err(log_error(&e));
                                }
                                Err(_) => o.result = Err(ResponseError::RequestTimedOut),
                            }
                        }
                    }
                    let not_leader = matches!(o.result, Err(ResponseError::NotLeaderOrFollower));
                    let mut r = partition_response(o);
                    if not_leader {
                        // KIP-951: where the partition is led now, so the client need not
                        // ask for metadata first
                        let hint =
                            super::leader_hint(cluster.as_deref(), &catalog, &tr.name.0, r.index);
                        if let Some((id, epoch, host, port)) = hint {
                            r.current_leader.leader_id = BrokerId(id);
                            r.current_leader.leader_epoch = epoch;
                            if !resp.node_endpoints.iter().any(|n| n.node_id.0 == id) {
                                let mut n = NodeEndpoint::default();
                                n.node_id = BrokerId(id);
                                n.host = StrBytes::from_string(host);
                                n.port = port;
                                resp.node_endpoints.push(n);
                            }
                        }
                    }
                    tr.partition_responses.push(r);
                }
                resp.responses.push(tr);
            }
            Reply::Send(Response::Produce(resp))
        })
    }
}

/// Verified with the coordinator on another node: (producer id, its markers here when the
/// verification began) per partition, or the error to answer.
type Verified = HashMap<(String, i32), Result<(i64, u64), ResponseError>>;

/// The check of a batch verified with a remote coordinator: no marker of its producer was
/// written here since (else it could open a transaction that was just decided).
fn unchanged(p: &Arc<Partition>, producer_id: i64, seen: u64) -> Verify {
    let p = Arc::downgrade(p);
    Arc::new(move |_| match p.upgrade() {
        Some(p) if p.markers_of(producer_id) == seen => Ok(()),
        _ => Err(LogError::TxnVerificationStale),
    })
}

impl Handler {
    /// The request's transactional batches checked with their coordinator before they are
    /// appended (Kafka's KIP-890 check). With `add` (Produce v12+, a transactions v2 producer)
    /// the coordinator first adds each partition to the open transaction. Where the coordinator
    /// is here, the batches are checked again under the partition lock; in a cluster, a
    /// coordinator on another node is asked over AddPartitionsToTxn v4. Only what is refused,
    /// or verified remotely, is in the answer.
    async fn verify_transactional(&self, req: &ProduceRequest, add: bool) -> Verified {
        let mut out = Verified::new();
        let Some(txn_id) = &req.transactional_id else {
            return out;
        };
        let here = self.txns.get(&txn_id.0).ok();
        if (here.is_none() && self.cluster.is_none()) || (here.is_some() && !add) {
            return out; // alone without a coordinator: refused by the verifier under the lock
        }
        let mut ids = None;
        let mut partitions = Vec::new();
        let mut seen = HashMap::new();
        for t in &req.topic_data {
            for pd in &t.partition_data {
                // a partition still being taken over is waited for here as the append waits
                // for it: a batch appended there must have been verified
                let served = self.served_or_coming(&t.name.0, pd.index).await;
                let (Some(p), Some(records)) = (served, &pd.records) else {
                    continue;
                };
                let Ok(h) = crate::format::batch::BatchHeader::parse(records) else {
                    continue; // refused when prepared
                };
                if !h.is_transactional() {
                    continue;
                }
                ids.get_or_insert((h.producer_id, h.producer_epoch));
                let key = (t.name.0.to_string(), pd.index);
                seen.insert(key.clone(), (h.producer_id, p.markers_of(h.producer_id)));
                partitions.push(key);
            }
        }
        let Some((producer_id, epoch)) = ids else {
            return out;
        };
        if let Some(c) = here {
            let added = super::txn::add_implicitly(
                &c,
                &txn_id.0,
                (producer_id, epoch),
                &partitions,
                &[],
                ResponseError::NotEnoughReplicas,
            )
            .await;
            if let Err(e) = added {
                out.extend(partitions.into_iter().map(|k| (k, Err(e))));
            }
            return out;
        }
        let answer = super::peers::verify(
            self.txn_coordinator(&txn_id.0),
            &super::peers::ToVerify {
                transactional_id: &txn_id.0,
                producer_id,
                epoch,
                partitions,
            },
            add,
        )
        .await;
        for (key, r) in answer {
            let v = match (r, seen.get(&key)) {
                (Ok(()), Some(s)) => Ok(*s),
                (Ok(()), None) => continue,
                (Err(e), _) => Err(e),
            };
            out.insert(key, v);
        }
        out
    }
}

/// The transaction coordinator's check of a transactional batch for partition `p` (a batch
/// whose coordinator is not here was verified remotely, or has no transactional id: refused).
fn verifier(p: &Partition, coordinator: Option<Arc<TxnCoordinator>>) -> Verify {
    let (topic, index) = (p.topic.clone(), p.index);
    Arc::new(move |h| match &coordinator {
        Some(c) => c.verify_produce(h.producer_id, h.producer_epoch, &topic, index),
        None => Err(LogError::InvalidTxnState),
    })
}

impl Outcome {
    /// The log refused the batch: Kafka's error, its message and, for invalid records, which.
    fn refused(&mut self, e: LogError, who: (&str, SocketAddr)) {
        if let Some(p) = &self.partition {
            log_rejection(p, &e, who);
        }
        self.message = Some(match &e {
            LogError::InvalidRecords { indexes, message } => {
                self.record_errors.clone_from(indexes);
                message.clone()
            }
            other => other.to_string(),
        });
        self.result = Err(log_error(&e));
    }
}

fn partition_response(o: Outcome) -> PartitionProduceResponse {
    let mut r = PartitionProduceResponse::default();
    r.index = o.index;
    match o.result {
        Ok(info) => {
            r.base_offset = info.base_offset;
            r.log_append_time_ms = info.log_append_time;
            r.log_start_offset = info.log_start_offset;
        }
        Err(e) => {
            r.error_code = code(e);
            r.base_offset = -1;
            r.log_append_time_ms = -1;
            r.log_start_offset = -1;
            r.record_errors = o
                .record_errors
                .iter()
                .map(|&i| {
                    let mut b = BatchIndexAndErrorMessage::default();
                    b.batch_index = i;
                    b.batch_index_error_message = o.message.clone().map(StrBytes::from_string);
                    b
                })
                .collect();
            r.error_message = o.message.map(StrBytes::from_string);
        }
    }
    r
}

/// Client mistakes are logged at debug; storage failures are logged where they happen (the log).
/// Checks a client batch ([`Partition::prepare`]). A compressed one is decompressed as it is
/// checked, which takes milliseconds for a large batch: that runs on a blocking executor of its
/// own (not the log's, whose slots are for the disk), as many at once as there are CPUs (each
/// holds up to a codec window of memory), so the runtime's threads keep serving other
/// connections meanwhile.
async fn prepare(
    p: &Arc<Partition>,
    records: bytes::Bytes,
    verify: Verify,
) -> Result<crate::log::Prepared, LogError> {
    if batch::codec_of(&records).unwrap_or(0) == 0 {
        return p.prepare(records, verify);
    }
    static DECOMPRESSING: std::sync::LazyLock<Io> = std::sync::LazyLock::new(|| {
        Io::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    });
    let p = p.clone();
    DECOMPRESSING.run(move || p.prepare(records, verify)).await
}

fn log_rejection(p: &Partition, e: &LogError, (client, peer): (&str, SocketAddr)) {
    let bad_data = matches!(
        e,
        LogError::Corrupt(_)
            | LogError::CorruptRecords(_)
            | LogError::InvalidRecord(_)
            | LogError::InvalidRecords { .. }
            | LogError::RecordTooLarge { .. }
            | LogError::UncompressedTooLarge(_)
            | LogError::InvalidTimestamp(_)
    );
    if !bad_data {
        if !matches!(e, LogError::Io(_) | LogError::Offline | LogError::Deleted) {
            tracing::debug!(topic = %p.topic, partition = p.index, error = %e, "produce rejected");
        }
        return;
    }
    // a client sending bad batches in a loop must not flood the log: one line a second, with
    // how many were refused meanwhile
    static EVERY_SECOND: crate::clock::Throttle = crate::clock::Throttle::new(1);
    let Some(unlogged) = EVERY_SECOND.pass() else {
        return;
    };
    tracing::warn!(
        client_id = client,
        peer = %peer,
        topic = %p.topic,
        partition = p.index,
        error = %e,
        "refused an invalid batch ({unlogged} more refused since the last such line)"
    );
}
