//! The catalog in one file, `<data_dir>/catalog.json`, rewritten atomically (temp file, fsync,
//! rename, fsync of the directory) before a change becomes visible or is answered, so a crash
//! leaves either the old or the new catalog.
//!
//! One writer thread owns the file: it takes every change queued while it was writing, applies
//! them in order to the latest state, writes the result once and answers all of them. Requests
//! that create thousands of topics at once cost one write, not one each, and no tokio worker
//! ever waits on the file system for the catalog.

use super::state::{new_cluster_id, CatalogError, CatalogState, Change};
use super::store::CatalogStore;
use crate::format::CATALOG_FILE;
use crate::fs::{write_atomic, Durable};
use bytes::Bytes;
use parking_lot::RwLock;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};

type Answer = Result<Vec<Result<(), CatalogError>>, CatalogError>;
type Job = (Vec<Change>, oneshot::Sender<Answer>);

pub struct FileCatalog {
    state: Arc<RwLock<Arc<CatalogState>>>,
    snapshots: watch::Sender<Bytes>,
    jobs: mpsc::UnboundedSender<Job>,
}

impl FileCatalog {
    /// Whether `data_dir` holds a catalog.
    pub fn exists(data_dir: &Path) -> bool {
        data_dir.join(CATALOG_FILE).exists()
    }

    /// Loads `catalog.json` from `data_dir`, or creates it: from `restore` (the copy in the
    /// bucket, when the data dir was lost) or new, with a new cluster id. Runs on a blocking
    /// thread; starts the writer thread.
    pub async fn open(
        data_dir: &Path,
        restore: Option<Bytes>,
    ) -> Result<Arc<FileCatalog>, CatalogError> {
        let dir = data_dir.to_owned();
        let (state, bytes) = tokio::task::spawn_blocking(move || load(&dir, restore))
            .await
            .map_err(|e| CatalogError::Io(std::io::Error::other(e)))??;
        let state = Arc::new(RwLock::new(Arc::new(state)));
        let snapshots = watch::Sender::new(bytes);
        let (jobs, rx) = mpsc::unbounded_channel();
        let writer = Writer {
            path: data_dir.join(CATALOG_FILE),
            state: state.clone(),
            snapshots: snapshots.clone(),
        };
        std::thread::Builder::new()
            .name("catalog-writer".into())
            .spawn(move || writer.run(rx))?;
        Ok(Arc::new(FileCatalog {
            state,
            snapshots,
            jobs,
        }))
    }
}

fn load(dir: &Path, restore: Option<Bytes>) -> Result<(CatalogState, Bytes), CatalogError> {
    let path = dir.join(CATALOG_FILE);
    let existing = crate::fs::read_if_exists(&path)?;
    let (state, fresh) = match (existing, restore) {
        (Some(bytes), _) => (parse(&path, &bytes)?, false),
        (None, Some(bytes)) => {
            tracing::warn!(data_dir = %dir.display(), "no local catalog: restoring topics from the object store");
            (parse(&path, &bytes)?, true)
        }
        (None, None) => (CatalogState::new(new_cluster_id()), true),
    };
    let bytes = Bytes::from(to_json(&state)?);
    if fresh {
        crate::fs::create_dir_durable(dir)?;
        write_atomic(&path, &bytes, Durable::Catalog)?;
    }
    Ok((state, bytes))
}

fn parse(path: &Path, bytes: &[u8]) -> Result<CatalogState, CatalogError> {
    serde_json::from_slice(bytes).map_err(|e| CatalogError::Corrupt {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn to_json(state: &CatalogState) -> Result<Vec<u8>, CatalogError> {
    serde_json::to_vec_pretty(state).map_err(|e| CatalogError::Io(std::io::Error::other(e)))
}

#[async_trait::async_trait]
impl CatalogStore for FileCatalog {
    fn state(&self) -> Arc<CatalogState> {
        self.state.read().clone()
    }

    async fn commit(&self, changes: Vec<Change>) -> Answer {
        let (done, rx) = oneshot::channel();
        let stopped = || CatalogError::Io(std::io::Error::other("catalog writer stopped"));
        self.jobs.send((changes, done)).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    fn snapshots(&self) -> watch::Receiver<Bytes> {
        self.snapshots.subscribe()
    }
}

struct Writer {
    path: PathBuf,
    state: Arc<RwLock<Arc<CatalogState>>>,
    snapshots: watch::Sender<Bytes>,
}

impl Writer {
    fn run(self, mut rx: mpsc::UnboundedReceiver<Job>) {
        while let Some(first) = rx.blocking_recv() {
            let mut jobs = vec![first];
            while let Ok(j) = rx.try_recv() {
                jobs.push(j);
            }
            let mut next = CatalogState::clone(&self.state.read());
            let mut answers = Vec::with_capacity(jobs.len());
            let mut changed = false;
            for (changes, _) in &mut jobs {
                let results: Vec<Result<(), CatalogError>> = std::mem::take(changes)
                    .into_iter()
                    .map(|c| next.apply(c))
                    .collect();
                changed |= results.iter().any(Result::is_ok);
                answers.push(results);
            }
            let written = if changed {
                to_json(&next).and_then(|bytes| {
                    write_atomic(&self.path, &bytes, Durable::Catalog)?;
                    Ok(Some(bytes))
                })
            } else {
                Ok(None)
            };
            match written {
                Ok(bytes) => {
                    *self.state.write() = Arc::new(next);
                    if let Some(b) = bytes {
                        self.snapshots.send_replace(Bytes::from(b));
                    }
                    for ((_, done), results) in jobs.into_iter().zip(answers) {
                        let _ = done.send(Ok(results));
                    }
                }
                Err(e) => {
                    tracing::error!(path = %self.path.display(), error = %e, "writing the catalog failed");
                    for (_, done) in jobs {
                        let _ =
                            done.send(Err(CatalogError::Io(std::io::Error::other(e.to_string()))));
                    }
                }
            }
        }
    }
}
