//! Transactions v2 (KIP-890 part 2). A producer that knows the protocol adds no partitions
//! itself (its first Produce v12+ to a partition, or TxnOffsetCommit v5 for a group, adds it
//! through [`TxnCoordinator::add`]) and ends each transaction with EndTxn v5, which bumps its
//! epoch: the markers carry the new epoch, so a late write of the transaction just ended is
//! refused by the partition, and the producer goes on with the epoch the answer names. When the
//! epoch is exhausted the transactional id moves to a new producer id once the markers are
//! written. EndTxn v0–4 keeps the first protocol ([`TxnCoordinator::end`]).

use super::txn_log::{TxnMeta, TxnState};
use super::{TxnCoordinator, TxnError};

/// What an EndTxn v5 asks for, given the transactional id's state.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    /// End the transaction (an abort may end one with no partitions): bump the epoch.
    End,
    /// A retry of an EndTxn that completed: answer with the current producer id and epoch.
    Retry,
}

/// Kafka's checks, in its order: the producer id (or the one the id just left, on a retry
/// after an exhausted epoch), the epoch (the current one, or one less on a retry), then the
/// state.
fn decide(
    meta: &TxnMeta,
    producer_id: i64,
    epoch: i16,
    commit: bool,
) -> Result<Decision, TxnError> {
    let bumped = meta.producer_id == producer_id && meta.epoch as i32 == epoch as i32 + 1;
    let rotated = meta.producer_id != producer_id
        && meta.last_producer_id == producer_id
        && epoch == i16::MAX - 1
        && meta.epoch == 0;
    if meta.producer_id != producer_id && !rotated {
        return Err(TxnError::InvalidMapping);
    }
    let retry = bumped || rotated;
    let current = meta.producer_id == producer_id && meta.epoch == epoch;
    let valid = match meta.state {
        TxnState::Empty | TxnState::Ongoing => current,
        TxnState::PrepareCommit | TxnState::PrepareAbort => retry,
        TxnState::CompleteCommit | TxnState::CompleteAbort => retry || current,
    };
    if !valid {
        return Err(TxnError::Fenced);
    }
    match (meta.state, commit) {
        (TxnState::Ongoing, _) => Ok(Decision::End),
        (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
            Err(TxnError::Concurrent)
        }
        (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) if retry => {
            Ok(Decision::Retry)
        }
        // an abort with nothing open still bumps the epoch (a producer recovering from an
        // abortable error aborts whatever it may have started)
        (TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort, false)
            if current =>
        {
            Ok(Decision::End)
        }
        _ => Err(TxnError::InvalidState),
    }
}

impl TxnCoordinator {
    /// EndTxn v5+: commits or aborts with the epoch bumped. Returns, once every marker is
    /// durable and the outcome is in the transaction log, the producer id and epoch the
    /// producer continues with.
    pub async fn end_v2(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<(i64, i16), TxnError> {
        let _guard = self.lock(id).await;
        let meta = self.get(id).ok_or(TxnError::InvalidMapping)?;
        if decide(&meta, producer_id, epoch, commit)? == Decision::Retry {
            return Ok((meta.producer_id, meta.epoch));
        }
        let now = self.clock.now_ms();
        let mut prepared = meta;
        prepared.last_producer_id = prepared.producer_id;
        prepared.last_epoch = prepared.epoch;
        if prepared.epoch >= i16::MAX - 1 {
            prepared.next_producer_id = self.new_producer_id().await?;
        }
        prepared.epoch = prepared.epoch.saturating_add(1);
        prepared.state = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        if prepared.started_ms < 0 {
            prepared.started_ms = now;
        }
        prepared.updated_ms = now;
        self.put(id, prepared.clone()).await?;
        let done = self.finish(id, prepared).await?;
        Ok((done.producer_id, done.epoch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(state: TxnState, epoch: i16) -> TxnMeta {
        let mut m = TxnMeta::empty((7, epoch), (-1, -1), 60_000, 0);
        m.state = state;
        m
    }

    #[test]
    fn kafkas_end_txn_v5_table() {
        use Decision::*;
        use TxnError::*;
        use TxnState::*;
        let cases: &[(TxnState, i16, bool, Result<Decision, TxnError>)] = &[
            // (state, request epoch against the current 5, commit, outcome)
            (Ongoing, 5, true, Ok(End)),
            (Ongoing, 5, false, Ok(End)),
            (Ongoing, 4, true, Err(Fenced)),
            (Ongoing, 6, true, Err(Fenced)),
            (PrepareCommit, 4, true, Err(Concurrent)),
            (PrepareCommit, 4, false, Err(InvalidState)),
            (PrepareAbort, 4, false, Err(Concurrent)),
            (PrepareAbort, 5, false, Err(Fenced)),
            (CompleteCommit, 4, true, Ok(Retry)),
            (CompleteCommit, 5, true, Err(InvalidState)),
            (CompleteCommit, 4, false, Err(InvalidState)),
            (CompleteCommit, 5, false, Ok(End)),
            (CompleteCommit, 3, true, Err(Fenced)),
            (CompleteAbort, 4, false, Ok(Retry)),
            (CompleteAbort, 5, false, Ok(End)),
            (CompleteAbort, 4, true, Err(InvalidState)),
            (Empty, 5, false, Ok(End)),
            (Empty, 5, true, Err(InvalidState)),
            (Empty, 4, false, Err(Fenced)),
        ];
        for (state, epoch, commit, want) in cases {
            let got = decide(&meta(*state, 5), 7, *epoch, *commit);
            assert_eq!(&got, want, "{state:?} epoch {epoch} commit {commit}");
        }
        assert_eq!(
            decide(&meta(Ongoing, 5), 8, 5, true),
            Err(InvalidMapping),
            "another producer id"
        );
    }

    #[test]
    fn a_retry_after_the_producer_id_moved_on() {
        // the id moved from producer 3 (epoch exhausted) to 7 at epoch 0
        let mut m = meta(TxnState::CompleteCommit, 0);
        m.last_producer_id = 3;
        m.last_epoch = i16::MAX - 1;
        assert_eq!(decide(&m, 3, i16::MAX - 1, true), Ok(Decision::Retry));
        assert_eq!(decide(&m, 3, 5, true), Err(TxnError::InvalidMapping));
    }
}
