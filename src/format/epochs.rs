//! `leader-epoch-checkpoint`: the leader epochs a partition's log went through and the offset at
//! which each began, in Kafka's text layout (a version line `0`, a count line, then one
//! `<epoch> <start offset>` line per epoch, epochs and offsets growing).
//!
//! A node of a cluster appends an entry when it starts leading a partition; the last entry tells
//! it, after a restart, which epoch its local copy belongs to (a copy from an epoch that another
//! node continued is discarded, never served).

/// An epoch and the first offset written in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

pub fn encode(entries: &[EpochEntry]) -> Vec<u8> {
    let mut s = format!("0\n{}\n", entries.len());
    for e in entries {
        s.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
    }
    s.into_bytes()
}

/// Parses a checkpoint; `None` if it is not one this version wrote (a torn or foreign file).
pub fn decode(bytes: &[u8]) -> Option<Vec<EpochEntry>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut out = Vec::with_capacity(count.min(1024));
    for line in lines.by_ref().take(count) {
        let (e, o) = line.trim().split_once(' ')?;
        out.push(EpochEntry {
            epoch: e.parse().ok()?,
            start_offset: o.parse().ok()?,
        });
    }
    if out.len() != count || lines.next().is_some_and(|l| !l.trim().is_empty()) {
        return None;
    }
    let ordered = out
        .windows(2)
        .all(|w| w[0].epoch < w[1].epoch && w[0].start_offset <= w[1].start_offset);
    ordered.then_some(out)
}

/// `entries` with `epoch` starting at `start_offset` appended; entries of later or equal epochs,
/// or that begin past `start_offset` (a truncated log), are dropped first.
pub fn begin(entries: &[EpochEntry], epoch: i32, start_offset: i64) -> Vec<EpochEntry> {
    let mut out: Vec<EpochEntry> = entries
        .iter()
        .copied()
        .filter(|e| e.epoch < epoch && e.start_offset <= start_offset)
        .collect();
    out.push(EpochEntry {
        epoch,
        start_offset,
    });
    out
}

/// OffsetForLeaderEpoch's answer as Kafka's leader-epoch cache gives it: for the current epoch,
/// the log end; for an older one, the start of the next epoch this log knows (with the largest
/// known epoch not above the one asked); `(-1, -1)` for an unknown future epoch.
pub fn end_offset_for(entries: &[EpochEntry], requested: i32, log_end: i64) -> (i32, i64) {
    const UNDEFINED: (i32, i64) = (-1, -1);
    if requested < 0 {
        return UNDEFINED;
    }
    if entries.last().is_some_and(|e| e.epoch == requested) {
        return (requested, log_end);
    }
    let Some(higher) = entries.iter().find(|e| e.epoch > requested) else {
        return UNDEFINED;
    };
    match entries.iter().rev().find(|e| e.epoch <= requested) {
        Some(floor) => (floor.epoch, higher.start_offset),
        None => (requested, higher.start_offset),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_it_did_not_write() {
        let e = begin(&begin(&[], 0, 0), 3, 120);
        let bytes = encode(&e);
        assert_eq!(bytes, b"0\n2\n0 0\n3 120\n");
        assert_eq!(decode(&bytes), Some(e));
        assert_eq!(decode(b"1\n0\n"), None);
        assert_eq!(decode(b"0\n2\n0 0\n"), None, "fewer lines than counted");
        assert_eq!(decode(b"0\n2\n3 0\n1 5\n"), None, "epochs must grow");
        assert_eq!(decode(b"0\n1\nx y\n"), None);
        assert_eq!(decode(b"0\n0\n"), Some(vec![]));
    }

    #[test]
    fn end_offsets_follow_kafkas_leader_epoch_cache() {
        let e = begin(&begin(&begin(&[], 1, 0), 3, 40), 6, 90);
        assert_eq!(
            end_offset_for(&e, 6, 120),
            (6, 120),
            "current epoch: the log end"
        );
        assert_eq!(
            end_offset_for(&e, 3, 120),
            (3, 90),
            "ends where epoch 6 starts"
        );
        assert_eq!(
            end_offset_for(&e, 4, 120),
            (3, 90),
            "unknown epoch between: its floor"
        );
        assert_eq!(
            end_offset_for(&e, 0, 120),
            (0, 0),
            "older than any: where the first starts"
        );
        assert_eq!(
            end_offset_for(&e, 7, 120),
            (-1, -1),
            "a future epoch is undefined"
        );
        assert_eq!(end_offset_for(&e, -1, 120), (-1, -1));
        assert_eq!(end_offset_for(&[], 0, 5), (-1, -1));
    }

    #[test]
    fn a_new_epoch_replaces_entries_it_supersedes() {
        let e = begin(&begin(&begin(&[], 1, 0), 4, 50), 6, 30);
        assert_eq!(
            e,
            vec![
                EpochEntry {
                    epoch: 1,
                    start_offset: 0
                },
                EpochEntry {
                    epoch: 6,
                    start_offset: 30
                }
            ]
        );
    }
}
