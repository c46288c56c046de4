//! Transactions in one partition: the LSO, markers, read_committed reads, the aborted index
//! across restarts, and epoch fencing.
use super::super::error::LogError;
use super::super::partition::{Partition, Verify};
use crate::clock::ManualClock;
use crate::config::LogConfig;
use crate::format::batch::{self, tests::make_batch, tests::transactional};
use std::path::Path;
use std::sync::Arc;

const NOW: i64 = 1_700_000_000_000;

async fn open(dir: &Path, recover: bool) -> Arc<Partition> {
    let config = LogConfig {
        timestamp_before_max_ms: i64::MAX,
        remote_storage_enable: false,
        ..LogConfig::default()
    };
    let clock = Arc::new(ManualClock::new(NOW));
    Partition::open("t", 0, dir.join("t-0"), config, clock, recover, None)
        .await
        .expect("open")
}

/// A transactional batch of `n` records from `pid` at `epoch`, first sequence `seq`.
fn txn_batch(pid: i64, epoch: i16, seq: i32, n: i32) -> Vec<u8> {
    transactional(make_batch(0, n, 10, NOW), pid, epoch, seq)
}

/// Base offsets of the batches in a read.
fn bases(mut data: &[u8]) -> Vec<i64> {
    let mut out = Vec::new();
    while let Ok((base, len)) = batch::peek_frame(data) {
        if len > data.len() {
            break;
        }
        out.push(base);
        data = &data[len..];
    }
    out
}

fn allow() -> Verify {
    Arc::new(|_| Ok(()))
}

#[tokio::test]
async fn open_transactions_hold_the_lso_and_aborts_are_listed_across_restarts() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = open(dir.path(), false).await;
    p.append(bytes::Bytes::copy_from_slice(&make_batch(0, 3, 10, NOW)))
        .await
        .expect("plain"); // 0..=2
    p.append_verified(
        bytes::Bytes::copy_from_slice(&txn_batch(1, 0, 0, 2)),
        allow(),
    )
    .await
    .expect("txn 1"); // 3..=4
    p.append_verified(
        bytes::Bytes::copy_from_slice(&txn_batch(2, 0, 0, 1)),
        allow(),
    )
    .await
    .expect("txn 2"); // 5
    p.flush_once().await;
    let o = p.offsets();
    assert_eq!((o.high_watermark, o.last_stable_offset), (6, 3));
    let (r, aborted) = p.fetch_committed(0, 1 << 20, true).await.expect("read");
    assert_eq!(bases(&r.records), vec![0], "nothing at or past the LSO");
    assert!(aborted.is_empty());
    let (r, _) = p.fetch_committed(3, 1 << 20, true).await.expect("read");
    assert!(r.records.is_empty(), "an open transaction is not readable");
    assert_eq!(
        bases(&p.fetch(0, 1 << 20, true).await.expect("read").records),
        vec![0, 3, 5],
        "read_uncommitted sees everything"
    );

    assert_eq!(p.append_marker(1, 0, false, 0).await.expect("abort 1"), 6);
    p.flush_once().await;
    assert_eq!(
        p.offsets().last_stable_offset,
        5,
        "producer 2 is still open"
    );
    assert_eq!(p.append_marker(2, 0, true, 0).await.expect("commit 2"), 7);
    p.flush_once().await;
    let o = p.offsets();
    assert_eq!((o.high_watermark, o.last_stable_offset), (8, 8));

    async fn check(p: &Arc<Partition>) {
        let list = p.aborted_between(0, 8).await.expect("aborted");
        assert_eq!(list.len(), 1);
        assert_eq!(
            (
                list[0].producer_id,
                list[0].first_offset,
                list[0].last_offset
            ),
            (1, 3, 6)
        );
        assert!(
            p.aborted_between(7, 8).await.expect("aborted").is_empty(),
            "nothing aborted at or after 7"
        );
        assert_eq!(p.offsets().last_stable_offset, p.offsets().high_watermark);
    }
    let (r, aborted) = p.fetch_committed(0, 1 << 20, true).await.expect("read");
    assert_eq!(bases(&r.records), vec![0, 3, 5, 6, 7]);
    assert_eq!(aborted.len(), 1);
    check(&p).await;

    // a crash (recovery scan) and a clean restart (header walk) both rebuild the same state
    drop(p);
    let p = open(dir.path(), true).await;
    check(&p).await;
    p.close().await.expect("close");
    let txnindex = dir.path().join("t-0").join(format!("{:020}.txnindex", 0));
    let on_disk = crate::format::txn_index::decode(&std::fs::read(&txnindex).expect("txnindex"));
    assert_eq!(
        on_disk.map(|v| v.len()),
        Some(1),
        "written beside the segment"
    );
    drop(p);
    let p = open(dir.path(), false).await;
    check(&p).await;

    // an open transaction survives a restart too
    p.append_verified(
        bytes::Bytes::copy_from_slice(&txn_batch(3, 0, 0, 1)),
        allow(),
    )
    .await
    .expect("txn 3"); // 8
    p.flush_once().await;
    drop(p);
    let p = open(dir.path(), true).await;
    assert_eq!(p.offsets().last_stable_offset, 8);
    assert_eq!(
        p.producers()
            .await
            .expect("producers")
            .iter()
            .find(|v| v.producer_id == 3)
            .map(|v| v.current_txn_start_offset),
        Some(8)
    );
}

#[tokio::test]
async fn a_fenced_epoch_can_write_neither_batches_nor_markers() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = open(dir.path(), false).await;
    p.append_verified(
        bytes::Bytes::copy_from_slice(&txn_batch(1, 0, 0, 1)),
        allow(),
    )
    .await
    .expect("epoch 0");
    // the coordinator fences the producer: abort marker at epoch 1
    p.append_marker(1, 1, false, 0)
        .await
        .expect("fencing abort");
    assert!(matches!(
        p.append_verified(
            bytes::Bytes::copy_from_slice(&txn_batch(1, 0, 1, 1)),
            allow()
        )
        .await,
        Err(LogError::InvalidProducerEpoch { .. })
    ));
    assert!(matches!(
        p.append_marker(1, 0, true, 0).await,
        Err(LogError::InvalidProducerEpoch { .. })
    ));
    // the new instance starts its sequences again
    p.append_verified(
        bytes::Bytes::copy_from_slice(&txn_batch(1, 2, 0, 1)),
        allow(),
    )
    .await
    .expect("epoch 2");
    // the verifier is asked, under the lock, for every transactional batch
    let refuse: Verify = Arc::new(|_| Err(LogError::InvalidTxnState));
    assert!(matches!(
        p.append_verified(
            bytes::Bytes::copy_from_slice(&txn_batch(1, 2, 1, 1)),
            refuse.clone()
        )
        .await,
        Err(LogError::InvalidTxnState)
    ));
}
