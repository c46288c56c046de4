//! Offset and time indexes, in Kafka's on-disk formats.
//!
//! `.index`: entries of (relative offset `u32`, file position `u32`), big-endian, 8 bytes each,
//! one every `index.interval.bytes` of log. `.timeindex`: entries of (timestamp `i64`, relative
//! offset `u32`), 12 bytes each, added when the segment's max timestamp grows at an index point.
//! Both are sparse and kept in memory while the segment is open; they are written to disk when a
//! segment rolls and at clean shutdown. A file that fails [`decode_offsets`]'s checks is ignored
//! and rebuilt by scanning the segment, so a corrupt index can cost time but never data.

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

pub fn encode_offsets(entries: &[OffsetEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 8);
    for e in entries {
        out.extend_from_slice(&e.relative_offset.to_be_bytes());
        out.extend_from_slice(&e.position.to_be_bytes());
    }
    out
}

pub fn encode_times(entries: &[TimeEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 12);
    for e in entries {
        out.extend_from_slice(&e.timestamp.to_be_bytes());
        out.extend_from_slice(&e.relative_offset.to_be_bytes());
    }
    out
}

/// Decodes an offset index, or `None` if it is not a well-formed index for a log of
/// `log_len` bytes (wrong size, offsets or positions not strictly increasing, position past end).
pub fn decode_offsets(bytes: &[u8], log_len: u64) -> Option<Vec<OffsetEntry>> {
    if bytes.len() % 8 != 0 {
        return None;
    }
    let mut out: Vec<OffsetEntry> = Vec::with_capacity(bytes.len() / 8);
    for c in bytes.chunks_exact(8) {
        let e = OffsetEntry {
            relative_offset: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
            position: u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
        };
        if e.position as u64 >= log_len {
            return None;
        }
        if let Some(prev) = out.last() {
            if e.relative_offset <= prev.relative_offset || e.position <= prev.position {
                return None;
            }
        }
        out.push(e);
    }
    Some(out)
}

/// Decodes a time index, or `None` if malformed (wrong size, timestamps or offsets decreasing).
pub fn decode_times(bytes: &[u8]) -> Option<Vec<TimeEntry>> {
    if bytes.len() % 12 != 0 {
        return None;
    }
    let mut out: Vec<TimeEntry> = Vec::with_capacity(bytes.len() / 12);
    for c in bytes.chunks_exact(12) {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&c[0..8]);
        let e = TimeEntry {
            timestamp: i64::from_be_bytes(ts),
            relative_offset: u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
        };
        if let Some(prev) = out.last() {
            if e.timestamp < prev.timestamp || e.relative_offset < prev.relative_offset {
                return None;
            }
        }
        out.push(e);
    }
    Some(out)
}

/// The entry with the largest relative offset `<= rel`, if any.
pub fn floor_offset(entries: &[OffsetEntry], rel: u32) -> Option<OffsetEntry> {
    let i = entries.partition_point(|e| e.relative_offset <= rel);
    i.checked_sub(1).map(|i| entries[i])
}

/// The entry with the largest timestamp `< ts` (where a scan for `ts` may safely start).
pub fn floor_time(entries: &[TimeEntry], ts: i64) -> Option<TimeEntry> {
    let i = entries.partition_point(|e| e.timestamp < ts);
    i.checked_sub(1).map(|i| entries[i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn roundtrip_and_lookup() {
        let e = vec![
            OffsetEntry {
                relative_offset: 0,
                position: 0,
            },
            OffsetEntry {
                relative_offset: 10,
                position: 4100,
            },
            OffsetEntry {
                relative_offset: 25,
                position: 8300,
            },
        ];
        let d = decode_offsets(&encode_offsets(&e), 10_000).expect("valid");
        assert_eq!(d, e);
        assert_eq!(floor_offset(&d, 9).map(|e| e.position), Some(0));
        assert_eq!(floor_offset(&d, 10).map(|e| e.position), Some(4100));
        assert_eq!(floor_offset(&d, 99).map(|e| e.position), Some(8300));
        assert!(
            decode_offsets(&encode_offsets(&e), 8000).is_none(),
            "position past end"
        );
        let t = vec![
            TimeEntry {
                timestamp: 5,
                relative_offset: 0,
            },
            TimeEntry {
                timestamp: 9,
                relative_offset: 4,
            },
        ];
        let dt = decode_times(&encode_times(&t)).expect("valid");
        assert_eq!(floor_time(&dt, 9).map(|e| e.relative_offset), Some(0));
        assert_eq!(floor_time(&dt, 10).map(|e| e.relative_offset), Some(4));
        assert_eq!(floor_time(&dt, 5), None);
    }

    proptest! {
        #[test]
        fn garbage_index_files_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200), len in 0u64..100_000) {
            let _ = decode_offsets(&data, len);
            let _ = decode_times(&data);
        }
    }
}
