//! Producer ids, unique for the life of the data dir (idempotent and transactional producers
//! alike): ids are reserved in blocks whose end is recorded in the transaction log, fsynced,
//! before any id of the block is handed out, so after a restart allocation continues past the
//! last reserved block and no id is ever given twice. In a cluster, blocks are reserved from a
//! counter in etcd instead, so no two nodes ever hand out the same id.

use super::txn_log::{TxnLog, TxnRecord};
use crate::cluster::Cluster;
use crate::journal::Journal;
use std::io;
use std::sync::Arc;

/// Ids reserved at a time: one transaction-log write per this many producers.
const BLOCK: i64 = 1000;

pub struct ProducerIds {
    /// (next id to hand out, end of the reserved block).
    state: tokio::sync::Mutex<(i64, i64)>,
    /// In a cluster, blocks come from etcd, unique across the nodes.
    cluster: Option<Arc<Cluster>>,
}

impl ProducerIds {
    /// Continues after `reserved_to`, the end of the last block reserved before.
    pub fn new(reserved_to: i64, cluster: Option<Arc<Cluster>>) -> ProducerIds {
        ProducerIds {
            state: tokio::sync::Mutex::new((reserved_to, reserved_to)),
            cluster,
        }
    }

    /// The next unused producer id; reserves a new block (in etcd, or alone in `journal`) when
    /// the current one is used up.
    pub async fn next(&self, journal: Option<&Journal<TxnLog>>) -> io::Result<i64> {
        let mut st = self.state.lock().await;
        let (next, reserved_to) = *st;
        if next >= reserved_to {
            if let Some(c) = &self.cluster {
                let (start, end) = c
                    .reserve_producer_ids(BLOCK)
                    .await
                    .map_err(io::Error::other)?;
                *st = (start + 1, end);
                return Ok(start);
            }
            let Some(journal) = journal else {
                return Err(io::Error::other(
                    "no transaction log to reserve producer ids in",
                ));
            };
            let end = next + BLOCK;
            journal
                .write(vec![TxnRecord::ProducerIds { reserved_to: end }])
                .await?;
            st.1 = end;
        }
        st.0 = next + 1;
        Ok(next)
    }
}
