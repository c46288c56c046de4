//! Groups as DescribeGroups shows them. A KIP-848 group is shown as Kafka 4 does for tools
//! that only know the classic API: protocol type `consumer`, the assignor as the protocol, and
//! each member's subscription and assignment in the consumer protocol's encoding.

use super::assignors::Assignment;
use super::consumer::ConsumerGroup;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTopic;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct MemberView {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone)]
pub struct GroupView {
    pub group_id: String,
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol_name: String,
    pub members: Vec<MemberView>,
}

/// The consumer-protocol version written (the newest: rack ids and generations).
const VERSION: i16 = 3;

pub(super) fn described(group_id: &str, c: &ConsumerGroup) -> GroupView {
    let name = |id: &uuid::Uuid| c.topic_name(id).map(str::to_string);
    GroupView {
        group_id: group_id.to_string(),
        state: c.state().name(),
        protocol_type: "consumer".to_string(),
        protocol_name: c.assignor.name().to_string(),
        members: c
            .members
            .values()
            .map(|m| {
                // the topics it is subscribed to: by name, and those its own pattern matched
                let mut topics: Vec<String> = m.topic_names.clone();
                for (n, _) in c.topics.values() {
                    if !topics.contains(n) && m.subscribes(n) {
                        topics.push(n.clone());
                    }
                }
                let mut sub = ConsumerProtocolSubscription::default();
                sub.topics = topics.into_iter().map(StrBytes::from_string).collect();
                sub.owned_partitions = per_topic(&m.assigned, &name)
                    .map(|(t, ps)| {
                        let mut o = OwnedTopic::default();
                        o.topic = TopicName(StrBytes::from_string(t));
                        o.partitions = ps;
                        o
                    })
                    .collect();
                sub.generation_id = m.epoch;
                sub.rack_id = m.rack_id.clone().map(StrBytes::from_string);
                MemberView {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: encode(&sub),
                    assignment: assignment_bytes(&m.assigned, name),
                }
            })
            .collect(),
    }
}

/// An assignment in the consumer protocol's encoding, topics named by `name` (unknown ones left
/// out): what SyncGroup gives a classic member.
pub(super) fn assignment_bytes(
    a: &Assignment,
    name: impl Fn(&uuid::Uuid) -> Option<String>,
) -> Bytes {
    let mut asg = ConsumerProtocolAssignment::default();
    asg.assigned_partitions = per_topic(a, &name)
        .map(|(t, ps)| {
            let mut a = AssignedTopic::default();
            a.topic = TopicName(StrBytes::from_string(t));
            a.partitions = ps;
            a
        })
        .collect();
    encode(&asg)
}

fn per_topic<'a>(
    a: &'a Assignment,
    name: &'a impl Fn(&uuid::Uuid) -> Option<String>,
) -> impl Iterator<Item = (String, Vec<i32>)> + 'a {
    a.iter()
        .filter_map(move |(id, ps)| Some((name(id)?, ps.iter().copied().collect())))
}

fn encode(m: &impl Encodable) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(VERSION);
    if m.encode(&mut buf, VERSION).is_err() {
        // only a field out of its version's range fails, and every field is in v3
        return Bytes::new();
    }
    buf.freeze()
}
