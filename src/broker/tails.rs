//! Cluster mode: the leader's side of tail chunks ([`crate::cluster::tail`]) — writing them as
//! a partition's WAL batches pile up, deleting them once the manifest covers them, and
//! replaying them when taking a partition over.

use crate::cluster::tail::{Chunk, Tails, CHUNK_AGE, CHUNK_BATCHES, CHUNK_MAX_BYTES};
use crate::format::{batch, read};
use crate::log::{LogManager, Partition};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

/// Partitions whose chunks are kept at once.
const KEEPERS: usize = 8;

/// What a leader knows of one partition's chunks.
#[derive(Debug, Clone)]
pub(super) struct TailState {
    /// Offsets below this are in the manifest or in chunks, contiguously: WAL records below it
    /// may go.
    pub end: i64,
    /// [`Partition::wal_batches`] when the last chunk was written.
    pub batches_at: u64,
    /// When a batch past the last chunk was first seen.
    pub pending_since: Option<Instant>,
    /// Chunks not yet covered by the manifest.
    pub chunks: Vec<Chunk>,
}

impl TailState {
    /// The state a new leader starts with: how far the manifest and the chunks that continue
    /// it reach (only contiguously: a later chunk past a gap does not count).
    pub fn after_take_over(part: &Partition, chunks: Vec<Chunk>) -> TailState {
        let manifest_end = part.remote().and_then(|r| r.uploaded_end());
        let mut end = manifest_end.unwrap_or(part.offsets().log_start_offset);
        for c in &chunks {
            if c.base <= end && c.end > end {
                end = c.end;
            }
        }
        TailState {
            end,
            batches_at: part.wal_batches(),
            pending_since: None,
            chunks,
        }
    }
}

/// For every partition served: deletes the chunks its manifest covers and, once
/// [`CHUNK_BATCHES`] batches went to the WAL since the last chunk or the first of them is
/// [`CHUNK_AGE`] old, copies what is committed past the chunks into a new one.
pub(super) async fn keep(
    logs: &LogManager,
    tails: &Tails,
    serving: &HashMap<(Uuid, i32), (String, i32)>,
    states: &mut HashMap<(Uuid, i32), TailState>,
) {
    states.retain(|k, _| serving.contains_key(k));
    let work: Vec<_> = serving
        .iter()
        .filter_map(|(k, (name, _))| {
            let part = logs.get(name, k.1)?;
            let st = states.remove(k)?;
            Some((*k, part, st))
        })
        .collect();
    let mut done = futures::stream::iter(work.into_iter().map(|(k, part, mut st)| async move {
        keep_one(&part, k.0, tails, &mut st).await;
        (k, st)
    }))
    .buffer_unordered(KEEPERS);
    while let Some((k, st)) = done.next().await {
        states.insert(k, st);
    }
}

async fn keep_one(part: &Arc<Partition>, topic: Uuid, tails: &Tails, st: &mut TailState) {
    let manifest_end = part.remote().and_then(|r| r.uploaded_end());
    if let Some(m) = manifest_end {
        st.end = st.end.max(m);
        let mut kept = Vec::with_capacity(st.chunks.len());
        for c in std::mem::take(&mut st.chunks) {
            if c.end <= m {
                if let Err(e) = tails.delete(&c).await {
                    tracing::warn!(chunk = %c.key, error = %e, "deleting a tail chunk failed");
                    kept.push(c);
                }
            } else {
                kept.push(c);
            }
        }
        st.chunks = kept;
    }
    let count = part.wal_batches();
    let pending = count.saturating_sub(st.batches_at);
    if pending == 0 {
        return;
    }
    let since = *st.pending_since.get_or_insert_with(Instant::now);
    if pending < CHUNK_BATCHES && since.elapsed() < CHUNK_AGE {
        return;
    }
    let hw = part.offsets().high_watermark;
    while st.end < hw {
        match write_chunk(part, topic, tails, st.end, hw).await {
            Ok(Some(c)) => {
                st.end = c.end;
                st.chunks.push(c);
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(topic = %part.topic, partition = part.index, error = %e, "writing a tail chunk failed; retrying");
                return;
            }
        }
    }
    st.batches_at = count;
    st.pending_since = None;
}

/// Copies the committed batches from `from` (at most [`CHUNK_MAX_BYTES`]) into a chunk.
async fn write_chunk(
    part: &Arc<Partition>,
    topic: Uuid,
    tails: &Tails,
    from: i64,
    hw: i64,
) -> Result<Option<Chunk>, String> {
    let Some(records) = part
        .read_committed_copy(from, CHUNK_MAX_BYTES)
        .await
        .map_err(|e| format!("reading the log at {from}: {e}"))?
    else {
        // DeleteRecords removed those segments before they were uploaded: the WAL keeps them
        // until the manifest passes them, and chunking goes on from there
        return Ok(None);
    };
    // the high watermark is at a batch boundary: the batches starting below it are committed
    let (data, last) = read::batches_below(&records, hw);
    let Some(last) = last else {
        return Ok(None);
    };
    let (base, _) = batch::peek_frame(&data).map_err(|e| format!("log read: {e}"))?;
    tails
        .write(topic, part.index, base, last + 1, data)
        .await
        .map(Some)
        .map_err(|e| format!("writing the chunk: {e}"))
}
