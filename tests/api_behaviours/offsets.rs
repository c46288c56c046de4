//! ListOffsets' special timestamps (MAX_TIMESTAMP -3, EARLIEST_LOCAL -4) and LogAppendTime
//! topics fed with compressed multi-record batches.

use crate::common::TestBroker;
use crate::util::*;
use kafka_protocol::records::{Compression, TimestampType};
use rdkafka::message::Timestamp;
use rdkafka::producer::FutureRecord;
use rdkafka::Message;

/// OffsetForLeaderEpoch alone: one epoch (0) from the start; a consumer's current epoch is
/// checked as Kafka does (KIP-320).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_for_leader_epoch_answers_from_the_one_epoch() {
    use crate::common::offset_for_leader_epoch as ofle;
    let b = TestBroker::start().await;
    create_topic_with(&b, "epochs", 1, &[]).await;
    for i in 0..3 {
        assert_eq!(produce(&b, "epochs", 0, &[(1000, "v")]), (0, i));
    }
    let addr = b.addr.to_string();
    for v in 2..=4 {
        let (err, epoch, end) = ofle(&addr, "epochs", 0, -1, 0, v);
        assert_eq!((err, epoch), (0, 0), "v{v}");
        assert_eq!(end, 3, "v{v}: the current epoch ends at the log end");
    }
    // a future epoch is unknown to the log: undefined, as Kafka answers
    assert_eq!(ofle(&addr, "epochs", 0, -1, 5, 4), (0, -1, -1));
    // a consumer that believes in a newer leader epoch than the broker's: UNKNOWN_LEADER_EPOCH
    assert_eq!(ofle(&addr, "epochs", 0, 1, 0, 4).0, 75);
    assert_eq!(ofle(&addr, "epochs", 0, 0, 0, 4).0, 0);
    // no such partition
    assert_eq!(ofle(&addr, "epochs", 3, -1, 0, 4).0, 3);
    b.stop().await;
}

const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_timestamp_names_the_record_with_the_newest_timestamp() {
    let b = TestBroker::start().await;
    create_topic_with(&b, "maxts", 1, &[]).await;
    // each record its own batch; the newest timestamp is in the middle
    for (i, ts) in [1000, 9000, 5000].into_iter().enumerate() {
        assert_eq!(produce(&b, "maxts", 0, &[(ts, "v")]), (0, i as i64));
    }
    assert_eq!(list_offsets(&b, "maxts", 0, MAX_TIMESTAMP, 7), (0, 1, 9000));
    assert_eq!(list_offsets(&b, "maxts", 0, MAX_TIMESTAMP, 8), (0, 1, 9000));
    // an equal timestamp later does not move it: the earliest record with the max wins
    assert_eq!(produce(&b, "maxts", 0, &[(9000, "again")]), (0, 3));
    assert_eq!(list_offsets(&b, "maxts", 0, MAX_TIMESTAMP, 7), (0, 1, 9000));
    b.stop().await;
}

/// Kafka 3.8+ (KAFKA-16310, apache/kafka#15621) answers MAX_TIMESTAMP with the offset of the
/// record holding the max timestamp, found inside its batch (not the batch's last offset).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_timestamp_inside_one_batch_names_the_record() {
    let b = TestBroker::start().await;
    create_topic_with(&b, "maxts-batch", 1, &[]).await;
    let batch = [(1000, "a"), (9000, "b"), (5000, "c")];
    assert_eq!(produce(&b, "maxts-batch", 0, &batch), (0, 0));
    let stored = fetch_batches(&b, "maxts-batch", 0, 0);
    assert_eq!(stored.len(), 1, "one batch: {stored:?}");
    assert_eq!(stored[0].record_count, 3);
    assert_eq!(
        list_offsets(&b, "maxts-batch", 0, MAX_TIMESTAMP, 7),
        (0, 1, 9000)
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn earliest_local_is_the_log_start_without_tiering() {
    let b = TestBroker::start().await;
    create_topic_with(&b, "local-only", 1, &[("remote.storage.enable", "false")]).await;
    assert_eq!(
        list_offsets(&b, "local-only", 0, EARLIEST_LOCAL, 8),
        (0, 0, -1)
    );
    for i in 0..5 {
        assert_eq!(produce(&b, "local-only", 0, &[(now_ms(), "v")]), (0, i));
    }
    assert_eq!(list_offsets(&b, "local-only", 0, EARLIEST, 8), (0, 0, -1));
    assert_eq!(
        list_offsets(&b, "local-only", 0, EARLIEST_LOCAL, 8),
        (0, 0, -1)
    );
    // DeleteRecords moves both together
    use rdkafka::admin::AdminOptions;
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("local-only", 0, rdkafka::Offset::Offset(3))
        .expect("tpl");
    crate::common::admin(&b.bootstrap())
        .delete_records(&tpl, &AdminOptions::new())
        .await
        .expect("delete_records");
    assert_eq!(list_offsets(&b, "local-only", 0, EARLIEST, 8), (0, 3, -1));
    assert_eq!(
        list_offsets(&b, "local-only", 0, EARLIEST_LOCAL, 8),
        (0, 3, -1)
    );
    // KIP-1005: a topic that is not tiered has no tiered offset
    assert_eq!(
        list_offsets(&b, "local-only", 0, LATEST_TIERED, 9),
        (0, -1, -1)
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn earliest_local_moves_past_the_log_start_once_segments_are_tiered_out() {
    let b = TestBroker::start_with(|c| c.log_retention_check_interval_ms = 100).await;
    create_topic_with(
        &b,
        "tiered-out",
        1,
        &[("segment.bytes", "1024"), ("local.retention.bytes", "0")],
    )
    .await;
    // nothing uploaded yet: no tiered offset (KIP-1005)
    assert_eq!(
        list_offsets(&b, "tiered-out", 0, LATEST_TIERED, 9),
        (0, -1, -1)
    );
    // current timestamps: older ones would fall to retention.ms (7 days) instead
    let value = "x".repeat(300);
    for i in 0..30 {
        assert_eq!(produce(&b, "tiered-out", 0, &[(now_ms(), &value)]), (0, i));
    }
    // closed segments reach the tier, then local retention deletes the local copies
    let local = eventually(20, "local segments to be deleted", || {
        let (code, local, _) = list_offsets(&b, "tiered-out", 0, EARLIEST_LOCAL, 8);
        assert_eq!(code, 0);
        (local > 0).then_some(local)
    })
    .await;
    assert!(local < 30, "the active segment stays local: {local}");
    // the last offset in the bucket: the local log continues right after it
    let (code, tiered, ts) = list_offsets(&b, "tiered-out", 0, LATEST_TIERED, 10);
    assert_eq!((code, ts), (0, -1));
    assert!(
        tiered + 1 >= local && tiered < 30,
        "latest tiered {tiered}, local start {local}"
    );
    assert_eq!(
        list_offsets(&b, "tiered-out", 0, EARLIEST, 8),
        (0, 0, -1),
        "the log still starts at 0, in the tier"
    );
    assert_eq!(list_offsets(&b, "tiered-out", 0, -1, 8), (0, 30, -1));
    // and offset 0 is still readable, from the tier
    let batches = fetch_batches(&b, "tiered-out", 0, 0);
    assert_eq!(batches.first().map(|h| h.min_offset), Some(0));
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_append_time_stamps_every_record_of_compressed_batches() {
    // the producer's lz4 batches kept as they are, and recompressed to the topic's gzip
    for (topic, compression, stored) in [
        ("lat", "producer", Compression::Lz4),
        ("lat-gzip", "gzip", Compression::Gzip),
    ] {
        log_append_time_over(topic, compression, stored).await;
    }
}

async fn log_append_time_over(topic: &str, compression: &str, stored: Compression) {
    let b = TestBroker::start().await;
    create_topic_with(
        &b,
        topic,
        1,
        &[
            ("message.timestamp.type", "LogAppendTime"),
            ("compression.type", compression),
        ],
    )
    .await;
    let p = b.producer(&[("compression.type", "lz4"), ("linger.ms", "100")]);
    let before = now_ms();
    let mut acks = Vec::new();
    for i in 0..40 {
        let v = format!("value-{i}");
        let rec = FutureRecord::<(), String>::to(topic)
            .partition(0)
            .payload(&v)
            .timestamp(1000 + i);
        acks.push(p.send_result(rec).expect("queued"));
    }
    for a in acks {
        a.await.expect("delivered").expect("acked");
    }
    let after = now_ms();

    // what was stored: batches of several records in the expected codec, marked LogAppendTime
    let batches = fetch_batches(&b, topic, 0, 0);
    assert_eq!(batches.iter().map(|h| h.record_count).sum::<i32>(), 40);
    assert!(batches.iter().any(|h| h.record_count > 1), "{batches:?}");
    for h in &batches {
        assert_eq!(h.compression, stored, "{topic}: {h:?}");
        assert_eq!(h.timestamp_type, TimestampType::LogAppend, "{topic}: {h:?}");
    }
    // what a consumer sees: every record stamped by the broker, none with its create time,
    // the values intact
    let got = blocking({
        let bs = b.bootstrap();
        let topic = topic.to_string();
        move || read_all(&bs, &topic, 40)
    })
    .await;
    assert_eq!(got.len(), 40);
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.payload(), Some(format!("value-{i}").as_bytes()));
        match m.timestamp() {
            Timestamp::LogAppendTime(ts) => assert!(
                (before..=after).contains(&ts),
                "{topic} offset {}: {ts} outside [{before}, {after}]",
                m.offset()
            ),
            other => panic!("{topic} offset {}: {other:?}", m.offset()),
        }
    }
    b.stop().await;
}

/// `n` records from the start of partition 0.
fn read_all(bootstrap: &str, t: &str, n: usize) -> Vec<rdkafka::message::OwnedMessage> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "lat-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(t, 0, rdkafka::Offset::Beginning)
        .expect("tpl");
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while out.len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "read {} of {n}",
            out.len()
        );
        if let Some(m) = c.poll(std::time::Duration::from_millis(50)) {
            out.push(m.expect("consume").detach());
        }
    }
    out
}
