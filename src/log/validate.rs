//! Kafka's produce-side rules for a client batch (its `LogValidator`): size, header, CRC,
//! control and transactional attributes, timestamps, and keys on compacted topics; and the
//! recompression a topic's `compression.type` asks for. CPU only: done before an append is
//! queued for the I/O executor.

use super::error::LogError;
use crate::config::{LogConfig, TimestampType};
use crate::format::batch::{self, BatchHeader};
use crate::format::records;
use bytes::Bytes;

/// The transaction coordinator's check of a transactional batch, run under the partition's
/// sequencing lock.
pub type Verify = std::sync::Arc<dyn Fn(&BatchHeader) -> Result<(), LogError> + Send + Sync>;

/// A client batch checked and ready to append.
pub struct Prepared {
    pub data: Bytes,
    pub header: BatchHeader,
    pub config: LogConfig,
    pub now: i64,
    pub verify: Verify,
}

/// Checks a client batch of partition `at` (topic, index) with the topic's `config` at broker
/// time `now`, and recompresses it when `compression.type` says so.
pub fn prepare(
    data: Bytes,
    config: LogConfig,
    now: i64,
    verify: Verify,
    at: (&str, i32),
) -> Result<Prepared, LogError> {
    let h = validate_client_batch(&data, &config, now)?;
    if config.cleanup_compact {
        check_keys(&data, &h, at.0, at.1)?;
    }
    // compression.type other than `producer`: the broker recompresses, as Kafka does
    let (data, header) = match config.compression {
        Some(codec) if codec != h.compression() => {
            let data = Bytes::from(
                records::recompress(&data, codec, records::MAX_SECTION)
                    .map_err(|e| LogError::InvalidRecord(e.to_string()))?,
            );
            let header = BatchHeader::parse(&data)?;
            (data, header)
        }
        _ => (data, h),
    };
    Ok(Prepared {
        data,
        header,
        config,
        now,
        verify,
    })
}

/// Kafka's produce-side batch rules for a client batch (LogValidator, header-level only).
pub fn validate_client_batch(
    data: &[u8],
    config: &LogConfig,
    now: i64,
) -> Result<BatchHeader, LogError> {
    if data.len() > config.max_message_bytes as usize {
        return Err(LogError::RecordTooLarge {
            size: data.len(),
            max: config.max_message_bytes as usize,
        });
    }
    let h = batch::validate(data)?;
    if h.is_control() {
        return Err(LogError::InvalidRecord(
            "clients may not write control batches".into(),
        ));
    }
    if h.is_transactional() && h.producer_id < 0 {
        return Err(LogError::InvalidRecord(
            "transactional batch without a producer id".into(),
        ));
    }
    // CreateTime bounds, checked on the batch's first and max timestamps (LogAppendTime topics
    // overwrite the timestamp, so Kafka skips the check there too)
    if config.timestamp_type == TimestampType::CreateTime {
        if h.max_timestamp > now.saturating_add(config.timestamp_after_max_ms) {
            return Err(LogError::InvalidTimestamp(format!(
                "timestamp {} is more than {} ms after broker time {now} (message.timestamp.after.max.ms)",
                h.max_timestamp, config.timestamp_after_max_ms
            )));
        }
        if h.base_timestamp < now.saturating_sub(config.timestamp_before_max_ms) {
            return Err(LogError::InvalidTimestamp(format!(
                "timestamp {} is more than {} ms before broker time {now} (message.timestamp.before.max.ms)",
                h.base_timestamp, config.timestamp_before_max_ms
            )));
        }
    }
    Ok(h)
}

/// Keyless records are refused on compacted topics, as in Kafka.
pub fn check_keys(
    data: &[u8],
    h: &BatchHeader,
    topic: &str,
    partition: i32,
) -> Result<(), LogError> {
    let section = records::records_section(data, records::MAX_SECTION)
        .map_err(|e| LogError::InvalidRecord(e.to_string()))?;
    let recs = records::parse(&section, h.record_count)
        .map_err(|e| LogError::InvalidRecord(e.to_string()))?;
    let keyless: Vec<i32> = recs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.key.is_none())
        .map(|(i, _)| i as i32)
        .collect();
    if !keyless.is_empty() {
        return Err(LogError::InvalidRecords {
            indexes: keyless,
            message: format!(
                "Compacted topic cannot accept message without key in topic partition {topic}-{partition}."
            ),
        });
    }
    Ok(())
}
