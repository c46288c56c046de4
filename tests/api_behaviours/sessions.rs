//! Incremental fetch sessions (KIP-227) over the wire: a full fetch opens a session, the next
//! fetches name only what changed and are answered only with what is new, and a stale epoch or
//! an unknown session id gets Kafka's top-level error.

use crate::common::{connect, create_topic, read_response, send_request, TestBroker};
use crate::util::{metadata, produce, produce_request, topic};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProduceResponse};
use std::net::TcpStream;
use uuid::Uuid;

const FETCH: i16 = 1;
const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const INVALID_FETCH_SESSION_EPOCH: i16 = 71;
const UNKNOWN_TOPIC_ID: i16 = 100;
const FETCH_SESSION_TOPIC_ID_ERROR: i16 = 106;

fn fetch_req(session_id: i32, epoch: i32, parts: &[(&str, i32, i64)]) -> FetchRequest {
    let mut req = FetchRequest::default();
    req.replica_id = BrokerId(-1);
    req.max_wait_ms = 200;
    req.min_bytes = 1;
    req.max_bytes = 1 << 20;
    req.session_id = session_id;
    req.session_epoch = epoch;
    for &(t, partition, offset) in parts {
        let mut p = FetchPartition::default();
        p.partition = partition;
        p.fetch_offset = offset;
        p.partition_max_bytes = 1 << 20;
        match req.topics.last_mut() {
            Some(ft) if ft.topic.0.as_str() == t => ft.partitions.push(p),
            _ => {
                let mut ft = FetchTopic::default();
                ft.topic = topic(t);
                ft.partitions.push(p);
                req.topics.push(ft);
            }
        }
    }
    req
}

fn fetch(s: &mut TcpStream, corr: i32, req: &FetchRequest) -> FetchResponse {
    fetch_v(s, 12, corr, req)
}

fn fetch_v(s: &mut TcpStream, v: i16, corr: i32, req: &FetchRequest) -> FetchResponse {
    send_request(s, FETCH, v, corr, req);
    read_response(s, FETCH, v, corr).expect("fetch response")
}

/// The same request naming its topics by id (v13+).
fn by_ids(mut req: FetchRequest, ids: &[(&str, Uuid)]) -> FetchRequest {
    let id_of = |name: &str| {
        ids.iter()
            .find(|(n, _)| *n == name)
            .map_or(Uuid::nil(), |x| x.1)
    };
    for t in &mut req.topics {
        t.topic_id = id_of(&t.topic.0);
    }
    for f in &mut req.forgotten_topics_data {
        f.topic_id = id_of(&f.topic.0);
    }
    req
}

/// (partition, records bytes) of each partition answered.
fn answered(resp: &FetchResponse) -> Vec<(i32, usize)> {
    resp.responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| (p.partition_index, p.records.as_ref().map_or(0, |r| r.len())))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_session_answers_only_what_is_new() {
    let b = TestBroker::start().await;
    create_topic(&b, "sess", 3).await;
    assert_eq!(produce(&b, "sess", 0, &[(1, "a"), (2, "b")]).0, 0);
    let mut s = connect(&b);

    // the full fetch: every partition, and a new session
    let all = [("sess", 0, 0), ("sess", 1, 0), ("sess", 2, 0)];
    let resp = fetch(&mut s, 1, &fetch_req(0, 0, &all));
    assert_eq!(resp.error_code, 0);
    let id = resp.session_id;
    assert!(id > 0, "a session was opened");
    let got = answered(&resp);
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got[0].1 > 0 && got[1].1 == 0 && got[2].1 == 0, "{got:?}");

    // p0 read to its end; nothing new anywhere: an empty answer after the long poll
    let resp = fetch(&mut s, 2, &fetch_req(id, 1, &[("sess", 0, 2)]));
    assert_eq!((resp.error_code, resp.session_id), (0, id));
    assert!(answered(&resp).is_empty(), "{:?}", answered(&resp));

    // records on p2: only p2 is answered, from the offset the session holds
    assert_eq!(produce(&b, "sess", 2, &[(3, "c")]).0, 0);
    let resp = fetch(&mut s, 3, &fetch_req(id, 2, &[]));
    let got = answered(&resp);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, 2);
    assert!(got[0].1 > 0);
    assert_eq!(resp.responses[0].partitions[0].high_watermark, 1);

    // a stale epoch, a retried epoch and an unknown session: Kafka's top-level errors
    let resp = fetch(&mut s, 4, &fetch_req(id, 2, &[]));
    assert_eq!(resp.error_code, INVALID_FETCH_SESSION_EPOCH);
    assert!(resp.responses.is_empty());
    let resp = fetch(&mut s, 5, &fetch_req(id.wrapping_add(1), 1, &[]));
    assert_eq!(resp.error_code, FETCH_SESSION_ID_NOT_FOUND);

    // the session is not bound to its connection; forgotten partitions are no longer read
    let mut other = connect(&b);
    let mut req = fetch_req(id, 3, &[("sess", 2, 1)]);
    let mut f = ForgottenTopic::default();
    f.topic = topic("sess");
    f.partitions = vec![0, 1];
    req.forgotten_topics_data.push(f);
    let resp = fetch(&mut other, 6, &req);
    assert_eq!((resp.error_code, resp.session_id), (0, id));
    assert_eq!(produce(&b, "sess", 0, &[(4, "d")]).0, 0);
    let resp = fetch(&mut other, 7, &fetch_req(id, 4, &[]));
    assert!(
        answered(&resp).is_empty(),
        "p0 was forgotten: {:?}",
        answered(&resp)
    );
    assert_eq!(produce(&b, "sess", 2, &[(5, "e")]).0, 0);
    let resp = fetch(&mut other, 8, &fetch_req(id, 5, &[]));
    assert_eq!(
        answered(&resp).iter().map(|p| p.0).collect::<Vec<_>>(),
        vec![2]
    );

    // epoch -1 closes the session: a sessionless full answer, and the id is gone
    let resp = fetch(&mut s, 9, &fetch_req(id, -1, &all));
    assert_eq!((resp.error_code, resp.session_id), (0, 0));
    assert_eq!(answered(&resp).len(), 3);
    let resp = fetch(&mut s, 10, &fetch_req(id, 6, &[]));
    assert_eq!(resp.error_code, FETCH_SESSION_ID_NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_sessions_when_the_cache_has_no_slots() {
    let b = TestBroker::start_with(|c| c.max_incremental_fetch_session_cache_slots = 0).await;
    create_topic(&b, "nosess", 1).await;
    let mut s = connect(&b);
    let resp = fetch(&mut s, 1, &fetch_req(0, 0, &[("nosess", 0, 0)]));
    assert_eq!((resp.error_code, resp.session_id), (0, 0));
    assert_eq!(answered(&resp).len(), 1);
}

/// Fetch v13–v17 name topics by id: the session keeps them by id, an id that names no topic
/// (never, or no longer: deleted and created anew) gets UNKNOWN_TOPIC_ID, and a session opened
/// with ids cannot go on with names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_by_topic_id() {
    let b = TestBroker::start().await;
    create_topic(&b, "ids", 2).await;
    let id = metadata(&b, vec![(Some("ids"), Uuid::nil())]).topics[0].topic_id;
    assert!(!id.is_nil());
    let stranger = Uuid::from_u128(0x5eed);
    // Produce v13 names the topic by id too; a stranger id is UNKNOWN_TOPIC_ID
    let mut s = connect(&b);
    for (id, want) in [(id, 0), (stranger, UNKNOWN_TOPIC_ID)] {
        let mut req = produce_request("", 1, &[(1, "x")]);
        req.topic_data[0].topic_id = id;
        send_request(&mut s, 0, 13, 9, &req);
        let resp: ProduceResponse = read_response(&mut s, 0, 13, 9).expect("produce response");
        let t = &resp.responses[0];
        assert_eq!(t.topic_id, id);
        assert_eq!(
            t.partition_responses[0].error_code, want,
            "produce v13 to {id}"
        );
    }
    let ids = [("ids", id), ("nope", stranger)];
    for v in [13, 17] {
        let req = by_ids(
            fetch_req(0, 0, &[("ids", 0, 0), ("ids", 1, 0), ("nope", 0, 0)]),
            &ids,
        );
        let resp = fetch_v(&mut s, v, 1, &req);
        assert_eq!(resp.error_code, 0);
        let session = resp.session_id;
        assert!(session > 0);
        let got: Vec<(Uuid, i32, i16, usize)> = resp
            .responses
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(move |p| {
                    (
                        t.topic_id,
                        p.partition_index,
                        p.error_code,
                        p.records.as_ref().map_or(0, |r| r.len()),
                    )
                })
            })
            .collect();
        assert_eq!(got.len(), 3, "v{v}: {got:?}");
        assert_eq!((got[0].0, got[0].1, got[0].2, got[0].3), (id, 0, 0, 0));
        assert_eq!((got[1].0, got[1].1, got[1].2), (id, 1, 0));
        assert!(got[1].3 > 0, "v{v}: records of partition 1");
        assert_eq!((got[2].0, got[2].2), (stranger, UNKNOWN_TOPIC_ID));

        // names where the session was opened with ids
        let resp = fetch_v(&mut s, 12, 2, &fetch_req(session, 1, &[]));
        assert_eq!(resp.error_code, FETCH_SESSION_TOPIC_ID_ERROR, "v{v}");
        // the unknown id forgotten, partition 1 read to its end: nothing new but the error gone
        let mut req = by_ids(fetch_req(session, 1, &[("ids", 1, 1)]), &ids);
        let mut f = ForgottenTopic::default();
        f.topic_id = stranger;
        f.partitions = vec![0];
        req.forgotten_topics_data.push(f);
        let resp = fetch_v(&mut s, v, 3, &req);
        assert_eq!((resp.error_code, resp.session_id), (0, session));
        assert!(answered(&resp).is_empty(), "v{v}: {:?}", answered(&resp));
        let resp = fetch_v(&mut s, v, 4, &fetch_req(session, -1, &[]));
        assert_eq!(resp.session_id, 0);
    }

    // the topic deleted and created anew: the old id names nothing
    let admin = crate::common::admin(&b.bootstrap());
    let opts = rdkafka::admin::AdminOptions::new();
    admin.delete_topics(&["ids"], &opts).await.expect("delete");
    create_topic(&b, "ids", 2).await;
    let req = by_ids(fetch_req(0, 0, &[("ids", 0, 0)]), &ids);
    let resp = fetch_v(&mut s, 17, 5, &req);
    let p = &resp.responses[0].partitions[0];
    assert_eq!(
        (resp.responses[0].topic_id, p.error_code),
        (id, UNKNOWN_TOPIC_ID)
    );
}
