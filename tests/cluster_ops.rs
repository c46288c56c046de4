//! Cluster operations: reassigning partitions to a node (AlterPartitionReassignments,
//! ListPartitionReassignments) under a producer, preferred and unclean leader elections
//! (ElectLeaders), and an assigned node taking its partitions back after a failure.
//!
//! These need etcd, so they are ignored by a plain `cargo test`; `.ci/run` installs etcd and
//! runs them with `cargo test --test cluster_ops -- --ignored`.

#![allow(clippy::disallowed_methods)] // a test reads and writes its files directly

mod cluster_support;
mod common;

use cluster_support::*;
use common::{read_response, send_request};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::net::TcpStream;
use std::time::Duration;

const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const ELECTION_NOT_NEEDED: i16 = 84;
const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(40)))
        .expect("timeout");
    s
}

fn name(t: &str) -> TopicName {
    TopicName(StrBytes::from_string(t.to_string()))
}

/// AlterPartitionReassignments v0: each partition's error, in order.
fn reassign(addr: &str, topic: &str, to: &[(i32, Option<Vec<i32>>)]) -> Vec<i16> {
    let mut s = connect(addr);
    let mut req = AlterPartitionReassignmentsRequest::default();
    req.timeout_ms = 30_000;
    let mut t = ReassignableTopic::default();
    t.name = name(topic);
    t.partitions = to
        .iter()
        .map(|(p, r)| {
            let mut rp = ReassignablePartition::default();
            rp.partition_index = *p;
            rp.replicas = r
                .as_ref()
                .map(|ids| ids.iter().map(|i| BrokerId(*i)).collect());
            rp
        })
        .collect();
    req.topics = vec![t];
    send_request(&mut s, 45, 0, 1, &req);
    let resp: AlterPartitionReassignmentsResponse =
        read_response(&mut s, 45, 0, 1).expect("response");
    assert_eq!(resp.error_code, 0);
    resp.responses
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect()
}

/// ListPartitionReassignments v0: (topic, partition, target) of every one in progress.
fn ongoing(addr: &str) -> Vec<(String, i32, Vec<i32>)> {
    let mut s = connect(addr);
    let req = ListPartitionReassignmentsRequest::default();
    send_request(&mut s, 46, 0, 1, &req);
    let resp: ListPartitionReassignmentsResponse =
        read_response(&mut s, 46, 0, 1).expect("response");
    resp.topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    p.replicas.iter().map(|b| b.0).collect(),
                )
            })
        })
        .collect()
}

/// ElectLeaders v1 for one partition: its error.
fn elect(addr: &str, topic: &str, partition: i32, election_type: i8) -> i16 {
    let mut s = connect(addr);
    let mut req = ElectLeadersRequest::default();
    req.election_type = election_type;
    req.timeout_ms = 30_000;
    let mut tp = TopicPartitions::default();
    tp.topic = name(topic);
    tp.partitions = vec![partition];
    req.topic_partitions = Some(vec![tp]);
    send_request(&mut s, 43, 1, 1, &req);
    let resp: ElectLeadersResponse = read_response(&mut s, 43, 1, 1).expect("response");
    resp.replica_election_results[0].partition_result[0].error_code
}

#[test]
#[ignore = "needs etcd: cargo test --test cluster_ops -- --ignored"]
fn a_topic_reassigned_to_one_node_moves_there_under_load_and_returns_after_its_failure() {
    let mut c = Cluster::start(3);
    let a = c.nodes[0].addr();
    create_topic(&a, "moving", 6);
    wait_placement(&c, &a, "moving", "even spread", |nodes, parts| {
        nodes.len() == 3 && per_node(parts).values().all(|n| *n == 2)
    });
    let boot = c.bootstrap();
    let producing = std::thread::spawn(move || produce(&boot, "moving", 6, 150, "during"));
    std::thread::sleep(Duration::from_millis(300));
    let all_to_2: Vec<(i32, Option<Vec<i32>>)> = (0..6).map(|p| (p, Some(vec![2]))).collect();
    assert_eq!(reassign(&a, "moving", &all_to_2), vec![0; 6]);
    wait_placement(&c, &a, "moving", "every partition on node 2", |_, parts| {
        parts.values().all(|p| p.leader == 2)
    });
    let acked = producing.join().expect("producer");
    assert!(ongoing(&a).is_empty(), "done reassignments are not listed");
    let mut got = consume_all(&c.bootstrap(), "moving", 6);
    let mut want = acked;
    want.sort();
    got.sort();
    assert_eq!(got, want, "every acknowledged record at its offset, once");
    // in place: nothing to elect; a node that is not live cannot be assigned
    assert_eq!(elect(&a, "moving", 0, 0), ELECTION_NOT_NEEDED);
    assert_eq!(
        reassign(&a, "moving", &[(0, Some(vec![9]))]),
        vec![INVALID_REPLICA_ASSIGNMENT]
    );
    assert_eq!(
        reassign(&a, "moving", &[(0, None)]),
        vec![NO_REASSIGNMENT_IN_PROGRESS]
    );
    // node 2 fails: its partitions go elsewhere, and come back when it returns
    c.node(2).kill();
    wait_placement(&c, &a, "moving", "failover off node 2", |nodes, parts| {
        !nodes.contains(&2) && parts.values().all(|p| p.leader != 2)
    });
    let listed = ongoing(&a);
    assert_eq!(listed.len(), 6, "waiting for node 2: {listed:?}");
    assert!(listed.iter().all(|(_, _, r)| r == &vec![2]));
    c.launch(2);
    wait_placement(&c, &a, "moving", "back on node 2", |_, parts| {
        parts.values().all(|p| p.leader == 2)
    });
    // an unclean election for a partition that has a leader is not needed either
    assert_eq!(elect(&a, "moving", 1, 1), ELECTION_NOT_NEEDED);
    // cancelling the assignment lets the controller spread the topic again
    let all_none: Vec<(i32, Option<Vec<i32>>)> = (0..6).map(|p| (p, None)).collect();
    c.node(2).kill();
    wait_placement(
        &c,
        &a,
        "moving",
        "failover off node 2 again",
        |nodes, parts| !nodes.contains(&2) && parts.values().all(|p| p.leader != 2),
    );
    assert_eq!(reassign(&a, "moving", &all_none), vec![0; 6]);
    c.launch(2);
    wait_placement(&c, &a, "moving", "spread again", |nodes, parts| {
        nodes.len() == 3 && per_node(parts).values().all(|n| *n == 2)
    });
}

/// DescribeCluster v2 with fenced brokers: (node id, fenced) of each.
fn described(addr: &str) -> Vec<(i32, bool)> {
    let mut s = connect(addr);
    let mut req = DescribeClusterRequest::default();
    req.include_fenced_brokers = true;
    req.endpoint_type = 1;
    send_request(&mut s, 60, 2, 1, &req);
    let resp: DescribeClusterResponse = read_response(&mut s, 60, 2, 1).expect("response");
    let mut out: Vec<(i32, bool)> = resp
        .brokers
        .iter()
        .map(|b| (b.broker_id.0, b.is_fenced))
        .collect();
    out.sort_unstable();
    out
}

#[test]
#[ignore = "needs etcd: cargo test --test cluster_ops -- --ignored"]
fn a_decommissioned_node_hands_every_partition_away_under_load() {
    let mut c = Cluster::start(3);
    let a = c.nodes[0].addr();
    create_topic(&a, "draining", 6);
    wait_placement(&c, &a, "draining", "even spread", |nodes, parts| {
        nodes.len() == 3 && per_node(parts).values().all(|n| *n == 2)
    });
    // node 3 restarts draining while an idempotent producer writes
    let boot = c.nodes[0].addr() + "," + &c.nodes[1].addr();
    let producing = std::thread::spawn(move || produce(&boot, "draining", 6, 150, "drain"));
    c.node(3).stop();
    c.launch_with(3, &["--decommission", "true"]);
    wait_placement(
        &c,
        &a,
        "draining",
        "nothing left on node 3",
        |nodes, parts| nodes.contains(&3) && parts.values().all(|p| p.leader != 3),
    );
    assert_eq!(described(&a), vec![(1, false), (2, false), (3, true)]);
    let acked = producing.join().expect("producer");
    let mut got = consume_all(
        &(c.nodes[0].addr() + "," + &c.nodes[1].addr()),
        "draining",
        6,
    );
    let mut want = acked;
    want.sort();
    got.sort();
    assert_eq!(got, want, "every acknowledged record at its offset, once");
    // the coordinators' shards left it too: a group commits through the other nodes
    let internal = metadata(&a, "__tiercel_groups").expect("groups topic");
    assert!(internal.1.values().all(|p| p.leader != 3), "{internal:?}");
    // back without the flag, it takes a share again
    c.node(3).stop();
    c.launch(3);
    wait_placement(&c, &a, "draining", "spread again", |nodes, parts| {
        nodes.len() == 3 && per_node(parts).values().all(|n| *n == 2)
    });
    assert_eq!(described(&a), vec![(1, false), (2, false), (3, false)]);
}

/// DeleteRecords v2 for one partition: its error.
fn delete_records(addr: &str, topic: &str, partition: i32, offset: i64) -> i16 {
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    let mut s = connect(addr);
    let mut req = DeleteRecordsRequest::default();
    req.timeout_ms = 30_000;
    let mut t = DeleteRecordsTopic::default();
    t.name = name(topic);
    let mut p = DeleteRecordsPartition::default();
    p.partition_index = partition;
    p.offset = offset;
    t.partitions = vec![p];
    req.topics = vec![t];
    send_request(&mut s, 21, 2, 1, &req);
    let resp: DeleteRecordsResponse = read_response(&mut s, 21, 2, 1).expect("response");
    resp.topics[0].partitions[0].error_code
}

/// The highest end offset of the partition's tail chunks in the bucket.
fn chunks_end(c: &Cluster) -> i64 {
    files_containing(c.tier.path(), "/tail/")
        .iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_string_lossy().into_owned();
            name.split_once('-')?.1.parse::<i64>().ok()
        })
        .max()
        .unwrap_or(-1)
}

#[test]
#[ignore = "needs etcd: cargo test --test cluster_ops -- --ignored"]
fn records_deleted_past_the_tail_chunks_neither_stall_them_nor_a_take_over() {
    let mut c = Cluster::start(2);
    let a = c.nodes[0].addr();
    create_topic(&a, "trimmed", 1);
    let before = wait_placement(&c, &a, "trimmed", "placed", |nodes, parts| {
        nodes.len() == 2 && parts.len() == 1
    });
    let leader = c
        .nodes
        .iter()
        .find(|n| n.id == before[&0].leader)
        .map(Node::addr)
        .expect("leader");
    // one batch per record: past the batches that make a chunk
    produce(&c.bootstrap(), "trimmed", 1, 300, "x");
    let wait_chunks = |c: &Cluster, end: i64, what: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while chunks_end(c) < end {
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: chunks end at {}\n{}",
                chunks_end(c),
                c.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_chunks(&c, 128, "first chunk");
    let chunked = chunks_end(&c);
    // the log start moves past what the chunks hold; what follows must still be chunked
    produce(&c.bootstrap(), "trimmed", 1, 100, "y");
    assert_eq!(delete_records(&leader, "trimmed", 0, 350), 0);
    assert!(
        chunked < 350,
        "the deletion goes past the chunks ({chunked})"
    );
    produce(&c.bootstrap(), "trimmed", 1, 200, "z");
    wait_chunks(&c, 500, "chunks past the deleted records");
    c.node(before[&0].leader).kill();
    let survivor = c
        .nodes
        .iter()
        .find(|n| n.id != before[&0].leader)
        .map(Node::addr)
        .expect("the other node");
    wait_placement(&c, &survivor, "trimmed", "failover", |_, parts| {
        parts[&0].leader != before[&0].leader && parts[&0].error == 0
    });
    produce(&c.bootstrap(), "trimmed", 1, 5, "w");
    let read = consume_all(&c.bootstrap(), "trimmed", 1);
    let offsets: Vec<i64> = read.iter().map(|r| r.1).collect();
    assert_eq!(offsets, (350..605).collect::<Vec<i64>>(), "{}", c.logs());
    let values: Vec<String> = read.iter().map(|r| r.2.clone()).collect();
    let mut want: Vec<String> = (50..100).map(|i| format!("y-0-{i}")).collect();
    want.extend((0..200).map(|i| format!("z-0-{i}")));
    want.extend((0..5).map(|i| format!("w-0-{i}")));
    assert_eq!(values, want);
}
