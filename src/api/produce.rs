//! Produce: validate and append one batch per partition; acks=all waits for group-commit fsync.

use super::errors::{code, log_error};
use super::{Handler, Pending, Reply};
use crate::log::{AppendInfo, LogError, Partition, Verify};
use crate::protocol::Response;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;
use std::time::Duration;

/// One partition's outcome, before any acks=all wait.
struct Outcome {
    index: i32,
    result: Result<AppendInfo, ResponseError>,
    message: Option<String>,
    /// Indexes of the records that made the batch invalid (KIP-467).
    record_errors: Vec<i32>,
    partition: Option<Arc<Partition>>,
}

impl Handler {
    /// Appends every partition's batch (the partitions of one request at once), then returns
    /// the wait for durability (acks=all) and the response.
    pub(super) async fn produce(&self, req: ProduceRequest, _v: i16) -> Pending {
        let acks = req.acks;
        let valid_acks = matches!(acks, -1..=1);
        let mut topics: Vec<(TopicName, Vec<Outcome>)> = Vec::new();
        for t in req.topic_data {
            let appends = t.partition_data.into_iter().map(|pd| {
                let partition = self.logs.get(&t.name.0, pd.index);
                self.append_one(partition, pd.index, pd.records, valid_acks)
            });
            let outcomes = futures::future::join_all(appends).await;
            // an owned copy: a slice would pin the whole request frame until the response is sent
            topics.push((
                TopicName(StrBytes::from_string(t.name.0.to_string())),
                outcomes,
            ));
        }
        if acks == 0 {
            let failed = topics
                .iter()
                .flat_map(|(_, o)| o.iter())
                .any(|o| o.result.is_err());
            return Box::pin(std::future::ready(if failed {
                Reply::Close
            } else {
                Reply::Nothing
            }));
        }
        let timeout = Duration::from_millis(req.timeout_ms.max(0) as u64);
        Box::pin(async move {
            let mut resp = ProduceResponse::default();
            for (name, outcomes) in topics {
                let mut tr = TopicProduceResponse::default();
                tr.name = name;
                for mut o in outcomes {
                    if acks == -1 {
                        if let (Ok(info), Some(p)) = (&o.result, &o.partition) {
                            match tokio::time::timeout(
                                timeout,
                                p.wait_durable(info.last_offset + 1),
                            )
                            .await
                            {
                                Ok(Ok(())) => {}
                                Ok(Err(e)) => {
                                    o.message = Some(e.to_string());
                                    o.result = Err(log_error(&e));
                                }
                                Err(_) => o.result = Err(ResponseError::RequestTimedOut),
                            }
                        }
                    }
                    tr.partition_responses.push(partition_response(o));
                }
                resp.responses.push(tr);
            }
            Reply::Send(Response::Produce(resp))
        })
    }
}

impl Handler {
    /// One partition's append: its batch validated and written, or the error Kafka gives.
    async fn append_one(
        &self,
        partition: Option<Arc<Partition>>,
        index: i32,
        records: Option<bytes::Bytes>,
        valid_acks: bool,
    ) -> Outcome {
        let mut record_errors = Vec::new();
        let (result, message) = match (valid_acks, &partition, records) {
            (false, _, _) => (Err(ResponseError::InvalidRequiredAcks), None),
            (true, None, _) => (Err(ResponseError::UnknownTopicOrPartition), None),
            (true, Some(_), None) => (
                Err(ResponseError::InvalidRecord),
                Some("records are null".to_string()),
            ),
            (true, Some(p), Some(records)) => {
                let size = records.len();
                let txns = self.txns.clone();
                let (topic, index) = (p.topic.clone(), p.index);
                let verify: Verify = Arc::new(move |h| {
                    txns.verify_produce(h.producer_id, h.producer_epoch, &topic, index)
                });
                match p.append_verified(records, verify).await {
                    Ok(info) => {
                        let n = (info.last_offset - info.base_offset + 1) as u64;
                        crate::metrics::produced(&p.topic, size, n);
                        (Ok(info), None)
                    }
                    Err(e) => {
                        log_rejection(p, &e);
                        let message = match &e {
                            LogError::InvalidRecords { indexes, message } => {
                                record_errors.clone_from(indexes);
                                message.clone()
                            }
                            other => other.to_string(),
                        };
                        (Err(log_error(&e)), Some(message))
                    }
                }
            }
        };
        Outcome {
            index,
            result,
            message,
            record_errors,
            partition,
        }
    }
}

fn partition_response(o: Outcome) -> PartitionProduceResponse {
    let mut r = PartitionProduceResponse::default();
    r.index = o.index;
    match o.result {
        Ok(info) => {
            r.base_offset = info.base_offset;
            r.log_append_time_ms = info.log_append_time;
            r.log_start_offset = info.log_start_offset;
        }
        Err(e) => {
            r.error_code = code(e);
            r.base_offset = -1;
            r.log_append_time_ms = -1;
            r.log_start_offset = -1;
            r.record_errors = o
                .record_errors
                .iter()
                .map(|&i| {
                    let mut b = BatchIndexAndErrorMessage::default();
                    b.batch_index = i;
                    b.batch_index_error_message = o.message.clone().map(StrBytes::from_string);
                    b
                })
                .collect();
            r.error_message = o.message.map(StrBytes::from_string);
        }
    }
    r
}

/// Client mistakes are logged at debug; storage failures are logged where they happen (the log).
fn log_rejection(p: &Partition, e: &LogError) {
    if !matches!(e, LogError::Io(_) | LogError::Offline | LogError::Deleted) {
        tracing::debug!(topic = %p.topic, partition = p.index, error = %e, "produce rejected");
    }
}
