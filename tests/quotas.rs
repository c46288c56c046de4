//! Client quotas over real TCP: AlterClientQuotas and DescribeClientQuotas with Kafka's
//! entities, filters and validation; quotas that survive a restart; produce, fetch and request
//! quotas answered with `throttle_time_ms`, the connection muted for as long (KIP-219), and the
//! throttling counted in `/metrics`.

#![allow(clippy::disallowed_methods)] // a test (or benchmark) reads and writes its files directly

mod common;

use common::{connect, create_topic, roundtrip, scrape, TestBroker};
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::net::TcpStream;
use std::time::{Duration, Instant};

const INVALID_REQUEST: i16 = 42;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// An entity part: `None` names the default.
fn part(t: &str, name: Option<&str>) -> EntityData {
    let mut e = EntityData::default();
    e.entity_type = s(t);
    e.entity_name = name.map(s);
    e
}

fn set(key: &str, value: f64) -> OpData {
    let mut o = OpData::default();
    o.key = s(key);
    o.value = value;
    o
}

fn remove(key: &str) -> OpData {
    let mut o = OpData::default();
    o.key = s(key);
    o.remove = true;
    o
}

/// AlterClientQuotas of one entry per (entity, ops); each entry's error code.
fn alter(
    c: &mut TcpStream,
    entries: Vec<(Vec<EntityData>, Vec<OpData>)>,
    validate_only: bool,
) -> Vec<i16> {
    let mut req = AlterClientQuotasRequest::default();
    req.validate_only = validate_only;
    req.entries = entries
        .into_iter()
        .map(|(entity, ops)| {
            let mut e = EntryData::default();
            e.entity = entity;
            e.ops = ops;
            e
        })
        .collect();
    let r: AlterClientQuotasResponse = roundtrip(c, 49, 1, 1, &req);
    assert_eq!(r.entries.len(), req.entries.len());
    r.entries.iter().map(|e| e.error_code).collect()
}

/// A filter component: match type 0 (exact, with a name), 1 (default) or 2 (any).
fn component(t: &str, match_type: i8, name: Option<&str>) -> ComponentData {
    let mut c = ComponentData::default();
    c.entity_type = s(t);
    c.match_type = match_type;
    c._match = name.map(s);
    c
}

/// DescribeClientQuotas: the error code and each entry as sorted
/// "type=name|type=<default>" → "key=value" strings.
fn describe(c: &mut TcpStream, components: Vec<ComponentData>, strict: bool) -> (i16, Vec<String>) {
    let mut req = DescribeClientQuotasRequest::default();
    req.components = components;
    req.strict = strict;
    let r: DescribeClientQuotasResponse = roundtrip(c, 48, 1, 2, &req);
    let mut entries: Vec<String> = r
        .entries
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let entity: Vec<String> = e
                .entity
                .iter()
                .map(|p| {
                    let name = p.entity_name.as_deref().unwrap_or("<default>");
                    format!("{}={name}", p.entity_type.as_str())
                })
                .collect();
            let values: Vec<String> = e
                .values
                .iter()
                .map(|v| format!("{}={}", v.key.as_str(), v.value))
                .collect();
            format!("{} -> {}", entity.join("|"), values.join(","))
        })
        .collect();
    entries.sort();
    (r.error_code, entries)
}

#[tokio::test(flavor = "multi_thread")]
async fn quotas_are_altered_described_and_kept_as_kafka_does() {
    let b = TestBroker::start().await;
    let mut c = connect(&b);
    let alice = || vec![part("user", Some("alice"))];
    let codes = alter(
        &mut c,
        vec![
            (alice(), vec![set("producer_byte_rate", 1024.0)]),
            (
                vec![part("user", Some("alice")), part("client-id", None)],
                vec![set("request_percentage", 50.5)],
            ),
            (
                vec![part("client-id", None)],
                vec![set("consumer_byte_rate", 2048.0)],
            ),
            (
                vec![part("user", None)],
                vec![set("producer_byte_rate", 4096.0)],
            ),
        ],
        false,
    );
    assert_eq!(codes, [0, 0, 0, 0]);

    // what is refused, entry by entry, and nothing of it stored
    let codes = alter(
        &mut c,
        vec![
            (alice(), vec![set("leader_replication_throttled_rate", 1.0)]),
            (alice(), vec![set("producer_byte_rate", -5.0)]),
            (alice(), vec![set("consumer_byte_rate", 10.5)]),
            (
                vec![part("ip", Some("127.0.0.1"))],
                vec![set("producer_byte_rate", 1.0)],
            ),
            (
                vec![part("user", Some("a")), part("user", Some("b"))],
                vec![set("producer_byte_rate", 1.0)],
            ),
            (vec![], vec![set("producer_byte_rate", 1.0)]),
            (
                vec![part("group", Some("g"))],
                vec![set("producer_byte_rate", 1.0)],
            ),
            (
                vec![part("user", Some("bob"))],
                vec![set("producer_byte_rate", 8.0)],
            ),
        ],
        false,
    );
    assert_eq!(
        codes,
        [
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            0
        ]
    );
    // validate-only changes nothing
    let codes = alter(
        &mut c,
        vec![(
            vec![part("user", Some("carol"))],
            vec![set("producer_byte_rate", 8.0)],
        )],
        true,
    );
    assert_eq!(codes, [0]);

    let all = [
        "client-id=<default> -> consumer_byte_rate=2048",
        "user=<default> -> producer_byte_rate=4096",
        "user=alice -> producer_byte_rate=1024",
        "user=alice|client-id=<default> -> request_percentage=50.5",
        "user=bob -> producer_byte_rate=8",
    ];
    assert_eq!(
        describe(&mut c, vec![], false),
        (0, all.map(String::from).to_vec())
    );
    assert_eq!(
        describe(&mut c, vec![], true),
        (0, vec![]),
        "strict with no component: only an empty entity"
    );
    let exact_alice = || component("user", 0, Some("alice"));
    assert_eq!(
        describe(&mut c, vec![exact_alice()], false).1,
        [all[2], all[3]]
    );
    assert_eq!(describe(&mut c, vec![exact_alice()], true).1, [all[2]]);
    assert_eq!(
        describe(&mut c, vec![component("user", 1, None)], true).1,
        [all[1]]
    );
    // "any": a default name counts as present
    assert_eq!(
        describe(&mut c, vec![component("client-id", 2, None)], false).1,
        [all[0], all[3]]
    );
    assert_eq!(
        describe(
            &mut c,
            vec![component("user", 2, None), component("client-id", 1, None)],
            true
        )
        .1,
        [all[3]]
    );
    assert_eq!(
        describe(&mut c, vec![exact_alice(), exact_alice()], false).0,
        INVALID_REQUEST
    );
    assert_eq!(
        describe(&mut c, vec![component("user", 0, None)], false).0,
        INVALID_REQUEST
    );
    assert_eq!(
        describe(&mut c, vec![component("user", 9, None)], false).0,
        INVALID_REQUEST
    );

    // removing an entity's last value removes the entity
    let codes = alter(
        &mut c,
        vec![(
            vec![part("user", Some("bob"))],
            vec![remove("producer_byte_rate")],
        )],
        false,
    );
    assert_eq!(codes, [0]);
    drop(c);

    let b = TestBroker::start_in(b.stop().await, |_| {}).await;
    let mut c = connect(&b);
    assert_eq!(
        describe(&mut c, vec![], false),
        (0, all[..4].iter().map(|s| s.to_string()).collect()),
        "quotas survive a restart"
    );
}

/// A batch of `n` records of `size` bytes each.
fn batch(n: usize, size: usize) -> bytes::Bytes {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let value = bytes::Bytes::from(vec![b'q'; size]);
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: 0,
            key: None,
            value: Some(value.clone()),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode");
    buf.freeze()
}

/// Produce v9 of `records` to partition 0 as the test client: (error code, throttle_time_ms).
fn produce(c: &mut TcpStream, topic: &str, records: bytes::Bytes) -> (i16, i32) {
    produce_as(c, "tiercel-tests", topic, records)
}

/// Fetch v12 of partition 0 from offset 0: (record bytes, throttle_time_ms).
fn fetch(c: &mut TcpStream, topic: &str) -> (usize, i32) {
    let mut p = FetchPartition::default();
    p.partition = 0;
    p.partition_max_bytes = 8 << 20;
    let mut t = FetchTopic::default();
    t.topic = TopicName(s(topic));
    t.partitions = vec![p];
    let mut req = FetchRequest::default();
    req.max_wait_ms = 0;
    req.max_bytes = 8 << 20;
    req.topics = vec![t];
    req.cluster_id = None;
    let r: FetchResponse = roundtrip(c, 1, 12, 4, &req);
    let bytes = r.responses[0].partitions[0]
        .records
        .as_ref()
        .map_or(0, |b| b.len());
    (bytes, r.throttle_time_ms)
}

#[tokio::test(flavor = "multi_thread")]
async fn producers_and_consumers_over_their_quota_are_throttled_and_muted() {
    let metrics_addr = common::free_addr();
    let b = TestBroker::start_with(|c| c.metrics_listen = metrics_addr).await;
    create_topic(&b, "q", 1).await;
    let mut c = connect(&b);
    // the test client's id at 200 KB/s each way; another client id stays free
    let codes = alter(
        &mut c,
        vec![(
            vec![part("client-id", Some("tiercel-tests"))],
            vec![
                set("producer_byte_rate", 200_000.0),
                set("consumer_byte_rate", 200_000.0),
            ],
        )],
        false,
    );
    assert_eq!(codes, [0]);

    // 1.2 MB in 50 KB requests: a second's burst passes, then each response carries its throttle
    // and the next request is not read until it has passed
    let started = Instant::now();
    let mut throttles = Vec::new();
    for _ in 0..24 {
        let (err, throttle) = produce(&mut c, "q", batch(1, 50_000));
        assert_eq!(err, 0);
        throttles.push(throttle);
    }
    let elapsed = started.elapsed();
    assert_eq!(throttles[0], 0, "within the burst: {throttles:?}");
    assert!(
        throttles.iter().filter(|t| **t > 0).count() >= 12,
        "past the quota the responses carry a throttle: {throttles:?}"
    );
    // the rate holds: at 200 KB/s, 1.2 MB less the 200 KB burst takes at least 5 s (a slow
    // client only makes it longer)
    assert!(
        elapsed >= Duration::from_millis(4500),
        "1.2 MB at 200 KB/s in {elapsed:?}: {throttles:?}"
    );
    // and it is the muting that holds it
    let owed: i32 = throttles[..23].iter().sum();
    assert!(
        elapsed >= Duration::from_millis(owed as u64 * 9 / 10),
        "the connection was muted: {elapsed:?} for {owed} ms of throttles"
    );

    // a fetch asking for everything (8 MB) is sized to the quota (200 KB, and at least one
    // batch), and fetches one after the other are held to the rate
    let mut f = connect(&b);
    let started = Instant::now();
    let mut fetched = 0;
    let mut throttled = 0;
    let mut last = 0;
    for _ in 0..6 {
        let (bytes, throttle) = fetch(&mut f, "q");
        last = bytes;
        assert!(
            bytes > 0 && bytes <= 260_000,
            "a fetch under a 200 KB/s quota carried {bytes} bytes"
        );
        fetched += bytes;
        throttled += (throttle > 0) as usize;
    }
    let elapsed = started.elapsed();
    assert!(throttled >= 3, "{throttled} of 6 fetches throttled");
    // paid for by the time the last answer arrives: all but the burst and that last answer
    // (whose throttle is not waited out here)
    let floor = (fetched - 200_000 - last) as f64 / 200_000.0 * 0.9;
    assert!(
        elapsed.as_secs_f64() >= floor,
        "{fetched} bytes fetched in {elapsed:?} at 200 KB/s (at least {floor:.1} s)"
    );

    let metrics = scrape(metrics_addr);
    for quota in ["produce", "fetch"] {
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with("tiercel_throttled_responses_total")
                    && l.contains(&format!("quota=\"{quota}\""))
                    && l.contains("principal=\"User:ANONYMOUS\"")
            })
            .unwrap_or_else(|| panic!("no {quota} throttle counted in /metrics"));
        let n: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .expect("value");
        assert!(n >= 1.0, "{line}");
    }

    // another client id is not held by this client id's quota
    let mut other = TcpStream::connect(b.addr).expect("connect");
    other
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let (err, throttle) = produce_as(&mut other, "other-app", "q", batch(1, 50_000));
    assert_eq!((err, throttle), (0, 0));
}

/// A Produce v9 frame of `records` to partition 0 from client id `client`.
fn produce_frame(client: &str, acks: i16, topic: &str, records: bytes::Bytes) -> Vec<u8> {
    use kafka_protocol::protocol::Encodable;
    let mut p = PartitionProduceData::default();
    p.index = 0;
    p.records = Some(records);
    let mut t = TopicProduceData::default();
    t.name = TopicName(s(topic));
    t.partition_data = vec![p];
    let mut req = ProduceRequest::default();
    req.transactional_id = None;
    req.acks = acks;
    req.timeout_ms = 5000;
    req.topic_data = vec![t];
    let mut h = RequestHeader::default();
    h.request_api_key = 0;
    h.request_api_version = 9;
    h.correlation_id = 7;
    h.client_id = Some(s(client));
    let mut body = bytes::BytesMut::new();
    h.encode(&mut body, ApiKey::Produce.request_header_version(9))
        .expect("header");
    req.encode(&mut body, 9).expect("body");
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// Produce (acks=1) as client id `client`: (error code, throttle_time_ms).
fn produce_as(c: &mut TcpStream, client: &str, topic: &str, records: bytes::Bytes) -> (i16, i32) {
    use kafka_protocol::protocol::Decodable;
    use std::io::{Read, Write};
    c.write_all(&produce_frame(client, 1, topic, records))
        .expect("write");
    let mut len = [0u8; 4];
    c.read_exact(&mut len).expect("length");
    let mut resp = vec![0u8; i32::from_be_bytes(len) as usize];
    c.read_exact(&mut resp).expect("response");
    let mut buf = bytes::Bytes::from(resp);
    ResponseHeader::decode(&mut buf, ApiKey::Produce.response_header_version(9)).expect("header");
    let r = ProduceResponse::decode(&mut buf, 9).expect("body");
    (
        r.responses[0].partition_responses[0].error_code,
        r.throttle_time_ms,
    )
}

/// acks=0 producers get no response to carry a throttle: muting alone holds them.
#[tokio::test(flavor = "multi_thread")]
async fn an_acks_0_producer_over_its_quota_is_held_by_muting() {
    use std::io::Write;
    let b = TestBroker::start().await;
    create_topic(&b, "z", 1).await;
    let mut c = connect(&b);
    let codes = alter(
        &mut c,
        vec![(
            vec![part("client-id", Some("fire-and-forget"))],
            vec![set("producer_byte_rate", 200_000.0)],
        )],
        false,
    );
    assert_eq!(codes, [0]);
    let started = Instant::now();
    for _ in 0..24 {
        c.write_all(&produce_frame("fire-and-forget", 0, "z", batch(1, 50_000)))
            .expect("write");
    }
    // the next request is read only once the 1.2 MB are paid for: 1 MB past the burst at
    // 200 KB/s
    let mut req = MetadataRequest::default();
    req.topics = None;
    let _: MetadataResponse = roundtrip(&mut c, 3, 12, 8, &req);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(4500),
        "24 acks=0 produces of 50 KB at 200 KB/s answered a Metadata after {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_percentage_quota_throttles_busy_clients() {
    let b = TestBroker::start().await;
    create_topic(&b, "r", 4).await;
    let mut c = connect(&b);
    // 1% of one thread: ten milliseconds of handling per second
    let codes = alter(
        &mut c,
        vec![(
            vec![part("user", None)],
            vec![set("request_percentage", 1.0)],
        )],
        false,
    );
    assert_eq!(codes, [0]);
    let mut throttled = None;
    for i in 0..20_000 {
        let mut req = MetadataRequest::default();
        req.topics = None;
        let r: MetadataResponse = roundtrip(&mut c, 3, 12, 5, &req);
        if r.throttle_time_ms > 0 {
            throttled = Some((i, r.throttle_time_ms));
            break;
        }
    }
    let (_, ms) = throttled.expect("a client taking more than 1% of a thread is throttled");
    assert!(ms <= 10_000, "{ms}");
}
