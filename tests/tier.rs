//! Tiered storage end to end with a real client: tens of MB through 1 MiB segments into the
//! embedded tier (a directory beside the data dir), local disk bounded by local retention, every
//! record read back from offset 0, and a wiped data dir recovered from the bucket (everything
//! that was tiered; the active segment was only ever local).

#![allow(clippy::disallowed_methods)] // a test (or benchmark) reads and writes its files directly

mod common;

use common::{admin, TestBroker};
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::producer::FutureRecord;
use std::path::Path;
use std::time::{Duration, Instant};

const RECORDS: usize = 24_000;
const VALUE: usize = 1024;

fn dir_bytes(dir: &Path, ext: &str) -> (u64, usize) {
    let mut total = (0, 0);
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                let (b, n) = dir_bytes(&p, ext);
                total = (total.0 + b, total.1 + n);
            } else if p.extension().is_some_and(|x| x == ext) {
                total.0 += e.metadata().map(|m| m.len()).unwrap_or(0);
                total.1 += 1;
            }
        }
    }
    total
}

fn value(i: usize) -> Vec<u8> {
    let mut v = format!("{i:08}-").into_bytes();
    v.resize(VALUE, b'a' + (i % 26) as u8);
    v
}

fn tweak(c: &mut tiercel::config::Config) {
    c.log_retention_check_interval_ms = 200;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_tier_out_read_back_and_survive_a_lost_data_dir() {
    let b = TestBroker::start_with(tweak).await;
    let topic = NewTopic::new("tiered", 1, TopicReplication::Fixed(1))
        .set("segment.bytes", "1048576")
        .set("local.retention.bytes", "2097152");
    let res = admin(&b.bootstrap())
        .create_topics([&topic], &AdminOptions::new())
        .await
        .expect("create");
    assert!(res.iter().all(|r| r.is_ok()), "{res:?}");

    let producer = b.producer(&[("linger.ms", "20"), ("batch.size", "262144")]);
    let mut acks = Vec::new();
    for i in 0..RECORDS {
        let v = value(i);
        let key = i.to_string();
        let rec = FutureRecord::to("tiered").key(&key).payload(&v);
        acks.push(producer.send_result(rec).expect("queued"));
        if acks.len() >= 2000 {
            for a in acks.drain(..) {
                a.await.expect("delivered").expect("acked");
            }
        }
    }
    for a in acks.drain(..) {
        a.await.expect("delivered").expect("acked");
    }

    let data = b.dir.path().join("data").join("tiered-0");
    let bucket = b.dir.path().join("data.tier");
    // every closed segment reaches the bucket, then local retention trims the local copy
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (local, _) = dir_bytes(&data, "log");
        let (_, remote_segments) = dir_bytes(&bucket, "log");
        if local <= 4 << 20 && remote_segments >= 20 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "local {local} bytes, {remote_segments} remote segments"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (remote_bytes, _) = dir_bytes(&bucket, "log");
    assert!(
        remote_bytes >= 20 << 20,
        "{remote_bytes} bytes in the bucket"
    );

    let check = |b: &TestBroker, count: usize| {
        let got = b.consume("tiered", 1, count);
        for (i, m) in got.iter().enumerate() {
            use rdkafka::Message;
            assert_eq!(m.offset(), i as i64);
            assert_eq!(m.payload(), Some(value(i).as_slice()), "record {i}");
        }
    };
    check(&b, RECORDS);

    // lose the data dir entirely: catalog, segments, everything; keep the bucket
    let dir = b.stop().await;
    std::fs::remove_dir_all(dir.path().join("data")).expect("wipe data dir");
    let b = TestBroker::start_in(dir, tweak).await;
    let bucket = b.dir.path().join("data.tier");
    // what was tiered is all there; only the active segment, never uploaded, went with the disk
    let (low, high) = {
        use rdkafka::consumer::Consumer;
        b.consumer()
            .fetch_watermarks("tiered", 0, Duration::from_secs(10))
            .expect("watermarks")
    };
    assert_eq!(low, 0);
    assert!(
        high >= RECORDS as i64 - 2 * 1024 && high < RECORDS as i64,
        "recovered up to {high}"
    );
    check(&b, high as usize);
    // the log continues after the history in the bucket: offsets are never reused
    let producer = b.producer(&[]);
    let offset = producer
        .send(
            FutureRecord::<str, str>::to("tiered").payload("after"),
            Duration::from_secs(10),
        )
        .await
        .expect("acked")
        .offset;
    assert_eq!(offset, high, "the log continues where the bucket ends");

    // deleting the topic deletes its objects in the background
    let res = admin(&b.bootstrap())
        .delete_topics(&["tiered"], &AdminOptions::new())
        .await
        .expect("delete");
    assert!(res.iter().all(|r| r.is_ok()), "{res:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while dir_bytes(&bucket, "log").1 > 0 || dir_bytes(&bucket, "json").1 > 1 {
        assert!(
            Instant::now() < deadline,
            "remote objects of the deleted topic remain"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.stop().await;
}
