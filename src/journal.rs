//! A small durable state machine on one append-only file: the group offsets and the transaction
//! log are both kept this way.
//!
//! The file is a sequence of framed records ([`crate::format::journal`]). A dedicated writer
//! thread takes batches of records in order, appends them, `fdatasync`s once for the whole batch
//! and only then applies them to the in-memory state and answers: an acknowledged record survives
//! `kill -9`. When the file holds far more records than the state needs to be rebuilt, it is
//! rewritten from a snapshot of the state (temp file, fsync, rename), so storage stays
//! proportional to the live state. Start-up reads the valid prefix and truncates a torn tail.
//!
//! In a cluster the same records are kept in a log instead of a file ([`Backend`]: an internal
//! partition, whose appends are durable in the bucket once they return): the journal loads the
//! log whole, appends each write as one entry per record, and compacts by appending a snapshot
//! and then forgetting everything before it. A crash between the two leaves both: replaying the
//! snapshot's records over the state they describe changes nothing.

use crate::format::journal::{decode_prefix, encode};
use crate::fs::{sync, write_atomic, Durable};
use parking_lot::{RwLock, RwLockReadGuard};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// The state a journal rebuilds by applying its records in order.
pub trait Journaled: Default + Send + Sync + 'static {
    type Record: Serialize + DeserializeOwned + Send + Sync + 'static;
    fn apply(&mut self, r: &Self::Record);
    /// The records that rebuild the current state (what compaction writes).
    fn snapshot(&self) -> Vec<Self::Record>;
    /// How many records a snapshot holds (compaction runs when the file has far more).
    fn live(&self) -> usize;
}

type Job<R> = (Vec<R>, oneshot::Sender<io::Result<()>>);

/// Whether a journal holding `records` entries for a state of `live` should be rewritten from
/// a snapshot: when it holds far more than the state needs.
fn compaction_due(records: usize, live: usize) -> bool {
    records > 2 * live + 1000
}

/// One framed entry per record.
fn frames<'a, R: serde::Serialize + 'a>(
    records: impl IntoIterator<Item = &'a R>,
) -> io::Result<Vec<Vec<u8>>> {
    records
        .into_iter()
        .map(|r| {
            let mut e = Vec::new();
            encode(r, &mut e)?;
            Ok(e)
        })
        .collect()
}

/// A log that holds a journal's records: every append is durable when it returns.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Every entry kept, oldest first.
    async fn load(&self) -> io::Result<Vec<Vec<u8>>>;
    /// Appends `entries` durably, in order; returns the position of the first (with no
    /// entries, the position the next one will have).
    async fn append(&self, entries: Vec<Vec<u8>>) -> io::Result<i64>;
    /// Forgets every entry before `position`.
    async fn trim(&self, position: i64) -> io::Result<()>;
}

pub struct Journal<S: Journaled> {
    state: Arc<RwLock<S>>,
    tx: mpsc::UnboundedSender<Job<S::Record>>,
}

impl<S: Journaled> Journal<S> {
    /// Loads `path` (truncating a torn tail) and starts the writer thread.
    pub fn open(path: PathBuf) -> io::Result<Journal<S>> {
        let mut bytes = Vec::new();
        let existed = match File::open(&path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes)?;
                true
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        let (records, valid) = decode_prefix::<S::Record>(&bytes);
        let mut state = S::default();
        for r in &records {
            state.apply(r);
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if !existed {
            // the new file's name must survive a power loss before anything in it is
            // acknowledged (the writer syncs only the file)
            if let Some(dir) = path.parent() {
                crate::fs::sync_dir(dir)?;
            }
        }
        if valid < bytes.len() {
            tracing::warn!(path = %path.display(), valid, len = bytes.len(), "truncating torn tail of a journal");
            file.set_len(valid as u64)?;
            sync(&file, Durable::Journal, true)?;
        }
        let state = Arc::new(RwLock::new(state));
        let (tx, rx) = mpsc::unbounded_channel();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("journal")
            .to_string();
        let writer = Writer {
            path,
            file,
            state: state.clone(),
            records: records.len(),
        };
        std::thread::Builder::new()
            .name(format!("{name}-writer"))
            .spawn(move || writer.run(rx))?;
        Ok(Journal { state, tx })
    }

    /// Loads every record `backend` holds and starts the writer task (on the current runtime).
    /// An entry that does not decode is an error: a log is never torn, so it is corrupt.
    pub async fn open_on(backend: std::sync::Arc<dyn Backend>) -> io::Result<Journal<S>> {
        let entries = backend.load().await?;
        let mut state = S::default();
        for e in &entries {
            let (mut r, used) = decode_prefix::<S::Record>(e);
            match r.pop() {
                Some(rec) if used == e.len() && r.is_empty() => state.apply(&rec),
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a journal entry in the log does not decode",
                    ))
                }
            }
        }
        let state = Arc::new(RwLock::new(state));
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = LogWriter {
            backend,
            state: state.clone(),
            records: entries.len(),
        };
        tokio::spawn(writer.run(rx));
        Ok(Journal { state, tx })
    }

    /// Appends records durably, then applies them. Resolves once they survive a crash.
    pub async fn write(&self, records: Vec<S::Record>) -> io::Result<()> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send((records, done))
            .map_err(|_| io::Error::other("journal writer stopped"))?;
        rx.await
            .map_err(|_| io::Error::other("journal writer stopped"))?
    }

    /// The state as of the last acknowledged write.
    pub fn read(&self) -> RwLockReadGuard<'_, S> {
        self.state.read()
    }
}

struct Writer<S: Journaled> {
    path: PathBuf,
    file: File,
    state: Arc<RwLock<S>>,
    /// Records in the file, live or not.
    records: usize,
}

impl<S: Journaled> Writer<S> {
    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Job<S::Record>>) {
        while let Some(first) = rx.blocking_recv() {
            let mut jobs = vec![first];
            while let Ok(j) = rx.try_recv() {
                jobs.push(j);
            }
            let result = self.append(&jobs);
            answer(&self.state, jobs, &result);
            if result.is_ok() {
                if let Err(e) = self.maybe_compact() {
                    tracing::warn!(path = %self.path.display(), error = %e, "journal compaction failed; will retry");
                }
            }
        }
    }

    fn append(&mut self, jobs: &[Job<S::Record>]) -> io::Result<()> {
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
            .and_then(|_| sync(&self.file, Durable::Journal, false))
        {
            let _ = self.file.set_len(before);
            tracing::error!(path = %self.path.display(), error = %e, "journal write failed");
            return Err(e);
        }
        self.records += n;
        Ok(())
    }

    fn maybe_compact(&mut self) -> io::Result<()> {
        if !compaction_due(self.records, self.state.read().live()) {
            return Ok(());
        }
        let mut buf = Vec::new();
        let snapshot = self.state.read().snapshot();
        for r in &snapshot {
            encode(r, &mut buf)?;
        }
        write_atomic(&self.path, &buf, Durable::Journal)?;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.records = snapshot.len();
        Ok(())
    }
}

/// Applies each written job's records (in order) and answers it, or answers every job with the
/// write's error.
fn answer<S: Journaled>(state: &RwLock<S>, jobs: Vec<Job<S::Record>>, result: &io::Result<()>) {
    for (records, done) in jobs {
        let r = match result {
            Ok(()) => {
                let mut state = state.write();
                for rec in &records {
                    state.apply(rec);
                }
                Ok(())
            }
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        };
        let _ = done.send(r);
    }
}

/// The writer of a journal kept in a [`Backend`].
struct LogWriter<S: Journaled> {
    backend: Arc<dyn Backend>,
    state: Arc<RwLock<S>>,
    /// Entries in the log, live or not.
    records: usize,
}

impl<S: Journaled> LogWriter<S> {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Job<S::Record>>) {
        while let Some(first) = rx.recv().await {
            let mut jobs = vec![first];
            while let Ok(j) = rx.try_recv() {
                jobs.push(j);
            }
            let result = self.append(&jobs).await;
            answer(&self.state, jobs, &result);
            if result.is_ok() {
                if let Err(e) = self.maybe_compact().await {
                    tracing::warn!(error = %e, "journal compaction failed; will retry");
                }
            }
        }
    }

    async fn append(&mut self, jobs: &[Job<S::Record>]) -> io::Result<()> {
        let entries = frames(jobs.iter().flat_map(|(records, _)| records))?;
        let n = entries.len();
        if n > 0 {
            self.backend.append(entries).await?;
        }
        self.records += n;
        Ok(())
    }

    async fn maybe_compact(&mut self) -> io::Result<()> {
        if !compaction_due(self.records, self.state.read().live()) {
            return Ok(());
        }
        let entries = frames(&self.state.read().snapshot())?;
        let n = entries.len();
        let at = self.backend.append(entries).await?;
        self.backend.trim(at).await?;
        self.records = n;
        Ok(())
    }
}
