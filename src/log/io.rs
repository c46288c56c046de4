//! The log's blocking executor. Every file-system call the log makes (appends, reads, fsyncs,
//! index writes, rolls, recovery, retention, compaction, creating and removing partition
//! directories) runs here, on tokio's blocking threads, never on a runtime worker: a slow
//! disk delays the requests that wait for it, not every connection of the broker.
//!
//! At most `limit` calls run at once (a semaphore in front of the blocking pool), so a burst of
//! work, such as creating thousands of partitions, queues instead of spawning a thread each.

use super::error::LogError;
use std::sync::Arc;
use tokio::sync::Semaphore;

#[derive(Clone)]
pub struct Io {
    permits: Arc<Semaphore>,
}

impl Io {
    pub fn new(limit: usize) -> Io {
        Io {
            permits: Arc::new(Semaphore::new(limit.max(1))),
        }
    }

    /// Runs `f` on a blocking thread once a slot is free. A panic in `f` comes back as an I/O
    /// error, not a crash.
    pub async fn run<T, F>(&self, f: F) -> Result<T, LogError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, LogError> + Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| LogError::Io(std::io::Error::other("log i/o executor closed")))?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| LogError::Io(std::io::Error::other(format!("log i/o task: {e}"))))?
    }

    /// Runs `f` on a blocking thread once a slot is free, without waiting for it to finish: `f`
    /// hands its results back itself (a channel), and can go on with work its caller need not
    /// wait for, such as the sync after an append, on the same thread (no second hand-off).
    pub async fn start<F>(&self, f: F) -> Result<(), LogError>
    where
        F: FnOnce() + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| LogError::Io(std::io::Error::other("log i/o executor closed")))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f()
        });
        Ok(())
    }
}
