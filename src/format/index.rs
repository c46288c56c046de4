//! Offset and time indexes, in Kafka's on-disk formats, kept as their file bytes.
//!
//! `.index`: entries of (relative offset `u32`, file position `u32`), big-endian, 8 bytes each,
//! one every `index.interval.bytes` of log. `.timeindex`: entries of (timestamp `i64`, relative
//! offset `u32`), 12 bytes each, added when the segment's max timestamp grows at an index point;
//! a closed segment's time index ends with an entry for its largest timestamp (as Kafka writes
//! on roll), so the segment's max timestamp is known without reading the log.
//!
//! The same bytes are what a segment keeps in memory, what it writes beside its `.log`, and what
//! the bucket holds next to an uploaded segment, so local and remote lookups share the binary
//! searches below. A file that fails [`offsets_valid`] / [`times_valid`] is ignored and rebuilt
//! by scanning the segment: a corrupt index can cost time but never data.

pub const OFFSET_ENTRY_LEN: usize = 8;
pub const TIME_ENTRY_LEN: usize = 12;

/// An offset index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// A time index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn offset_entry(index: &[u8], i: usize) -> OffsetEntry {
    OffsetEntry {
        relative_offset: u32_at(index, i * OFFSET_ENTRY_LEN),
        position: u32_at(index, i * OFFSET_ENTRY_LEN + 4),
    }
}

fn time_entry(index: &[u8], i: usize) -> TimeEntry {
    let at = i * TIME_ENTRY_LEN;
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&index[at..at + 8]);
    TimeEntry {
        timestamp: i64::from_be_bytes(ts),
        relative_offset: u32_at(index, at + 8),
    }
}

pub fn push_offset(index: &mut Vec<u8>, e: OffsetEntry) {
    index.extend_from_slice(&e.relative_offset.to_be_bytes());
    index.extend_from_slice(&e.position.to_be_bytes());
}

pub fn push_time(index: &mut Vec<u8>, e: TimeEntry) {
    index.extend_from_slice(&e.timestamp.to_be_bytes());
    index.extend_from_slice(&e.relative_offset.to_be_bytes());
}

/// Number of entries in an offset index.
pub fn offset_entries(index: &[u8]) -> usize {
    index.len() / OFFSET_ENTRY_LEN
}

/// The entries of an offset index, in order (a partial trailing entry is ignored).
pub fn offsets(index: &[u8]) -> impl Iterator<Item = OffsetEntry> + '_ {
    (0..offset_entries(index)).map(move |i| offset_entry(index, i))
}

/// The entries of a time index, in order.
pub fn times(index: &[u8]) -> impl Iterator<Item = TimeEntry> + '_ {
    (0..index.len() / TIME_ENTRY_LEN).map(move |i| time_entry(index, i))
}

/// The last entry of an offset index.
pub fn last_offset(index: &[u8]) -> Option<OffsetEntry> {
    offset_entries(index)
        .checked_sub(1)
        .map(|i| offset_entry(index, i))
}

/// The last entry of a time index (for a closed segment: its max timestamp).
pub fn last_time(index: &[u8]) -> Option<TimeEntry> {
    (index.len() / TIME_ENTRY_LEN)
        .checked_sub(1)
        .map(|i| time_entry(index, i))
}

/// Whether `bytes` is a well-formed offset index for a log of `log_len` bytes: whole entries,
/// offsets and positions strictly increasing, every position inside the log.
pub fn offsets_valid(bytes: &[u8], log_len: u64) -> bool {
    if bytes.len() % OFFSET_ENTRY_LEN != 0 {
        return false;
    }
    let mut prev: Option<OffsetEntry> = None;
    for e in offsets(bytes) {
        if e.position as u64 >= log_len {
            return false;
        }
        if let Some(p) = prev {
            if e.relative_offset <= p.relative_offset || e.position <= p.position {
                return false;
            }
        }
        prev = Some(e);
    }
    true
}

/// Whether `bytes` is a well-formed time index: whole entries, timestamps and offsets never
/// decreasing.
pub fn times_valid(bytes: &[u8]) -> bool {
    if bytes.len() % TIME_ENTRY_LEN != 0 {
        return false;
    }
    let mut prev: Option<TimeEntry> = None;
    for e in times(bytes) {
        if let Some(p) = prev {
            if e.timestamp < p.timestamp || e.relative_offset < p.relative_offset {
                return false;
            }
        }
        prev = Some(e);
    }
    true
}

/// The entry with the largest relative offset `<= rel`, if any (binary search over the bytes).
pub fn floor_offset(index: &[u8], rel: u32) -> Option<OffsetEntry> {
    let (mut lo, mut hi) = (0usize, offset_entries(index));
    while lo < hi {
        let mid = (lo + hi) / 2;
        if offset_entry(index, mid).relative_offset <= rel {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo.checked_sub(1).map(|i| offset_entry(index, i))
}

/// The entry with the largest timestamp `< ts` (where a walk for `ts` may safely start).
pub fn floor_time(index: &[u8], ts: i64) -> Option<TimeEntry> {
    let (mut lo, mut hi) = (0usize, index.len() / TIME_ENTRY_LEN);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if time_entry(index, mid).timestamp < ts {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo.checked_sub(1).map(|i| time_entry(index, i))
}

/// The file position from which to walk a segment of `log_len` bytes for `rel`: the floor
/// entry's position, or 0 when there is none or it points past the segment (a damaged index
/// costs a longer walk, never a wrong answer).
pub fn start_position(index: &[u8], rel: u32, log_len: u64) -> u64 {
    match floor_offset(index, rel) {
        Some(e) if (e.position as u64) < log_len => e.position as u64,
        _ => 0,
    }
}

/// The file position from which to walk for the first batch with a timestamp `>= ts`.
pub fn time_start_position(offsets: &[u8], times: &[u8], ts: i64, log_len: u64) -> u64 {
    match floor_time(times, ts) {
        Some(t) => start_position(offsets, t.relative_offset, log_len),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn roundtrip_and_lookup() {
        let mut idx = Vec::new();
        for (rel, pos) in [(0u32, 0u32), (10, 4100), (25, 8300)] {
            push_offset(
                &mut idx,
                OffsetEntry {
                    relative_offset: rel,
                    position: pos,
                },
            );
        }
        assert!(offsets_valid(&idx, 10_000));
        assert_eq!(offsets(&idx).count(), 3);
        assert_eq!(floor_offset(&idx, 9).map(|e| e.position), Some(0));
        assert_eq!(floor_offset(&idx, 10).map(|e| e.position), Some(4100));
        assert_eq!(floor_offset(&idx, 99).map(|e| e.position), Some(8300));
        assert_eq!(last_offset(&idx).map(|e| e.relative_offset), Some(25));
        assert!(!offsets_valid(&idx, 8000), "position past end");
        assert_eq!(
            start_position(&idx, 30, 8000),
            0,
            "past the end: walk from 0"
        );
        assert_eq!(start_position(&idx, 30, 9000), 8300);
        assert_eq!(start_position(&[], 3, 100), 0);
        let mut t = Vec::new();
        push_time(
            &mut t,
            TimeEntry {
                timestamp: 5,
                relative_offset: 0,
            },
        );
        push_time(
            &mut t,
            TimeEntry {
                timestamp: 9,
                relative_offset: 10,
            },
        );
        assert!(times_valid(&t));
        assert_eq!(floor_time(&t, 9).map(|e| e.relative_offset), Some(0));
        assert_eq!(floor_time(&t, 10).map(|e| e.relative_offset), Some(10));
        assert_eq!(floor_time(&t, 5), None);
        assert_eq!(last_time(&t).map(|e| e.timestamp), Some(9));
        assert_eq!(time_start_position(&idx, &t, 10, 9000), 4100);
        assert!(!times_valid(&t[..13]));
    }

    proptest! {
        #[test]
        fn garbage_index_files_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200), len in 0u64..100_000, rel in any::<u32>(), ts in any::<i64>()) {
            let _ = offsets_valid(&data, len);
            let _ = times_valid(&data);
            let _ = start_position(&data, rel, len);
            let _ = time_start_position(&data, &data, ts, len);
            let _ = last_time(&data);
            let _ = last_offset(&data);
        }
    }
}
