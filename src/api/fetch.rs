//! Fetch: whole batches from each partition's log, honouring `max_bytes`, partition limits,
//! `min_bytes` and `max_wait_ms` (long poll woken by high-watermark advances). `read_committed`
//! fetches stop at the last stable offset and list the aborted transactions they overlap.
//!
//! KIP-392 (cluster mode, v11+): a leader asked by a consumer that names a rack other than this
//! node's answers with a live node of that rack as `preferred_read_replica` and no records; a
//! node asked by such a consumer for a partition another node leads serves it from a follower
//! copy ([`crate::log::followers`]).

use super::errors::{code, log_error};
use super::fetch_memory::{FetchMemory, Held};
use super::fetch_session::Context;
use super::{Handler, Pending, Reply};
use crate::catalog::TopicMeta;
use crate::fs::FileSlice;
use crate::log::partition::Partition;
use crate::log::LogError;
use crate::log::{Outbound, Sent};
use crate::protocol::Response;
use crate::security::acl::{op, resource};
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, NodeEndpoint, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// `isolation_level` 1: only committed data, up to the last stable offset.
const READ_COMMITTED: i8 = 1;
/// Record sets shorter than this are read rather than sent from their file: below it the copy
/// costs less than the page-cache check and a system call of their own.
const BY_REF_MIN: usize = 16 * 1024;
/// How long a fetch at or past a follower copy's end waits for the copy to read the WAL (past
/// its end after that: OFFSET_OUT_OF_RANGE, and the consumer asks the leader).
const COPY_CATCH_UP: Duration = Duration::from_millis(500);

/// A topic of the response: its name, and its id (nil below v13).
type Topic = (TopicName, Uuid);

struct Wanted {
    index: i32,
    offset: i64,
    max_bytes: usize,
    partition: Option<Arc<Partition>>,
    /// The error to answer when `partition` is `None`.
    absent: ResponseError,
    /// KIP-951: the partition's leader (id, epoch, host, port), when another node leads it.
    leader: Option<(i32, i32, String, i32)>,
    /// KIP-392: another node leads it and the consumer named a rack: read this node's follower
    /// copy (resolved before the first read).
    follow: Option<TopicMeta>,
    /// `partition` is a follower copy.
    copy: bool,
    /// KIP-392: the node in the consumer's rack to read from instead of this leader.
    preferred: Option<i32>,
}

impl Handler {
    pub(super) fn fetch(self: &Arc<Self>, req: FetchRequest, v: i16, client_id: &str) -> Pending {
        // KIP-392: a consumer's rack (v11+; a replica's fetch never names one here)
        let rack = Some(req.rack_id.to_string())
            .filter(|r| v >= 11 && req.replica_id.0 < 0 && !r.is_empty());
        // KIP-227: the partitions to read are the request's, or its session's
        let session = self.sessions.context(
            v,
            req.session_id,
            req.session_epoch,
            &req.topics,
            &req.forgotten_topics_data,
            &Names(&self.catalog),
        );
        crate::metrics::fetch_session_request(session.kind());
        if let Context::Error(e) = session {
            let mut resp = FetchResponse::default();
            resp.error_code = code(e);
            return super::ready(Response::Fetch(resp));
        }
        let wanted: Vec<(Topic, Vec<Wanted>)> = session
            .asked()
            .iter()
            .map(|(named, asked)| {
                let topic = &*named.name;
                // one catalog look-up per topic: a session may hold thousands of its partitions.
                // From v13 the topic is named by id, which must still be this topic's (one
                // deleted and created anew has another)
                let meta = self
                    .catalog
                    .get(topic)
                    .filter(|m| named.id.is_nil() || m.id == named.id);
                let unknown_id = !named.id.is_nil() && meta.is_none();
                let denied = !unknown_id && !self.allowed(op::READ, resource::TOPIC, topic);
                let parts = asked
                    .iter()
                    .map(|p| {
                        let (mut partition, mut absent) = if unknown_id {
                            (None, ResponseError::UnknownTopicId)
                        } else if denied {
                            (None, ResponseError::TopicAuthorizationFailed)
                        } else {
                            (
                                self.logs.get(topic, p.partition),
                                super::absent_from(
                                    self.cluster.is_some(),
                                    meta.as_ref(),
                                    p.partition,
                                ),
                            )
                        };
                        // KIP-320: a fetch from a consumer with another idea of the epoch
                        if let (Some(log), Some(meta)) = (&partition, &meta) {
                            let serving = super::serving_epoch(meta, log);
                            if let Some(e) = super::epoch_error(p.current_leader_epoch, serving) {
                                absent = e;
                                partition = None;
                            }
                        }
                        let leader = match (&partition, absent) {
                            (None, ResponseError::NotLeaderOrFollower) => super::leader_hint(
                                self.cluster.as_deref(),
                                &self.catalog,
                                topic,
                                p.partition,
                            ),
                            _ => None,
                        };
                        let mut w = Wanted {
                            index: p.partition,
                            offset: p.fetch_offset,
                            max_bytes: p.max_bytes.max(0) as usize,
                            partition,
                            absent,
                            leader,
                            follow: None,
                            copy: false,
                            preferred: None,
                        };
                        if let (Some(rack), false) = (&rack, denied || unknown_id) {
                            self.nearest(&mut w, topic, p.current_leader_epoch, rack);
                        }
                        w
                    })
                    .collect();
                // owned: a slice would pin the request frame for the whole long poll
                (
                    (
                        TopicName(StrBytes::from_string(topic.to_string())),
                        named.id,
                    ),
                    parts,
                )
            })
            .collect();
        // the broker's fetch.max.bytes caps what a client may ask for, as in Kafka
        let max_bytes = if req.max_bytes <= 0 {
            self.config.fetch_max_bytes
        } else {
            req.max_bytes.min(self.config.fetch_max_bytes)
        } as usize;
        // a consumer under a byte-rate quota gets at most what its quota allows at once (at
        // least one batch still goes out, KIP-74)
        let quota_cap = super::SESSION
            .try_with(|s| self.quotas.fetch_cap(&s.principal, client_id))
            .ok()
            .flatten();
        let max_bytes = quota_cap.map_or(max_bytes, |cap| max_bytes.min(cap));
        let min_bytes = req.min_bytes.max(0) as usize;
        let max_wait = Duration::from_millis(req.max_wait_ms.max(0) as u64);
        let how = How {
            max_bytes,
            committed: req.isolation_level == READ_COMMITTED,
            send_file: super::SESSION.try_with(|s| s.send_file).unwrap_or(false),
        };
        let stopping = self.stopping.clone();
        let me = self.clone();
        Box::pin(async move {
            let mut wanted = wanted;
            if let Some(f) = &me.followers {
                me.open_copies(f, &mut wanted).await;
            }
            let started = tokio::time::Instant::now();
            let deadline = started + max_wait;
            let mut waited = false;
            // subscribe before the first read so no advance between read and wait is missed
            let mut watchers: Vec<_> = wanted
                .iter()
                .flat_map(|(_, ps)| ps.iter())
                .filter_map(|w| w.partition.as_ref().map(|p| p.subscribe()))
                .collect();
            loop {
                for w in watchers.iter_mut() {
                    w.borrow_and_update();
                }
                let mut read = read_held(&me.fetch_memory, &wanted, how).await;
                if read.bytes >= min_bytes
                    || read.errors
                    || tokio::time::Instant::now() >= deadline
                    || watchers.is_empty()
                {
                    if waited {
                        crate::metrics::fetch_wait(started.elapsed());
                    }
                    read.resp = me.sessions.respond(&session, read.resp);
                    count_fetched(&read);
                    return reply(read);
                }
                drop(read);
                waited = true;
                let changed =
                    futures::future::select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
                // at shutdown a long poll answers with what there is, as at its deadline
                let woken = tokio::select! {
                    r = tokio::time::timeout_at(deadline, changed) => r.is_ok(),
                    _ = stopping.cancelled() => false,
                };
                if !woken {
                    crate::metrics::fetch_wait(started.elapsed());
                    let mut read = read_held(&me.fetch_memory, &wanted, how).await;
                    read.resp = me.sessions.respond(&session, read.resp);
                    count_fetched(&read);
                    return reply(read);
                }
            }
        })
    }
}

impl Handler {
    /// KIP-392 for one partition of a consumer in `rack`: as its leader, names a node of that
    /// rack to read from when this node is in another; as another node, marks it to be read
    /// from this node's follower copy (unless the consumer's leader epoch is not the current
    /// one: FENCED_LEADER_EPOCH or UNKNOWN_LEADER_EPOCH, as a Kafka follower answers).
    fn nearest(&self, w: &mut Wanted, topic: &str, current_epoch: i32, rack: &str) {
        let (Some(cluster), Some(meta)) = (self.cluster.as_deref(), self.catalog.get(topic)) else {
            return;
        };
        let view = cluster.view();
        if w.partition.is_some() {
            if self.config.rack() == Some(rack) {
                return;
            }
            let mut near: Vec<i32> = view
                .nodes
                .values()
                .filter(|n| !n.draining && n.rack.as_deref() == Some(rack))
                .map(|n| n.id)
                .collect();
            near.sort_unstable();
            // the rack's nodes share its partitions
            let spread = (meta.id.as_u128() as usize).wrapping_add(w.index.max(0) as usize);
            w.preferred = near.get(spread % near.len().max(1)).copied();
            return;
        }
        if w.absent != ResponseError::NotLeaderOrFollower || self.followers.is_none() {
            return;
        }
        if let Some(e) = super::epoch_error(current_epoch, view.epoch(meta.id, w.index).max(0)) {
            w.absent = e;
            w.leader = None;
            return;
        }
        w.follow = Some(meta);
    }

    /// Resolves the partitions marked to be read from follower copies, building the missing
    /// copies at once; one that cannot be built stays NOT_LEADER_OR_FOLLOWER (the consumer goes
    /// back to the leader).
    async fn open_copies(
        &self,
        followers: &Arc<crate::log::followers::Followers>,
        wanted: &mut [(Topic, Vec<Wanted>)],
    ) {
        let opening: Vec<_> = wanted
            .iter_mut()
            .flat_map(|(_, ps)| ps.iter_mut())
            .filter_map(|w| {
                let meta = w.follow.take()?;
                let config = self.catalog.log_config(&meta);
                Some(async move {
                    if let Some(p) = followers.serve(&meta, w.index, config).await {
                        // at or past the copy's end: it may lag the leader by a WAL poll, so
                        // it reads the WAL first (an end reached, or an offset out of range, is
                        // then as the leader would answer)
                        if w.offset >= p.offsets().high_watermark {
                            followers.fresh(COPY_CATCH_UP).await;
                        }
                        w.partition = Some(p);
                        w.copy = true;
                        w.leader = None;
                    }
                })
            })
            .collect();
        futures::future::join_all(opening).await;
    }
}

/// Topic ids (Fetch v13+) resolved through the catalog.
struct Names<'a>(&'a crate::catalog::Catalog);

impl super::fetch_session::Names for Names<'_> {
    fn name_of(&self, id: Uuid) -> Option<Arc<str>> {
        self.0.get_by_id(id).map(|m| Arc::from(m.name))
    }
}

/// [`read_all`] within a share of the broker's fetch memory, taken first (a busy budget makes
/// the response smaller, never the broker bigger); what the read did not use goes back at once,
/// the rest is held with the response.
async fn read_held(memory: &FetchMemory, wanted: &[(Topic, Vec<Wanted>)], how: How) -> Read {
    let (granted, mut held) = memory.take(how.max_bytes).await;
    let mut read = read_all(
        wanted,
        How {
            max_bytes: granted,
            ..how
        },
    )
    .await;
    if let Some(h) = held.as_mut() {
        // record sets left in their files take no memory
        let in_files: usize = read.files.iter().map(|(f, _)| f.len).sum();
        h.keep(granted, read.bytes.saturating_sub(in_files));
    }
    read.held = held;
    read
}

/// How a fetch reads.
#[derive(Debug, Clone, Copy)]
struct How {
    max_bytes: usize,
    /// `read_committed`.
    committed: bool,
    /// The connection can send file slices.
    send_file: bool,
}

/// One pass over the partitions: the response, the bytes it carries, whether any partition had
/// an error (which ends a long poll, as in Kafka), its share of the fetch memory, and the file
/// slices its placeholders stand for, with their record counts.
struct Read {
    resp: FetchResponse,
    bytes: usize,
    errors: bool,
    held: Option<Held>,
    files: Vec<(FileSlice, u64)>,
}

/// The response, holding its share of the fetch memory until it is written.
fn reply(read: Read) -> Reply {
    let files = read.files.into_iter().map(|(f, _)| f).collect();
    Reply::Fetched(Response::Fetch(read.resp), read.held, files)
}

/// Counts the bytes and records a fetch response carries, by topic (a placeholder's records
/// from its file slice's count).
fn count_fetched(read: &Read) {
    for t in &read.resp.responses {
        let (mut bytes, mut records) = (0usize, 0u64);
        for r in t.partitions.iter().filter_map(|p| p.records.as_ref()) {
            bytes += r.len();
            records += match crate::protocol::placeholder_index(r) {
                Some(i) => read.files.get(i).map_or(0, |(_, n)| *n),
                None => record_count(r),
            };
        }
        if bytes > 0 {
            crate::metrics::fetched(&t.topic.0, bytes);
            crate::metrics::fetched_records(&t.topic.0, records);
        }
    }
}

/// Records in a run of whole batches (from their headers).
fn record_count(mut data: &[u8]) -> u64 {
    let mut n = 0u64;
    while let Ok((_, len)) = crate::format::batch::peek_frame(data) {
        if len > data.len() || len < crate::format::batch::HEADER_LEN {
            break;
        }
        if let Ok(h) = crate::format::batch::BatchHeader::parse(&data[..len]) {
            n += h.record_count.max(0) as u64;
        }
        data = &data[len..];
    }
    n
}

/// One partition's read: its records (in memory or left in a file), their count, its offsets
/// and, for `read_committed`, the aborted transactions they overlap.
async fn read_one(
    p: &Arc<Partition>,
    w: &Wanted,
    limit: usize,
    min_one: bool,
    how: How,
) -> Result<Sent, LogError> {
    if how.send_file && !w.copy {
        let by_ref = BY_REF_MIN..crate::protocol::PLACEHOLDER_MAX + 1;
        if let Some(sent) = p
            .fetch_local(w.offset, (limit, min_one), how.committed, by_ref)
            .await?
        {
            return Ok(sent);
        }
    }
    let (mut r, aborted) = if how.committed {
        p.fetch_committed(w.offset, limit, min_one).await?
    } else {
        (p.fetch(w.offset, limit, min_one).await?, Vec::new())
    };
    if !w.copy && !how.committed {
        // a consumer reads up to the high watermark (the log may hold durable batches beyond it
        // that the cluster has not committed yet), as a fetch sent from files does; a
        // read_committed fetch is cut at the last stable offset, below it, already
        r.records = crate::format::read::batches_below(&r.records, r.offsets.high_watermark).0;
    }
    Ok(Sent {
        count: record_count(&r.records),
        records: Outbound::Mem(r.records),
        offsets: r.offsets,
        aborted,
    })
}

/// The records of a read as the response carries them: bytes, or a placeholder for a file
/// slice added to `files`.
async fn carried(
    records: Outbound,
    count: u64,
    files: &mut Vec<(FileSlice, u64)>,
) -> Result<Bytes, LogError> {
    match records {
        Outbound::Mem(b) => Ok(b),
        Outbound::File(slice) => match crate::protocol::placeholder(files.len(), slice.len) {
            Some(b) => {
                files.push((slice, count));
                Ok(b)
            }
            // more slices than placeholders: read this one (off the runtime)
            None => Ok(tokio::task::spawn_blocking(move || slice.read())
                .await
                .map_err(|e| LogError::Io(std::io::Error::other(e)))??),
        },
    }
}

/// One pass over every requested partition.
async fn read_all(wanted: &[(Topic, Vec<Wanted>)], how: How) -> Read {
    let mut resp = FetchResponse::default();
    let mut files = Vec::new();
    let mut remaining = how.max_bytes;
    let mut total = 0usize;
    let mut errors = false;
    for ((name, id), parts) in wanted {
        let mut tr = FetchableTopicResponse::default();
        tr.topic = name.clone();
        tr.topic_id = *id;
        for w in parts {
            let mut pd = PartitionData::default();
            pd.partition_index = w.index;
            pd.aborted_transactions = None;
            if let (Some(p), Some(id)) = (&w.partition, w.preferred) {
                // KIP-392: no records, the node to read from instead; answered at once, as an
                // error would be
                let o = p.offsets();
                pd.preferred_read_replica = BrokerId(id);
                pd.high_watermark = o.high_watermark;
                pd.last_stable_offset = o.last_stable_offset;
                pd.log_start_offset = o.log_start_offset;
                pd.records = Some(Default::default());
                crate::metrics::preferred_replica();
                errors = true;
                tr.partitions.push(pd);
                continue;
            }
            match &w.partition {
                None => {
                    pd.error_code = code(w.absent);
                    pd.high_watermark = -1;
                    if let Some((id, epoch, host, port)) = &w.leader {
                        pd.current_leader.leader_id = BrokerId(*id);
                        pd.current_leader.leader_epoch = *epoch;
                        // v16+: where the leader is (KIP-951), once per node
                        if !resp.node_endpoints.iter().any(|n| n.node_id.0 == *id) {
                            let mut n = NodeEndpoint::default();
                            n.node_id = BrokerId(*id);
                            n.host = StrBytes::from_string(host.clone());
                            n.port = *port;
                            resp.node_endpoints.push(n);
                        }
                    }
                    errors = true;
                }
                Some(p) => {
                    let limit = w.max_bytes.min(remaining);
                    let read = match read_one(p, w, limit, total == 0, how).await {
                        Ok(r) => carried(r.records, r.count, &mut files)
                            .await
                            .map(|b| (b, r.offsets, r.aborted)),
                        Err(e) => Err(e),
                    };
                    match read {
                        Ok((records, offsets, aborted)) => {
                            total += records.len();
                            if w.copy {
                                crate::metrics::follower_fetched(records.len());
                            }
                            remaining = remaining.saturating_sub(records.len());
                            pd.aborted_transactions = how.committed.then(|| {
                                aborted
                                    .into_iter()
                                    .map(|a| {
                                        let mut t = AbortedTransaction::default();
                                        t.producer_id = ProducerId(a.producer_id);
                                        t.first_offset = a.first_offset;
                                        t
                                    })
                                    .collect()
                            });
                            pd.high_watermark = offsets.high_watermark;
                            pd.last_stable_offset = offsets.last_stable_offset;
                            pd.log_start_offset = offsets.log_start_offset;
                            pd.records = Some(records);
                        }
                        Err(e) => {
                            let o = p.offsets();
                            pd.error_code = code(log_error(&e));
                            pd.high_watermark = o.high_watermark;
                            pd.last_stable_offset = o.last_stable_offset;
                            pd.log_start_offset = o.log_start_offset;
                            errors = true;
                            if !matches!(e, crate::log::LogError::OffsetOutOfRange { .. }) {
                                tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "fetch read failed");
                            }
                        }
                    }
                }
            }
            tr.partitions.push(pd);
        }
        resp.responses.push(tr);
    }
    Read {
        resp,
        bytes: total,
        errors,
        held: None,
        files,
    }
}
