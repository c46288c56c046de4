//! Bytes no client should send, over real TCP: the broker closes that connection (or answers
//! with an error) and keeps serving everyone else.

#![allow(clippy::disallowed_methods)] // a test (or benchmark) reads and writes its files directly

mod common;

use common::{connect, roundtrip, TestBroker};
use std::io::{Read, Write};
use std::time::Duration;

/// A request frame: length, api key, version, correlation id, client id, body.
fn frame(api: i16, version: i16, corr: i32, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend(api.to_be_bytes());
    f.extend(version.to_be_bytes());
    f.extend(corr.to_be_bytes());
    f.extend((-1i16).to_be_bytes()); // null client id
    f.extend(body);
    let mut out = (f.len() as i32).to_be_bytes().to_vec();
    out.extend(f);
    out
}

/// Sends `bytes` and expects the broker to close the connection without answering.
fn expect_closed(b: &TestBroker, bytes: &[u8]) {
    let mut s = connect(b);
    let _ = s.write_all(bytes);
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the connection to close, got {other:?}"),
    }
}

/// The broker still answers ApiVersions v0 on a fresh connection.
fn still_serving(b: &TestBroker) {
    let mut s = connect(b);
    s.write_all(&frame(18, 0, 77, &[])).expect("write");
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("response length");
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).expect("response");
    assert_eq!(&body[0..4], &77i32.to_be_bytes(), "correlation id");
    assert_eq!(&body[4..6], &0i16.to_be_bytes(), "no error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_close_only_their_connection() {
    let b = TestBroker::start_with(|c| c.socket_request_max_bytes = 1 << 20).await;
    let addr_b = &b;
    tokio::task::block_in_place(|| {
        // a 4-byte Metadata v0 body claiming 2^31-1 topics
        expect_closed(addr_b, &frame(3, 0, 1, &i32::MAX.to_be_bytes()));
        still_serving(addr_b);
        // Produce v3 claiming 2^31-1 topics
        let mut body = Vec::new();
        body.extend((-1i16).to_be_bytes());
        body.extend(1i16.to_be_bytes());
        body.extend(1000i32.to_be_bytes());
        body.extend(i32::MAX.to_be_bytes());
        expect_closed(addr_b, &frame(0, 3, 2, &body));
        // frame larger than socket_request_max_bytes
        expect_closed(addr_b, &(2i32 << 20).to_be_bytes());
        // negative frame length
        expect_closed(addr_b, &(-5i32).to_be_bytes());
        // unknown api key, unsupported version, truncated header
        expect_closed(addr_b, &frame(31_000, 0, 3, &[]));
        expect_closed(addr_b, &frame(1, 99, 4, &[]));
        expect_closed(addr_b, &[0, 0, 0, 3, 0, 1, 0]);
        // random garbage bodies for Fetch v12
        expect_closed(addr_b, &frame(1, 12, 5, &[0xff; 40]));
        still_serving(addr_b);
    });
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_above_max_gets_v0_error_reply() {
    let b = TestBroker::start().await;
    tokio::task::block_in_place(|| {
        let mut s = connect(&b);
        // ApiVersions v127 with a body the broker cannot know
        s.write_all(&frame(18, 127, 9, &[1, 2, 3])).expect("write");
        let mut len = [0u8; 4];
        s.read_exact(&mut len).expect("len");
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        s.read_exact(&mut body).expect("body");
        assert_eq!(&body[0..4], &9i32.to_be_bytes());
        assert_eq!(
            i16::from_be_bytes([body[4], body[5]]),
            35,
            "UNSUPPORTED_VERSION"
        );
        let n = i32::from_be_bytes([body[6], body[7], body[8], body[9]]);
        assert!(n >= 10, "carries the supported ranges: {n}");
        // ApiVersions itself is listed with max 4
        let entries = &body[10..10 + n as usize * 6];
        let av = entries
            .chunks(6)
            .find(|e| i16::from_be_bytes([e[0], e[1]]) == 18)
            .expect("ApiVersions entry");
        assert_eq!(i16::from_be_bytes([av[4], av[5]]), 4);
        // and the connection stays usable
        s.write_all(&frame(18, 0, 10, &[])).expect("write");
        s.read_exact(&mut len).expect("second response");
    });
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_errors_are_kafka_codes() {
    use rdkafka::producer::FutureRecord;
    let b = TestBroker::start().await;
    // a batch with a corrupted CRC, sent raw: CORRUPT_MESSAGE for that partition
    let p = b.producer(&[]);
    p.send(
        FutureRecord::<(), str>::to("raw").payload("seed"),
        Duration::from_secs(10),
    )
    .await
    .expect("topic exists");
    tokio::task::block_in_place(|| {
        let batch = valid_batch();
        let mut corrupt = batch.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0x55;
        assert_eq!(produce_raw(&b, "raw", &corrupt), 2, "CORRUPT_MESSAGE");
        assert_eq!(
            produce_raw(&b, "raw", &batch),
            0,
            "the intact batch is accepted"
        );
        let mut two = batch.clone();
        two.extend(&batch);
        assert_eq!(
            produce_raw(&b, "raw", &two),
            87,
            "INVALID_RECORD for two batches"
        );
        let mut magic1 = batch.clone();
        magic1[16] = 1;
        assert_eq!(
            produce_raw(&b, "raw", &magic1),
            87,
            "INVALID_RECORD for magic 1"
        );
        assert_eq!(
            produce_raw(&b, "no-such-topic", &batch),
            3,
            "UNKNOWN_TOPIC_OR_PARTITION"
        );
    });
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_acks_0_produce_closes_the_connection() {
    use rdkafka::producer::FutureRecord;
    let b = TestBroker::start().await;
    b.producer(&[])
        .send(
            FutureRecord::<(), str>::to("raw0").payload("seed"),
            Duration::from_secs(10),
        )
        .await
        .expect("topic exists");
    tokio::task::block_in_place(|| {
        let mut s = connect(&b);
        // a good acks=0 produce gets no response; the ApiVersions after it is answered
        s.write_all(&produce_frame("raw0", &valid_batch(), 0))
            .expect("write");
        s.write_all(&frame(18, 0, 12, &[])).expect("write");
        let mut len = [0u8; 4];
        s.read_exact(&mut len).expect("ApiVersions answered");
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        s.read_exact(&mut body).expect("body");
        assert_eq!(
            &body[0..4],
            &12i32.to_be_bytes(),
            "the first response is ApiVersions'"
        );
        // a failing acks=0 produce closes the connection, as Kafka does
        let mut corrupt = valid_batch();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        s.write_all(&produce_frame("raw0", &corrupt, 0))
            .expect("write");
        let mut buf = [0u8; 8];
        match s.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("expected close, got {other:?}"),
        }
    });
    let got = b.consume("raw0", 1, 2);
    assert_eq!(got.len(), 2, "the good acks=0 batch was appended");
    b.stop().await;
}

/// A one-record uncompressed magic-v2 batch with a correct CRC-32C.
fn valid_batch() -> Vec<u8> {
    let record: &[u8] = &[0, 0, 0, 1, 2, b'v', 0]; // attrs, ts delta, offset delta, key null(-1 => 1), value len 1, 'v', headers 0
    let mut rec = vec![record.len() as u8 * 2]; // zigzag varint length
    rec.extend(record);
    batch_around(0, &rec, 1, 1)
}

/// A Produce v7 frame of `records` to partition 0 of `topic`.
fn produce_frame(topic: &str, records: &[u8], acks: i16) -> Vec<u8> {
    produce_frame_v(7, topic, records, acks)
}

/// A Produce frame of `version` (3 to 8: the same layout) of `records`.
fn produce_frame_v(version: i16, topic: &str, records: &[u8], acks: i16) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend((-1i16).to_be_bytes()); // transactional id
    body.extend(acks.to_be_bytes());
    body.extend(5000i32.to_be_bytes());
    body.extend(1i32.to_be_bytes());
    body.extend((topic.len() as i16).to_be_bytes());
    body.extend(topic.as_bytes());
    body.extend(1i32.to_be_bytes());
    body.extend(0i32.to_be_bytes()); // partition
    body.extend((records.len() as i32).to_be_bytes());
    body.extend(records);
    frame(0, version, 11, &body)
}

/// Produce v7 (acks=all) of `records` to partition 0 of `topic`; returns the partition error.
fn produce_raw(b: &TestBroker, topic: &str, records: &[u8]) -> i16 {
    produce_raw_v(7, b, topic, records)
}

fn produce_raw_v(version: i16, b: &TestBroker, topic: &str, records: &[u8]) -> i16 {
    let mut s = connect(b);
    s.write_all(&produce_frame_v(version, topic, records, -1))
        .expect("write");
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("len");
    let mut resp = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut resp).expect("body");
    // corr(4) topics(4) name(2+len) partitions(4) index(4) error(2)
    let at = 4 + 4 + 2 + topic.len() + 4 + 4;
    i16::from_be_bytes([resp[at], resp[at + 1]])
}

fn join_request(
    member: &str,
    protocol_type: &str,
    protocols: usize,
) -> kafka_protocol::messages::JoinGroupRequest {
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::{GroupId, JoinGroupRequest};
    use kafka_protocol::protocol::StrBytes;
    let mut r = JoinGroupRequest::default();
    r.group_id = GroupId(StrBytes::from_static_str("hostile-group"));
    r.session_timeout_ms = 10_000;
    r.rebalance_timeout_ms = 10_000;
    r.member_id = StrBytes::from_string(member.to_string());
    r.protocol_type = StrBytes::from_string(protocol_type.to_string());
    r.protocols = (0..protocols)
        .map(|i| {
            let mut p = JoinGroupRequestProtocol::default();
            p.name = StrBytes::from_string(format!("p{i}"));
            p.metadata = bytes::Bytes::from_static(b"meta");
            p
        })
        .collect();
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_group_requests_get_errors_and_bounded_state() {
    use kafka_protocol::messages::{
        GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupResponse,
    };
    use kafka_protocol::protocol::StrBytes;
    let b = TestBroker::start_with(|c| c.group_max_size = 1000).await;
    tokio::task::block_in_place(|| {
        let mut s = connect(&b);
        // a 30 KB member id (near the protocol maximum) the group never issued
        let r: JoinGroupResponse = roundtrip(
            &mut s,
            11,
            5,
            1,
            &join_request(&"m".repeat(30_000), "consumer", 1),
        );
        assert_eq!(r.error_code, 25, "UNKNOWN_MEMBER_ID");
        // an empty protocol type, and no protocols at all
        let r: JoinGroupResponse = roundtrip(&mut s, 11, 5, 2, &join_request("", "", 1));
        assert_eq!(r.error_code, 23, "INCONSISTENT_GROUP_PROTOCOL");
        let r: JoinGroupResponse = roundtrip(&mut s, 11, 5, 3, &join_request("", "consumer", 0));
        assert_eq!(r.error_code, 23, "INCONSISTENT_GROUP_PROTOCOL");
        // a group id far beyond any sane length
        let mut long = join_request("", "consumer", 1);
        long.group_id = GroupId(StrBytes::from_string("g".repeat(10_000)));
        let r: JoinGroupResponse = roundtrip(&mut s, 11, 5, 4, &long);
        assert_eq!(r.error_code, 24, "INVALID_GROUP_ID");
        // thousands of would-be members: the group stops growing at group_max_size
        let mut required = 0;
        let mut refused = 0;
        for i in 0..1500 {
            let r: JoinGroupResponse =
                roundtrip(&mut s, 11, 5, 10 + i, &join_request("", "consumer", 1));
            match r.error_code {
                79 => required += 1, // MEMBER_ID_REQUIRED: a pending member id was handed out
                81 => refused += 1,  // GROUP_MAX_SIZE_REACHED
                other => panic!("unexpected error {other}"),
            }
        }
        assert_eq!((required, refused), (1000, 500));
        // heartbeats from strangers are refused, and the broker still answers
        let mut hb = HeartbeatRequest::default();
        hb.group_id = GroupId(StrBytes::from_static_str("hostile-group"));
        hb.member_id = StrBytes::from_static_str("nobody");
        hb.generation_id = 7;
        let r: HeartbeatResponse = roundtrip(&mut s, 12, 3, 9999, &hb);
        assert_eq!(r.error_code, 25, "UNKNOWN_MEMBER_ID");
    });
    b.stop().await;
}

/// A Fetch v4 of `topic`/0 from `offset` that waits up to 2^31-1 ms for one byte.
fn long_poll(topic: &str, offset: i64) -> kafka_protocol::messages::FetchRequest {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{FetchRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let mut p = FetchPartition::default();
    p.partition = 0;
    p.fetch_offset = offset;
    p.partition_max_bytes = 1 << 20;
    let mut t = FetchTopic::default();
    t.topic = TopicName(StrBytes::from_string(topic.to_string()));
    t.partitions = vec![p];
    let mut req = FetchRequest::default();
    req.replica_id = kafka_protocol::messages::BrokerId(-1);
    req.max_wait_ms = i32::MAX;
    req.min_bytes = 1;
    req.max_bytes = i32::MAX;
    req.topics = vec![t];
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_a_long_poll_frees_its_connection_slot() {
    let b = TestBroker::start_with(|c| c.max_connections = 2).await;
    common::create_topic(&b, "parked", 1).await;
    tokio::task::block_in_place(|| {
        assert_eq!(produce_raw(&b, "parked", &valid_batch()), 0);
        for _ in 0..5 {
            // both slots hold a Fetch that would wait 24 days, then their clients go away
            let parked: Vec<_> = (0..2)
                .map(|_| {
                    let mut s = connect(&b);
                    common::send_request(&mut s, 1, 4, 9, &long_poll("parked", 1));
                    s
                })
                .collect();
            std::thread::sleep(Duration::from_millis(200));
            drop(parked);
            // a new client is served at once: the slots were released
            let mut s = connect(&b);
            s.set_read_timeout(Some(Duration::from_secs(3)))
                .expect("timeout");
            s.write_all(&frame(18, 0, 78, &[])).expect("write");
            let mut len = [0u8; 4];
            s.read_exact(&mut len)
                .expect("ApiVersions answered while the long polls' clients are gone");
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_asking_for_everything_gets_at_most_fetch_max_bytes() {
    let b = TestBroker::start_with(|c| c.fetch_max_bytes = 4096).await;
    common::create_topic(&b, "capped", 1).await;
    tokio::task::block_in_place(|| {
        let batch = valid_batch();
        for _ in 0..200 {
            assert_eq!(produce_raw(&b, "capped", &batch), 0);
        }
        let mut req = long_poll("capped", 0);
        req.max_wait_ms = 0;
        let mut s = connect(&b);
        common::send_request(&mut s, 1, 4, 10, &req);
        let resp: kafka_protocol::messages::FetchResponse =
            common::read_response(&mut s, 1, 4, 10).expect("fetch response");
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 0);
        let got = p.records.as_ref().map_or(0, |r| r.len());
        assert!(
            got > 0 && got <= 4096,
            "{got} bytes for a broker capped at 4096 (200 batches of {} bytes stored)",
            batch.len()
        );
    });
}

/// A client batch around `body` (encoded records, compressed with `codec` by the caller)
/// declaring `count` records, CRC computed.
fn batch_around(codec: i16, body: &[u8], count: i32, max_ts: i64) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(0i64.to_be_bytes());
    b.extend(((49 + body.len()) as i32).to_be_bytes());
    b.extend(0i32.to_be_bytes());
    b.push(2);
    b.extend([0u8; 4]);
    b.extend(codec.to_be_bytes());
    b.extend(count.wrapping_sub(1).to_be_bytes());
    b.extend(1i64.to_be_bytes()); // base timestamp
    b.extend(max_ts.to_be_bytes());
    b.extend((-1i64).to_be_bytes());
    b.extend((-1i16).to_be_bytes());
    b.extend((-1i32).to_be_bytes());
    b.extend(count.to_be_bytes());
    b.extend(body);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// One encoded record: offset delta `i`, timestamp delta 0, a 3-byte key, a 5-byte value.
fn record(i: i64) -> Vec<u8> {
    use tiercel::format::batch::put_varint;
    let mut r = vec![0u8];
    put_varint(&mut r, 0);
    put_varint(&mut r, i);
    put_varint(&mut r, 3);
    r.extend(b"key");
    put_varint(&mut r, 5);
    r.extend(b"value");
    put_varint(&mut r, 0);
    let mut out = Vec::new();
    put_varint(&mut out, r.len() as i64);
    out.extend(r);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_batches_are_refused_and_never_stored() {
    use tiercel::format::codec;
    let b = TestBroker::start().await;
    common::create_topic(&b, "poison", 1).await;
    let four: Vec<u8> = (0..4).flat_map(record).collect();
    let mut poison: Vec<(&str, Vec<u8>)> = vec![
        ("count above the records", batch_around(0, &four, 5, 1)),
        ("count of 2^31 - 1", batch_around(0, &four, i32::MAX, 1)),
        ("count below the records", batch_around(0, &four, 3, 1)),
        (
            "truncated mid-record",
            batch_around(0, &four[..four.len() - 4], 4, 1),
        ),
        ("trailing garbage", {
            let mut g = four.clone();
            g.extend(b"\x02garbage");
            batch_around(0, &g, 4, 1)
        }),
        (
            "negative record length",
            batch_around(0, &[0x03, 0, 0, 0], 1, 1),
        ),
        (
            "length of 2^31",
            batch_around(0, &[0x80, 0x80, 0x80, 0x80, 0x10, 0], 1, 1),
        ),
        ("overlong varint", batch_around(0, &[0xff; 12], 1, 1)),
        ("offset deltas out of step", {
            let mut r = record(0);
            r.extend(record(5));
            batch_around(0, &r, 2, 1)
        }),
    ];
    for c in 1..=7i16 {
        let name = [
            "", "gzip", "snappy", "lz4", "zstd", "codec 5", "codec 6", "codec 7",
        ][c as usize];
        poison.push((
            name,
            batch_around(c, b"definitely not compressed data", 1, 1),
        ));
    }
    for c in 1..=4i16 {
        let mut g = four.clone();
        g.extend(b"\x02garbage");
        let body = codec::compress(c, &g).expect("compress");
        poison.push(("compressed trailing garbage", batch_around(c, &body, 4, 1)));
    }
    let good = batch_around(0, &four, 4, 1);
    tokio::task::block_in_place(|| {
        for (what, batch) in &poison {
            let code = produce_raw(&b, "poison", batch);
            assert!(
                code == 2 || code == 87,
                "{what}: expected CORRUPT_MESSAGE or INVALID_RECORD, got {code}"
            );
            assert_eq!(produce_raw(&b, "poison", &good), 0, "after {what}");
        }
        for c in 1..=4i16 {
            let body = codec::compress(c, &four).expect("compress");
            assert_eq!(
                produce_raw(&b, "poison", &batch_around(c, &body, 4, 1)),
                0,
                "codec {c}"
            );
        }
        // a max timestamp of -1 (as some clients send) is taken from the records, as in Kafka
        assert_eq!(
            produce_raw(&b, "poison", &batch_around(0, &four, 4, -1)),
            0,
            "max -1"
        );
        // zstd came with Produce v7
        let zstd = batch_around(4, &codec::compress(4, &four).expect("zstd"), 4, 1);
        assert_eq!(
            produce_raw_v(6, &b, "poison", &zstd),
            76,
            "UNSUPPORTED_COMPRESSION_TYPE"
        );
    });
    // only the good batches were stored: 4 records after each refusal, 4 per codec, 4 with -1
    let expected = 4 * (poison.len() + 5);
    let got = b.consume("poison", 1, expected);
    assert_eq!(got.len(), expected);
    for (i, m) in got.iter().enumerate() {
        use rdkafka::Message;
        assert_eq!(m.offset(), i as i64, "no offset gaps");
        assert_eq!(m.payload(), Some(&b"value"[..]));
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_creation_is_bounded_by_the_mutation_quota() {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{
        CreateTopicsRequest, CreateTopicsResponse, MetadataRequest, MetadataResponse, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;
    // one partition a second: a burst of 10
    let b = TestBroker::start_with(|c| c.topic_mutation_rate = 1).await;
    tokio::task::block_in_place(|| {
        let mut s = connect(&b);
        let mut req = MetadataRequest::default();
        req.allow_auto_topic_creation = true;
        req.topics = Some(
            (0..30)
                .map(|i| {
                    let mut t = MetadataRequestTopic::default();
                    t.name = Some(TopicName(StrBytes::from_string(format!("storm-{i}"))));
                    t
                })
                .collect(),
        );
        let resp: MetadataResponse = roundtrip(&mut s, 3, 9, 1, &req);
        let created = resp.topics.iter().filter(|t| t.error_code == 0).count();
        let unknown = resp.topics.iter().filter(|t| t.error_code == 3).count();
        // the burst, and whatever trickled in while the request ran
        assert!((10..=11).contains(&created), "{created} created");
        assert_eq!(created + unknown, 30, "the rest is unknown for now");
        assert!(resp.throttle_time_ms > 0, "the client is told to slow down");
        // an admin request past the quota: THROTTLING_QUOTA_EXCEEDED with the time to wait
        let mut ct = CreateTopicsRequest::default();
        ct.timeout_ms = 5000;
        let mut t = CreatableTopic::default();
        t.name = TopicName(StrBytes::from_static_str("one-more"));
        t.num_partitions = 1;
        t.replication_factor = 1;
        ct.topics.push(t);
        let resp: CreateTopicsResponse = roundtrip(&mut s, 19, 7, 2, &ct);
        assert_eq!(resp.topics[0].error_code, 89, "THROTTLING_QUOTA_EXCEEDED");
        assert!(resp.throttle_time_ms > 0);
        still_serving(&b);
        // two seconds later the bucket holds one again
        std::thread::sleep(Duration::from_millis(2100));
        let resp: CreateTopicsResponse = roundtrip(&mut s, 19, 7, 3, &ct);
        assert_eq!(resp.topics[0].error_code, 0, "created after the refill");
    });
    b.stop().await;
}

/// Whether the broker closes `s` within `within` (reads 0 bytes or a reset).
fn closed_within(s: &mut std::net::TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).expect("timeout");
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => true,
        _ => false,
    }
}

/// ApiVersions v0 on `s`, answered.
fn api_versions(s: &mut std::net::TcpStream) {
    s.write_all(&frame(18, 0, 5, &[])).expect("write");
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("answered");
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).expect("body");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_but_not_those_waiting_for_an_answer() {
    let b = TestBroker::start_with(|c| c.connections_max_idle_ms = 400).await;
    common::create_topic(&b, "idle", 1).await;
    tokio::task::block_in_place(|| {
        let mut idle = connect(&b);
        api_versions(&mut idle);
        // a long poll of 1.5 s on another connection: idle on the wire, but waiting for us
        let mut waiting = connect(&b);
        let mut poll = long_poll("idle", 0);
        poll.max_wait_ms = 1500;
        common::send_request(&mut waiting, 1, 4, 9, &poll);
        assert!(
            closed_within(&mut idle, Duration::from_secs(3)),
            "an idle connection is closed after connections_max_idle_ms"
        );
        let answer: std::io::Result<kafka_protocol::messages::FetchResponse> =
            common::read_response(&mut waiting, 1, 4, 9);
        assert!(answer.is_ok(), "the long poll is answered, not cut");
        // a connection that keeps talking stays open
        let mut busy = connect(&b);
        for _ in 0..6 {
            api_versions(&mut busy);
            std::thread::sleep(Duration::from_millis(150));
        }
        api_versions(&mut busy);
    });
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_max_connections_per_ip() {
    let b = TestBroker::start_with(|c| c.max_connections_per_ip = 2).await;
    tokio::task::block_in_place(|| {
        let mut first = connect(&b);
        let mut second = connect(&b);
        api_versions(&mut first);
        api_versions(&mut second);
        let mut third = connect(&b);
        let _ = third.write_all(&frame(18, 0, 5, &[]));
        assert!(
            closed_within(&mut third, Duration::from_secs(3)),
            "a third connection from 127.0.0.1 is refused"
        );
        drop(first);
        std::thread::sleep(Duration::from_millis(200));
        let mut again = connect(&b);
        api_versions(&mut again);
        api_versions(&mut second);
    });
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_parked_long_polls() {
    let b = TestBroker::start().await;
    common::create_topic(&b, "parked-at-stop", 1).await;
    let polls: Vec<std::net::TcpStream> = tokio::task::block_in_place(|| {
        (0..3)
            .map(|i| {
                let mut s = connect(&b);
                common::send_request(&mut s, 1, 4, 40 + i, &long_poll("parked-at-stop", 0));
                s
            })
            .collect()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reader = std::thread::spawn(move || {
        polls
            .into_iter()
            .enumerate()
            .map(|(i, mut s)| {
                s.set_read_timeout(Some(Duration::from_secs(60)))
                    .expect("timeout");
                common::read_response::<_, kafka_protocol::messages::FetchResponse>(
                    &mut s,
                    1,
                    4,
                    40 + i as i32,
                )
                .is_ok()
            })
            .collect::<Vec<bool>>()
    });
    b.stop().await;
    let answered = reader.join().expect("reader");
    assert_eq!(
        answered,
        vec![true; 3],
        "every long poll parked for 24 days is answered when the broker stops"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_responses_share_the_fetch_memory_budget() {
    use kafka_protocol::messages::FetchResponse;
    let b = TestBroker::start_with(|c| c.fetch_memory_max_bytes = 64 << 10).await;
    common::create_topic(&b, "budget", 1).await;
    let body: Vec<u8> = (0..500).flat_map(record).collect();
    let batch = batch_around(0, &body, 500, 1);
    tokio::task::block_in_place(|| {
        for _ in 0..30 {
            assert_eq!(produce_raw(&b, "budget", &batch), 0);
        }
        let mut s = connect(&b);
        let mut req = long_poll("budget", 0);
        req.max_wait_ms = 0;
        req.topics[0].partitions[0].partition_max_bytes = i32::MAX;
        let resp: FetchResponse = roundtrip(&mut s, 1, 4, 7, &req);
        let got = resp.responses[0].partitions[0]
            .records
            .as_ref()
            .map_or(0, |r| r.len());
        assert!(got > 0, "some data");
        assert!(
            got <= (64 << 10) + batch.len(),
            "{got} bytes: at most the budget and one batch past it"
        );
    });
    b.stop().await;
}
