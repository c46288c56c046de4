//! The durable side of share groups: each share-partition's start offset and in-flight runs,
//! and the groups' configs (`share.auto.offset.reset`, …), kept in a [`Journal`] as committed
//! offsets are. A share-partition is written whole (its window is bounded), with a sequence
//! number so that of two writes racing to the journal the later state wins.

use super::partition::Run;
use crate::journal::{Journal, Journaled};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use uuid::Uuid;

/// A share-partition's key: group, topic id, partition.
pub type Key = (String, Uuid, i32);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Record {
    Partition {
        group: String,
        topic: Uuid,
        partition: i32,
        seq: u64,
        start: i64,
        runs: Vec<Run>,
    },
    /// Forgets one share-partition (DeleteShareGroupOffsets, a deleted topic).
    Forget {
        group: String,
        topic: Uuid,
        partition: i32,
        seq: u64,
    },
    /// Forgets a whole group (DeleteGroups).
    ForgetGroup { group: String },
    /// Sets (`Some`) or removes a group config.
    Config {
        group: String,
        key: String,
        value: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct Stored {
    pub seq: u64,
    pub start: i64,
    pub runs: Vec<Run>,
}

#[derive(Default)]
pub struct ShareState {
    pub partitions: BTreeMap<Key, Stored>,
    /// Sequence numbers of forgotten partitions, so an older write landing late stays forgotten.
    forgotten: BTreeMap<Key, u64>,
    pub configs: BTreeMap<String, BTreeMap<String, String>>,
}

impl Journaled for ShareState {
    type Record = Record;

    fn apply(&mut self, r: &Record) {
        match r {
            Record::Partition {
                group,
                topic,
                partition,
                seq,
                start,
                runs,
            } => {
                let key = (group.clone(), *topic, *partition);
                if self.forgotten.get(&key).is_some_and(|s| s >= seq)
                    || self.partitions.get(&key).is_some_and(|s| s.seq >= *seq)
                {
                    return;
                }
                self.forgotten.remove(&key);
                self.partitions.insert(
                    key,
                    Stored {
                        seq: *seq,
                        start: *start,
                        runs: runs.clone(),
                    },
                );
            }
            Record::Forget {
                group,
                topic,
                partition,
                seq,
            } => {
                let key = (group.clone(), *topic, *partition);
                self.partitions.remove(&key);
                self.forgotten.insert(key, *seq);
            }
            Record::ForgetGroup { group } => {
                self.partitions.retain(|k, _| &k.0 != group);
                self.forgotten.retain(|k, _| &k.0 != group);
                self.configs.remove(group);
            }
            Record::Config { group, key, value } => {
                let c = self.configs.entry(group.clone()).or_default();
                match value {
                    Some(v) => {
                        c.insert(key.clone(), v.clone());
                    }
                    None => {
                        c.remove(key);
                    }
                }
                if c.is_empty() {
                    self.configs.remove(group);
                }
            }
        }
    }

    fn snapshot(&self) -> Vec<Record> {
        let mut out: Vec<Record> = self
            .partitions
            .iter()
            .map(|((group, topic, partition), s)| Record::Partition {
                group: group.clone(),
                topic: *topic,
                partition: *partition,
                seq: s.seq,
                start: s.start,
                runs: s.runs.clone(),
            })
            .collect();
        out.extend(
            self.forgotten
                .iter()
                .map(|((group, topic, partition), seq)| Record::Forget {
                    group: group.clone(),
                    topic: *topic,
                    partition: *partition,
                    seq: *seq,
                }),
        );
        for (group, c) in &self.configs {
            for (key, value) in c {
                out.push(Record::Config {
                    group: group.clone(),
                    key: key.clone(),
                    value: Some(value.clone()),
                });
            }
        }
        out
    }

    fn live(&self) -> usize {
        self.partitions.len()
            + self.forgotten.len()
            + self.configs.values().map(|c| c.len()).sum::<usize>()
    }
}

pub struct ShareStore {
    journal: Journal<ShareState>,
}

impl ShareStore {
    pub fn open(data_dir: &Path) -> io::Result<ShareStore> {
        Ok(ShareStore {
            journal: Journal::open(data_dir.join(crate::format::SHARE_STATE_FILE))?,
        })
    }

    /// Appends durably, then applies. Resolves once the records survive a crash.
    pub async fn write(&self, records: Vec<Record>) -> io::Result<()> {
        self.journal.write(records).await
    }

    pub fn read(&self) -> parking_lot::RwLockReadGuard<'_, ShareState> {
        self.journal.read()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::share::partition::RecordState;

    fn part(seq: u64, start: i64) -> Record {
        Record::Partition {
            group: "g".into(),
            topic: Uuid::from_u128(1),
            partition: 0,
            seq,
            start,
            runs: vec![Run {
                first: start,
                last: start + 1,
                state: RecordState::Available,
                delivery_count: 1,
            }],
        }
    }

    #[tokio::test]
    async fn the_latest_state_survives_a_reopen_whatever_order_writes_land_in() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = ShareStore::open(dir.path()).unwrap();
            s.write(vec![part(2, 20)]).await.unwrap();
            s.write(vec![part(1, 10)]).await.unwrap(); // older, landing late
            s.write(vec![Record::Config {
                group: "g".into(),
                key: "share.auto.offset.reset".into(),
                value: Some("earliest".into()),
            }])
            .await
            .unwrap();
        }
        let s = ShareStore::open(dir.path()).unwrap();
        let key = ("g".to_string(), Uuid::from_u128(1), 0);
        assert_eq!(s.read().partitions[&key].start, 20);
        assert_eq!(s.read().configs["g"]["share.auto.offset.reset"], "earliest");
        s.write(vec![Record::ForgetGroup { group: "g".into() }])
            .await
            .unwrap();
        assert!(s.read().partitions.is_empty());
        assert!(s.read().configs.is_empty());
    }
}
