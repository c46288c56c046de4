//! Admin APIs over real TCP: AlterConfigs through librdkafka's admin client, IncrementalAlterConfigs
//! through the kafka-protocol codec; changes are validated, applied to running partitions at
//! once and survive a restart.

#![allow(clippy::disallowed_methods)] // a test (or benchmark) reads and writes its files directly

mod common;

use common::{admin, connect, create_topic, roundtrip, TestBroker};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminOptions, AlterConfig, ResourceSpecifier};
use rdkafka::producer::FutureRecord;
use std::time::Duration;

async fn describe(b: &TestBroker, spec: ResourceSpecifier<'_>, key: &str) -> (String, String) {
    let res = admin(&b.bootstrap())
        .describe_configs([&spec], &AdminOptions::new())
        .await
        .expect("describe");
    let r = res.into_iter().next().expect("one").expect("ok");
    let e = r.get(key).expect("entry");
    (
        e.value.clone().unwrap_or_default(),
        format!("{:?}", e.source),
    )
}

/// AlterConfigs v2 over the raw protocol: (error code, message).
fn raw_alter(
    b: &TestBroker,
    resource_type: i8,
    name: &str,
    entries: &[(&str, &str)],
) -> (i16, String) {
    use kafka_protocol::messages::alter_configs_request as ac;
    let mut s = connect(b);
    let mut res = ac::AlterConfigsResource::default();
    res.resource_type = resource_type;
    res.resource_name = StrBytes::from_string(name.to_string());
    res.configs = entries
        .iter()
        .map(|(k, v)| {
            let mut c = ac::AlterableConfig::default();
            c.name = StrBytes::from_string(k.to_string());
            c.value = Some(StrBytes::from_string(v.to_string()));
            c
        })
        .collect();
    let mut req = kafka_protocol::messages::AlterConfigsRequest::default();
    req.resources = vec![res];
    let resp: kafka_protocol::messages::AlterConfigsResponse = roundtrip(&mut s, 33, 2, 1, &req);
    let r = &resp.responses[0];
    (
        r.error_code,
        r.error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

async fn alter(
    b: &TestBroker,
    spec: ResourceSpecifier<'_>,
    entries: &[(&str, &str)],
) -> Result<(), String> {
    let mut a = AlterConfig::new(spec);
    for (k, v) in entries {
        a = a.set(k, v);
    }
    let res = admin(&b.bootstrap())
        .alter_configs([&a], &AdminOptions::new())
        .await
        .expect("alter");
    match res.into_iter().next().expect("one") {
        Ok(_) => Ok(()),
        Err((_, e)) => Err(format!("{e:?}")),
    }
}

fn incremental(
    b: &TestBroker,
    resource_type: i8,
    name: &str,
    ops: &[(&str, i8, Option<&str>)],
) -> (i16, String) {
    let mut s = connect(b);
    let mut res = AlterConfigsResource::default();
    res.resource_type = resource_type;
    res.resource_name = StrBytes::from_string(name.to_string());
    res.configs = ops
        .iter()
        .map(|(k, op, v)| {
            let mut c = AlterableConfig::default();
            c.name = StrBytes::from_string(k.to_string());
            c.config_operation = *op;
            c.value = v.map(|v| StrBytes::from_string(v.to_string()));
            c
        })
        .collect();
    let mut req = IncrementalAlterConfigsRequest::default();
    req.resources = vec![res];
    let resp: IncrementalAlterConfigsResponse = roundtrip(&mut s, 44, 1, 1, &req);
    let r = &resp.responses[0];
    (
        r.error_code,
        r.error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configs_change_live_are_validated_and_persist() {
    let b = TestBroker::start().await;
    create_topic(&b, "cfg", 1).await;
    let topic = || ResourceSpecifier::Topic("cfg");

    // AlterConfigs replaces the topic's overrides
    alter(
        &b,
        topic(),
        &[("max.message.bytes", "300"), ("retention.ms", "123456")],
    )
    .await
    .expect("valid change");
    assert_eq!(
        describe(&b, topic(), "max.message.bytes").await,
        ("300".into(), "DynamicTopic".into())
    );
    // applied to the running partition at once: a 1 KiB record no longer fits
    let p = b.producer(&[("linger.ms", "0"), ("message.max.bytes", "100000")]);
    let big = vec![b'x'; 1024];
    let r = p
        .send(
            FutureRecord::<(), _>::to("cfg").payload(&big),
            Duration::from_secs(5),
        )
        .await;
    let err = r.expect_err("too large for the topic now").0;
    assert!(
        format!("{err:?}").contains("MessageSizeTooLarge"),
        "{err:?}"
    );
    // bad values and unknown topics are refused, nothing changes
    // (librdkafka reports AlterConfigs per-resource errors, but rust-rdkafka 0.39 drops them:
    // the raw protocol checks the codes)
    assert_eq!(
        raw_alter(&b, 2, "cfg", &[("retention.ms", "-5")]).0,
        40,
        "INVALID_CONFIG"
    );
    assert_eq!(
        raw_alter(&b, 2, "nope", &[("retention.ms", "5")]).0,
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    assert_eq!(raw_alter(&b, 2, "cfg", &[("no.such.key", "5")]).0, 40);
    assert_eq!(describe(&b, topic(), "retention.ms").await.0, "123456");

    // IncrementalAlterConfigs: delete one override, set another, append to a list
    let (code, msg) = incremental(
        &b,
        2,
        "cfg",
        &[
            ("max.message.bytes", 1, None),
            ("segment.ms", 0, Some("60000")),
        ],
    );
    assert_eq!(code, 0, "{msg}");
    assert_eq!(
        describe(&b, topic(), "max.message.bytes").await.1,
        "Default"
    );
    assert_eq!(
        describe(&b, topic(), "retention.ms").await.0,
        "123456",
        "kept"
    );
    assert_eq!(describe(&b, topic(), "segment.ms").await.0, "60000");
    p.send(
        FutureRecord::<(), _>::to("cfg").payload(&big),
        Duration::from_secs(5),
    )
    .await
    .expect("fits again");
    let (code, _) = incremental(&b, 2, "cfg", &[("segment.ms", 2, Some("1"))]);
    assert_eq!(code, 40, "APPEND to a non-list is INVALID_CONFIG");
    let (code, _) = incremental(
        &b,
        2,
        "cfg",
        &[("segment.ms", 0, Some("1")), ("segment.ms", 1, None)],
    );
    assert_eq!(code, 42, "duplicate keys are INVALID_REQUEST");

    // a dynamic broker default reaches topics without their own value
    let (code, msg) = incremental(&b, 4, "", &[("log.retention.bytes", 0, Some("555555"))]);
    assert_eq!(code, 0, "{msg}");
    assert_eq!(
        describe(&b, topic(), "retention.bytes").await,
        ("555555".into(), "DynamicDefaultBroker".into())
    );
    let (code, _) = incremental(&b, 4, "0", &[("log.dirs", 0, Some("/elsewhere"))]);
    assert_eq!(code, 42, "static broker configs cannot change at run time");

    // the broker default cannot become compact while the broker tiers topics
    let (code, _) = incremental(&b, 4, "", &[("log.cleanup.policy", 0, Some("compact"))]);
    assert_eq!(code, 40, "INVALID_CONFIG for the broker default");
    assert_eq!(describe(&b, topic(), "cleanup.policy").await.0, "delete");

    // everything survives a restart
    let dir = b.stop().await;
    let b = TestBroker::start_in(dir, |_| {}).await;
    assert_eq!(describe(&b, topic(), "segment.ms").await.0, "60000");
    assert_eq!(describe(&b, topic(), "retention.bytes").await.0, "555555");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_moves_the_log_start_and_log_dirs_report_sizes() {
    use rdkafka::consumer::Consumer;
    use rdkafka::{Offset, TopicPartitionList};
    let b = TestBroker::start().await;
    create_topic(&b, "dr", 2).await;
    let p = b.producer(&[("linger.ms", "0")]);
    for i in 0..10 {
        p.send(
            FutureRecord::<(), String>::to("dr")
                .partition(0)
                .payload(&format!("v{i}")),
            Duration::from_secs(5),
        )
        .await
        .expect("delivered");
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("dr", 0, Offset::Offset(4))
        .expect("tpl");
    let res = admin(&b.bootstrap())
        .delete_records(&tpl, &AdminOptions::new())
        .await
        .expect("delete_records");
    let e = res.elements_for_topic("dr");
    assert_eq!(e[0].offset(), Offset::Offset(4), "low watermark");
    assert!(e[0].error().is_ok());
    let watermarks = |b: &TestBroker| {
        b.consumer()
            .fetch_watermarks("dr", 0, Duration::from_secs(5))
            .expect("watermarks")
    };
    assert_eq!(watermarks(&b), (4, 10));
    // beyond the high watermark is OFFSET_OUT_OF_RANGE
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("dr", 0, Offset::Offset(11))
        .expect("tpl");
    let res = admin(&b.bootstrap())
        .delete_records(&tpl, &AdminOptions::new())
        .await
        .expect("delete_records");
    let err = res.elements_for_topic("dr")[0]
        .error()
        .expect_err("out of range");
    assert!(format!("{err:?}").contains("OffsetOutOfRange"), "{err:?}");
    // consumers from the beginning start at the new log start
    let got = b.consume("dr", 1, 6);
    use rdkafka::Message;
    assert_eq!(got[0].offset(), 4);

    // DescribeLogDirs: one directory, both partitions, sizes and disk space
    let mut s = connect(&b);
    let mut req = kafka_protocol::messages::DescribeLogDirsRequest::default();
    req.topics = None; // null: every topic
    let resp: kafka_protocol::messages::DescribeLogDirsResponse = roundtrip(&mut s, 35, 4, 1, &req);
    assert_eq!(resp.results.len(), 1);
    let dir = &resp.results[0];
    assert!(
        dir.log_dir.as_str().ends_with("data"),
        "{}",
        dir.log_dir.as_str()
    );
    assert!(dir.total_bytes > 0 && dir.usable_bytes > 0 && dir.usable_bytes <= dir.total_bytes);
    let t = dir
        .topics
        .iter()
        .find(|t| t.name.0.as_str() == "dr")
        .expect("topic listed");
    assert_eq!(t.partitions.len(), 2);
    assert!(t
        .partitions
        .iter()
        .any(|p| p.partition_index == 0 && p.partition_size > 0));

    // the new log start survives a restart
    let dir = b.stop().await;
    let b = TestBroker::start_in(dir, |_| {}).await;
    assert_eq!(watermarks(&b), (4, 10));
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_topics_keep_the_latest_value_per_key() {
    use rdkafka::admin::{NewTopic, TopicReplication};
    use rdkafka::Message;
    let b = TestBroker::start_with(|c| c.log_cleaner_backoff_ms = 100).await;
    let t = NewTopic::new("compacted", 1, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact")
        .set("segment.bytes", "4096")
        .set("min.cleanable.dirty.ratio", "0.01");
    let res = admin(&b.bootstrap())
        .create_topics([&t], &AdminOptions::new())
        .await
        .expect("create");
    assert!(res.iter().all(|r| r.is_ok()), "{res:?}");
    // 50 keys, 20 rounds, each codec in turn: 1,000 records
    for (round, codec) in (0..20).zip(["lz4", "zstd", "gzip", "snappy", "none"].iter().cycle()) {
        let p = b.producer(&[("compression.type", codec), ("linger.ms", "5")]);
        let mut acks = Vec::new();
        for k in 0..50 {
            let key = format!("key-{k}");
            let value = format!("value-{k}-{round}");
            acks.push(
                p.send_result(FutureRecord::to("compacted").key(&key).payload(&value))
                    .expect("queued"),
            );
        }
        for a in acks {
            a.await.expect("delivered").expect("acked");
        }
    }
    // a keyless record is refused, as Kafka refuses it
    let p = b.producer(&[("linger.ms", "0")]);
    let err = p
        .send(
            FutureRecord::<(), _>::to("compacted").payload("no key"),
            Duration::from_secs(5),
        )
        .await
        .expect_err("keyless on a compacted topic")
        .0;
    assert!(format!("{err:?}").contains("InvalidRecord"), "{err:?}");

    // the cleaner runs in the background: wait until the log holds far fewer records
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut got;
    loop {
        let high = {
            use rdkafka::consumer::Consumer;
            b.consumer()
                .fetch_watermarks("compacted", 0, Duration::from_secs(5))
                .expect("watermarks")
                .1
        };
        assert_eq!(high, 1000, "offsets never change");
        got = read_all(&b, "compacted");
        if got.len() < 300 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not compacted: {} records",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // the latest value of every key is there, at its original offset
    let mut latest = std::collections::HashMap::new();
    for m in &got {
        let k = String::from_utf8_lossy(m.key().expect("key")).into_owned();
        let v = String::from_utf8_lossy(m.payload().expect("value")).into_owned();
        latest.insert(k, (m.offset(), v));
    }
    assert_eq!(latest.len(), 50);
    for k in 0..50 {
        let (offset, v) = &latest[&format!("key-{k}")];
        assert_eq!(v, &format!("value-{k}-19"));
        assert_eq!(*offset, 950 + k as i64, "original offset");
    }
    b.stop().await;
}

/// Everything from offset 0 until the consumer reaches the end.
fn read_all(b: &TestBroker, topic: &str) -> Vec<rdkafka::message::OwnedMessage> {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("group.id", "compaction-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
        .expect("tpl");
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push(m.detach()),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => return out,
            Some(Err(e)) => panic!("consume: {e}"),
            None => {}
        }
    }
    panic!("did not reach the end of {topic}");
}

/// Compaction and tiering: a topic whose history is in the bucket cannot become compacted
/// (INVALID_CONFIG through either API, as Kafka refuses compaction with remote storage); one
/// tiered only by the broker's default with nothing uploaded yet becomes a local compacted topic,
/// refuses keyless records at once and stays local across a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_topic_with_nothing_in_the_bucket_can_become_compacted() {
    let b = TestBroker::start_with(|c| c.log_retention_check_interval_ms = 100).await;
    let bucket = b.dir.path().join("data.tier");
    common::create_topic_with(&b, "history", 1, &[("segment.bytes", "4096")]).await;
    let p = b.producer(&[("linger.ms", "0")]);
    for i in 0..100 {
        p.send(
            FutureRecord::<str, String>::to("history")
                .key("k")
                .payload(&format!("{i:0>100}")),
            Duration::from_secs(10),
        )
        .await
        .expect("acked");
    }
    // a segment of `history` in the bucket (`topics/history-<topic id>/…`)
    let uploaded = || {
        std::fs::read_dir(bucket.join("topics"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                e.file_name().to_string_lossy().starts_with("history-")
                    && common::dir_bytes(&e.path(), "log").1 > 0
            })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !uploaded() {
        assert!(std::time::Instant::now() < deadline, "nothing uploaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        raw_alter(&b, 2, "history", &[("cleanup.policy", "compact")]).0,
        40,
        "INVALID_CONFIG"
    );
    let (code, msg) = incremental(
        &b,
        2,
        "history",
        &[("cleanup.policy", 0, Some("compact,delete"))],
    );
    assert_eq!(code, 40, "{msg}");
    assert!(msg.contains("cleanup.policy=delete"), "{msg}");

    // nothing in the bucket yet: the topic becomes compacted and local
    create_topic(&b, "fresh", 1).await;
    let (code, msg) = incremental(&b, 2, "fresh", &[("cleanup.policy", 2, Some("compact"))]);
    assert_eq!(code, 0, "{msg}");
    assert_local_compacted(&b, "fresh").await;
    let keyless = p
        .send(
            FutureRecord::<(), str>::to("fresh").payload("no key"),
            Duration::from_secs(10),
        )
        .await
        .expect_err("keyless on a compacted topic");
    assert_eq!(
        keyless.0.rdkafka_error_code(),
        Some(rdkafka::types::RDKafkaErrorCode::InvalidRecord)
    );
    let dir = b.stop().await;
    let b = TestBroker::start_in(dir, |_| {}).await;
    assert_local_compacted(&b, "fresh").await;
    b.stop().await;
}

/// `topic` is compacted (on top of the default delete) and not tiered.
async fn assert_local_compacted(b: &TestBroker, topic: &str) {
    let spec = || ResourceSpecifier::Topic(topic);
    assert_eq!(
        describe(b, spec(), "cleanup.policy").await.0,
        "delete,compact"
    );
    assert_eq!(
        describe(b, spec(), "remote.storage.enable").await.0,
        "false"
    );
}
