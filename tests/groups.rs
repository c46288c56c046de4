//! Consumer groups through librdkafka's high-level consumer, and hostile group requests.

#![allow(clippy::disallowed_methods)] // a test (or benchmark) reads and writes its files directly

mod common;

use common::TestBroker;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol,
};
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

async fn quick_groups() -> TestBroker {
    TestBroker::start_with(|c| {
        c.group_initial_rebalance_delay_ms = 300;
        c.group_min_session_timeout_ms = 1000;
    })
    .await
}

fn member(b: &TestBroker, group: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", b.bootstrap())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("fetch.wait.max.ms", "100");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("consumer")
}

/// Takes a member out of its group (LeaveGroup through unsubscribe) and retires the client.
/// The client object is leaked rather than dropped: rdkafka 0.39's drop of a group consumer
/// can block in rd_kafka_destroy waiting for its broker thread (every request it sent was
/// answered; kcat/librdkafka 2.0.2 closes the same way against this broker without delay).
fn retire<C: ConsumerContext>(c: BaseConsumer<C>) {
    c.unsubscribe();
    let end = Instant::now() + Duration::from_millis(300);
    while Instant::now() < end {
        let _ = tokio::task::block_in_place(|| c.poll(Duration::from_millis(50)));
    }
    std::mem::forget(c);
}

async fn produce(b: &TestBroker, topic: &str, partitions: i32, per_partition: usize, tag: &str) {
    let p = b.producer(&[]);
    let sends: Vec<_> = (0..partitions)
        .flat_map(|part| (0..per_partition).map(move |i| (part, i)))
        .map(|(part, i)| {
            let p = p.clone();
            let payload = format!("{tag}-{part}-{i}");
            let topic = topic.to_string();
            async move {
                p.send(
                    FutureRecord::<(), String>::to(&topic)
                        .partition(part)
                        .payload(&payload),
                    T,
                )
                .await
                .map(|_| ())
            }
        })
        .collect();
    for r in futures::future::join_all(sends).await {
        r.expect("delivered");
    }
}

/// Polls every consumer round-robin, committing each record after "processing" it, until
/// `until` says stop. Returns what each consumer saw as (partition, offset).
fn consume_round_robin<C: ConsumerContext>(
    cs: &[&BaseConsumer<C>],
    deadline: Duration,
    mut until: impl FnMut(&BTreeSet<(i32, i64)>) -> bool,
) -> BTreeSet<(i32, i64)> {
    let mut seen = BTreeSet::new();
    let end = Instant::now() + deadline;
    while Instant::now() < end && !until(&seen) {
        for c in cs {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(20)) {
                seen.insert((m.partition(), m.offset()));
                // during a rebalance a commit may be refused as in Kafka (the record is then
                // consumed again by whoever owns the partition next): at-least-once
                if let Err(e) = c.commit_message(&m, CommitMode::Sync) {
                    use rdkafka::types::RDKafkaErrorCode::*;
                    let code = e.rdkafka_error_code();
                    assert!(
                        matches!(
                            code,
                            Some(IllegalGeneration | RebalanceInProgress | UnknownMemberId)
                        ),
                        "unexpected commit error {e:?}"
                    );
                }
            }
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_share_partitions_and_survivors_take_over() {
    let b = quick_groups().await;
    common::create_topic(&b, "shared", 12).await;
    produce(&b, "shared", 12, 20, "a").await;
    let m1 = member(&b, "g1", &[]);
    let m2 = member(&b, "g1", &[]);
    let m3 = member(&b, "g1", &[]);
    for m in [&m1, &m2, &m3] {
        m.subscribe(&["shared"]).expect("subscribe");
    }
    let first = tokio::task::block_in_place(|| {
        consume_round_robin(&[&m1, &m2, &m3], Duration::from_secs(30), |s| {
            s.len() >= 240
        })
    });
    assert_eq!(first.len(), 240, "all records of the first batch consumed");
    // every member got a share
    let owned = |c: &BaseConsumer| c.assignment().expect("assignment").count();
    let shares: Vec<usize> = [&m1, &m2, &m3].iter().map(|c| owned(c)).collect();
    assert_eq!(shares.iter().sum::<usize>(), 12, "{shares:?}");
    assert!(
        shares.iter().all(|&n| n == 4),
        "range assignment splits 12 partitions 4/4/4: {shares:?}"
    );

    // one member goes away; the other two take over its partitions
    retire(m3);
    produce(&b, "shared", 12, 20, "b").await;
    let second = tokio::task::block_in_place(|| {
        consume_round_robin(&[&m1, &m2], Duration::from_secs(30), |s| s.len() >= 240)
    });
    assert_eq!(
        second.len(),
        240,
        "every record of the second batch consumed, none skipped"
    );
    let all: BTreeSet<(i32, i64)> = (0..12).flat_map(|p| (0..40).map(move |o| (p, o))).collect();
    let union: BTreeSet<(i32, i64)> = first.union(&second).copied().collect();
    assert_eq!(union, all);
    let shares: Vec<usize> = [&m1, &m2].iter().map(|c| owned(c)).collect();
    assert_eq!(shares.iter().sum::<usize>(), 12, "{shares:?}");

    // the group and its members are visible to admin tools
    let list = m1.fetch_group_list(Some("g1"), T).expect("group list");
    let g = &list.groups()[0];
    assert_eq!(g.state(), "Stable");
    assert_eq!(g.members().len(), 2);
    assert_eq!(g.protocol_type(), "consumer");
    retire(m1);
    retire(m2);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_a_restart() {
    let b = quick_groups().await;
    common::create_topic(&b, "resume", 2).await;
    produce(&b, "resume", 2, 10, "x").await;
    let c = member(&b, "g2", &[]);
    c.subscribe(&["resume"]).expect("subscribe");
    let seen = tokio::task::block_in_place(|| {
        consume_round_robin(&[&c], Duration::from_secs(30), |s| s.len() >= 12)
    });
    assert_eq!(seen.len(), 12);
    let committed = c.committed(T).expect("committed");
    let total: i64 = committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            other => panic!("{other:?}"),
        })
        .sum();
    assert_eq!(total, 12, "commits point after the last processed record");
    retire(c);
    let dir = b.stop().await;
    let b = TestBroker::start_in(dir, |c| {
        c.group_initial_rebalance_delay_ms = 300;
        c.group_min_session_timeout_ms = 1000;
    })
    .await;
    let c = member(&b, "g2", &[]);
    c.subscribe(&["resume"]).expect("subscribe");
    let resumed = tokio::task::block_in_place(|| {
        consume_round_robin(&[&c], Duration::from_secs(30), |s| s.len() >= 8)
    });
    let expected: BTreeSet<(i32, i64)> = (0..2)
        .flat_map(|p| (0..10).map(move |o| (p, o)))
        .filter(|po| !seen.contains(po))
        .collect();
    assert_eq!(
        resumed, expected,
        "resumes exactly after the committed offsets"
    );
    // the committed offsets are also readable without joining (OffsetFetch)
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("resume", 0);
    tpl.add_partition("resume", 1);
    let got = c.committed_offsets(tpl, T).expect("committed offsets");
    for e in got.elements() {
        assert_eq!(e.offset(), Offset::Offset(10));
    }
    retire(c);
    b.stop().await;
}

/// Records every assignment change a member's client is told about: (assigned?, partitions).
#[derive(Default)]
struct Rebalances(std::sync::Mutex<Vec<(bool, BTreeSet<i32>)>>);

impl rdkafka::ClientContext for Rebalances {}

impl ConsumerContext for Rebalances {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        let (assigned, tpl) = match r {
            Rebalance::Assign(tpl) => (true, *tpl),
            Rebalance::Revoke(tpl) => (false, *tpl),
            Rebalance::Error(_) => return,
        };
        let parts = tpl.elements().iter().map(|e| e.partition()).collect();
        if let Ok(mut log) = self.0.lock() {
            log.push((assigned, parts));
        }
    }
}

impl Rebalances {
    fn events(&self) -> Vec<(bool, BTreeSet<i32>)> {
        self.0.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

fn parts<C: ConsumerContext>(c: &BaseConsumer<C>) -> BTreeSet<i32> {
    c.assignment()
        .expect("assignment")
        .elements()
        .iter()
        .map(|e| e.partition())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_rebalances_incrementally() {
    let b = quick_groups().await;
    common::create_topic(&b, "coop", 6).await;
    produce(&b, "coop", 6, 5, "c").await;
    let cfg = |c: &mut ClientConfig| {
        c.set("bootstrap.servers", b.bootstrap())
            .set("group.id", "g3")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500")
            .set("fetch.wait.max.ms", "100")
            .set("partition.assignment.strategy", "cooperative-sticky");
    };
    let mut c = ClientConfig::new();
    cfg(&mut c);
    let m1: BaseConsumer<Rebalances> = c.create_with_context(Rebalances::default()).expect("m1");
    m1.subscribe(&["coop"]).expect("subscribe");
    let first = tokio::task::block_in_place(|| {
        consume_round_robin(&[&m1], Duration::from_secs(30), |s| s.len() >= 30)
    });
    assert_eq!(first.len(), 30);
    assert!(
        matches!(m1.rebalance_protocol(), RebalanceProtocol::Cooperative),
        "the group runs the cooperative protocol"
    );
    let before = m1.context().events();
    assert_eq!(
        before,
        vec![(true, (0..6).collect())],
        "the first member is given all six partitions at once"
    );
    let m2: BaseConsumer<Rebalances> = c.create_with_context(Rebalances::default()).expect("m2");
    m2.subscribe(&["coop"]).expect("subscribe");
    produce(&b, "coop", 6, 5, "d").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = BTreeSet::new();
    while Instant::now() < deadline {
        seen.extend(tokio::task::block_in_place(|| {
            consume_round_robin(&[&m1, &m2], Duration::from_millis(500), |s| s.len() >= 30)
        }));
        let (a1, a2) = (parts(&m1), parts(&m2));
        if a1.len() + a2.len() == 6 && !a1.is_empty() && !a2.is_empty() && seen.len() >= 30 {
            break;
        }
    }
    let (kept, moved) = (parts(&m1), parts(&m2));
    assert_eq!(kept.len() + moved.len(), 6, "{kept:?} + {moved:?}");
    assert!(kept.is_disjoint(&moved), "{kept:?} and {moved:?} overlap");
    assert!(!moved.is_empty(), "the new member received partitions");
    // incremental: the first member was asked to give up exactly what moved, and never the
    // partitions it kept (an eager rebalance revokes all six, then assigns some back)
    let after = m1.context().events().split_off(before.len());
    let revoked: BTreeSet<i32> = after
        .iter()
        .filter(|(assigned, _)| !assigned)
        .flat_map(|(_, p)| p.iter().copied())
        .collect();
    assert_eq!(
        revoked, moved,
        "only the moved partitions are revoked: {after:?}"
    );
    assert!(
        after.iter().all(|(assigned, p)| !assigned || p.is_empty()),
        "the first member gains nothing back: {after:?}"
    );
    // (its first generation assigns it nothing: the partitions are still being given up)
    let joined: Vec<_> = m2
        .context()
        .events()
        .into_iter()
        .filter(|(_, p)| !p.is_empty())
        .collect();
    assert_eq!(
        joined,
        vec![(true, moved.clone())],
        "the new member is assigned only what moved"
    );
    assert_eq!(
        seen.len(),
        30,
        "the second batch was consumed across both members"
    );
    retire(m1);
    retire(m2);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_topic_removes_its_committed_offsets() {
    use rdkafka::admin::AdminOptions;
    let b = quick_groups().await;
    common::create_topic(&b, "doomed", 1).await;
    let c = member(&b, "g4", &[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("doomed", 0, Offset::Offset(42))
        .expect("tpl");
    // a commit outside any generation (assign()-style consumers and admin tools)
    tokio::task::block_in_place(|| c.commit(&tpl, CommitMode::Sync)).expect("commit");
    let mut q = TopicPartitionList::new();
    q.add_partition("doomed", 0);
    let got = tokio::task::block_in_place(|| c.committed_offsets(q.clone(), T)).expect("committed");
    assert_eq!(got.elements()[0].offset(), Offset::Offset(42));
    let del = common::admin(&b.bootstrap())
        .delete_topics(&["doomed"], &AdminOptions::new())
        .await
        .expect("delete");
    assert!(del[0].is_ok());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got =
            tokio::task::block_in_place(|| c.committed_offsets(q.clone(), T)).expect("committed");
        if got.elements()[0].offset() == Offset::Invalid {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "offsets of the deleted topic are gone"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::task::block_in_place(|| drop(c));
    b.stop().await;
}

/// Static members (group.instance.id) keep running through a broker restart on the same
/// address, as in a rolling restart: membership is not journaled, so they rejoin the empty
/// group; no member may be fenced, the two must share the partitions again, and they resume
/// exactly at their commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_members_rejoin_after_a_broker_restart_and_resume_at_their_commits() {
    let b = quick_groups().await;
    let addr = b.addr;
    common::create_topic(&b, "static", 4).await;
    produce(&b, "static", 4, 5, "a").await;
    let m1 = member(&b, "gs", &[("group.instance.id", "i1")]);
    let m2 = member(&b, "gs", &[("group.instance.id", "i2")]);
    m1.subscribe(&["static"]).expect("subscribe");
    m2.subscribe(&["static"]).expect("subscribe");
    let shared = |a: &BTreeSet<i32>, b: &BTreeSet<i32>| {
        !a.is_empty() && !b.is_empty() && a.is_disjoint(b) && a.len() + b.len() == 4
    };
    let before = tokio::task::block_in_place(|| {
        consume_round_robin(&[&m1, &m2], Duration::from_secs(30), |s| {
            s.len() >= 20 && shared(&parts(&m1), &parts(&m2))
        })
    });
    assert_eq!(before.len(), 20);
    assert!(shared(&parts(&m1), &parts(&m2)));
    // a commit refused during the first rebalance is redone by the partition's next owner:
    // keep polling until every partition's commit is at its end
    let mut all = TopicPartitionList::new();
    for p in 0..4 {
        all.add_partition("static", p);
    }
    let committed_all = || {
        m1.committed_offsets(all.clone(), T)
            .expect("committed offsets")
            .elements()
            .iter()
            .all(|e| e.offset() == Offset::Offset(5))
    };
    let end = Instant::now() + Duration::from_secs(20);
    while !committed_all() && Instant::now() < end {
        tokio::task::block_in_place(|| {
            consume_round_robin(&[&m1, &m2], Duration::from_millis(200), |_| false)
        });
    }
    assert!(committed_all(), "every partition committed at 5");

    let dir = b.stop().await;
    let b = TestBroker::start_in(dir, |c| {
        c.listen = addr; // the members reconnect to where they were
        c.group_initial_rebalance_delay_ms = 300;
        c.group_min_session_timeout_ms = 1000;
    })
    .await;
    produce(&b, "static", 4, 5, "b").await;
    let after = tokio::task::block_in_place(|| {
        consume_round_robin(&[&m1, &m2], Duration::from_secs(40), |s| {
            s.len() >= 20 && shared(&parts(&m1), &parts(&m2))
        })
    });
    let expected: BTreeSet<(i32, i64)> =
        (0..4).flat_map(|p| (5..10).map(move |o| (p, o))).collect();
    assert_eq!(after, expected, "resumed exactly at the commits");
    assert!(
        shared(&parts(&m1), &parts(&m2)),
        "the partitions shared again"
    );
    for m in [&m1, &m2] {
        assert_eq!(m.client().fatal_error(), None, "no member was fenced");
    }
    retire(m1);
    retire(m2);
    b.stop().await;
}
