//! The broker in-process, driven by librdkafka (the `rdkafka` crate) over real TCP.

#![allow(clippy::disallowed_methods)] // a test (or benchmark) reads and writes its files directly

mod common;

use common::{admin, TestBroker};
use rdkafka::admin::{AdminOptions, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::consumer::Consumer;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Timestamp, TopicPartitionList};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

async fn create(b: &TestBroker, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    common::create_topic_with(b, name, partitions, configs).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_nulls_and_headers_roundtrip_with_sequential_offsets() {
    let b = TestBroker::start().await;
    let p = b.producer(&[]);
    let mut expected = Vec::new();
    for i in 0..50u32 {
        let key = (i % 3 != 0).then(|| format!("key-{i}"));
        let value = (i % 5 != 0).then(|| format!("value-{i}"));
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "n",
                value: Some(&i.to_be_bytes()),
            })
            .insert(Header {
                key: "empty",
                value: None::<&[u8]>,
            });
        let mut rec = FutureRecord::<String, String>::to("basic")
            .partition(0)
            .headers(headers);
        if let Some(k) = &key {
            rec = rec.key(k);
        }
        if let Some(v) = &value {
            rec = rec.payload(v);
        }
        let d = p.send(rec, T).await.expect("delivered");
        let (part, off) = (d.partition, d.offset);
        assert_eq!(
            (part, off),
            (0, i as i64),
            "offsets are assigned in order without gaps"
        );
        expected.push((key, value, i));
    }
    let got = b.consume("basic", 1, 50);
    for (m, (key, value, i)) in got.iter().zip(expected) {
        assert_eq!(m.offset(), i as i64);
        assert_eq!(
            m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            key
        );
        assert_eq!(
            m.payload().map(|v| String::from_utf8_lossy(v).into_owned()),
            value
        );
        let h = m.headers().expect("headers");
        assert_eq!(h.count(), 2);
        assert_eq!(h.get(0).value, Some(&i.to_be_bytes()[..]));
        assert_eq!(h.get(1).key, "empty");
        assert_eq!(h.get(1).value, None);
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_compression_codec() {
    let b = TestBroker::start().await;
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        let p = b.producer(&[("compression.type", codec), ("linger.ms", "50")]);
        let futures: Vec<_> = (0..200)
            .map(|i| {
                let payload = format!("{codec} record {i} {}", "x".repeat(i % 50));
                let p = p.clone();
                let topic = topic.clone();
                async move {
                    p.send(FutureRecord::<(), String>::to(&topic).payload(&payload), T)
                        .await
                        .map(|d| d.offset)
                }
            })
            .collect();
        let mut offsets: Vec<i64> = futures::future::join_all(futures)
            .await
            .into_iter()
            .map(|r| r.expect("delivered"))
            .collect();
        offsets.sort_unstable();
        assert_eq!(offsets, (0..200).collect::<Vec<i64>>());
        let got = b.consume(&topic, 1, 200);
        let mut payloads: Vec<String> = got
            .iter()
            .map(|m| String::from_utf8_lossy(m.payload().expect("payload")).into_owned())
            .collect();
        payloads.sort();
        let mut want: Vec<String> = (0..200)
            .map(|i| format!("{codec} record {i} {}", "x".repeat(i % 50)))
            .collect();
        want.sort();
        assert_eq!(payloads, want, "codec {codec}");
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_near_max_message_bytes() {
    let b = TestBroker::start().await;
    create(&b, "big", 1, &[("max.message.bytes", "200000")]).await;
    // the client would refuse oversized messages itself; let it send so the broker decides
    let p = b.producer(&[
        ("message.max.bytes", "10000000"),
        ("compression.type", "none"),
        ("linger.ms", "0"),
    ]);
    let fits = vec![b'a'; 199_000];
    let off = p
        .send(FutureRecord::<(), Vec<u8>>::to("big").payload(&fits), T)
        .await
        .expect("a batch under max.message.bytes is accepted")
        .offset;
    assert_eq!(off, 0);
    let too_big = vec![b'b'; 201_000];
    let err = p
        .send(FutureRecord::<(), Vec<u8>>::to("big").payload(&too_big), T)
        .await
        .expect_err("a batch over max.message.bytes is refused");
    assert_eq!(
        err.0.rdkafka_error_code(),
        Some(RDKafkaErrorCode::MessageSizeTooLarge),
        "{err:?}"
    );
    let got = b.consume("big", 1, 1);
    assert_eq!(got[0].payload().map(|p| p.len()), Some(199_000));
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_partitions() {
    let b = TestBroker::start().await;
    create(&b, "wide", 100, &[]).await;
    let p = b.producer(&[]);
    let futures: Vec<_> = (0..100)
        .flat_map(|part| (0..3).map(move |i| (part, i)))
        .map(|(part, i)| {
            let p = p.clone();
            async move {
                let payload = format!("{part}:{i}");
                p.send(
                    FutureRecord::<(), String>::to("wide")
                        .partition(part)
                        .payload(&payload),
                    T,
                )
                .await
                .map(|d| (d.partition, d.offset))
            }
        })
        .collect();
    for r in futures::future::join_all(futures).await {
        let (part, off) = r.expect("delivered");
        assert!((0..100).contains(&part) && (0..3).contains(&off));
    }
    let got = b.consume("wide", 100, 300);
    for m in &got {
        let s = String::from_utf8_lossy(m.payload().expect("payload")).into_owned();
        assert_eq!(s, format!("{}:{}", m.partition(), m.offset()));
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_append_time_topic_stamps_broker_time() {
    let b = TestBroker::start().await;
    create(&b, "lat", 1, &[("message.timestamp.type", "LogAppendTime")]).await;
    let p = b.producer(&[]);
    let before = now_ms();
    p.send(
        FutureRecord::<(), str>::to("lat")
            .payload("x")
            .timestamp(1_000),
        T,
    )
    .await
    .expect("delivered");
    let after = now_ms();
    let got = b.consume("lat", 1, 1);
    match got[0].timestamp() {
        Timestamp::LogAppendTime(ts) => {
            assert!(before <= ts && ts <= after, "{before} <= {ts} <= {after}")
        }
        other => panic!("expected LogAppendTime, got {other:?}"),
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_by_timestamp() {
    let b = TestBroker::start().await;
    let p = b.producer(&[("linger.ms", "0")]);
    for (i, ts) in [1_000i64, 2_000, 3_000, 4_000].iter().enumerate() {
        let off = p
            .send(
                FutureRecord::<(), str>::to("times")
                    .payload("v")
                    .timestamp(*ts),
                T,
            )
            .await
            .expect("delivered")
            .offset;
        assert_eq!(off, i as i64);
    }
    // one batch holding several timestamps: the lookup must find the record, not the batch
    let p2 = b.producer(&[("linger.ms", "200")]);
    let sends: Vec<_> = [5_000i64, 6_000, 7_000]
        .iter()
        .map(|ts| {
            p2.send(
                FutureRecord::<(), str>::to("times")
                    .payload("w")
                    .timestamp(*ts),
                T,
            )
        })
        .collect();
    for r in futures::future::join_all(sends).await {
        r.expect("delivered");
    }
    let c = b.consumer();
    for (ts, want) in [
        (0i64, 0i64),
        (1_000, 0),
        (1_500, 1),
        (4_000, 3),
        (6_000, 5),
        (6_500, 6),
        (7_000, 6),
    ] {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("times", 0, rdkafka::Offset::Offset(ts))
            .expect("tpl");
        let r = c.offsets_for_times(tpl, T).expect("offsets_for_times");
        let got = r.find_partition("times", 0).expect("partition").offset();
        assert_eq!(got, rdkafka::Offset::Offset(want), "timestamp {ts}");
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("times", 0, rdkafka::Offset::Offset(99_000))
        .expect("tpl");
    let r = c.offsets_for_times(tpl, T).expect("offsets_for_times");
    assert_eq!(
        r.find_partition("times", 0).expect("p").offset(),
        rdkafka::Offset::End
    );
    let (low, high) = c.fetch_watermarks("times", 0, T).expect("watermarks");
    assert_eq!((low, high), (0, 7));
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_create_describe_grow_delete() {
    let b = TestBroker::start().await;
    let a = admin(&b.bootstrap());
    let opts = AdminOptions::new();
    create(&b, "adm", 2, &[("retention.ms", "123456")]).await;
    // duplicates, bad names and bad replication factors get Kafka's errors
    let res = a
        .create_topics(
            [
                &NewTopic::new("adm", 1, TopicReplication::Fixed(1)),
                &NewTopic::new("bad name!", 1, TopicReplication::Fixed(1)),
                &NewTopic::new("rf3", 1, TopicReplication::Fixed(3)),
                &NewTopic::new("badcfg", 1, TopicReplication::Fixed(1)).set("no.such.config", "1"),
            ],
            &opts,
        )
        .await
        .expect("create_topics");
    let codes: Vec<RDKafkaErrorCode> = res
        .iter()
        .map(|r| r.as_ref().expect_err("fails").1)
        .collect();
    assert_eq!(
        codes,
        vec![
            RDKafkaErrorCode::TopicAlreadyExists,
            RDKafkaErrorCode::InvalidTopic,
            RDKafkaErrorCode::InvalidReplicationFactor,
            RDKafkaErrorCode::InvalidConfig,
        ]
    );
    // validate-only creates nothing
    let res = a
        .create_topics(
            [&NewTopic::new("dry", 1, TopicReplication::Fixed(1))],
            &AdminOptions::new().validate_only(true),
        )
        .await
        .expect("validate");
    assert!(res[0].is_ok());
    let md = b.consumer().fetch_metadata(None, T).expect("metadata");
    let names: Vec<&str> = md.topics().iter().map(|t| t.name()).collect();
    assert!(
        names.contains(&"adm") && !names.contains(&"dry"),
        "{names:?}"
    );

    let cfg = a
        .describe_configs([&ResourceSpecifier::Topic("adm")], &opts)
        .await
        .expect("describe");
    let res = cfg[0].as_ref().expect("resource");
    let get = |n: &str| res.entries.iter().find(|e| e.name == n).expect(n);
    assert_eq!(get("retention.ms").value.as_deref(), Some("123456"));
    assert!(!get("retention.ms").is_default);
    assert_eq!(get("segment.bytes").value.as_deref(), Some("1073741824"));
    assert!(get("segment.bytes").is_default);
    let bc = a
        .describe_configs([&ResourceSpecifier::Broker(0)], &opts)
        .await
        .expect("describe broker");
    let bres = bc[0].as_ref().expect("broker resource");
    assert!(bres
        .entries
        .iter()
        .any(|e| e.name == "num.partitions" && e.value.as_deref() == Some("1")));

    let grown = a
        .create_partitions([&NewPartitions::new("adm", 5)], &opts)
        .await
        .expect("create partitions");
    assert!(grown[0].is_ok(), "{grown:?}");
    let shrink = a
        .create_partitions([&NewPartitions::new("adm", 3)], &opts)
        .await
        .expect("create partitions");
    assert_eq!(
        shrink[0].as_ref().expect_err("cannot shrink").1,
        RDKafkaErrorCode::InvalidPartitions
    );
    let md = b
        .consumer()
        .fetch_metadata(Some("adm"), T)
        .expect("metadata");
    assert_eq!(md.topics()[0].partitions().len(), 5);
    // the new partitions take writes
    b.producer(&[])
        .send(
            FutureRecord::<(), str>::to("adm")
                .partition(4)
                .payload("p4"),
            T,
        )
        .await
        .expect("produce to new partition");

    let del = a
        .delete_topics(&["adm", "nope"], &opts)
        .await
        .expect("delete");
    assert!(del[0].is_ok());
    assert_eq!(
        del[1].as_ref().expect_err("unknown").1,
        RDKafkaErrorCode::UnknownTopicOrPartition
    );
    // a topic re-created under the same name starts empty
    create(&b, "adm", 1, &[]).await;
    let (low, high) = b
        .consumer()
        .fetch_watermarks("adm", 0, T)
        .expect("watermarks");
    assert_eq!((low, high), (0, 0));
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_clean_restart() {
    let b = TestBroker::start_with(|c| c.log_segment_bytes = 4096).await;
    let p = b.producer(&[("linger.ms", "0")]);
    for i in 0..100 {
        let v = format!("{i:0>200}");
        p.send(FutureRecord::<(), String>::to("restart").payload(&v), T)
            .await
            .expect("delivered");
    }
    drop(p);
    let dir = b.stop().await;
    let segments = std::fs::read_dir(dir.path().join("data").join("restart-0"))
        .expect("dir")
        .filter(|e| {
            e.as_ref()
                .map(|e| e.path().extension().is_some_and(|x| x == "log"))
                .unwrap_or(false)
        })
        .count();
    assert!(segments > 3, "small segments rolled: {segments}");
    let b = TestBroker::start_in(dir, |c| c.log_segment_bytes = 4096).await;
    let got = b.consume("restart", 1, 100);
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.offset(), i as i64);
        assert_eq!(m.payload(), Some(format!("{i:0>200}").as_bytes()));
    }
    let off = b
        .producer(&[])
        .send(FutureRecord::<(), str>::to("restart").payload("next"), T)
        .await
        .expect("delivered")
        .offset;
    assert_eq!(off, 100, "offsets continue after restart");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_size_deletes_old_segments() {
    let b = TestBroker::start_with(|c| {
        c.log_segment_bytes = 2048;
        c.log_retention_check_interval_ms = 100;
    })
    .await;
    create(&b, "ret", 1, &[("retention.bytes", "4096")]).await;
    let p = b.producer(&[("linger.ms", "0")]);
    for i in 0..60 {
        let v = format!("{i:0>300}");
        p.send(FutureRecord::<(), String>::to("ret").payload(&v), T)
            .await
            .expect("delivered");
    }
    let c = b.consumer();
    // uploads and retention passes run in the background: the log start moves in steps, so
    // wait for it to get past the deleted segments rather than stop at its first move
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut low = 0;
    while std::time::Instant::now() < deadline {
        low = c.fetch_watermarks("ret", 0, T).expect("watermarks").0;
        if low > 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        low > 30,
        "log start offset moved past deleted segments: {low}"
    );
    b.stop().await;
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// End to end under injected faults: no duplicates, no gaps. Whether a fault lands while a
/// batch is appended but unacknowledged is a matter of timing, so this is a safety net; the
/// deduplication rules themselves are pinned by the unit tests in `log::producer` and
/// `log::partition` (including across an unclean restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_survives_connection_drops_without_duplicates_or_gaps() {
    let proxy = common::CuttingProxy::start().await;
    let advertised = proxy.addr.to_string();
    let b = TestBroker::start_with(|c| c.advertised_listener = advertised).await;
    proxy.point_at(b.addr);
    let p: rdkafka::producer::FutureProducer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", proxy.addr.to_string())
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("producer");
    const N: usize = 2000;
    // a steady stream over about a second, so requests are in flight when faults hit
    let sending = tokio::spawn(async move {
        let mut deliveries = Vec::with_capacity(N);
        for i in 0..N {
            let v = format!("{i:06}");
            let rec = FutureRecord::<(), String>::to("idem")
                .partition(0)
                .payload(&v);
            deliveries.push(p.send_result(rec).map_err(|(e, _)| e).expect("queued"));
            if i % 20 == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        futures::future::join_all(deliveries).await
    });
    // repeatedly: the broker appends, its acknowledgements are lost, the connections drop, and
    // the producer retries batches that are already in the log
    let mut cuts = 0;
    for _ in 0..16 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        proxy.swallow_responses(true);
        tokio::time::sleep(Duration::from_millis(35)).await;
        cuts += proxy.cut();
        proxy.swallow_responses(false);
    }
    let offsets: Vec<i64> = sending
        .await
        .expect("join")
        .into_iter()
        .map(|r| {
            r.expect("not cancelled")
                .map_err(|(e, _)| e)
                .expect("delivered")
                .offset
        })
        .collect();
    assert!(cuts > 0, "connections were cut");
    let got = b.consume("idem", 1, N);
    let payloads: Vec<String> = got
        .iter()
        .map(|m| String::from_utf8_lossy(m.payload().expect("payload")).into_owned())
        .collect();
    let want: Vec<String> = (0..N).map(|i| format!("{i:06}")).collect();
    assert_eq!(payloads, want, "each record exactly once, in order");
    let mut sorted = offsets.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (0..N as i64).collect::<Vec<_>>(),
        "acknowledged offsets have no gaps or repeats"
    );
    b.stop().await;
}
