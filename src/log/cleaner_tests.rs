//! Compaction through a partition: latest value per key, every offset kept, tombstones,
//! aborted transactions and the last stable offset.
use super::*;
use crate::clock::{Clock, ManualClock};
use crate::config::LogConfig;
use crate::format::batch::put_varint;
use crate::format::batch::{self, BatchHeader};
use crate::format::records;
use crate::log::partition::{Partition, Verify};
use std::sync::Arc;

const NOW: i64 = 1_700_000_000_000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 300,
        segment_ms: i64::MAX,
        retention_ms: 1, // ignored: the policy is compact only
        max_message_bytes: 1 << 20,
        timestamp_before_max_ms: i64::MAX,
        timestamp_after_max_ms: i64::MAX,
        index_interval_bytes: 64,
        remote_storage_enable: false,
        cleanup_compact: true,
        cleanup_delete: false,
        delete_retention_ms: 60_000,
        min_compaction_lag_ms: 0,
        ..LogConfig::default()
    }
}

/// A client batch of keyed records (`None` value: a tombstone).
fn keyed(ts: i64, recs: &[(Option<&str>, Option<&str>)]) -> Vec<u8> {
    let mut section = Vec::new();
    for (i, (k, v)) in recs.iter().enumerate() {
        let mut r = vec![0u8];
        put_varint(&mut r, 0);
        put_varint(&mut r, i as i64);
        for f in [k, v] {
            match f {
                Some(s) => {
                    put_varint(&mut r, s.len() as i64);
                    r.extend_from_slice(s.as_bytes());
                }
                None => put_varint(&mut r, -1),
            }
        }
        put_varint(&mut r, 0);
        put_varint(&mut section, r.len() as i64);
        section.extend(r);
    }
    let parsed = records::parse(&section, recs.len() as i32).expect("parse");
    let h = BatchHeader {
        base_offset: 0,
        batch_length: 0,
        magic: 2,
        crc: 0,
        attributes: 0,
        last_offset_delta: recs.len() as i32 - 1,
        base_timestamp: ts,
        max_timestamp: ts,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        record_count: recs.len() as i32,
    };
    records::rebuild(&h, &parsed)
}

/// Every (offset, key, value) readable from offset 0.
async fn contents(p: &Arc<Partition>) -> Vec<(i64, String, Option<String>)> {
    let mut out = Vec::new();
    let mut next = 0;
    let end = p.offsets().high_watermark;
    while next < end {
        let r = p.fetch(next, 1 << 20, true).await.expect("fetch");
        if r.records.is_empty() {
            break;
        }
        let mut pos = 0;
        while pos < r.records.len() {
            let (_, len) = batch::peek_frame(&r.records[pos..]).expect("frame");
            let b = &r.records[pos..pos + len];
            let h = batch::validate_stored(b).expect("stored batch");
            let s = records::records_section(b, 1 << 20).expect("section");
            for rec in records::parse(&s, h.record_count).expect("records") {
                let key = String::from_utf8_lossy(rec.key.expect("keyed")).into_owned();
                let value = rec.value.map(|v| String::from_utf8_lossy(v).into_owned());
                out.push((h.base_offset + rec.offset_delta as i64, key, value));
            }
            next = h.last_offset() + 1;
            pos += len;
        }
    }
    out
}

#[tokio::test]
async fn compaction_keeps_the_latest_value_per_key_and_every_offset() {
    let dir = tempfile::tempdir().expect("tmp");
    let clock = Arc::new(ManualClock::new(NOW));
    let open = |recover| {
        Partition::open(
            "c",
            0,
            dir.path().join("c-0"),
            config(),
            clock.clone(),
            recover,
            None,
        )
    };
    let p = open(false).await.expect("open");
    // 4 rounds over keys a..d; in the last round b is deleted (tombstone)
    for round in 0..4 {
        for key in ["a", "b", "c", "d"] {
            let value = format!("{key}{round}");
            let v = if round == 3 && key == "b" {
                None
            } else {
                Some(value.as_str())
            };
            p.append(bytes::Bytes::copy_from_slice(&keyed(
                clock.now_ms(),
                &[(Some(key), v)],
            )))
            .await
            .expect("append");
        }
    }
    // an extra batch with two records, one of which is superseded later
    p.append(bytes::Bytes::copy_from_slice(&keyed(
        clock.now_ms(),
        &[(Some("e"), Some("e0")), (Some("a"), Some("a4"))],
    )))
    .await
    .expect("append");
    p.append(bytes::Bytes::copy_from_slice(&keyed(
        clock.now_ms(),
        &[(Some("e"), Some("e1"))],
    )))
    .await
    .expect("append");
    p.flush_once().await;
    let before = contents(&p).await;
    assert_eq!(before.len(), 19);
    // keyless records are refused on a compacted topic
    match p
        .append(bytes::Bytes::copy_from_slice(&keyed(
            clock.now_ms(),
            &[(Some("k"), Some("x")), (None, Some("x")), (None, Some("y"))],
        )))
        .await
    {
        Err(LogError::InvalidRecords { indexes, .. }) => assert_eq!(indexes, vec![1, 2]),
        other => panic!("keyless records accepted: {other:?}"),
    }
    // retention never deletes a compact-only topic, whatever retention.ms says
    clock.advance(10);
    assert_eq!(p.enforce_retention().await.expect("retention"), 0);

    let stats = p
        .compact(true)
        .await
        .expect("compact")
        .expect("something to clean");
    assert!(
        stats.records_removed > 0 && stats.bytes_after < stats.bytes_before,
        "{stats:?}"
    );
    let after = contents(&p).await;
    // every surviving record keeps its offset and is the latest for its key among the
    // cleaned segments; nothing is invented
    for rec in &after {
        assert!(before.contains(rec), "{rec:?} was not in the log");
    }
    let mut keys: Vec<&str> = after.iter().map(|(_, k, _)| k.as_str()).collect();
    let active_start = p.log.summary().active_base;
    let cleaned: Vec<_> = after.iter().filter(|(o, _, _)| *o < active_start).collect();
    let mut seen = std::collections::HashSet::new();
    for (_, k, _) in &cleaned {
        assert!(seen.insert(k.clone()), "key {k} twice in the cleaned range");
    }
    keys.dedup();
    let latest = |k: &str| before.iter().rev().find(|(_, key, _)| key == k).cloned();
    for k in ["a", "b", "c", "d", "e"] {
        assert!(after.contains(&latest(k).expect("key")), "latest {k} kept");
    }
    // the tombstone for b is still there (delete.retention.ms not passed)
    assert!(after.iter().any(|(_, k, v)| k == "b" && v.is_none()));
    assert_eq!(p.offsets().log_end_offset, 19, "offsets never change");

    // past delete.retention.ms the tombstone goes too
    clock.advance(60_001);
    p.compact(true).await.expect("compact");
    let later = contents(&p).await;
    let b_tomb = before
        .iter()
        .find(|(_, k, v)| k == "b" && v.is_none())
        .expect("tomb");
    assert!(
        b_tomb.0 < active_start,
        "setup: the tombstone ({}) is in a closed segment (active from {active_start})",
        b_tomb.0
    );
    assert!(!later.contains(b_tomb), "expired tombstone removed");
    assert!(
        !later.iter().any(|(_, k, _)| k == "b"),
        "nothing of b is left: {later:?}"
    );
    // a crash-style reopen reads the rewritten segments as valid
    drop(p);
    let p = open(true).await.expect("open");
    assert_eq!(contents(&p).await, later);
    assert_eq!(
        p.append(bytes::Bytes::copy_from_slice(&keyed(
            clock.now_ms(),
            &[(Some("z"), Some("z"))]
        )))
        .await
        .expect("append")
        .base_offset,
        19
    );
}

/// `keyed` as a transactional batch of `pid` (epoch 0, sequence 0).
fn transactional(pid: i64, recs: &[(Option<&str>, Option<&str>)]) -> Vec<u8> {
    crate::format::batch::tests::transactional(keyed(NOW, recs), pid, 0, 0)
}

#[tokio::test]
async fn compaction_drops_aborted_records_and_stops_at_the_last_stable_offset() {
    let dir = tempfile::tempdir().expect("tmp");
    let clock = Arc::new(ManualClock::new(NOW));
    let p = Partition::open("c", 0, dir.path().join("c-0"), config(), clock, false, None)
        .await
        .expect("open");
    let allow: Verify = Arc::new(|_| Ok(()));
    p.append_verified(
        bytes::Bytes::copy_from_slice(&transactional(7, &[(Some("a"), Some("committed"))])),
        allow.clone(),
    )
    .await
    .expect("txn 7"); // 0
    p.append_marker(7, 0, true, 0).await.expect("commit"); // 1
    p.append_verified(
        bytes::Bytes::copy_from_slice(&transactional(8, &[(Some("a"), Some("aborted"))])),
        allow.clone(),
    )
    .await
    .expect("txn 8"); // 2
    p.append_marker(8, 0, false, 0).await.expect("abort"); // 3
    async fn filler(p: &Arc<Partition>, n: usize) {
        for i in 0..n {
            p.append(bytes::Bytes::copy_from_slice(&keyed(
                NOW,
                &[(Some("z"), Some(&format!("z{i}")))],
            )))
            .await
            .expect("filler");
        }
    }
    filler(&p, 6).await;
    let open_at = p.offsets().log_end_offset;
    p.append_verified(
        bytes::Bytes::copy_from_slice(&transactional(9, &[(Some("z"), Some("open"))])),
        allow.clone(),
    )
    .await
    .expect("txn 9 stays open");
    filler(&p, 6).await;
    p.flush_once().await;
    assert_eq!(p.offsets().last_stable_offset, open_at);
    let stats = p.compact(true).await.expect("compact").expect("cleaned");
    assert!(stats.records_removed > 0, "{stats:?}");
    // what is left below the LSO: the committed a, no aborted a, the last filler before it
    let mut kept = Vec::new();
    let mut next = 0;
    while next < p.offsets().high_watermark {
        let r = p.fetch(next, 1 << 20, true).await.expect("read");
        let mut pos = 0;
        while pos < r.records.len() {
            let (_, len) = batch::peek_frame(&r.records[pos..]).expect("frame");
            let b = &r.records[pos..pos + len];
            let h = batch::validate_stored(b).expect("stored");
            if !h.is_control() {
                let sec = records::records_section(b, 1 << 20).expect("section");
                for rec in records::parse(&sec, h.record_count).expect("records") {
                    let v = rec.value.map(|v| String::from_utf8_lossy(v).into_owned());
                    let offset = h.base_offset + rec.offset_delta as i64;
                    kept.push((offset, v.unwrap_or_default()));
                }
            }
            next = h.last_offset() + 1;
            pos += len;
        }
    }
    assert!(kept.contains(&(0, "committed".to_string())), "{kept:?}");
    assert!(!kept.iter().any(|(_, v)| v == "aborted"), "{kept:?}");
    assert!(
        kept.contains(&(open_at, "open".to_string())),
        "an open transaction's record is never cleaned: {kept:?}"
    );
    let after_lso = kept.iter().filter(|(o, _)| *o > open_at).count();
    assert_eq!(after_lso, 6, "nothing past the LSO is cleaned: {kept:?}");
}
