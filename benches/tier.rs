//! Tier benchmark against a real S3 endpoint (benches/tier.sh starts SeaweedFS and sets the
//! AWS_* variables). One run prints, as JSON on one line:
//!
//! - `put_mbps`: a plain loop of sequential PUTs of segment-sized objects through the same
//!   object_store client, the baseline;
//! - `upload_mbps`: a partition's closed segments uploaded by the tier (objects, indexes and a
//!   manifest version each), from queueing to the last manifest;
//! - `remote_read_mbps`: a consumer-style sequential read of the whole partition from the bucket
//!   (cold cache, read-ahead on);
//! - `cold_read_ms_p50` / `_p90`: one fetch at a random remote offset with an empty cache.

#![allow(clippy::disallowed_methods)] // a test (or benchmark) reads and writes its files directly

use object_store::ObjectStoreExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tiercel::clock::{Clock, SystemClock};
use tiercel::config::{LogConfig, StoreConfig, TierConfig};
use tiercel::format::batch::put_varint;
use tiercel::log::partition::Partition;
use tiercel::tier::store;
use tiercel::tier::Tier;

const SEGMENT: i64 = 8 << 20;
const TOTAL: usize = 128 << 20;
const RECORDS_PER_BATCH: usize = 64;
const VALUE: usize = 1000;

/// An uncompressed magic-v2 batch of `RECORDS_PER_BATCH` records.
fn batch(ts: i64) -> Vec<u8> {
    let mut records = Vec::new();
    for i in 0..RECORDS_PER_BATCH {
        let mut r = vec![0u8];
        put_varint(&mut r, 0);
        put_varint(&mut r, i as i64);
        put_varint(&mut r, -1);
        put_varint(&mut r, VALUE as i64);
        r.extend(std::iter::repeat_n(b'v', VALUE));
        put_varint(&mut r, 0);
        put_varint(&mut records, r.len() as i64);
        records.extend(r);
    }
    let mut b = Vec::with_capacity(61 + records.len());
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((49 + records.len()) as i32).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // leader epoch
    b.push(2); // magic
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, below
    b.extend_from_slice(&0i16.to_be_bytes()); // attributes
    b.extend_from_slice(&(RECORDS_PER_BATCH as i32 - 1).to_be_bytes());
    b.extend_from_slice(&ts.to_be_bytes());
    b.extend_from_slice(&ts.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&(RECORDS_PER_BATCH as i32).to_be_bytes());
    b.extend(records);
    let crc = tiercel::format::batch::compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes: SEGMENT,
        segment_ms: i64::MAX,
        retention_ms: -1,
        retention_bytes: -1,
        max_message_bytes: 1 << 20,
        timestamp_before_max_ms: i64::MAX,
        timestamp_after_max_ms: i64::MAX,
        remote_storage_enable: true,
        local_retention_bytes: 0,
        ..LogConfig::default()
    }
}

fn tier(url: &str, prefix: &str) -> Arc<Tier> {
    let opts = TierConfig {
        url: url.to_string(),
        cache_bytes: 256 << 20,
        upload_concurrency: 4,
        store: StoreConfig {
            request_timeout: Duration::from_secs(30),
            max_attempts: 3,
            ..StoreConfig::default()
        },
    };
    let (s, _) = store::build(url, &opts.store).expect("store");
    Tier::with_store(s, prefix.into(), &opts)
}

/// A new tier (empty cache) over the bucket and the partition reopened on it.
async fn tiered(
    url: &str,
    prefix: &str,
    dir: &std::path::Path,
    topic_id: uuid::Uuid,
) -> (Arc<Tier>, Arc<Partition>) {
    let t = tier(url, prefix);
    let remote = t
        .open_partition("bench", topic_id, 0)
        .await
        .expect("manifest");
    let p = Partition::open(
        "bench",
        0,
        dir.join("bench-0"),
        log_config(),
        Arc::new(SystemClock),
        false,
        Some(remote),
    )
    .await
    .expect("reopen");
    (t, p)
}

fn median(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * q).round() as usize]
}

#[tokio::main]
async fn main() {
    let url = std::env::var("TIERCEL_BENCH_URL").unwrap_or_else(|_| "s3://tiercel".into());
    let run = uuid::Uuid::new_v4().simple().to_string();
    let clock = Arc::new(SystemClock);
    let dir = tempfile::tempdir().expect("tmp");
    let topic_id = uuid::Uuid::new_v4();

    // the data: a local partition rolled into 8 MiB segments
    let p = Partition::open(
        "bench",
        0,
        dir.path().join("bench-0"),
        log_config(),
        clock.clone(),
        false,
        None,
    )
    .await
    .expect("open");
    let mut written = 0;
    while written < TOTAL {
        let b = batch(clock.now_ms());
        p.append(bytes::Bytes::copy_from_slice(&b))
            .await
            .expect("append");
        written += b.len();
    }
    p.flush_once().await;
    p.close().await.expect("close");
    let end = p.offsets().log_end_offset;
    drop(p);
    let segment_files: Vec<std::path::PathBuf> = {
        let mut v: Vec<_> = std::fs::read_dir(dir.path().join("bench-0"))
            .expect("dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        v.sort();
        v.pop(); // the active segment is not uploaded
        v
    };
    let closed_bytes: u64 = segment_files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();

    // baseline: sequential PUTs of the same objects through the same client
    let (raw, _) = store::build(
        &url,
        &StoreConfig {
            request_timeout: Duration::from_secs(30),
            max_attempts: 1,
            ..StoreConfig::default()
        },
    )
    .expect("store");
    let started = Instant::now();
    for (i, f) in segment_files.iter().enumerate() {
        let data = bytes::Bytes::from(std::fs::read(f).expect("read"));
        raw.put(&format!("plain-{run}/{i}").into(), data.into())
            .await
            .expect("put");
    }
    let put_mbps = closed_bytes as f64 / 1e6 / started.elapsed().as_secs_f64();

    // the tier: reopen with a remote log; every closed segment is queued at open
    let started = Instant::now();
    let (t, p) = tiered(&url, &format!("tier-{run}"), dir.path(), topic_id).await;
    while p.upload_lag() != (0, 0) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let upload_mbps = closed_bytes as f64 / 1e6 / started.elapsed().as_secs_f64();
    p.enforce_retention().await.expect("retention");
    let remote_end = p.local_start_offset();
    assert!(remote_end > 0 && remote_end < end);
    drop(p);
    t.shutdown().await;

    // sequential remote read with a cold cache
    let (t, p) = tiered(&url, &format!("tier-{run}"), dir.path(), topic_id).await;
    let started = Instant::now();
    let (mut next, mut bytes) = (0i64, 0usize);
    while next < remote_end {
        let r = p.fetch(next, 1 << 20, true).await.expect("remote fetch");
        let mut pos = 0;
        while pos < r.records.len() {
            let (_, len) = tiercel::format::batch::peek_frame(&r.records[pos..]).expect("frame");
            let h = tiercel::format::batch::validate(&r.records[pos..pos + len]).expect("batch");
            next = h.last_offset() + 1;
            pos += len;
        }
        bytes += r.records.len();
    }
    let remote_read_mbps = bytes as f64 / 1e6 / started.elapsed().as_secs_f64();
    drop(p);
    t.shutdown().await;

    // cold reads: a fresh tier (empty cache) per fetch, at spread-out offsets
    let mut cold = Vec::new();
    for i in 0..15 {
        let (t, p) = tiered(&url, &format!("tier-{run}"), dir.path(), topic_id).await;
        let offset = remote_end * (2 * i + 1) / 31;
        let started = Instant::now();
        let r = p.fetch(offset, 1 << 20, true).await.expect("cold fetch");
        cold.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(!r.records.is_empty());
        drop(p);
        t.shutdown().await;
    }
    println!(
        "{{\"segments\": {}, \"bytes\": {closed_bytes}, \"put_mbps\": {put_mbps:.1}, \"upload_mbps\": {upload_mbps:.1}, \"remote_read_mbps\": {remote_read_mbps:.1}, \"cold_read_ms_p50\": {:.1}, \"cold_read_ms_p90\": {:.1}}}",
        segment_files.len(),
        median(cold.clone(), 0.5),
        median(cold, 0.9)
    );
}
