//! Client telemetry (KIP-714) over the raw protocol: GetTelemetrySubscriptions hands out an
//! instance id and the configured subscription; PushTelemetry's OTLP metrics show on /metrics
//! labelled by client; Kafka's errors for pushes that are too soon, too large, of an unknown
//! subscription or instance, badly compressed or undecodable; a terminating push removes the
//! client's values.

use crate::common::{connect, roundtrip, scrape, TestBroker};
use kafka_protocol::messages::*;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, Gauge, Metric, MetricsData, NumberDataPoint, ResourceMetrics,
    ScopeMetrics,
};
use prost::Message;
use std::net::TcpStream;
use uuid::Uuid;

const THROTTLED: i16 = 89;
const UNKNOWN_SUBSCRIPTION: i16 = 117;
const TOO_LARGE: i16 = 118;
const UNSUPPORTED_COMPRESSION: i16 = 76;
const INVALID_RECORD: i16 = 87;
const INVALID_REQUEST: i16 = 42;

/// One gauge per (name, value), each with a `node.id` attribute.
fn otlp(metrics: &[(&str, f64)]) -> Vec<u8> {
    let metrics = metrics
        .iter()
        .map(|(name, v)| Metric {
            name: name.to_string(),
            data: Some(Data::Gauge(Gauge {
                data_points: vec![NumberDataPoint {
                    attributes: vec![KeyValue {
                        key: "node.id".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::IntValue(1)),
                        }),
                    }],
                    value: Some(number_data_point::Value::AsDouble(*v)),
                    ..Default::default()
                }],
            })),
            ..Default::default()
        })
        .collect();
    MetricsData {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn subscribe(s: &mut TcpStream, instance: Uuid) -> GetTelemetrySubscriptionsResponse {
    let mut req = GetTelemetrySubscriptionsRequest::default();
    req.client_instance_id = instance;
    roundtrip(s, 71, 0, 1, &req)
}

fn push(
    s: &mut TcpStream,
    instance: Uuid,
    subscription: i32,
    (terminating, compression): (bool, i8),
    metrics: Vec<u8>,
) -> i16 {
    let mut req = PushTelemetryRequest::default();
    req.client_instance_id = instance;
    req.subscription_id = subscription;
    req.terminating = terminating;
    req.compression_type = compression;
    req.metrics = metrics.into();
    let resp: PushTelemetryResponse = roundtrip(s, 72, 0, 2, &req);
    resp.error_code
}

fn client_lines(metrics: std::net::SocketAddr) -> Vec<String> {
    scrape(metrics)
        .lines()
        .filter(|l| l.starts_with("tiercel_client_"))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_metrics_show_on_the_metrics_endpoint_by_client() {
    let metrics_addr = crate::common::free_addr();
    let b = TestBroker::start_with(|c| {
        c.metrics_listen = metrics_addr;
        c.telemetry_metrics = "org.apache.kafka.producer.".into();
        c.telemetry_push_interval_ms = 60_000;
        c.telemetry_max_bytes = 4096;
    })
    .await;
    let mut s = connect(&b);
    let sub = subscribe(&mut s, Uuid::nil());
    assert_eq!(sub.error_code, 0);
    assert!(
        !sub.client_instance_id.is_nil(),
        "an instance id is handed out"
    );
    assert_eq!(sub.requested_metrics.len(), 1);
    assert_eq!(
        sub.requested_metrics[0].as_str(),
        "org.apache.kafka.producer."
    );
    assert_eq!(sub.push_interval_ms, 60_000);
    assert_eq!(sub.telemetry_max_bytes, 4096);
    assert!(sub.accepted_compression_types.contains(&1), "gzip accepted");
    let (me, id) = (sub.client_instance_id, sub.subscription_id);
    // asking again with the id keeps it
    assert_eq!(subscribe(&mut s, me).client_instance_id, me);

    // a producer metric is kept, a metric not asked for is not
    let payload = otlp(&[
        ("org.apache.kafka.producer.record.queue.time.avg", 2.5),
        ("org.apache.kafka.consumer.poll.idle.ratio.avg", 0.5),
    ]);
    assert_eq!(push(&mut s, me, id, (false, 0), payload.clone()), 0);
    let lines = client_lines(metrics_addr);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert!(
        line.starts_with("tiercel_client_org_apache_kafka_producer_record_queue_time_avg{"),
        "{line}"
    );
    assert!(
        line.contains(&format!("client_instance_id=\"{me}\"")),
        "{line}"
    );
    assert!(line.contains("client_id=\"tiercel-tests\""), "{line}");
    assert!(line.contains("node_id=\"1\""), "{line}");
    assert!(line.ends_with(" 2.5"), "{line}");

    // Kafka's refusals
    assert_eq!(
        push(&mut s, me, id, (false, 0), payload.clone()),
        THROTTLED,
        "too soon"
    );
    assert_eq!(
        push(&mut s, me, id + 1, (false, 0), payload.clone()),
        UNKNOWN_SUBSCRIPTION
    );
    assert_eq!(
        push(&mut s, Uuid::new_v4(), id, (false, 0), payload.clone()),
        UNKNOWN_SUBSCRIPTION,
        "an instance that never subscribed"
    );
    assert_eq!(
        push(&mut s, Uuid::nil(), id, (false, 0), payload.clone()),
        INVALID_REQUEST
    );
    // (a client's last push may come early: these are checked after the interval)
    assert_eq!(
        push(&mut s, me, id, (true, 9), payload.clone()),
        UNSUPPORTED_COMPRESSION
    );
    assert_eq!(push(&mut s, me, id, (true, 0), vec![0; 5000]), TOO_LARGE);

    // another client's push, gzip-compressed; then garbage is refused
    let other = subscribe(&mut s, Uuid::nil()).client_instance_id;
    let gz = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&otlp(&[(
            "org.apache.kafka.producer.record.queue.time.avg",
            7.0,
        )]))
        .expect("gzip");
        e.finish().expect("gzip")
    };
    assert_eq!(push(&mut s, other, id, (false, 1), gz), 0);
    assert_eq!(client_lines(metrics_addr).len(), 2);
    assert_eq!(
        push(&mut s, other, id, (true, 0), vec![0xff; 8]),
        INVALID_RECORD
    );

    // the last push of a closing client removes its values
    assert_eq!(push(&mut s, me, id, (true, 0), payload), 0);
    let lines = client_lines(metrics_addr);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains(&format!("client_instance_id=\"{other}\"")));
    assert!(lines[0].ends_with(" 7"), "{}", lines[0]);
}
