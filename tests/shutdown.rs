//! SIGTERM on the real binary: requests the broker accepted before the signal are answered
//! (a long-poll Fetch with its records, a JoinGroup waiting on a rebalance with
//! REBALANCE_IN_PROGRESS so the member rejoins elsewhere or later), the process exits 0 and
//! leaves its clean-shutdown marker.
#![allow(clippy::disallowed_methods)] // a test (or benchmark) reads and writes its files directly

mod common;

use common::{free_port, read_response, roundtrip, send_request, spawn_binary};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::net::TcpStream;
use std::time::Duration;

const REBALANCE_IN_PROGRESS: i16 = 27;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn connect(port: u16) -> TcpStream {
    let c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    // longer than the broker's 10 s drain: a missing answer shows as EOF, not as a timeout
    c.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    c
}

fn create_topic(port: u16, name: &str) {
    let mut t = CreatableTopic::default();
    t.name = TopicName(s(name));
    t.num_partitions = 1;
    t.replication_factor = 1;
    let mut req = CreateTopicsRequest::default();
    req.topics.push(t);
    req.timeout_ms = 10_000;
    let resp: CreateTopicsResponse = roundtrip(&mut connect(port), 19, 5, 1, &req);
    assert_eq!(resp.topics[0].error_code, 0, "create {name}");
}

fn join_request(group: &str) -> JoinGroupRequest {
    let mut req = JoinGroupRequest::default();
    req.group_id = GroupId(s(group));
    req.session_timeout_ms = 30_000;
    req.rebalance_timeout_ms = 60_000;
    req.protocol_type = s("consumer");
    let mut p = JoinGroupRequestProtocol::default();
    p.name = s("range");
    p.metadata = bytes::Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    req.protocols.push(p);
    req
}

fn long_poll(topic: &str, wait_ms: i32) -> FetchRequest {
    let mut req = FetchRequest::default();
    req.replica_id = BrokerId(-1);
    req.max_wait_ms = wait_ms;
    req.min_bytes = 1;
    req.max_bytes = 1 << 20;
    let mut p = FetchPartition::default();
    p.partition = 0;
    p.fetch_offset = 0;
    p.partition_max_bytes = 1 << 20;
    let mut ft = FetchTopic::default();
    ft.topic = TopicName(s(topic));
    ft.partitions.push(p);
    req.topics.push(ft);
    req
}

#[test]
fn sigterm_answers_the_requests_in_flight_and_exits_cleanly() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    // the first member's JoinGroup waits out the initial rebalance delay: still pending when
    // the signal comes
    let mut child = spawn_binary(
        dir.path(),
        port,
        &["--group-initial-rebalance-delay-ms", "20000"],
    );
    create_topic(port, "drain");

    let mut joiner = connect(port);
    send_request(&mut joiner, 11, 5, 7, &join_request("drain-group"));
    let mut poller = connect(port);
    send_request(&mut poller, 1, 11, 8, &long_poll("drain", 3_000));
    // both requests are read and waiting (a JoinGroup v5 with no member id is first told
    // MEMBER_ID_REQUIRED: answer it with the id it hands out)
    let first: JoinGroupResponse = read_response(&mut joiner, 11, 5, 7).expect("join answer");
    assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED");
    let mut again = join_request("drain-group");
    again.member_id = first.member_id.clone();
    send_request(&mut joiner, 11, 5, 9, &again);
    std::thread::sleep(Duration::from_millis(500));

    let pid = child.id() as libc::pid_t;
    // SAFETY: signalling the child process this test spawned
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);

    let joined: JoinGroupResponse =
        read_response(&mut joiner, 11, 5, 9).expect("the pending JoinGroup is answered");
    assert_eq!(
        joined.error_code, REBALANCE_IN_PROGRESS,
        "a rebalance this broker will not finish"
    );
    let fetched: FetchResponse =
        read_response(&mut poller, 1, 11, 8).expect("the long poll is answered");
    let p = &fetched.responses[0].partitions[0];
    assert_eq!((fetched.error_code, p.error_code), (0, 0));
    assert_eq!(p.high_watermark, 0);

    let status = child.wait().expect("wait");
    assert!(status.success(), "SIGTERM exits 0: {status:?}");
    assert!(
        dir.path().join("data/.tiercel_clean_shutdown").exists(),
        "clean-shutdown marker"
    );
}
