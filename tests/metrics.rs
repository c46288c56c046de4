//! The Prometheus endpoint: scraped over real HTTP while real clients produce and consume
//! (transactions included).
//! (One test in its own binary: the metrics recorder is process-wide.)

#![allow(clippy::disallowed_methods)] // a test (or benchmark) reads and writes its files directly

mod common;

use common::scrape;
use common::TestBroker;
use rdkafka::producer::FutureRecord;
use std::time::Duration;

/// The value of the first sample of `name` whose labels contain every `labels` pair.
fn value(body: &str, name: &str, labels: &[&str]) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .find(|l| labels.iter().all(|x| l.contains(x)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_traffic() {
    let metrics_addr = common::free_addr();
    let b = TestBroker::start_with(|c| c.metrics_listen = metrics_addr).await;
    let p = b.producer(&[("linger.ms", "0")]);
    for i in 0..3 {
        p.send(
            FutureRecord::<(), String>::to("m").payload(&format!("v{i}")),
            Duration::from_secs(10),
        )
        .await
        .expect("delivered");
    }
    b.consume("m", 1, 3);
    tokio::time::sleep(Duration::from_millis(1500)).await; // one gauge refresh
    let body = tokio::task::block_in_place(|| scrape(metrics_addr));
    assert_eq!(
        value(&body, "tiercel_produce_records_total", &["topic=\"m\""]),
        Some(3.0),
        "{body}"
    );
    assert!(value(&body, "tiercel_produce_bytes_total", &["topic=\"m\""]).unwrap_or(0.0) > 0.0);
    assert!(value(&body, "tiercel_fetch_bytes_total", &["topic=\"m\""]).unwrap_or(0.0) > 0.0);
    assert_eq!(
        value(
            &body,
            "tiercel_partition_high_watermark",
            &["topic=\"m\"", "partition=\"0\""]
        ),
        Some(3.0)
    );
    assert_eq!(
        value(
            &body,
            "tiercel_partition_log_end_offset",
            &["topic=\"m\"", "partition=\"0\""]
        ),
        Some(3.0)
    );
    assert!(value(&body, "tiercel_requests_total", &["api=\"Produce\""]).unwrap_or(0.0) >= 3.0);
    assert!(
        body.contains("tiercel_request_duration_seconds_bucket{api=\"Produce\",le=\"0.005\"}"),
        "histogram buckets"
    );
    assert!(value(&body, "tiercel_log_flush_seconds_count", &[]).unwrap_or(0.0) >= 1.0);
    assert!(value(&body, "tiercel_connections_accepted_total", &[]).unwrap_or(0.0) >= 2.0);
    assert!(value(&body, "tiercel_process_resident_memory_bytes", &[]).unwrap_or(0.0) > 1e6);
    assert!(
        body.contains("# HELP tiercel_produce_records_total"),
        "metrics are described"
    );
    // and they move: three more records
    for i in 3..6 {
        p.send(
            FutureRecord::<(), String>::to("m").payload(&format!("v{i}")),
            Duration::from_secs(10),
        )
        .await
        .expect("delivered");
    }
    // a group that committed offset 2: its lag is the high watermark minus 2
    {
        use rdkafka::consumer::{CommitMode, Consumer};
        let c = b.consumer();
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset("m", 0, rdkafka::Offset::Offset(2))
            .expect("tpl");
        tokio::task::block_in_place(|| c.commit(&tpl, CommitMode::Sync)).expect("commit");
    }
    // an error answered to a client is counted by API and error
    {
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset("m", 0, rdkafka::Offset::Offset(100))
            .expect("tpl");
        let res = common::admin(&b.bootstrap())
            .delete_records(&tpl, &rdkafka::admin::AdminOptions::new())
            .await
            .expect("delete_records");
        assert!(res.elements_for_topic("m")[0].error().is_err());
    }
    // gauges are refreshed every second: scrape until the lag gauge has seen the commit (on a
    // busy machine one refresh may come late), then check everything on that scrape
    let lag = |body: &str| {
        value(
            body,
            "tiercel_group_lag",
            &["group=\"tiercel-tests\"", "topic=\"m\"", "partition=\"0\""],
        )
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let body = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let body = tokio::task::block_in_place(|| scrape(metrics_addr));
        if lag(&body) == Some(4.0) || std::time::Instant::now() > deadline {
            break body;
        }
    };
    assert_eq!(
        value(&body, "tiercel_produce_records_total", &["topic=\"m\""]),
        Some(6.0)
    );
    assert_eq!(
        value(
            &body,
            "tiercel_request_errors_total",
            &["api=\"DeleteRecords\"", "error=\"OffsetOutOfRange\""]
        ),
        Some(1.0),
        "{body}"
    );
    assert!(value(&body, "tiercel_fetch_records_total", &["topic=\"m\""]).unwrap_or(0.0) >= 3.0);
    assert_eq!(lag(&body), Some(4.0), "{body}");
    assert!(
        value(&body, "tiercel_fetch_wait_seconds_count", &[]).unwrap_or(0.0) >= 1.0,
        "the consumer long-polled at the end of the log"
    );
    assert!(value(&body, "tiercel_requests_in_flight", &[]).is_some());
    assert_eq!(
        value(
            &body,
            "tiercel_partition_high_watermark",
            &["topic=\"m\"", "partition=\"0\""]
        ),
        Some(6.0)
    );

    // transactions: one committed, one aborted; the LSO follows the HW once both ended, and an
    // open one holds it back
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let bs = b.bootstrap();
    let txp = tokio::task::spawn_blocking(move || {
        let t = Duration::from_secs(20);
        let p: BaseProducer = rdkafka::config::ClientConfig::new()
            .set("bootstrap.servers", &bs)
            .set("transactional.id", "metrics-tx")
            .create()
            .expect("producer");
        p.init_transactions(t).expect("init");
        for commit in [true, false, true] {
            p.begin_transaction().expect("begin");
            p.send(BaseRecord::<(), str>::to("mt").partition(0).payload("x"))
                .expect("send");
            p.flush(t).expect("flush");
            if commit {
                p.commit_transaction(t).expect("commit");
            } else {
                p.abort_transaction(t).expect("abort");
            }
        }
        p.begin_transaction().expect("begin");
        p.send(BaseRecord::<(), str>::to("mt").partition(0).payload("open"))
            .expect("send");
        p.flush(t).expect("flush");
        p
    })
    .await
    .expect("transactional producer");
    tokio::time::sleep(Duration::from_millis(1500)).await; // one gauge refresh
    let body = tokio::task::block_in_place(|| scrape(metrics_addr));
    let tx = |result: &str| {
        value(
            &body,
            "tiercel_transactions_total",
            &[&format!("result=\"{result}\"")],
        )
    };
    assert_eq!(
        (tx("commit"), tx("abort")),
        (Some(2.0), Some(1.0)),
        "{body}"
    );
    assert_eq!(value(&body, "tiercel_transactions_open", &[]), Some(1.0));
    let mt = ["topic=\"mt\"", "partition=\"0\""];
    // 3 records + 3 markers before the open transaction's record at offset 6
    assert_eq!(
        value(&body, "tiercel_partition_last_stable_offset", &mt),
        Some(6.0)
    );
    assert_eq!(
        value(&body, "tiercel_partition_high_watermark", &mt),
        Some(7.0)
    );
    tokio::task::spawn_blocking(move || drop(txp))
        .await
        .expect("drop");
    b.stop().await;
}
