//! Group commit on the appending thread: syncs after appends ([`Partition::sync_after_append`])
//! and the acks=all path of [`LogManager::append_all`].
use super::*;
use crate::clock::ManualClock;
use crate::format::batch::tests::make_batch;
use crate::log::LogManager;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

const NOW: i64 = 1_700_000_000_000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 10, // rolls along the way: finalized segments are synced too
        segment_ms: 60_000,
        remote_storage_enable: false,
        flush_ms: i64::MAX, // the flusher's interval round is the broker's: an hour here
        ..LogConfig::default()
    }
}

fn batch(n: i32) -> Bytes {
    Bytes::copy_from_slice(&make_batch(0, n, 100, NOW))
}

async fn open(dir: &Path) -> Arc<Partition> {
    let clock = Arc::new(ManualClock::new(NOW));
    Partition::open("t", 0, dir.join("t-0"), config(), clock, false, None)
        .await
        .expect("open")
}

fn refuse_txn() -> crate::log::Verify {
    Arc::new(|_| Err(LogError::InvalidTxnState))
}

/// Threads that append and then sync, started together round after round with no flusher
/// running: however their syncs interleave (a thread that finds a sync running leaves its data
/// to that one), everything appended is durable once they have all returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_after_appends_leave_nothing_behind() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = open(dir.path()).await;
    let (threads, rounds) = (6, 150);
    let together = Arc::new(std::sync::Barrier::new(threads));
    let behind = Arc::new(AtomicI64::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (p, together, behind) = (p.clone(), together.clone(), behind.clone());
            std::thread::spawn(move || {
                for _ in 0..rounds {
                    together.wait();
                    let prepared = p.prepare(batch(1), refuse_txn()).expect("valid");
                    p.append_prepared(prepared).expect("append");
                    p.sync_after_append();
                    if together.wait().is_leader() {
                        let o = p.offsets();
                        behind.fetch_add(o.log_end_offset - o.high_watermark, Ordering::SeqCst);
                    }
                    together.wait();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("appender");
    }
    assert_eq!(
        behind.load(Ordering::SeqCst),
        0,
        "records left unsynced after all their appenders returned"
    );
    assert_eq!(p.offsets().high_watermark, (threads * rounds) as i64);
    assert!(!p.log.needs_flush(), "nothing left unsynced");
}

/// acks=all through the manager: the append's own thread syncs one partition, the flushers
/// the others, at once, not after the flush interval (an hour here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acks_all_append_is_durable_without_waiting_for_the_interval() {
    let dir = tempfile::tempdir().expect("tmp");
    let logs = Arc::new(
        LogManager::open(
            dir.path(),
            Arc::new(ManualClock::new(NOW)),
            Duration::from_secs(3600),
            None,
        )
        .await
        .expect("logs"),
    );
    let mut parts = Vec::new();
    for i in 0..3 {
        let p = logs
            .create_partition("t", uuid::Uuid::from_u128(7), i, config())
            .await
            .expect("create");
        parts.push(p);
    }
    let batches = parts
        .iter()
        .map(|p| (p.clone(), p.prepare(batch(2), refuse_txn()).expect("valid")))
        .collect();
    let appended = logs.append_all(batches, true).await;
    for (p, info) in parts.iter().zip(appended) {
        let info = info.expect("appended");
        tokio::time::timeout(Duration::from_secs(10), p.wait_synced(info.last_offset + 1))
            .await
            .expect("synced well before the flush interval")
            .expect("durable");
    }

    // without acks=all nothing syncs before the interval
    let batches = vec![(
        parts[0].clone(),
        parts[0].prepare(batch(2), refuse_txn()).expect("valid"),
    )];
    let appended = logs.append_all(batches, false).await;
    let end = appended[0].as_ref().expect("appended").last_offset + 1;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(parts[0].offsets().high_watermark < end);
    logs.shutdown().await.expect("shutdown");
}

/// A failed sync takes the partition offline, and no later sync of the log succeeds: the kernel
/// reports a failed write-back once, so a second `fsync` of the same file could say "done" for
/// data the first one lost.
#[tokio::test]
async fn after_a_failed_sync_nothing_is_called_durable() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = open(dir.path()).await;
    let info = p.append(batch(3)).await.expect("append");
    // the new segment's directory entry cannot be synced while the directory is elsewhere
    let moved = dir.path().join("moved");
    std::fs::rename(dir.path().join("t-0"), &moved).expect("move away");
    assert_eq!(p.sync_after_append(), 0);
    std::fs::rename(&moved, dir.path().join("t-0")).expect("move back");
    assert!(
        p.log.flush().is_err(),
        "a sync after a failed one must fail too"
    );
    assert_eq!(p.offsets().high_watermark, 0);
    assert!(matches!(
        p.wait_synced(info.last_offset + 1).await,
        Err(LogError::Offline)
    ));
}
