//! The KIP-848 state machine driven directly: joins, incremental reconciliation, fencing,
//! leaving, timeouts, static members and regex subscriptions.

use super::*;

fn cfg() -> GroupConfig {
    crate::group::test_config()
}

const T: Uuid = Uuid::from_u128(7);

fn topics() -> Vec<TopicInfo> {
    vec![TopicInfo {
        name: "orders".into(),
        id: T,
        partitions: 6,
    }]
}

pub(super) fn join(id: &str) -> Heartbeat {
    Heartbeat {
        member_id: id.into(),
        epoch: 0,
        rebalance_timeout_ms: 30_000,
        topic_names: Some(vec!["orders".into()]),
        owned: Some(Assignment::new()),
        ..Heartbeat::default()
    }
}

fn beat(id: &str, epoch: i32, owned: &Assignment) -> Heartbeat {
    Heartbeat {
        member_id: id.into(),
        epoch,
        rebalance_timeout_ms: -1,
        owned: Some(owned.clone()),
        ..Heartbeat::default()
    }
}

fn parts(a: &Assignment) -> BTreeSet<i32> {
    a.get(&T).cloned().unwrap_or_default()
}

#[test]
fn a_first_member_gets_every_partition_at_once() {
    let mut g = ConsumerGroup::new(Assignor::Uniform);
    let r = g.heartbeat(join("a"), &topics(), 0, &cfg()).expect("join");
    assert_eq!(r.epoch, 1);
    assert_eq!(parts(r.assignment.as_ref().expect("assignment")).len(), 6);
    assert_eq!(g.state(), ConsumerState::Stable);
}

#[test]
fn a_joining_member_takes_only_what_moves_and_nobody_stops() {
    let mut g = ConsumerGroup::new(Assignor::Uniform);
    let a = g.heartbeat(join("a"), &topics(), 0, &cfg()).expect("a");
    let a_all = a.assignment.expect("a's assignment");
    // b joins: everything it should get is still a's, so it waits at the new epoch
    let b = g.heartbeat(join("b"), &topics(), 10, &cfg()).expect("b");
    assert_eq!(b.epoch, 2);
    assert!(parts(b.assignment.as_ref().expect("b's")).is_empty());
    assert_eq!(g.state(), ConsumerState::Reconciling);
    // a's next heartbeat: keep three, give three up; its epoch stays until it has let go
    let a2 = g
        .heartbeat(beat("a", 1, &a_all), &topics(), 20, &cfg())
        .expect("a2");
    assert_eq!(a2.epoch, 1);
    let kept = a2.assignment.expect("a's smaller assignment");
    assert_eq!(parts(&kept).len(), 3);
    assert!(
        parts(&kept).is_subset(&parts(&a_all)),
        "a keeps partitions it had"
    );
    // a still reports the revoked ones: nothing moves
    let a3 = g
        .heartbeat(beat("a", 1, &a_all), &topics(), 25, &cfg())
        .expect("a3");
    assert_eq!(a3.epoch, 1);
    let b2 = g
        .heartbeat(beat("b", 2, &Assignment::new()), &topics(), 26, &cfg())
        .expect("b2");
    assert!(b2.assignment.is_none(), "b gets nothing a still holds");
    // a has revoked: it moves to epoch 2; b then takes the three a let go
    let a4 = g
        .heartbeat(beat("a", 1, &kept), &topics(), 30, &cfg())
        .expect("a4");
    assert_eq!(a4.epoch, 2);
    let b3 = g
        .heartbeat(beat("b", 2, &Assignment::new()), &topics(), 40, &cfg())
        .expect("b3");
    let b_parts = parts(b3.assignment.as_ref().expect("b's partitions"));
    assert_eq!(b_parts.len(), 3);
    assert!(b_parts.is_disjoint(&parts(&kept)));
    assert_eq!(g.state(), ConsumerState::Stable);
}

#[test]
fn epochs_are_checked() {
    let mut g = ConsumerGroup::new(Assignor::Uniform);
    let a = g.heartbeat(join("a"), &topics(), 0, &cfg()).expect("a");
    let owned = a.assignment.expect("assignment");
    assert_eq!(
        g.heartbeat(beat("a", 5, &owned), &topics(), 1, &cfg()),
        Err(HeartbeatError::FencedMemberEpoch)
    );
    assert_eq!(
        g.heartbeat(beat("zz", 1, &owned), &topics(), 1, &cfg()),
        Err(HeartbeatError::UnknownMemberId)
    );
    // b joins; a revokes half and moves to epoch 2
    g.heartbeat(join("b"), &topics(), 2, &cfg()).expect("b");
    let kept = g
        .heartbeat(beat("a", 1, &owned), &topics(), 3, &cfg())
        .expect("revoke")
        .assignment
        .expect("kept");
    let r = g
        .heartbeat(beat("a", 1, &kept), &topics(), 4, &cfg())
        .expect("revoked");
    assert_eq!(r.epoch, 2);
    // the previous epoch with no more than it holds is accepted (a lost response), with more
    // it is fenced
    let r = g
        .heartbeat(beat("a", 1, &kept), &topics(), 5, &cfg())
        .expect("previous epoch");
    assert_eq!(r.epoch, 2);
    assert_eq!(
        g.heartbeat(beat("a", 1, &owned), &topics(), 6, &cfg()),
        Err(HeartbeatError::FencedMemberEpoch)
    );
    assert_eq!(g.check_commit("a", 2, Some(9)), Ok(()));
    assert_eq!(
        g.check_commit("a", 1, Some(9)),
        Err(OffsetsCheck::StaleEpoch)
    );
    assert_eq!(
        g.check_commit("x", 2, Some(9)),
        Err(OffsetsCheck::UnknownMember)
    );
    assert_eq!(
        g.check_commit("", -1, Some(9)),
        Err(OffsetsCheck::UnknownMember)
    );
    // before v9 an OffsetCommit carries no member epoch: refused for a KIP-848 member (after the
    // member itself is checked), as Kafka; TxnOffsetCommit has no such bound
    assert_eq!(
        g.check_commit("a", 2, Some(8)),
        Err(OffsetsCheck::UnsupportedVersion)
    );
    assert_eq!(
        g.check_commit("x", 2, Some(8)),
        Err(OffsetsCheck::UnknownMember)
    );
    assert_eq!(g.check_commit("a", 2, None), Ok(()));
    assert_eq!(g.check_fetch(None, -1), Ok(()));
}

#[test]
fn leaving_and_timeouts_hand_partitions_to_the_rest() {
    let mut g = ConsumerGroup::new(Assignor::Uniform);
    let c = cfg();
    g.heartbeat(join("a"), &topics(), 0, &c).expect("a");
    g.heartbeat(join("b"), &topics(), 0, &c).expect("b");
    let mut leave = beat("b", 2, &Assignment::new());
    leave.epoch = LEAVE_EPOCH;
    assert_eq!(
        g.heartbeat(leave, &topics(), 1, &c).expect("leave").epoch,
        -1
    );
    assert!(!g.members.contains_key("b"));
    // it may rejoin at once without its rebalance timeout (librdkafka does, when a subscribe
    // follows an unsubscribe quickly); a stranger may not
    let mut rejoin = join("b");
    rejoin.rebalance_timeout_ms = -1;
    g.heartbeat(rejoin.clone(), &topics(), 2, &c)
        .expect("rejoin");
    assert_eq!(g.members["b"].rebalance_timeout_ms, 30_000);
    rejoin.member_id = "stranger".into();
    assert!(matches!(
        g.heartbeat(rejoin, &topics(), 3, &c),
        Err(HeartbeatError::InvalidRequest(_))
    ));
    let mut leave = beat("b", g.members["b"].epoch, &Assignment::new());
    leave.epoch = LEAVE_EPOCH;
    g.heartbeat(leave, &topics(), 4, &c).expect("leave again");
    // a's session runs out: the group empties
    assert_eq!(g.tick(100_000, &c, None), vec!["a".to_string()]);
    assert_eq!(g.state(), ConsumerState::Empty);
}

#[test]
fn a_member_that_does_not_revoke_in_time_is_removed() {
    let mut g = ConsumerGroup::new(Assignor::Uniform);
    let c = cfg();
    let a = g.heartbeat(join("a"), &topics(), 0, &c).expect("a");
    let all = a.assignment.expect("all");
    g.heartbeat(join("b"), &topics(), 0, &c).expect("b");
    g.heartbeat(beat("a", 1, &all), &topics(), 0, &c)
        .expect("told to revoke");
    // keeps heartbeating but never lets go, past its 30 s rebalance timeout
    g.heartbeat(beat("a", 1, &all), &topics(), 29_000, &c)
        .expect("still within");
    g.heartbeat(beat("b", 2, &Assignment::new()), &topics(), 31_000, &c)
        .expect("b alive");
    assert_eq!(g.tick(31_000, &c, None), vec!["a".to_string()]);
}

#[test]
fn a_static_member_comes_back_to_its_partitions() {
    let mut g = ConsumerGroup::new(Assignor::Uniform);
    let c = cfg();
    let mut j = join("a");
    j.instance_id = Some("i-1".into());
    let a = g.heartbeat(j, &topics(), 0, &c).expect("a");
    let mut other = join("x");
    other.instance_id = Some("i-1".into());
    assert_eq!(
        g.heartbeat(other.clone(), &topics(), 1, &c),
        Err(HeartbeatError::UnreleasedInstanceId)
    );
    let mut leave = beat("a", 1, &a.assignment.clone().expect("a's"));
    leave.epoch = STATIC_LEAVE_EPOCH;
    leave.instance_id = Some("i-1".into());
    g.heartbeat(leave, &topics(), 2, &c).expect("static leave");
    let back = g.heartbeat(other, &topics(), 3, &c).expect("replacement");
    assert_eq!(back.epoch, 1, "no new epoch");
    assert_eq!(back.assignment, a.assignment);
    assert_eq!(g.epoch, 1);
}

#[test]
fn a_regex_subscription_follows_new_topics() {
    let mut g = ConsumerGroup::new(Assignor::Uniform);
    let c = cfg();
    let mut j = join("a");
    j.topic_names = None;
    j.topic_regex = Some("ord.*".into());
    let r = g.heartbeat(j, &topics(), 0, &c).expect("join");
    // the pattern is resolved on the group's next heartbeat, as Kafka resolves them in the
    // background; the member is told to come back soon
    assert_eq!(r.assignment, Some(Assignment::new()));
    assert!(r.settling);
    let r = g
        .heartbeat(beat("a", r.epoch, &Assignment::new()), &topics(), 0, &c)
        .expect("resolved");
    let owned = r.assignment.expect("assignment");
    assert_eq!(parts(&owned).len(), 6);
    let mut more = topics();
    more.push(TopicInfo {
        name: "ordinals".into(),
        id: Uuid::from_u128(8),
        partitions: 2,
    });
    more.push(TopicInfo {
        name: "xorders".into(),
        id: Uuid::from_u128(9),
        partitions: 2,
    });
    let r = g
        .heartbeat(beat("a", r.epoch, &owned), &more, 1, &c)
        .expect("beat");
    let a = r.assignment.expect("grown");
    assert_eq!(a.get(&Uuid::from_u128(8)).map(BTreeSet::len), Some(2));
    assert!(
        !a.contains_key(&Uuid::from_u128(9)),
        "the regex is anchored"
    );
    let mut bad = join("b");
    bad.topic_regex = Some("(".into());
    assert!(matches!(
        g.heartbeat(bad, &more, 2, &c),
        Err(HeartbeatError::InvalidRegex(_))
    ));
}

#[test]
fn bad_joins_are_refused() {
    let mut g = ConsumerGroup::new(Assignor::Uniform);
    let c = cfg();
    let mut j = join("a");
    j.assignor = Some("sticky".into());
    assert_eq!(
        g.heartbeat(j, &topics(), 0, &c),
        Err(HeartbeatError::UnsupportedAssignor("sticky".into()))
    );
    let mut j = join("a");
    j.topic_names = None;
    assert!(matches!(
        g.heartbeat(j, &topics(), 0, &c),
        Err(HeartbeatError::InvalidRequest(_))
    ));
    for id in ["a", "b", "c"] {
        g.heartbeat(join(id), &topics(), 0, &c)
            .expect("within max size");
    }
    assert_eq!(
        g.heartbeat(join("d"), &topics(), 0, &c),
        Err(HeartbeatError::GroupMaxSizeReached)
    );
}

#[test]
fn describe_groups_lists_only_what_each_member_subscribes_to() {
    let mut g = ConsumerGroup::new(Assignor::Uniform);
    let c = cfg();
    let mut all = topics();
    all.push(TopicInfo {
        name: "xtra".into(),
        id: Uuid::from_u128(9),
        partitions: 1,
    });
    let mut a = join("a");
    a.topic_names = Some(vec!["xtra".into()]);
    g.heartbeat(a, &all, 0, &c).expect("a");
    let mut b = join("b");
    b.topic_names = None;
    b.topic_regex = Some("ord.*".into());
    let r = g.heartbeat(b, &all, 0, &c).expect("b");
    g.heartbeat(beat("b", r.epoch, &Assignment::new()), &all, 1, &c)
        .expect("pattern resolved");
    let view = crate::group::view::described("g", &g);
    let has = |member: &str, topic: &str| {
        let m = view
            .members
            .iter()
            .find(|m| m.member_id == member)
            .expect("member");
        m.metadata
            .windows(topic.len())
            .any(|w| w == topic.as_bytes())
    };
    assert!(has("b", "orders"));
    assert!(
        !has("b", "xtra"),
        "a topic only another member subscribes to"
    );
    assert!(has("a", "xtra"));
}

#[test]
fn a_member_alone_is_asked_back_soon_while_others_may_be_joining() {
    let mut g = ConsumerGroup::new(Assignor::Uniform);
    let r = g.heartbeat(join("a"), &topics(), 0, &cfg()).expect("join");
    assert_eq!(g.state(), ConsumerState::Stable);
    assert!(r.settling, "the group epoch just moved");
    let owned = r.assignment.expect("assignment");
    let r = g
        .heartbeat(beat("a", r.epoch, &owned), &topics(), 5_000, &cfg())
        .expect("beat");
    assert!(!r.settling, "settled, and nothing moved for a while");
}
