//! Remote reads: whole batches from a segment in the bucket, located through its offset index and
//! fetched with range GETs in `CHUNK`-sized pieces through the shared cache. A sequential reader
//! finds the next chunk already cached: each read prefetches the chunk after it.
//!
//! Remote bytes are checked before they are served: every batch header must parse and every
//! batch's CRC-32C must match, otherwise the read fails with [`TierError::Corrupt`].

use super::remote::RemoteLog;
use super::shared::{TierError, CHUNK};
use crate::format::batch::{self, BatchHeader};
use crate::format::index;
use crate::format::manifest::{segment_key, RemoteSegment};
use crate::format::read::{self, Found, Target, Walk};
use crate::format::txn_index::{self, AbortedTxn};
use bytes::{Bytes, BytesMut};
use std::sync::Arc;

/// Whole-object cache entries use this chunk number.
const WHOLE: u64 = u64::MAX;

impl RemoteLog {
    /// Batches starting with the one holding `offset` (or the first after it), from one remote
    /// segment: at most `max_bytes`, except that with `min_one` the first batch comes whole.
    /// `None` when no readable remote segment holds `offset` or anything after it.
    pub async fn read(
        self: &Arc<Self>,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<Option<Bytes>, TierError> {
        let Some(seg) = self.manifest().segment_for(offset).cloned() else {
            return Ok(None);
        };
        let key = segment_key(&self.dir, seg.base_offset, "log");
        let start = self.index_position(&seg, offset).await?;
        let Some(found) = self.walk(&seg, start, Target::Offset(offset)).await? else {
            return Ok(Some(Bytes::new()));
        };
        let want = read::read_len(&found, seg.size_bytes, max_bytes, min_one);
        if want == 0 {
            return Ok(Some(Bytes::new()));
        }
        let data = self
            .read_range(&key, seg.size_bytes, found.position, want)
            .await?;
        let data = whole_checked_batches(&key, data)?;
        self.prefetch(&key, seg.size_bytes, found.position + data.len() as u64);
        Ok(Some(data))
    }

    /// The first batch of the remote log with a max timestamp `>= ts`, with its header, among
    /// readable remote segments below `below` (where the local log takes over).
    pub async fn find_timestamp(
        self: &Arc<Self>,
        ts: i64,
        below: i64,
    ) -> Result<Option<(BatchHeader, Bytes)>, TierError> {
        let candidates: Vec<RemoteSegment> = self
            .manifest()
            .readable()
            .filter(|s| s.max_timestamp >= ts && s.base_offset < below)
            .cloned()
            .collect();
        for seg in candidates {
            let key = segment_key(&self.dir, seg.base_offset, "log");
            let start = self.time_position(&seg, ts).await?;
            if let Some(found) = self.walk(&seg, start, Target::Timestamp(ts)).await? {
                let len = found.header.total_len() as u64;
                let data = self
                    .read_range(&key, seg.size_bytes, found.position, len)
                    .await?;
                let data = whole_checked_batches(&key, data)?;
                return Ok(Some((found.header, data)));
            }
        }
        Ok(None)
    }

    /// Walks batch headers from `start` to the batch `target` names ([`read::Walk`]: the same
    /// rules as a local read), through the chunk cache.
    async fn walk(
        &self,
        seg: &RemoteSegment,
        start: u64,
        target: Target,
    ) -> Result<Option<Found>, TierError> {
        let key = segment_key(&self.dir, seg.base_offset, "log");
        let mut walk = Walk::new(start, seg.size_bytes, target);
        while let Some((pos, len)) = walk.next() {
            let head = self
                .read_range(&key, seg.size_bytes, pos, len as u64)
                .await?;
            let found = walk.feed(&head).map_err(|e| TierError::Corrupt {
                key: key.clone(),
                reason: format!("at position {pos}: {e}"),
            })?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// Aborted transactions with records in `[from, to)`, from the `.txnindex` objects of the
    /// remote segments from the one holding `from` onwards. Each lists every aborted
    /// transaction with records in its segment (see `UploadJob::txn_index`); segments without
    /// aborted transactions have none and cost no request.
    pub async fn aborted_between(&self, from: i64, to: i64) -> Result<Vec<AbortedTxn>, TierError> {
        let keys: Vec<String> = self
            .manifest()
            .readable()
            .filter(|s| s.next_offset > from && s.txn_index)
            .map(|s| segment_key(&self.dir, s.base_offset, "txnindex"))
            .collect();
        let mut out = Vec::new();
        for key in keys {
            let bytes = self.whole(&key).await?;
            let entries = txn_index::decode(&bytes).ok_or_else(|| TierError::Corrupt {
                key: key.clone(),
                reason: "not whole .txnindex entries".into(),
            })?;
            for e in entries {
                if e.overlaps(from, to) && !out.contains(&e) {
                    out.push(e);
                }
            }
        }
        Ok(out)
    }

    /// Where to start walking for `offset`: the floor entry of the segment's offset index.
    async fn index_position(&self, seg: &RemoteSegment, offset: i64) -> Result<u64, TierError> {
        let index = self
            .whole(&segment_key(&self.dir, seg.base_offset, "index"))
            .await?;
        let rel = (offset - seg.base_offset).clamp(0, u32::MAX as i64) as u32;
        Ok(index::start_position(&index, rel, seg.size_bytes))
    }

    /// Where to start walking for timestamp `ts`, through the time index then the offset index.
    async fn time_position(&self, seg: &RemoteSegment, ts: i64) -> Result<u64, TierError> {
        let times = self
            .whole(&segment_key(&self.dir, seg.base_offset, "timeindex"))
            .await?;
        match index::floor_time(&times, ts) {
            Some(t) => {
                self.index_position(seg, seg.base_offset + t.relative_offset as i64)
                    .await
            }
            None => Ok(0),
        }
    }

    /// A small object read whole through the cache (index files). A missing index is treated
    /// as empty: the walk then starts at the segment's beginning.
    async fn whole(&self, key: &str) -> Result<Bytes, TierError> {
        let ck = (key.to_string(), WHOLE);
        if let Some(b) = self.shared.cache.get(&ck) {
            return Ok(b);
        }
        let data = match self.shared.store.get(key).await {
            Ok(d) => d,
            Err(super::store::StoreError::NotFound(_)) => Bytes::new(),
            Err(e) => return Err(e.into()),
        };
        self.shared.cache.insert(ck, data.clone());
        Ok(data)
    }

    /// `len` bytes at `pos` of a segment object of `size` bytes, assembled from cached chunks.
    async fn read_range(
        &self,
        key: &str,
        size: u64,
        pos: u64,
        len: u64,
    ) -> Result<Bytes, TierError> {
        let end = (pos + len).min(size);
        let (first, last) = (pos / CHUNK, (end.max(pos + 1) - 1) / CHUNK);
        if first == last {
            let c = self.chunk(key, size, first).await?;
            let from = (pos - first * CHUNK) as usize;
            let to = ((end - first * CHUNK) as usize).min(c.len());
            return short_check(key, c.slice(from.min(to)..to), end - pos);
        }
        let mut out = BytesMut::with_capacity((end - pos) as usize);
        for i in first..=last {
            let c = self.chunk(key, size, i).await?;
            let lo = pos.max(i * CHUNK) - i * CHUNK;
            let hi = (end.min((i + 1) * CHUNK) - i * CHUNK).min(c.len() as u64);
            if lo < hi {
                out.extend_from_slice(&c[lo as usize..hi as usize]);
            }
        }
        short_check(key, out.freeze(), end - pos)
    }

    async fn chunk(&self, key: &str, size: u64, i: u64) -> Result<Bytes, TierError> {
        let ck = (key.to_string(), i);
        if let Some(c) = self.shared.cache.get(&ck) {
            return Ok(c);
        }
        let range = i * CHUNK..((i + 1) * CHUNK).min(size);
        let data = self.shared.store.get_range(key, range).await?;
        self.shared.cache.insert(ck, data.clone());
        Ok(data)
    }

    /// Fetches the chunk holding `pos` into the cache in the background (read-ahead).
    fn prefetch(self: &Arc<Self>, key: &str, size: u64, pos: u64) {
        if pos >= size {
            return;
        }
        let i = pos / CHUNK;
        let ck = (key.to_string(), i);
        if self.shared.cache.contains(&ck) {
            return;
        }
        let me = self.clone();
        let key = key.to_string();
        self.shared.tasks.spawn(async move {
            let _ = me.chunk(&key, size, i).await;
        });
    }
}

fn short_check(key: &str, data: Bytes, want: u64) -> Result<Bytes, TierError> {
    if (data.len() as u64) < want {
        return Err(TierError::Corrupt {
            key: key.to_string(),
            reason: format!(
                "object is shorter than the manifest says ({} of {want} bytes)",
                data.len()
            ),
        });
    }
    Ok(data)
}

/// The whole batches at the front of `data`, each CRC-checked; the first must be whole.
fn whole_checked_batches(key: &str, data: Bytes) -> Result<Bytes, TierError> {
    let mut end = 0usize;
    while end < data.len() {
        let len = match batch::peek_frame(&data[end..]) {
            Ok((_, len)) if end + len <= data.len() => len,
            _ => break,
        };
        batch::validate_stored(&data[end..end + len]).map_err(|e| TierError::Corrupt {
            key: key.to_string(),
            reason: format!("batch at byte {end} of the read: {e}"),
        })?;
        end += len;
    }
    if end == 0 && !data.is_empty() {
        return Err(TierError::Corrupt {
            key: key.to_string(),
            reason: "no whole batch where one was expected".into(),
        });
    }
    Ok(data.slice(..end))
}
