//! DeleteRecords: moves a partition's log start offset forward.

use super::errors::{code, log_error};
use super::Handler;
use crate::security::acl::{op, resource};
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

impl Handler {
    pub(super) async fn delete_records(&self, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
        let mut resp = DeleteRecordsResponse::default();
        for t in req.topics {
            let mut tr = DeleteRecordsTopicResult::default();
            tr.name = t.name.clone();
            let denied = !self.allowed(op::DELETE, resource::TOPIC, &t.name.0);
            for p in t.partitions {
                let mut pr = DeleteRecordsPartitionResult::default();
                pr.partition_index = p.partition_index;
                pr.low_watermark = -1;
                match self.logs.get(&t.name.0, p.partition_index) {
                    _ if denied => {
                        pr.error_code =
                            code(kafka_protocol::error::ResponseError::TopicAuthorizationFailed)
                    }
                    _ if crate::catalog::is_coordinator_topic(&t.name.0) => {
                        pr.error_code =
                            code(kafka_protocol::error::ResponseError::InvalidTopicException)
                    }
                    None => {
                        pr.error_code = code(super::absent(
                            self.cluster.as_deref(),
                            &self.catalog,
                            &t.name.0,
                            p.partition_index,
                        ))
                    }
                    Some(log) => match log.delete_records(p.offset).await {
                        Ok(low) => pr.low_watermark = low,
                        Err(e) => {
                            if !matches!(e, crate::log::LogError::OffsetOutOfRange { .. }) {
                                tracing::warn!(topic = %log.topic, partition = log.index, error = %e, "DeleteRecords failed");
                            }
                            pr.error_code = code(log_error(&e));
                        }
                    },
                }
                tr.partitions.push(pr);
            }
            resp.topics.push(tr);
        }
        resp
    }
}
