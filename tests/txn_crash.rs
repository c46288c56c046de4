//! A consume-transform-produce application with a transactional producer and
//! `send_offsets_to_transaction`, while the broker binary is killed with `kill -9` and restarted
//! under it, twice; the application itself also dies mid-transaction twice (it walks away from
//! an open transaction with records written). It restarts itself after any error (a new
//! producer instance fences the old one and aborts its transaction; the consumer resumes from
//! the committed offsets). In the end the output topic, read with read_committed, holds every
//! input record exactly once.

#![allow(clippy::disallowed_methods)] // a test (or benchmark) reads and writes its files directly

mod common;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, FutureProducer, FutureRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const INPUT: usize = 6000;
const PARTITIONS: i32 = 2;
const T: Duration = Duration::from_secs(10);

type Failure = Box<dyn std::error::Error>;

/// One life of the application: from the committed offsets until the input is consumed or
/// something fails. With `die_after`, it abandons its `die_after`-th transaction half-way.
fn run_once(bootstrap: &str, done: &AtomicBool, die_after: Option<usize>) -> Result<(), Failure> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "ctp-app")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "50")
        .create()?;
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", "ctp-app")
        .set("transaction.timeout.ms", "10000")
        .set("message.timeout.ms", "10000")
        .set("linger.ms", "2")
        .create()?;
    producer.init_transactions(T)?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition("ctp-in", p);
    }
    let committed = consumer.committed_offsets(tpl, T)?;
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let mut assign = TopicPartitionList::new();
    for e in committed.elements() {
        let start = match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        };
        next.insert(e.partition(), start);
        assign.add_partition_offset("ctp-in", e.partition(), Offset::Offset(start))?;
    }
    consumer.assign(&assign)?;
    let mut transactions = 0;
    loop {
        if next.values().sum::<i64>() as usize >= INPUT {
            done.store(true, Ordering::SeqCst);
            return Ok(());
        }
        let mut batch = Vec::new();
        let until = Instant::now() + Duration::from_millis(50);
        while batch.len() < 40 && Instant::now() < until {
            if let Some(m) = consumer.poll(Duration::from_millis(10)) {
                let m = m?;
                batch.push((
                    m.partition(),
                    m.offset(),
                    m.payload().unwrap_or_default().to_vec(),
                ));
            }
        }
        if batch.is_empty() {
            continue;
        }
        producer.begin_transaction()?;
        for (p, offset, value) in &batch {
            producer
                .send(
                    BaseRecord::to("ctp-out")
                        .partition(*p)
                        .key(&value[..])
                        .payload(&value[..]),
                )
                .map_err(|(e, _)| e)?;
            next.insert(*p, offset + 1);
        }
        transactions += 1;
        if die_after == Some(transactions) {
            producer.flush(T)?;
            return Err("simulated application crash with a transaction open".into());
        }
        let mut offsets = TopicPartitionList::new();
        for (p, o) in &next {
            offsets.add_partition_offset("ctp-in", *p, Offset::Offset(*o))?;
        }
        producer.send_offsets_to_transaction(
            &offsets,
            &consumer.group_metadata().ok_or("no group metadata")?,
            T,
        )?;
        producer.commit_transaction(T)?;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_transform_produce_survives_kill_9_exactly_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = common::free_port();
    let args = [
        "--num-partitions",
        "2",
        "--transaction-abort-interval-ms",
        "500",
    ];
    let mut broker = common::spawn_binary(dir.path(), port, &args);
    let bootstrap = format!("127.0.0.1:{port}");
    let seed: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let sends: Vec<_> = (0..INPUT)
        .map(|i| {
            let v = format!("rec-{i:05}");
            let seed = seed.clone();
            async move {
                seed.send(
                    FutureRecord::to("ctp-in")
                        .partition((i % 2) as i32)
                        .key(&v)
                        .payload(&v),
                    T,
                )
                .await
                .map_err(|(e, _)| e)
            }
        })
        .collect();
    for r in futures::future::join_all(sends).await {
        r.expect("seeded");
    }

    let done = Arc::new(AtomicBool::new(false));
    let lives = Arc::new(AtomicUsize::new(0));
    let app = {
        let (bootstrap, done, lives) = (bootstrap.clone(), done.clone(), lives.clone());
        tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(180);
            while !done.load(Ordering::SeqCst) {
                assert!(Instant::now() < deadline, "the application never finished");
                let life = lives.fetch_add(1, Ordering::SeqCst);
                let die_after = (life < 2).then_some(20);
                if let Err(e) = run_once(&bootstrap, &done, die_after) {
                    eprintln!("application restarts after: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        })
    };
    for pause in [700u64, 1500] {
        tokio::time::sleep(Duration::from_millis(pause)).await;
        assert!(
            !done.load(Ordering::SeqCst),
            "input too small: the application finished before the crash"
        );
        broker.kill().expect("kill -9");
        broker.wait().expect("reaped");
        tokio::time::sleep(Duration::from_millis(300)).await;
        broker = common::spawn_binary(dir.path(), port, &args);
    }
    app.await.expect("application");
    // librdkafka often rides out a quick broker restart by itself; the simulated application
    // crashes always take a new life
    assert!(lives.load(Ordering::SeqCst) >= 3);

    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "ctp-check")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .expect("reader");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset("ctp-out", p, Offset::Beginning)
            .expect("tpl");
    }
    reader.assign(&tpl).expect("assign");
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut quiet = None;
    while Instant::now() < deadline {
        if seen.values().sum::<usize>() >= INPUT && quiet.is_none() {
            quiet = Some(Instant::now() + Duration::from_secs(1));
        }
        if quiet.is_some_and(|q| Instant::now() > q) {
            break;
        }
        if let Some(m) = reader.poll(Duration::from_millis(50)) {
            let m = m.expect("read");
            let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            *seen.entry(v).or_default() += 1;
        }
    }
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(dups.is_empty(), "duplicates in the output: {dups:?}");
    assert_eq!(seen.len(), INPUT, "every input record in the output");
    broker.kill().expect("kill");
    let _ = broker.wait();
}
