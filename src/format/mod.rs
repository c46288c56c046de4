//! Every persisted format, in one room: what is on disk in the data dir and what is in the
//! bucket. Pure codecs and names, no I/O: the log, the tier, the catalog and the journal all
//! import from here and none of them from each other for a format.
//!
//! The data dir (`data_dir`):
//!
//! | name | what | codec |
//! |---|---|---|
//! | `catalog.json` | topics, cluster id, dynamic broker configs | the catalog's JSON |
//! | `group-offsets.log`, `transactions.log` | journals | [`journal`] |
//! | `producer-ids` | end of the last reserved producer-id block (decimal) | text |
//! | `.tiercel_clean_shutdown` | written last at a clean shutdown: every segment's indexes and a snapshot at its log end are on disk | empty |
//! | `<topic>-<partition>/` | a partition's directory | below |
//! | `<topic>-<partition>.<uuid>-delete/` | a deleted partition being removed | — |
//!
//! A partition's directory: `<20-digit base offset>.log` (record batches as clients sent them,
//! [`batch`]), `.index` and `.timeindex` ([`index`]), `.txnindex` ([`txn_index`]),
//! `<20-digit offset>.snapshot` (idempotent-producer and open-transaction state as of that
//! offset, [`snapshot`]), `log-start-offset` (DeleteRecords' floor, decimal) and
//! `cleaner-offset-checkpoint` (where compaction stopped, decimal) and, in cluster mode,
//! `leader-epoch-checkpoint` ([`epochs`]). `*.tmp` and `*.cleaned` are
//! temporary and removed at start-up.
//!
//! The bucket: see [`manifest`] (`topics/<topic>-<id>/<partition>/…`), `catalog.json` and, in
//! cluster mode, the write-ahead log objects ([`wal`]).

pub mod batch;
pub mod codec;
pub mod epochs;
pub mod index;
pub mod journal;
pub mod manifest;
pub mod markers;
pub mod read;
pub mod records;
pub mod snapshot;
pub mod txn_index;
pub mod validate;
pub mod wal;

pub const CATALOG_FILE: &str = "catalog.json";
pub const GROUP_OFFSETS_FILE: &str = "group-offsets.log";
pub const SHARE_STATE_FILE: &str = "share-groups.log";
pub const TRANSACTIONS_FILE: &str = "transactions.log";
pub const PRODUCER_IDS_FILE: &str = "producer-ids";
pub const CLEAN_SHUTDOWN_FILE: &str = ".tiercel_clean_shutdown";
/// Suffix of a partition directory being removed.
pub const DELETE_SUFFIX: &str = "-delete";
/// In a partition directory: the DeleteRecords floor.
pub const LOG_START_FILE: &str = "log-start-offset";
/// In a partition directory: the leader epochs of its log ([`epochs`]), in cluster mode.
pub const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";
/// In a partition directory: the end of the last compacted range.
pub const CLEANER_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";

/// `<topic>-<partition>`: a partition's directory name, as Kafka names it.
pub fn partition_dir_name(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}")
}

/// File name stem for a segment's base offset (or a snapshot's offset): 20 zero-padded digits.
pub fn file_stem(offset: i64) -> String {
    format!("{offset:020}")
}

/// `<20 digits>.<ext>` for a segment's files.
pub fn segment_file(base_offset: i64, ext: &str) -> String {
    format!("{}.{ext}", file_stem(base_offset))
}

/// The offset a `<digits>.<ext>` file name stands for, when it has that extension.
pub fn offset_of_file(name: &str, ext: &str) -> Option<i64> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// A small decimal file (`log-start-offset`, `producer-ids`, the cleaner checkpoint).
pub fn parse_decimal(text: &[u8]) -> Option<i64> {
    std::str::from_utf8(text).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafkas_layout() {
        assert_eq!(segment_file(42, "log"), "00000000000000000042.log");
        assert_eq!(offset_of_file("00000000000000000042.log", "log"), Some(42));
        assert_eq!(offset_of_file("00000000000000000042.index", "log"), None);
        assert_eq!(offset_of_file("x.log", "log"), None);
        assert_eq!(offset_of_file(".log", "log"), None);
        assert_eq!(partition_dir_name("orders", 3), "orders-3");
        assert_eq!(parse_decimal(b" 17\n"), Some(17));
        assert_eq!(parse_decimal(b"x"), None);
    }
}
