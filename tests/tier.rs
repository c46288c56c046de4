//! Tiered storage end to end with a real client: tens of MB through 1 MiB segments into the
//! embedded tier (a directory beside the data dir), local disk bounded by local retention, every
//! record read back from offset 0, and a wiped data dir recovered from the bucket (everything
//! that was tiered; the active segment was only ever local).

#![allow(clippy::disallowed_methods)] // a test (or benchmark) reads and writes its files directly

mod common;

use common::{admin, dir_bytes, TestBroker};
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::producer::FutureRecord;
use std::time::{Duration, Instant};

const RECORDS: usize = 24_000;
const VALUE: usize = 1024;

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

fn watermarks(b: &TestBroker, topic: &str) -> (i64, i64) {
    use rdkafka::consumer::Consumer;
    b.consumer()
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .expect("watermarks")
}

/// DeleteRecords through the API into the history that only the bucket holds, then the data
/// dir is lost: the broker rebuilt from the bucket keeps the deleted records deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_into_the_bucket_holds_after_the_data_dir_is_lost() {
    use rdkafka::{Message, Offset, TopicPartitionList};
    let b = TestBroker::start_with(tweak).await;
    common::create_topic_with(
        &b,
        "trimmed",
        1,
        &[("segment.bytes", "4096"), ("local.retention.bytes", "0")],
    )
    .await;
    let p = b.producer(&[("linger.ms", "0")]);
    for i in 0..200 {
        p.send(
            FutureRecord::<(), String>::to("trimmed").payload(&format!("{i:0>100}")),
            Duration::from_secs(10),
        )
        .await
        .expect("acked");
    }
    let bucket = b.dir.path().join("data.tier");
    let data = b.dir.path().join("data").join("trimmed-0");
    let deadline = Instant::now() + Duration::from_secs(30);
    // closed segments uploaded and gone from local disk: offset 51 lives only in the bucket
    while dir_bytes(&bucket, "log").1 < 5 || dir_bytes(&data, "log").1 > 2 {
        assert!(Instant::now() < deadline, "segments did not tier out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("trimmed", 0, Offset::Offset(51))
        .expect("tpl");
    let res = admin(&b.bootstrap())
        .delete_records(&tpl, &AdminOptions::new())
        .await
        .expect("delete_records");
    assert!(res.elements_for_topic("trimmed")[0].error().is_ok());
    assert_eq!(watermarks(&b, "trimmed"), (51, 200));

    let dir = b.stop().await;
    std::fs::remove_dir_all(dir.path().join("data")).expect("wipe data dir");
    let b = TestBroker::start_in(dir, tweak).await;
    let (low, high) = watermarks(&b, "trimmed");
    assert_eq!(low, 51, "the deleted records stay deleted");
    assert!(high > 51, "the history after them is back: {high}");
    let got = b.consume("trimmed", 1, (high - 51) as usize);
    assert_eq!(got[0].offset(), 51);
    assert_eq!(got[0].payload(), Some(format!("{:0>100}", 51).as_bytes()));
    b.stop().await;
}

/// What a crash in the middle of a topic deletion leaves behind is cleaned up at the next
/// start: a partition directory already moved aside and the objects of a topic the catalog no
/// longer has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftovers_of_an_interrupted_topic_deletion_are_removed_at_start_up() {
    let b = TestBroker::start_with(tweak).await;
    common::create_topic_with(&b, "kept", 1, &[("segment.bytes", "4096")]).await;
    let p = b.producer(&[("linger.ms", "0")]);
    for i in 0..100 {
        p.send(
            FutureRecord::<(), String>::to("kept").payload(&format!("{i:0>100}")),
            Duration::from_secs(10),
        )
        .await
        .expect("acked");
    }
    let bucket = b.dir.path().join("data.tier");
    let deadline = Instant::now() + Duration::from_secs(30);
    while dir_bytes(&bucket, "log").1 < 2 {
        assert!(Instant::now() < deadline, "segments did not tier out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dir = b.stop().await;
    // a partition directory moved aside by a deletion the crash cut short, and the objects of
    // a deleted topic whose removal never ran
    let aside = dir
        .path()
        .join("data")
        .join("gone-0.0123456789abcdef0123456789abcdef-delete");
    std::fs::create_dir_all(&aside).expect("mkdir");
    std::fs::write(aside.join("00000000000000000000.log"), b"old").expect("write");
    let orphan = dir
        .path()
        .join("data.tier/topics/gone-0123456789abcdef0123456789abcdef/0");
    std::fs::create_dir_all(&orphan).expect("mkdir");
    std::fs::write(orphan.join("00000000000000000000.log"), b"old").expect("write");

    let b = TestBroker::start_in(dir, tweak).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while aside.exists() || orphan.exists() {
        assert!(
            Instant::now() < deadline,
            "leftovers remain: aside {}, orphan {}",
            aside.exists(),
            orphan.exists()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // the live topic is untouched
    assert_eq!(watermarks(&b, "kept"), (0, 100));
    assert!(dir_bytes(&b.dir.path().join("data.tier"), "log").1 >= 2);
    b.stop().await;
}
