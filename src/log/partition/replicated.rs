//! A partition's side of the cluster's WAL ([`crate::cluster::wal`]): its appends also go to the
//! bucket, its high watermark waits for their commit, and a new leader catches up from what the
//! WAL committed before it serves (and applies the log start the manifest records); tail chunks
//! copy its committed batches.

use super::{LogError, Partition};
use crate::cluster::wal::{WalError, WalLink};
use crate::format::{batch, markers};
use bytes::{Bytes, BytesMut};
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Partition {
    /// Ties the partition to the WAL before it serves anything as a cluster's leader: from now
    /// on every append is stamped with `link.epoch` and counts as written only once the WAL
    /// committed it. What the log holds now is committed (it was caught up from the WAL).
    pub fn attach_wal(&self, link: WalLink) {
        let end = self.log.summary().end_offset;
        self.committed_end.fetch_max(end, Ordering::AcqRel);
        let _ = self.wal.set(link);
        self.advance_hw();
    }

    /// Batches handed to the WAL since this node began leading the partition.
    pub fn wal_batches(&self) -> u64 {
        self.wal_batches.load(Ordering::Relaxed)
    }

    /// Whether the partition stopped serving here because another node leads it now (or a WAL
    /// commit of it was fenced).
    pub fn is_moved(&self) -> bool {
        self.moved.load(Ordering::Acquire)
    }

    /// The epoch this node leads the partition at (cluster mode).
    pub fn leader_epoch(&self) -> Option<i32> {
        self.wal.get().map(|l| l.epoch)
    }

    /// Hands a just-written batch to the WAL; its commit advances the high watermark, a fence
    /// stops the partition here (another node leads it now). Under the sequencing lock, so
    /// batches reach the WAL in offset order.
    pub(super) fn submit_to_wal(
        &self,
        link: &WalLink,
        head: &[u8],
        body: &[u8],
        base: i64,
        last: i64,
    ) {
        let mut data = BytesMut::with_capacity(head.len() + body.len());
        data.extend_from_slice(head);
        data.extend_from_slice(body);
        self.wal_batches.fetch_add(1, Ordering::Relaxed);
        let me = self.me.clone();
        link.wal.submit(
            link,
            base,
            last,
            data.freeze(),
            Box::new(move |r| {
                let Some(p) = me.upgrade() else { return };
                match r {
                    Ok(()) => {
                        p.committed_end.fetch_max(last + 1, Ordering::AcqRel);
                        p.advance_hw();
                    }
                    Err(WalError::Fenced) => {
                        tracing::warn!(topic = %p.topic, partition = p.index, "WAL commit fenced: another node leads the partition now");
                        p.mark_moved();
                    }
                }
            }),
        );
    }

    /// Raises the high watermark to what is both synced here and (in a cluster) committed to
    /// the WAL, and wakes whoever waits on it.
    pub(super) fn advance_hw(&self) {
        let mut target = self.durable_end.load(Ordering::Acquire);
        if self.wal.get().is_some() {
            target = target.min(self.committed_end.load(Ordering::Acquire));
        }
        let mut st = self.state.lock();
        if target > st.high_watermark {
            st.high_watermark = target;
            self.hw_tx.send_replace(target);
        }
    }

    /// Rolls the active segment once it is `max_age_ms` old or `max_bytes` big, even with no
    /// append to trigger it, and has the flusher finalize it (its upload follows): in a cluster
    /// this bounds what only the WAL holds, and so what a take-over replays from it.
    pub async fn roll_if_due(
        self: &Arc<Self>,
        max_age_ms: i64,
        max_bytes: u64,
    ) -> Result<bool, LogError> {
        let now = self.clock.now_ms();
        let me = self.clone();
        let rolled = self
            .io
            .run(move || {
                let seq = me.seq.lock();
                me.check_usable()?;
                Ok(me
                    .log
                    .roll_if_due(now, max_age_ms, max_bytes, &mut |at| seq.snapshot(at))?)
            })
            .await?;
        if rolled {
            self.request_sync();
        }
        Ok(rolled)
    }

    /// Appends batches the WAL committed, in order and at their own offsets, in one trip to the
    /// I/O executor, while catching up as a new leader. A batch wholly below the log end is
    /// already here and skipped; one that does not start at the log end is refused (a gap or an
    /// overlap means the history is not this log's), and so are the ones after it.
    pub async fn append_committed(self: &Arc<Self>, batches: Vec<Bytes>) -> Result<(), LogError> {
        let mut checked = Vec::with_capacity(batches.len());
        for data in batches {
            let h = batch::validate_stored(&data).map_err(LogError::Corrupt)?;
            let marker = if h.is_control() {
                markers::marker_kind(&data)
            } else {
                None
            };
            checked.push((data, h, marker));
        }
        let config = self.config();
        let now = self.clock.now_ms();
        let me = self.clone();
        self.io
            .run(move || {
                let mut seq = me.seq.lock();
                me.check_usable()?;
                for (data, h, marker) in checked {
                    let end = me.log.summary().end_offset;
                    if h.last_offset() < end {
                        continue;
                    }
                    if h.base_offset != end {
                        return Err(LogError::InvalidRecord(format!(
                            "committed batch at {} does not continue the log at {end}",
                            h.base_offset
                        )));
                    }
                    me.append_locked(&mut seq, &data, h, &config, now, marker, true)?;
                }
                Ok(())
            })
            .await
    }

    /// What a tail chunk copies (cluster mode): whole committed batches from local disk starting
    /// with the one holding `offset`, whether or not DeleteRecords has moved the log start past
    /// it since. A new leader replays chunks and the WAL in offset order, so they must continue
    /// one another even below the log start; the log start itself comes from the manifest.
    /// `None` when the local segments no longer hold `offset`.
    pub async fn read_committed_copy(
        self: &Arc<Self>,
        offset: i64,
        max_bytes: usize,
    ) -> Result<Option<Bytes>, LogError> {
        self.check_readable()?;
        let sum = self.log.summary();
        let hw = self.state.lock().high_watermark;
        if offset < sum.start_offset || offset >= hw {
            return Ok(None);
        }
        let log = self.log.clone();
        let records = self
            .io
            .run(move || Ok(log.read(offset, max_bytes, true)?))
            .await?;
        Ok(Some(records))
    }

    /// Cluster mode, taking a partition over: applies the log start an earlier leader set with
    /// DeleteRecords and recorded in the manifest (at most the log end), so the records below
    /// it stay deleted; retention removes the segments wholly below it.
    pub async fn restore_log_start(self: &Arc<Self>, floor: i64) -> Result<(), LogError> {
        let target = floor.min(self.log.summary().end_offset);
        if target <= self.state.lock().records_start {
            return Ok(());
        }
        let me = self.clone();
        self.io.run(move || me.persist_log_start(target)).await?;
        tracing::info!(topic = %self.topic, partition = self.index, log_start_offset = target, "log start restored from the manifest");
        Ok(())
    }
}
