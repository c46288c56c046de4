//! A partition's side of transactions: coordinator markers, `read_committed` reads and the
//! producer view operators ask for (DescribeProducers). See [`super::txn_index`] for the model.

use super::error::LogError;
use super::partition::{Partition, ReadResult};
use super::txn_index;
use crate::format::batch;
use crate::format::markers;
use crate::format::txn_index::AbortedTxn;

/// One producer as DescribeProducers shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerView {
    pub producer_id: i64,
    pub epoch: i16,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    /// The first offset of the producer's open transaction here, or -1.
    pub current_txn_start_offset: i64,
}

impl Partition {
    /// Appends the coordinator's commit or abort marker for `producer_id` and returns its
    /// offset. A marker from an epoch older than the partition has seen is refused.
    pub fn append_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
    ) -> Result<i64, LogError> {
        self.check_usable()?;
        let config = self.config();
        let now = self.clock.now_ms();
        let data = markers::marker_batch(producer_id, epoch, commit, coordinator_epoch, now);
        let h = batch::validate(&data)?;
        let mut inner = self.inner.lock();
        inner.producers.check_marker(producer_id, epoch)?;
        let info = self.append_locked(&mut inner, &data, h, &config, now, Some(commit))?;
        drop(inner);
        // segments this transaction held back from the bucket may go up now
        self.schedule_uploads();
        Ok(info.last_offset)
    }

    /// A `read_committed` fetch: whole batches below the last stable offset, and the aborted
    /// transactions that overlap them (the client drops their records).
    pub async fn fetch_committed(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<(ReadResult, Vec<AbortedTxn>), LogError> {
        let mut r = self.fetch(offset, max_bytes, min_one).await?;
        let (records, last) = txn_index::below(&r.records, r.offsets.last_stable_offset);
        r.records = records;
        let end = last.map_or(offset, |l| l + 1);
        if end <= offset {
            return Ok((r, Vec::new()));
        }
        let mut aborted = Vec::new();
        if let Some(remote) = self.remote() {
            if offset < self.local_start_offset() {
                // the read came from the bucket: so may the transactions it overlaps
                for bytes in remote.txn_indexes(offset).await? {
                    let entries = crate::format::txn_index::decode(&bytes).ok_or_else(|| {
                        LogError::Io(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!(
                                "{}-{}: a remote .txnindex is not whole entries",
                                self.topic, self.index
                            ),
                        ))
                    })?;
                    for e in entries {
                        if e.overlaps(offset, end) && !aborted.contains(&e) {
                            aborted.push(e);
                        }
                    }
                }
            }
        }
        for e in self.aborted_between(offset, end) {
            if !aborted.contains(&e) {
                aborted.push(e);
            }
        }
        Ok((r, aborted))
    }

    /// Aborted transactions with records in `[from, to)`. A transaction's marker never comes
    /// before its records, so only segments from the one holding `from` onwards are searched.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        let inner = self.inner.lock();
        let start = inner
            .segments
            .range(..=from)
            .next_back()
            .map_or(i64::MIN, |(k, _)| *k);
        inner
            .segments
            .range(start..)
            .flat_map(|(_, s)| s.aborted.iter())
            .filter(|e| e.overlaps(from, to))
            .copied()
            .collect()
    }

    /// The producers this partition remembers, with their open transactions.
    pub fn producers(&self) -> Vec<ProducerView> {
        let inner = self.inner.lock();
        inner
            .producers
            .view()
            .into_iter()
            .map(
                |(producer_id, epoch, last_sequence, last_timestamp)| ProducerView {
                    producer_id,
                    epoch,
                    last_sequence,
                    last_timestamp,
                    current_txn_start_offset: inner.txns.open_at(producer_id).unwrap_or(-1),
                },
            )
            .collect()
    }
}

#[cfg(test)]
#[path = "txn_tests.rs"]
mod tests;
