//! Share groups' housekeeping: once a second, removes silent members, expires acquisition
//! locks, writes the share-partition state that changed without a request, and refreshes the
//! share-group gauges.

use crate::catalog::Catalog;
use crate::log::LogManager;
use crate::share::ShareGroups;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const TICK: Duration = Duration::from_secs(1);

pub(super) async fn run(
    share: Arc<ShareGroups>,
    logs: Arc<LogManager>,
    catalog: Arc<Catalog>,
    cancel: CancellationToken,
) {
    let high_watermark = |topic: uuid::Uuid, partition: i32| {
        let name = catalog.get_by_id(topic)?.name;
        let hw = logs.get(&name, partition)?.offsets().high_watermark;
        Some((name, hw))
    };
    loop {
        share.tick(&high_watermark).await;
        crate::metrics::share_sessions(share.session_count());
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = cancel.cancelled() => {
                // what changed since the last tick is written before the broker stops
                share.tick(&high_watermark).await;
                return;
            }
        }
    }
}
