use super::*;

fn cfg() -> GroupConfig {
    crate::group::test_config()
}

fn req(member: &str, instance: Option<&str>) -> JoinRequest {
    JoinRequest {
        member_id: member.to_string(),
        instance_id: instance.map(str::to_string),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: vec![
            ("range".into(), Bytes::from_static(b"m")),
            ("roundrobin".into(), Bytes::new()),
        ],
        require_known_member_id: true,
    }
}

/// Runs the KIP-394 two-step join for a new dynamic member; returns its member id.
fn first_join(g: &mut Group, now: i64, out: &mut Vec<Completion>) -> String {
    match g.join(req("", None), now, &cfg(), out) {
        Answer::Now(r) => {
            assert_eq!(r.error, Some(GroupError::MemberIdRequired));
            let id = r.member_id.clone();
            assert!(matches!(
                g.join(req(&id, None), now, &cfg(), out),
                Answer::Pending(_)
            ));
            id
        }
        Answer::Pending(_) => panic!("a new member must first get MEMBER_ID_REQUIRED"),
    }
}

fn joins(out: &[Completion]) -> Vec<(String, JoinResult)> {
    out.iter()
        .filter_map(|c| match c {
            Completion::Join(id, r) => Some((id.clone(), r.clone())),
            _ => None,
        })
        .collect()
}

/// Brings a group of `n` dynamic members to Stable; returns their ids (leader first).
fn stable_group(n: usize) -> (Group, Vec<String>, i64) {
    let mut g = Group::new("g", 0);
    let mut out = Vec::new();
    let ids: Vec<String> = (0..n).map(|_| first_join(&mut g, 0, &mut out)).collect();
    assert!(
        out.is_empty(),
        "the initial delay holds the first rebalance"
    );
    let now = 3000;
    g.tick(now, &cfg(), &mut out);
    let done = joins(&out);
    assert_eq!(done.len(), n);
    assert_eq!(g.state, GroupState::CompletingRebalance);
    let leader = g.leader.clone().expect("leader");
    let gen = g.generation;
    out.clear();
    for id in ids.iter().filter(|i| **i != leader) {
        assert!(matches!(
            g.sync(id, None, gen, vec![], now, &mut out),
            Answer::Pending(_)
        ));
    }
    let assignments = ids
        .iter()
        .map(|id| (id.clone(), Bytes::from(format!("a-{id}"))))
        .collect();
    match g.sync(&leader, None, gen, assignments, now, &mut out) {
        Answer::Now(Ok((_, proto, a))) => {
            assert_eq!(proto, "range");
            assert_eq!(a, Bytes::from(format!("a-{leader}")));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(out.len(), n - 1, "every follower's sync completes");
    for c in &out {
        match c {
            Completion::Sync(id, Ok((_, _, a))) => assert_eq!(a, &Bytes::from(format!("a-{id}"))),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(g.state, GroupState::Stable);
    let mut ordered = vec![leader.clone()];
    ordered.extend(ids.into_iter().filter(|i| *i != leader));
    (g, ordered, now)
}

#[test]
fn first_member_gets_its_assignment_after_the_initial_delay() {
    let mut g = Group::new("g", 0);
    let mut out = Vec::new();
    let id = first_join(&mut g, 0, &mut out);
    g.tick(2999, &cfg(), &mut out);
    assert!(out.is_empty());
    g.tick(3000, &cfg(), &mut out);
    let done = joins(&out);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].1.leader, id);
    assert_eq!(done[0].1.generation, 1);
    assert_eq!(
        done[0].1.members.len(),
        1,
        "the leader sees the member list"
    );
}

#[test]
fn three_members_stabilise_and_followers_see_no_member_list() {
    let (g, ids, _) = stable_group(3);
    assert_eq!(g.members.len(), 3);
    assert_eq!(g.generation, 1);
    assert_eq!(g.leader.as_deref(), Some(ids[0].as_str()));
}

#[test]
fn join_during_rebalance_lands_in_the_same_generation() {
    let (mut g, ids, now) = stable_group(2);
    let mut out = Vec::new();
    // a third member triggers a rebalance; the others rejoin
    let new = first_join(&mut g, now, &mut out);
    assert_eq!(g.state, GroupState::PreparingRebalance);
    assert!(matches!(
        g.join(req(&ids[0], None), now + 10, &cfg(), &mut out),
        Answer::Pending(_)
    ));
    assert_eq!(
        g.heartbeat(&ids[1], None, 1, now + 10),
        Err(GroupError::RebalanceInProgress)
    );
    match g.join(req(&ids[1], None), now + 20, &cfg(), &mut out) {
        Answer::Now(r) => assert_eq!(r.generation, 2, "the last rejoin completes the rebalance"),
        Answer::Pending(_) => panic!("should complete"),
    }
    let done = joins(&out);
    assert_eq!(done.len(), 2, "the other two pending joins complete");
    assert!(done.iter().any(|(id, _)| *id == new));
    assert!(done.iter().all(|(_, r)| r.generation == 2));
}

#[test]
fn a_member_that_stops_heartbeating_is_removed_and_the_rest_rebalance() {
    let (mut g, ids, now) = stable_group(3);
    let mut out = Vec::new();
    for t in (now..now + 9000).step_by(3000) {
        g.heartbeat(&ids[0], None, 1, t).expect("alive");
        g.heartbeat(&ids[1], None, 1, t).expect("alive");
    }
    g.tick(now + 10_001, &cfg(), &mut out);
    assert_eq!(g.members.len(), 2, "the silent member timed out");
    assert_eq!(g.state, GroupState::PreparingRebalance);
    g.join(req(&ids[0], None), now + 10_002, &cfg(), &mut out);
    let r = g.join(req(&ids[1], None), now + 10_003, &cfg(), &mut out);
    assert!(
        matches!(r, Answer::Now(JoinResult { generation: 2, .. })),
        "{r:?}"
    );
}

#[test]
fn rebalance_deadline_drops_members_that_never_rejoin() {
    let (mut g, ids, now) = stable_group(2);
    let mut out = Vec::new();
    // the leader rejoins with new metadata; the follower never does
    let mut r = req(&ids[0], None);
    r.protocols = vec![("range".into(), Bytes::from_static(b"changed"))];
    assert!(matches!(
        g.join(r, now, &cfg(), &mut out),
        Answer::Pending(_)
    ));
    // the follower keeps heartbeating (answered REBALANCE_IN_PROGRESS) but does not rejoin
    for t in (now..now + 30_000).step_by(3000) {
        assert_eq!(
            g.heartbeat(&ids[1], None, 1, t),
            Err(GroupError::RebalanceInProgress)
        );
        g.tick(t, &cfg(), &mut out);
    }
    g.tick(now + 29_999, &cfg(), &mut out);
    assert!(
        joins(&out).is_empty(),
        "the rebalance waits for the follower until its deadline"
    );
    g.tick(now + 30_000, &cfg(), &mut out);
    let done = joins(&out);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0, ids[0]);
    assert_eq!(g.members.len(), 1);
}

#[test]
fn leader_leaving_hands_leadership_to_a_remaining_member() {
    let (mut g, ids, now) = stable_group(3);
    let mut out = Vec::new();
    g.leave(&ids[0], None, now, &cfg(), &mut out)
        .expect("leave");
    assert_eq!(g.state, GroupState::PreparingRebalance);
    g.join(req(&ids[1], None), now + 1, &cfg(), &mut out);
    let r = g.join(req(&ids[2], None), now + 2, &cfg(), &mut out);
    let Answer::Now(r) = r else {
        panic!("completes")
    };
    assert_ne!(r.leader, ids[0]);
    assert!(ids[1..].contains(&r.leader));
    assert_eq!(
        g.leave("nobody", None, now, &cfg(), &mut out),
        Err(GroupError::UnknownMemberId)
    );
}

#[test]
fn static_member_rejoining_with_same_metadata_does_not_rebalance() {
    let mut g = Group::new("g", 0);
    let mut out = Vec::new();
    let a = match g.join(req("", Some("inst-a")), 0, &cfg(), &mut out) {
        Answer::Pending(_) => g.static_members["inst-a"].clone(),
        Answer::Now(r) => panic!("static members skip MEMBER_ID_REQUIRED: {r:?}"),
    };
    g.tick(3000, &cfg(), &mut out);
    out.clear();
    let gen = g.generation;
    g.sync(
        &a,
        Some("inst-a"),
        gen,
        vec![(a.clone(), Bytes::from_static(b"p0"))],
        3000,
        &mut out,
    );
    assert_eq!(g.state, GroupState::Stable);
    // the process restarts: same instance id, no member id
    match g.join(req("", Some("inst-a")), 5000, &cfg(), &mut out) {
        Answer::Now(r) => {
            assert_eq!(r.error, None);
            assert_eq!(r.generation, gen, "no new generation");
            assert_ne!(r.member_id, a, "a fresh member id");
            let new = r.member_id.clone();
            assert_eq!(g.state, GroupState::Stable);
            match g.sync(&new, Some("inst-a"), gen, vec![], 5000, &mut out) {
                Answer::Now(Ok((_, _, asg))) => {
                    assert_eq!(asg, Bytes::from_static(b"p0"), "keeps its assignment")
                }
                other => panic!("{other:?}"),
            }
            // the old incarnation is fenced
            assert_eq!(
                g.heartbeat(&a, Some("inst-a"), gen, 5000),
                Err(GroupError::FencedInstanceId)
            );
        }
        Answer::Pending(_) => panic!("no rebalance expected"),
    }
}

#[test]
fn fencing_and_validation_errors() {
    let (mut g, ids, now) = stable_group(1);
    let mut out = Vec::new();
    assert_eq!(
        g.heartbeat(&ids[0], None, 99, now),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        g.heartbeat("ghost", None, 1, now),
        Err(GroupError::UnknownMemberId)
    );
    assert!(matches!(
        g.sync(&ids[0], None, 7, vec![], now, &mut out),
        Answer::Now(Err(GroupError::IllegalGeneration))
    ));
    let mut bad = req("", None);
    bad.session_timeout_ms = 10;
    assert!(matches!(
        g.join(bad, now, &cfg(), &mut out),
        Answer::Now(JoinResult {
            error: Some(GroupError::InvalidSessionTimeout),
            ..
        })
    ));
    let mut other = req("", None);
    other.protocols = vec![("sticky-only".into(), Bytes::new())];
    assert!(matches!(
        g.join(other, now, &cfg(), &mut out),
        Answer::Now(JoinResult {
            error: Some(GroupError::InconsistentGroupProtocol),
            ..
        })
    ));
    let mut other_type = req("", None);
    other_type.protocol_type = "connect".into();
    assert!(matches!(
        g.join(other_type, now, &cfg(), &mut out),
        Answer::Now(JoinResult {
            error: Some(GroupError::InconsistentGroupProtocol),
            ..
        })
    ));
}

#[test]
fn group_size_is_bounded() {
    let mut g = Group::new("g", 0);
    let mut out = Vec::new();
    let small = GroupConfig {
        max_size: 3,
        ..cfg()
    };
    let mut answers = Vec::new();
    for _ in 0..5 {
        answers.push(g.join(req("", None), 0, &small, &mut out));
    }
    let refused = answers
        .iter()
        .filter(|a| {
            matches!(
                a,
                Answer::Now(JoinResult {
                    error: Some(GroupError::GroupMaxSizeReached),
                    ..
                })
            )
        })
        .count();
    assert_eq!(refused, 2);
    assert!(g.pending.len() <= 3);
}

#[test]
fn protocol_selection_prefers_what_every_member_supports() {
    let mut g = Group::new("g", 0);
    let mut out = Vec::new();
    let mut a = req("", None);
    a.require_known_member_id = false;
    a.protocols = vec![
        ("cooperative-sticky".into(), Bytes::new()),
        ("range".into(), Bytes::new()),
    ];
    let mut b = a.clone();
    b.protocols = vec![("range".into(), Bytes::new())];
    g.join(a, 0, &cfg(), &mut out);
    g.join(b, 0, &cfg(), &mut out);
    g.tick(3000, &cfg(), &mut out);
    assert_eq!(g.protocol_name.as_deref(), Some("range"));
}
