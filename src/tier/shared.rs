//! What every partition's remote log shares: the store behind its layers, the chunk cache, the
//! upload slots, the background tasks and their cancellation, the store's health as the tier
//! last saw it; and the tier's error.

use super::cache;
use super::store::{Store, StoreError};
use parking_lot::Mutex;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Remote segment data is fetched and cached in pieces of this size.
pub const CHUNK: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum TierError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("remote segment {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
}

/// What every partition's remote log shares.
pub struct Shared {
    pub store: Store,
    pub cache: cache::Cache,
    pub upload_slots: Semaphore,
    pub tasks: TaskTracker,
    pub cancel: CancellationToken,
    pub health: Health,
}

/// The object store as the tier last found it: answering, or failing (since when, why, and
/// whether the failure is one retrying cannot fix: a missing bucket, refused credentials).
#[derive(Debug, Default)]
pub struct Health(Mutex<Option<Failing>>);

#[derive(Debug, Clone)]
pub struct Failing {
    pub since: std::time::Instant,
    pub error: String,
    pub permanent: bool,
}

impl Health {
    /// A request succeeded.
    pub fn ok(&self) {
        if self.0.lock().take().is_some() {
            crate::metrics::tier_available(true);
            tracing::info!("object store answering again");
        }
    }

    /// A request failed after its retries.
    pub fn failed(&self, e: &StoreError) {
        let mut state = self.0.lock();
        let since = state
            .as_ref()
            .map_or_else(std::time::Instant::now, |f| f.since);
        *state = Some(Failing {
            since,
            error: e.to_string(),
            permanent: e.is_permanent(),
        });
        crate::metrics::tier_available(false);
    }

    pub fn get(&self) -> Option<Failing> {
        self.0.lock().clone()
    }
}
