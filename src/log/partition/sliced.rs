//! Fetches of local data answered by reference: the batches stay in their segment's file and
//! the connection sends them with `sendfile`, when they are all in the page cache; otherwise
//! they are read here, on the I/O threads, so the runtime never waits for the disk.

use super::Partition;
use crate::log::error::LogError;
use crate::log::results::{Outbound, Sent};
use std::ops::Range;
use std::sync::Arc;

impl Partition {
    /// Whole batches starting with the one holding `offset`, from the local log: up to the high
    /// watermark, or with `committed` up to the last stable offset with the aborted
    /// transactions they overlap (as [`Partition::fetch`] and [`Partition::fetch_committed`]
    /// answer). Batches of a length within `by_ref` that are in the page cache come back as a
    /// file slice; any others are read. `None` when `offset` is below the local log and the
    /// remote log may hold it: [`Partition::fetch`] serves those.
    pub async fn fetch_local(
        self: &Arc<Self>,
        offset: i64,
        (max_bytes, min_one): (usize, bool),
        committed: bool,
        by_ref: Range<usize>,
    ) -> Result<Option<Sent>, LogError> {
        self.check_readable()?;
        if self.remote.get().is_some() && offset < self.local_start_offset() {
            return Ok(None);
        }
        self.check_local(offset)?;
        let offsets = self.offsets();
        let below = if committed {
            offsets.last_stable_offset
        } else {
            offsets.high_watermark
        };
        let mut sent = Sent {
            records: Outbound::Mem(Default::default()),
            count: 0,
            offsets,
            aborted: Vec::new(),
        };
        if offset >= below {
            return Ok(Some(sent));
        }
        let log = self.log.clone();
        let sliced = self
            .io
            .run(move || {
                let Some(s) = log.slice(offset, max_bytes, min_one, below)? else {
                    return Ok(None);
                };
                let records = if by_ref.contains(&s.slice.len) && s.slice.resident() {
                    Outbound::File(s.slice)
                } else {
                    Outbound::Mem(s.slice.read()?)
                };
                Ok(Some((records, s.records, s.last)))
            })
            .await?;
        let Some((records, count, last)) = sliced else {
            return Ok(Some(sent));
        };
        if committed {
            sent.aborted = self.aborted_between(offset, last + 1).await?;
        }
        sent.records = records;
        sent.count = count;
        Ok(Some(sent))
    }
}
