//! Share groups (KIP-932) over the raw protocol: membership errors, the group config that sets
//! where a share-partition starts, records acquired by one member at a time, acknowledgements
//! checked against what the member holds (all or nothing per partition), releases delivered
//! again with a higher delivery count, share-session epochs, and the group's views.

use crate::common::{connect, create_topic, roundtrip, TestBroker};
use crate::util::{metadata, produce, s, topic};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::share_acknowledge_request::{AcknowledgePartition, AcknowledgeTopic};
use kafka_protocol::messages::share_fetch_request::{
    AcknowledgementBatch, FetchPartition, FetchTopic,
};
use kafka_protocol::messages::*;
use std::net::TcpStream;
use uuid::Uuid;

const HEARTBEAT: i16 = 76;
const DESCRIBE: i16 = 77;
const FETCH: i16 = 78;
const ACK: i16 = 79;
const DESCRIBE_OFFSETS: i16 = 90;

// Kafka's error codes
const INVALID_REQUEST: i16 = 42;
const UNKNOWN_MEMBER_ID: i16 = 25;
const FENCED_MEMBER_EPOCH: i16 = 110;
const INVALID_RECORD_STATE: i16 = 121;
const INVALID_SHARE_SESSION_EPOCH: i16 = 123;
const INVALID_CONFIG: i16 = 40;
const NON_EMPTY_GROUP: i16 = 68;

fn heartbeat(
    c: &mut TcpStream,
    member: &str,
    epoch: i32,
    topics: Option<&[&str]>,
) -> ShareGroupHeartbeatResponse {
    let mut req = ShareGroupHeartbeatRequest::default();
    req.group_id = GroupId(s("sg"));
    req.member_id = s(member);
    req.member_epoch = epoch;
    req.subscribed_topic_names = topics.map(|ts| ts.iter().map(|t| topic(t)).collect());
    roundtrip(c, HEARTBEAT, 1, 1, &req)
}

fn batch(first: i64, last: i64, types: &[i8]) -> AcknowledgementBatch {
    let mut b = AcknowledgementBatch::default();
    b.first_offset = first;
    b.last_offset = last;
    b.acknowledge_types = types.to_vec();
    b
}

fn fetch(
    c: &mut TcpStream,
    member: &str,
    epoch: i32,
    id: Uuid,
    acks: Vec<AcknowledgementBatch>,
) -> ShareFetchResponse {
    let mut p = FetchPartition::default();
    p.partition_index = 0;
    p.acknowledgement_batches = acks;
    let mut t = FetchTopic::default();
    t.topic_id = id;
    t.partitions = vec![p];
    let mut req = ShareFetchRequest::default();
    req.group_id = Some(GroupId(s("sg")));
    req.member_id = Some(s(member));
    req.share_session_epoch = epoch;
    req.max_wait_ms = 100;
    req.max_bytes = 1 << 20;
    req.max_records = 500;
    req.batch_size = 500;
    req.topics = vec![t];
    roundtrip(c, FETCH, 1, 1, &req)
}

fn acknowledge(
    c: &mut TcpStream,
    member: &str,
    epoch: i32,
    id: Uuid,
    acks: Vec<AcknowledgementBatch>,
) -> ShareAcknowledgeResponse {
    let mut p = AcknowledgePartition::default();
    p.partition_index = 0;
    p.acknowledgement_batches = acks
        .into_iter()
        .map(|b| {
            let mut a = share_acknowledge_request::AcknowledgementBatch::default();
            a.first_offset = b.first_offset;
            a.last_offset = b.last_offset;
            a.acknowledge_types = b.acknowledge_types;
            a
        })
        .collect();
    let mut t = AcknowledgeTopic::default();
    t.topic_id = id;
    t.partitions = vec![p];
    let mut req = ShareAcknowledgeRequest::default();
    req.group_id = Some(GroupId(s("sg")));
    req.member_id = Some(s(member));
    req.share_session_epoch = epoch;
    req.topics = vec![t];
    roundtrip(c, ACK, 1, 1, &req)
}

fn acquired(r: &ShareFetchResponse) -> Vec<(i64, i64, i16)> {
    r.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .flat_map(|p| &p.acquired_records)
        .map(|a| (a.first_offset, a.last_offset, a.delivery_count))
        .collect()
}

fn ack_code(r: &ShareAcknowledgeResponse) -> i16 {
    r.responses[0].partitions[0].error_code
}

fn set_reset(b: &TestBroker, key: &str, value: &str) -> i16 {
    let mut c = AlterableConfig::default();
    c.name = s(key);
    c.config_operation = 0;
    c.value = Some(s(value));
    let mut r = AlterConfigsResource::default();
    r.resource_type = 32;
    r.resource_name = s("sg");
    r.configs = vec![c];
    let mut req = IncrementalAlterConfigsRequest::default();
    req.resources = vec![r];
    let resp: IncrementalAlterConfigsResponse = roundtrip(&mut connect(b), 44, 1, 1, &req);
    resp.responses[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_go_to_one_member_at_a_time_and_bad_acknowledgements_change_nothing() {
    let b = TestBroker::start().await;
    create_topic(&b, "sq", 1).await;
    let records: Vec<(i64, String)> = (0..10)
        .map(|i| (1_700_000_000_000 + i, format!("r{i}")))
        .collect();
    let refs: Vec<(i64, &str)> = records.iter().map(|(t, v)| (*t, v.as_str())).collect();
    assert_eq!(produce(&b, "sq", 0, &refs).0, 0);
    let id = metadata(&b, vec![(Some("sq"), Uuid::nil())]).topics[0].topic_id;

    // the group config: unknown keys and values refused, earliest accepted
    assert_eq!(
        set_reset(&b, "share.auto.offset.reset", "sideways"),
        INVALID_CONFIG
    );
    assert_eq!(set_reset(&b, "share.no.such.key", "1"), INVALID_CONFIG);
    assert_eq!(set_reset(&b, "share.auto.offset.reset", "earliest"), 0);

    let (mut a, mut bb) = (connect(&b), connect(&b));
    assert_eq!(heartbeat(&mut a, "A", 0, None).error_code, INVALID_REQUEST);
    assert_eq!(
        heartbeat(&mut a, "A", 3, None).error_code,
        UNKNOWN_MEMBER_ID
    );
    let j = heartbeat(&mut a, "A", 0, Some(&["sq"]));
    assert_eq!((j.error_code, j.member_epoch), (0, 1));
    let assigned = j.assignment.expect("assignment").topic_partitions;
    assert_eq!(
        (assigned[0].topic_id, assigned[0].partitions.clone()),
        (id, vec![0])
    );
    assert_eq!(
        heartbeat(&mut a, "A", 7, None).error_code,
        FENCED_MEMBER_EPOCH
    );

    // a session is opened only by a member
    assert_eq!(
        fetch(&mut bb, "B", 0, id, vec![]).error_code,
        UNKNOWN_MEMBER_ID
    );
    let f = fetch(&mut a, "A", 0, id, vec![]);
    assert_eq!(f.error_code, 0);
    assert_eq!(acquired(&f), vec![(0, 9, 1)]);
    assert!(f.responses[0].partitions[0]
        .records
        .as_ref()
        .is_some_and(|r| !r.is_empty()));
    assert_eq!(
        fetch(&mut a, "A", 5, id, vec![]).error_code,
        INVALID_SHARE_SESSION_EPOCH
    );

    // a second member finds nothing: A holds everything
    assert_eq!(heartbeat(&mut bb, "B", 0, Some(&["sq"])).error_code, 0);
    let f = fetch(&mut bb, "B", 0, id, vec![]);
    assert_eq!((f.error_code, acquired(&f)), (0, vec![]));
    // B may not acknowledge A's records; A's malformed acknowledgements change nothing
    assert_eq!(
        ack_code(&acknowledge(&mut bb, "B", 1, id, vec![batch(0, 0, &[1])])),
        INVALID_RECORD_STATE
    );
    let r = acknowledge(
        &mut a,
        "A",
        1,
        id,
        vec![batch(0, 3, &[1]), batch(3, 4, &[1])],
    );
    assert_eq!(ack_code(&r), INVALID_REQUEST);
    // each refused acknowledgement still moved the session on: the next carries the next epoch
    let mut epoch = 2;
    for bad in [
        vec![batch(4, 2, &[1])],
        vec![batch(5, i64::MAX, &[1])],
        vec![batch(0, 2, &[1, 1])],
        vec![batch(0, 0, &[9])],
    ] {
        assert_eq!(
            ack_code(&acknowledge(&mut a, "A", epoch, id, bad.clone())),
            INVALID_REQUEST,
            "{bad:?}"
        );
        epoch += 1;
    }
    // accept 0..4, release 5..9: B gets 5..9 at delivery count 2
    let r = acknowledge(
        &mut a,
        "A",
        epoch,
        id,
        vec![batch(0, 4, &[1]), batch(5, 9, &[2])],
    );
    assert_eq!((r.error_code, ack_code(&r)), (0, 0));
    epoch += 1;
    assert_eq!(
        ack_code(&acknowledge(
            &mut a,
            "A",
            epoch,
            id,
            vec![batch(0, 0, &[1])]
        )),
        INVALID_RECORD_STATE
    );
    // (B's refused acknowledgement moved its session to epoch 2)
    let f = fetch(&mut bb, "B", 2, id, vec![]);
    assert_eq!((f.error_code, acquired(&f)), (0, vec![(5, 9, 2)]));
    // B rejects them on its next fetch: nothing is left, the start offset is past everything
    let f = fetch(&mut bb, "B", 3, id, vec![batch(5, 9, &[3])]);
    assert_eq!(
        (
            f.responses[0].partitions[0].acknowledge_error_code,
            acquired(&f)
        ),
        (0, vec![])
    );

    let mut req = DescribeShareGroupOffsetsRequest::default();
    let mut g =
        describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup::default();
    g.group_id = GroupId(s("sg"));
    g.topics = None; // every topic the group has state for
    req.groups = vec![g];
    let d: DescribeShareGroupOffsetsResponse =
        roundtrip(&mut connect(&b), DESCRIBE_OFFSETS, 0, 1, &req);
    let p = &d.groups[0].topics[0].partitions[0];
    assert_eq!((d.groups[0].topics[0].topic_id, p.start_offset), (id, 10));

    let mut req = ShareGroupDescribeRequest::default();
    req.group_ids = vec![GroupId(s("sg"))];
    let d: ShareGroupDescribeResponse = roundtrip(&mut connect(&b), DESCRIBE, 1, 1, &req);
    let g = &d.groups[0];
    assert_eq!(
        (g.error_code, g.group_state.as_str(), g.members.len()),
        (0, "Stable", 2)
    );

    let mut req = ListGroupsRequest::default();
    req.types_filter = vec![s("share")];
    let l: ListGroupsResponse = roundtrip(&mut connect(&b), 16, 5, 1, &req);
    let listed: Vec<_> = l
        .groups
        .iter()
        .map(|g| (g.group_id.0.as_str(), g.group_type.as_str()))
        .collect();
    assert_eq!(listed, vec![("sg", "share")]);
    let mut req = DeleteGroupsRequest::default();
    req.groups_names = vec![GroupId(s("sg"))];
    let del: DeleteGroupsResponse = roundtrip(&mut connect(&b), 42, 2, 1, &req);
    assert_eq!(del.results[0].error_code, NON_EMPTY_GROUP);
    b.stop().await;
}
