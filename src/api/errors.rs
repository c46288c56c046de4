//! Internal errors → Kafka error codes, in one place. A code reaches a response only through
//! [`code`] (or [`code_and_message`]), which counts it in `tiercel_request_errors_total`;
//! `clippy.toml` bans `ResponseError::code` everywhere else, so no handler can answer an error
//! the metric does not see.

use crate::catalog::CatalogError;
use crate::log::LogError;
use kafka_protocol::error::ResponseError;

tokio::task_local! {
    /// The API whose request is being handled (set by the server around each request), so the
    /// error counter can say which API answered with which error.
    pub static CURRENT_API: &'static str;
}

/// The wire code of an error answered to a client, counted by API and error name.
#[allow(clippy::disallowed_methods)]
pub fn code(e: ResponseError) -> i16 {
    let api = CURRENT_API.try_with(|a| *a).unwrap_or("unknown");
    crate::metrics::request_error(api, e);
    e.code()
}

pub fn log_error(e: &LogError) -> ResponseError {
    match e {
        LogError::Io(_) | LogError::Offline | LogError::Tier(_) => ResponseError::KafkaStorageError,
        LogError::Deleted => ResponseError::UnknownTopicOrPartition,
        LogError::NotLeader => ResponseError::NotLeaderOrFollower,
        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        LogError::RecordTooLarge { .. } | LogError::UncompressedTooLarge(_) => {
            ResponseError::MessageTooLarge
        }
        LogError::Corrupt(_) | LogError::CorruptRecords(_) => ResponseError::CorruptMessage,
        LogError::InvalidRecord(_) | LogError::InvalidRecords { .. } => {
            ResponseError::InvalidRecord
        }
        LogError::InvalidTimestamp(_) => ResponseError::InvalidTimestamp,
        LogError::InvalidTxnState => ResponseError::InvalidTxnState,
        // as Kafka answers a retriable verification failure to a producer
        LogError::TxnVerificationStale => ResponseError::NotEnoughReplicas,
        LogError::UnknownProducerId(_) => ResponseError::UnknownProducerId,
        LogError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        LogError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
    }
}

pub fn catalog_error(e: &CatalogError) -> ResponseError {
    match e {
        CatalogError::TopicExists(_) => ResponseError::TopicAlreadyExists,
        CatalogError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition,
        CatalogError::InvalidTopic(_) => ResponseError::InvalidTopicException,
        CatalogError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        CatalogError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
        CatalogError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
        CatalogError::InvalidConfig(_) => ResponseError::InvalidConfig,
        CatalogError::InvalidRequest(_) => ResponseError::InvalidRequest,
        CatalogError::Io(_) | CatalogError::Corrupt { .. } | CatalogError::Refused(_) => {
            ResponseError::KafkaStorageError
        }
        CatalogError::QuotaExceeded(_) => ResponseError::ThrottlingQuotaExceeded,
        CatalogError::UnknownCredential { .. } => ResponseError::ResourceNotFound,
        CatalogError::TopicNotAuthorized(_) => ResponseError::TopicAuthorizationFailed,
        // lost every race with concurrent changes: retriable, the client tries again
        CatalogError::Conflict => ResponseError::RequestTimedOut,
    }
}

/// Error code and message for a response field.
pub fn code_and_message(
    code: ResponseError,
    message: impl ToString,
) -> (i16, Option<kafka_protocol::protocol::StrBytes>) {
    (self::code(code), Some(message.to_string().into()))
}

/// A log failure while creating or removing a topic's partitions, reported through the topic
/// result (KAFKA_STORAGE_ERROR with the log's message).
pub fn partition_storage(e: LogError) -> CatalogError {
    CatalogError::Io(std::io::Error::other(e.to_string()))
}
