//! A partition's remote manifest: the list of its segments in the bucket, with their offset and
//! time ranges and an explicit state each.
//!
//! Every change is a new immutable object `manifest/<20-digit version>.json` written with a
//! create-only put, so a write never replaces what another writer (or an earlier attempt of this
//! one) put there; the highest version is the current one. A segment is listed only after all its
//! objects are up. Deletion is two-phase: the segment is first marked `DeleteStarted` (and leaves
//! the readable range), its objects are deleted, then a later version drops it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The catalog's copy in the bucket (at the tier's prefix).
pub const CATALOG_OBJECT: &str = "catalog.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentState {
    /// Every object of the segment is in the bucket; readable.
    CopyFinished,
    /// Retention (or topic deletion) is removing its objects; no longer readable.
    DeleteStarted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteSegment {
    pub base_offset: i64,
    /// One past the segment's last offset.
    pub next_offset: i64,
    pub size_bytes: u64,
    /// Largest batch max-timestamp in the segment, -1 when unknown.
    pub max_timestamp: i64,
    pub offset_of_max_timestamp: i64,
    pub state: SegmentState,
    /// Whether a `.txnindex` object (every aborted transaction with records in the segment)
    /// was uploaded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub txn_index: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u64,
    pub topic: String,
    pub topic_id: Uuid,
    pub partition: i32,
    /// Segments in offset order.
    pub segments: Vec<RemoteSegment>,
    /// One past the last offset ever uploaded, kept when retention drops every segment.
    #[serde(default)]
    pub uploaded_end: Option<i64>,
    /// The partition's log start set by DeleteRecords: records below it stay deleted even
    /// where a segment still holds them (also for a broker rebuilding from the bucket alone).
    #[serde(default)]
    pub log_start_offset: Option<i64>,
}

impl Manifest {
    pub fn empty(topic: &str, topic_id: Uuid, partition: i32) -> Manifest {
        Manifest {
            version: 0,
            topic: topic.to_string(),
            topic_id,
            partition,
            segments: Vec::new(),
            uploaded_end: None,
            log_start_offset: None,
        }
    }

    pub fn readable(&self) -> impl Iterator<Item = &RemoteSegment> {
        self.segments
            .iter()
            .filter(|s| s.state == SegmentState::CopyFinished)
    }

    /// `[start, end)` of the readable remote offsets, `None` when nothing is readable.
    pub fn range(&self) -> Option<(i64, i64)> {
        let first = self.readable().next()?;
        let last = self.readable().last()?;
        Some((first.base_offset, last.next_offset))
    }

    /// One past the last offset ever uploaded (also counting segments being deleted): where the
    /// next upload continues and where an empty local log restarts.
    pub fn end_offset(&self) -> Option<i64> {
        let last = self.segments.last().map(|s| s.next_offset);
        last.max(self.uploaded_end)
    }

    /// The readable segment holding `offset`, or else the first readable one after it.
    pub fn segment_for(&self, offset: i64) -> Option<&RemoteSegment> {
        self.readable().find(|s| s.next_offset > offset)
    }

    pub fn readable_bytes(&self) -> u64 {
        self.readable().map(|s| s.size_bytes).sum()
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}

/// `topics/<topic>-<topic id>/<partition>`: every object of one partition lives below this.
pub fn partition_dir(topic: &str, topic_id: Uuid, partition: i32) -> String {
    format!("{}/{partition}", topic_dir(topic, topic_id))
}

pub fn topic_dir(topic: &str, topic_id: Uuid) -> String {
    format!("topics/{topic}-{}", topic_id.simple())
}

pub fn manifest_key(dir: &str, version: u64) -> String {
    format!("{dir}/manifest/{version:020}.json")
}

/// The version number of a manifest key, if it is one.
pub fn manifest_version(key: &str) -> Option<u64> {
    let name = key.rsplit('/').next()?;
    let (prefix, _) = key.rsplit_once('/')?;
    if !prefix.ends_with("/manifest") {
        return None;
    }
    name.strip_suffix(".json")?.parse().ok()
}

/// `<dir>/<20-digit base offset>.<ext>` for `log`, `index` and `timeindex`.
pub fn segment_key(dir: &str, base_offset: i64, ext: &str) -> String {
    format!("{dir}/{}", super::segment_file(base_offset, ext))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(base: i64, next: i64, state: SegmentState) -> RemoteSegment {
        RemoteSegment {
            base_offset: base,
            next_offset: next,
            size_bytes: 10,
            max_timestamp: base,
            offset_of_max_timestamp: next - 1,
            state,
            txn_index: false,
        }
    }

    #[test]
    fn ranges_skip_segments_being_deleted() {
        let mut m = Manifest::empty("t", Uuid::nil(), 0);
        assert_eq!(m.range(), None);
        assert_eq!(m.end_offset(), None);
        m.segments.push(seg(0, 10, SegmentState::DeleteStarted));
        m.segments.push(seg(10, 25, SegmentState::CopyFinished));
        m.segments.push(seg(30, 40, SegmentState::CopyFinished));
        assert_eq!(m.range(), Some((10, 40)));
        assert_eq!(m.end_offset(), Some(40));
        assert_eq!(m.segment_for(3).map(|s| s.base_offset), Some(10));
        assert_eq!(m.segment_for(24).map(|s| s.base_offset), Some(10));
        assert_eq!(
            m.segment_for(25).map(|s| s.base_offset),
            Some(30),
            "gaps skip ahead"
        );
        assert_eq!(m.segment_for(40), None);
        assert_eq!(m.readable_bytes(), 20);
        let back: Manifest = serde_json::from_slice(&m.to_json()).expect("round trip");
        assert_eq!(back, m);
    }

    #[test]
    fn keys_follow_the_documented_layout() {
        let id = Uuid::from_u128(0xabc);
        let dir = partition_dir("orders", id, 3);
        assert_eq!(dir, format!("topics/orders-{}/3", id.simple()));
        assert_eq!(
            segment_key(&dir, 42, "log"),
            format!("{dir}/00000000000000000042.log")
        );
        let k = manifest_key(&dir, 7);
        assert_eq!(manifest_version(&k), Some(7));
        assert_eq!(manifest_version(&segment_key(&dir, 42, "log")), None);
    }
}
