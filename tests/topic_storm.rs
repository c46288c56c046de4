//! A storm of topic creation beside a steady producer: two clients each send one Metadata
//! request that auto-creates 5,000 topics while a third produces with acks=all, one record at a
//! time. Every topic must exist afterwards and every record must be acknowledged; the
//! producer's latency while the storm runs is reported (a benchmark number, not asserted).
//!
//! Runs the broker binary: the one `cargo test` built, or `TIERCEL_BIN` (a release build gives
//! the numbers the README quotes: `TIERCEL_BIN=target/release/tiercel cargo test --release
//! --test topic_storm -- --nocapture`). `STORM_TOPICS` changes the 5,000.

#![allow(clippy::disallowed_methods)] // a test (or benchmark) reads and writes its files directly

mod common;

use common::{admin, free_port, spawn_binary};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn metadata(port: u16, names: &[String]) -> MetadataResponse {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(300)))
        .expect("timeout");
    let mut req = MetadataRequest::default();
    req.allow_auto_topic_creation = true;
    req.topics = Some(
        names
            .iter()
            .map(|n| {
                let mut t = MetadataRequestTopic::default();
                t.name = Some(TopicName(StrBytes::from_string(n.clone())));
                t
            })
            .collect(),
    );
    common::roundtrip(&mut s, 3, 9, 1, &req)
}

/// The storm measures the catalog under load, so the topic mutation quota (which would stop
/// it after ten seconds' worth) is off.
const STORM_FLAGS: &[&str] = &["--log-level", "warn", "--topic-mutation-rate", "0"];

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_keeps_going_while_two_clients_create_5000_topics_each() {
    let per_client: usize = std::env::var("STORM_TOPICS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let bin = std::env::var("TIERCEL_BIN").ok();
    let _broker = Killed(match &bin {
        Some(b) => common::spawn_binary_at(b, dir.path(), port, STORM_FLAGS),
        None => spawn_binary(dir.path(), port, STORM_FLAGS),
    });
    let bootstrap = format!("127.0.0.1:{port}");
    let res = admin(&bootstrap)
        .create_topics(
            [&NewTopic::new("steady", 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create");
    assert!(res.iter().all(|r| r.is_ok()), "{res:?}");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("message.timeout.ms", "120000")
        .create()
        .expect("producer");
    // warm up: the producer knows its partition before the storm starts
    producer
        .send(
            FutureRecord::<(), _>::to("steady").payload("warm"),
            Duration::from_secs(30),
        )
        .await
        .expect("warm-up record");

    let storming = Arc::new(AtomicBool::new(true));
    let steady = {
        let storming = storming.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0u64;
            while storming.load(Ordering::SeqCst) {
                let payload = format!("r{i}");
                let started = Instant::now();
                producer
                    .send(
                        FutureRecord::<(), _>::to("steady").payload(&payload),
                        Duration::from_secs(60),
                    )
                    .await
                    .expect("every record is acknowledged");
                latencies.push(started.elapsed());
                i += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            latencies
        })
    };
    let started = Instant::now();
    let storms: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|client| {
            let names: Vec<String> = (0..per_client)
                .map(|i| format!("storm-{client}-{i}"))
                .collect();
            std::thread::spawn(move || (names.clone(), metadata(port, &names)))
        })
        .collect();
    let mut created = 0;
    for s in storms {
        let (names, resp) = s.join().expect("storm client");
        assert_eq!(resp.topics.len(), names.len());
        for t in &resp.topics {
            assert_eq!(t.error_code, 0, "{:?}", t.name);
            assert_eq!(t.partitions.len(), 1, "{:?}", t.name);
        }
        created += names.len();
    }
    let storm = started.elapsed();
    storming.store(false, Ordering::SeqCst);
    let mut latencies = steady.await.expect("producer task");
    let all = metadata(port, &[]);
    let listed = metadata_all(port);
    assert_eq!(all.topics.len(), 0, "an empty list in v9 names no topics");
    assert_eq!(
        listed,
        created + 1,
        "every topic exists, plus the steady one"
    );
    latencies.sort_unstable();
    println!(
        "topic storm: {created} topics created in {:.1} s; steady producer (acks=all, one record at a time): {} records, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms{}",
        storm.as_secs_f64(),
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        if bin.is_some() { "" } else { " (debug build)" },
    );
}

/// The broker process, killed when the test ends (also when it fails).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How many topics a Metadata request for all topics lists.
fn metadata_all(port: u16) -> usize {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut req = MetadataRequest::default();
    req.topics = None; // all topics
    let resp: MetadataResponse = common::roundtrip(&mut s, 3, 9, 2, &req);
    resp.topics.len()
}
