//! rskafka (a pure-Rust client with its own protocol code) against the broker: topic admin,
//! produce and fetch with keys, headers and every codec, offsets, DeleteRecords.

#![allow(clippy::disallowed_methods)] // a test (or benchmark) reads and writes its files directly

mod common;

use common::TestBroker;
use rskafka::chrono::{TimeZone, Utc};
use rskafka::client::partition::{Compression, OffsetAt, UnknownTopicHandling};
use rskafka::client::ClientBuilder;
use rskafka::record::Record;
use std::collections::BTreeMap;

fn record(i: i64) -> Record {
    Record {
        key: Some(format!("k{i}").into_bytes()),
        value: Some(format!("v{i}").into_bytes()),
        headers: BTreeMap::from([("h".to_string(), i.to_string().into_bytes())]),
        timestamp: Utc.timestamp_millis_opt(1_700_000_000_000 + i).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rskafka_produces_fetches_and_administers() {
    let b = TestBroker::start().await;
    let client = ClientBuilder::new(vec![b.bootstrap()])
        .build()
        .await
        .expect("client");
    let controller = client.controller_client().expect("controller");
    controller
        .create_topic("rs", 2, 1, 5_000)
        .await
        .expect("create topic");
    let topics = client.list_topics().await.expect("list");
    let t = topics.iter().find(|t| t.name == "rs").expect("listed");
    assert_eq!(t.partitions.len(), 2);

    let p = client
        .partition_client("rs", 0, UnknownTopicHandling::Retry)
        .await
        .expect("partition client");
    let codecs = [
        Compression::NoCompression,
        Compression::Gzip,
        Compression::Lz4,
        Compression::Snappy,
        Compression::Zstd,
    ];
    let mut expected = Vec::new();
    for (round, codec) in codecs.into_iter().enumerate() {
        let records: Vec<Record> = (0..10).map(|i| record(round as i64 * 10 + i)).collect();
        let offsets = p.produce(records.clone(), codec).await.expect("produce");
        assert_eq!(offsets.len(), 10);
        assert_eq!(offsets[0], round as i64 * 10, "offsets follow on");
        expected.extend(records);
    }
    let mut got = Vec::new();
    let mut next = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while got.len() < expected.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {} records fetched",
            got.len(),
            expected.len()
        );
        let (batch, high) = p
            .fetch_records(next, 1..1_000_000, 1_000)
            .await
            .expect("fetch");
        assert_eq!(high, 50);
        for r in batch {
            next = r.offset + 1;
            got.push(r.record);
        }
    }
    assert_eq!(
        got, expected,
        "keys, values, headers and timestamps survive every codec"
    );

    assert_eq!(p.get_offset(OffsetAt::Earliest).await.expect("earliest"), 0);
    assert_eq!(p.get_offset(OffsetAt::Latest).await.expect("latest"), 50);
    p.delete_records(20, 5_000).await.expect("delete records");
    assert_eq!(
        p.get_offset(OffsetAt::Earliest).await.expect("earliest"),
        20
    );

    controller
        .delete_topic("rs", 5_000)
        .await
        .expect("delete topic");
    let topics = client.list_topics().await.expect("list");
    assert!(topics.iter().all(|t| t.name != "rs"));
    b.stop().await;
}
