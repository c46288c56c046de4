//! What every partition's remote log shares: the store behind its layers, the chunk cache, the
//! upload slots, the background tasks and their cancellation; and the tier's error.

use super::cache;
use super::store::{Store, StoreError};
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
}
