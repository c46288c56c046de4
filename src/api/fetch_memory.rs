//! The broker-wide budget for record data in Fetch responses (`fetch_memory_max_bytes`): a
//! response holds its share from the read until its bytes are written to the socket, so N slow
//! readers share one bound instead of each holding `fetch.max.bytes`.

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Every fetch may take at least this much (waiting for it), so a busy budget slows fetches
/// down rather than starving them.
const FLOOR: usize = 1 << 20;

pub struct FetchMemory {
    /// Permits are KiB.
    kib: Arc<Semaphore>,
    total_kib: usize,
}

/// A share of the budget, returned when dropped.
#[derive(Debug)]
pub struct Held(OwnedSemaphorePermit);

impl FetchMemory {
    pub fn new(bytes: u64) -> FetchMemory {
        let total_kib = usize::try_from(bytes / 1024).unwrap_or(usize::MAX).max(1);
        let total_kib = total_kib.min(Semaphore::MAX_PERMITS);
        FetchMemory {
            kib: Arc::new(Semaphore::new(total_kib)),
            total_kib,
        }
    }

    /// Up to `want` bytes of the budget: what is free now, but at least `min(want, 1 MiB)`
    /// (waiting for that much). Returns the bytes granted and their hold.
    pub async fn take(&self, want: usize) -> (usize, Option<Held>) {
        let want_kib = want.div_ceil(1024).clamp(1, self.total_kib);
        let floor_kib = want_kib.min(FLOOR / 1024);
        let n = want_kib.min(self.kib.available_permits()).max(floor_kib);
        match self.kib.clone().acquire_many_owned(n as u32).await {
            Ok(p) => (n * 1024, Some(Held(p))),
            // never closed; without a budget the fetch just reads
            Err(_) => (want, None),
        }
    }

    /// Bytes free now.
    pub fn available(&self) -> usize {
        self.kib.available_permits() * 1024
    }
}

impl Held {
    /// Gives back what a read granted `granted` bytes did not use (`used`).
    pub fn keep(&mut self, granted: usize, used: usize) {
        let spare = granted.saturating_sub(used) / 1024;
        if spare > 0 {
            drop(self.0.split(spare));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readers_share_one_budget() {
        let m = FetchMemory::new(8 << 20);
        let (g1, h1) = m.take(55 << 20).await;
        assert_eq!(g1, 8 << 20, "capped by the whole budget");
        let mut h1 = h1.expect("held");
        h1.keep(g1, 5 << 20);
        assert_eq!(m.available(), 3 << 20, "the unused part is back");
        let (g2, h2) = m.take(55 << 20).await;
        assert_eq!(g2, 3 << 20, "what is left");
        // nothing left: the next waits for its 1 MiB floor until a reader lets go
        let waiting = tokio::spawn(async move {
            let m2 = m;
            let (g, _h) = m2.take(10 << 20).await;
            g
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "waits for room");
        drop(h2);
        assert_eq!(waiting.await.expect("task"), 1 << 20, "its floor");
        drop(h1);
    }
}
