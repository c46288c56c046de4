//! One share-partition: the records of one partition as one share group sees them (KIP-932).
//!
//! Every offset below the start offset (SPSO) is done: acknowledged or archived. Offsets from
//! the start up to the end (SPEO, exclusive) are in flight, one entry each: AVAILABLE (to be
//! delivered again), ACQUIRED by one member until its lock expires, ACKNOWLEDGED or ARCHIVED.
//! Offsets from the end on have never been handed out. The window from start to end is bounded
//! (`max_locks`), so the state stays small however far the log grows; the start moves over
//! the done prefix as acknowledgements arrive.
//!
//! Offsets are acquired whether or not a record sits at them (a gap left by compaction, a
//! transaction marker): a client acknowledges the ones it finds no record for as GAP, which
//! archives them. The state machine is pure: the caller says what the log holds and the time.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What happens to one in-flight record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordState {
    Available,
    Acquired,
    Acknowledged,
    Archived,
}

impl RecordState {
    fn done(self) -> bool {
        matches!(self, RecordState::Acknowledged | RecordState::Archived)
    }
}

/// An acknowledgement type of ShareFetch/ShareAcknowledge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckType {
    /// No record at this offset (0).
    Gap,
    /// Processed (1).
    Accept,
    /// Not processed: deliver again (2).
    Release,
    /// Cannot be processed: never deliver again (3).
    Reject,
}

impl AckType {
    pub fn from_code(code: i8) -> Option<AckType> {
        match code {
            0 => Some(AckType::Gap),
            1 => Some(AckType::Accept),
            2 => Some(AckType::Release),
            3 => Some(AckType::Reject),
            _ => None,
        }
    }
}

/// Why an acknowledgement was refused (nothing of it was applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckError {
    /// Malformed: empty or unsorted ranges, a bad type count, an offset never delivered.
    InvalidRequest,
    /// A record the member does not hold (another owns it, it was released or is done).
    InvalidRecordState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct InFlight {
    state: RecordState,
    delivery_count: i16,
    /// The member holding it (ACQUIRED only).
    owner: Option<String>,
    /// When the acquisition lock expires (ACQUIRED only).
    deadline_ms: i64,
}

/// How a share-partition behaves (the group's settings).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub lock_ms: i64,
    /// A record released or timed out this many deliveries is archived.
    pub delivery_limit: i16,
    /// Most offsets between the start and the end.
    pub max_locks: i64,
}

/// A contiguous range of offsets in one state with one delivery count: the durable form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub first: i64,
    pub last: i64,
    pub state: RecordState,
    pub delivery_count: i16,
}

/// Records acquired by one fetch: `(first, last, delivery count)`.
pub type Acquired = Vec<(i64, i64, i16)>;

/// Counts of what a change did, for the metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Moves {
    pub acquired: u64,
    pub redelivered: u64,
    pub acknowledged: u64,
    pub released: u64,
    pub rejected: u64,
    pub archived: u64,
    pub timed_out: u64,
}

#[derive(Debug, Clone)]
pub struct SharePartition {
    start: i64,
    end: i64,
    records: BTreeMap<i64, InFlight>,
}

impl SharePartition {
    /// A share-partition that starts delivering at `offset`.
    pub fn new(offset: i64) -> SharePartition {
        SharePartition {
            start: offset,
            end: offset,
            records: BTreeMap::new(),
        }
    }

    /// Rebuilt from its durable form (acquired records were stored as available).
    pub fn restore(start: i64, runs: &[Run]) -> SharePartition {
        let mut p = SharePartition::new(start);
        for r in runs {
            for o in r.first.max(start)..=r.last {
                p.records.insert(
                    o,
                    InFlight {
                        state: match r.state {
                            RecordState::Acquired => RecordState::Available,
                            s => s,
                        },
                        delivery_count: r.delivery_count,
                        owner: None,
                        deadline_ms: 0,
                    },
                );
                p.end = p.end.max(o + 1);
            }
        }
        // offsets between the start and the end that the runs skip were never stored: deliver
        p.fill_holes();
        p.advance();
        p
    }

    fn fill_holes(&mut self) {
        for o in self.start..self.end {
            self.records.entry(o).or_insert(InFlight {
                state: RecordState::Available,
                delivery_count: 0,
                owner: None,
                deadline_ms: 0,
            });
        }
    }

    /// The share-partition start offset (SPSO).
    pub fn start(&self) -> i64 {
        self.start
    }

    /// The first offset never handed out (SPEO).
    pub fn end(&self) -> i64 {
        self.end
    }

    /// Records in flight: acquired, available again, or done above an unfinished one.
    pub fn in_flight(&self) -> usize {
        self.records.len()
    }

    /// Records currently acquired by some member.
    pub fn acquired_count(&self) -> usize {
        self.records
            .values()
            .filter(|r| r.state == RecordState::Acquired)
            .count()
    }

    /// The durable form: the start and runs of equal state; acquired records are stored as
    /// available (a lock does not survive a restart).
    pub fn runs(&self) -> Vec<Run> {
        let mut out: Vec<Run> = Vec::new();
        for (&o, r) in &self.records {
            let state = match r.state {
                RecordState::Acquired => RecordState::Available,
                s => s,
            };
            match out.last_mut() {
                Some(l)
                    if l.last + 1 == o
                        && l.state == state
                        && l.delivery_count == r.delivery_count =>
                {
                    l.last = o
                }
                _ => out.push(Run {
                    first: o,
                    last: o,
                    state,
                    delivery_count: r.delivery_count,
                }),
            }
        }
        out
    }

    /// The log start moved past the start (retention, DeleteRecords): what is gone is done.
    pub fn skip_to(&mut self, log_start: i64) -> bool {
        if log_start <= self.start {
            return false;
        }
        self.records = self.records.split_off(&log_start);
        self.start = log_start;
        self.end = self.end.max(log_start);
        self.advance();
        true
    }

    /// Moves the start to `offset` (AlterShareGroupOffsets, with no member holding records).
    pub fn reset_to(&mut self, offset: i64) {
        *self = SharePartition::new(offset);
    }

    /// Expired locks go back to available (or are archived past the delivery limit).
    pub fn expire(&mut self, now_ms: i64, limits: &Limits, moves: &mut Moves) -> bool {
        let mut changed = false;
        for r in self.records.values_mut() {
            if r.state == RecordState::Acquired && r.deadline_ms <= now_ms {
                release(r, limits, false, moves);
                moves.timed_out += 1;
                changed = true;
            }
        }
        if changed {
            self.advance();
        }
        changed
    }

    /// Where a fetch should read from to find something to acquire below `high_watermark`:
    /// the first available record, or the end while the window has room. `None`: nothing.
    pub fn next_fetch_offset(&self, high_watermark: i64, limits: &Limits) -> Option<i64> {
        if let Some((&o, _)) = self
            .records
            .iter()
            .find(|(_, r)| r.state == RecordState::Available)
        {
            return Some(o);
        }
        (self.end < high_watermark && self.end - self.start < limits.max_locks).then_some(self.end)
    }

    /// Acquires for `member` up to `max_records` offsets in `[from, upto]` (what a read
    /// returned, below the high watermark): available records first, then new offsets from the
    /// end.
    pub fn acquire(
        &mut self,
        member: &str,
        (from, upto): (i64, i64),
        max_records: usize,
        now_ms: i64,
        limits: &Limits,
        moves: &mut Moves,
    ) -> Acquired {
        let mut got: Vec<(i64, i16)> = Vec::new();
        let deadline_ms = now_ms.saturating_add(limits.lock_ms);
        for (&o, r) in self.records.range_mut(from..=upto.max(from)) {
            if got.len() >= max_records || o > upto {
                break;
            }
            if r.state == RecordState::Available {
                r.state = RecordState::Acquired;
                r.delivery_count = r.delivery_count.saturating_add(1);
                r.owner = Some(member.to_string());
                r.deadline_ms = deadline_ms;
                moves.acquired += 1;
                if r.delivery_count > 1 {
                    moves.redelivered += 1;
                }
                got.push((o, r.delivery_count));
            }
        }
        let window_end = self.start.saturating_add(limits.max_locks) - 1;
        while got.len() < max_records && self.end <= upto && self.end <= window_end {
            if self.end >= from {
                self.records.insert(
                    self.end,
                    InFlight {
                        state: RecordState::Acquired,
                        delivery_count: 1,
                        owner: Some(member.to_string()),
                        deadline_ms,
                    },
                );
                moves.acquired += 1;
                got.push((self.end, 1));
            } else {
                // below what was read (cannot happen: reads start at or before the end)
                break;
            }
            self.end += 1;
        }
        got.sort_unstable();
        let mut out: Acquired = Vec::new();
        for (o, d) in got {
            match out.last_mut() {
                Some(l) if l.1 + 1 == o && l.2 == d => l.1 = o,
                _ => out.push((o, o, d)),
            }
        }
        out
    }

    /// Applies `member`'s acknowledgements, all or none: each batch is `(first, last, types)`
    /// with one type for the whole range or one per offset.
    pub fn acknowledge(
        &mut self,
        member: &str,
        batches: &[(i64, i64, Vec<i8>)],
        limits: &Limits,
        moves: &mut Moves,
    ) -> Result<(), AckError> {
        let mut previous: Option<i64> = None;
        for (first, last, types) in batches {
            let (first, last) = (*first, *last);
            if first > last || previous.is_some_and(|p| first <= p) || types.is_empty() {
                return Err(AckError::InvalidRequest);
            }
            let span = last.saturating_sub(first).saturating_add(1);
            if types.len() != 1 && types.len() as i64 != span {
                return Err(AckError::InvalidRequest);
            }
            if types.iter().any(|t| AckType::from_code(*t).is_none()) {
                return Err(AckError::InvalidRequest);
            }
            if last >= self.end {
                return Err(AckError::InvalidRequest);
            }
            if first < self.start {
                return Err(AckError::InvalidRecordState);
            }
            for o in first..=last {
                match self.records.get(&o) {
                    Some(r)
                        if r.state == RecordState::Acquired
                            && r.owner.as_deref() == Some(member) => {}
                    _ => return Err(AckError::InvalidRecordState),
                }
            }
            previous = Some(last);
        }
        for (first, last, types) in batches {
            for o in *first..=*last {
                let t = if types.len() == 1 {
                    types[0]
                } else {
                    types[(o - first) as usize]
                };
                let Some(r) = self.records.get_mut(&o) else {
                    continue;
                };
                match AckType::from_code(t) {
                    Some(AckType::Accept) => {
                        done(r, RecordState::Acknowledged);
                        moves.acknowledged += 1;
                    }
                    Some(AckType::Release) => {
                        release(r, limits, false, moves);
                        moves.released += 1;
                    }
                    Some(AckType::Reject) => {
                        done(r, RecordState::Archived);
                        moves.rejected += 1;
                    }
                    Some(AckType::Gap) | None => done(r, RecordState::Archived),
                }
            }
        }
        self.advance();
        Ok(())
    }

    /// Gives back every record `member` holds (its share session closed): available again,
    /// without the delivery counting against the limit.
    pub fn release_member(&mut self, member: &str, limits: &Limits, moves: &mut Moves) -> bool {
        let mut changed = false;
        for r in self.records.values_mut() {
            if r.state == RecordState::Acquired && r.owner.as_deref() == Some(member) {
                release(r, limits, true, moves);
                moves.released += 1;
                changed = true;
            }
        }
        if changed {
            self.advance();
        }
        changed
    }

    /// Moves the start over the done prefix.
    fn advance(&mut self) {
        while let Some(entry) = self.records.first_entry() {
            if !entry.get().state.done() {
                break;
            }
            entry.remove();
        }
        if self.records.is_empty() {
            self.start = self.start.max(self.end);
        } else if let Some((&o, _)) = self.records.first_key_value() {
            self.start = o;
        }
    }
}

fn done(r: &mut InFlight, state: RecordState) {
    r.state = state;
    r.owner = None;
}

/// Back to available, or archived once delivered `delivery_limit` times. `undo`: the delivery
/// does not count (the member gave it back unseen).
fn release(r: &mut InFlight, limits: &Limits, undo: bool, moves: &mut Moves) {
    if undo {
        r.delivery_count = (r.delivery_count - 1).max(0);
    }
    r.owner = None;
    if r.delivery_count >= limits.delivery_limit {
        r.state = RecordState::Archived;
        moves.archived += 1;
    } else {
        r.state = RecordState::Available;
    }
}

#[cfg(test)]
#[path = "partition_tests.rs"]
mod tests;
