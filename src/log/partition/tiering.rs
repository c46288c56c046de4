//! A partition's side of tiered storage: attaching its remote log, queueing the closed segments
//! the manifest does not list yet, the upload lag.

use super::Partition;
use crate::tier::RemoteLog;
use std::sync::Arc;

impl Partition {
    /// Connects the partition to its remote log and queues what it has not uploaded yet.
    /// Only the first call has an effect.
    pub fn attach_remote(self: &Arc<Self>, remote: Arc<RemoteLog>) {
        // a DeleteRecords floor the bucket knows (the local file may be gone with the disk)
        let floor = remote.log_start_floor();
        if self.remote.set(remote).is_ok() {
            {
                let mut st = self.state.lock();
                st.records_start = st.records_start.max(floor);
            }
            if self.deleted.is_cancelled() {
                if let Some(r) = self.remote.get() {
                    r.stop();
                }
                return;
            }
            self.schedule_uploads();
        }
    }

    /// Queues every finalized closed segment the remote manifest does not list yet, up to the
    /// oldest open transaction: as in Kafka, only segments below the last stable offset go up,
    /// so the bucket never holds records of an undecided transaction.
    pub fn schedule_uploads(self: &Arc<Self>) {
        if self.remote.get().is_none() {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move { me.queue_uploads().await });
    }

    /// What [`Self::schedule_uploads`] does, awaited: once it returns, every segment that may go
    /// up is in the uploader's queue.
    pub async fn queue_uploads(&self) {
        // a follower copy's segments are the leader's to upload
        let Some(remote) = self.remote.get().filter(|r| !r.is_read_only()).cloned() else {
            return;
        };
        let uploaded = remote.uploaded_end().unwrap_or(i64::MIN);
        let below = {
            let st = self.state.lock();
            let lso = st.first_open.unwrap_or(i64::MAX);
            // a cluster's leader tiers only what the WAL committed: nothing it could lose
            match self.wal.get() {
                Some(_) => lso.min(st.high_watermark),
                None => lso,
            }
        };
        let log = self.log.clone();
        match self
            .io
            .run(move || Ok(log.upload_jobs(uploaded, below)))
            .await
        {
            Ok(jobs) => jobs.into_iter().for_each(|j| remote.schedule(j)),
            Err(e) => {
                tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "could not queue uploads")
            }
        }
    }

    pub fn remote(&self) -> Option<&Arc<RemoteLog>> {
        self.remote.get()
    }

    /// Closed local segments not in the bucket yet: (bytes, segments).
    pub fn upload_lag(&self) -> (u64, usize) {
        let Some(remote) = self.remote.get() else {
            return (0, 0);
        };
        let uploaded = remote.uploaded_end().unwrap_or(i64::MIN);
        self.log
            .summary()
            .closed
            .iter()
            .filter(|s| s.next_offset > uploaded && s.len > 0)
            .fold((0, 0), |(b, n), s| (b + s.len, n + 1))
    }
}
