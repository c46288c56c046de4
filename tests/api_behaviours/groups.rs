//! OffsetDelete and DeleteGroups against a live consumer group, driven over the raw protocol
//! so the group's state (Stable with one member, then Empty) is exactly the test's.

use crate::common::{connect, create_topic, roundtrip, TestBroker};
use crate::util::{committed, s, topic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use std::net::TcpStream;

async fn quick_groups() -> TestBroker {
    TestBroker::start_with(|c| c.group_initial_rebalance_delay_ms = 0).await
}

/// Consumer-protocol subscription metadata (version 0) for `topics`.
fn subscription(topics: &[&str]) -> bytes::Bytes {
    let mut m = vec![0u8, 0];
    m.extend((topics.len() as i32).to_be_bytes());
    for t in topics {
        m.extend((t.len() as i16).to_be_bytes());
        m.extend(t.as_bytes());
    }
    m.extend((-1i32).to_be_bytes()); // no user data
    m.into()
}

/// A member of `group` subscribed to `topics`, through JoinGroup v5 (with the member id round
/// trip) and SyncGroup v3: the stream, member id and generation.
fn join(b: &TestBroker, group: &str, topics: &[&str]) -> (TcpStream, String, i32) {
    let mut c = connect(b);
    let mut member = String::new();
    for attempt in 0..2 {
        let mut req = JoinGroupRequest::default();
        req.group_id = GroupId(s(group));
        req.session_timeout_ms = 30_000;
        req.rebalance_timeout_ms = 30_000;
        req.member_id = s(&member);
        req.protocol_type = s("consumer");
        let mut p = JoinGroupRequestProtocol::default();
        p.name = s("range");
        p.metadata = subscription(topics);
        req.protocols.push(p);
        let resp: JoinGroupResponse = roundtrip(&mut c, 11, 5, 10 + attempt, &req);
        member = resp.member_id.to_string();
        match resp.error_code {
            79 if attempt == 0 => continue, // MEMBER_ID_REQUIRED: join again with it
            0 => {
                assert_eq!(resp.leader, resp.member_id, "the only member leads");
                let mut req = SyncGroupRequest::default();
                req.group_id = GroupId(s(group));
                req.generation_id = resp.generation_id;
                req.member_id = s(&member);
                let mut a = SyncGroupRequestAssignment::default();
                a.member_id = s(&member);
                req.assignments.push(a);
                let sync: SyncGroupResponse = roundtrip(&mut c, 14, 3, 20, &req);
                assert_eq!(sync.error_code, 0, "SyncGroup");
                return (c, member, resp.generation_id);
            }
            e => panic!("JoinGroup: error {e}"),
        }
    }
    unreachable!("joined within two attempts")
}

/// OffsetCommit v7 as the member: offset `at` for each partition.
fn commit(c: &mut TcpStream, group: &str, member: &str, gen: i32, t: &str, parts: &[i32], at: i64) {
    let mut req = OffsetCommitRequest::default();
    req.group_id = GroupId(s(group));
    req.generation_id_or_member_epoch = gen;
    req.member_id = s(member);
    let mut ct = OffsetCommitRequestTopic::default();
    ct.name = topic(t);
    for &p in parts {
        let mut cp = OffsetCommitRequestPartition::default();
        cp.partition_index = p;
        cp.committed_offset = at;
        ct.partitions.push(cp);
    }
    req.topics.push(ct);
    let resp: OffsetCommitResponse = roundtrip(c, 8, 7, 30, &req);
    for p in &resp.topics[0].partitions {
        assert_eq!(p.error_code, 0, "commit {t}-{}", p.partition_index);
    }
}

fn leave(c: &mut TcpStream, group: &str, member: &str) {
    let mut req = LeaveGroupRequest::default();
    req.group_id = GroupId(s(group));
    req.member_id = s(member);
    let resp: LeaveGroupResponse = roundtrip(c, 13, 1, 40, &req);
    assert_eq!(resp.error_code, 0, "LeaveGroup");
}

/// OffsetDelete v0: (top-level error, per-partition errors).
fn offset_delete(b: &TestBroker, group: &str, t: &str, parts: &[i32]) -> (i16, Vec<i16>) {
    let mut req = OffsetDeleteRequest::default();
    req.group_id = GroupId(s(group));
    let mut dt = OffsetDeleteRequestTopic::default();
    dt.name = topic(t);
    for &p in parts {
        let mut dp = OffsetDeleteRequestPartition::default();
        dp.partition_index = p;
        dt.partitions.push(dp);
    }
    req.topics.push(dt);
    let resp: OffsetDeleteResponse = roundtrip(&mut connect(b), 47, 0, 1, &req);
    let codes = resp
        .topics
        .first()
        .map(|t| t.partitions.iter().map(|p| p.error_code).collect())
        .unwrap_or_default();
    (resp.error_code, codes)
}

/// DeleteGroups v1: the group's error code.
fn delete_group(b: &TestBroker, group: &str) -> i16 {
    let mut req = DeleteGroupsRequest::default();
    req.groups_names = vec![GroupId(s(group))];
    let resp: DeleteGroupsResponse = roundtrip(&mut connect(b), 42, 1, 1, &req);
    assert_eq!(resp.results[0].group_id.0.as_str(), group);
    resp.results[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_delete_refuses_subscribed_topics_until_the_group_is_empty() {
    let b = quick_groups().await;
    create_topic(&b, "od-sub", 2).await;
    create_topic(&b, "od-other", 1).await;
    let (mut c, member, gen) = join(&b, "od", &["od-sub"]);
    commit(&mut c, "od", &member, gen, "od-sub", &[0, 1], 5);
    commit(&mut c, "od", &member, gen, "od-other", &[0], 7);

    // the live member subscribes to od-sub: every partition is refused, nothing deleted
    assert_eq!(
        offset_delete(&b, "od", "od-sub", &[0, 1]),
        (0, vec![86, 86])
    );
    assert_eq!(committed(&b, "od", "od-sub", &[0, 1]), vec![5, 5]);
    // a topic nobody subscribes to can go while the group is live
    assert_eq!(offset_delete(&b, "od", "od-other", &[0]), (0, vec![0]));
    assert_eq!(committed(&b, "od", "od-other", &[0]), vec![-1]);

    // once the member has left (the group is Empty) the subscribed topic's offsets can go
    leave(&mut c, "od", &member);
    assert_eq!(offset_delete(&b, "od", "od-sub", &[0]), (0, vec![0]));
    assert_eq!(
        committed(&b, "od", "od-sub", &[0, 1]),
        vec![-1, 5],
        "only the named partition is deleted"
    );

    // a group that never existed
    let (code, parts) = offset_delete(&b, "no-such-group", "od-sub", &[0]);
    assert_eq!(code, 69, "GROUP_ID_NOT_FOUND");
    assert!(parts.is_empty(), "{parts:?}");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_groups_refuses_live_groups_and_forgets_deleted_ones() {
    let b = quick_groups().await;
    create_topic(&b, "dg", 1).await;
    let (mut c, member, gen) = join(&b, "dg-group", &["dg"]);
    commit(&mut c, "dg-group", &member, gen, "dg", &[0], 3);

    assert_eq!(delete_group(&b, "dg-group"), 68, "NON_EMPTY_GROUP");
    assert_eq!(committed(&b, "dg-group", "dg", &[0]), vec![3], "kept");

    leave(&mut c, "dg-group", &member);
    assert_eq!(delete_group(&b, "dg-group"), 0);
    assert_eq!(
        committed(&b, "dg-group", "dg", &[0]),
        vec![-1],
        "offsets gone"
    );
    assert_eq!(delete_group(&b, "dg-group"), 69, "GROUP_ID_NOT_FOUND");
    b.stop().await;
}
