//! Cluster mode: the group coordinator is spread over the nodes (each group belongs to a shard
//! of the internal groups topic, coordinated by that partition's leader), its committed offsets
//! live in that partition (the bucket, through the WAL), and they survive the kill -9 of the
//! node that coordinated them.
//!
//! These need etcd, so they are ignored by a plain `cargo test`; `.ci/run` installs etcd and
//! runs them with `cargo test --test cluster_coordinators -- --ignored`.

#![allow(clippy::disallowed_methods)] // a test reads and writes its files directly

mod cluster_support;
mod common;

use cluster_support::*;
use common::{read_response, send_request};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const NOT_COORDINATOR: i16 = 16;
const LOAD_IN_PROGRESS: i16 = 14;
const NOT_AVAILABLE: i16 = 15;

fn connect(addr: &str) -> Option<TcpStream> {
    let s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    Some(s)
}

/// FindCoordinator v4 for a group (`key_type` 0) or a transactional id (1) from the node at
/// `addr`: (error, node id, "host:port").
fn find_coordinator(addr: &str, key_type: i8, key: &str) -> Option<(i16, i32, String)> {
    let mut s = connect(addr)?;
    let mut req = FindCoordinatorRequest::default();
    req.key_type = key_type;
    req.coordinator_keys = vec![StrBytes::from_string(key.to_string())];
    send_request(&mut s, 10, 4, 1, &req);
    let resp: FindCoordinatorResponse = read_response(&mut s, 10, 4, 1).ok()?;
    let c = resp.coordinators.first()?;
    Some((
        c.error_code,
        c.node_id.0,
        format!("{}:{}", c.host.as_str(), c.port),
    ))
}

/// OffsetCommit v8 outside any generation: the error of the request's one partition.
fn commit(addr: &str, group: &str, topic: &str, partition: i32, offset: i64) -> Option<i16> {
    let mut s = connect(addr)?;
    let mut req = OffsetCommitRequest::default();
    req.group_id = GroupId(StrBytes::from_string(group.to_string()));
    req.generation_id_or_member_epoch = -1;
    let mut t = OffsetCommitRequestTopic::default();
    t.name = TopicName(StrBytes::from_string(topic.to_string()));
    let mut p = OffsetCommitRequestPartition::default();
    p.partition_index = partition;
    p.committed_offset = offset;
    t.partitions = vec![p];
    req.topics = vec![t];
    send_request(&mut s, 8, 8, 1, &req);
    let resp: OffsetCommitResponse = read_response(&mut s, 8, 8, 1).ok()?;
    Some(resp.topics.first()?.partitions.first()?.error_code)
}

/// OffsetFetch v7: (request error, the partition's committed offset).
fn fetch(addr: &str, group: &str, topic: &str, partition: i32) -> Option<(i16, i64)> {
    let mut s = connect(addr)?;
    let mut req = OffsetFetchRequest::default();
    req.group_id = GroupId(StrBytes::from_string(group.to_string()));
    let mut t = OffsetFetchRequestTopic::default();
    t.name = TopicName(StrBytes::from_string(topic.to_string()));
    t.partition_indexes = vec![partition];
    req.topics = Some(vec![t]);
    send_request(&mut s, 9, 7, 1, &req);
    let resp: OffsetFetchResponse = read_response(&mut s, 9, 7, 1).ok()?;
    if resp.error_code != 0 {
        return Some((resp.error_code, -1));
    }
    let offset = resp.topics.first()?.partitions.first()?.committed_offset;
    Some((0, offset))
}

/// The coordinator of `group` as any of `addrs` names it, once one names a node that serves
/// it: retried through COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR and LOAD_IN_PROGRESS, as a
/// client would. Returns (node id, address) and what `op` answered there.
fn with_coordinator<T>(
    c: &Cluster,
    addrs: &[String],
    group: &str,
    what: &str,
    mut op: impl FnMut(&str) -> Option<Result<T, i16>>,
) -> (i32, T) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    loop {
        for a in addrs {
            match find_coordinator(a, 0, group) {
                Some((0, id, at)) => match op(&at) {
                    Some(Ok(v)) => return (id, v),
                    Some(Err(e)) => {
                        assert!(
                            [NOT_COORDINATOR, LOAD_IN_PROGRESS, NOT_AVAILABLE].contains(&e),
                            "{what}: node {id} answered error {e}\n{}",
                            c.logs()
                        );
                        last = format!("node {id} answered {e}");
                    }
                    None => last = format!("node {id} did not answer"),
                },
                Some((e, _, _)) => last = format!("FindCoordinator error {e}"),
                None => last = format!("{a} did not answer FindCoordinator"),
            }
        }
        assert!(Instant::now() < deadline, "{what}: {last}\n{}", c.logs());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[ignore = "needs etcd: cargo test --test cluster_coordinators -- --ignored"]
fn groups_spread_over_the_nodes_and_their_offsets_survive_the_coordinator_s_kill() {
    let mut c = Cluster::start(3);
    let addrs: Vec<String> = c.nodes.iter().map(Node::addr).collect();
    create_topic(&addrs[0], "work", 6);
    let groups: Vec<String> = (0..24).map(|i| format!("group-{i}")).collect();
    let mut coordinators = BTreeMap::new();
    for (i, g) in groups.iter().enumerate() {
        let (node, ()) = with_coordinator(&c, &addrs, g, "first commit", |at| {
            commit(at, g, "work", 0, 100 + i as i64).map(|e| if e == 0 { Ok(()) } else { Err(e) })
        });
        coordinators.insert(g.clone(), node);
    }
    eprintln!("coordinators: {coordinators:?}");
    let used: BTreeSet<i32> = coordinators.values().copied().collect();
    assert!(
        used.len() >= 2,
        "24 groups should be coordinated by more than one node: {coordinators:?}"
    );
    // a node that does not coordinate a group says so
    let g0 = &groups[0];
    let other = c
        .nodes
        .iter()
        .find(|n| n.id != coordinators[g0])
        .map(Node::addr)
        .expect("another node");
    assert_eq!(
        commit(&other, g0, "work", 0, 1),
        Some(NOT_COORDINATOR),
        "{}",
        c.logs()
    );
    // kill -9 the coordinator of group-0: its shards move, with their offsets
    let victim = coordinators[g0];
    c.node(victim).kill();
    let alive: Vec<String> = c
        .nodes
        .iter()
        .filter(|n| n.child.is_some())
        .map(Node::addr)
        .collect();
    for (i, g) in groups.iter().enumerate() {
        let (node, offset) = with_coordinator(&c, &alive, g, "fetch after the kill", |at| {
            fetch(at, g, "work", 0).map(|(e, o)| if e == 0 { Ok(o) } else { Err(e) })
        });
        assert_ne!(node, victim, "a dead node named as coordinator");
        eprintln!("{g}: node {node} after node {victim}'s kill");
        assert_eq!(
            offset,
            100 + i as i64,
            "{g}'s committed offset after the kill\n{}",
            c.logs()
        );
    }
    // the node comes back and takes a share of the shards again; nothing is lost either way
    c.launch(victim);
    for (i, g) in groups.iter().enumerate() {
        let (_, offset) = with_coordinator(&c, &addrs, g, "fetch after the restart", |at| {
            fetch(at, g, "work", 0).map(|(e, o)| if e == 0 { Ok(o) } else { Err(e) })
        });
        assert_eq!(offset, 100 + i as i64, "{g} after the restart");
    }
}

/// The node coordinating transactional id `id`, once one is named.
fn txn_coordinator(c: &Cluster, addrs: &[String], id: &str) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((_, node, _)) = addrs
            .iter()
            .find_map(|a| find_coordinator(a, 1, id).filter(|(e, _, _)| *e == 0))
        {
            return node;
        }
        assert!(
            Instant::now() < deadline,
            "no coordinator for {id}\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every record of `topic` a read_committed consumer sees, within `quiet` of the last one.
fn read_committed(bootstrap: &str, topic: &str, partitions: i32) -> Vec<String> {
    use rdkafka::consumer::BaseConsumer;
    use rdkafka::Message;
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "eos-reader")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("topic.metadata.refresh.interval.ms", "500")
        .create()
        .expect("consumer");
    common::assign_from_start(&consumer, topic, partitions);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = Instant::now();
    while Instant::now() < deadline && last.elapsed() < Duration::from_secs(5) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
            last = Instant::now();
        }
    }
    got.sort();
    got
}

#[test]
#[ignore = "needs etcd: cargo test --test cluster_coordinators -- --ignored"]
fn a_transaction_and_its_offsets_survive_the_kill_of_its_coordinator() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::{Offset, TopicPartitionList};
    let mut c = Cluster::start(3);
    let addrs: Vec<String> = c.nodes.iter().map(Node::addr).collect();
    create_topic(&addrs[0], "eos", 6);
    create_topic(&addrs[0], "work-input", 1);
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", c.bootstrap())
        .set("transactional.id", "eos-app")
        .set("topic.metadata.refresh.interval.ms", "500")
        .create()
        .expect("producer");
    producer
        .init_transactions(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("init: {e}\n{}", c.logs()));
    // the offsets of a consumer group go with the transaction; its coordinator may well be
    // another node than the transaction's
    let input: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", c.bootstrap())
        .set("group.id", "eos-input")
        .create()
        .expect("consumer");
    let group = input.group_metadata().expect("group metadata");
    producer.begin_transaction().expect("begin");
    let mut want = Vec::new();
    for p in 0..6 {
        for i in 0..5 {
            let value = format!("kept-{p}-{i}");
            producer
                .send(BaseRecord::<(), _>::to("eos").partition(p).payload(&value))
                .expect("queued");
            want.push(value);
        }
    }
    producer.flush(Duration::from_secs(60)).expect("flushed");
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("work-input", 0, Offset::Offset(77))
        .expect("tpl");
    producer
        .send_offsets_to_transaction(&offsets, &group, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("send offsets: {e}\n{}", c.logs()));
    // kill -9 the transaction's coordinator with the transaction open: the shard's new leader
    // finds it Ongoing in the log and the commit goes through there
    let victim = txn_coordinator(&c, &addrs, "eos-app");
    c.node(victim).kill();
    producer
        .commit_transaction(Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("commit after node {victim}'s kill: {e}\n{}", c.logs()));
    let after = txn_coordinator(&c, &addrs, "eos-app");
    assert_ne!(after, victim, "a dead node named as coordinator");
    // an aborted transaction through the new coordinator leaves nothing behind
    producer.begin_transaction().expect("begin");
    for p in 0..6 {
        producer
            .send(
                BaseRecord::<(), _>::to("eos")
                    .partition(p)
                    .payload("aborted"),
            )
            .expect("queued");
    }
    producer.flush(Duration::from_secs(60)).expect("flushed");
    producer
        .abort_transaction(Duration::from_secs(60))
        .expect("abort");
    want.sort();
    assert_eq!(
        read_committed(&c.bootstrap(), "eos", 6),
        want,
        "{}",
        c.logs()
    );
    let alive: Vec<String> = c
        .nodes
        .iter()
        .filter(|n| n.child.is_some())
        .map(Node::addr)
        .collect();
    let (_, offset) = with_coordinator(&c, &alive, "eos-input", "transactional offsets", |at| {
        fetch(at, "eos-input", "work-input", 0).map(|(e, o)| if e == 0 { Ok(o) } else { Err(e) })
    });
    assert_eq!(offset, 77, "the transaction's offsets were committed");
}
