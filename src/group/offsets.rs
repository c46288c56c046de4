//! Durable committed offsets.
//!
//! Kept in a [`Journal`] at `<data_dir>/group-offsets.log`: commits and deletions, fsynced before
//! they are applied and answered, so an acknowledged commit survives `kill -9`; the file is
//! compacted to the live offsets. Transactional commits (TxnOffsetCommit) are journaled as
//! pending under their producer id and become committed offsets only when the transaction's
//! commit is journaled; an abort drops them. Pending offsets survive a crash with the
//! transaction, whose coordinator finishes it either way after restart.

use crate::journal::{Journal, Journaled};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Record {
    Commit {
        group: String,
        topic: String,
        partition: i32,
        value: Committed,
    },
    DeleteOffset {
        group: String,
        topic: String,
        partition: i32,
    },
    DeleteGroup {
        group: String,
    },
    DeleteTopic {
        topic: String,
    },
    /// An offset committed inside a transaction, applied when the transaction commits.
    TxnCommit {
        group: String,
        producer_id: i64,
        topic: String,
        partition: i32,
        value: Committed,
    },
    /// The end of a producer's transaction for a group: its pending offsets apply or vanish.
    TxnEnd {
        group: String,
        producer_id: i64,
        commit: bool,
    },
}

/// Offsets by group, then `(topic, partition)`.
pub type OffsetMap = HashMap<String, BTreeMap<(String, i32), Committed>>;

/// Committed offsets plus the transactional ones still pending.
#[derive(Debug, Default)]
pub struct OffsetState {
    committed: OffsetMap,
    /// By (group, producer id).
    pending: HashMap<(String, i64), BTreeMap<(String, i32), Committed>>,
}

impl Journaled for OffsetState {
    type Record = Record;

    fn apply(&mut self, r: &Record) {
        let map = &mut self.committed;
        match r {
            Record::Commit {
                group,
                topic,
                partition,
                value,
            } => {
                map.entry(group.clone())
                    .or_default()
                    .insert((topic.clone(), *partition), value.clone());
            }
            Record::DeleteOffset {
                group,
                topic,
                partition,
            } => {
                if let Some(g) = map.get_mut(group) {
                    g.remove(&(topic.clone(), *partition));
                    if g.is_empty() {
                        map.remove(group);
                    }
                }
            }
            Record::DeleteGroup { group } => {
                map.remove(group);
                self.pending.retain(|(g, _), _| g != group);
            }
            Record::DeleteTopic { topic } => {
                for g in map.values_mut() {
                    g.retain(|(t, _), _| t != topic);
                }
                map.retain(|_, g| !g.is_empty());
                for p in self.pending.values_mut() {
                    p.retain(|(t, _), _| t != topic);
                }
            }
            Record::TxnCommit {
                group,
                producer_id,
                topic,
                partition,
                value,
            } => {
                self.pending
                    .entry((group.clone(), *producer_id))
                    .or_default()
                    .insert((topic.clone(), *partition), value.clone());
            }
            Record::TxnEnd {
                group,
                producer_id,
                commit,
            } => {
                if let Some(offsets) = self.pending.remove(&(group.clone(), *producer_id)) {
                    if *commit && !offsets.is_empty() {
                        map.entry(group.clone()).or_default().extend(offsets);
                    }
                }
            }
        }
    }

    fn snapshot(&self) -> Vec<Record> {
        let mut out = Vec::with_capacity(self.live());
        for (group, offsets) in &self.committed {
            for ((topic, partition), value) in offsets {
                out.push(Record::Commit {
                    group: group.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                    value: value.clone(),
                });
            }
        }
        for ((group, producer_id), offsets) in &self.pending {
            for ((topic, partition), value) in offsets {
                out.push(Record::TxnCommit {
                    group: group.clone(),
                    producer_id: *producer_id,
                    topic: topic.clone(),
                    partition: *partition,
                    value: value.clone(),
                });
            }
        }
        out
    }

    fn live(&self) -> usize {
        self.committed.values().map(|g| g.len()).sum::<usize>()
            + self.pending.values().map(|p| p.len()).sum::<usize>()
    }
}

pub struct OffsetStore {
    journal: Journal<OffsetState>,
}

impl OffsetStore {
    /// Loads the file (truncating a torn tail) and starts the writer thread.
    pub fn open(data_dir: &Path) -> io::Result<OffsetStore> {
        Ok(OffsetStore {
            journal: Journal::open(data_dir.join(crate::format::GROUP_OFFSETS_FILE))?,
        })
    }

    /// Loads the offsets kept in `backend` (a cluster's internal partition) and starts its
    /// writer.
    pub async fn open_on(
        backend: std::sync::Arc<dyn crate::journal::Backend>,
    ) -> io::Result<OffsetStore> {
        Ok(OffsetStore {
            journal: Journal::open_on(backend).await?,
        })
    }

    /// Appends records durably, then applies them. Resolves once they survive a crash.
    pub async fn write(&self, records: Vec<Record>) -> io::Result<()> {
        self.journal.write(records).await
    }

    pub fn group(&self, group: &str) -> BTreeMap<(String, i32), Committed> {
        self.journal
            .read()
            .committed
            .get(group)
            .cloned()
            .unwrap_or_default()
    }

    pub fn get(&self, group: &str, topic: &str, partition: i32) -> Option<Committed> {
        self.journal
            .read()
            .committed
            .get(group)?
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    pub fn groups(&self) -> Vec<String> {
        self.journal.read().committed.keys().cloned().collect()
    }

    /// Whether an open transaction holds an offset for the partition (OffsetFetch with
    /// require_stable answers UNSTABLE_OFFSET_COMMIT then).
    pub fn has_pending(&self, group: &str, topic: &str, partition: i32) -> bool {
        let key = (topic.to_string(), partition);
        self.journal
            .read()
            .pending
            .iter()
            .any(|((g, _), offsets)| g == group && offsets.contains_key(&key))
    }

    /// Whether `group` has committed offsets or transactional offsets pending (without
    /// copying them).
    pub fn holds_offsets(&self, group: &str) -> bool {
        let j = self.journal.read();
        j.committed.get(group).is_some_and(|g| !g.is_empty())
            || j.pending.keys().any(|(g, _)| g == group)
    }

    /// Producers with pending transactional offsets in `group`.
    pub fn pending_producers(&self, group: &str) -> Vec<i64> {
        self.journal
            .read()
            .pending
            .keys()
            .filter(|(g, _)| g == group)
            .map(|(_, p)| *p)
            .collect()
    }

    /// Groups holding offsets `producer_id` committed in its open transaction.
    pub fn groups_pending_from(&self, producer_id: i64) -> Vec<String> {
        self.journal
            .read()
            .pending
            .keys()
            .filter(|(_, p)| *p == producer_id)
            .map(|(g, _)| g.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::journal::{decode_prefix, encode};
    use std::fs::OpenOptions;
    use std::io::Write;

    fn commit(g: &str, p: i32, o: i64) -> Record {
        Record::Commit {
            group: g.into(),
            topic: "t".into(),
            partition: p,
            value: Committed {
                offset: o,
                leader_epoch: -1,
                metadata: Some("m".into()),
                commit_ms: 1,
            },
        }
    }

    #[tokio::test]
    async fn commits_survive_reopen_and_a_torn_tail() {
        let dir = tempfile::tempdir().expect("tmp");
        {
            let s = OffsetStore::open(dir.path()).expect("open");
            s.write(vec![commit("g", 0, 5), commit("g", 1, 7)])
                .await
                .expect("write");
            s.write(vec![commit("g", 0, 9)]).await.expect("write");
            assert_eq!(s.get("g", "t", 0).map(|c| c.offset), Some(9));
        }
        let path = dir.path().join(crate::format::GROUP_OFFSETS_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(&[0, 0, 0, 40, 1, 2, 3]).expect("torn");
        drop(f);
        let s = OffsetStore::open(dir.path()).expect("reopen");
        assert_eq!(s.get("g", "t", 0).map(|c| c.offset), Some(9));
        assert_eq!(s.get("g", "t", 1).map(|c| c.offset), Some(7));
        s.write(vec![Record::DeleteTopic { topic: "t".into() }])
            .await
            .expect("write");
        assert!(s.group("g").is_empty());
    }

    #[tokio::test]
    async fn storage_stays_bounded_under_repeated_commits() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = OffsetStore::open(dir.path()).expect("open");
        for i in 0..5000 {
            s.write(vec![commit("g", (i % 4) as i32, i)])
                .await
                .expect("write");
        }
        let len = std::fs::metadata(dir.path().join(crate::format::GROUP_OFFSETS_FILE))
            .expect("meta")
            .len();
        assert!(
            len < 200_000,
            "compacted to about the live offsets: {len} bytes"
        );
        drop(s);
        let s = OffsetStore::open(dir.path()).expect("reopen");
        assert_eq!(s.group("g").len(), 4);
        assert_eq!(s.get("g", "t", 3).map(|c| c.offset), Some(4999));
    }

    #[test]
    fn garbage_files_decode_to_a_prefix() {
        let mut buf = Vec::new();
        encode(&commit("g", 0, 1), &mut buf).expect("encode");
        let good = buf.len();
        buf.extend_from_slice(&[0xff; 30]);
        let (recs, valid) = decode_prefix::<Record>(&buf);
        assert_eq!(recs.len(), 1);
        assert_eq!(valid, good);
        let (recs, _) = decode_prefix::<Record>(&[0, 0, 0, 2, 0, 0, 0, 0, b'{', b'}']);
        assert!(recs.is_empty());
    }
}
