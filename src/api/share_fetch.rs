//! ShareFetch and ShareAcknowledge (KIP-932): a share group's members acquire records under a
//! lock and acknowledge them. The share-partition state machine is [`crate::share`]; this file
//! reads the log for it, parks fetches that find nothing, and maps its refusals to Kafka's codes.
//!
//! A fetch reads whole batches from the first record it may acquire and acquires offsets only
//! within what it read and below the high watermark, so every acquired record is in the
//! response (the client acknowledges offsets it finds no record for as gaps). A fetch that
//! acquires nothing waits up to `max_wait_ms` for new records, released ones or expired locks.

use super::errors::{code, log_error};
use super::groups::s;
use super::{Handler, Pending, Reply};
use crate::format::read::batches_below;
use crate::log::partition::Partition;
use crate::protocol::Response;
use crate::security::acl::{op, resource};
use crate::share::partition::AckError;
use crate::share::sessions::{SessionError, TopicPartition, FINAL_EPOCH};
use crate::share::store::Key;
use crate::share::{Reset, ShareGroups};
use futures::future::FutureExt;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::share_fetch_response::{
    AcquiredRecords, LeaderIdAndEpoch, PartitionData, ShareFetchableTopicResponse,
};
use kafka_protocol::messages::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Records a fetch acquires when the request sets no limit.
const DEFAULT_MAX_RECORDS: usize = 500;
/// Longest a fetch is parked, whatever it asks.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// A parked fetch looks again this often (locks expire without a wake-up).
const RECHECK: Duration = Duration::from_millis(500);
/// Most record data read from one partition for one fetch (the first batch is read whole
/// whatever its size). A share fetch acquires `max_records` at most, so reading the request's
/// whole `max_bytes` (50 MiB from the Java client) would mostly read what is then left out.
const PARTITION_READ_MAX: usize = 1 << 20;

type Batches = Vec<(i64, i64, Vec<i8>)>;

fn session_error(e: SessionError) -> ResponseError {
    match e {
        SessionError::NotFound => ResponseError::ShareSessionNotFound,
        SessionError::InvalidEpoch => ResponseError::InvalidShareSessionEpoch,
        SessionError::LimitReached => ResponseError::ShareSessionLimitReached,
    }
}

/// The outcome of one partition's acknowledgements (`None`: applied).
fn ack_result(r: std::io::Result<Result<(), AckError>>) -> Option<(ResponseError, String)> {
    Some(match r {
        Ok(Ok(())) => return None,
        Ok(Err(AckError::InvalidRequest)) => (
            ResponseError::InvalidRequest,
            "acknowledgement batches must be sorted, not overlap, name records delivered and carry one type (0-3) or one per offset".into(),
        ),
        Ok(Err(AckError::InvalidRecordState)) => (
            ResponseError::InvalidRecordState,
            "the member does not hold these records (never acquired, released, timed out or acquired by another member)".into(),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "could not write a share-partition's state");
            (ResponseError::KafkaStorageError, e.to_string())
        }
    })
}

/// The ids a request names, its group and member.
struct Who {
    group: String,
    member: String,
}

fn who(
    group: Option<&GroupId>,
    member: Option<&kafka_protocol::protocol::StrBytes>,
) -> Result<Who, String> {
    let group = group.map(|g| g.0.to_string()).unwrap_or_default();
    let member = member.map(|m| m.to_string()).unwrap_or_default();
    if group.is_empty() {
        return Err("GroupId must be set".into());
    }
    if member.is_empty() {
        return Err("MemberId must be set".into());
    }
    Ok(Who { group, member })
}

impl Handler {
    pub(super) fn share_fetch(self: &Arc<Self>, req: ShareFetchRequest) -> Pending {
        let me = self.clone();
        Box::pin(async move { Reply::Send(Response::ShareFetch(me.share_fetch_now(req).await)) })
    }

    pub(super) fn share_acknowledge(self: &Arc<Self>, req: ShareAcknowledgeRequest) -> Pending {
        let me = self.clone();
        Box::pin(async move {
            Reply::Send(Response::ShareAcknowledge(
                me.share_acknowledge_now(req).await,
            ))
        })
    }

    async fn share_fetch_now(&self, req: ShareFetchRequest) -> ShareFetchResponse {
        let mut resp = ShareFetchResponse::default();
        let refuse = |mut resp: ShareFetchResponse, e: ResponseError, msg: String| {
            tracing::debug!(error = ?e, msg, "share fetch refused");
            resp.error_code = code(e);
            resp.error_message = Some(s(msg));
            resp
        };
        let w = match who(req.group_id.as_ref(), req.member_id.as_ref()) {
            Ok(w) => w,
            Err(msg) => return refuse(resp, ResponseError::InvalidRequest, msg),
        };
        let share = match self.share_for(&w.group, op::READ) {
            Ok(share) => share,
            Err((e, msg)) => return refuse(resp, e, msg),
        };
        resp.acquisition_lock_timeout_ms = share.config().lock_ms.min(i32::MAX as i64) as i32;
        let epoch = req.share_session_epoch;
        let mut add: Vec<TopicPartition> = Vec::new();
        let mut acks: BTreeMap<TopicPartition, Batches> = BTreeMap::new();
        for t in &req.topics {
            for p in &t.partitions {
                add.push((t.topic_id, p.partition_index));
                if !p.acknowledgement_batches.is_empty() {
                    acks.entry((t.topic_id, p.partition_index))
                        .or_default()
                        .extend(
                            p.acknowledgement_batches.iter().map(|b| {
                                (b.first_offset, b.last_offset, b.acknowledge_types.clone())
                            }),
                        );
                }
            }
        }
        let forget: Vec<TopicPartition> = req
            .forgotten_topics_data
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic_id, *p)))
            .collect();
        tracing::trace!(group = %w.group, member = %w.member, epoch, ?add, ?forget, ?acks, max_records = req.max_records, max_bytes = req.max_bytes, wait = req.max_wait_ms, "share fetch");
        if epoch == 0 && !acks.is_empty() {
            return refuse(
                resp,
                ResponseError::InvalidRequest,
                "a new share session (epoch 0) cannot carry acknowledgements".into(),
            );
        }
        let mut out: BTreeMap<TopicPartition, PartitionData> = BTreeMap::new();
        // the final request's acknowledgements apply before the session's records go back
        // a session is opened only by a member of the group (which also keeps share-partition
        // state from being made for any group id a client names)
        if epoch == 0 && !share.is_member(&w.group, &w.member) {
            return refuse(
                resp,
                ResponseError::UnknownMemberId,
                format!(
                    "{} is not a member of share group {}: heartbeat first",
                    w.member, w.group
                ),
            );
        }
        let partitions = if epoch == FINAL_EPOCH {
            self.apply_acks(&share, &w, acks, &mut out).await;
            match share.session_fetch(&w.group, &w.member, epoch, &[], &[]) {
                Ok(o) => {
                    if let Some(s) = o.ended {
                        share.session_close(&w.group, &w.member, &s);
                    }
                }
                Err(e) => {
                    return refuse(
                        resp,
                        session_error(e),
                        format!("share session epoch {epoch}: {e:?}"),
                    )
                }
            }
            Vec::new()
        } else {
            match share.session_fetch(&w.group, &w.member, epoch, &add, &forget) {
                Ok(o) => {
                    self.apply_acks(&share, &w, acks, &mut out).await;
                    // records held in partitions the member no longer fetches go back (it lost
                    // them in a reassignment and will not acknowledge them)
                    if let Some(s) = o.ended {
                        share.session_close(&w.group, &w.member, &s);
                    }
                    o.partitions
                }
                Err(e) => {
                    return refuse(
                        resp,
                        session_error(e),
                        format!("share session epoch {epoch}: {e:?}"),
                    )
                }
            }
        };
        if !partitions.is_empty() {
            let max_records = match req.max_records {
                n if n > 0 => n as usize,
                _ => DEFAULT_MAX_RECORDS,
            };
            let max_bytes = req.max_bytes.max(1) as usize;
            let wait = Duration::from_millis(req.max_wait_ms.max(0) as u64).min(MAX_WAIT);
            self.acquire_records(
                &share,
                &w,
                &partitions,
                (max_records, max_bytes),
                wait,
                &mut out,
            )
            .await;
        }
        let mut topics: BTreeMap<Uuid, ShareFetchableTopicResponse> = BTreeMap::new();
        for ((topic, _), p) in out {
            let t = topics.entry(topic).or_insert_with(|| {
                let mut t = ShareFetchableTopicResponse::default();
                t.topic_id = topic;
                t
            });
            t.partitions.push(p);
        }
        resp.responses = topics.into_values().collect();
        tracing::trace!(group = %w.group, member = %w.member, partitions = ?resp.responses.iter().flat_map(|t| t.partitions.iter().map(|p| (p.partition_index, p.error_code, p.acknowledge_error_code, p.acquired_records.iter().map(|a| (a.first_offset, a.last_offset)).collect::<Vec<_>>()))).collect::<Vec<_>>(), "share fetch answered");
        resp
    }

    /// Applies acknowledgements (one durable write for all partitions), recording each
    /// partition's outcome in `out`.
    async fn apply_acks(
        &self,
        share: &Arc<ShareGroups>,
        w: &Who,
        acks: BTreeMap<TopicPartition, Batches>,
        out: &mut BTreeMap<TopicPartition, PartitionData>,
    ) {
        let mut pending = Vec::new();
        for ((topic, partition), batches) in acks {
            let key: Key = (w.group.clone(), topic, partition);
            let named = self.catalog.get_by_id(topic);
            let share = share.clone();
            let member = w.member.clone();
            let allowed = named
                .as_ref()
                .is_some_and(|m| self.allowed(op::READ, resource::TOPIC, &m.name));
            pending.push(async move {
                let r = match named {
                    None => Some((
                        ResponseError::UnknownTopicId,
                        "unknown topic id".to_string(),
                    )),
                    Some(_) if !allowed => Some((
                        ResponseError::TopicAuthorizationFailed,
                        "not authorized to read the topic".to_string(),
                    )),
                    Some(_) => ack_result(share.acknowledge(&key, &member, &batches).await),
                };
                ((topic, partition), r)
            });
        }
        for (tp, failed) in futures::future::join_all(pending).await {
            let p = out
                .entry(tp)
                .or_insert_with(|| self.share_partition_data(tp));
            if let Some((e, msg)) = failed {
                p.acknowledge_error_code = code(e);
                p.acknowledge_error_message = Some(s(msg));
            }
        }
    }

    fn share_partition_data(&self, (topic, partition): TopicPartition) -> PartitionData {
        let mut p = PartitionData::default();
        p.partition_index = partition;
        let mut leader = LeaderIdAndEpoch::default();
        leader.leader_id = self.config.node_id;
        leader.leader_epoch = self
            .catalog
            .get_by_id(topic)
            .map(|m| m.leader_epoch(partition))
            .unwrap_or(-1);
        p.current_leader = leader;
        p
    }

    /// Acquires records from the session's partitions into `out`, waiting up to `wait` for
    /// something to acquire.
    async fn acquire_records(
        &self,
        share: &Arc<ShareGroups>,
        w: &Who,
        partitions: &[TopicPartition],
        (max_records, max_bytes): (usize, usize),
        wait: Duration,
        out: &mut BTreeMap<TopicPartition, PartitionData>,
    ) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // listen before looking, so a change between the two is not missed
            let released = share.released();
            tokio::pin!(released);
            released.as_mut().enable();
            let mut watches = Vec::new();
            let (mut records, mut bytes, mut failed) = (0usize, 0usize, false);
            for &tp in partitions {
                if records >= max_records || bytes >= max_bytes {
                    break;
                }
                let got = self
                    .acquire_one(
                        share,
                        w,
                        tp,
                        max_records - records,
                        max_bytes - bytes,
                        &mut watches,
                    )
                    .await;
                match got {
                    Ok(Some((data, count))) => {
                        records += count;
                        bytes += data.records.as_ref().map_or(0, |r| r.len());
                        let p = out
                            .entry(tp)
                            .or_insert_with(|| self.share_partition_data(tp));
                        p.records = data.records;
                        p.acquired_records = data.acquired_records;
                    }
                    Ok(None) => {}
                    Err((e, msg)) => {
                        tracing::debug!(group = %w.group, member = %w.member, topic = %tp.0, partition = tp.1, error = ?e, msg, "share fetch partition error");
                        failed = true;
                        let p = out
                            .entry(tp)
                            .or_insert_with(|| self.share_partition_data(tp));
                        p.error_code = code(e);
                        p.error_message = Some(s(msg));
                    }
                }
            }
            let now = tokio::time::Instant::now();
            // errors are answered at once, so the client can act on them
            if records > 0 || failed || now >= deadline || self.stopping.is_cancelled() {
                return;
            }
            let changed = futures::future::select_all(
                watches
                    .iter_mut()
                    .map(|rx: &mut tokio::sync::watch::Receiver<i64>| {
                        rx.changed().map(|_| ()).boxed()
                    })
                    .chain(std::iter::once(futures::future::pending().boxed())),
            );
            tokio::select! {
                _ = changed => {}
                _ = &mut released => {}
                _ = tokio::time::sleep_until(deadline.min(now + RECHECK)) => {}
                _ = self.stopping.cancelled() => {}
            }
        }
    }

    /// Acquires from one partition: the records read and what was acquired, or nothing.
    async fn acquire_one(
        &self,
        share: &Arc<ShareGroups>,
        w: &Who,
        (topic, partition): TopicPartition,
        max_records: usize,
        max_bytes: usize,
        watches: &mut Vec<tokio::sync::watch::Receiver<i64>>,
    ) -> Result<Option<(PartitionData, usize)>, (ResponseError, String)> {
        let Some(meta) = self.catalog.get_by_id(topic) else {
            return Err((ResponseError::UnknownTopicId, "unknown topic id".into()));
        };
        if !self.allowed(op::READ, resource::TOPIC, &meta.name) {
            return Err((
                ResponseError::TopicAuthorizationFailed,
                format!("not authorized to read topic '{}'", meta.name),
            ));
        }
        let Some(log) = self.logs.get(&meta.name, partition) else {
            let e = super::absent(
                self.cluster.as_deref(),
                &self.catalog,
                &meta.name,
                partition,
            );
            return Err((e, format!("{}-{partition} is not served here", meta.name)));
        };
        watches.push(log.subscribe());
        share.name_topic(topic, &meta.name);
        let key: Key = (w.group.clone(), topic, partition);
        let sp = match share.partition(&key) {
            Some(p) => p,
            None => {
                let start = start_offset(&log, share.reset_of(&w.group), share.now_ms()).await;
                share.partition_or_start(&key, start)
            }
        };
        let offsets = log.offsets();
        let hw = offsets.high_watermark;
        let from = share.next_fetch_offset(&key, &sp, offsets.log_start_offset, hw);
        let Some(from) = from else {
            return Ok(None);
        };
        let read = match log
            .fetch(from, max_bytes.min(PARTITION_READ_MAX), true)
            .await
        {
            Ok(r) => r,
            Err(e) => return Err((log_error(&e), e.to_string())),
        };
        let (data, last) = batches_below(&read.records, hw);
        let Some(last) = last else {
            return Ok(None);
        };
        let got = share.acquire(&key, &sp, &w.member, (from, last), hw, max_records);
        tracing::trace!(group = %w.group, member = %w.member, partition, from, last, hw, acquired = ?got, "share fetch acquired");
        let Some(&(_, end, _)) = got.last() else {
            return Ok(None);
        };
        let count: i64 = got.iter().map(|(f, l, _)| l - f + 1).sum();
        // only the batches up to the last acquired record go back
        let (data, _) = batches_below(&data, end + 1);
        let mut p = self.share_partition_data((topic, partition));
        p.records = Some(data);
        p.acquired_records = got
            .into_iter()
            .map(|(first, last, delivery)| {
                let mut a = AcquiredRecords::default();
                a.first_offset = first;
                a.last_offset = last;
                a.delivery_count = delivery;
                a
            })
            .collect();
        Ok(Some((p, count as usize)))
    }

    async fn share_acknowledge_now(
        &self,
        req: ShareAcknowledgeRequest,
    ) -> ShareAcknowledgeResponse {
        let mut resp = ShareAcknowledgeResponse::default();
        let refuse = |mut resp: ShareAcknowledgeResponse, e: ResponseError, msg: String| {
            tracing::debug!(error = ?e, msg, "share acknowledge refused");
            resp.error_code = code(e);
            resp.error_message = Some(s(msg));
            resp
        };
        let w = match who(req.group_id.as_ref(), req.member_id.as_ref()) {
            Ok(w) => w,
            Err(msg) => return refuse(resp, ResponseError::InvalidRequest, msg),
        };
        let share = match self.share_for(&w.group, op::READ) {
            Ok(share) => share,
            Err((e, msg)) => return refuse(resp, e, msg),
        };
        let epoch = req.share_session_epoch;
        let mut acks: BTreeMap<TopicPartition, Batches> = BTreeMap::new();
        tracing::trace!(group = %w.group, member = %w.member, epoch, topics = req.topics.len(), "share acknowledge");
        for t in &req.topics {
            for p in &t.partitions {
                acks.entry((t.topic_id, p.partition_index))
                    .or_default()
                    .extend(
                        p.acknowledgement_batches
                            .iter()
                            .map(|b| (b.first_offset, b.last_offset, b.acknowledge_types.clone())),
                    );
            }
        }
        let mut out = BTreeMap::new();
        if epoch == FINAL_EPOCH {
            self.apply_acks(&share, &w, acks, &mut out).await;
            match share.session_step_ack(&w.group, &w.member, epoch) {
                Ok(Some(session)) => share.session_close(&w.group, &w.member, &session),
                Ok(None) => {}
                Err(e) => {
                    return refuse(
                        resp,
                        session_error(e),
                        format!("share session epoch {epoch}: {e:?}"),
                    )
                }
            }
        } else {
            if let Err(e) = share.session_step_ack(&w.group, &w.member, epoch) {
                return refuse(
                    resp,
                    session_error(e),
                    format!("share session epoch {epoch}: {e:?}"),
                );
            }
            self.apply_acks(&share, &w, acks, &mut out).await;
        }
        let mut topics: BTreeMap<Uuid, share_acknowledge_response::ShareAcknowledgeTopicResponse> =
            BTreeMap::new();
        for ((topic, _), p) in out {
            let t = topics.entry(topic).or_insert_with(|| {
                let mut t = share_acknowledge_response::ShareAcknowledgeTopicResponse::default();
                t.topic_id = topic;
                t
            });
            let mut d = share_acknowledge_response::PartitionData::default();
            d.partition_index = p.partition_index;
            d.error_code = p.acknowledge_error_code;
            d.error_message = p.acknowledge_error_message;
            let mut leader = share_acknowledge_response::LeaderIdAndEpoch::default();
            leader.leader_id = p.current_leader.leader_id;
            leader.leader_epoch = p.current_leader.leader_epoch;
            d.current_leader = leader;
            t.partitions.push(d);
        }
        resp.responses = topics.into_values().collect();
        resp
    }
}

/// Where a share-partition without state starts (`share.auto.offset.reset`).
async fn start_offset(log: &Arc<Partition>, reset: Reset, now_ms: i64) -> i64 {
    let o = log.offsets();
    match reset {
        Reset::Earliest => o.log_start_offset,
        Reset::Latest => o.high_watermark,
        Reset::ByDuration(ms) => match log.find_offset_for_timestamp(now_ms - ms).await {
            Ok(Some((offset, _))) => offset,
            _ => o.high_watermark,
        },
    }
}
