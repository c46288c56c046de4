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

fn open(dir: &Path, clock: Arc<ManualClock>, recover: bool) -> Arc<Partition> {
    Partition::open("t", 0, dir.join("t-0"), config(), clock, recover, None).expect("open")
}

#[tokio::test]
async fn high_watermark_moves_only_after_flush() {
    let dir = tempfile::tempdir().expect("tmp");
    let clock = Arc::new(ManualClock::new(NOW));
    let p = open(dir.path(), clock, false);
    let info = p.append(&make_batch(0, 5, 10, NOW)).expect("append");
    assert_eq!((info.base_offset, info.last_offset), (0, 4));
    assert_eq!(p.offsets().log_end_offset, 5);
    assert_eq!(
        p.offsets().high_watermark,
        0,
        "nothing is visible before fdatasync"
    );
    assert!(p.read(0, 1 << 20, true).expect("read").records.is_empty());
    p.flush_once().await;
    assert_eq!(p.offsets().high_watermark, 5);
    p.wait_durable(5).await.expect("durable");
    let r = p.read(3, 1 << 20, true).expect("read");
    assert_eq!(
        batch::validate(&r.records)
            .expect("whole batch")
            .base_offset,
        0
    );
    assert!(matches!(
        p.read(6, 100, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[tokio::test]
async fn segment_ms_rolls_and_retention_ms_deletes_by_injected_time() {
    let dir = tempfile::tempdir().expect("tmp");
    let clock = Arc::new(ManualClock::new(NOW));
    let p = open(dir.path(), clock.clone(), false);
    for i in 0..3 {
        p.append(&make_batch(0, 1, 10, clock.now_ms()))
            .expect("append");
        clock.advance(61_000); // past segment.ms: the next append rolls
        let _ = i;
    }
    p.flush_once().await;
    assert_eq!(p.inner.lock().segments.len(), 3);
    assert_eq!(
        p.enforce_retention().expect("retention"),
        0,
        "nothing older than an hour"
    );
    clock.advance(3_600_000 - 2 * 61_000);
    // the first segment's newest record is now over an hour old, the second is not
    assert_eq!(p.enforce_retention().expect("retention"), 1);
    assert_eq!(p.offsets().log_start_offset, 1);
    clock.advance(10 * 3_600_000);
    // the active segment is never deleted
    assert_eq!(p.enforce_retention().expect("retention"), 1);
    assert_eq!(p.inner.lock().segments.len(), 1);
    assert_eq!(p.offsets().log_start_offset, 2);
    assert!(matches!(
        p.read(0, 100, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn timestamps_outside_the_configured_bounds_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let clock = Arc::new(ManualClock::new(NOW));
    let p = open(dir.path(), clock, false);
    let future = make_batch(0, 1, 10, NOW + 3_600_001);
    assert!(matches!(
        p.append(&future),
        Err(LogError::InvalidTimestamp(_))
    ));
    assert!(p.append(&make_batch(0, 1, 10, NOW + 3_600_000)).is_ok());
    let mut c = config();
    c.timestamp_before_max_ms = 1000;
    p.set_config(c);
    assert!(matches!(
        p.append(&make_batch(0, 1, 10, NOW - 1001)),
        Err(LogError::InvalidTimestamp(_))
    ));
    assert_eq!(
        p.offsets().log_end_offset,
        1,
        "refused batches take no offsets"
    );
}

#[test]
fn oversized_control_and_transactional_batches_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let clock = Arc::new(ManualClock::new(NOW));
    let p = open(dir.path(), clock, false);
    let mut c = config();
    c.max_message_bytes = 100;
    p.set_config(c);
    assert!(matches!(
        p.append(&make_batch(0, 1, 200, NOW)),
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
        let e = p.append(&b).expect_err("refused");
        assert_eq!(matches!(e, LogError::InvalidTxnState), want_txn, "{e}");
    }
    assert_eq!(p.offsets().log_end_offset, 0);
}

#[tokio::test]
async fn deleted_partition_refuses_appends_and_releases_waiters() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = open(dir.path(), Arc::new(ManualClock::new(NOW)), false);
    p.append(&make_batch(0, 1, 10, NOW)).expect("append");
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
        p.append(&make_batch(0, 1, 10, NOW)),
        Err(LogError::Deleted)
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
    let p = open(dir.path(), clock.clone(), false);
    p.append(&make_batch(0, 2, 10, NOW))
        .expect("plain batch first");
    let first = p.append(&idempotent(0, 3)).expect("append");
    assert_eq!((first.base_offset, first.last_offset), (2, 4));
    let retry = p.append(&idempotent(0, 3)).expect("duplicate");
    assert_eq!(
        (retry.base_offset, retry.last_offset),
        (2, 4),
        "original offsets, no second append"
    );
    assert_eq!(p.offsets().log_end_offset, 5);
    assert!(matches!(
        p.append(&idempotent(5, 1)),
        Err(LogError::OutOfOrderSequence {
            expected: 3,
            got: 5
        })
    ));
    p.append(&idempotent(3, 2)).expect("in order");
    p.flush_once().await;
    drop(p);
    // unclean reopen: the producer state comes back from the batch headers
    let p = open(dir.path(), clock, true);
    let again = p
        .append(&idempotent(3, 2))
        .expect("duplicate after restart");
    assert_eq!(again.base_offset, 5);
    assert_eq!(p.offsets().log_end_offset, 7);
    assert_eq!(
        p.append(&idempotent(5, 1)).expect("continues").base_offset,
        7
    );
}

#[tokio::test]
async fn unclean_reopen_keeps_every_flushed_batch_and_continues_offsets() {
    let dir = tempfile::tempdir().expect("tmp");
    let clock = Arc::new(ManualClock::new(NOW));
    let p = open(dir.path(), clock.clone(), false);
    for _ in 0..10 {
        p.append(&make_batch(0, 2, 50, NOW)).expect("append");
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
    let p = open(dir.path(), clock, true);
    assert_eq!(p.offsets().log_end_offset, 20);
    assert_eq!(p.offsets().high_watermark, 20);
    assert_eq!(
        p.append(&make_batch(0, 1, 5, NOW))
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
    let p = Partition::open("t", 0, dir.path().join("t-0"), c, clock, false, None).expect("open");
    p.append(&crate::format::records::tests::gzip_batch(5))
        .expect("append");
    p.flush_once().await;
    // records at 1000, 1010, 1020, 1030, 1040: the first at or after 1025 is offset 3
    assert_eq!(
        p.offset_for_timestamp(1025).expect("lookup"),
        Some((3, 1030))
    );
    assert_eq!(
        p.offset_for_timestamp(1000).expect("lookup"),
        Some((0, 1000))
    );
    assert_eq!(p.offset_for_timestamp(1041).expect("lookup"), None);
}

#[tokio::test]
async fn a_topic_compression_type_recompresses_batches() {
    let dir = tempfile::tempdir().expect("tmp");
    let clock = Arc::new(ManualClock::new(NOW));
    let mut c = config();
    c.compression = Some(4); // zstd
    let p = Partition::open("t", 0, dir.path().join("t-0"), c, clock, false, None).expect("open");
    let sent = make_batch(0, 20, 100, NOW);
    p.append(&sent).expect("append");
    p.flush_once().await;
    let r = p.read(0, 1 << 20, true).expect("read");
    let h = batch::validate(&r.records).expect("one whole batch");
    assert_eq!(h.compression(), 4, "stored as zstd");
    assert!(r.records.len() < sent.len(), "and smaller");
    let stored = crate::format::records::records_section(&r.records, 1 << 20).expect("section");
    assert_eq!(&*stored, &sent[batch::HEADER_LEN..], "the same records");
}
