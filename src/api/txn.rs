//! Transactions: InitProducerId, AddPartitionsToTxn (v0-v3 and the v4+ batched form),
//! AddOffsetsToTxn, TxnOffsetCommit, EndTxn, and the operator views DescribeProducers,
//! DescribeTransactions and ListTransactions. The work is the coordinator's (`crate::txn`);
//! this file maps it to the wire.

use super::errors::{code, log_error};
use super::groups::s;
use super::offsets::commit_error;
use super::{Handler, Pending, Reply};
use crate::protocol::Response;
use crate::security::acl::{op, resource};
use crate::txn::txn_log::TxnMeta;
use crate::txn::TxnError;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedTxn;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The coordinator's refusal as a Kafka error. `fenced` is how this API version spells a stale
/// epoch: PRODUCER_FENCED from the versions that know it (KIP-588), INVALID_PRODUCER_EPOCH before.
fn txn_error(e: TxnError, fenced: ResponseError) -> ResponseError {
    match e {
        TxnError::InvalidTimeout => ResponseError::InvalidTransactionTimeout,
        TxnError::Fenced => fenced,
        TxnError::InvalidMapping => ResponseError::InvalidProducerIdMapping,
        TxnError::Concurrent => ResponseError::ConcurrentTransactions,
        TxnError::InvalidState => ResponseError::InvalidTxnState,
        // retriable: the client tries again, as it would while a coordinator moves
        TxnError::Storage => ResponseError::CoordinatorNotAvailable,
        TxnError::NotCoordinator => ResponseError::NotCoordinator,
        TxnError::LoadInProgress => ResponseError::CoordinatorLoadInProgress,
    }
}

fn fenced_from(v: i16, first: i16) -> ResponseError {
    if v >= first {
        ResponseError::ProducerFenced
    } else {
        ResponseError::InvalidProducerEpoch
    }
}

/// Transactions v2: a partition (or a group) added by the producer's Produce v12+ (or
/// TxnOffsetCommit v5) as Kafka's leaders add them. The coordinator's refusal is answered as
/// Kafka answers it there: a stale epoch is INVALID_PRODUCER_EPOCH, a coordinator that cannot
/// answer now `unavailable` (retriable); CONCURRENT_TRANSACTIONS (the previous transaction's
/// markers are still being written) is retried here for up to 100 ms first.
pub(super) async fn add_implicitly(
    c: &crate::txn::TxnCoordinator,
    id: &str,
    (producer_id, epoch): (i64, i16),
    partitions: &[(String, i32)],
    groups: &[String],
    unavailable: ResponseError,
) -> Result<(), ResponseError> {
    let held = c
        .holds(id, producer_id, epoch, partitions)
        .is_ok_and(|h| h.iter().all(|h| *h));
    if held && groups.is_empty() {
        return Ok(()); // already in the open transaction: nothing to write
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(100);
    loop {
        match c.add(id, producer_id, epoch, partitions, groups).await {
            Ok(()) => return Ok(()),
            Err(TxnError::Concurrent) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => return Err(implicit_add_error(e, unavailable)),
        }
    }
}

/// How a refused implicit add is answered to the Produce or TxnOffsetCommit that caused it.
fn implicit_add_error(e: TxnError, unavailable: ResponseError) -> ResponseError {
    match e {
        TxnError::Storage | TxnError::NotCoordinator | TxnError::LoadInProgress => unavailable,
        e => txn_error(e, ResponseError::InvalidProducerEpoch),
    }
}

fn txn_code(r: Result<(), TxnError>, fenced: ResponseError) -> i16 {
    match r {
        Ok(()) => 0,
        Err(e) => code(txn_error(e, fenced)),
    }
}

impl Handler {
    pub(super) fn init_producer_id(
        self: &Arc<Self>,
        req: InitProducerIdRequest,
        v: i16,
    ) -> Pending {
        let me = self.clone();
        Box::pin(async move {
            let mut resp = InitProducerIdResponse::default();
            resp.producer_id = ProducerId(-1);
            resp.producer_epoch = -1;
            let Some(id) = req.transactional_id.as_ref().map(|t| t.0.to_string()) else {
                // without a transactional id every call gets a fresh id with epoch 0 (as in
                // Kafka; an idempotent producer recovering from UNKNOWN_PRODUCER_ID starts over)
                match me.txns.new_producer_id().await {
                    Ok(id) => {
                        resp.producer_id = ProducerId(id);
                        resp.producer_epoch = 0;
                    }
                    Err(_) => resp.error_code = code(ResponseError::KafkaStorageError),
                }
                return Reply::Send(Response::InitProducerId(resp));
            };
            if id.is_empty() {
                resp.error_code = code(ResponseError::InvalidRequest);
                return Reply::Send(Response::InitProducerId(resp));
            }
            let expected = (v >= 3 && req.producer_id.0 >= 0)
                .then_some((req.producer_id.0, req.producer_epoch));
            let initialized = match me.txns.get(&id) {
                Ok(c) => {
                    c.init_producer_id(&id, req.transaction_timeout_ms, expected)
                        .await
                }
                Err(a) => Err(a.into()),
            };
            match initialized {
                Ok((pid, epoch)) => {
                    resp.producer_id = ProducerId(pid);
                    resp.producer_epoch = epoch;
                }
                Err(e) => resp.error_code = code(txn_error(e, fenced_from(v, 4))),
            }
            Reply::Send(Response::InitProducerId(resp))
        })
    }

    pub(super) fn add_partitions_to_txn(
        self: &Arc<Self>,
        req: AddPartitionsToTxnRequest,
        v: i16,
    ) -> Pending {
        let me = self.clone();
        Box::pin(async move {
            let mut resp = AddPartitionsToTxnResponse::default();
            let fenced = fenced_from(v, 2);
            if v <= 3 {
                resp.results_by_topic_v3_and_below = me
                    .add_partitions(
                        &req.v3_and_below_transactional_id.0,
                        req.v3_and_below_producer_id.0,
                        req.v3_and_below_producer_epoch,
                        &req.v3_and_below_topics,
                        (false, false),
                        fenced,
                    )
                    .await;
            } else {
                for t in &req.transactions {
                    let mut r = AddPartitionsToTxnResult::default();
                    r.transactional_id = t.transactional_id.clone();
                    r.topic_results = me
                        .add_partitions(
                            &t.transactional_id.0,
                            t.producer_id.0,
                            t.producer_epoch,
                            &t.topics,
                            (true, t.verify_only),
                            fenced,
                        )
                        .await;
                    resp.results_by_transaction.push(r);
                }
            }
            Reply::Send(Response::AddPartitionsToTxn(resp))
        })
    }

    /// One transaction's AddPartitionsToTxn: unknown partitions fail the whole request
    /// (UNKNOWN_TOPIC_OR_PARTITION on them, OPERATION_NOT_ATTEMPTED on the rest), as in Kafka.
    async fn add_partitions(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        topics: &[AddPartitionsToTxnTopic],
        (from_broker, verify_only): (bool, bool),
        fenced: ResponseError,
    ) -> Vec<AddPartitionsToTxnTopicResult> {
        let wanted: Vec<(String, i32)> = topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
            .collect();
        // in a cluster, a partition another node leads is known all the same
        let unknown: Vec<bool> = wanted
            .iter()
            .map(|(t, p)| {
                self.logs.get(t, *p).is_none()
                    && super::absent(self.cluster.as_deref(), &self.catalog, t, *p)
                        == ResponseError::UnknownTopicOrPartition
            })
            .collect();
        // a producer needs WRITE on its transactional id and on each topic; a broker (v4+,
        // verifying or adding for a transactions v2 producer) CLUSTER_ACTION
        let whole = if from_broker {
            (!self.cluster_allowed(op::CLUSTER_ACTION))
                .then_some(ResponseError::ClusterAuthorizationFailed)
        } else {
            (!self.allowed(op::WRITE, resource::TRANSACTIONAL_ID, id))
                .then_some(ResponseError::TransactionalIdAuthorizationFailed)
        };
        let topic_denied: Vec<bool> = wanted
            .iter()
            .map(|(t, _)| !from_broker && !self.allowed(op::WRITE, resource::TOPIC, t))
            .collect();
        let codes: Vec<i16> = if let Some(e) = whole {
            wanted.iter().map(|_| code(e)).collect()
        } else if topic_denied.iter().any(|d| *d) {
            topic_denied
                .iter()
                .map(|d| {
                    code(if *d {
                        ResponseError::TopicAuthorizationFailed
                    } else {
                        ResponseError::OperationNotAttempted
                    })
                })
                .collect()
        } else if unknown.iter().any(|u| *u) {
            unknown
                .iter()
                .map(|u| {
                    code(if *u {
                        ResponseError::UnknownTopicOrPartition
                    } else {
                        ResponseError::OperationNotAttempted
                    })
                })
                .collect()
        } else if verify_only {
            let held = self.txns.get(id).map_err(TxnError::from);
            match held.and_then(|c| c.holds(id, producer_id, epoch, &wanted)) {
                Ok(held) => held
                    .iter()
                    .map(|h| {
                        // as Kafka's coordinator: a partition the transaction never
                        // added makes it abortable
                        if *h {
                            0
                        } else {
                            code(ResponseError::TransactionAbortable)
                        }
                    })
                    .collect(),
                Err(e) => vec![code(txn_error(e, fenced)); wanted.len()],
            }
        } else {
            let added = match self.txns.get(id) {
                Ok(c) => c.add(id, producer_id, epoch, &wanted, &[]).await,
                Err(a) => Err(a.into()),
            };
            let c = txn_code(added, fenced);
            vec![c; wanted.len()]
        };
        let mut by_topic: BTreeMap<String, Vec<AddPartitionsToTxnPartitionResult>> =
            BTreeMap::new();
        for ((topic, partition), c) in wanted.into_iter().zip(codes) {
            let mut pr = AddPartitionsToTxnPartitionResult::default();
            pr.partition_index = partition;
            pr.partition_error_code = c;
            by_topic.entry(topic).or_default().push(pr);
        }
        by_topic
            .into_iter()
            .map(|(name, results)| {
                let mut tr = AddPartitionsToTxnTopicResult::default();
                tr.name = TopicName(s(name));
                tr.results_by_partition = results;
                tr
            })
            .collect()
    }

    pub(super) fn add_offsets_to_txn(
        self: &Arc<Self>,
        req: AddOffsetsToTxnRequest,
        v: i16,
    ) -> Pending {
        let me = self.clone();
        Box::pin(async move {
            let mut resp = AddOffsetsToTxnResponse::default();
            let group = req.group_id.0.to_string();
            resp.error_code = if super::groups::valid_group_id(&group) {
                let id = &req.transactional_id.0;
                let added = match me.txns.get(id) {
                    Ok(c) => {
                        c.add(id, req.producer_id.0, req.producer_epoch, &[], &[group])
                            .await
                    }
                    Err(a) => Err(a.into()),
                };
                txn_code(added, fenced_from(v, 2))
            } else {
                code(ResponseError::InvalidGroupId)
            };
            Reply::Send(Response::AddOffsetsToTxn(resp))
        })
    }

    pub(super) fn end_txn(self: &Arc<Self>, req: EndTxnRequest, v: i16) -> Pending {
        let me = self.clone();
        Box::pin(async move {
            let mut resp = EndTxnResponse::default();
            resp.producer_id = ProducerId(-1);
            resp.producer_epoch = -1;
            let id = &req.transactional_id.0;
            let (pid, epoch, commit) = (req.producer_id.0, req.producer_epoch, req.committed);
            let ended = match me.txns.get(id) {
                // v5: transactions v2, the epoch bumped and the new one answered
                Ok(c) if v >= 5 => c.end_v2(id, pid, epoch, commit).await.map(|next| {
                    resp.producer_id = ProducerId(next.0);
                    resp.producer_epoch = next.1;
                }),
                Ok(c) => c.end(id, pid, epoch, commit).await,
                Err(a) => Err(a.into()),
            };
            resp.error_code = txn_code(ended, fenced_from(v, 2));
            Reply::Send(Response::EndTxn(resp))
        })
    }

    pub(super) fn txn_offset_commit(
        self: &Arc<Self>,
        req: TxnOffsetCommitRequest,
        v: i16,
    ) -> Pending {
        let me = self.clone();
        Box::pin(async move {
            let group = req.group_id.0.to_string();
            let offsets: Vec<(String, i32, i64, i32, Option<String>)> = req
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions.iter().map(|p| {
                        (
                            t.name.0.to_string(),
                            p.partition_index,
                            p.committed_offset,
                            if v >= 2 { p.committed_leader_epoch } else { -1 },
                            p.committed_metadata.as_ref().map(|m| m.to_string()),
                        )
                    })
                })
                .collect();
            let checked = if !me.allowed(
                op::WRITE,
                resource::TRANSACTIONAL_ID,
                &req.transactional_id.0,
            ) {
                Err(ResponseError::TransactionalIdAuthorizationFailed)
            } else if !me.allowed(op::READ, resource::GROUP, &group) {
                Err(ResponseError::GroupAuthorizationFailed)
            } else if req
                .topics
                .iter()
                .any(|t| !me.allowed(op::READ, resource::TOPIC, &t.name.0))
            {
                Err(ResponseError::TopicAuthorizationFailed)
            } else if !super::groups::valid_group_id(&group) {
                Err(ResponseError::InvalidGroupId)
            } else if let Ok(txns) = me.txns.get(&req.transactional_id.0) {
                let id = &req.transactional_id.0;
                if v >= 5 {
                    // transactions v2: the commit itself adds the group to the transaction
                    add_implicitly(
                        &txns,
                        id,
                        (req.producer_id.0, req.producer_epoch),
                        &[],
                        std::slice::from_ref(&group),
                        ResponseError::CoordinatorNotAvailable,
                    )
                    .await
                } else {
                    txns.check_offsets(id, req.producer_id.0, req.producer_epoch, &group)
                        .map_err(|e| txn_error(e, ResponseError::InvalidProducerEpoch))
                }
            } else if v >= 5 {
                // transactions v2 with the coordinator on another node: it adds the group
                let id = &req.transactional_id.0;
                super::peers::add_offsets(
                    me.txn_coordinator(id),
                    id,
                    (req.producer_id.0, req.producer_epoch),
                    &group,
                )
                .await
            } else {
                // the transaction's coordinator is another node: the offsets are held under
                // the producer id until its marker ends them, as Kafka's group coordinators
                // did before KIP-890
                Ok(())
            };
            let (generation, member, instance) = if v >= 3 {
                (
                    req.generation_id,
                    req.member_id.to_string(),
                    req.group_instance_id.as_ref().map(|i| i.to_string()),
                )
            } else {
                (-1, String::new(), None)
            };
            let outcome = match checked {
                Err(e) => Err(e),
                Ok(()) => match me.groups.get(&group) {
                    Ok(c) => c
                        .commit_transactional(
                            &group,
                            req.producer_id.0,
                            generation,
                            &member,
                            instance.as_deref(),
                            offsets,
                        )
                        .await
                        .map_err(commit_error),
                    Err(e) => Err(super::groups::group_error(e)),
                },
            };
            let mut per_partition = match &outcome {
                Ok(results) => results.clone().into_iter(),
                Err(_) => Vec::new().into_iter(),
            };
            let mut resp = TxnOffsetCommitResponse::default();
            for t in &req.topics {
                let mut tr = TxnOffsetCommitResponseTopic::default();
                tr.name = t.name.clone();
                for p in &t.partitions {
                    let mut pr = TxnOffsetCommitResponsePartition::default();
                    pr.partition_index = p.partition_index;
                    pr.error_code = match &outcome {
                        Err(e) => code(*e),
                        Ok(_) => per_partition
                            .next()
                            .and_then(|r| r.err())
                            .map(|e| code(commit_error(e)))
                            .unwrap_or(0),
                    };
                    tr.partitions.push(pr);
                }
                resp.topics.push(tr);
            }
            Reply::Send(Response::TxnOffsetCommit(resp))
        })
    }

    pub(super) async fn describe_producers(
        &self,
        req: DescribeProducersRequest,
    ) -> DescribeProducersResponse {
        let mut resp = DescribeProducersResponse::default();
        for t in &req.topics {
            let mut tr = TopicResponse::default();
            tr.name = t.name.clone();
            let denied = !self.allowed(op::READ, resource::TOPIC, &t.name.0);
            for &index in &t.partition_indexes {
                let mut pr = PartitionResponse::default();
                pr.partition_index = index;
                match self.logs.get(&t.name.0, index) {
                    _ if denied => pr.error_code = code(ResponseError::TopicAuthorizationFailed),
                    None => {
                        pr.error_code = code(ResponseError::UnknownTopicOrPartition);
                    }
                    Some(p) => match p.producers().await {
                        Err(e) => pr.error_code = code(log_error(&e)),
                        Ok(producers) => {
                            pr.active_producers = producers
                                .into_iter()
                                .map(|v| {
                                    let mut ps = ProducerState::default();
                                    ps.producer_id = ProducerId(v.producer_id);
                                    ps.producer_epoch = v.epoch as i32;
                                    ps.last_sequence = v.last_sequence;
                                    ps.last_timestamp = v.last_timestamp;
                                    ps.coordinator_epoch = -1;
                                    ps.current_txn_start_offset = v.current_txn_start_offset;
                                    ps
                                })
                                .collect();
                        }
                    },
                }
                tr.partitions.push(pr);
            }
            resp.topics.push(tr);
        }
        resp
    }

    pub(super) fn describe_transactions(
        &self,
        req: DescribeTransactionsRequest,
    ) -> DescribeTransactionsResponse {
        let mut resp = DescribeTransactionsResponse::default();
        for id in req.transactional_ids {
            let mut st = TransactionState::default();
            if !self.allowed(op::DESCRIBE, resource::TRANSACTIONAL_ID, &id.0) {
                st.error_code = code(ResponseError::TransactionalIdAuthorizationFailed);
                st.transaction_state = s("");
                st.transactional_id = id;
                resp.transaction_states.push(st);
                continue;
            }
            let coordinator = match self.txns.get(&id.0) {
                Ok(c) => c,
                Err(a) => {
                    st.error_code = code(txn_error(a.into(), ResponseError::ProducerFenced));
                    st.transactional_id = id;
                    resp.transaction_states.push(st);
                    continue;
                }
            };
            match coordinator.get(&id.0) {
                None => {
                    st.error_code = code(ResponseError::TransactionalIdNotFound);
                    st.transaction_state = s("");
                    st.producer_id = ProducerId(-1);
                    st.producer_epoch = -1;
                    st.transaction_start_time_ms = -1;
                }
                Some(m) => {
                    st.transaction_state = s(m.state.name());
                    st.transaction_timeout_ms = m.timeout_ms;
                    st.transaction_start_time_ms = m.started_ms;
                    st.producer_id = ProducerId(m.producer_id);
                    st.producer_epoch = m.epoch;
                    st.topics = topics_of(&m);
                }
            }
            st.transactional_id = id;
            resp.transaction_states.push(st);
        }
        resp
    }

    pub(super) fn list_transactions(
        &self,
        req: ListTransactionsRequest,
        v: i16,
    ) -> ListTransactionsResponse {
        const STATES: [&str; 6] = [
            "Empty",
            "Ongoing",
            "PrepareCommit",
            "PrepareAbort",
            "CompleteCommit",
            "CompleteAbort",
        ];
        let mut resp = ListTransactionsResponse::default();
        resp.unknown_state_filters = req
            .state_filters
            .iter()
            .filter(|f| !STATES.contains(&f.as_str()))
            .cloned()
            .collect();
        let now = self.txns.now_ms();
        for (id, m) in self.txns.list() {
            // only the transactional ids the principal may describe
            if !self.allowed_quietly(op::DESCRIBE, resource::TRANSACTIONAL_ID, &id) {
                continue;
            }
            let state_ok = req.state_filters.is_empty()
                || req
                    .state_filters
                    .iter()
                    .any(|f| f.as_str() == m.state.name());
            let pid_ok = req.producer_id_filters.is_empty()
                || req.producer_id_filters.contains(&ProducerId(m.producer_id));
            // v1: only transactions open longer than the filter
            let duration_ok = v < 1
                || req.duration_filter < 0
                || (m.started_ms >= 0 && now - m.started_ms > req.duration_filter);
            if state_ok && pid_ok && duration_ok {
                let mut t = ListedTxn::default();
                t.transactional_id = TransactionalId(s(id));
                t.producer_id = ProducerId(m.producer_id);
                t.transaction_state = s(m.state.name());
                resp.transaction_states.push(t);
            }
        }
        resp
    }
}

fn topics_of(m: &TxnMeta) -> Vec<TopicData> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in &m.partitions {
        by_topic.entry(t).or_default().push(*p);
    }
    by_topic
        .into_iter()
        .map(|(t, ps)| {
            let mut d = TopicData::default();
            d.topic = TopicName(s(t));
            d.partitions = ps;
            d
        })
        .collect()
}
