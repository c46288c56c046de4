//! kill -9 the built binary during an acks=all produce stream: after a restart every
//! acknowledged record is at its acknowledged offset and offsets continue without gaps.

#![allow(clippy::disallowed_methods)] // a test (or benchmark) reads and writes its files directly

mod common;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::process::Child;
use std::time::{Duration, Instant};

fn spawn(dir: &std::path::Path, port: u16) -> Child {
    common::spawn_binary(
        dir,
        port,
        &["--log-segment-bytes", "65536", "--num-partitions", "2"],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_acks_all_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = common::free_port();
    let mut broker = spawn(dir.path(), port);
    let bootstrap = format!("127.0.0.1:{port}");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "5000")
        .set("retries", "0")
        .create()
        .expect("producer");

    // keep ~200 sends in flight across 2 partitions; kill the broker mid-stream
    let acked = std::sync::Arc::new(parking_lot::Mutex::new(
        BTreeMap::<(i32, i64), String>::new(),
    ));
    let mut handles = Vec::new();
    let started = Instant::now();
    let mut i = 0u64;
    while started.elapsed() < Duration::from_secs(8) {
        if acked.lock().len() >= 3000 {
            break;
        }
        let payload = format!("record-{i}");
        let part = (i % 2) as i32;
        let p = producer.clone();
        let acked = acked.clone();
        handles.push(tokio::spawn(async move {
            let r = p
                .send(
                    FutureRecord::<(), String>::to("crash")
                        .partition(part)
                        .payload(&payload),
                    Duration::from_secs(5),
                )
                .await;
            if let Ok(d) = r {
                acked.lock().insert((d.partition, d.offset), payload);
            }
        }));
        i += 1;
        if handles.len() % 200 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let acked_at_kill = acked.lock().len();
    broker.kill().expect("kill -9"); // SIGKILL: no clean shutdown
    broker.wait().expect("reaped");
    assert!(
        acked_at_kill >= 3000,
        "killed mid-stream after enough acknowledgements ({acked_at_kill})"
    );
    drop(producer);
    for h in handles {
        let _ = h.await;
    }
    let acked = acked.lock().clone();
    assert!(acked.len() >= 3000);

    // restart on the same data dir: it recovers without the clean-shutdown marker
    let mut broker = spawn(dir.path(), port);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "crash-check")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut ends = BTreeMap::new();
    for part in 0..2 {
        let (low, high) = consumer
            .fetch_watermarks("crash", part, Duration::from_secs(10))
            .expect("watermarks");
        assert_eq!(low, 0);
        ends.insert(part, high);
    }
    let mut tpl = TopicPartitionList::new();
    for part in 0..2 {
        tpl.add_partition_offset("crash", part, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let total: i64 = ends.values().sum();
    let mut seen = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while (seen.len() as i64) < total && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("message");
            let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            seen.insert((m.partition(), m.offset()), v);
        }
    }
    assert_eq!(
        seen.len() as i64,
        total,
        "every offset below the high watermark is readable"
    );
    for part in 0..2 {
        let offsets: Vec<i64> = seen
            .keys()
            .filter(|(p, _)| *p == part)
            .map(|(_, o)| *o)
            .collect();
        assert_eq!(
            offsets,
            (0..ends[&part]).collect::<Vec<_>>(),
            "no gaps in partition {part}"
        );
    }
    for (k, v) in &acked {
        assert_eq!(
            seen.get(k),
            Some(v),
            "acknowledged record at {k:?} survived kill -9"
        );
    }
    // offsets continue where the recovered log ends
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .create()
        .expect("producer");
    let d = producer
        .send(
            FutureRecord::<(), str>::to("crash")
                .partition(0)
                .payload("after"),
            Duration::from_secs(10),
        )
        .await
        .expect("produce after restart");
    assert_eq!(d.offset, ends[&0]);
    broker.kill().expect("kill");
    let _ = broker.wait();
}
