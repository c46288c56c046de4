//! The aborted-transaction index, `<base offset>.txnindex`, in Kafka's format: one 34-byte entry
//! per transaction aborted with records in the segment (version `i16` 0, producer id, first
//! offset, last offset — the abort marker's —, and the last stable offset once it ended).
//! Written beside a closed segment and uploaded with it, so a `read_committed` read from the
//! bucket knows which records to drop.

const ENTRY_LEN: usize = 34;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The offset of the abort marker.
    pub last_offset: i64,
    /// The LSO once this transaction ended.
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    /// Whether the transaction has records (or its marker) in `[from, to)`.
    pub fn overlaps(&self, from: i64, to: i64) -> bool {
        self.first_offset < to && self.last_offset >= from
    }
}

pub fn encode(entries: &[AbortedTxn]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * ENTRY_LEN);
    for e in entries {
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&e.producer_id.to_be_bytes());
        out.extend_from_slice(&e.first_offset.to_be_bytes());
        out.extend_from_slice(&e.last_offset.to_be_bytes());
        out.extend_from_slice(&e.last_stable_offset.to_be_bytes());
    }
    out
}

/// Decodes a `.txnindex`; `None` when it is not a whole number of well-formed entries.
pub fn decode(bytes: &[u8]) -> Option<Vec<AbortedTxn>> {
    if bytes.len() % ENTRY_LEN != 0 {
        return None;
    }
    let i64_at = |c: &[u8], at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&c[at..at + 8]);
        i64::from_be_bytes(w)
    };
    bytes
        .chunks_exact(ENTRY_LEN)
        .map(|c| {
            if c[0] != 0 || c[1] != 0 {
                return None;
            }
            Some(AbortedTxn {
                producer_id: i64_at(c, 2),
                first_offset: i64_at(c, 10),
                last_offset: i64_at(c, 18),
                last_stable_offset: i64_at(c, 26),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_partial_files_are_refused() {
        let e = AbortedTxn {
            producer_id: 2,
            first_offset: 11,
            last_offset: 14,
            last_stable_offset: 15,
        };
        let bytes = encode(&[e, e]);
        assert_eq!(bytes.len(), 2 * ENTRY_LEN);
        assert_eq!(decode(&bytes), Some(vec![e, e]));
        assert_eq!(decode(&bytes[..40]), None);
        assert!(e.overlaps(14, 20) && e.overlaps(0, 12) && !e.overlaps(15, 20));
    }
}
