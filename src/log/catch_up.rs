//! Catching a partition's copy up with what a cluster committed: the tail chunks
//! ([`crate::cluster::tail`]) and the WAL batches past them ([`crate::cluster::wal`]), appended
//! at their own offsets. A new leader does it before it serves; a follower copy (KIP-392 reads
//! from a node that does not lead the partition) does it when built and as the WAL commits more.

use super::{LogError, Partition};
use crate::cluster::tail::{self, Chunk, Tails};
use crate::cluster::wal::Wal;
use crate::format::wal::WalEntry;
use futures::StreamExt;
use std::sync::Arc;

/// Replays the chunks that continue the log from its end (a chunk past a gap is left for a
/// later pass). Returns how many batches were appended.
pub async fn replay_chunks(
    part: &Arc<Partition>,
    tails: &Tails,
    chunks: &[Chunk],
) -> Result<usize, String> {
    let mut appended = 0;
    for c in chunks {
        let end = part.offsets().log_end_offset;
        if c.end <= end {
            continue;
        }
        if c.base > end {
            break;
        }
        let data = tails
            .read(c)
            .await
            .map_err(|e| format!("reading tail chunk {}: {e}", c.key))?;
        let batches =
            tail::split_batches(&data).map_err(|e| format!("tail chunk {}: {e}", c.key))?;
        appended += batches.len();
        match part.append_committed(batches).await {
            Ok(()) => {}
            Err(LogError::InvalidRecord(m)) => return Err(format!("tail chunk {}: {m}", c.key)),
            Err(e) => return Err(format!("appending tail chunk {}: {e}", c.key)),
        }
    }
    Ok(appended)
}

/// Reads from the bucket in flight at once while catching up.
const CATCH_UP_READS: usize = 32;
/// Largest read of adjacent batches while catching up.
const CATCH_UP_RUN: u64 = 8 << 20;

/// Appends what the tail chunks and then the WAL committed past the log end, and syncs it.
pub async fn catch_up(
    part: &Arc<Partition>,
    wal: &Wal,
    tails: &Tails,
    chunks: &[Chunk],
    committed: &[(String, WalEntry)],
) -> Result<(), String> {
    let started = std::time::Instant::now();
    let mut from_chunks = replay_chunks(part, tails, chunks).await?;
    let wal_started = std::time::Instant::now();
    let (batches, ranges) = replay_wal(part, wal, committed).await?;
    if batches > 0 {
        tracing::info!(
            topic = %part.topic,
            partition = part.index,
            batches,
            ranges,
            ms = wal_started.elapsed().as_millis() as u64,
            "caught up from the WAL"
        );
    }
    // chunks past a stretch only the WAL held
    from_chunks += replay_chunks(part, tails, chunks).await?;
    if from_chunks > 0 {
        tracing::info!(
            topic = %part.topic,
            partition = part.index,
            batches = from_chunks,
            ms = started.elapsed().as_millis() as u64,
            "caught up from the tail chunks"
        );
    }
    // what was appended is committed: synced here before the copy serves, its high watermark
    // covers it (one below the end would tell a consumer the partition holds less than was
    // acknowledged, until the flusher's next round)
    part.flush_once().await;
    let o = part.offsets();
    if o.high_watermark < o.log_end_offset {
        return Err(format!(
            "syncing the caught-up log: high watermark {} below the log end {}",
            o.high_watermark, o.log_end_offset
        ));
    }
    Ok(())
}

/// Appends every committed WAL batch past the log end, in offset order; returns how many
/// batches it read and in how many ranges. A commit writes each partition's batches next to
/// each other in its object, so adjacent batches are read as one range ([`CATCH_UP_READS`]
/// reads in flight) and appended in one trip to the I/O executor. A batch that does not
/// continue the log (a gap) is refused, and so is everything after it.
pub async fn replay_wal(
    part: &Arc<Partition>,
    wal: &Wal,
    committed: &[(String, WalEntry)],
) -> Result<(usize, usize), String> {
    let from = part.offsets().log_end_offset;
    let mut runs: Vec<(&str, Vec<WalEntry>)> = Vec::new();
    for (object, e) in committed.iter().filter(|(_, e)| e.last >= from) {
        match runs.last_mut() {
            Some((o, run))
                if *o == object.as_str()
                    && run.last().is_some_and(|p| p.pos + p.len == e.pos)
                    && e.pos + e.len - run[0].pos <= CATCH_UP_RUN =>
            {
                run.push(*e)
            }
            _ => runs.push((object.as_str(), vec![*e])),
        }
    }
    let batches: usize = runs.iter().map(|(_, r)| r.len()).sum();
    let ranges = runs.len();
    let reads: Vec<_> = runs
        .into_iter()
        .map(|(object, run)| async move {
            let (start, end) = (run[0].pos, run[run.len() - 1].pos + run[run.len() - 1].len);
            let bytes = wal
                .read_range(object, start..end)
                .await
                .map_err(|err| format!("reading WAL object {object}: {err}"))?;
            if bytes.len() as u64 != end - start {
                return Err(format!(
                    "WAL object {object} is shorter than its record says"
                ));
            }
            Ok::<_, String>(
                run.iter()
                    .map(|e| {
                        bytes.slice((e.pos - start) as usize..(e.pos - start + e.len) as usize)
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let mut reads = futures::stream::iter(reads)
        .buffered(CATCH_UP_READS)
        .ready_chunks(CATCH_UP_READS);
    while let Some(chunk) = reads.next().await {
        let mut batches = Vec::new();
        for r in chunk {
            batches.extend(r?);
        }
        match part.append_committed(batches).await {
            Ok(()) => {}
            Err(LogError::InvalidRecord(m)) => return Err(m),
            Err(err) => return Err(format!("appending committed batches: {err}")),
        }
    }
    Ok((batches, ranges))
}
