//! validate_only on AlterConfigs, IncrementalAlterConfigs and CreatePartitions, and the list
//! operations (APPEND, SUBTRACT) of IncrementalAlterConfigs.

use crate::common::{connect, roundtrip, TestBroker};
use crate::util::*;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::*;
use uuid::Uuid;

const TOPIC: i8 = 2;
const SET: i8 = 0;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

/// AlterConfigs v2 of one topic: the resource's error code.
fn alter(b: &TestBroker, name: &str, entries: &[(&str, &str)], validate_only: bool) -> i16 {
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let mut res = AlterConfigsResource::default();
    res.resource_type = TOPIC;
    res.resource_name = s(name);
    for (k, v) in entries {
        let mut c = AlterableConfig::default();
        c.name = s(k);
        c.value = Some(s(v));
        res.configs.push(c);
    }
    let mut req = AlterConfigsRequest::default();
    req.resources = vec![res];
    req.validate_only = validate_only;
    let resp: AlterConfigsResponse = roundtrip(&mut connect(b), 33, 2, 1, &req);
    resp.responses[0].error_code
}

/// IncrementalAlterConfigs v1 of one topic: the resource's error code.
fn incremental(b: &TestBroker, name: &str, ops: &[(&str, i8, &str)], validate_only: bool) -> i16 {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let mut res = AlterConfigsResource::default();
    res.resource_type = TOPIC;
    res.resource_name = s(name);
    for (k, op, v) in ops {
        let mut c = AlterableConfig::default();
        c.name = s(k);
        c.config_operation = *op;
        c.value = Some(s(v));
        res.configs.push(c);
    }
    let mut req = IncrementalAlterConfigsRequest::default();
    req.resources = vec![res];
    req.validate_only = validate_only;
    let resp: IncrementalAlterConfigsResponse = roundtrip(&mut connect(b), 44, 1, 1, &req);
    resp.responses[0].error_code
}

/// CreatePartitions v1 of one topic: the error code.
fn grow(b: &TestBroker, name: &str, count: i32, validate_only: bool) -> i16 {
    let mut t = CreatePartitionsTopic::default();
    t.name = topic(name);
    t.count = count;
    t.assignments = None; // null: the broker places the new partitions
    let mut req = CreatePartitionsRequest::default();
    req.topics = vec![t];
    req.timeout_ms = 10_000;
    req.validate_only = validate_only;
    let resp: CreatePartitionsResponse = roundtrip(&mut connect(b), 37, 1, 1, &req);
    resp.results[0].error_code
}

fn partitions(b: &TestBroker, name: &str) -> usize {
    metadata(b, vec![(Some(name), Uuid::nil())]).topics[0]
        .partitions
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_only_config_changes_are_checked_but_not_applied() {
    let b = TestBroker::start().await;
    create_topic_with(&b, "vo", 1, &[]).await;
    assert_eq!(
        incremental(&b, "vo", &[("segment.ms", SET, "60000")], false),
        0
    );
    let default_retention = config_value(&b, "vo", "retention.ms").await;
    assert_eq!(default_retention, "604800000");

    // AlterConfigs replaces the overrides; validate_only must neither set retention.ms nor
    // drop segment.ms
    assert_eq!(alter(&b, "vo", &[("retention.ms", "1234")], true), 0);
    assert_eq!(
        config_value(&b, "vo", "retention.ms").await,
        default_retention
    );
    assert_eq!(config_value(&b, "vo", "segment.ms").await, "60000");
    assert_eq!(
        alter(&b, "vo", &[("retention.ms", "-5")], true),
        40,
        "INVALID_CONFIG"
    );

    assert_eq!(
        incremental(&b, "vo", &[("segment.ms", SET, "120000")], true),
        0
    );
    assert_eq!(config_value(&b, "vo", "segment.ms").await, "60000");
    assert_eq!(
        incremental(&b, "vo", &[("segment.ms", SET, "0")], true),
        40,
        "INVALID_CONFIG"
    );
    // and the same change for real does apply
    assert_eq!(
        incremental(&b, "vo", &[("segment.ms", SET, "120000")], false),
        0
    );
    assert_eq!(config_value(&b, "vo", "segment.ms").await, "120000");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_only_create_partitions_is_checked_but_not_applied() {
    let b = TestBroker::start().await;
    create_topic_with(&b, "vp", 2, &[]).await;
    assert_eq!(grow(&b, "vp", 4, true), 0);
    assert_eq!(partitions(&b, "vp"), 2, "unchanged");
    assert_eq!(grow(&b, "vp", 1, true), 37, "shrinking: INVALID_PARTITIONS");
    assert_eq!(
        grow(&b, "vp", 2, true),
        37,
        "the same count: INVALID_PARTITIONS"
    );
    assert_eq!(grow(&b, "vp", 3, false), 0);
    assert_eq!(partitions(&b, "vp"), 3);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_and_subtract_edit_list_configs() {
    let b = TestBroker::start().await;
    // a tiered topic refuses compaction: this one stays local
    create_topic_with(&b, "lists", 1, &[("remote.storage.enable", "false")]).await;
    assert_eq!(config_value(&b, "lists", "cleanup.policy").await, "delete");
    assert_eq!(
        incremental(&b, "lists", &[("cleanup.policy", APPEND, "compact")], false),
        0
    );
    assert_eq!(
        config_value(&b, "lists", "cleanup.policy").await,
        "delete,compact"
    );
    // an item already there is not added twice
    assert_eq!(
        incremental(&b, "lists", &[("cleanup.policy", APPEND, "compact")], false),
        0
    );
    assert_eq!(
        config_value(&b, "lists", "cleanup.policy").await,
        "delete,compact"
    );
    assert_eq!(
        incremental(
            &b,
            "lists",
            &[("cleanup.policy", SUBTRACT, "delete")],
            false
        ),
        0
    );
    assert_eq!(config_value(&b, "lists", "cleanup.policy").await, "compact");
    // APPEND and SUBTRACT apply to list configs only
    assert_eq!(
        incremental(&b, "lists", &[("retention.ms", APPEND, "5")], false),
        40,
        "INVALID_CONFIG"
    );
    b.stop().await;
}
