//! OffsetForLeaderEpoch (KIP-101/KIP-320): where a leader epoch ended in this partition's log,
//! so a consumer that saw records of an older leader can tell whether they are still there
//! (and truncate its position if not). Answered from the partition's leader-epoch history:
//! in a cluster the history kept in etcd (mirrored to the partition's checkpoint), alone the
//! catalog's one epoch.

use super::errors::code;
use super::Handler;
use crate::format::epochs::{end_offset_for, EpochEntry};
use crate::security::acl::{op, resource};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

impl Handler {
    pub(super) async fn offset_for_leader_epoch(
        &self,
        req: OffsetForLeaderEpochRequest,
    ) -> OffsetForLeaderEpochResponse {
        let mut resp = OffsetForLeaderEpochResponse::default();
        for t in req.topics {
            let mut tr = OffsetForLeaderTopicResult::default();
            tr.topic = t.topic.clone();
            let meta = self.catalog.get(&t.topic.0);
            let denied = !self.allowed(op::DESCRIBE, resource::TOPIC, &t.topic.0);
            for p in t.partitions {
                let mut pr = EpochEndOffset::default();
                pr.partition = p.partition;
                pr.leader_epoch = -1;
                pr.end_offset = -1;
                if denied {
                    pr.error_code = code(ResponseError::TopicAuthorizationFailed);
                    tr.partitions.push(pr);
                    continue;
                }
                let (Some(meta), Some(log)) = (&meta, self.logs.get(&t.topic.0, p.partition))
                else {
                    pr.error_code = code(super::absent(
                        self.cluster.as_deref(),
                        &self.catalog,
                        &t.topic.0,
                        p.partition,
                    ));
                    tr.partitions.push(pr);
                    continue;
                };
                let current = super::serving_epoch(meta, &log);
                if let Some(e) = super::epoch_error(p.current_leader_epoch, current) {
                    pr.error_code = code(e);
                    tr.partitions.push(pr);
                    continue;
                }
                let history = match self.cluster {
                    Some(_) => self
                        .logs
                        .local_epochs(&t.topic.0, p.partition)
                        .await
                        .unwrap_or_default(),
                    None => vec![EpochEntry {
                        epoch: current,
                        start_offset: 0,
                    }],
                };
                let end = log.offsets().log_end_offset;
                if history.is_empty() {
                    pr.error_code = code(ResponseError::UnknownServerError);
                } else {
                    (pr.leader_epoch, pr.end_offset) =
                        end_offset_for(&history, p.leader_epoch, end);
                }
                tr.partitions.push(pr);
            }
            resp.topics.push(tr);
        }
        resp
    }
}
