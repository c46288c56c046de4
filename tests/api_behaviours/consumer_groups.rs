//! KIP-848 consumer groups over the raw protocol: two members reconcile step by step as Kafka's
//! coordinator brings them (revoke first, then take what is free), the group's views
//! (ConsumerGroupDescribe, DescribeGroups, ListGroups with types), member epochs in
//! OffsetCommit and OffsetFetch v9, and the errors a Kafka broker answers to bad heartbeats.

use crate::common::{connect, create_topic, roundtrip, TestBroker};
use crate::util::{metadata, s, topic};
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::*;
use std::collections::BTreeSet;
use std::net::TcpStream;
use uuid::Uuid;

const HEARTBEAT: i16 = 68;
const DESCRIBE: i16 = 69;

struct Member {
    conn: TcpStream,
    group: String,
    id: String,
    epoch: i32,
    owned: BTreeSet<i32>,
    topic: Uuid,
}

impl Member {
    fn new(b: &TestBroker, group: &str, id: &str, topic: Uuid) -> Member {
        Member {
            conn: connect(b),
            group: group.into(),
            id: id.into(),
            epoch: 0,
            owned: BTreeSet::new(),
            topic,
        }
    }

    /// One heartbeat reporting what the member owns; applies the answer (epoch, assignment).
    fn beat(&mut self, topics: Option<&str>) -> ConsumerGroupHeartbeatResponse {
        let mut req = ConsumerGroupHeartbeatRequest::default();
        req.group_id = GroupId(s(&self.group));
        req.member_id = s(&self.id);
        req.member_epoch = self.epoch;
        req.rebalance_timeout_ms = if self.epoch == 0 { 30_000 } else { -1 };
        req.subscribed_topic_names = topics.map(|t| vec![crate::util::topic(t)]);
        let mut tp = TopicPartitions::default();
        tp.topic_id = self.topic;
        tp.partitions = self.owned.iter().copied().collect();
        req.topic_partitions = Some(if self.owned.is_empty() {
            vec![]
        } else {
            vec![tp]
        });
        let resp: ConsumerGroupHeartbeatResponse = roundtrip(&mut self.conn, HEARTBEAT, 1, 1, &req);
        if resp.error_code == 0 {
            self.epoch = resp.member_epoch;
            if let Some(a) = &resp.assignment {
                self.owned = a
                    .topic_partitions
                    .iter()
                    .flat_map(|t| {
                        assert_eq!(t.topic_id, self.topic);
                        t.partitions.clone()
                    })
                    .collect();
            }
        }
        resp
    }
}

fn heartbeat(b: &TestBroker, v: i16, f: impl FnOnce(&mut ConsumerGroupHeartbeatRequest)) -> i16 {
    let mut req = ConsumerGroupHeartbeatRequest::default();
    req.group_id = GroupId(s("g-errors"));
    req.member_id = s("m-errors");
    req.rebalance_timeout_ms = 30_000;
    req.subscribed_topic_names = Some(vec![topic("kip848-errors")]);
    req.topic_partitions = Some(vec![]);
    f(&mut req);
    let resp: ConsumerGroupHeartbeatResponse = roundtrip(&mut connect(b), HEARTBEAT, v, 1, &req);
    resp.error_code
}

fn commit(b: &TestBroker, group: &str, member: &str, epoch: i32, t: &str) -> i16 {
    commit_at(b, 9, group, member, epoch, t)
}

/// An OffsetCommit of request `version`.
fn commit_at(b: &TestBroker, version: i16, group: &str, member: &str, epoch: i32, t: &str) -> i16 {
    let mut req = OffsetCommitRequest::default();
    req.group_id = GroupId(s(group));
    req.member_id = s(member);
    req.generation_id_or_member_epoch = epoch;
    let mut ot = OffsetCommitRequestTopic::default();
    ot.name = topic(t);
    let mut p = OffsetCommitRequestPartition::default();
    p.partition_index = 0;
    p.committed_offset = 0;
    ot.partitions.push(p);
    req.topics.push(ot);
    let resp: OffsetCommitResponse = roundtrip(&mut connect(b), 8, version, 1, &req);
    resp.topics[0].partitions[0].error_code
}

fn fetch_offsets(b: &TestBroker, group: &str, member: Option<&str>, epoch: i32, t: &str) -> i16 {
    let mut req = OffsetFetchRequest::default();
    let mut g = OffsetFetchRequestGroup::default();
    g.group_id = GroupId(s(group));
    g.member_id = member.map(s);
    g.member_epoch = epoch;
    let mut ot = OffsetFetchRequestTopics::default();
    ot.name = topic(t);
    ot.partition_indexes = vec![0];
    g.topics = Some(vec![ot]);
    req.groups.push(g);
    let resp: OffsetFetchResponse = roundtrip(&mut connect(b), 9, 9, 1, &req);
    resp.groups[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_reconcile_step_by_step_and_the_group_is_described() {
    let b = TestBroker::start().await;
    create_topic(&b, "kip848", 4).await;
    let id = metadata(&b, vec![(Some("kip848"), Uuid::nil())]).topics[0].topic_id;
    let mut a = Member::new(&b, "g848", "member-a", id);
    let r = a.beat(Some("kip848"));
    assert_eq!((r.error_code, r.member_epoch), (0, 1));
    assert_eq!(
        a.owned,
        BTreeSet::from([0, 1, 2, 3]),
        "the first member gets everything"
    );
    // b joins: what it should get is still a's, so it waits at the new epoch with nothing
    let mut m = Member::new(&b, "g848", "member-b", id);
    let r = m.beat(Some("kip848"));
    assert_eq!((r.error_code, r.member_epoch), (0, 2));
    assert!(m.owned.is_empty());
    assert_eq!(
        r.heartbeat_interval_ms, 250,
        "a reconciling group heartbeats often"
    );
    // a is told to give up two partitions; its epoch stays until it has
    let before = a.owned.clone();
    let r = a.beat(None);
    assert_eq!((r.error_code, r.member_epoch), (0, 1));
    assert_eq!(a.owned.len(), 2);
    assert!(a.owned.is_subset(&before));
    // the commit of a member must carry its current epoch
    assert_eq!(commit(&b, "g848", "member-a", 1, "kip848"), 0);
    assert_eq!(
        commit(&b, "g848", "member-a", 2, "kip848"),
        113,
        "STALE_MEMBER_EPOCH"
    );
    assert_eq!(
        commit(&b, "g848", "", -1, "kip848"),
        25,
        "a stranger while members are in"
    );
    assert_eq!(
        commit_at(&b, 8, "g848", "member-a", 1, "kip848"),
        35,
        "UNSUPPORTED_VERSION: before v9 a commit carries no member epoch"
    );
    assert_eq!(fetch_offsets(&b, "g848", Some("member-a"), 1, "kip848"), 0);
    assert_eq!(
        fetch_offsets(&b, "g848", Some("member-a"), 7, "kip848"),
        113
    );
    assert_eq!(
        fetch_offsets(&b, "g848", None, -1, "kip848"),
        0,
        "an admin's fetch"
    );
    // a reports them gone and moves on; b then takes them
    let r = a.beat(None);
    assert_eq!((r.error_code, r.member_epoch), (0, 2));
    let r = m.beat(None);
    assert_eq!(r.error_code, 0);
    assert_eq!(m.owned.len(), 2);
    assert!(m.owned.is_disjoint(&a.owned));
    // settled, but the epoch moved a moment ago: still soon, for members joining right behind
    assert_eq!(r.heartbeat_interval_ms, 250);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r = m.beat(None);
    assert_eq!(
        r.heartbeat_interval_ms, 5000,
        "a stable group heartbeats at the configured pace"
    );

    let mut req = ConsumerGroupDescribeRequest::default();
    req.group_ids = vec![GroupId(s("g848")), GroupId(s("nope"))];
    let d: ConsumerGroupDescribeResponse = roundtrip(&mut connect(&b), DESCRIBE, 1, 1, &req);
    let g = &d.groups[0];
    assert_eq!(g.error_code, 0);
    assert_eq!(g.group_state.as_str(), "Stable");
    assert_eq!((g.group_epoch, g.assignment_epoch), (2, 2));
    assert_eq!(g.assignor_name.as_str(), "uniform");
    assert_eq!(g.members.len(), 2);
    for mem in &g.members {
        assert_eq!(mem.member_epoch, 2);
        assert_eq!(
            mem.assignment.topic_partitions[0].topic_name.0.as_str(),
            "kip848"
        );
        assert_eq!(mem.assignment.topic_partitions[0].partitions.len(), 2);
    }
    assert_eq!(d.groups[1].error_code, 69, "GROUP_ID_NOT_FOUND");

    let mut req = DescribeGroupsRequest::default();
    req.groups = vec![GroupId(s("g848"))];
    let d: DescribeGroupsResponse = roundtrip(&mut connect(&b), 15, 5, 1, &req);
    assert_eq!(d.groups[0].protocol_type.as_str(), "consumer");
    assert_eq!(d.groups[0].protocol_data.as_str(), "uniform");
    assert_eq!(d.groups[0].members.len(), 2);
    assert!(!d.groups[0].members[0].member_assignment.is_empty());

    let listed = |types: &[&str]| -> Vec<String> {
        let mut req = ListGroupsRequest::default();
        req.types_filter = types.iter().map(|t| s(t)).collect();
        let r: ListGroupsResponse = roundtrip(&mut connect(&b), 16, 5, 1, &req);
        r.groups
            .iter()
            .map(|g| {
                format!(
                    "{}:{}:{}",
                    g.group_id.0.as_str(),
                    g.group_type.as_str(),
                    g.group_state.as_str()
                )
            })
            .collect()
    };
    assert_eq!(
        listed(&["consumer"]),
        vec!["g848:consumer:Stable".to_string()]
    );
    assert!(listed(&["classic"]).is_empty());

    // a leaves: b takes everything at its next heartbeat
    a.epoch = -1;
    let r = a.beat(None);
    assert_eq!((r.error_code, r.member_epoch), (0, -1));
    let r = m.beat(None);
    assert_eq!(r.error_code, 0);
    assert_eq!(m.owned, BTreeSet::from([0, 1, 2, 3]));
    assert_eq!(r.member_epoch, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_heartbeats_get_kafkas_errors() {
    let b = TestBroker::start().await;
    create_topic(&b, "kip848-errors", 2).await;
    // v1: the client names itself (KIP-1082)
    assert_eq!(
        heartbeat(&b, 1, |r| r.member_id = s("")),
        42,
        "INVALID_REQUEST"
    );
    assert_eq!(heartbeat(&b, 1, |r| r.rebalance_timeout_ms = -1), 42);
    assert_eq!(heartbeat(&b, 1, |r| r.subscribed_topic_names = None), 42);
    assert_eq!(heartbeat(&b, 1, |r| r.member_epoch = -3), 42);
    assert_eq!(heartbeat(&b, 1, |r| r.instance_id = Some(s(""))), 42);
    assert_eq!(
        heartbeat(&b, 1, |r| r.subscribed_topic_regex = Some(s("(unclosed"))),
        128,
        "INVALID_REGULAR_EXPRESSION"
    );
    assert_eq!(
        heartbeat(&b, 1, |r| r.server_assignor = Some(s("sticky"))),
        112,
        "UNSUPPORTED_ASSIGNOR"
    );
    assert_eq!(
        heartbeat(&b, 1, |r| r.group_id = GroupId(s(""))),
        24,
        "INVALID_GROUP_ID"
    );
    assert_eq!(
        heartbeat(&b, 1, |r| r.member_epoch = 3),
        25,
        "UNKNOWN_MEMBER_ID"
    );
    // v0 hands out a member id
    let mut req = ConsumerGroupHeartbeatRequest::default();
    req.group_id = GroupId(s("g-errors"));
    req.rebalance_timeout_ms = 30_000;
    req.subscribed_topic_names = Some(vec![topic("kip848-errors")]);
    req.topic_partitions = Some(vec![]);
    let r: ConsumerGroupHeartbeatResponse = roundtrip(&mut connect(&b), HEARTBEAT, 0, 1, &req);
    assert_eq!(r.error_code, 0);
    let given = r.member_id.expect("a member id").to_string();
    assert!(!given.is_empty());
    // a heartbeat from the future is fenced
    assert_eq!(
        heartbeat(&b, 1, |r| {
            r.member_id = s(&given);
            r.member_epoch = r.member_epoch.max(1) + 5;
            r.rebalance_timeout_ms = -1;
        }),
        110,
        "FENCED_MEMBER_EPOCH"
    );
    // a classic member joins a KIP-848 group with members only with a consumer protocol
    let mut join = JoinGroupRequest::default();
    join.group_id = GroupId(s("g-errors"));
    join.session_timeout_ms = 30_000;
    join.rebalance_timeout_ms = 30_000;
    join.protocol_type = s("consumer");
    let r: JoinGroupResponse = roundtrip(&mut connect(&b), 11, 5, 1, &join);
    assert_eq!(r.error_code, 23, "INCONSISTENT_GROUP_PROTOCOL");
    // ApiVersions v3 finalizes group.version 1
    let v: ApiVersionsResponse =
        roundtrip(&mut connect(&b), 18, 3, 1, &ApiVersionsRequest::default());
    let f = v
        .finalized_features
        .iter()
        .find(|f| f.name.as_str() == "group.version")
        .expect("group.version finalized");
    assert_eq!(f.max_version_level, 1);
    assert!(v
        .api_keys
        .iter()
        .any(|k| k.api_key == HEARTBEAT && k.max_version == 1));
}
