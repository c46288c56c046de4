//! InitProducerId for idempotent producers. Transactional ids are refused: transactions are not
//! implemented, and a clear non-retriable error beats a client retrying forever.

use super::errors::answered;
use super::Handler;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

impl Handler {
    pub(super) fn init_producer_id(&self, req: InitProducerIdRequest) -> InitProducerIdResponse {
        let mut resp = InitProducerIdResponse::default();
        resp.producer_id = ProducerId(-1);
        resp.producer_epoch = -1;
        if req.transactional_id.is_some() {
            resp.error_code = answered(ResponseError::TransactionalIdAuthorizationFailed).code();
            tracing::debug!(
                "InitProducerId with a transactional id refused: transactions are not supported"
            );
            return resp;
        }
        // without a transactional id every call gets a fresh id with epoch 0 (as in Kafka; a
        // producer recovering from UNKNOWN_PRODUCER_ID or a timeout simply starts over)
        match self.producer_ids.next() {
            Ok(id) => {
                resp.producer_id = ProducerId(id);
                resp.producer_epoch = 0;
            }
            Err(e) => {
                tracing::error!(error = %e, "allocating a producer id failed");
                resp.error_code = answered(ResponseError::KafkaStorageError).code();
            }
        }
        resp
    }
}
