//! Unit tests of one partition's log (no tier): offsets, flush, rolls, retention, recovery,
//! idempotent producers.
use super::*;
use crate::clock::{Clock, ManualClock};
use crate::format::batch::tests::make_batch;

const NOW: i64 = 1_700_000_000_000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 20,
        segment_ms: 60_000,
        retention_ms: 3_600_000,
        max_message_bytes: 1 << 20,
        timestamp_before_max_ms: i64::MAX,
        timestamp_after_max_ms: 3_600_000,
        remote_storage_enable: false,
        ..LogConfig::default()
    }
}

async fn open(dir: &Path, clock: Arc<ManualClock>, recover: bool) -> Arc<Partition> {
    Partition::open("t", 0, dir.join("t-0"), config(), clock, recover, None)
        .await
        .expect("open")
}

#[tokio::test]
async fn high_watermark_moves_only_after_flush() {
    let dir = tempfile::tempdir().expect("tmp");
    let clock = Arc::new(ManualClock::new(NOW));
    let p = open(dir.path(), clock, false).await;
    let info = p
        .append(bytes::Bytes::copy_from_slice(&make_batch(0, 5, 10, NOW)))
        .await
        .expect("append");
    assert_eq!((info.base_offset, info.last_offset), (0, 4));
    assert_eq!(p.offsets().log_end_offset, 5);
    assert_eq!(
        p.offsets().high_watermark,
        0,
        "nothing is visible before fdatasync"
    );
    assert!(p
        .read(0, 1 << 20, true)
        .await
        .expect("read")
        .records
        .is_empty());
    p.flush_once().await;
    assert_eq!(p.offsets().high_watermark, 5);
    p.wait_durable(5).await.expect("durable");
    let r = p.read(3, 1 << 20, true).await.expect("read");
    assert_eq!(
        batch::validate(&r.records)
            .expect("whole batch")
            .base_offset,
        0
    );
    assert!(matches!(
        p.read(6, 100, true).await,
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[tokio::test]
async fn segment_ms_rolls_and_retention_ms_deletes_by_injected_time() {
    let dir = tempfile::tempdir().expect("tmp");
    let clock = Arc::new(ManualClock::new(NOW));
    let p = open(dir.path(), clock.clone(), false).await;
    for i in 0..3 {
        p.append(bytes::Bytes::copy_from_slice(&make_batch(
            0,
            1,
            10,
            clock.now_ms(),
        )))
        .await
        .expect("append");
        clock.advance(61_000); // past segment.ms: the next append rolls
        let _ = i;
    }
    p.flush_once().await;
    assert_eq!(p.log.summary().closed.len() + 1, 3);
    assert_eq!(
        p.enforce_retention().await.expect("retention"),
        0,
        "nothing older than an hour"
    );
    clock.advance(3_600_000 - 2 * 61_000);
    // the first segment's newest record is now over an hour old, the second is not
    assert_eq!(p.enforce_retention().await.expect("retention"), 1);
    assert_eq!(p.offsets().log_start_offset, 1);
    clock.advance(10 * 3_600_000);
    // the active segment is never deleted
    assert_eq!(p.enforce_retention().await.expect("retention"), 1);
    assert_eq!(p.log.summary().closed.len() + 1, 1);
    assert_eq!(p.offsets().log_start_offset, 2);
    assert!(matches!(
        p.read(0, 100, true).await,
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[tokio::test]
async fn roll_if_due_rolls_an_idle_old_or_big_segment_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let clock = Arc::new(ManualClock::new(NOW));
    let p = open(dir.path(), clock.clone(), false).await;
    assert!(
        !p.roll_if_due(1_000, 1 << 30).await.expect("roll"),
        "an empty segment never rolls"
    );
    p.append(bytes::Bytes::copy_from_slice(&make_batch(0, 3, 10, NOW)))
        .await
        .expect("append");
    assert!(
        !p.roll_if_due(1_000, 1 << 30).await.expect("roll"),
        "young and small"
    );
    clock.advance(1_000);
    assert!(
        p.roll_if_due(1_000, 1 << 30).await.expect("roll"),
        "old enough"
    );
    assert!(
        !p.roll_if_due(1_000, 1 << 30).await.expect("roll"),
        "the new active segment is empty"
    );
    p.append(bytes::Bytes::copy_from_slice(&make_batch(0, 2, 10, NOW)))
        .await
        .expect("append");
    assert!(p.roll_if_due(60_000, 10).await.expect("roll"), "big enough");
    p.flush_once().await;
    let s = p.log.summary();
    assert_eq!(s.closed.len(), 2);
    assert_eq!((s.active_base, s.end_offset), (5, 5));
    assert_eq!(p.offsets().high_watermark, 5);
    // the rolled segments were finalized: a restart reads them back whole
    p.close().await.expect("close");
    drop(p);
    let p = open(dir.path(), clock, true).await;
    assert_eq!(p.offsets().log_end_offset, 5);
    assert_eq!(p.log.summary().closed.len(), 2);
}

#[tokio::test]
async fn timestamps_outside_the_configured_bounds_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let clock = Arc::new(ManualClock::new(NOW));
    let p = open(dir.path(), clock, false).await;
    let future = make_batch(0, 1, 10, NOW + 3_600_001);
    assert!(matches!(
        p.append(bytes::Bytes::copy_from_slice(&future)).await,
        Err(LogError::InvalidTimestamp(_))
    ));
    assert!(p
        .append(bytes::Bytes::copy_from_slice(&make_batch(
            0,
            1,
            10,
            NOW + 3_600_000
        )))
        .await
        .is_ok());
    let mut c = config();
    c.timestamp_before_max_ms = 1000;
    p.set_config(c);
    assert!(matches!(
        p.append(bytes::Bytes::copy_from_slice(&make_batch(
            0,
            1,
            10,
            NOW - 1001
        )))
        .await,
        Err(LogError::InvalidTimestamp(_))
    ));
    assert_eq!(
        p.offsets().log_end_offset,
        1,
        "refused batches take no offsets"
    );
}

#[tokio::test]
async fn oversized_control_and_transactional_batches_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let clock = Arc::new(ManualClock::new(NOW));
    let p = open(dir.path(), clock, false).await;
    let mut c = config();
    c.max_message_bytes = 100;
    p.set_config(c);
    assert!(matches!(
        p.append(bytes::Bytes::copy_from_slice(&make_batch(0, 1, 200, NOW)))
            .await,
        Err(LogError::RecordTooLarge { .. })
    ));
    p.set_config(config());
    // a control batch; a transactional one without a producer id; one with a producer id but
    // no coordinator vouching for it (`append` has no verifier)
    for (attr, pid, want_txn) in [(0x20i16, -1i64, false), (0x10, -1, false), (0x10, 7, true)] {
        let mut b = make_batch(0, 1, 10, NOW);
        b[21..23].copy_from_slice(&attr.to_be_bytes());
        b[43..51].copy_from_slice(&pid.to_be_bytes());
        b[53..57].copy_from_slice(&0i32.to_be_bytes());
        let crc = batch::compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        let e = p
            .append(bytes::Bytes::copy_from_slice(&b))
            .await
            .expect_err("refused");
        assert_eq!(matches!(e, LogError::InvalidTxnState), want_txn, "{e}");
    }
    assert_eq!(p.offsets().log_end_offset, 0);
}

#[tokio::test]
async fn deleted_partition_refuses_appends_and_releases_waiters() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = open(dir.path(), Arc::new(ManualClock::new(NOW)), false).await;
    p.append(bytes::Bytes::copy_from_slice(&make_batch(0, 1, 10, NOW)))
        .await
        .expect("append");
    let waiter = {
        let p = p.clone();
        tokio::spawn(async move { p.wait_durable(1).await })
    };
    tokio::task::yield_now().await;
    p.mark_deleted();
    assert!(matches!(
        waiter.await.expect("join"),
        Err(LogError::Deleted)
    ));
    assert!(matches!(
        p.append(bytes::Bytes::copy_from_slice(&make_batch(0, 1, 10, NOW)))
            .await,
        Err(LogError::Deleted)
    ));
}

#[tokio::test]
async fn an_offline_partition_refuses_appends_reads_and_durability_waits() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = open(dir.path(), Arc::new(ManualClock::new(NOW)), false).await;
    p.append(bytes::Bytes::copy_from_slice(&make_batch(0, 2, 10, NOW)))
        .await
        .expect("append");
    p.flush_once().await;
    assert!(!p
        .fetch(0, 1000, true)
        .await
        .expect("read")
        .records
        .is_empty());
    let waiter = {
        let p = p.clone();
        tokio::spawn(async move { p.wait_durable(3).await })
    };
    tokio::task::yield_now().await;
    // what a failed write or fsync does
    p.go_offline();
    assert!(matches!(
        waiter.await.expect("join"),
        Err(LogError::Offline)
    ));
    assert!(matches!(
        p.append(bytes::Bytes::copy_from_slice(&make_batch(0, 1, 10, NOW)))
            .await,
        Err(LogError::Offline)
    ));
    assert!(matches!(
        p.fetch(0, 1000, true).await,
        Err(LogError::Offline)
    ));
    assert!(matches!(
        p.read(0, 1000, true).await,
        Err(LogError::Offline)
    ));
}

/// An idempotent batch: producer 42, epoch 0, sequences from `seq`.
fn idempotent(seq: i32, n: i32) -> Vec<u8> {
    let mut b = make_batch(0, n, 10, NOW);
    b[43..51].copy_from_slice(&42i64.to_be_bytes());
    b[51..53].copy_from_slice(&0i16.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    let crc = batch::compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

#[tokio::test]
async fn retried_idempotent_batches_are_deduplicated_even_after_a_crash() {
    let dir = tempfile::tempdir().expect("tmp");
    let clock = Arc::new(ManualClock::new(NOW));
    let p = open(dir.path(), clock.clone(), false).await;
    p.append(bytes::Bytes::copy_from_slice(&make_batch(0, 2, 10, NOW)))
        .await
        .expect("plain batch first");
    let first = p
        .append(bytes::Bytes::copy_from_slice(&idempotent(0, 3)))
        .await
        .expect("append");
    assert_eq!((first.base_offset, first.last_offset), (2, 4));
    let retry = p
        .append(bytes::Bytes::copy_from_slice(&idempotent(0, 3)))
        .await
        .expect("duplicate");
    assert_eq!(
        (retry.base_offset, retry.last_offset),
        (2, 4),
        "original offsets, no second append"
    );
    assert_eq!(p.offsets().log_end_offset, 5);
    assert!(matches!(
        p.append(bytes::Bytes::copy_from_slice(&idempotent(5, 1)))
            .await,
        Err(LogError::OutOfOrderSequence {
            expected: 3,
            got: 5
        })
    ));
    p.append(bytes::Bytes::copy_from_slice(&idempotent(3, 2)))
        .await
        .expect("in order");
    p.flush_once().await;
    drop(p);
    // unclean reopen: the producer state comes back from the batch headers
    let p = open(dir.path(), clock, true).await;
    let again = p
        .append(bytes::Bytes::copy_from_slice(&idempotent(3, 2)))
        .await
        .expect("duplicate after restart");
    assert_eq!(again.base_offset, 5);
    assert_eq!(p.offsets().log_end_offset, 7);
    assert_eq!(
        p.append(bytes::Bytes::copy_from_slice(&idempotent(5, 1)))
            .await
            .expect("continues")
            .base_offset,
        7
    );
}

#[tokio::test]
async fn unclean_reopen_keeps_every_flushed_batch_and_continues_offsets() {
    let dir = tempfile::tempdir().expect("tmp");
    let clock = Arc::new(ManualClock::new(NOW));
    let p = open(dir.path(), clock.clone(), false).await;
    for _ in 0..10 {
        p.append(bytes::Bytes::copy_from_slice(&make_batch(0, 2, 50, NOW)))
            .await
            .expect("append");
    }
    p.flush_once().await;
    let active = dir
        .path()
        .join("t-0")
        .join(crate::format::segment_file(0, "log"));
    drop(p);
    // a torn write at the tail
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&active)
        .expect("open");
    std::io::Write::write_all(&mut f, &make_batch(20, 2, 50, NOW)[..40]).expect("write");
    drop(f);
    let p = open(dir.path(), clock, true).await;
    assert_eq!(p.offsets().log_end_offset, 20);
    assert_eq!(p.offsets().high_watermark, 20);
    assert_eq!(
        p.append(bytes::Bytes::copy_from_slice(&make_batch(0, 1, 5, NOW)))
            .await
            .expect("append")
            .base_offset,
        20
    );
}

#[tokio::test]
async fn timestamp_lookup_finds_the_record_inside_a_compressed_batch() {
    let dir = tempfile::tempdir().expect("tmp");
    let clock = Arc::new(ManualClock::new(1000));
    let mut c = config();
    c.timestamp_before_max_ms = i64::MAX;
    c.timestamp_after_max_ms = i64::MAX;
    let p = Partition::open("t", 0, dir.path().join("t-0"), c, clock, false, None)
        .await
        .expect("open");
    p.append(bytes::Bytes::copy_from_slice(
        &crate::format::records::tests::gzip_batch(5),
    ))
    .await
    .expect("append");
    p.flush_once().await;
    // records at 1000, 1010, 1020, 1030, 1040: the first at or after 1025 is offset 3
    assert_eq!(
        p.offset_for_timestamp(1025).await.expect("lookup"),
        Some((3, 1030))
    );
    assert_eq!(
        p.offset_for_timestamp(1000).await.expect("lookup"),
        Some((0, 1000))
    );
    assert_eq!(p.offset_for_timestamp(1041).await.expect("lookup"), None);
}

#[tokio::test]
async fn a_topic_compression_type_recompresses_batches() {
    let dir = tempfile::tempdir().expect("tmp");
    let clock = Arc::new(ManualClock::new(NOW));
    let mut c = config();
    c.compression = Some(4); // zstd
    let p = Partition::open("t", 0, dir.path().join("t-0"), c, clock, false, None)
        .await
        .expect("open");
    let sent = make_batch(0, 20, 100, NOW);
    p.append(bytes::Bytes::copy_from_slice(&sent))
        .await
        .expect("append");
    p.flush_once().await;
    let r = p.read(0, 1 << 20, true).await.expect("read");
    let h = batch::validate(&r.records).expect("one whole batch");
    assert_eq!(h.compression(), 4, "stored as zstd");
    assert!(r.records.len() < sent.len(), "and smaller");
    let stored = crate::format::records::records_section(&r.records, 1 << 20).expect("section");
    assert_eq!(&*stored, &sent[batch::HEADER_LEN..], "the same records");
}

#[tokio::test]
async fn a_batch_max_timestamp_is_stored_as_its_records_say() {
    let dir = tempfile::tempdir().expect("tmp");
    let clock = Arc::new(ManualClock::new(NOW));
    let p = open(dir.path(), clock, false).await;
    // records at NOW; the client wrote -1 as the max timestamp
    let mut sent = make_batch(0, 5, 10, NOW);
    sent[35..43].copy_from_slice(&(-1i64).to_be_bytes());
    let crc = batch::compute_crc(&sent);
    sent[17..21].copy_from_slice(&crc.to_be_bytes());
    p.append(bytes::Bytes::copy_from_slice(&sent))
        .await
        .expect("append");
    p.flush_once().await;
    let r = p.read(0, 1 << 20, true).await.expect("read");
    let h = batch::validate(&r.records).expect("a whole batch, its CRC redone");
    let records_max = NOW;
    assert_eq!(h.max_timestamp, records_max);
    assert_eq!(
        &r.records[batch::HEADER_LEN..],
        &sent[batch::HEADER_LEN..],
        "records as sent"
    );
    assert_eq!(
        p.offset_for_timestamp(records_max).await.expect("lookup"),
        Some((0, records_max)),
        "the time index knows it"
    );
}

/// Small segments: every few appends roll.
fn rolling() -> LogConfig {
    LogConfig {
        segment_bytes: 250,
        ..config()
    }
}

async fn open_rolling(dir: &Path, clock: Arc<ManualClock>, recover: bool) -> Arc<Partition> {
    Partition::open("t", 0, dir.join("t-0"), rolling(), clock, recover, None)
        .await
        .expect("open")
}

fn snapshots(dir: &Path) -> Vec<i64> {
    let mut v: Vec<i64> = std::fs::read_dir(dir.join("t-0"))
        .expect("dir")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            crate::format::offset_of_file(&name, "snapshot")
        })
        .collect();
    v.sort_unstable();
    v
}

/// `batches` idempotent batches of two records, each flushed; the next sequence.
async fn append_flushed(p: &Arc<Partition>, batches: i32) -> i32 {
    let mut seq = 0;
    for _ in 0..batches {
        p.append(bytes::Bytes::from(idempotent(seq, 2)))
            .await
            .expect("append");
        seq += 2;
        p.flush_once().await;
    }
    seq
}

#[tokio::test]
async fn a_crash_restart_replays_only_what_follows_the_newest_snapshot() {
    let dir = tempfile::tempdir().expect("tmp");
    let clock = Arc::new(ManualClock::new(NOW));
    let p = open_rolling(dir.path(), clock.clone(), false).await;
    let seq = append_flushed(&p, 12).await;
    let end = p.offsets().log_end_offset;
    assert_eq!(end, 24);
    let closed = p.log.summary().closed.clone();
    assert!(closed.len() >= 3, "rolled: {closed:?}");
    assert!(closed.iter().all(|c| c.finalized), "flushes finalize");
    let snaps = snapshots(dir.path());
    assert!(
        !snaps.is_empty() && snaps.len() <= 2,
        "at most two kept: {snaps:?}"
    );
    let newest = *snaps.last().expect("a snapshot");
    // damage a byte inside a segment wholly below the newest snapshot: a restart that trusts
    // the recovery point never reads it, so it is not cut off
    let first = closed[0];
    assert!(first.next_offset <= newest);
    let path = dir
        .path()
        .join("t-0")
        .join(crate::format::segment_file(first.base_offset, "log"));
    let len = std::fs::metadata(&path).expect("meta").len();
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        f.write_all_at(&[0xEE], len - 3).expect("damage");
    }
    drop(p);
    let p = open_rolling(dir.path(), clock, true).await;
    assert_eq!(p.offsets().log_end_offset, end);
    assert_eq!(
        std::fs::metadata(&path).expect("meta").len(),
        len,
        "below the recovery point nothing is walked"
    );
    // the producer state crossed the snapshot: the last batch is still a duplicate, the next
    // sequence continues
    let dup = p
        .append(bytes::Bytes::from(idempotent(seq - 2, 2)))
        .await
        .expect("duplicate");
    assert_eq!(dup.base_offset, end - 2);
    let next = p
        .append(bytes::Bytes::from(idempotent(seq, 1)))
        .await
        .expect("continues");
    assert_eq!(next.base_offset, end);
}

#[tokio::test]
async fn a_clean_restart_reads_no_log_data_and_knows_every_offset() {
    let dir = tempfile::tempdir().expect("tmp");
    let clock = Arc::new(ManualClock::new(NOW));
    let p = open_rolling(dir.path(), clock.clone(), false).await;
    for i in 0..10 {
        p.append(bytes::Bytes::from(make_batch(0, 3, 40, NOW + 100 - i)))
            .await
            .expect("append");
    }
    p.flush_once().await;
    let before = p.offsets();
    let max = p.max_timestamp().await.expect("max");
    assert_eq!(
        max,
        Some((0, NOW + 100)),
        "the first batch holds the largest, from its first record on"
    );
    p.close().await.expect("close");
    let active = p.log.summary().active_base;
    drop(p);
    // garbage after the active segment's last batch: a clean restart trusts the indexes and
    // the snapshot at the log end, sees the file does not end where they say, and walks (and
    // cuts) that segment instead of serving garbage
    let path = dir
        .path()
        .join("t-0")
        .join(crate::format::segment_file(active, "log"));
    let len = std::fs::metadata(&path).expect("meta").len();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        f.write_all(&[7u8; 9]).expect("junk");
    }
    let p = open_rolling(dir.path(), clock.clone(), false).await;
    assert_eq!(std::fs::metadata(&path).expect("meta").len(), len);
    assert_eq!(p.offsets(), before);
    assert_eq!(p.max_timestamp().await.expect("max"), max);
    let next = p
        .append(bytes::Bytes::from(make_batch(0, 1, 40, NOW)))
        .await
        .expect("append");
    assert_eq!(next.base_offset, before.log_end_offset);
    p.flush_once().await;
    let r = p
        .read(before.log_end_offset, 1 << 20, true)
        .await
        .expect("read");
    let h = batch::validate_stored(&r.records).expect("one whole batch");
    assert_eq!(h.base_offset, before.log_end_offset);
}

#[tokio::test]
async fn unusable_indexes_or_snapshots_fall_back_to_walking_the_log() {
    let dir = tempfile::tempdir().expect("tmp");
    let clock = Arc::new(ManualClock::new(NOW));
    let p = open_rolling(dir.path(), clock.clone(), false).await;
    let seq = append_flushed(&p, 10).await;
    let end = p.offsets().log_end_offset;
    let first = p.log.summary().closed[0].base_offset;
    drop(p);
    let part = dir.path().join("t-0");
    // every snapshot damaged, and the first segment's index gone
    for at in snapshots(dir.path()) {
        std::fs::write(
            part.join(crate::format::segment_file(at, "snapshot")),
            b"junk",
        )
        .expect("damage");
    }
    std::fs::remove_file(part.join(crate::format::segment_file(first, "index"))).expect("rm");
    let p = open_rolling(dir.path(), clock, true).await;
    assert_eq!(p.offsets().log_end_offset, end);
    let dup = p
        .append(bytes::Bytes::from(idempotent(seq - 2, 2)))
        .await
        .expect("duplicate");
    assert_eq!(
        dup.base_offset,
        end - 2,
        "producer state rebuilt from the log"
    );
    assert!(
        part.join(crate::format::segment_file(first, "index"))
            .exists(),
        "a walked closed segment gets its index back"
    );
    let active = p.log.summary().active_base;
    assert_eq!(
        snapshots(dir.path()).last().copied(),
        Some(active),
        "and the walk leaves a recovery point at the active segment"
    );
}

/// With the broker's flush interval an hour long, the topic's `flush.messages` and `flush.ms`
/// are what make appended records durable (and visible: the high watermark follows the sync).
#[tokio::test]
async fn flush_messages_and_flush_ms_sync_before_the_broker_interval() {
    let hour = std::time::Duration::from_secs(3600);
    let deadline = |what: &'static str, p: Arc<Partition>, hw: i64| async move {
        for _ in 0..500 {
            if p.offsets().high_watermark == hw {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("{what}: high watermark {}", p.offsets().high_watermark);
    };
    for (what, tweak) in [
        ("flush.messages=3", (i64::MAX, 3)),
        ("flush.ms=20", (20, i64::MAX)),
    ] {
        let dir = tempfile::tempdir().expect("tmp");
        let c = LogConfig {
            flush_ms: tweak.0,
            flush_messages: tweak.1,
            ..config()
        };
        let p = Partition::open(
            "t",
            0,
            dir.path().join("t-0"),
            c,
            Arc::new(ManualClock::new(NOW)),
            false,
            None,
        )
        .await
        .expect("open");
        let cancel = CancellationToken::new();
        tokio::spawn(p.clone().run_flusher(hour, cancel.clone()));
        p.append(bytes::Bytes::copy_from_slice(&make_batch(0, 3, 10, NOW)))
            .await
            .expect("append");
        deadline(what, p.clone(), 3).await;
        cancel.cancel();
    }
}
