//! Fetch from the nearest node (KIP-392) in a cluster whose nodes sit in three racks: a
//! consumer that sets `client.rack` reads every partition from its rack's node, whichever node
//! leads it (the leader names that node as the preferred read replica, the node serves a
//! follower copy built from the bucket), read_uncommitted and read_committed, including records
//! written after its copy was built.
//!
//! These need etcd, so they are ignored by a plain `cargo test`; `.ci/run` installs etcd and
//! runs them with `cargo test --test cluster_racks -- --ignored`.

#![allow(clippy::disallowed_methods)] // a test reads and writes its files directly

mod cluster_support;
mod common;

use cluster_support::*;
use common::{read_response, read_to_end_with, send_request};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::producer::Producer;
use std::collections::BTreeMap;
use std::net::TcpStream;
use std::time::Duration;

const FOLLOWER_BYTES: &str = "tiercel_cluster_follower_fetch_bytes_total";
const REDIRECTS: &str = "tiercel_cluster_preferred_replica_redirects_total";
const FETCH_BYTES: &str = "tiercel_fetch_bytes_total";

/// Metadata v12 for `topic`: each broker's rack and each partition's replicas.
fn racks_and_replicas(addr: &str, topic: &str) -> (BTreeMap<i32, String>, Vec<Vec<i32>>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut req = MetadataRequest::default();
    let mut t = MetadataRequestTopic::default();
    t.name = Some(TopicName(StrBytes::from_string(topic.to_string())));
    req.topics = Some(vec![t]);
    send_request(&mut s, 3, 12, 1, &req);
    let resp: MetadataResponse = read_response(&mut s, 3, 12, 1).expect("metadata");
    let racks = resp
        .brokers
        .iter()
        .map(|b| {
            let rack = b.rack.as_ref().map(|r| r.to_string()).unwrap_or_default();
            (b.node_id.0, rack)
        })
        .collect();
    let replicas = resp.topics[0]
        .partitions
        .iter()
        .map(|p| {
            assert_eq!(
                p.replica_nodes, p.isr_nodes,
                "every replica reads the bucket: all in sync"
            );
            assert_eq!(p.replica_nodes[0], p.leader_id, "the leader comes first");
            p.replica_nodes.iter().map(|n| n.0).collect()
        })
        .collect();
    (racks, replicas)
}

#[test]
#[ignore = "needs etcd: cargo test --test cluster_racks -- --ignored"]
fn a_consumer_with_a_rack_reads_every_partition_from_that_racks_node() {
    let c = Cluster::start_with(3, |id| vec!["--rack".into(), format!("zone-{id}")]);
    let b = c.bootstrap();
    create_topic(&b, "near", 3);
    let parts = wait_placement(&c, &c.nodes[0].addr(), "near", "topic spread", |_, p| {
        per_node(p).len() == 3
    });
    let (racks, replicas) = racks_and_replicas(&c.nodes[0].addr(), "near");
    let expected: BTreeMap<i32, String> = (1..=3).map(|id| (id, format!("zone-{id}"))).collect();
    assert_eq!(racks, expected, "Metadata names each node's rack");
    for r in &replicas {
        let mut sorted = r.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![1, 2, 3], "every live node is a replica: {r:?}");
    }

    let produced = produce(&b, "near", 3, 200, "a");
    let values: Vec<String> = produced.iter().map(|(_, _, v)| v.clone()).collect();
    let near = [("client.rack", "zone-1")];
    let mut got = read_to_end_with(&b, "near", 3, "read_uncommitted", &near);
    got.sort();
    let mut want = values.clone();
    want.sort();
    assert_eq!(
        got,
        want,
        "everything, once, through zone-1's node\n{}",
        c.logs()
    );

    // zone-1's node served the partitions others lead from its copies; the others sent the
    // consumer there and served it no record of the topic
    let topic = "topic=\"near\"";
    let elsewhere: Vec<i32> = parts
        .values()
        .map(|p| p.leader)
        .filter(|l| *l != 1)
        .collect();
    assert_eq!(elsewhere.len(), 2, "{parts:?}");
    let copied = c.metric(1, FOLLOWER_BYTES, "");
    assert!(copied > 0.0, "node 1 served follower reads\n{}", c.logs());
    for n in [2, 3] {
        assert!(
            c.metric(n, REDIRECTS, "") > 0.0,
            "node {n} named the preferred read replica"
        );
        assert_eq!(
            c.metric(n, FETCH_BYTES, topic),
            0.0,
            "node {n} served the zone-1 consumer no records"
        );
    }

    // records written after the copies were built reach them through the WAL; an aborted
    // transaction stays invisible to read_committed on a copy
    let more = produce(&b, "near", 3, 50, "b");
    let txn = common::txn_producer(&b, "near-txn", &[]);
    for (tag, commit) in [("aborted", false), ("committed", true)] {
        txn.begin_transaction().expect("begin");
        for p in 0..3 {
            for i in 0..5 {
                let v = format!("{tag}-{p}-{i}");
                txn.send(
                    rdkafka::producer::BaseRecord::<(), _>::to("near")
                        .partition(p)
                        .payload(&v),
                )
                .map_err(|(e, _)| e)
                .expect("send");
            }
        }
        txn.flush(Duration::from_secs(30)).expect("flush");
        if commit {
            txn.commit_transaction(Duration::from_secs(30))
                .expect("commit");
        } else {
            txn.abort_transaction(Duration::from_secs(30))
                .expect("abort");
        }
    }
    let before = c.metric(1, FOLLOWER_BYTES, "");
    let mut got = read_to_end_with(&b, "near", 3, "read_committed", &near);
    got.sort();
    let mut want: Vec<String> = values
        .into_iter()
        .chain(more.into_iter().map(|(_, _, v)| v))
        .chain((0..3).flat_map(|p| (0..5).map(move |i| format!("committed-{p}-{i}"))))
        .collect();
    want.sort();
    assert_eq!(
        got,
        want,
        "read_committed through zone-1's node\n{}",
        c.logs()
    );
    assert!(
        c.metric(1, FOLLOWER_BYTES, "") > before,
        "the second read came from the copies too"
    );
    for n in [2, 3] {
        assert_eq!(c.metric(n, FETCH_BYTES, topic), 0.0, "node {n}");
    }
}
