//! The coordinator over its journal: commits, expiry, deletion, restarts.

use super::*;
use crate::clock::ManualClock;

fn coordinator(dir: &Path, clock: Arc<ManualClock>) -> Coordinator {
    coordinator_with(dir, clock, 1000)
}

fn coordinator_with(dir: &Path, clock: Arc<ManualClock>, max_groups: usize) -> Coordinator {
    let cfg = GroupConfig {
        min_session_timeout_ms: 1000,
        max_session_timeout_ms: 60_000,
        initial_rebalance_delay_ms: 0,
        max_size: 10,
        max_groups,
        offsets_retention_ms: 60_000,
        offset_metadata_max_bytes: 100,
        consumer_session_timeout_ms: 45_000,
        consumer_heartbeat_interval_ms: 5_000,
        consumer_max_size: 10,
        consumer_assignors: crate::config::Assignors::default(),
        consumer_migration_policy: crate::config::MigrationPolicy::default(),
    };
    Coordinator::open(dir, cfg, clock).expect("open")
}

/// A new member's JoinGroup (6 s session), static with `instance`.
fn join_request(instance: Option<&str>) -> JoinRequest {
    JoinRequest {
        member_id: String::new(),
        instance_id: instance.map(str::to_string),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 6_000,
        rebalance_timeout_ms: 10_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::new())],
        require_known_member_id: false,
    }
}

fn offsets(o: i64) -> Vec<(String, i32, i64, i32, Option<String>)> {
    vec![("t".into(), 0, o, -1, Some("meta".into()))]
}

#[tokio::test]
async fn simple_commits_expire_only_after_the_last_one() {
    let dir = tempfile::tempdir().expect("tmp");
    let clock = Arc::new(ManualClock::new(0));
    let c = coordinator(dir.path(), clock.clone());
    c.commit("g", -1, "", None, 8, offsets(5))
        .await
        .expect("commit");
    clock.advance(50_000);
    c.commit("g", -1, "", None, 8, offsets(6))
        .await
        .expect("commit");
    clock.advance(50_000);
    c.tick().await;
    assert_eq!(
        c.committed("g", "t", 0).map(|x| x.offset),
        Some(6),
        "the last commit was 50 s ago"
    );
    clock.advance(10_001);
    c.tick().await;
    assert_eq!(
        c.committed("g", "t", 0),
        None,
        "expired a retention period after the last commit"
    );
    assert!(c.list().is_empty());
}

#[tokio::test]
async fn offsets_of_topics_deleted_before_a_crash_are_removed_at_start_up() {
    let dir = tempfile::tempdir().expect("tmp");
    let clock = Arc::new(ManualClock::new(0));
    let c = coordinator(dir.path(), clock.clone());
    c.commit("g", -1, "", None, 8, offsets(5))
        .await
        .expect("commit");
    let mut other = offsets(7);
    other[0].0 = "kept".into();
    c.commit("g", -1, "", None, 8, other).await.expect("commit");
    drop(c);
    // topic `t` was deleted; the broker died before its offsets were
    let c = coordinator(dir.path(), clock.clone());
    assert_eq!(c.forget_deleted_topics(|t| t == "kept").await, 1);
    assert_eq!(c.committed("g", "t", 0), None);
    assert_eq!(c.committed("g", "kept", 0).map(|x| x.offset), Some(7));
    drop(c);
    let c = coordinator(dir.path(), clock);
    assert_eq!(c.committed("g", "t", 0), None, "removed durably");
    assert_eq!(c.forget_deleted_topics(|t| t == "kept").await, 0);
}

#[tokio::test]
async fn offsets_expire_a_retention_period_after_a_restart_not_after_the_last_commit() {
    let dir = tempfile::tempdir().expect("tmp");
    let clock = Arc::new(ManualClock::new(0));
    let c = coordinator(dir.path(), clock.clone());
    c.commit("g", -1, "", None, 8, offsets(5))
        .await
        .expect("commit");
    drop(c);
    // the broker comes back long after the group's last commit (its members were live
    // and had nothing new to commit)
    clock.advance(200_000);
    let c = coordinator(dir.path(), clock.clone());
    c.tick().await;
    assert_eq!(
        c.committed("g", "t", 0).map(|x| x.offset),
        Some(5),
        "offsets survive the first tick after a restart"
    );
    clock.advance(59_000);
    c.tick().await;
    assert_eq!(c.committed("g", "t", 0).map(|x| x.offset), Some(5));
    clock.advance(1_001);
    c.tick().await;
    assert_eq!(
        c.committed("g", "t", 0),
        None,
        "an empty group's offsets expire a retention period after the restart"
    );
}

#[tokio::test]
async fn commits_are_validated_against_the_generation_and_metadata_size() {
    let dir = tempfile::tempdir().expect("tmp");
    let clock = Arc::new(ManualClock::new(0));
    let c = coordinator(dir.path(), clock);
    let join = JoinRequest {
        member_id: String::new(),
        instance_id: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::new())],
        require_known_member_id: false,
    };
    let r = c.join("g", join, &no_topics()).await;
    assert_eq!((r.error, r.generation), (None, 1));
    let member = r.member_id.clone();
    // a generation-less commit into a group with members is refused
    assert_eq!(
        c.commit("g", -1, "", None, 8, offsets(1)).await.err(),
        Some(CommitError::Group(GroupError::UnknownMemberId))
    );
    assert_eq!(
        c.commit("g", 7, &member, None, 8, offsets(1)).await.err(),
        Some(CommitError::Group(GroupError::IllegalGeneration))
    );
    // while CompletingRebalance (no SyncGroup yet) commits wait for the rebalance
    assert_eq!(
        c.commit("g", 1, &member, None, 8, offsets(1)).await.err(),
        Some(CommitError::Group(GroupError::RebalanceInProgress))
    );
    c.sync("g", &member, None, 1, vec![], (None, None))
        .await
        .expect("sync");
    let big = vec![("t".into(), 0, 3, -1, Some("x".repeat(101)))];
    let per = c
        .commit("g", 1, &member, None, 8, big)
        .await
        .expect("commit");
    assert_eq!(per, vec![Err(CommitError::MetadataTooLarge)]);
    let per = c
        .commit("g", 1, &member, None, 8, offsets(3))
        .await
        .expect("commit");
    assert_eq!(per, vec![Ok(())]);
    assert_eq!(
        c.committed("g", "t", 0).map(|x| (x.offset, x.metadata)),
        Some((3, Some("meta".into())))
    );
    assert_eq!(c.delete_group("g").await, Err(DeleteError::NotEmpty));
    assert_eq!(c.leave("g", &[(member, None)]), vec![Ok(())]);
    assert_eq!(c.delete_group("g").await, Ok(()));
    assert_eq!(c.committed("g", "t", 0), None);
    assert_eq!(c.delete_group("g").await, Err(DeleteError::NotFound));
}

#[tokio::test]
async fn a_group_whose_last_session_ran_out_can_be_deleted_before_the_next_tick() {
    let dir = tempfile::tempdir().expect("tmp");
    let clock = Arc::new(ManualClock::new(0));
    let c = coordinator(dir.path(), clock.clone());
    // a static member closes without LeaveGroup, as KIP-345 members do
    let r = c.join("g", join_request(Some("i0")), &no_topics()).await;
    assert_eq!(r.error, None);
    c.sync(
        "g",
        &r.member_id,
        Some("i0"),
        r.generation,
        vec![],
        (None, None),
    )
    .await
    .expect("sync");
    clock.advance(5_000);
    assert_eq!(c.delete_group("g").await, Err(DeleteError::NotEmpty));
    // its session has run out; no tick has run since
    clock.advance(1_001);
    assert_eq!(c.delete_group("g").await, Ok(()));
}

#[tokio::test]
async fn a_group_without_members_or_offsets_goes_at_the_next_tick() {
    let dir = tempfile::tempdir().expect("tmp");
    let clock = Arc::new(ManualClock::new(0));
    let c = coordinator(dir.path(), clock.clone());
    let mut member = None;
    for g in ["never-committed", "committed"] {
        let r = c.join(g, join_request(None), &no_topics()).await;
        assert_eq!(r.error, None);
        c.sync(g, &r.member_id, None, r.generation, vec![], (None, None))
            .await
            .expect("sync");
        member = Some((r.generation, r.member_id));
    }
    let (generation, id) = member.expect("a member");
    c.commit("committed", generation, &id, None, 8, offsets(3))
        .await
        .expect("commit");
    // a would-be member handed an id it never comes back with (MEMBER_ID_REQUIRED)
    let mut first = join_request(None);
    first.require_known_member_id = true;
    assert!(c
        .join("pending-only", first, &no_topics())
        .await
        .error
        .is_some());
    c.tick().await;
    assert_eq!(
        c.list().len(),
        3,
        "each still has a member or a pending one"
    );
    // the members' sessions run out: one group has nothing left, one its offsets, one its
    // pending member id (kept up to the longest session timeout)
    clock.advance(6_001);
    c.tick().await;
    let left: Vec<String> = c.list().into_iter().map(|g| g.id).collect();
    assert_eq!(
        left,
        vec!["committed".to_string(), "pending-only".to_string()]
    );
    clock.advance(55_000); // the pending id is past 60 s, the offsets not yet past retention
    c.tick().await;
    let left: Vec<String> = c.list().into_iter().map(|g| g.id).collect();
    assert_eq!(left, vec!["committed".to_string()]);
    assert_eq!(c.committed("committed", "t", 0).map(|x| x.offset), Some(3));
}

#[tokio::test]
async fn new_groups_past_the_limit_are_refused_until_some_go() {
    let dir = tempfile::tempdir().expect("tmp");
    let clock = Arc::new(ManualClock::new(0));
    let c = coordinator_with(dir.path(), clock.clone(), 2);
    assert_eq!(
        c.join("a", join_request(None), &no_topics()).await.error,
        None
    );
    c.commit("b", -1, "", None, 8, offsets(1))
        .await
        .expect("a second group by its offsets");
    let refused = c.join("c", join_request(None), &no_topics()).await;
    assert_eq!(refused.error, Some(GroupError::CoordinatorNotAvailable));
    assert!(matches!(
        c.commit("d", -1, "", None, 8, offsets(1)).await,
        Err(CommitError::Group(GroupError::CoordinatorNotAvailable))
    ));
    // groups already held keep working
    c.commit("b", -1, "", None, 8, offsets(2))
        .await
        .expect("known group");
    assert_eq!(c.list().len(), 2);
    // a's member goes and a with it: room for one more
    clock.advance(6_001);
    c.tick().await;
    assert_eq!(
        c.join("c", join_request(None), &no_topics()).await.error,
        None
    );
}

#[test]
fn subscription_topics_are_read_from_consumer_metadata() {
    // version 1, two topics, then user data the parser must ignore
    let mut m = vec![0, 1, 0, 0, 0, 2];
    for t in ["orders", "payments"] {
        m.extend((t.len() as i16).to_be_bytes());
        m.extend(t.as_bytes());
    }
    m.extend([0, 0, 0, 0]);
    assert_eq!(
        subscription_topics(&m),
        vec!["orders".to_string(), "payments".to_string()]
    );
    assert!(subscription_topics(&[0, 1, 0x7f, 0xff, 0xff, 0xff, 0, 5]).is_empty());
}

/// No topics to subscribe to (classic groups never look).
fn no_topics() -> Vec<crate::group::consumer::TopicInfo> {
    Vec::new()
}
