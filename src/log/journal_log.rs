//! A journal kept in a partition ([`crate::journal::Backend`]): the coordinators' state in a
//! cluster lives in internal topics, so it is as durable as acks=all data (in the bucket,
//! committed in etcd) and follows the partition's leadership from node to node.

use super::error::LogError;
use super::partition::Partition;
use crate::format::records;
use bytes::Bytes;
use std::io;
use std::sync::Arc;

/// Largest batch one append writes; a longer write (a snapshot) is split.
const MAX_BATCH_BYTES: usize = 1 << 20;
/// Bytes asked for per read while loading.
const LOAD_READ_BYTES: usize = 4 << 20;

pub struct PartitionJournal {
    partition: Arc<Partition>,
}

impl PartitionJournal {
    pub fn new(partition: Arc<Partition>) -> PartitionJournal {
        PartitionJournal { partition }
    }
}

fn io_error(e: LogError) -> io::Error {
    io::Error::other(e.to_string())
}

#[async_trait::async_trait]
impl crate::journal::Backend for PartitionJournal {
    async fn load(&self) -> io::Result<Vec<Vec<u8>>> {
        let p = &self.partition;
        // the whole log, not only what is readable yet: a new leader's log holds what it caught
        // up from the WAL and the tail chunks (committed), readable once synced here; a state
        // loaded from less would lose the commits in the tail
        p.wait_durable(p.offsets().log_end_offset)
            .await
            .map_err(io_error)?;
        let o = p.offsets();
        let mut at = o.log_start_offset;
        let mut out = Vec::new();
        while at < o.high_watermark {
            let r = p.fetch(at, LOAD_READ_BYTES, true).await.map_err(io_error)?;
            let (values, last) = records::values_of(&r.records)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            out.extend(values);
            match last {
                Some(l) if l >= at => at = l + 1,
                _ => {
                    return Err(io::Error::other(format!(
                        "{}-{}: no progress reading at offset {at}",
                        p.topic, p.index
                    )))
                }
            }
        }
        Ok(out)
    }

    async fn append(&self, entries: Vec<Vec<u8>>) -> io::Result<i64> {
        let p = &self.partition;
        let mut first = None;
        let mut rest = entries.as_slice();
        while !rest.is_empty() {
            let mut n = 0;
            let mut size = 0;
            while n < rest.len() && (n == 0 || size + rest[n].len() + 32 <= MAX_BATCH_BYTES) {
                size += rest[n].len() + 32;
                n += 1;
            }
            let batch = records::values_batch(&rest[..n], p.now_ms());
            let info = p.append(Bytes::from(batch)).await.map_err(io_error)?;
            p.wait_durable(info.last_offset + 1)
                .await
                .map_err(io_error)?;
            first.get_or_insert(info.base_offset);
            rest = &rest[n..];
        }
        Ok(first.unwrap_or_else(|| p.offsets().log_end_offset))
    }

    async fn trim(&self, position: i64) -> io::Result<()> {
        self.partition
            .delete_records(position)
            .await
            .map(|_| ())
            .map_err(io_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::journal::{Journal, Journaled};
    use std::collections::BTreeMap;
    use std::time::Duration;
    use tokio_util::sync::CancellationToken;

    /// Keys set to values: live entries are the keys.
    #[derive(Default)]
    struct Kv(BTreeMap<String, u64>);

    impl Journaled for Kv {
        type Record = (String, u64);
        fn apply(&mut self, (k, v): &(String, u64)) {
            self.0.insert(k.clone(), *v);
        }
        fn snapshot(&self) -> Vec<(String, u64)> {
            self.0.iter().map(|(k, v)| (k.clone(), *v)).collect()
        }
        fn live(&self) -> usize {
            self.0.len()
        }
    }

    async fn partition(dir: &std::path::Path, clock: crate::clock::SharedClock) -> Arc<Partition> {
        let p = unflushed(dir, clock).await;
        flush(&p);
        p
    }

    /// A journal partition whose flusher is not running yet: appends stay unreadable.
    async fn unflushed(dir: &std::path::Path, clock: crate::clock::SharedClock) -> Arc<Partition> {
        let config = crate::config::LogConfig {
            retention_ms: -1,
            max_message_bytes: 2 << 20,
            remote_storage_enable: false,
            ..crate::config::LogConfig::default()
        };
        Partition::open("__journal", 0, dir.join("j-0"), config, clock, true, None)
            .await
            .expect("open")
    }

    fn flush(p: &Arc<Partition>) {
        tokio::spawn(
            p.clone()
                .run_flusher(Duration::from_millis(1), CancellationToken::new()),
        );
    }

    #[tokio::test]
    async fn a_journal_in_a_partition_reloads_and_compacts_by_trimming_its_start() {
        let dir = tempfile::tempdir().expect("tmp");
        let clock: crate::clock::SharedClock = Arc::new(ManualClock::new(1_700_000_000_000));
        let p = partition(dir.path(), clock.clone()).await;
        let backend = Arc::new(PartitionJournal::new(p.clone()));
        let j: Journal<Kv> = Journal::open_on(backend.clone()).await.expect("open");
        // 3,000 writes over 10 keys: past 2 × live + 1000 entries the journal snapshots
        for i in 0..3000u64 {
            j.write(vec![(format!("k{}", i % 10), i)])
                .await
                .expect("write");
        }
        let start = p.offsets().log_start_offset;
        assert!(start > 0, "compaction moved the log start");
        assert!(
            p.offsets().log_end_offset - start <= 1011,
            "at most a snapshot and 1,001 writes remain: start {start}, end {}",
            p.offsets().log_end_offset
        );
        let want: BTreeMap<String, u64> =
            (2990..3000).map(|i| (format!("k{}", i % 10), i)).collect();
        assert_eq!(j.read().0, want);
        drop(j);
        // what a new leader reads: the same state from what is left
        let again: Journal<Kv> = Journal::open_on(backend).await.expect("reload");
        assert_eq!(again.read().0, want);
    }

    #[tokio::test]
    async fn an_entry_that_does_not_decode_fails_the_load() {
        let dir = tempfile::tempdir().expect("tmp");
        let clock: crate::clock::SharedClock = Arc::new(ManualClock::new(1_700_000_000_000));
        let p = partition(dir.path(), clock.clone()).await;
        let backend = Arc::new(PartitionJournal::new(p));
        crate::journal::Backend::append(&*backend, vec![b"not a journal frame".to_vec()])
            .await
            .expect("append");
        assert!(Journal::<Kv>::open_on(backend).await.is_err());
    }

    #[tokio::test]
    async fn a_load_waits_for_what_the_log_holds_but_has_not_synced() {
        // a new leader's log right after catching up: records written, not yet durable
        let dir = tempfile::tempdir().expect("tmp");
        let clock: crate::clock::SharedClock = Arc::new(ManualClock::new(1_700_000_000_000));
        let p = unflushed(dir.path(), clock.clone()).await;
        let written: Vec<(String, u64)> = (0..5).map(|i| (format!("k{i}"), i)).collect();
        let mut entries = Vec::new();
        for r in &written {
            let mut e = Vec::new();
            crate::format::journal::encode(r, &mut e).expect("encode");
            entries.push(e);
        }
        p.append(Bytes::from(records::values_batch(&entries, p.now_ms())))
            .await
            .expect("append");
        assert_eq!(p.offsets().high_watermark, 0, "nothing synced yet");
        let backend = Arc::new(PartitionJournal::new(p.clone()));
        let loading = tokio::spawn(Journal::<Kv>::open_on(backend));
        tokio::time::sleep(Duration::from_millis(50)).await;
        flush(&p);
        let j = tokio::time::timeout(Duration::from_secs(10), loading)
            .await
            .expect("the load ends once the log is synced")
            .expect("task")
            .expect("open");
        assert_eq!(j.read().0, written.into_iter().collect());
    }
}
