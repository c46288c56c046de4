//! Tail chunks: a partition's committed batches gathered from the WAL into objects of its own.
//!
//! The WAL holds a partition's batches spread over one object per commit, so a take-over that
//! had to replay all of them would cost one bucket read per commit since the partition's last
//! segment went up. Instead, once a partition has [`CHUNK_BATCHES`] batches only the WAL holds
//! (or the oldest of them is [`CHUNK_AGE`] old), its leader copies them from its log (their bytes exactly as stored) into one create-only
//! object, `tail/<topic id>/<partition>/<base>-<end>`, and publishes the chunk's end as how far
//! the partition is held outside the WAL (the WAL records below it can go). A take-over reads
//! the manifest's segments, then these chunks, then the few WAL batches past the last chunk.
//! Chunks go once the manifest covers them (the next segment upload).
//!
//! Only committed batches are copied, and a committed batch is the same at its offsets whoever
//! leads the partition later, so a chunk is never wrong, even one written by a leader that was
//! fenced meanwhile.

use crate::format::batch;
use crate::tier::store::StoreError;
use crate::tier::Tier;
use bytes::Bytes;
use std::sync::Arc;
use uuid::Uuid;

/// WAL batches of a partition that make its leader write a chunk.
pub const CHUNK_BATCHES: u64 = 128;
/// Age of the oldest batch past the last chunk that makes its leader write one anyway: a WAL
/// record goes only once every partition it holds is covered, so a quiet partition must not
/// keep records of busy ones for long.
pub const CHUNK_AGE: std::time::Duration = std::time::Duration::from_secs(30);
/// Largest chunk; more committed data than this goes into several.
pub const CHUNK_MAX_BYTES: usize = 16 << 20;

/// One chunk: offsets `[base, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub key: String,
    pub base: i64,
    pub end: i64,
}

fn partition_prefix(topic: Uuid, partition: i32) -> String {
    format!("tail/{topic}/{partition}/")
}

/// The key of the chunk holding offsets `[base, end)` (zero-padded, so keys sort by offset).
pub fn chunk_key(topic: Uuid, partition: i32, base: i64, end: i64) -> String {
    format!("{}{base:020}-{end:020}", partition_prefix(topic, partition))
}

/// `[base, end)` from a chunk's key; `None` for anything else.
pub fn parse_chunk_key(key: &str) -> Option<(i64, i64)> {
    let name = key.rsplit('/').next()?;
    let (base, end) = name.split_once('-')?;
    let (base, end) = (base.parse::<i64>().ok()?, end.parse::<i64>().ok()?);
    (0 <= base && base < end).then_some((base, end))
}

/// Splits a chunk's bytes into its batches, checking each one whole (CRC included).
pub fn split_batches(data: &Bytes) -> Result<Vec<Bytes>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let (_, len) = batch::peek_frame(&data[at..]).map_err(|e| e.to_string())?;
        if at + len > data.len() {
            return Err(format!("a batch at byte {at} runs past the chunk's end"));
        }
        let b = data.slice(at..at + len);
        batch::validate_stored(&b).map_err(|e| e.to_string())?;
        out.push(b);
        at += len;
    }
    Ok(out)
}

/// The bucket side of tail chunks.
pub struct Tails {
    tier: Arc<Tier>,
}

impl Tails {
    pub fn new(tier: Arc<Tier>) -> Tails {
        Tails { tier }
    }

    /// Every chunk of a partition, in offset order.
    pub async fn list(&self, topic: Uuid, partition: i32) -> Result<Vec<Chunk>, StoreError> {
        let mut chunks: Vec<Chunk> = self
            .tier
            .store()
            .list(&partition_prefix(topic, partition))
            .await?
            .into_iter()
            .filter_map(|(key, _)| {
                let (base, end) = parse_chunk_key(&key)?;
                Some(Chunk { key, base, end })
            })
            .collect();
        chunks.sort_by_key(|c| (c.base, c.end));
        Ok(chunks)
    }

    /// Writes a chunk (create-only: one already there holds the same committed batches).
    pub async fn write(
        &self,
        topic: Uuid,
        partition: i32,
        base: i64,
        end: i64,
        data: Bytes,
    ) -> Result<Chunk, StoreError> {
        let key = chunk_key(topic, partition, base, end);
        match self.tier.store().put(&key, data, true).await {
            Ok(()) | Err(StoreError::AlreadyExists(_)) => Ok(Chunk { key, base, end }),
            Err(e) => Err(e),
        }
    }

    pub async fn read(&self, chunk: &Chunk) -> Result<Bytes, StoreError> {
        self.tier.store().get(&chunk.key).await
    }

    pub async fn delete(&self, chunk: &Chunk) -> Result<(), StoreError> {
        self.tier.store().delete(&chunk.key).await
    }

    /// Deletes every chunk of a deleted topic.
    pub async fn delete_topic(&self, topic: Uuid) -> Result<usize, StoreError> {
        let keys = self.tier.store().list(&format!("tail/{topic}/")).await?;
        for (key, _) in &keys {
            self.tier.store().delete(key).await?;
        }
        Ok(keys.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::batch::tests::make_batch;

    #[test]
    fn chunk_keys_sort_by_offset_and_parse_back() {
        let t = Uuid::new_v4();
        let a = chunk_key(t, 3, 9, 120);
        let b = chunk_key(t, 3, 120, 1_000);
        assert!(a < b, "{a} {b}");
        assert_eq!(parse_chunk_key(&a), Some((9, 120)));
        assert_eq!(parse_chunk_key(&b), Some((120, 1_000)));
        assert_eq!(parse_chunk_key("tail/x/3/00000000000000000005"), None);
        assert_eq!(
            parse_chunk_key("tail/x/3/9-9"),
            None,
            "an empty range is no chunk"
        );
        assert_eq!(parse_chunk_key("tail/x/3/-1-5"), None);
    }

    fn batches(spec: &[(i64, i32)]) -> Bytes {
        let mut out = Vec::new();
        for (base, n) in spec {
            out.extend_from_slice(&make_batch(*base, *n, 10, 0));
        }
        Bytes::from(out)
    }

    #[test]
    fn a_chunk_splits_into_checked_batches() {
        let data = batches(&[(7, 3), (10, 1)]);
        let split = split_batches(&data).unwrap();
        assert_eq!(split.len(), 2);
        assert_eq!(batch::validate_stored(&split[1]).unwrap().base_offset, 10);
        assert!(split_batches(&data.slice(..data.len() - 1)).is_err());
        let mut bad = data.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert!(
            split_batches(&Bytes::from(bad)).is_err(),
            "a CRC that does not match"
        );
    }
}
