//! What members of a KIP-848 group subscribe to: the topics there are, and the union of the
//! members' subscriptions kept between heartbeats.

use super::ConsumerMember;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// The topics members may subscribe to.
pub trait TopicLookup {
    /// Calls `f` with each topic's name, id and partition count.
    fn each_topic(&self, f: &mut dyn FnMut(&str, Uuid, i32));
}

impl TopicLookup for [TopicInfo] {
    fn each_topic(&self, f: &mut dyn FnMut(&str, Uuid, i32)) {
        for t in self {
            f(&t.name, t.id, t.partitions);
        }
    }
}

impl TopicLookup for Vec<TopicInfo> {
    fn each_topic(&self, f: &mut dyn FnMut(&str, Uuid, i32)) {
        self.as_slice().each_topic(f)
    }
}

/// What the whole group subscribes to, kept between heartbeats: the union of every member's
/// topic names and resolved regular expressions.
#[derive(Debug, Clone, Default)]
pub(super) struct Subscriptions {
    names: std::collections::HashSet<String>,
    regexes: Vec<regex::Regex>,
}

impl Subscriptions {
    pub(super) fn of(members: &BTreeMap<String, ConsumerMember>) -> Subscriptions {
        let mut s = Subscriptions::default();
        let mut patterns = BTreeSet::new();
        for m in members.values() {
            s.names.extend(m.topic_names.iter().cloned());
            if let (Some(r), false) = (&m.regex, m.regex_pending) {
                if patterns.insert(r.as_str().to_string()) {
                    s.regexes.push(r.clone());
                }
            }
        }
        s
    }

    pub(super) fn matches(&self, topic: &str) -> bool {
        self.names.contains(topic) || self.regexes.iter().any(|r| r.is_match(topic))
    }
}

/// One topic as the group sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
}
