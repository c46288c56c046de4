//! The start-up probe of the object store and `/ready`: a store that refuses the probe for good
//! stops the broker (exit code 2 from the binary), unless `tier_start_degraded` is set, when the
//! broker serves local data and `/ready` says why until the store answers again; with the store
//! healthy `/ready` is 200. The metrics listener on port 0 reports the port it bound.

#![allow(clippy::disallowed_methods)] // a test (or benchmark) reads and writes its files directly

mod common;

use common::free_addr;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tiercel::broker::{Broker, BrokerError};
use tiercel::clock::SystemClock;
use tiercel::config::{Config, StoreConfig, TierConfig};
use tiercel::tier::faults::{Fault, FaultSwitch, FaultyStore};
use tiercel::tier::Tier;

/// `GET path` on the broker's HTTP listener: (status, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

fn config(dir: &std::path::Path, degraded: bool) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        metrics_listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.join("data"),
        tier_start_degraded: degraded,
        ..Config::default()
    }
}

/// A tier over `bucket` behind a fault switch (a tier is one broker's: its tasks stop with it).
fn faulty_tier(bucket: &Arc<object_store::memory::InMemory>) -> (Arc<Tier>, Arc<FaultSwitch>) {
    let (store, switch) = FaultyStore::new(bucket.clone());
    let tier = Tier::with_store(
        store,
        "pfx".into(),
        &TierConfig {
            url: "memory://probe-test".into(),
            cache_bytes: 1 << 20,
            upload_concurrency: 1,
            store: StoreConfig {
                request_timeout: Duration::from_secs(2),
                max_attempts: 2,
                ..StoreConfig::default()
            },
        },
    );
    (tier, switch)
}

/// Runs `broker` until the returned sender fires.
fn spawn(
    broker: Broker,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), BrokerError>>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(broker.run(async {
        let _ = stopped.await;
    }));
    (stop, run)
}

async fn ready(addr: SocketAddr) -> (u16, String) {
    tokio::task::spawn_blocking(move || get(addr, "/ready"))
        .await
        .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_store_stops_the_broker_unless_told_to_start_degraded() {
    let dir = tempfile::tempdir().expect("tmp");
    let bucket = Arc::new(object_store::memory::InMemory::new());
    // a healthy store: ready, and the data dir gets its catalog
    let (tier, _) = faulty_tier(&bucket);
    let broker = Broker::bind_with(config(dir.path(), false), Arc::new(SystemClock), Some(tier))
        .await
        .expect("starts");
    let metrics = broker.metrics_addr;
    assert_ne!(metrics.port(), 0, "the bound port, not the :0 asked for");
    let (stop, run) = spawn(broker);
    let (status, body) = ready(metrics).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("tier: ok") && body.contains("kafka: serving"),
        "{body}"
    );
    let _ = stop.send(());
    run.await.expect("join").expect("clean stop");

    // the same store now refuses every request for good: the start stops there
    let (tier, switch) = faulty_tier(&bucket);
    switch.set(Fault::Denied);
    let refused =
        Broker::bind_with(config(dir.path(), false), Arc::new(SystemClock), Some(tier)).await;
    assert!(
        matches!(refused, Err(BrokerError::TierRefused(_))),
        "a store refusing the probe stops the start"
    );

    // told to start degraded, it serves local data and /ready says why
    let (tier, switch) = faulty_tier(&bucket);
    switch.set(Fault::Denied);
    let broker = Broker::bind_with(config(dir.path(), true), Arc::new(SystemClock), Some(tier))
        .await
        .expect("starts degraded");
    let metrics = broker.metrics_addr;
    let (stop, run) = spawn(broker);
    let (status, body) = ready(metrics).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("tier: refusing"), "{body}");
    assert!(body.contains("kafka: serving"), "{body}");
    // the store comes back: the catalog mirror's next attempt succeeds and /ready follows
    switch.set(Fault::Healthy);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = ready(metrics).await;
        if status == 200 {
            assert!(body.contains("tier: ok"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "still not ready: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, body) = tokio::task::spawn_blocking(move || get(metrics, "/metrics"))
        .await
        .expect("join");
    assert_eq!(status, 200);
    assert!(body.contains("tiercel_tier_available"), "{body}");
    let _ = stop.send(());
    run.await.expect("join").expect("clean stop");
}

#[test]
fn the_binary_exits_2_when_the_bucket_refuses() {
    let dir = tempfile::tempdir().expect("tmp");
    // a file tier whose directory cannot be created: the path runs through a regular file
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"x").expect("write");
    let url = format!("file://{}/tier", blocker.display());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tiercel"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .args([
            "--metrics-listen",
            &free_addr().to_string(),
            "--tier-url",
            &url,
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error:"), "{err}");
}
