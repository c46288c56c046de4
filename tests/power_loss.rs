//! Power-loss tests: the built broker runs with its data dir on a FUSE file system that forgets
//! everything not fsynced when the test cuts the power (`tests/powerloss/`). The broker is
//! killed with SIGKILL mid-work, the power is cut, the broker restarts on what is left, and real
//! clients (librdkafka) check the promises:
//! - every acks=all record whose delivery was acknowledged is read back at its offset, in order;
//! - offsets a synchronous commit acknowledged are fetched back;
//! - a transaction whose commit returned OK is entirely visible to a `read_committed` reader.
//!
//! Each promise is also shown to fail when the broker skips the fsync it rests on (the
//! test-only `TIERCEL_UNSAFE_SKIP_FSYNC`): the same scenario then loses what it acknowledged, so
//! these tests can see a missing fsync. The file system's own rules are tested in
//! `power_loss_fs.rs`.
//!
//! Mounting needs /dev/fuse and root: the tests that mount are `#[ignore]`d and CI runs them
//! with `cargo test --test power_loss -- --ignored`.

#![allow(clippy::disallowed_methods)] // a test (or benchmark) reads and writes its files directly

mod common;
mod powerloss;

use powerloss::broker::{self, consumer, from_start, poll_until, Broker};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---- the broker's promises ----

const PARTITIONS: i32 = 2;
/// acks=all records acknowledged before the broker is killed.
const MIN_ACKED: usize = 1500;

struct Produced {
    acked: BTreeMap<(i32, i64), Vec<u8>>,
    read: BTreeMap<(i32, i64), Vec<u8>>,
    ends: BTreeMap<i32, i64>,
}

impl Produced {
    /// Acknowledged records not read back at their offset with their contents.
    fn lost(&self) -> usize {
        self.acked
            .iter()
            .filter(|(k, v)| self.read.get(k) != Some(v))
            .count()
    }
}

fn payload(part: i32, seq: usize) -> Vec<u8> {
    format!("p{part}-{seq:07}-{}", "x".repeat(180)).into_bytes()
}

/// acks=all records on 2 partitions (64 KiB segments: rolls, index files, snapshots and
/// directory syncs happen), `kill -9` while sends are in flight, power cut, restart, read back.
async fn produce_through_power_loss(skip_fsync: Option<&str>) -> Produced {
    let fs = broker::mount();
    let port = common::free_port();
    let extra = ["--log-segment-bytes", "65536", "--num-partitions", "2"];
    let mut broker = Broker::start(&fs, port, skip_fsync, &extra);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "5000")
        .set("retries", "0")
        .create()
        .expect("producer");
    let acked = Arc::new(parking_lot::Mutex::new(BTreeMap::new()));
    let in_flight = Arc::new(tokio::sync::Semaphore::new(200));
    let finished = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut sent = 0usize;
    while acked.lock().len() < MIN_ACKED {
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "too slow: {} acknowledged\n{}",
            acked.lock().len(),
            broker.log_tail()
        );
        let permit = in_flight.clone().acquire_owned().await.expect("semaphore");
        let part = (sent % 2) as i32;
        let value = payload(part, sent / 2);
        // enqueued here, in order; its delivery report is awaited on a task of its own
        let record = FutureRecord::<(), [u8]>::to("acked")
            .partition(part)
            .payload(&value);
        let delivery = match producer.send_result(record) {
            Ok(d) => d,
            Err((e, _)) => panic!("enqueue: {e}"),
        };
        let (acked, finished) = (acked.clone(), finished.clone());
        tokio::spawn(async move {
            if let Ok(Ok(d)) = delivery.await {
                acked.lock().insert((d.partition, d.offset), value);
            }
            finished.fetch_add(1, Ordering::SeqCst);
            drop(permit);
        });
        sent += 1;
    }
    let pending = sent - finished.load(Ordering::SeqCst);
    broker.power_cut(
        &fs,
        &format!("produce (skip {skip_fsync:?}), {pending} sends in flight"),
    );
    assert!(
        pending > 0,
        "the broker died while the producer was producing"
    );
    drop(producer);
    let _ = in_flight.acquire_many(200).await; // every send has its outcome
    let acked = acked.lock().clone();

    // a new port: a client of the dead broker still retrying cannot reach this one
    let broker = Broker::start(&fs, common::free_port(), skip_fsync, &extra);
    let c = consumer(&broker.bootstrap(), "power-loss-check", "read_uncommitted");
    let mut ends = BTreeMap::new();
    for p in 0..PARTITIONS {
        let (_, high) = c
            .fetch_watermarks("acked", p, Duration::from_secs(10))
            .unwrap_or((0, 0));
        ends.insert(p, high);
    }
    let total: i64 = ends.values().sum();
    let limit = Duration::from_secs(if skip_fsync.is_some() { 5 } else { 30 });
    from_start(&c, "acked", PARTITIONS);
    let mut read = BTreeMap::new();
    poll_until(&c, &mut read, limit, |s| s.len() as i64 >= total);
    Produced { acked, read, ends }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs /dev/fuse and root: cargo test --test power_loss -- --ignored"]
async fn acknowledged_records_survive_power_loss() {
    let r = produce_through_power_loss(None).await;
    assert!(r.acked.len() >= MIN_ACKED, "{} acknowledged", r.acked.len());
    assert_eq!(
        r.lost(),
        0,
        "acknowledged records lost to the power cut (of {})",
        r.acked.len()
    );
    for p in 0..PARTITIONS {
        // every offset up to the high watermark, in the order produced
        let offsets: Vec<i64> = r.read.keys().filter(|k| k.0 == p).map(|k| k.1).collect();
        assert_eq!(
            offsets,
            (0..r.ends[&p]).collect::<Vec<_>>(),
            "no gaps in partition {p}"
        );
        let seqs: Vec<Option<&[u8]>> = r
            .read
            .iter()
            .filter(|(k, _)| k.0 == p)
            .map(|(_, v)| v.get(..11))
            .collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "partition {p} is in the order produced"
        );
    }
    eprintln!(
        "{} acknowledged, all read back ({:?} records on the log)",
        r.acked.len(),
        r.ends
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs /dev/fuse and root: cargo test --test power_loss -- --ignored"]
async fn skipping_the_segment_fsync_loses_acknowledged_records() {
    let r = produce_through_power_loss(Some("segment")).await;
    let lost = r.lost();
    eprintln!(
        "TIERCEL_UNSAFE_SKIP_FSYNC=segment: {lost} of {} acknowledged records lost (log ends after the power cut: {:?})",
        r.acked.len(),
        r.ends
    );
    assert!(
        lost > 0,
        "the power-loss test must see a missing segment fsync"
    );
}

/// Synchronous commits of ever larger offsets (partition 1 always twice partition 0's, in one
/// request) until `kill -9` cuts them off; returns (last acknowledged, last attempted, fetched
/// back after the power cut).
fn commit_through_power_loss(skip_fsync: Option<&str>) -> (i64, i64, Option<(i64, i64)>) {
    let fs = broker::mount();
    let port = common::free_port();
    let mut broker = Broker::start(&fs, port, skip_fsync, &["--num-partitions", "2"]);
    let bootstrap = broker.bootstrap();
    let seed: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("producer");
    seed.send(
        BaseRecord::<(), str>::to("committed")
            .partition(0)
            .payload("x"),
    )
    .expect("send");
    seed.flush(Duration::from_secs(10)).expect("topic created");
    let (acked, attempted) = (Arc::new(AtomicI64::new(0)), Arc::new(AtomicI64::new(0)));
    let committer = {
        let (acked, attempted, bootstrap) = (acked.clone(), attempted.clone(), bootstrap.clone());
        std::thread::spawn(move || {
            let c = consumer(&bootstrap, "power-loss-group", "read_uncommitted");
            for i in 1.. {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition_offset("committed", 0, Offset::Offset(i))
                    .expect("tpl");
                tpl.add_partition_offset("committed", 1, Offset::Offset(2 * i))
                    .expect("tpl");
                attempted.store(i, Ordering::SeqCst);
                if c.commit(&tpl, CommitMode::Sync).is_err() {
                    break;
                }
                acked.store(i, Ordering::SeqCst);
            }
            std::mem::forget(c);
        })
    };
    // enough commits that the journal also rewrote itself (past 1000 records)
    let started = Instant::now();
    while acked.load(Ordering::SeqCst) < 700 {
        assert!(
            !committer.is_finished(),
            "commits failed early\n{}",
            broker.log_tail()
        );
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "too slow: {} commits",
            acked.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    broker.power_cut(&fs, &format!("commits (skip {skip_fsync:?})"));
    // the committer now waits on a commit to the dead broker for good (librdkafka retries a
    // synchronous commit until a coordinator answers): it is left behind, and the restarted
    // broker listens elsewhere so that commit never lands after the power cut
    std::thread::sleep(Duration::from_millis(100));
    let (acked, attempted) = (
        acked.load(Ordering::SeqCst),
        attempted.load(Ordering::SeqCst),
    );

    // a new port: a client of the dead broker still retrying cannot reach this one
    let broker = Broker::start(
        &fs,
        common::free_port(),
        skip_fsync,
        &["--num-partitions", "2"],
    );
    let c = consumer(&broker.bootstrap(), "power-loss-group", "read_uncommitted");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("committed", 0);
    tpl.add_partition("committed", 1);
    let got = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("OffsetFetch");
    let offset = |p: i32| match got.find_partition("committed", p).map(|e| e.offset()) {
        Some(Offset::Offset(o)) => Some(o),
        _ => None,
    };
    let fetched = offset(0).zip(offset(1));
    std::mem::forget(c);
    (acked, attempted, fetched)
}

#[test]
#[ignore = "needs /dev/fuse and root: cargo test --test power_loss -- --ignored"]
fn committed_offsets_survive_power_loss() {
    let (acked, attempted, fetched) = commit_through_power_loss(None);
    eprintln!("commits: {acked} acknowledged, {attempted} attempted, fetched back {fetched:?}");
    let (p0, p1) = fetched.expect("committed offsets after the power cut");
    assert!(
        (acked..=attempted).contains(&p0),
        "{p0} not in {acked}..={attempted}"
    );
    assert_eq!(p1, 2 * p0, "both partitions of one commit, together");
}

#[test]
#[ignore = "needs /dev/fuse and root: cargo test --test power_loss -- --ignored"]
fn skipping_the_journal_fsync_loses_committed_offsets() {
    let (acked, _, fetched) = commit_through_power_loss(Some("journal"));
    eprintln!(
        "TIERCEL_UNSAFE_SKIP_FSYNC=journal: {acked} commits acknowledged, fetched back {fetched:?}"
    );
    assert!(
        fetched.is_none_or(|(p0, _)| p0 < acked),
        "the power-loss test must see a missing journal fsync"
    );
}

const TXN_RECORDS: usize = 20;

/// Transactions of 20 records over 2 partitions, one after the other, until `kill -9` cuts the
/// producer off (a transaction open or committing); returns the transactions whose commit
/// returned OK and, per transaction, the records a read_committed reader sees after the power
/// cut.
fn transact_through_power_loss(skip_fsync: Option<&str>) -> (Vec<usize>, BTreeMap<usize, usize>) {
    let fs = broker::mount();
    let port = common::free_port();
    let extra = [
        "--num-partitions",
        "2",
        "--log-segment-bytes",
        "65536",
        "--transaction-abort-interval-ms",
        "500",
    ];
    let mut broker = Broker::start(&fs, port, skip_fsync, &extra);
    let bootstrap = broker.bootstrap();
    let committed = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let worker = {
        let (committed, bootstrap) = (committed.clone(), bootstrap.clone());
        std::thread::spawn(move || {
            let p: BaseProducer = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("transactional.id", "power-loss-txn")
                .set("transaction.timeout.ms", "4000")
                .set("message.timeout.ms", "4000")
                .set("linger.ms", "1")
                .create()
                .expect("producer");
            let t = Duration::from_secs(4);
            p.init_transactions(t).expect("init_transactions");
            for txn in 0.. {
                let run = || -> Result<(), Box<dyn std::error::Error>> {
                    p.begin_transaction()?;
                    for i in 0..TXN_RECORDS {
                        let v = format!("t{txn:05}-r{i:02}");
                        p.send(
                            BaseRecord::<(), str>::to("txn")
                                .partition((i % 2) as i32)
                                .payload(&v),
                        )
                        .map_err(|(e, _)| e)?;
                    }
                    Ok(p.commit_transaction(t)?)
                };
                if run().is_err() {
                    break;
                }
                committed.lock().push(txn);
            }
            std::mem::forget(p);
        })
    };
    let started = Instant::now();
    while committed.lock().len() < 40 {
        assert!(
            !worker.is_finished(),
            "transactions failed early\n{}",
            broker.log_tail()
        );
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "too slow: {} transactions",
            committed.lock().len()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    broker.power_cut(&fs, &format!("transactions (skip {skip_fsync:?})"));
    drop(worker); // its calls time out against the dead broker; the restarted one listens elsewhere
    std::thread::sleep(Duration::from_millis(100));
    let committed = committed.lock().clone();

    // a new port: a client of the dead broker still retrying cannot reach this one
    let broker = Broker::start(&fs, common::free_port(), skip_fsync, &extra);
    let c = consumer(
        &broker.bootstrap(),
        "power-loss-txn-check",
        "read_committed",
    );
    let want = committed.len() * TXN_RECORDS;
    let limit = Duration::from_secs(if skip_fsync.is_some() { 5 } else { 30 });
    from_start(&c, "txn", PARTITIONS);
    let mut seen = BTreeMap::new();
    poll_until(&c, &mut seen, limit, |s| s.len() >= want);
    // whatever else is visible (the transaction the kill cut off, if it committed) shows up now
    poll_until(&c, &mut seen, Duration::from_secs(1), |_| false);
    let mut per_txn: BTreeMap<usize, usize> = BTreeMap::new();
    let mut distinct = BTreeSet::new();
    for v in seen.values() {
        let s = String::from_utf8_lossy(v);
        assert!(distinct.insert(s.clone().into_owned()), "{s} read twice");
        let txn = s
            .get(1..6)
            .and_then(|n| n.parse().ok())
            .expect("a transaction's record");
        *per_txn.entry(txn).or_default() += 1;
    }
    (committed, per_txn)
}

#[test]
#[ignore = "needs /dev/fuse and root: cargo test --test power_loss -- --ignored"]
fn committed_transactions_survive_power_loss() {
    let (committed, per_txn) = transact_through_power_loss(None);
    eprintln!(
        "{} transactions committed; visible after the power cut: {}",
        committed.len(),
        per_txn.len()
    );
    for txn in &committed {
        assert_eq!(
            per_txn.get(txn),
            Some(&TXN_RECORDS),
            "committed transaction {txn} entirely visible"
        );
    }
    for (txn, n) in &per_txn {
        assert_eq!(*n, TXN_RECORDS, "transaction {txn} is all or nothing");
    }
}

#[test]
#[ignore = "needs /dev/fuse and root: cargo test --test power_loss -- --ignored"]
fn skipping_the_segment_fsync_loses_committed_transactions() {
    let (committed, per_txn) = transact_through_power_loss(Some("segment"));
    let lost = committed
        .iter()
        .filter(|t| per_txn.get(t) != Some(&TXN_RECORDS))
        .count();
    eprintln!(
        "TIERCEL_UNSAFE_SKIP_FSYNC=segment: {lost} of {} committed transactions not visible",
        committed.len()
    );
    assert!(
        lost > 0,
        "the power-loss test must see a missing segment fsync"
    );
}

/// InitProducerId for a transactional id, answered by a broker that has just created its data
/// dir and journals, with nothing else written that might sync them.
fn init_producer_id(bootstrap: &str, transactional_id: &str) -> (i64, i16) {
    use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};
    use kafka_protocol::protocol::StrBytes;
    let mut s = std::net::TcpStream::connect(bootstrap).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut req = InitProducerIdRequest::default();
    req.transactional_id = Some(StrBytes::from_string(transactional_id.to_string()).into());
    req.transaction_timeout_ms = 60_000;
    req.producer_id = (-1).into();
    req.producer_epoch = -1;
    let resp: InitProducerIdResponse = common::roundtrip(&mut s, 22, 4, 1, &req);
    assert_eq!(resp.error_code, 0, "InitProducerId for {transactional_id}");
    (resp.producer_id.0, resp.producer_epoch)
}

#[test]
#[ignore = "needs /dev/fuse and root: cargo test --test power_loss -- --ignored"]
fn a_fresh_broker_keeps_the_producer_ids_it_handed_out() {
    // the data dir, catalog and journals come into being at start-up: the answer to
    // InitProducerId rests on all of their names being durable
    let fs = broker::mount();
    let mut first = Broker::start(&fs, common::free_port(), None, &[]);
    let (pid, epoch) = init_producer_id(&first.bootstrap(), "power-loss-fresh");
    first.power_cut(&fs, "fresh broker after InitProducerId");
    let second = Broker::start(&fs, common::free_port(), None, &[]);
    let (again, next_epoch) = init_producer_id(&second.bootstrap(), "power-loss-fresh");
    assert_eq!(again, pid, "the transactional id keeps its producer id");
    assert!(
        next_epoch > epoch,
        "its epoch moves on ({epoch} then {next_epoch}), fencing the producer from before"
    );
    let (other, _) = init_producer_id(&second.bootstrap(), "power-loss-other");
    assert_ne!(other, pid, "a producer id is never handed out twice");
}
