//! The OTLP metrics a client pushes (`MetricsData`, protobuf), flattened into the values
//! `/metrics` shows: a gauge or sum data point is one value; a histogram's count and sum are
//! two (`_count`, `_sum`); summaries and exponential histograms the same way. Each value takes
//! the data point's attributes as labels (strings, numbers and booleans; others are left out).

use super::{sanitize, Sample};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point, MetricsData};
use prost::Message;

/// Labels the broker sets itself; an attribute of the same name is left out.
const RESERVED: [&str; 4] = [
    "client_instance_id",
    "client_id",
    "client_software_name",
    "client_software_version",
];

/// The values of every metric `wanted` accepts (by its OTLP name), at most `limit` of them,
/// and how many more there were.
pub fn samples(
    payload: &[u8],
    wanted: impl Fn(&str) -> bool,
    limit: usize,
) -> Result<(Vec<Sample>, usize), prost::DecodeError> {
    let data = MetricsData::decode(payload)?;
    let mut out = Vec::new();
    let mut over = 0;
    for rm in &data.resource_metrics {
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                if !wanted(&m.name) {
                    continue;
                }
                let name = format!("tiercel_client_{}", sanitize(&m.name));
                let mut push = |suffix: &str, attrs: &[KeyValue], value: f64| {
                    if out.len() >= limit {
                        over += 1;
                        return;
                    }
                    out.push(Sample {
                        name: format!("{name}{suffix}"),
                        labels: labels(attrs),
                        value,
                    })
                };
                match &m.data {
                    Some(Data::Gauge(g)) => {
                        for p in &g.data_points {
                            push("", &p.attributes, number(&p.value));
                        }
                    }
                    Some(Data::Sum(s)) => {
                        for p in &s.data_points {
                            push("", &p.attributes, number(&p.value));
                        }
                    }
                    Some(Data::Histogram(h)) => {
                        for p in &h.data_points {
                            push("_count", &p.attributes, p.count as f64);
                            push("_sum", &p.attributes, p.sum.unwrap_or(0.0));
                        }
                    }
                    Some(Data::ExponentialHistogram(h)) => {
                        for p in &h.data_points {
                            push("_count", &p.attributes, p.count as f64);
                            push("_sum", &p.attributes, p.sum.unwrap_or(0.0));
                        }
                    }
                    Some(Data::Summary(s)) => {
                        for p in &s.data_points {
                            push("_count", &p.attributes, p.count as f64);
                            push("_sum", &p.attributes, p.sum);
                        }
                    }
                    None => {}
                }
            }
        }
    }
    Ok((out, over))
}

fn number(v: &Option<number_data_point::Value>) -> f64 {
    match v {
        Some(number_data_point::Value::AsDouble(d)) => *d,
        Some(number_data_point::Value::AsInt(i)) => *i as f64,
        None => 0.0,
    }
}

/// The attributes as Prometheus labels: names sanitized (one starting with a digit gets a
/// leading `_`), reserved and repeated names left out, in the order sent.
fn labels(attrs: &[KeyValue]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for kv in attrs {
        let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => s.clone(),
            Some(any_value::Value::IntValue(i)) => i.to_string(),
            Some(any_value::Value::DoubleValue(d)) => d.to_string(),
            Some(any_value::Value::BoolValue(b)) => b.to_string(),
            _ => continue,
        };
        let mut key = sanitize(&kv.key);
        if key.is_empty() || key.starts_with(|c: char| c.is_ascii_digit()) {
            key.insert(0, '_');
        }
        if RESERVED.contains(&key.as_str()) || out.iter().any(|(k, _)| *k == key) {
            continue;
        }
        out.push((key, value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::AnyValue;
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
        ScopeMetrics,
    };

    fn attr(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
        }
    }

    #[test]
    fn gauges_and_histograms_flatten_into_labelled_values() {
        let gauge = Metric {
            name: "org.apache.kafka.producer.record.queue.time.avg".into(),
            data: Some(Data::Gauge(Gauge {
                data_points: vec![NumberDataPoint {
                    attributes: vec![attr("node.id", "1"), attr("client_id", "spoofed")],
                    value: Some(number_data_point::Value::AsDouble(2.5)),
                    ..Default::default()
                }],
            })),
            ..Default::default()
        };
        let hist = Metric {
            name: "org.apache.kafka.consumer.poll.latency".into(),
            data: Some(Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    count: 4,
                    sum: Some(10.0),
                    ..Default::default()
                }],
                aggregation_temporality: 2,
            })),
            ..Default::default()
        };
        let data = MetricsData {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![gauge, hist],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let bytes = data.encode_to_vec();
        let (got, over) = samples(&bytes, |_| true, 10).expect("decodes");
        assert_eq!(over, 0);
        assert_eq!(
            got[0],
            Sample {
                name: "tiercel_client_org_apache_kafka_producer_record_queue_time_avg".into(),
                labels: vec![("node_id".into(), "1".into())],
                value: 2.5,
            }
        );
        assert_eq!(
            got[1].name,
            "tiercel_client_org_apache_kafka_consumer_poll_latency_count"
        );
        assert_eq!(got[1].value, 4.0);
        assert_eq!(got[2].value, 10.0);
        let (only_producer, _) =
            samples(&bytes, |n| n.starts_with("org.apache.kafka.producer."), 10).expect("decodes");
        assert_eq!(only_producer.len(), 1);
        assert_eq!(
            samples(&bytes, |_| true, 2).expect("decodes").1,
            1,
            "one over the limit"
        );
        assert!(
            samples(b"\xff\xff\xff", |_| true, 10).is_err(),
            "garbage is refused"
        );
    }
}
