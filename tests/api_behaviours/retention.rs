//! Time-based segment rolling (`segment.ms`) and retention (`retention.ms`) on the broker's
//! real clock, as a producer and a consumer see them.

use crate::common::TestBroker;
use crate::util::*;
use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureRecord;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

fn segment_files(b: &TestBroker, dir: &str) -> usize {
    std::fs::read_dir(b.dir.path().join("data").join(dir))
        .expect("partition dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_ms_rolls_and_retention_ms_deletes_on_the_wall_clock() {
    let b = TestBroker::start_with(|c| c.log_retention_check_interval_ms = 100).await;
    create_topic_with(
        &b,
        "aging",
        1,
        &[
            ("segment.ms", "300"),
            ("retention.ms", "2000"),
            ("remote.storage.enable", "false"),
        ],
    )
    .await;
    let p = b.producer(&[("linger.ms", "0")]);
    let send = |v: &'static str| {
        let p = p.clone();
        async move {
            p.send(FutureRecord::<(), str>::to("aging").payload(v), T)
                .await
                .expect("delivered")
        }
    };
    let started = Instant::now();
    send("old").await;
    assert_eq!(segment_files(&b, "aging-0"), 1);
    // older than segment.ms: the next append rolls a new segment
    tokio::time::sleep(Duration::from_millis(500)).await;
    send("new").await;
    assert_eq!(segment_files(&b, "aging-0"), 2, "segment.ms rolled");
    let c = b.consumer();
    assert_eq!(
        c.fetch_watermarks("aging", 0, T).expect("watermarks"),
        (0, 2)
    );
    // once "old" is older than retention.ms its closed segment is deleted: the log starts
    // at "new"
    let mut low = 0;
    while low == 0 && started.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        low = c.fetch_watermarks("aging", 0, T).expect("watermarks").0;
    }
    assert_eq!(low, 1, "retention.ms deleted the expired segment");
    assert!(
        started.elapsed() >= Duration::from_millis(2000),
        "not before retention.ms"
    );
    b.stop().await;
}
