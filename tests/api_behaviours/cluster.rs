//! DescribeCluster, topic-id lookups (Metadata v12, DeleteTopics v6), DescribeTopicPartitions
//! and the connection limit.

use crate::common::{connect, create_topic, roundtrip, TestBroker};
use crate::util::{metadata, topic};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::*;
use std::io::{Read, Write};
use std::time::Duration;
use uuid::Uuid;

fn describe_cluster(b: &TestBroker, v: i16, endpoint_type: i8) -> DescribeClusterResponse {
    let mut req = DescribeClusterRequest::default();
    req.endpoint_type = endpoint_type;
    roundtrip(&mut connect(b), 60, v, 1, &req)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_cluster_names_this_broker_and_the_metadata_cluster_id() {
    let b = TestBroker::start().await;
    let meta = metadata(&b, vec![]);
    let cluster_id = meta.cluster_id.expect("Metadata v13 has a cluster id");
    assert_eq!(meta.error_code, 0, "v13's top-level error (KIP-1102)");
    assert!(!cluster_id.is_empty());
    for v in [0, 1] {
        let resp = describe_cluster(&b, v, 1);
        assert_eq!(resp.error_code, 0, "v{v}");
        assert_eq!(
            resp.cluster_id, cluster_id,
            "v{v}: the cluster id Metadata reports"
        );
        assert_eq!(resp.controller_id, BrokerId(0), "v{v}");
        assert_eq!(resp.brokers.len(), 1, "v{v}");
        let broker = &resp.brokers[0];
        assert_eq!(broker.broker_id, BrokerId(0));
        assert_eq!(broker.host.as_str(), "127.0.0.1");
        assert_eq!(broker.port, b.addr.port() as i32);
        if v == 1 {
            assert_eq!(resp.endpoint_type, 1, "the broker endpoint type is echoed");
        }
    }
    // an endpoint type Kafka does not know (3..): UNSUPPORTED_ENDPOINT_TYPE from v1
    let resp = describe_cluster(&b, 1, 3);
    assert_eq!(resp.error_code, 115, "UNSUPPORTED_ENDPOINT_TYPE");
    assert!(resp.brokers.is_empty());
    b.stop().await;
}

/// Kafka (AuthHelper.computeDescribeClusterResponse, KIP-919) answers a known endpoint type
/// that is not the listener's own (CONTROLLER = 2 sent to a broker listener) with
/// MISMATCHED_ENDPOINT_TYPE (114) at v1; UNSUPPORTED_ENDPOINT_TYPE (115) is for unknown types.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_cluster_for_the_controller_endpoint_is_a_mismatch() {
    let b = TestBroker::start().await;
    let resp = describe_cluster(&b, 1, 2);
    assert_eq!(resp.error_code, 114, "MISMATCHED_ENDPOINT_TYPE");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_are_found_and_deleted_by_id() {
    let b = TestBroker::start().await;
    create_topic(&b, "by-id", 2).await;
    let by_name = metadata(&b, vec![(Some("by-id"), Uuid::nil())]);
    let id = by_name.topics[0].topic_id;
    assert_ne!(id, Uuid::nil(), "Metadata v12 reports the topic id");

    // by id alone: the name comes back
    let by_id = metadata(&b, vec![(None, id)]);
    let t = &by_id.topics[0];
    assert_eq!(t.error_code, 0);
    assert_eq!(t.name, Some(topic("by-id")));
    assert_eq!(t.topic_id, id);
    assert_eq!(t.partitions.len(), 2);
    // an unknown id: UNKNOWN_TOPIC_ID, no name
    let stranger = Uuid::new_v4();
    let t = &metadata(&b, vec![(None, stranger)]).topics[0];
    assert_eq!(
        (t.error_code, t.name.clone(), t.topic_id),
        (100, None, stranger)
    );

    // DeleteTopics v6 by id: the name is filled in
    let delete = |id: Uuid| {
        let mut st = DeleteTopicState::default();
        st.topic_id = id;
        let mut req = DeleteTopicsRequest::default();
        req.topics = vec![st];
        req.timeout_ms = 10_000;
        let resp: DeleteTopicsResponse = roundtrip(&mut connect(&b), 20, 6, 1, &req);
        resp.responses.into_iter().next().expect("one result")
    };
    let r = delete(id);
    assert_eq!(
        (r.error_code, r.name.clone(), r.topic_id),
        (0, Some(topic("by-id")), id)
    );
    let r = delete(id);
    assert_eq!(r.error_code, 100, "deleted: UNKNOWN_TOPIC_ID");
    assert_eq!(r.name, None);
    assert_eq!(metadata(&b, vec![(None, id)]).topics[0].error_code, 100);
    b.stop().await;
}

/// One ApiVersions v2 request frame.
fn api_versions_frame(corr: i32) -> Vec<u8> {
    use kafka_protocol::protocol::Encodable;
    let mut body = bytes::BytesMut::new();
    let mut h = RequestHeader::default();
    h.request_api_key = 18;
    h.request_api_version = 2;
    h.correlation_id = corr;
    h.encode(&mut body, 1).expect("header");
    ApiVersionsRequest::default()
        .encode(&mut body, 2)
        .expect("body");
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// Reads one response frame: its correlation id and ApiVersions error code.
fn read_api_versions(s: &mut std::net::TcpStream) -> std::io::Result<(i32, i16)> {
    use kafka_protocol::protocol::Decodable;
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let mut resp = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut resp)?;
    let mut buf = bytes::Bytes::from(resp);
    let h = ResponseHeader::decode(&mut buf, 0).expect("header");
    let body = ApiVersionsResponse::decode(&mut buf, 2).expect("body");
    Ok((h.correlation_id, body.error_code))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_max_connections_wait_for_a_free_slot() {
    let b = TestBroker::start_with(|c| c.max_connections = 2).await;
    let mut first = connect(&b);
    let mut second = connect(&b);
    for (i, s) in [&mut first, &mut second].into_iter().enumerate() {
        s.write_all(&api_versions_frame(i as i32)).expect("write");
        assert_eq!(read_api_versions(s).expect("answered"), (i as i32, 0));
    }
    // the third socket connects (the kernel's backlog) but is not served
    let mut third = connect(&b);
    third.write_all(&api_versions_frame(3)).expect("write");
    third
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let err = read_api_versions(&mut third).expect_err("no answer while two are open");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err:?}"
    );
    // the two served connections keep working
    second.write_all(&api_versions_frame(4)).expect("write");
    assert_eq!(read_api_versions(&mut second).expect("answered"), (4, 0));
    // a slot frees: the waiting connection is accepted and its request answered
    drop(first);
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    assert_eq!(read_api_versions(&mut third).expect("answered"), (3, 0));
    b.stop().await;
}

/// KIP-430: without an authorizer (this broker has none) every operation the resource type
/// supports is authorized, as Kafka reports it; a request that does not ask gets i32::MIN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorized_operations_are_every_supported_operation_when_asked() {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    const READ: i32 = 1 << 3;
    const CLUSTER_ACTION: i32 = 1 << 9;
    let b = TestBroker::start().await;
    create_topic(&b, "ops", 1).await;

    let mut req = DescribeClusterRequest::default();
    req.include_cluster_authorized_operations = true;
    let resp: DescribeClusterResponse = roundtrip(&mut connect(&b), 60, 1, 1, &req);
    let ops = resp.cluster_authorized_operations;
    assert_eq!(ops.count_ones(), 7, "{ops:#b}");
    assert!(ops & CLUSTER_ACTION != 0 && ops & READ == 0, "{ops:#b}");
    assert_eq!(
        describe_cluster(&b, 1, 1).cluster_authorized_operations,
        i32::MIN
    );

    for (asked, version) in [(true, 8), (true, 12), (false, 12)] {
        let mut req = MetadataRequest::default();
        let mut t = MetadataRequestTopic::default();
        t.name = Some(topic("ops"));
        req.topics = Some(vec![t]);
        req.include_topic_authorized_operations = asked;
        let resp: MetadataResponse = roundtrip(&mut connect(&b), 3, version, 1, &req);
        let ops = resp.topics[0].topic_authorized_operations;
        if asked {
            assert_eq!(ops.count_ones(), 8, "v{version}: {ops:#b}");
            assert!(ops & READ != 0 && ops & CLUSTER_ACTION == 0, "{ops:#b}");
        } else {
            assert_eq!(ops, i32::MIN);
        }
    }

    let mut req = DescribeGroupsRequest::default();
    req.groups = vec![GroupId(
        kafka_protocol::protocol::StrBytes::from_static_str("any"),
    )];
    req.include_authorized_operations = true;
    let resp: DescribeGroupsResponse = roundtrip(&mut connect(&b), 15, 5, 1, &req);
    assert_eq!(
        resp.groups[0].authorized_operations,
        (1 << 3) | (1 << 6) | (1 << 8)
    );
    b.stop().await;
}

/// DescribeTopicPartitions v0 (KIP-966): topics sorted by name, pages of at most
/// `response_partition_limit` partitions joined by the cursor, Kafka's errors for unknown topics
/// and a cursor outside the topics asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_topic_partitions_pages_through_sorted_topics() {
    use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
    let b = TestBroker::start().await;
    create_topic(&b, "dtp-b", 2).await;
    create_topic(&b, "dtp-a", 3).await;
    let page = |names: &[&str], limit: i32, cursor: Option<(&str, i32)>| {
        let mut req = DescribeTopicPartitionsRequest::default();
        req.topics = names
            .iter()
            .map(|n| {
                let mut t = TopicRequest::default();
                t.name = topic(n);
                t
            })
            .collect();
        req.response_partition_limit = limit;
        req.cursor = cursor.map(|(t, p)| {
            let mut c = Cursor::default();
            c.topic_name = topic(t);
            c.partition_index = p;
            c
        });
        let resp: DescribeTopicPartitionsResponse = roundtrip(&mut connect(&b), 75, 0, 1, &req);
        let parts: Vec<(String, i16, i32, i32)> = resp
            .topics
            .iter()
            .flat_map(|t| {
                let name = t.name.as_ref().map_or(String::new(), |n| n.0.to_string());
                let mut rows: Vec<(String, i16, i32, i32)> = t
                    .partitions
                    .iter()
                    .map(|p| (name.clone(), t.error_code, p.partition_index, p.leader_id.0))
                    .collect();
                if t.partitions.is_empty() {
                    rows.push((name, t.error_code, -1, -1));
                }
                rows
            })
            .collect();
        let next = resp
            .next_cursor
            .map(|c| (c.topic_name.0.to_string(), c.partition_index));
        (parts, next)
    };
    let row = |t: &str, p: i32| (t.to_string(), 0i16, p, 0);

    // every topic, two partitions a page
    let (got, next) = page(&[], 2, None);
    assert_eq!(got, vec![row("dtp-a", 0), row("dtp-a", 1)]);
    assert_eq!(next, Some(("dtp-a".to_string(), 2)));
    let (got, next) = page(&[], 2, Some(("dtp-a", 2)));
    assert_eq!(got, vec![row("dtp-a", 2), row("dtp-b", 0)]);
    assert_eq!(next, Some(("dtp-b".to_string(), 1)));
    let (got, next) = page(&[], 2, Some(("dtp-b", 1)));
    assert_eq!(got, vec![row("dtp-b", 1)]);
    assert_eq!(next, None);

    // named topics: the unknown one with its error, in name order
    let (got, next) = page(&["dtp-b", "nope", "dtp-a"], 2000, None);
    assert_eq!(
        got,
        vec![
            row("dtp-a", 0),
            row("dtp-a", 1),
            row("dtp-a", 2),
            row("dtp-b", 0),
            row("dtp-b", 1),
            ("nope".to_string(), 3, -1, -1),
        ]
    );
    assert_eq!(next, None);
    // a cursor naming a topic not asked for: INVALID_REQUEST
    let (got, _) = page(&["dtp-a"], 10, Some(("dtp-b", 0)));
    assert_eq!(got, vec![("dtp-a".to_string(), 42, -1, -1)]);
    b.stop().await;
}
