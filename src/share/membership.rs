//! A share group's members (ShareGroupHeartbeat) and the assignment of partitions to them.
//!
//! Unlike a consumer group there is no revocation: a partition may be assigned to several
//! members at once (records, not partitions, are what one member holds), so a new assignment
//! takes effect with the heartbeat that carries it. Every change of membership, subscription or
//! subscribed topics' partition counts bumps the group epoch and reassigns.

use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// What members are assigned: topic id → partitions.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// A topic's id and partition count, by name (`None`: no such topic).
pub type Resolve<'a> = &'a dyn Fn(&str) -> Option<(Uuid, i32)>;

#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub epoch: i32,
    /// The epoch it had before its last: a heartbeat sent before the reply that moved it is
    /// still accepted (and answered with the assignment again).
    pub previous_epoch: i32,
    pub rack: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed: BTreeSet<String>,
    pub last_seen_ms: i64,
}

/// One heartbeat's content.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    pub member_id: String,
    pub epoch: i32,
    pub rack: Option<String>,
    pub subscribed: Option<Vec<String>>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub epoch: i32,
    /// Sent when it changed or the member just joined.
    pub assignment: Option<Assignment>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatError {
    InvalidRequest(&'static str),
    UnknownMemberId,
    FencedMemberEpoch,
    GroupMaxSizeReached,
    /// The broker holds as many share groups as it may.
    TooManyGroups,
}

#[derive(Debug, Clone, Default)]
pub struct ShareGroup {
    pub epoch: i32,
    pub members: BTreeMap<String, Member>,
    pub target: BTreeMap<String, Assignment>,
    /// The subscribed topics as last resolved: name → (id, partitions).
    pub topics: BTreeMap<String, (Uuid, i32)>,
}

impl ShareGroup {
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else {
            "Stable"
        }
    }

    pub fn heartbeat(
        &mut self,
        hb: Heartbeat,
        resolve: Resolve,
        now_ms: i64,
        max_size: usize,
    ) -> Result<Reply, HeartbeatError> {
        if hb.member_id.is_empty() {
            return Err(HeartbeatError::InvalidRequest("MemberId is empty"));
        }
        match hb.epoch {
            -1 => {
                if self.members.remove(&hb.member_id).is_none() {
                    return Err(HeartbeatError::UnknownMemberId);
                }
                self.reassign(resolve);
                return Ok(Reply {
                    epoch: -1,
                    assignment: None,
                });
            }
            0 => {
                let Some(subscribed) = hb.subscribed.as_ref() else {
                    return Err(HeartbeatError::InvalidRequest(
                        "SubscribedTopicNames must be set in the first heartbeat",
                    ));
                };
                if subscribed.is_empty() {
                    return Err(HeartbeatError::InvalidRequest(
                        "SubscribedTopicNames must not be empty",
                    ));
                }
                if !self.members.contains_key(&hb.member_id) && self.members.len() >= max_size {
                    return Err(HeartbeatError::GroupMaxSizeReached);
                }
                self.members.insert(
                    hb.member_id.clone(),
                    Member {
                        id: hb.member_id.clone(),
                        epoch: 0,
                        previous_epoch: 0,
                        rack: hb.rack,
                        client_id: hb.client_id,
                        client_host: hb.client_host,
                        subscribed: subscribed.iter().cloned().collect(),
                        last_seen_ms: now_ms,
                    },
                );
                self.reassign(resolve);
                if let Some(m) = self.members.get_mut(&hb.member_id) {
                    m.epoch = self.epoch;
                }
                return Ok(Reply {
                    epoch: self.epoch,
                    assignment: Some(self.target_of(&hb.member_id)),
                });
            }
            e if e < 0 => return Err(HeartbeatError::InvalidRequest("invalid MemberEpoch")),
            _ => {}
        }
        let m = self
            .members
            .get_mut(&hb.member_id)
            .ok_or(HeartbeatError::UnknownMemberId)?;
        if hb.epoch != m.epoch && hb.epoch != m.previous_epoch {
            return Err(HeartbeatError::FencedMemberEpoch);
        }
        m.last_seen_ms = now_ms;
        let mut changed = false;
        if let Some(s) = hb.subscribed {
            let s: BTreeSet<String> = s.into_iter().collect();
            if s.is_empty() {
                return Err(HeartbeatError::InvalidRequest(
                    "SubscribedTopicNames must not be empty",
                ));
            }
            if s != m.subscribed {
                m.subscribed = s;
                changed = true;
            }
        }
        let behind = hb.epoch != m.epoch;
        if changed || self.resolved(resolve) != self.topics {
            self.reassign(resolve);
        }
        let epoch = self.epoch;
        let m = self
            .members
            .get_mut(&hb.member_id)
            .ok_or(HeartbeatError::UnknownMemberId)?;
        let moved = m.epoch != epoch;
        if moved {
            m.previous_epoch = m.epoch;
            m.epoch = epoch;
        }
        Ok(Reply {
            epoch,
            assignment: (moved || behind).then(|| self.target_of(&hb.member_id)),
        })
    }

    /// Removes members silent for `session_timeout_ms`, and says which.
    pub fn expire(
        &mut self,
        now_ms: i64,
        session_timeout_ms: i64,
        resolve: Resolve,
    ) -> Vec<String> {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| now_ms - m.last_seen_ms > session_timeout_ms)
            .map(|m| m.id.clone())
            .collect();
        if !gone.is_empty() {
            for id in &gone {
                self.members.remove(id);
            }
            self.reassign(resolve);
        }
        gone
    }

    /// Reassigns when a subscribed topic appeared, went or grew; true if it did.
    pub fn refresh(&mut self, resolve: Resolve) -> bool {
        if self.resolved(resolve) == self.topics {
            return false;
        }
        self.reassign(resolve);
        true
    }

    fn target_of(&self, member: &str) -> Assignment {
        self.target.get(member).cloned().unwrap_or_default()
    }

    fn resolved(&self, resolve: Resolve) -> BTreeMap<String, (Uuid, i32)> {
        self.members
            .values()
            .flat_map(|m| m.subscribed.iter())
            .filter_map(|t| resolve(t).map(|r| (t.clone(), r)))
            .collect()
    }

    fn reassign(&mut self, resolve: Resolve) {
        self.topics = self.resolved(resolve);
        self.target = assign(&self.members, &self.topics);
        self.epoch += 1;
    }
}

/// Spreads each topic's partitions over the members subscribed to it: with at least as many
/// partitions as members each partition goes to one member, round robin; with fewer, every
/// member still gets one (members share partitions), so none is idle.
pub fn assign(
    members: &BTreeMap<String, Member>,
    topics: &BTreeMap<String, (Uuid, i32)>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .keys()
        .map(|id| (id.clone(), Assignment::new()))
        .collect();
    for (name, &(id, partitions)) in topics {
        let subs: Vec<&String> = members
            .values()
            .filter(|m| m.subscribed.contains(name))
            .map(|m| &m.id)
            .collect();
        if subs.is_empty() || partitions <= 0 {
            continue;
        }
        let p = partitions as usize;
        for i in 0..p.max(subs.len()) {
            let member = subs[i % subs.len()];
            if let Some(a) = out.get_mut(member) {
                a.entry(id).or_default().insert((i % p) as i32);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(member: &str, epoch: i32, topics: Option<&[&str]>) -> Heartbeat {
        Heartbeat {
            member_id: member.into(),
            epoch,
            rack: None,
            subscribed: topics.map(|t| t.iter().map(|s| s.to_string()).collect()),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
        }
    }

    const T: Uuid = Uuid::from_u128(7);

    fn topics(name: &str) -> Option<(Uuid, i32)> {
        (name == "t").then_some((T, 2))
    }

    fn parts(a: &Assignment) -> Vec<i32> {
        a.get(&T)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    #[test]
    fn more_members_than_partitions_all_get_work() {
        let mut g = ShareGroup::default();
        let mut seen = Vec::new();
        for m in ["a", "b", "c"] {
            let r = g.heartbeat(hb(m, 0, Some(&["t"])), &topics, 0, 10).unwrap();
            seen.push(r.epoch);
        }
        assert_eq!(seen, vec![1, 2, 3]);
        for m in ["a", "b", "c"] {
            assert_eq!(parts(&g.target[m]).len(), 1, "{m}");
        }
        let covered: BTreeSet<i32> = g.target.values().flat_map(parts).collect();
        assert_eq!(covered, BTreeSet::from([0, 1]));
        // a heartbeat at the current epoch carries no assignment; one a bump behind does
        let r = g.heartbeat(hb("c", 3, None), &topics, 0, 10).unwrap();
        assert_eq!(
            r,
            Reply {
                epoch: 3,
                assignment: None
            }
        );
        let r = g.heartbeat(hb("a", 1, None), &topics, 0, 10).unwrap();
        assert_eq!(r.epoch, 3);
        assert!(r.assignment.is_some());
    }

    #[test]
    fn epochs_members_and_limits_are_checked() {
        let mut g = ShareGroup::default();
        assert_eq!(
            g.heartbeat(hb("a", 0, None), &topics, 0, 1),
            Err(HeartbeatError::InvalidRequest(
                "SubscribedTopicNames must be set in the first heartbeat"
            ))
        );
        g.heartbeat(hb("a", 0, Some(&["t"])), &topics, 0, 1)
            .unwrap();
        assert_eq!(
            g.heartbeat(hb("b", 0, Some(&["t"])), &topics, 0, 1),
            Err(HeartbeatError::GroupMaxSizeReached)
        );
        assert_eq!(
            g.heartbeat(hb("b", 1, None), &topics, 0, 1),
            Err(HeartbeatError::UnknownMemberId)
        );
        assert_eq!(
            g.heartbeat(hb("a", 5, None), &topics, 0, 1),
            Err(HeartbeatError::FencedMemberEpoch)
        );
        assert_eq!(
            g.heartbeat(hb("a", -1, None), &topics, 0, 1).unwrap().epoch,
            -1
        );
        assert!(g.members.is_empty());
        assert_eq!(g.state(), "Empty");
    }

    #[test]
    fn silent_members_are_removed_and_their_partitions_reassigned() {
        let mut g = ShareGroup::default();
        g.heartbeat(hb("a", 0, Some(&["t"])), &topics, 0, 10)
            .unwrap();
        g.heartbeat(hb("b", 0, Some(&["t"])), &topics, 500, 10)
            .unwrap();
        assert_eq!(g.expire(1200, 1000, &topics), vec!["a".to_string()]);
        assert_eq!(parts(&g.target["b"]), vec![0, 1]);
        let r = g.heartbeat(hb("b", 2, None), &topics, 1200, 10).unwrap();
        assert_eq!(r.epoch, 3);
        assert_eq!(r.assignment.map(|a| parts(&a)), Some(vec![0, 1]));
    }

    #[test]
    fn a_topic_created_after_the_subscription_is_assigned() {
        let mut g = ShareGroup::default();
        let none = |_: &str| None;
        let r = g.heartbeat(hb("a", 0, Some(&["t"])), &none, 0, 10).unwrap();
        assert_eq!(r.assignment, Some(Assignment::new()));
        let r = g.heartbeat(hb("a", 1, None), &topics, 0, 10).unwrap();
        assert_eq!(r.epoch, 2);
        assert_eq!(r.assignment.map(|a| parts(&a)), Some(vec![0, 1]));
    }
}
