//! Incremental fetch sessions (KIP-227): a consumer's full fetch (session epoch 0) opens a
//! session holding its partitions and what each was last answered; its next fetches name only
//! the partitions whose fetch position changed (and those to forget), and are answered only
//! with the partitions that have something new: records, a moved high watermark, last stable or
//! log start offset, or an error. A consumer of a thousand partitions then sends and receives
//! a few bytes per idle poll instead of a thousand partition entries.
//!
//! The cache holds `max_incremental_fetch_session_cache_slots` sessions. When it is full a new
//! session takes the place of one unused for two minutes, else of the smallest session older
//! than two minutes if the new one has more partitions (Kafka's eviction rules); else the
//! fetch is answered without a session (session id 0) and the consumer tries again on its next
//! full fetch.

use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchTopic, ForgottenTopic};
use kafka_protocol::messages::FetchResponse;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Session epoch of a full fetch that opens a session.
const INITIAL_EPOCH: i32 = 0;
/// Session epoch of a fetch that wants no session (and closes the one it names).
const FINAL_EPOCH: i32 = -1;
/// A session unused this long may be evicted for any new one; a session younger than this is
/// never evicted for a larger one (Kafka's `fetch.session.cache.eviction` time).
const EVICTION_AGE: Duration = Duration::from_secs(120);

/// One partition's fetch position, as a request names it.
#[derive(Clone, Debug, PartialEq)]
pub struct Asked {
    pub partition: i32,
    pub fetch_offset: i64,
    pub max_bytes: i32,
    pub current_leader_epoch: i32,
}

/// A session partition: what the consumer asked last, and what it was last answered.
#[derive(Clone, Debug)]
struct Cached {
    asked: Asked,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
}

impl Cached {
    fn new(asked: Asked) -> Cached {
        // -1: never answered, so the first answer always includes it
        Cached {
            asked,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
        }
    }
}

/// A topic as a fetch names it: by name (below v13; the id is nil) or by id (v13+; the name is
/// the one the id resolved to, empty if it resolved to none).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Topic {
    pub name: Arc<str>,
    pub id: Uuid,
}

type Key = (Topic, i32);

/// The partitions to read, grouped by topic.
pub type Asking = Vec<(Topic, Vec<Asked>)>;

/// One consumer's session: its partitions in the order they are read (those that returned
/// records move to the back, so a small `max_bytes` serves every partition in turn).
pub struct Session {
    id: i32,
    /// The epoch the next request must carry.
    epoch: i32,
    /// Opened by a fetch naming topics by id (v13+): later ones must too.
    ids: bool,
    parts: IndexMap<Key, Cached>,
}

impl Session {
    /// The session's partitions grouped by topic, in reading order.
    fn asked(&self) -> Asking {
        group(self.parts.iter().map(|((t, _), c)| (t, c.asked.clone())))
    }
}

struct Entry {
    session: Arc<Mutex<Session>>,
    created: Instant,
    last_used: Instant,
    size: usize,
}

struct Cache {
    sessions: HashMap<i32, Entry>,
    /// Partitions held by all sessions.
    partitions: usize,
    next_id: u32,
}

impl Cache {
    fn remove(&mut self, id: i32) -> bool {
        match self.sessions.remove(&id) {
            Some(e) => {
                self.partitions -= e.size;
                true
            }
            None => false,
        }
    }

    fn gauges(&self) {
        crate::metrics::fetch_sessions(self.sessions.len(), self.partitions);
    }
}

/// The broker's fetch sessions.
pub struct FetchSessions {
    slots: usize,
    cache: Mutex<Cache>,
}

/// How one Fetch is served.
pub enum Context {
    /// No session: below v7, epoch -1, or sessions are off. The response's session id is 0.
    Sessionless(Asking),
    /// A full fetch opening a session: the response names the new session (0 if none could be
    /// made room for). `true`: topics are named by id (v13+).
    Full(Asking, bool),
    /// A fetch in a session: its partitions are the session's.
    Incremental(Arc<Mutex<Session>>, Asking),
    /// FETCH_SESSION_ID_NOT_FOUND or INVALID_FETCH_SESSION_EPOCH: the consumer starts anew.
    Error(ResponseError),
}

impl Context {
    /// For the requests counter.
    pub fn kind(&self) -> &'static str {
        match self {
            Context::Sessionless(_) => "sessionless",
            Context::Full(..) => "full",
            Context::Incremental(..) => "incremental",
            Context::Error(_) => "error",
        }
    }

    /// The partitions to read, grouped by topic.
    pub fn asked(&self) -> &[(Topic, Vec<Asked>)] {
        match self {
            Context::Sessionless(a) | Context::Full(a, _) | Context::Incremental(_, a) => a,
            Context::Error(_) => &[],
        }
    }
}

/// Names the topics a Fetch refers to by id (v13+), from the catalog.
pub trait Names {
    fn name_of(&self, id: Uuid) -> Option<Arc<str>>;
}

/// A request's topic: by name below v13, by id from v13 (resolved through `names`).
fn topic_of(v: i16, name: &str, id: Uuid, names: &dyn Names) -> Topic {
    if v >= 13 {
        Topic {
            name: names.name_of(id).unwrap_or_else(|| Arc::from("")),
            id,
        }
    } else {
        Topic {
            name: Arc::from(name),
            id: Uuid::nil(),
        }
    }
}

fn asked(p: &kafka_protocol::messages::fetch_request::FetchPartition) -> Asked {
    Asked {
        partition: p.partition,
        fetch_offset: p.fetch_offset,
        max_bytes: p.partition_max_bytes,
        current_leader_epoch: p.current_leader_epoch,
    }
}

/// The partitions a request names.
fn requested(v: i16, topics: &[FetchTopic], names: &dyn Names) -> Asking {
    topics
        .iter()
        .map(|t| {
            let topic = topic_of(v, &t.topic.0, t.topic_id, names);
            (topic, t.partitions.iter().map(asked).collect())
        })
        .collect()
}

/// Consecutive partitions of the same topic, grouped.
fn group<'a>(parts: impl Iterator<Item = (&'a Topic, Asked)>) -> Asking {
    let mut out: Asking = Vec::new();
    for (topic, asked) in parts {
        match out.last_mut() {
            Some((t, ps)) if t == topic => ps.push(asked),
            _ => out.push((topic.clone(), vec![asked])),
        }
    }
    out
}

/// The epoch after `epoch` (1 after `i32::MAX`: 0 only ever opens a session).
fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

impl FetchSessions {
    /// A cache of `slots` sessions; 0 turns sessions off.
    pub fn new(slots: usize) -> FetchSessions {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ d.as_secs() as u32)
            .unwrap_or(1);
        FetchSessions {
            slots,
            cache: Mutex::new(Cache {
                sessions: HashMap::new(),
                partitions: 0,
                next_id: seed,
            }),
        }
    }

    /// How a Fetch of version `v` with these session fields is served (the session, if any,
    /// is updated with the request's partitions and forgotten topics, and its epoch advanced).
    pub fn context(
        &self,
        v: i16,
        session_id: i32,
        epoch: i32,
        topics: &[FetchTopic],
        forgotten: &[ForgottenTopic],
        names: &dyn Names,
    ) -> Context {
        if v < 7 {
            return Context::Sessionless(requested(v, topics, names));
        }
        if epoch == INITIAL_EPOCH || epoch == FINAL_EPOCH {
            // a full fetch closes the session it names
            if session_id != 0 {
                self.remove(session_id);
            }
            return if epoch == FINAL_EPOCH || self.slots == 0 {
                Context::Sessionless(requested(v, topics, names))
            } else {
                Context::Full(requested(v, topics, names), v >= 13)
            };
        }
        let now = Instant::now();
        let mut cache = self.cache.lock();
        let Some(entry) = cache.sessions.get_mut(&session_id) else {
            return Context::Error(ResponseError::FetchSessionIdNotFound);
        };
        let session = entry.session.clone();
        let mut s = session.lock();
        if s.epoch != epoch {
            return Context::Error(ResponseError::InvalidFetchSessionEpoch);
        }
        if s.ids != (v >= 13) {
            // a session opened by names continued by ids, or the other way round
            return Context::Error(ResponseError::FetchSessionTopicIdError);
        }
        for t in topics {
            let topic = topic_of(v, &t.topic.0, t.topic_id, names);
            for p in &t.partitions {
                match s.parts.get_mut(&(topic.clone(), p.partition)) {
                    Some(c) => c.asked = asked(p),
                    None => {
                        s.parts
                            .insert((topic.clone(), p.partition), Cached::new(asked(p)));
                    }
                }
            }
        }
        for f in forgotten {
            // by the session's own keys: a forgotten id need not resolve any more
            s.parts.retain(|(t, p), _| {
                let named = if v >= 13 {
                    t.id == f.topic_id
                } else {
                    *t.name == *f.topic.0
                };
                !(named && f.partitions.contains(p))
            });
        }
        if s.parts.is_empty() {
            // nothing left to fetch: the session ends and this fetch is served without one
            drop(s);
            cache.remove(session_id);
            cache.gauges();
            return Context::Sessionless(requested(v, topics, names));
        }
        s.epoch = next_epoch(s.epoch);
        let (old, new) = (entry.size, s.parts.len());
        entry.last_used = now;
        entry.size = new;
        let asked = s.asked();
        drop(s);
        cache.partitions = cache.partitions + new - old;
        cache.gauges();
        Context::Incremental(session, asked)
    }

    /// Sets the response's session id and, in a session, leaves out the partitions with
    /// nothing new; a full fetch opens its session here, remembering what it was answered.
    pub fn respond(&self, ctx: &Context, mut resp: FetchResponse) -> FetchResponse {
        match ctx {
            Context::Sessionless(_) | Context::Error(_) => resp.session_id = 0,
            Context::Full(asked, ids) => {
                let mut parts: IndexMap<Key, Cached> = asked
                    .iter()
                    .flat_map(|(t, ps)| ps.iter().map(move |a| ((t.clone(), a.partition), a)))
                    .map(|(k, a)| (k, Cached::new(a.clone())))
                    .collect();
                for t in &resp.responses {
                    let topic = answered_topic(t);
                    for p in &t.partitions {
                        if let Some(c) = parts.get_mut(&(topic.clone(), p.partition_index)) {
                            remember(c, p);
                        }
                    }
                }
                resp.session_id = self.create(parts, *ids);
            }
            Context::Incremental(session, _) => {
                let mut s = session.lock();
                resp.session_id = s.id;
                let mut rotate = Vec::new();
                for t in &mut resp.responses {
                    let topic = answered_topic(t);
                    t.partitions.retain(|p| {
                        let key = (topic.clone(), p.partition_index);
                        let Some(c) = s.parts.get_mut(&key) else {
                            return false;
                        };
                        let records = p.records.as_ref().is_some_and(|r| !r.is_empty());
                        let changed = records
                            || p.error_code != 0
                            || p.preferred_read_replica.0 >= 0
                            || p.current_leader.leader_id.0 >= 0
                            || c.high_watermark != p.high_watermark
                            || c.last_stable_offset != p.last_stable_offset
                            || c.log_start_offset != p.log_start_offset;
                        remember(c, p);
                        if records {
                            rotate.push(key);
                        }
                        changed
                    });
                }
                resp.responses.retain(|t| !t.partitions.is_empty());
                // partitions that returned records go to the back: the others are read first
                // next time
                for key in rotate {
                    if let Some(c) = s.parts.shift_remove(&key) {
                        s.parts.insert(key, c);
                    }
                }
            }
        }
        resp
    }

    /// Opens a session for `parts`, evicting another if the cache is full and the rules allow;
    /// returns its id, or 0 when there is no room.
    fn create(&self, parts: IndexMap<Key, Cached>, ids: bool) -> i32 {
        if self.slots == 0 {
            return 0;
        }
        let now = Instant::now();
        let size = parts.len();
        let mut cache = self.cache.lock();
        if cache.sessions.len() >= self.slots {
            match victim(&cache.sessions, size, now) {
                Some(id) => {
                    cache.remove(id);
                    crate::metrics::fetch_session_evicted();
                }
                None => return 0,
            }
        }
        let id = loop {
            cache.next_id = cache
                .next_id
                .wrapping_mul(1_103_515_245)
                .wrapping_add(12_345);
            let id = (cache.next_id >> 1) as i32;
            if id > 0 && !cache.sessions.contains_key(&id) {
                break id;
            }
        };
        let session = Session {
            id,
            epoch: next_epoch(INITIAL_EPOCH),
            ids,
            parts,
        };
        cache.sessions.insert(
            id,
            Entry {
                session: Arc::new(Mutex::new(session)),
                created: now,
                last_used: now,
                size,
            },
        );
        cache.partitions += size;
        cache.gauges();
        id
    }

    fn remove(&self, id: i32) {
        let mut cache = self.cache.lock();
        if cache.remove(id) {
            cache.gauges();
        }
    }
}

/// The session key of a response topic (the fetch handler fills in both name and id).
fn answered_topic(t: &kafka_protocol::messages::fetch_response::FetchableTopicResponse) -> Topic {
    Topic {
        name: Arc::from(&*t.topic.0),
        id: t.topic_id,
    }
}

/// What a partition was answered, kept for the next fetch's comparison (an error forgets the
/// high watermark, so the partition is answered again once the error is gone).
fn remember(c: &mut Cached, p: &kafka_protocol::messages::fetch_response::PartitionData) {
    c.high_watermark = if p.error_code != 0 {
        -1
    } else {
        p.high_watermark
    };
    c.last_stable_offset = p.last_stable_offset;
    c.log_start_offset = p.log_start_offset;
}

/// The session to make room for one of `size` partitions: the session unused longest if unused
/// for [`EVICTION_AGE`], else the smallest session older than that if it is smaller than `size`.
fn victim(sessions: &HashMap<i32, Entry>, size: usize, now: Instant) -> Option<i32> {
    let stale = sessions
        .iter()
        .min_by_key(|(_, e)| e.last_used)
        .filter(|(_, e)| now.duration_since(e.last_used) > EVICTION_AGE)
        .map(|(id, _)| *id);
    stale.or_else(|| {
        sessions
            .iter()
            .filter(|(_, e)| now.duration_since(e.created) > EVICTION_AGE)
            .min_by_key(|(id, e)| (e.size, **id))
            .filter(|(_, e)| e.size < size)
            .map(|(id, _)| *id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_request::FetchPartition;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;

    /// No topic ids: the tests name topics (v12).
    struct ByName;

    impl Names for ByName {
        fn name_of(&self, _: Uuid) -> Option<Arc<str>> {
            None
        }
    }

    fn topic(name: &str, parts: &[(i32, i64)]) -> FetchTopic {
        let mut t = FetchTopic::default();
        t.topic = TopicName(StrBytes::from_string(name.to_string()));
        t.partitions = parts
            .iter()
            .map(|&(p, offset)| {
                let mut fp = FetchPartition::default();
                fp.partition = p;
                fp.fetch_offset = offset;
                fp.partition_max_bytes = 1 << 20;
                fp
            })
            .collect();
        t
    }

    fn forget(name: &str, parts: &[i32]) -> ForgottenTopic {
        let mut f = ForgottenTopic::default();
        f.topic = TopicName(StrBytes::from_string(name.to_string()));
        f.partitions = parts.to_vec();
        f
    }

    /// An answer for every partition the context reads: `hw` as high watermark, and records
    /// for the partitions in `with_records`.
    fn answer(ctx: &Context, hw: i64, with_records: &[i32]) -> FetchResponse {
        let mut resp = FetchResponse::default();
        for (t, asked) in ctx.asked() {
            let mut tr = FetchableTopicResponse::default();
            tr.topic = TopicName(StrBytes::from_string(t.name.to_string()));
            tr.topic_id = t.id;
            for a in asked {
                let mut pd = PartitionData::default();
                pd.partition_index = a.partition;
                pd.high_watermark = hw;
                pd.last_stable_offset = hw;
                pd.log_start_offset = 0;
                pd.records = Some(if with_records.contains(&a.partition) {
                    bytes::Bytes::from_static(b"batch")
                } else {
                    bytes::Bytes::new()
                });
                tr.partitions.push(pd);
            }
            resp.responses.push(tr);
        }
        resp
    }

    fn answered(resp: &FetchResponse) -> Vec<(String, i32)> {
        resp.responses
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| (t.topic.0.to_string(), p.partition_index))
            })
            .collect()
    }

    fn open(cache: &FetchSessions, topics: &[FetchTopic]) -> i32 {
        let ctx = cache.context(12, 0, 0, topics, &[], &ByName);
        assert_eq!(ctx.kind(), "full");
        let resp = cache.respond(&ctx, answer(&ctx, 10, &[]));
        resp.session_id
    }

    #[test]
    fn an_incremental_fetch_answers_only_what_changed() {
        let cache = FetchSessions::new(10);
        let id = open(
            &cache,
            &[topic("a", &[(0, 0), (1, 0)]), topic("b", &[(0, 5)])],
        );
        assert!(id > 0);

        // nothing moved: an empty answer, and the session still reads all three
        let ctx = cache.context(12, id, 1, &[], &[], &ByName);
        assert_eq!(ctx.kind(), "incremental");
        assert_eq!(ctx.asked().iter().map(|(_, p)| p.len()).sum::<usize>(), 3);
        let resp = cache.respond(&ctx, answer(&ctx, 10, &[]));
        assert_eq!(resp.session_id, id);
        assert!(answered(&resp).is_empty());

        // a-1 has records: only it is answered, and it is read last next time
        let ctx = cache.context(12, id, 2, &[], &[], &ByName);
        let resp = cache.respond(&ctx, answer(&ctx, 10, &[1]));
        assert_eq!(answered(&resp), vec![("a".to_string(), 1)]);
        let ctx = cache.context(12, id, 3, &[topic("a", &[(1, 7)])], &[], &ByName);
        let order: Vec<(String, i32, i64)> = ctx
            .asked()
            .iter()
            .flat_map(|(t, ps)| {
                ps.iter()
                    .map(move |a| (t.name.to_string(), a.partition, a.fetch_offset))
            })
            .collect();
        assert_eq!(
            order,
            vec![("a".into(), 0, 0), ("b".into(), 0, 5), ("a".into(), 1, 7)],
            "the position the request named is kept, the partition read last"
        );

        // a moved high watermark is answered (no records), once
        let resp = cache.respond(&ctx, answer(&ctx, 11, &[]));
        assert_eq!(answered(&resp).len(), 3);
        let ctx = cache.context(12, id, 4, &[], &[], &ByName);
        assert!(answered(&cache.respond(&ctx, answer(&ctx, 11, &[]))).is_empty());
    }

    #[test]
    fn errors_are_always_answered_and_forgotten_partitions_leave() {
        let cache = FetchSessions::new(10);
        let id = open(&cache, &[topic("a", &[(0, 0), (1, 0)])]);
        let ctx = cache.context(12, id, 1, &[], &[], &ByName);
        let mut resp = answer(&ctx, 10, &[]);
        resp.responses[0].partitions[0].error_code = 6;
        let resp = cache.respond(&ctx, resp);
        assert_eq!(answered(&resp), vec![("a".to_string(), 0)]);
        // the error gone, the partition is answered again (its high watermark was forgotten)
        let ctx = cache.context(12, id, 2, &[], &[], &ByName);
        let resp = cache.respond(&ctx, answer(&ctx, 10, &[]));
        assert_eq!(answered(&resp), vec![("a".to_string(), 0)]);

        let ctx = cache.context(12, id, 3, &[], &[forget("a", &[0])], &ByName);
        assert_eq!(ctx.asked()[0].1.len(), 1);
        // forgetting the last partition ends the session
        let ctx = cache.context(12, id, 4, &[], &[forget("a", &[1])], &ByName);
        assert_eq!(ctx.kind(), "sessionless");
        assert!(matches!(
            cache.context(12, id, 5, &[], &[], &ByName),
            Context::Error(ResponseError::FetchSessionIdNotFound)
        ));
    }

    #[test]
    fn epochs_are_checked_and_final_or_initial_epochs_close_the_session() {
        let cache = FetchSessions::new(10);
        let id = open(&cache, &[topic("a", &[(0, 0)])]);
        assert!(matches!(
            cache.context(12, id, 2, &[], &[], &ByName),
            Context::Error(ResponseError::InvalidFetchSessionEpoch)
        ));
        assert_eq!(
            cache.context(12, id, 1, &[], &[], &ByName).kind(),
            "incremental"
        );
        // the same epoch again (a retried request) is refused
        assert!(matches!(
            cache.context(12, id, 1, &[], &[], &ByName),
            Context::Error(ResponseError::InvalidFetchSessionEpoch)
        ));
        assert!(matches!(
            cache.context(12, 12345, 1, &[], &[], &ByName),
            Context::Error(ResponseError::FetchSessionIdNotFound)
        ));
        // epoch -1 closes it and is served without a session
        let ctx = cache.context(12, id, -1, &[topic("a", &[(0, 0)])], &[], &ByName);
        assert_eq!(ctx.kind(), "sessionless");
        assert_eq!(cache.respond(&ctx, answer(&ctx, 1, &[])).session_id, 0);
        assert!(matches!(
            cache.context(12, id, 2, &[], &[], &ByName),
            Context::Error(ResponseError::FetchSessionIdNotFound)
        ));
        // a full fetch naming a session replaces it
        let id = open(&cache, &[topic("a", &[(0, 0)])]);
        let ctx = cache.context(12, id, 0, &[topic("a", &[(0, 0)])], &[], &ByName);
        let next = cache.respond(&ctx, answer(&ctx, 1, &[])).session_id;
        assert!(next > 0 && next != id);
        assert!(matches!(
            cache.context(12, id, 1, &[], &[], &ByName),
            Context::Error(ResponseError::FetchSessionIdNotFound)
        ));
        // below v7 there are no sessions
        assert_eq!(
            cache
                .context(6, 0, 0, &[topic("a", &[(0, 0)])], &[], &ByName)
                .kind(),
            "sessionless"
        );
        assert_eq!(next_epoch(i32::MAX), 1);
    }

    /// Topic ids (v13+): resolved through the catalog, kept by the session, forgotten by id.
    #[test]
    fn topic_ids_name_the_session_partitions() {
        struct One(Uuid);
        impl Names for One {
            fn name_of(&self, id: Uuid) -> Option<Arc<str>> {
                (id == self.0).then(|| Arc::from("known"))
            }
        }
        let known = Uuid::from_u128(7);
        let names = One(known);
        let by_id = |id: Uuid, parts: &[(i32, i64)]| {
            let mut t = topic("", parts);
            t.topic_id = id;
            t
        };
        let cache = FetchSessions::new(10);
        let stranger = Uuid::from_u128(9);
        let ctx = cache.context(
            13,
            0,
            0,
            &[by_id(known, &[(0, 0), (1, 0)]), by_id(stranger, &[(0, 0)])],
            &[],
            &names,
        );
        let topics: Vec<(String, Uuid)> = ctx
            .asked()
            .iter()
            .map(|(t, _)| (t.name.to_string(), t.id))
            .collect();
        assert_eq!(
            topics,
            vec![("known".into(), known), ("".into(), stranger)],
            "an unknown id keeps its id and no name"
        );
        let id = cache.respond(&ctx, answer(&ctx, 5, &[])).session_id;
        assert!(id > 0);
        // names where the session was opened with ids: Kafka's FETCH_SESSION_TOPIC_ID_ERROR
        assert!(matches!(
            cache.context(12, id, 1, &[], &[], &names),
            Context::Error(ResponseError::FetchSessionTopicIdError)
        ));
        let mut f = forget("", &[0]);
        f.topic_id = stranger;
        let ctx = cache.context(13, id, 1, &[], &[f], &names);
        assert_eq!(ctx.asked().len(), 1);
        assert_eq!(ctx.asked()[0].0.id, known);
        assert_eq!(ctx.asked()[0].1.len(), 2);
    }

    #[test]
    fn a_full_cache_evicts_only_by_kafkas_rules() {
        let cache = FetchSessions::new(2);
        let small = open(&cache, &[topic("a", &[(0, 0)])]);
        let big = open(&cache, &[topic("a", &[(0, 0), (1, 0), (2, 0)])]);
        assert!(small > 0 && big > 0);
        // both young: a third gets no session
        assert_eq!(open(&cache, &[topic("b", &[(0, 0), (1, 0)])]), 0);
        // the small one aged past the eviction age: a larger session takes its place, a
        // session no larger does not
        {
            let mut c = cache.cache.lock();
            let e = c.sessions.get_mut(&small).expect("small session");
            e.created -= EVICTION_AGE + Duration::from_secs(1);
        }
        assert_eq!(open(&cache, &[topic("b", &[(0, 0)])]), 0);
        let third = open(&cache, &[topic("b", &[(0, 0), (1, 0)])]);
        assert!(third > 0);
        assert!(matches!(
            cache.context(12, small, 1, &[], &[], &ByName),
            Context::Error(ResponseError::FetchSessionIdNotFound)
        ));
        // a session unused past the eviction age goes for any new one
        {
            let mut c = cache.cache.lock();
            let e = c.sessions.get_mut(&big).expect("big session");
            e.last_used -= EVICTION_AGE + Duration::from_secs(1);
        }
        assert!(open(&cache, &[topic("c", &[(0, 0)])]) > 0);
        assert_eq!(
            cache.context(12, third, 1, &[], &[], &ByName).kind(),
            "incremental"
        );
        let c = cache.cache.lock();
        assert_eq!(c.sessions.len(), 2);
        assert_eq!(c.partitions, 3);

        // no slots: no sessions
        let off = FetchSessions::new(0);
        let ctx = off.context(12, 0, 0, &[topic("a", &[(0, 0)])], &[], &ByName);
        assert_eq!(ctx.kind(), "sessionless");
    }
}
