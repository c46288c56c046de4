//! The catalog's storage interface. The broker's catalog logic ([`super::Catalog`]) works on
//! any store: today's is a file rewritten atomically in the data dir ([`super::file`]); a
//! cluster keeps the same state in etcd behind the same trait.

use super::state::{CatalogError, CatalogState, Change};
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::watch;

#[async_trait::async_trait]
pub trait CatalogStore: Send + Sync + 'static {
    /// The latest committed state (cheap: a shared snapshot).
    fn state(&self) -> Arc<CatalogState>;

    /// Applies `changes` in order to the latest state, each on its own terms (one refused leaves
    /// the others), and answers once the result is durable. Changes of concurrent callers are
    /// committed together. `Err` means nothing was applied (storage failed).
    async fn commit(
        &self,
        changes: Vec<Change>,
    ) -> Result<Vec<Result<(), CatalogError>>, CatalogError>;

    /// The state as stored (JSON bytes), now and after every commit: the tier mirrors it to
    /// the bucket, from where a lost data dir is restored.
    fn snapshots(&self) -> watch::Receiver<Bytes>;
}
