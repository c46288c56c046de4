//! Online conversion of a live group between the classic protocol and KIP-848's, over the raw
//! protocol: a classic member's group becomes a consumer group when a member of the new protocol
//! joins it; the classic member reconciles through JoinGroup, SyncGroup and Heartbeat inside it;
//! when the new member leaves, the group is classic again. With the policy disabled the new
//! member is refused (GROUP_ID_NOT_FOUND), as Kafka refuses it.

use crate::common::{connect, create_topic, roundtrip, TestBroker};
use crate::util::{s, topic};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};
use std::net::TcpStream;

const TOPIC: &str = "migrate";

fn versioned(m: &impl Encodable, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    m.encode(&mut buf, version).expect("encodes");
    buf.freeze()
}

/// A cooperative consumer's subscription (v1) to TOPIC, owning `owned`.
fn subscription(owned: &[i32]) -> Bytes {
    let mut sub = ConsumerProtocolSubscription::default();
    sub.topics = vec![s(TOPIC)];
    if !owned.is_empty() {
        let mut o = consumer_protocol_subscription::TopicPartition::default();
        o.topic = topic(TOPIC);
        o.partitions = owned.to_vec();
        sub.owned_partitions = vec![o];
    }
    versioned(&sub, 1)
}

fn assignment(ps: &[i32]) -> Bytes {
    let mut a = ConsumerProtocolAssignment::default();
    let mut t = consumer_protocol_assignment::TopicPartition::default();
    t.topic = topic(TOPIC);
    t.partitions = ps.to_vec();
    a.assigned_partitions = vec![t];
    versioned(&a, 0)
}

fn partitions_of(bytes: &[u8]) -> Vec<i32> {
    let mut buf = Bytes::copy_from_slice(bytes);
    let version = bytes::Buf::get_i16(&mut buf);
    let a = ConsumerProtocolAssignment::decode(&mut buf, version).expect("an assignment");
    let mut ps: Vec<i32> = a
        .assigned_partitions
        .iter()
        .flat_map(|t| t.partitions.clone())
        .collect();
    ps.sort();
    ps
}

/// A classic member on its own connection.
struct Classic {
    conn: TcpStream,
    group: String,
    id: String,
    generation: i32,
}

impl Classic {
    fn join(&mut self, owned: &[i32]) -> JoinGroupResponse {
        let mut req = JoinGroupRequest::default();
        req.group_id = GroupId(s(&self.group));
        req.session_timeout_ms = 30_000;
        req.rebalance_timeout_ms = 30_000;
        req.member_id = s(&self.id);
        req.protocol_type = s("consumer");
        let mut p = JoinGroupRequestProtocol::default();
        p.name = s("cooperative-sticky");
        p.metadata = subscription(owned);
        req.protocols.push(p);
        let resp: JoinGroupResponse = roundtrip(&mut self.conn, 11, 7, 1, &req);
        if resp.error_code == 79 || resp.error_code == 0 {
            self.id = resp.member_id.to_string();
        }
        if resp.error_code == 0 {
            self.generation = resp.generation_id;
        }
        resp
    }

    fn sync(&mut self, assignments: Vec<(String, Bytes)>) -> SyncGroupResponse {
        let mut req = SyncGroupRequest::default();
        req.group_id = GroupId(s(&self.group));
        req.generation_id = self.generation;
        req.member_id = s(&self.id);
        req.protocol_type = Some(s("consumer"));
        req.protocol_name = Some(s("cooperative-sticky"));
        for (id, a) in assignments {
            let mut x = SyncGroupRequestAssignment::default();
            x.member_id = s(&id);
            x.assignment = a;
            req.assignments.push(x);
        }
        roundtrip(&mut self.conn, 14, 5, 2, &req)
    }

    fn heartbeat(&mut self) -> i16 {
        let mut req = HeartbeatRequest::default();
        req.group_id = GroupId(s(&self.group));
        req.generation_id = self.generation;
        req.member_id = s(&self.id);
        let resp: HeartbeatResponse = roundtrip(&mut self.conn, 12, 4, 3, &req);
        resp.error_code
    }

    fn commit(&mut self, generation: i32) -> i16 {
        let mut req = OffsetCommitRequest::default();
        req.group_id = GroupId(s(&self.group));
        req.generation_id_or_member_epoch = generation;
        req.member_id = s(&self.id);
        let mut t = OffsetCommitRequestTopic::default();
        t.name = topic(TOPIC);
        let mut p = OffsetCommitRequestPartition::default();
        p.partition_index = 0;
        p.committed_offset = 0;
        t.partitions.push(p);
        req.topics.push(t);
        let resp: OffsetCommitResponse = roundtrip(&mut self.conn, 8, 8, 4, &req);
        resp.topics[0].partitions[0].error_code
    }
}

/// A classic group with one member holding all four partitions.
fn classic_group(b: &TestBroker, group: &str) -> Classic {
    let mut a = Classic {
        conn: connect(b),
        group: group.into(),
        id: String::new(),
        generation: -1,
    };
    assert_eq!(a.join(&[]).error_code, 79, "MEMBER_ID_REQUIRED");
    let r = a.join(&[]);
    assert_eq!(r.error_code, 0);
    assert_eq!(r.leader, r.member_id, "the only member leads");
    let sync = a.sync(vec![(a.id.clone(), assignment(&[0, 1, 2, 3]))]);
    assert_eq!(sync.error_code, 0);
    assert_eq!(partitions_of(&sync.assignment), vec![0, 1, 2, 3]);
    a
}

/// A ConsumerGroupHeartbeat: (error, epoch, assigned partitions if sent).
fn beat(
    c: &mut TcpStream,
    group: &str,
    epoch: i32,
    topic_id: uuid::Uuid,
) -> (i16, i32, Option<Vec<i32>>) {
    let mut req = ConsumerGroupHeartbeatRequest::default();
    req.group_id = GroupId(s(group));
    req.member_id = s("modern");
    req.member_epoch = epoch;
    req.rebalance_timeout_ms = if epoch == 0 { 30_000 } else { -1 };
    req.subscribed_topic_names = (epoch == 0).then(|| vec![topic(TOPIC)]);
    req.topic_partitions = Some(vec![]);
    let r: ConsumerGroupHeartbeatResponse = roundtrip(c, 68, 1, 5, &req);
    let parts = r.assignment.map(|a| {
        a.topic_partitions
            .iter()
            .filter(|t| t.topic_id == topic_id)
            .flat_map(|t| t.partitions.clone())
            .collect()
    });
    (r.error_code, r.member_epoch, parts)
}

fn group_type(b: &TestBroker, group: &str) -> String {
    let r: ListGroupsResponse = roundtrip(&mut connect(b), 16, 5, 6, &ListGroupsRequest::default());
    r.groups
        .iter()
        .find(|g| g.group_id.0.as_str() == group)
        .map(|g| format!("{}:{}", g.group_type.as_str(), g.group_state.as_str()))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_classic_group_converts_to_the_consumer_protocol_and_back() {
    let b = TestBroker::start_with(|c| c.group_initial_rebalance_delay_ms = 0).await;
    create_topic(&b, TOPIC, 4).await;
    let topic_id =
        crate::util::metadata(&b, vec![(Some(TOPIC), uuid::Uuid::nil())]).topics[0].topic_id;
    let mut a = classic_group(&b, "gm");
    assert_eq!(group_type(&b, "gm"), "classic:Stable");

    // a member of the new protocol that is refused (an unknown assignor) leaves the group as it was
    let mut req = ConsumerGroupHeartbeatRequest::default();
    req.group_id = GroupId(s("gm"));
    req.member_id = s("refused");
    req.rebalance_timeout_ms = 30_000;
    req.subscribed_topic_names = Some(vec![topic(TOPIC)]);
    req.server_assignor = Some(s("no-such-assignor"));
    req.topic_partitions = Some(vec![]);
    let r: ConsumerGroupHeartbeatResponse = roundtrip(&mut connect(&b), 68, 1, 8, &req);
    assert_eq!(r.error_code, 112, "UNSUPPORTED_ASSIGNOR");
    assert_eq!(group_type(&b, "gm"), "classic:Stable");
    assert_eq!(a.heartbeat(), 0);

    // a member of the new protocol joins: the group converts, the classic member's partitions
    // stay its own until it gives them up
    let mut n = connect(&b);
    let (err, epoch, parts) = beat(&mut n, "gm", 0, topic_id);
    assert_eq!(err, 0);
    assert_eq!(epoch, a.generation + 1);
    assert_eq!(parts, Some(vec![]));
    assert_eq!(group_type(&b, "gm"), "consumer:Reconciling");
    let mut req = ConsumerGroupDescribeRequest::default();
    req.group_ids = vec![GroupId(s("gm"))];
    let d: ConsumerGroupDescribeResponse = roundtrip(&mut connect(&b), 69, 1, 7, &req);
    let mut types: Vec<(String, i8)> = d.groups[0]
        .members
        .iter()
        .map(|m| (m.member_id.to_string(), m.member_type))
        .collect();
    types.sort();
    let mut want = vec![(a.id.clone(), 0), ("modern".to_string(), 1)];
    want.sort();
    assert_eq!(types, want, "member types: 0 classic, 1 consumer");

    // the classic member is told to rejoin; it keeps what it may and gives up the rest
    let old = a.generation;
    assert_eq!(a.heartbeat(), 27, "REBALANCE_IN_PROGRESS");
    let r = a.join(&[0, 1, 2, 3]);
    assert_eq!(r.error_code, 0);
    assert_eq!(r.generation_id, old, "still revoking: the old epoch");
    assert!(r.leader.is_empty() && r.members.is_empty(), "{r:?}");
    let sync = a.sync(vec![]);
    assert_eq!(sync.error_code, 0);
    let kept = partitions_of(&sync.assignment);
    assert_eq!(kept.len(), 2, "{kept:?}");
    // revoked: it rejoins with what it kept and moves to the group's epoch
    let r = a.join(&kept);
    assert_eq!(r.generation_id, epoch);
    assert_eq!(partitions_of(&a.sync(vec![]).assignment), kept);
    assert_eq!(a.heartbeat(), 0);
    assert_eq!(a.commit(old), 22, "ILLEGAL_GENERATION");
    assert_eq!(a.commit(epoch), 0);
    // the new member takes the released partitions
    let (err, _, parts) = beat(&mut n, "gm", epoch, topic_id);
    assert_eq!(err, 0);
    let mut all = parts.expect("an assignment");
    assert_eq!(all.len(), 2);
    all.extend(&kept);
    all.sort();
    assert_eq!(all, vec![0, 1, 2, 3]);
    assert_eq!(group_type(&b, "gm"), "consumer:Stable");

    // the new member leaves: the group is classic again and rebalances
    let (err, _, _) = beat(&mut n, "gm", -1, topic_id);
    assert_eq!(err, 0);
    assert_eq!(group_type(&b, "gm"), "classic:PreparingRebalance");
    assert_eq!(a.heartbeat(), 27, "REBALANCE_IN_PROGRESS");
    let r = a.join(&kept);
    assert_eq!(r.error_code, 0);
    assert_eq!(
        r.leader, r.member_id,
        "a classic group again: its member leads"
    );
    assert!(r.generation_id > epoch);
    let sync = a.sync(vec![(a.id.clone(), assignment(&[0, 1, 2, 3]))]);
    assert_eq!(partitions_of(&sync.assignment), vec![0, 1, 2, 3]);
    assert_eq!(group_type(&b, "gm"), "classic:Stable");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_migration_disabled_a_live_group_keeps_its_protocol() {
    let b = TestBroker::start_with(|c| {
        c.group_initial_rebalance_delay_ms = 0;
        c.group_consumer_migration_policy = "disabled".into();
    })
    .await;
    create_topic(&b, TOPIC, 4).await;
    let topic_id =
        crate::util::metadata(&b, vec![(Some(TOPIC), uuid::Uuid::nil())]).topics[0].topic_id;
    let _a = classic_group(&b, "gd");
    let (err, _, _) = beat(&mut connect(&b), "gd", 0, topic_id);
    assert_eq!(err, 69, "GROUP_ID_NOT_FOUND");
    // and a classic member cannot join a live consumer group
    let _ = beat(&mut connect(&b), "gd2", 0, topic_id);
    let mut c = Classic {
        conn: connect(&b),
        group: "gd2".into(),
        id: "someone".into(),
        generation: -1,
    };
    assert_eq!(c.join(&[]).error_code, 23, "INCONSISTENT_GROUP_PROTOCOL");
    b.stop().await;
}
