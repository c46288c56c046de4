//! Durable committed offsets.
//!
//! One append-only file, `<data_dir>/group-offsets.log`, of framed records
//! (`u32 length, u32 CRC-32C, JSON`): commits and deletions. A dedicated writer thread takes
//! batches of records in order, appends them, `fdatasync`s once for the whole batch and only then
//! applies them to the in-memory map and answers: an acknowledged commit survives `kill -9`.
//! When the file holds far more records than live offsets it is rewritten with only the live
//! ones (temp file, fsync, rename), so storage stays proportional to the live offsets.
//! Start-up reads the valid prefix and truncates a torn tail.

use crate::log::segment::write_atomic;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

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
}

/// Offsets by group, then `(topic, partition)`.
pub type OffsetMap = HashMap<String, BTreeMap<(String, i32), Committed>>;

fn apply(map: &mut OffsetMap, r: &Record) {
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
        }
        Record::DeleteTopic { topic } => {
            for g in map.values_mut() {
                g.retain(|(t, _), _| t != topic);
            }
            map.retain(|_, g| !g.is_empty());
        }
    }
}

fn encode(r: &Record, out: &mut Vec<u8>) -> io::Result<()> {
    let json = serde_json::to_vec(r).map_err(io::Error::other)?;
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&json).to_be_bytes());
    out.extend_from_slice(&json);
    Ok(())
}

/// Decodes the valid prefix of a file: the records and the length they span.
fn decode_prefix(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut pos = 0;
    let mut out = Vec::new();
    while bytes.len() - pos >= 8 {
        let len = u32::from_be_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]])
            as usize;
        let crc = u32::from_be_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]);
        let Some(body) = bytes.get(pos + 8..pos + 8 + len) else {
            break;
        };
        if crc32c::crc32c(body) != crc {
            break;
        }
        let Ok(r) = serde_json::from_slice::<Record>(body) else {
            break;
        };
        out.push(r);
        pos += 8 + len;
    }
    (out, pos)
}

type Job = (Vec<Record>, oneshot::Sender<io::Result<()>>);

pub struct OffsetStore {
    map: Arc<RwLock<OffsetMap>>,
    tx: mpsc::UnboundedSender<Job>,
}

impl OffsetStore {
    /// Loads the file (truncating a torn tail) and starts the writer thread.
    pub fn open(data_dir: &Path) -> io::Result<OffsetStore> {
        let path = data_dir.join("group-offsets.log");
        let mut bytes = Vec::new();
        match File::open(&path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let (records, valid) = decode_prefix(&bytes);
        let mut map = OffsetMap::new();
        for r in &records {
            apply(&mut map, r);
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if (valid as u64) < bytes.len() as u64 {
            tracing::warn!(path = %path.display(), valid, len = bytes.len(), "truncating torn tail of the offsets log");
            file.set_len(valid as u64)?;
            file.sync_all()?;
        }
        let map = Arc::new(RwLock::new(map));
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = Writer {
            path,
            file,
            map: map.clone(),
            records: records.len(),
        };
        std::thread::Builder::new()
            .name("offsets-writer".into())
            .spawn(move || writer.run(rx))?;
        Ok(OffsetStore { map, tx })
    }

    /// Appends records durably, then applies them. Resolves once they survive a crash.
    pub async fn write(&self, records: Vec<Record>) -> io::Result<()> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send((records, done))
            .map_err(|_| io::Error::other("offsets writer stopped"))?;
        rx.await
            .map_err(|_| io::Error::other("offsets writer stopped"))?
    }

    pub fn group(&self, group: &str) -> BTreeMap<(String, i32), Committed> {
        self.map.read().get(group).cloned().unwrap_or_default()
    }

    pub fn get(&self, group: &str, topic: &str, partition: i32) -> Option<Committed> {
        self.map
            .read()
            .get(group)?
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    pub fn groups(&self) -> Vec<String> {
        self.map.read().keys().cloned().collect()
    }
}

struct Writer {
    path: PathBuf,
    file: File,
    map: Arc<RwLock<OffsetMap>>,
    /// Records in the file, live or not.
    records: usize,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Job>) {
        while let Some(first) = rx.blocking_recv() {
            let mut jobs = vec![first];
            while let Ok(j) = rx.try_recv() {
                jobs.push(j);
            }
            let result = self.append(&jobs);
            for (records, done) in jobs {
                let r = match &result {
                    Ok(()) => {
                        let mut map = self.map.write();
                        for rec in &records {
                            apply(&mut map, rec);
                        }
                        Ok(())
                    }
                    Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                };
                let _ = done.send(r);
            }
            if result.is_ok() {
                if let Err(e) = self.maybe_compact() {
                    tracing::warn!(error = %e, "offsets log compaction failed; will retry");
                }
            }
        }
    }

    fn append(&mut self, jobs: &[Job]) -> io::Result<()> {
        let mut buf = Vec::new();
        let mut n = 0;
        for (records, _) in jobs {
            for r in records {
                encode(r, &mut buf)?;
                n += 1;
            }
        }
        let before = self.file.metadata()?.len();
        if let Err(e) = self
            .file
            .write_all(&buf)
            .and_then(|_| self.file.sync_data())
        {
            let _ = self.file.set_len(before);
            tracing::error!(error = %e, "offsets log write failed");
            return Err(e);
        }
        self.records += n;
        Ok(())
    }

    fn maybe_compact(&mut self) -> io::Result<()> {
        let live: usize = self.map.read().values().map(|g| g.len()).sum();
        if self.records <= 2 * live + 1000 {
            return Ok(());
        }
        let mut buf = Vec::new();
        {
            let map = self.map.read();
            for (group, offsets) in map.iter() {
                for ((topic, partition), value) in offsets {
                    encode(
                        &Record::Commit {
                            group: group.clone(),
                            topic: topic.clone(),
                            partition: *partition,
                            value: value.clone(),
                        },
                        &mut buf,
                    )?;
                }
            }
        }
        write_atomic(&self.path, &buf)?;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.records = live;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let path = dir.path().join("group-offsets.log");
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
        let len = std::fs::metadata(dir.path().join("group-offsets.log"))
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
        let (recs, valid) = decode_prefix(&buf);
        assert_eq!(recs.len(), 1);
        assert_eq!(valid, good);
        let (recs, _) = decode_prefix(&[0, 0, 0, 2, 0, 0, 0, 0, b'{', b'}']);
        assert!(recs.is_empty());
    }
}
