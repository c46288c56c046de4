//! Share sessions: what a member fetches from this node, kept between its ShareFetch requests
//! so that each request names only what changed (KIP-932's incremental sessions).
//!
//! Epoch 0 opens a session (replacing the member's previous one), each later request carries
//! the next epoch (wrapping from `i32::MAX` to 1), and -1 closes it. The number of sessions is
//! bounded; a member's session also ends when the member leaves its group.

use std::collections::{BTreeSet, HashMap};
use uuid::Uuid;

/// A topic id and partition.
pub type TopicPartition = (Uuid, i32);

pub const FINAL_EPOCH: i32 = -1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    /// SHARE_SESSION_NOT_FOUND.
    NotFound,
    /// INVALID_SHARE_SESSION_EPOCH.
    InvalidEpoch,
    /// SHARE_SESSION_LIMIT_REACHED.
    LimitReached,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    /// The epoch the member's next request must carry.
    pub epoch: i32,
    pub partitions: BTreeSet<TopicPartition>,
}

/// What a request did to the member's session.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The partitions to fetch from (none when the session closed).
    pub partitions: Vec<TopicPartition>,
    /// A session that ended (closed, or replaced by a new one), or the partitions a request
    /// forgot: what the member holds there goes back.
    pub ended: Option<Session>,
}

pub struct Sessions {
    map: HashMap<(String, String), Session>,
    max: usize,
}

fn next(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

impl Sessions {
    pub fn new(max: usize) -> Sessions {
        Sessions {
            map: HashMap::new(),
            max,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// A ShareFetch's session step: `add` are the partitions it names, `forget` the ones it
    /// drops.
    pub fn fetch(
        &mut self,
        group: &str,
        member: &str,
        epoch: i32,
        add: &[TopicPartition],
        forget: &[TopicPartition],
    ) -> Result<Outcome, SessionError> {
        let key = (group.to_string(), member.to_string());
        match epoch {
            0 => {
                if !self.map.contains_key(&key) && self.map.len() >= self.max {
                    return Err(SessionError::LimitReached);
                }
                let s = Session {
                    epoch: 1,
                    partitions: add.iter().copied().collect(),
                };
                let partitions = s.partitions.iter().copied().collect();
                let ended = self.map.insert(key, s);
                Ok(Outcome { partitions, ended })
            }
            FINAL_EPOCH => {
                let ended = self.map.remove(&key).ok_or(SessionError::NotFound)?;
                Ok(Outcome {
                    partitions: Vec::new(),
                    ended: Some(ended),
                })
            }
            e if e < 0 => Err(SessionError::InvalidEpoch),
            e => {
                let s = self.map.get_mut(&key).ok_or(SessionError::NotFound)?;
                if s.epoch != e {
                    return Err(SessionError::InvalidEpoch);
                }
                s.partitions.extend(add.iter().copied());
                let forgotten: BTreeSet<TopicPartition> = forget
                    .iter()
                    .filter(|f| s.partitions.remove(f))
                    .copied()
                    .collect();
                s.epoch = next(e);
                Ok(Outcome {
                    partitions: s.partitions.iter().copied().collect(),
                    // what the member holds in partitions it forgot goes back too
                    ended: if forgotten.is_empty() {
                        None
                    } else {
                        Some(Session {
                            epoch: s.epoch,
                            partitions: forgotten,
                        })
                    },
                })
            }
        }
    }

    /// A ShareAcknowledge's session step (it needs an open session; -1 closes it).
    pub fn acknowledge(
        &mut self,
        group: &str,
        member: &str,
        epoch: i32,
    ) -> Result<Option<Session>, SessionError> {
        let key = (group.to_string(), member.to_string());
        match epoch {
            FINAL_EPOCH => self
                .map
                .remove(&key)
                .map(Some)
                .ok_or(SessionError::NotFound),
            e if e <= 0 => Err(SessionError::InvalidEpoch),
            e => {
                let s = self.map.get_mut(&key).ok_or(SessionError::NotFound)?;
                if s.epoch != e {
                    return Err(SessionError::InvalidEpoch);
                }
                s.epoch = next(e);
                Ok(None)
            }
        }
    }

    /// Ends the session of a member that left its group.
    pub fn close(&mut self, group: &str, member: &str) -> Option<Session> {
        self.map.remove(&(group.to_string(), member.to_string()))
    }

    /// Ends every session of a group.
    pub fn close_group(&mut self, group: &str) -> Vec<(String, Session)> {
        let keys: Vec<_> = self.map.keys().filter(|k| k.0 == group).cloned().collect();
        keys.into_iter()
            .filter_map(|k| self.map.remove(&k).map(|s| (k.1, s)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P0: TopicPartition = (Uuid::from_u128(1), 0);
    const P1: TopicPartition = (Uuid::from_u128(1), 1);

    #[test]
    fn epochs_follow_each_other_and_sessions_are_incremental() {
        let mut s = Sessions::new(2);
        assert_eq!(
            s.fetch("g", "m", 1, &[], &[]).unwrap_err(),
            SessionError::NotFound
        );
        let o = s.fetch("g", "m", 0, &[P0], &[]).unwrap();
        assert_eq!(o.partitions, vec![P0]);
        assert_eq!(
            s.fetch("g", "m", 2, &[], &[]).unwrap_err(),
            SessionError::InvalidEpoch
        );
        assert_eq!(
            s.fetch("g", "m", 1, &[P1], &[]).unwrap().partitions,
            vec![P0, P1]
        );
        assert_eq!(s.acknowledge("g", "m", 2).unwrap(), None);
        let o = s.fetch("g", "m", 3, &[], &[P0]).unwrap();
        assert_eq!(o.partitions, vec![P1]);
        let forgotten = o
            .ended
            .map(|e| e.partitions.into_iter().collect::<Vec<_>>());
        assert_eq!(forgotten, Some(vec![P0]));
        assert_eq!(
            s.acknowledge("g", "m", 0).unwrap_err(),
            SessionError::InvalidEpoch
        );
        let ended = s.acknowledge("g", "m", -1).unwrap().unwrap();
        assert_eq!(ended.partitions.into_iter().collect::<Vec<_>>(), vec![P1]);
        assert!(s.is_empty());
    }

    #[test]
    fn sessions_are_bounded_and_a_new_one_replaces_the_old() {
        let mut s = Sessions::new(1);
        s.fetch("g", "a", 0, &[P0], &[]).unwrap();
        assert_eq!(
            s.fetch("g", "b", 0, &[P0], &[]).unwrap_err(),
            SessionError::LimitReached
        );
        let o = s.fetch("g", "a", 0, &[P1], &[]).unwrap();
        assert!(o.ended.is_some());
        assert_eq!(s.len(), 1);
        assert!(s.close("g", "a").is_some());
        assert_eq!(next(i32::MAX), 1);
    }
}
