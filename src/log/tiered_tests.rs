//! The log over a tier: uploads, local retention of uploaded segments, remote reads, recovery of
//! an empty data dir from the bucket, outages and corrupt remote objects. The store is the real
//! in-memory `object_store`, under the fault-injecting layer where a test needs an outage.

use super::partition::{Partition, Verify};
use super::{LogConfig, LogError};
use crate::clock::{Clock, ManualClock};
use crate::config::{StoreConfig, TierConfig};
use crate::format::batch::{self, tests::make_batch};
use crate::tier::faults::{Fault, FaultSwitch, FaultyStore};
use crate::tier::{RemoteLog, Tier, TierError};
use object_store::{ObjectStore, ObjectStoreExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

const NOW: i64 = 1_700_000_000_000;
const TOPIC_ID: Uuid = Uuid::from_u128(7);

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        segment_ms: i64::MAX,
        retention_ms: -1,
        retention_bytes: -1,
        max_message_bytes: 1 << 20,
        timestamp_before_max_ms: i64::MAX,
        timestamp_after_max_ms: i64::MAX,
        index_interval_bytes: 512,
        remote_storage_enable: true,
        // keep only the active segment locally once the rest is uploaded
        local_retention_bytes: 0,
        ..LogConfig::default()
    }
}

struct Setup {
    tier: Arc<Tier>,
    inner: Arc<dyn ObjectStore>,
    switch: Arc<FaultSwitch>,
    clock: Arc<ManualClock>,
}

fn setup() -> Setup {
    let inner: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let (faulty, switch) = FaultyStore::new(inner.clone());
    let opts = TierConfig {
        url: "memory://".into(),
        cache_bytes: 1 << 20,
        upload_concurrency: 2,
        store: StoreConfig {
            request_timeout: Duration::from_secs(2),
            max_attempts: 2,
            ..StoreConfig::default()
        },
    };
    let tier = Tier::with_store(faulty, "pfx".into(), &opts);
    Setup {
        tier,
        inner,
        switch,
        clock: Arc::new(ManualClock::new(NOW)),
    }
}

async fn open(s: &Setup, dir: &Path) -> Arc<Partition> {
    let remote: Arc<RemoteLog> = s
        .tier
        .open_partition("t", TOPIC_ID, 0)
        .await
        .expect("manifest loads");
    Partition::open(
        "t",
        0,
        dir.join("t-0"),
        config(),
        s.clock.clone(),
        true,
        Some(remote),
    )
    .await
    .expect("open")
}

/// Appends `batches` batches of 5 records (~600 bytes each, so segments roll every ~6).
async fn produce(p: &Arc<Partition>, clock: &ManualClock, batches: usize) {
    for _ in 0..batches {
        p.append(bytes::Bytes::copy_from_slice(&make_batch(
            0,
            5,
            100,
            clock.now_ms(),
        )))
        .await
        .expect("append");
        clock.advance(10);
    }
    p.flush_once().await;
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Every offset in `[from, to)` exactly once, reading as a consumer would.
async fn read_all(p: &Arc<Partition>, from: i64, to: i64) -> Vec<i64> {
    let mut offsets = Vec::new();
    let mut next = from;
    while next < to {
        let r = p.fetch(next, 1500, true).await.expect("fetch");
        assert!(!r.records.is_empty(), "nothing returned at {next}");
        let mut pos = 0;
        while pos < r.records.len() {
            let (_, len) = batch::peek_frame(&r.records[pos..]).expect("frame");
            let h = batch::validate(&r.records[pos..pos + len]).expect("whole batch");
            for o in h.base_offset..=h.last_offset() {
                if o >= next {
                    offsets.push(o);
                }
            }
            next = next.max(h.last_offset() + 1);
            pos += len;
        }
    }
    offsets
}

#[tokio::test]
async fn uploaded_segments_leave_local_disk_and_are_read_back_from_the_bucket() {
    let s = setup();
    let dir = tempfile::tempdir().expect("tmp");
    let p = open(&s, dir.path()).await;
    produce(&p, &s.clock, 40).await;
    let end = p.offsets().log_end_offset;
    assert_eq!(end, 200);
    let remote = p.remote().expect("tiered").clone();
    wait_for("uploads", || p.upload_lag() == (0, 0)).await;
    let (start, remote_end) = remote.range().expect("remote history");
    assert_eq!(start, 0);
    p.enforce_retention().await.expect("retention");
    assert_eq!(
        p.local_start_offset(),
        remote_end,
        "only the active segment stays local"
    );
    assert_eq!(
        p.offsets().log_start_offset,
        0,
        "history reaches into the bucket"
    );
    let got = read_all(&p, 0, end).await;
    assert_eq!(got, (0..end).collect::<Vec<_>>());
    // objects follow the documented layout and the manifest lists them
    let listed: Vec<String> = {
        use futures::StreamExt;
        let mut out = Vec::new();
        let mut l = s.inner.list(Some(&"pfx".into()));
        while let Some(m) = l.next().await {
            out.push(m.expect("list").location.to_string());
        }
        out
    };
    let dir_key = format!("pfx/topics/t-{}/0", TOPIC_ID.simple());
    assert!(listed.contains(&format!("{dir_key}/00000000000000000000.log")));
    assert!(listed.contains(&format!("{dir_key}/00000000000000000000.index")));
    assert!(listed
        .iter()
        .any(|k| k.starts_with(&format!("{dir_key}/manifest/"))));
    // ListOffsets by timestamp finds a record that only the bucket holds
    let (off, ts) = p
        .find_offset_for_timestamp(NOW + 25)
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(
        (off, ts),
        (15, NOW + 30),
        "first batch at or after the time"
    );
}

#[tokio::test]
async fn an_empty_data_dir_continues_from_the_bucket() {
    let s = setup();
    let first = tempfile::tempdir().expect("tmp");
    let p = open(&s, first.path()).await;
    produce(&p, &s.clock, 30).await;
    wait_for("uploads", || p.upload_lag() == (0, 0)).await;
    let remote_end = p.remote().and_then(|r| r.uploaded_end()).expect("uploaded");
    drop(p);
    // a new disk: nothing local
    let second = tempfile::tempdir().expect("tmp");
    let p = open(&s, second.path()).await;
    let o = p.offsets();
    assert_eq!(o.log_start_offset, 0);
    assert_eq!(
        o.log_end_offset, remote_end,
        "offsets continue, never reused"
    );
    assert_eq!(
        read_all(&p, 0, remote_end).await,
        (0..remote_end).collect::<Vec<_>>()
    );
    let next = p
        .append(bytes::Bytes::copy_from_slice(&make_batch(
            0,
            1,
            10,
            s.clock.now_ms(),
        )))
        .await
        .expect("append");
    assert_eq!(next.base_offset, remote_end);
}

#[tokio::test]
async fn an_outage_never_blocks_produce_and_uploads_resume_after_it() {
    let s = setup();
    let dir = tempfile::tempdir().expect("tmp");
    let p = open(&s, dir.path()).await;
    s.switch.set(Fault::Unavailable);
    produce(&p, &s.clock, 40).await;
    assert_eq!(
        p.offsets().high_watermark,
        200,
        "produce and flush unaffected"
    );
    wait_for("failed attempts", || s.switch.refused() >= 2).await;
    p.enforce_retention().await.expect("retention");
    assert_eq!(
        p.local_start_offset(),
        0,
        "nothing uploaded: nothing deleted locally"
    );
    assert!(p.upload_lag().1 >= 5);
    s.switch.set(Fault::Healthy);
    // the uploader pauses up to a few seconds between attempts
    for _ in 0..20 {
        if p.upload_lag() == (0, 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(p.upload_lag(), (0, 0), "uploads resumed");
    p.enforce_retention().await.expect("retention");
    assert!(p.local_start_offset() > 0);
    assert_eq!(read_all(&p, 0, 200).await, (0..200).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_hanging_store_is_cut_off_by_the_request_timeout() {
    let s = setup();
    let dir = tempfile::tempdir().expect("tmp");
    let p = open(&s, dir.path()).await;
    produce(&p, &s.clock, 20).await;
    wait_for("uploads", || p.upload_lag() == (0, 0)).await;
    p.enforce_retention().await.expect("retention");
    s.switch.set(Fault::Hang);
    let started = std::time::Instant::now();
    let e = p.fetch(0, 1000, true).await.expect_err("store hangs");
    assert!(matches!(e, LogError::Tier(TierError::Store(_))), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded by the timeout"
    );
    // local reads are unaffected
    let local = p.local_start_offset();
    assert!(!p
        .fetch(local, 1000, true)
        .await
        .expect("local")
        .records
        .is_empty());
}

#[tokio::test]
async fn corrupt_or_missing_remote_objects_are_storage_errors() {
    let s = setup();
    let dir = tempfile::tempdir().expect("tmp");
    let p = open(&s, dir.path()).await;
    produce(&p, &s.clock, 20).await;
    wait_for("uploads", || p.upload_lag() == (0, 0)).await;
    p.enforce_retention().await.expect("retention");
    let key = format!(
        "pfx/topics/t-{}/0/00000000000000000000.log",
        TOPIC_ID.simple()
    );
    let good = s
        .inner
        .get(&key.as_str().into())
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes");
    let mut bad = good.to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0xff; // a flipped byte inside the last batch's records
    s.inner
        .put(&key.as_str().into(), bad.into())
        .await
        .expect("put");
    // the first batches are intact; the damaged one is refused when reached
    let e = loop_until_error(&p).await;
    assert!(
        matches!(e, LogError::Tier(TierError::Corrupt { .. })),
        "{e}"
    );
    // a segment whose object vanished from the bucket (never read, so not cached)
    let second = p.remote().expect("tiered").manifest().segments[1].clone();
    let key = format!(
        "pfx/topics/t-{}/0/{:020}.log",
        TOPIC_ID.simple(),
        second.base_offset
    );
    s.inner.delete(&key.as_str().into()).await.expect("delete");
    let e = p
        .fetch(second.base_offset, 1000, true)
        .await
        .expect_err("missing object");
    assert!(matches!(e, LogError::Tier(TierError::Store(_))), "{e}");
}

async fn loop_until_error(p: &Arc<Partition>) -> LogError {
    let mut next = 0;
    for _ in 0..100 {
        match p.fetch(next, 100_000, true).await {
            Ok(r) => {
                let mut pos = 0;
                while pos < r.records.len() {
                    let (_, len) = batch::peek_frame(&r.records[pos..]).expect("frame");
                    let h = batch::validate(&r.records[pos..pos + len])
                        .expect("served batches are whole");
                    next = h.last_offset() + 1;
                    pos += len;
                }
            }
            Err(e) => return e,
        }
    }
    panic!("the corrupt batch was served");
}

#[tokio::test]
async fn remote_retention_drops_expired_segments_from_the_manifest_and_the_bucket() {
    let s = setup();
    let dir = tempfile::tempdir().expect("tmp");
    let p = open(&s, dir.path()).await;
    produce(&p, &s.clock, 40).await;
    wait_for("uploads", || p.upload_lag() == (0, 0)).await;
    let mut c = config();
    c.retention_ms = 3_600_000;
    p.set_config(c);
    p.enforce_retention().await.expect("retention");
    let remote = p.remote().expect("tiered").clone();
    let (_, remote_end) = remote.range().expect("range");
    // an hour and a bit later, everything but the active segment has expired
    s.clock.advance(3_600_000 + 1);
    p.enforce_retention().await.expect("retention");
    wait_for("remote retention", || remote.range().is_none()).await;
    assert_eq!(
        p.offsets().log_start_offset,
        remote_end,
        "log start moves past the bucket"
    );
    assert!(matches!(
        p.fetch(0, 1000, true).await,
        Err(LogError::OffsetOutOfRange { .. })
    ));
    let m = remote.manifest();
    assert!(m.segments.is_empty());
    assert_eq!(
        m.end_offset(),
        Some(remote_end),
        "the end offset survives retention"
    );
    for _ in 0..100 {
        if log_objects(&s.inner).await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("expired segment objects are still in the bucket");
}

async fn log_objects(store: &Arc<dyn ObjectStore>) -> usize {
    use futures::StreamExt;
    let mut l = store.list(Some(&"pfx".into()));
    let mut n = 0;
    while let Some(m) = l.next().await {
        if m.expect("list").location.as_ref().ends_with(".log") {
            n += 1;
        }
    }
    n
}

#[tokio::test]
async fn a_store_down_at_start_up_is_attached_once_it_answers() {
    use super::LogManager;
    let s = setup();
    let dir = tempfile::tempdir().expect("tmp");
    let mut c = config();
    c.local_retention_bytes = -2; // keep local copies: the restart has local data
    let logs = Arc::new(
        LogManager::open(
            dir.path(),
            s.clock.clone(),
            Duration::from_millis(5),
            Some(s.tier.clone()),
        )
        .await
        .expect("logs"),
    );
    let p = logs
        .create_partition("t", TOPIC_ID, 0, c.clone())
        .await
        .expect("create");
    produce(&p, &s.clock, 20).await;
    wait_for("uploads", || p.upload_lag() == (0, 0)).await;
    let uploaded = p.remote().and_then(|r| r.uploaded_end());
    drop(p);
    logs.shutdown().await.expect("shutdown");

    // restart while the store is down: the partition serves its local data at once
    s.switch.set(Fault::Unavailable);
    let logs = LogManager::open(
        dir.path(),
        s.clock.clone(),
        Duration::from_millis(5),
        Some(s.tier.clone()),
    )
    .await
    .expect("logs");
    let p = logs
        .open_partition("t", TOPIC_ID, 0, c.clone())
        .await
        .expect("opens without the bucket");
    assert!(p.remote().is_none());
    assert_eq!(p.offsets().log_end_offset, 100);
    assert!(!p
        .fetch(0, 1000, true)
        .await
        .expect("local read")
        .records
        .is_empty());
    s.switch.set(Fault::Healthy);
    for _ in 0..50 {
        if p.remote().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let remote = p.remote().expect("attached once the store answers");
    assert_eq!(remote.uploaded_end(), uploaded, "the manifest as it was");
    logs.shutdown().await.expect("shutdown");
}

/// The partition's log starts at `start`: the offset before it is out of range, it is readable.
async fn assert_starts_at(p: &Arc<Partition>, start: i64) {
    assert_eq!(p.offsets().log_start_offset, start);
    assert!(matches!(
        p.fetch(start - 1, 1000, true).await,
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(!p
        .fetch(start, 1000, true)
        .await
        .expect("readable")
        .records
        .is_empty());
}

#[tokio::test]
async fn delete_records_reaches_into_the_bucket() {
    let s = setup();
    let dir = tempfile::tempdir().expect("tmp");
    let p = open(&s, dir.path()).await;
    produce(&p, &s.clock, 40).await;
    wait_for("uploads", || p.upload_lag() == (0, 0)).await;
    p.enforce_retention().await.expect("retention");
    let remote = p.remote().expect("tiered").clone();
    let second = remote.manifest().segments[1].clone();
    let target = second.base_offset + 2; // inside the second remote segment
    assert_eq!(p.delete_records(target).await.expect("delete"), target);
    assert_starts_at(&p, target).await;
    // the first remote segment lies wholly below: remote retention removes it
    wait_for("first remote segment deleted", || {
        remote.manifest().segments.first().map(|s| s.base_offset) == Some(second.base_offset)
    })
    .await;
    assert!(matches!(
        p.delete_records(1_000_000).await,
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(
        remote.manifest().log_start_offset,
        Some(target),
        "the manifest carries the floor"
    );
    // persisted: a reopen keeps the start
    drop(p);
    let p = open(&s, dir.path()).await;
    assert_eq!(p.offsets().log_start_offset, target);
    // and so does a broker whose disk is gone: the partition rebuilt from the bucket alone
    // must not hand the deleted records below `target` out again
    drop(p);
    let wiped = tempfile::tempdir().expect("tmp");
    let p = open(&s, wiped.path()).await;
    assert_starts_at(&p, target).await;
}

#[tokio::test]
async fn read_committed_below_the_local_log_finds_aborted_transactions_in_the_bucket() {
    let s = setup();
    let dir = tempfile::tempdir().expect("tmp");
    let p = open(&s, dir.path()).await;
    let allow: Verify = Arc::new(|_| Ok(()));
    let aborted = batch::tests::transactional(make_batch(0, 5, 100, NOW), 42, 0, 0);
    p.append_verified(bytes::Bytes::copy_from_slice(&aborted), allow.clone())
        .await
        .expect("txn"); // 0..=4
    p.append_marker(42, 0, false, 0).await.expect("abort"); // 5
    produce(&p, &s.clock, 40).await;
    wait_for("uploads", || p.upload_lag() == (0, 0)).await;
    p.enforce_retention().await.expect("retention");
    assert!(
        p.local_start_offset() > 6,
        "the transaction is only in the bucket now"
    );
    let key = format!(
        "pfx/topics/t-{}/0/00000000000000000000.txnindex",
        TOPIC_ID.simple()
    );
    assert!(
        s.inner.head(&key.as_str().into()).await.is_ok(),
        "{key} uploaded"
    );
    let (r, list) = p.fetch_committed(0, 1 << 20, true).await.expect("read");
    assert!(!r.records.is_empty());
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(
        (
            list[0].producer_id,
            list[0].first_offset,
            list[0].last_offset
        ),
        (42, 0, 5)
    );
    let (_, later) = p.fetch_committed(6, 1 << 20, true).await.expect("read");
    assert!(
        later.is_empty(),
        "nothing aborted after the marker: {later:?}"
    );
}

#[tokio::test]
async fn segments_an_open_transaction_reaches_into_stay_local_and_out_of_the_bucket() {
    let s = setup();
    let dir = tempfile::tempdir().expect("tmp");
    let p = open(&s, dir.path()).await;
    produce(&p, &s.clock, 10).await; // 0..50
    let allow: Verify = Arc::new(|_| Ok(()));
    let open_txn = batch::tests::transactional(make_batch(0, 5, 100, NOW), 42, 0, 0);
    p.append_verified(bytes::Bytes::copy_from_slice(&open_txn), allow.clone())
        .await
        .expect("txn"); // 50..=54
    produce(&p, &s.clock, 30).await;
    let remote = p.remote().expect("tiered").clone();
    // everything durable is queued once flush_once returns; wait until the uploader is idle
    p.flush_once().await;
    wait_for("the uploader to finish its queue", || remote.pending() == 0).await;
    // the first closed segment reaching past offset 50 holds itself and all after it back
    let held = p
        .log
        .summary()
        .closed
        .iter()
        .find(|seg| seg.next_offset > 50)
        .map(|seg| seg.base_offset)
        .expect("a closed segment reaches into the transaction");
    assert!(held > 0, "setup: segments below the transaction exist");
    assert_eq!(
        remote.uploaded_end(),
        Some(held),
        "exactly the segments below the open transaction are uploaded"
    );
    assert!(p.upload_lag().1 > 0, "the segments it reaches into wait");
    p.enforce_retention().await.expect("retention");
    let start = p.local_start_offset();
    assert!(
        start > 0 && start <= 50,
        "uploaded segments before the transaction go ({start})"
    );
    // after a restart the transaction still holds the last stable offset
    drop(p);
    let p = open(&s, dir.path()).await;
    assert_eq!(p.offsets().last_stable_offset, 50);
    p.append_marker(42, 0, true, 0).await.expect("commit");
    p.flush_once().await;
    wait_for("the held-back segments to go up", || {
        p.upload_lag() == (0, 0)
    })
    .await;
    p.enforce_retention().await.expect("retention");
    assert!(
        p.local_start_offset() > 55,
        "once committed, retention moves on"
    );
}

#[tokio::test]
async fn a_data_dir_restored_from_the_bucket_still_knows_its_aborted_transactions() {
    let s = setup();
    let dir = tempfile::tempdir().expect("tmp");
    let p = open(&s, dir.path()).await;
    let allow: Verify = Arc::new(|_| Ok(()));
    // an aborted transaction across several segments, its marker in the active one
    for seq in 0..12 {
        let b = batch::tests::transactional(make_batch(0, 5, 100, NOW), 42, 0, seq * 5);
        p.append_verified(bytes::Bytes::copy_from_slice(&b), allow.clone())
            .await
            .expect("txn");
    }
    p.flush_once().await;
    let marker = p.append_marker(42, 0, false, 0).await.expect("abort");
    p.flush_once().await;
    wait_for("uploads", || p.upload_lag() == (0, 0)).await;
    let uploaded = p
        .remote()
        .expect("tiered")
        .uploaded_end()
        .expect("uploaded");
    assert!(
        uploaded <= marker,
        "the marker's segment is the active one, not in the bucket"
    );
    drop(p);
    // the disk is lost: only the bucket is left
    let fresh = tempfile::tempdir().expect("tmp");
    let p = open(&s, fresh.path()).await;
    let (r, aborted) = p.fetch_committed(0, 1 << 20, true).await.expect("read");
    assert!(!r.records.is_empty(), "the history is in the bucket");
    assert_eq!(aborted.len(), 1, "{aborted:?}");
    assert_eq!((aborted[0].producer_id, aborted[0].first_offset), (42, 0));
}

#[tokio::test]
async fn a_partition_with_no_local_data_waits_for_the_bucket_instead_of_restarting_at_zero() {
    use super::LogManager;
    let s = setup();
    let dir = tempfile::tempdir().expect("tmp");
    let p = open(&s, dir.path()).await;
    produce(&p, &s.clock, 20).await;
    wait_for("uploads", || p.upload_lag() == (0, 0)).await;
    let uploaded = p.remote().and_then(|r| r.uploaded_end()).expect("uploaded");
    assert!(uploaded > 0);
    drop(p);

    // the disk is lost and the store does not answer: the partition refuses to open rather
    // than hand out offsets from 0 again, which the bucket already holds
    let wiped = tempfile::tempdir().expect("tmp");
    s.switch.set(Fault::Unavailable);
    let logs = LogManager::open(
        wiped.path(),
        s.clock.clone(),
        Duration::from_millis(5),
        Some(s.tier.clone()),
    )
    .await
    .expect("logs");
    assert!(logs
        .open_partition("t", TOPIC_ID, 0, config())
        .await
        .is_err());
    // once the store answers it continues where the bucket ends
    s.switch.set(Fault::Healthy);
    let p = logs
        .open_partition("t", TOPIC_ID, 0, config())
        .await
        .expect("opens from the bucket");
    assert_eq!(p.offsets().high_watermark, uploaded);
    assert_eq!(p.offsets().log_start_offset, 0);
    assert_eq!(
        read_all(&p, 0, uploaded).await,
        (0..uploaded).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_manifest_version_another_writer_took_is_reloaded_and_built_upon() {
    let s = setup();
    let dir = tempfile::tempdir().expect("tmp");
    let p = open(&s, dir.path()).await;
    produce(&p, &s.clock, 12).await;
    wait_for("uploads", || p.upload_lag() == (0, 0)).await;
    let remote = p.remote().expect("tiered").clone();
    let before = remote.manifest();
    // another writer puts the next version first (same segments, a different document)
    let mut foreign = before.clone();
    foreign.version += 1;
    foreign.uploaded_end = before.end_offset();
    let key = format!(
        "pfx/{}",
        crate::format::manifest::manifest_key(&remote.dir, foreign.version)
    );
    s.inner
        .put(&key.as_str().into(), foreign.to_json().into())
        .await
        .expect("foreign manifest");
    // the next upload finds its version taken, reloads, and writes on top of it
    produce(&p, &s.clock, 12).await;
    wait_for("uploads", || p.upload_lag() == (0, 0)).await;
    let after = remote.manifest();
    assert!(
        after.version > foreign.version,
        "written after the foreign version: {} vs {}",
        after.version,
        foreign.version
    );
    assert!(after.segments.len() > before.segments.len());
    // nothing was lost: every uploaded offset reads back, from the bucket where local copies
    // are gone
    let end = after.end_offset().expect("end");
    assert_eq!(read_all(&p, 0, end).await, (0..end).collect::<Vec<_>>());
}
