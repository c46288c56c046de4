//! Classic members in a KIP-848 group and the conversions both ways, driven directly.

use super::*;
use crate::group::state::{Answer, GroupState};
use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as Owned;
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::{Encodable, StrBytes};

const T: Uuid = Uuid::from_u128(7);

fn cfg() -> GroupConfig {
    crate::group::test_config()
}

fn topics() -> Vec<TopicInfo> {
    vec![TopicInfo {
        name: "orders".into(),
        id: T,
        partitions: 6,
    }]
}

fn versioned(m: &impl Encodable, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    m.encode(&mut buf, version).expect("encodes");
    buf.freeze()
}

/// A cooperative consumer's subscription to `orders`, owning `owned`.
fn subscription(owned: &[i32]) -> Bytes {
    let mut s = ConsumerProtocolSubscription::default();
    s.topics = vec![StrBytes::from_static_str("orders")];
    if !owned.is_empty() {
        let mut o = Owned::default();
        o.topic = TopicName(StrBytes::from_static_str("orders"));
        o.partitions = owned.to_vec();
        s.owned_partitions = vec![o];
    }
    versioned(&s, 1)
}

fn assignment(ps: &[i32]) -> Bytes {
    let mut a = Assignment::new();
    a.insert(T, ps.iter().copied().collect());
    super::super::super::view::assignment_bytes(&a, |_| Some("orders".to_string()))
}

fn assigned_in(bytes: &[u8]) -> Vec<i32> {
    let a = decode_assignment(bytes).expect("an assignment");
    a.assigned_partitions
        .iter()
        .flat_map(|t| t.partitions.iter().copied())
        .collect()
}

fn join_req(member: &str, owned: &[i32]) -> JoinRequest {
    JoinRequest {
        member_id: member.to_string(),
        instance_id: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: vec![("cooperative-sticky".into(), subscription(owned))],
        require_known_member_id: true,
    }
}

// a KIP-848 member joining, subscribed to `orders`
use super::super::tests::join as consumer_join;

/// A stable classic group at generation 3: a holds 0–2, b holds 3–5.
fn stable_classic() -> Group {
    let mut g = Group::new("g", 0);
    let mut out = Vec::new();
    let c = cfg();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let Answer::Now(r) = g.join(join_req("", &[]), 0, &c, &mut out) else {
            panic!("member id required first")
        };
        ids.push(r.member_id);
    }
    for id in &ids {
        let _ = g.join(join_req(id, &[]), 0, &c, &mut out);
    }
    g.tick(10_000, &c, &mut out);
    g.generation = 3;
    let mut members: Vec<_> = g.members.keys().cloned().collect();
    members.sort();
    let leader = g.leader.clone().expect("a leader");
    let plan = vec![
        (members[0].clone(), assignment(&[0, 1, 2])),
        (members[1].clone(), assignment(&[3, 4, 5])),
    ];
    let r = g.sync(&leader, None, 3, plan, 10_000, &mut out);
    assert!(matches!(r, Answer::Now(Ok(_))), "{r:?}");
    assert_eq!(g.state, GroupState::Stable);
    g
}

#[test]
fn a_live_classic_group_converts_keeping_generation_and_assignments() {
    let g = stable_classic();
    let c = ConsumerGroup::from_classic(&g, &topics(), &cfg()).expect("converts");
    assert_eq!((c.epoch, c.assignment_epoch), (3, 3));
    let held: Vec<usize> = c.members.values().map(|m| m.assigned[&T].len()).collect();
    assert_eq!(held, vec![3, 3]);
    assert!(c
        .members
        .values()
        .all(|m| m.epoch == 3 && m.classic.is_some()));
    assert_eq!(c.state(), ConsumerState::Stable);
}

#[test]
fn a_group_with_assignor_user_data_or_another_protocol_type_does_not_convert() {
    let mut g = stable_classic();
    let id = g.members.keys().next().cloned().expect("a member");
    let mut a = ConsumerProtocolAssignment::default();
    a.user_data = Some(Bytes::from_static(b"custom"));
    if let Some(m) = g.members.get_mut(&id) {
        m.assignment = versioned(&a, 0);
    }
    assert!(ConsumerGroup::from_classic(&g, &topics(), &cfg()).is_none());
    let mut other = stable_classic();
    other.protocol_type = Some("connect".into());
    assert!(ConsumerGroup::from_classic(&other, &topics(), &cfg()).is_none());
}

#[test]
fn classic_members_reconcile_through_join_sync_and_heartbeat() {
    let g = stable_classic();
    let mut members: Vec<String> = g.members.keys().cloned().collect();
    members.sort();
    let (a, b) = (members[0].clone(), members[1].clone());
    let mut c = ConsumerGroup::from_classic(&g, &topics(), &cfg()).expect("converts");
    // a member of the new protocol joins: epoch 4, its partitions are still held
    let n = c
        .heartbeat(consumer_join("n"), &topics(), 100, &cfg())
        .expect("joins");
    assert_eq!(n.epoch, 4);
    assert!(n.assignment.expect("an assignment").is_empty());
    // the classic members are told to rejoin
    assert_eq!(
        c.classic_heartbeat(&a, None, 3, 200),
        Err(GroupError::RebalanceInProgress)
    );
    assert_eq!(
        c.classic_heartbeat(&a, None, 2, 200),
        Err(GroupError::IllegalGeneration)
    );
    // a rejoins owning 0–2: it keeps two, gives one up, and stays at its epoch until it has
    let r = c.classic_join(join_req(&a, &[0, 1, 2]), &topics(), 300, &cfg());
    assert_eq!(r.error, None);
    assert_eq!(r.generation, 3);
    assert!(
        r.leader.is_empty() && r.members.is_empty(),
        "no assignor runs on the client"
    );
    assert_eq!(r.protocol_name, "cooperative-sticky");
    let (ptype, pname, bytes) = c
        .classic_sync(&a, None, 3, 310, (None, None))
        .expect("syncs");
    assert_eq!(
        (ptype.as_str(), pname.as_str()),
        ("consumer", "cooperative-sticky")
    );
    let kept = assigned_in(&bytes);
    assert_eq!(kept.len(), 2);
    // it revoked the third and rejoins with what it kept: now at epoch 4
    let r = c.classic_join(join_req(&a, &kept), &topics(), 400, &cfg());
    assert_eq!(r.generation, 4);
    let (_, _, bytes) = c
        .classic_sync(&a, None, 4, 410, (None, None))
        .expect("syncs");
    assert_eq!(assigned_in(&bytes), kept);
    assert_eq!(c.classic_heartbeat(&a, None, 4, 500), Ok(()));
    // b does the same; then the new member takes what both released
    let r = c.classic_join(join_req(&b, &[3, 4, 5]), &topics(), 600, &cfg());
    let (_, _, bytes) = c
        .classic_sync(&b, None, r.generation, 610, (None, None))
        .expect("syncs");
    let kept_b = assigned_in(&bytes);
    let r = c.classic_join(join_req(&b, &kept_b), &topics(), 700, &cfg());
    assert_eq!(r.generation, 4);
    let owned = Assignment::new();
    let beat = Heartbeat {
        member_id: "n".into(),
        epoch: 4,
        rebalance_timeout_ms: -1,
        owned: Some(owned),
        ..Heartbeat::default()
    };
    let n = c.heartbeat(beat, &topics(), 800, &cfg()).expect("beats");
    assert_eq!(n.assignment.expect("its partitions")[&T].len(), 2);
    assert_eq!(c.state(), ConsumerState::Stable);
}

#[test]
fn classic_join_checks_protocol_and_asks_for_a_member_id() {
    let mut c = ConsumerGroup::new(Assignor::Uniform);
    c.heartbeat(consumer_join("n"), &topics(), 0, &cfg())
        .expect("joins");
    let mut wrong = join_req("", &[]);
    wrong.protocol_type = "connect".into();
    assert_eq!(
        c.classic_join(wrong, &topics(), 0, &cfg()).error,
        Some(GroupError::InconsistentGroupProtocol)
    );
    let first = c.classic_join(join_req("", &[]), &topics(), 0, &cfg());
    assert_eq!(first.error, Some(GroupError::MemberIdRequired));
    assert!(!c.members.contains_key(&first.member_id));
    let r = c.classic_join(join_req(&first.member_id, &[]), &topics(), 0, &cfg());
    assert_eq!(r.error, None);
    assert_eq!(r.generation, 2);
    // a classic member's id is not one a ConsumerGroupHeartbeat may use
    let beat = Heartbeat {
        member_id: first.member_id.clone(),
        epoch: 2,
        rebalance_timeout_ms: -1,
        ..Heartbeat::default()
    };
    assert_eq!(
        c.heartbeat(beat, &topics(), 10, &cfg()).err(),
        Some(HeartbeatError::UnknownMemberId)
    );
    // a commit at an old generation is ILLEGAL_GENERATION for a classic member
    assert_eq!(
        c.check_commit(&first.member_id, 1, Some(9)),
        Err(OffsetsCheck::IllegalGeneration)
    );
    assert_eq!(c.check_commit(&first.member_id, 2, Some(9)), Ok(()));
    // a classic member commits with the OffsetCommit versions its protocol uses
    assert_eq!(c.check_commit(&first.member_id, 2, Some(8)), Ok(()));
    // SyncGroup v5 names the protocol its join was answered with
    assert_eq!(
        c.classic_sync(
            &first.member_id,
            None,
            2,
            10,
            (Some("consumer"), Some("range"))
        ),
        Err(GroupError::InconsistentGroupProtocol)
    );
    let ok = c.classic_sync(
        &first.member_id,
        None,
        2,
        10,
        (Some("consumer"), Some("cooperative-sticky")),
    );
    assert!(ok.is_ok(), "{ok:?}");
}

#[test]
fn a_classic_member_that_does_not_sync_is_removed() {
    let mut c = ConsumerGroup::new(Assignor::Uniform);
    c.heartbeat(consumer_join("n"), &topics(), 0, &cfg())
        .expect("joins");
    let r = c.classic_join(join_req("m", &[]), &topics(), 0, &cfg());
    assert_eq!(r.error, None);
    // its rebalance timeout (30 s) passes without a SyncGroup
    let gone = c.tick(30_001, &cfg(), Some(&topics()));
    assert_eq!(gone, vec!["m".to_string()]);
}

#[test]
fn the_last_member_of_the_new_protocol_leaving_turns_the_group_classic() {
    let g = stable_classic();
    let mut c = ConsumerGroup::from_classic(&g, &topics(), &cfg()).expect("converts");
    c.heartbeat(consumer_join("n"), &topics(), 100, &cfg())
        .expect("joins");
    assert!(!c.only_classic());
    let leave = Heartbeat {
        member_id: "n".into(),
        epoch: LEAVE_EPOCH,
        ..Heartbeat::default()
    };
    c.heartbeat(leave, &topics(), 200, &cfg()).expect("leaves");
    assert!(c.only_classic());
    let back = c.to_classic("g", 300, &cfg());
    assert_eq!(back.state, GroupState::PreparingRebalance);
    assert_eq!(back.generation, c.epoch);
    assert_eq!(back.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(back.protocol_name.as_deref(), Some("cooperative-sticky"));
    let mut held: Vec<i32> = back
        .members
        .values()
        .flat_map(|m| assigned_in(&m.assignment))
        .collect();
    held.sort();
    assert_eq!(held, vec![0, 1, 2, 3, 4, 5], "each member holds its target");
}

#[test]
fn an_eager_member_that_gave_everything_up_moves_on_at_once() {
    let g = stable_classic();
    let a = g.members.keys().next().cloned().expect("a member");
    let mut c = ConsumerGroup::from_classic(&g, &topics(), &cfg()).expect("converts");
    c.heartbeat(consumer_join("n"), &topics(), 100, &cfg())
        .expect("joins");
    // an eager client revokes everything before it joins: it owns nothing, so nothing is left
    // to revoke and it is at the group's epoch straight away
    let r = c.classic_join(join_req(&a, &[]), &topics(), 200, &cfg());
    assert_eq!(r.generation, c.epoch);
    let (_, _, bytes) = c
        .classic_sync(&a, None, r.generation, 210, (None, None))
        .expect("syncs");
    assert_eq!(assigned_in(&bytes).len(), 2);
}

#[test]
fn members_between_join_and_sync_are_carried_over_with_what_they_own() {
    let mut g = stable_classic();
    if let Some(m) = g.members.values_mut().next() {
        // the join phase of a rebalance completed; the leader has not synced yet
        m.assignment = Bytes::new();
        m.protocols = vec![("cooperative-sticky".into(), subscription(&[0, 1, 2]))];
    }
    let c = ConsumerGroup::from_classic(&g, &topics(), &cfg()).expect("converts");
    let first = c.members.values().next().expect("a member");
    assert_eq!(
        first.assigned[&T].len(),
        3,
        "what its subscription says it owns"
    );
}

#[test]
fn a_static_member_changes_protocol_with_its_next_process() {
    let mut c = ConsumerGroup::new(Assignor::Uniform);
    c.heartbeat(consumer_join("n"), &topics(), 0, &cfg())
        .expect("joins");
    let mut req = join_req("", &[]);
    req.instance_id = Some("i1".into());
    let r = c.classic_join(req, &topics(), 0, &cfg());
    assert_eq!(r.error, None);
    let classic_id = r.member_id;
    // its next process speaks the new protocol: it takes the classic member's place
    let mut hb = consumer_join("i1-new");
    hb.instance_id = Some("i1".into());
    c.heartbeat(hb, &topics(), 10, &cfg()).expect("takes over");
    assert!(!c.members.contains_key(&classic_id));
    assert!(c.members["i1-new"].classic.is_none());
    // and back: a classic process of the same instance replaces it
    let mut req = join_req("", &[]);
    req.instance_id = Some("i1".into());
    let r = c.classic_join(req, &topics(), 20, &cfg());
    assert_eq!(r.error, None);
    assert!(c.members[&r.member_id].classic.is_some());
    assert_eq!(c.members.len(), 2);
    // a known member id with an instance id the group does not know
    let mut req = join_req("stranger", &[]);
    req.instance_id = Some("i9".into());
    assert_eq!(
        c.classic_join(req, &topics(), 30, &cfg()).error,
        Some(GroupError::UnknownMemberId)
    );
}
