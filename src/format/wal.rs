//! The cluster's write-ahead log in the bucket.
//!
//! A WAL object (`wal/<node>/<uuid>`, written once, never changed) is the stored bytes of record
//! batches from any partitions the node leads, one after another, exactly as they are in the
//! partitions' segment files (base offsets assigned, partition leader epoch stamped); every
//! batch carries its own CRC. It is committed by a [`WalRecord`] in etcd
//! (`<prefix>/wal/<node>/<uuid>-<n>`, JSON; [`record_key`]) that says where each batch is: a batch is
//! acknowledged only once its record is committed, and it is part of its partition's history
//! from then on, whichever node leads the partition next.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One batch of a WAL object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalEntry {
    #[serde(rename = "t")]
    pub topic: Uuid,
    #[serde(rename = "p")]
    pub partition: i32,
    /// The leader epoch it was written in.
    #[serde(rename = "e")]
    pub epoch: i32,
    /// Its first and last offsets.
    #[serde(rename = "b")]
    pub base: i64,
    #[serde(rename = "l")]
    pub last: i64,
    /// Where its bytes are in the object.
    #[serde(rename = "o")]
    pub pos: u64,
    #[serde(rename = "n")]
    pub len: u64,
}

/// The etcd record that commits a WAL object (or some of its batches).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalRecord {
    /// The object's key under the tier prefix.
    pub object: String,
    pub entries: Vec<WalEntry>,
}

/// A new WAL object's key for `node`.
pub fn object_key(node: i32) -> String {
    format!("wal/{node}/{}", Uuid::new_v4().simple())
}

/// The etcd key (after the cluster prefix) of the `chunk`-th record committing `object` (an
/// object's batches are committed in groups of partitions, one record each).
pub fn record_key(object: &str, chunk: usize) -> String {
    format!("{object}-{chunk}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_in_short_json() {
        let r = WalRecord {
            object: object_key(3),
            entries: vec![WalEntry {
                topic: Uuid::nil(),
                partition: 2,
                epoch: 7,
                base: 100,
                last: 104,
                pos: 0,
                len: 300,
            }],
        };
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(r#""p":2"#), "{json}");
        assert_eq!(serde_json::from_str::<WalRecord>(&json).unwrap(), r);
        assert!(r.object.starts_with("wal/3/"));
        assert_eq!(record_key("wal/3/abc", 2), "wal/3/abc-2");
    }
}
