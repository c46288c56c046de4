//! A client batch made ready to append: the topic's settings turned into the rules of
//! [`crate::format::validate`] (Kafka's `LogValidator`), its refusals into the log's errors,
//! and the recompression a topic's `compression.type` asks for. CPU only: done before an
//! append is queued for the I/O executor.

use super::error::LogError;
use crate::config::{LogConfig, TimestampType};
use crate::format::batch::BatchHeader;
use crate::format::records;
use crate::format::validate::{self, Invalid, Rules};
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
/// time `now` ([`validate::client_batch`]: the batch and every record in it), and recompresses
/// it when `compression.type` says so.
pub fn prepare(
    data: Bytes,
    config: LogConfig,
    now: i64,
    verify: Verify,
    at: (&str, i32),
) -> Result<Prepared, LogError> {
    let rules = rules(&config, now);
    let h = validate::client_batch(&data, &rules).map_err(|e| refusal(e, at))?;
    // compression.type other than `producer`: the broker recompresses, as Kafka does
    let (data, header) = match config.compression {
        Some(codec) if codec != h.compression() => {
            let data = Bytes::from(
                records::recompress(&data, codec, rules.max_uncompressed)
                    .map_err(|e| LogError::InvalidRecord(e.to_string()))?,
            );
            let mut header = BatchHeader::parse(&data)?;
            // the max timestamp validation found (the append stores it, as for any batch)
            header.max_timestamp = h.max_timestamp;
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

/// What the topic's settings ask of a client batch now.
pub fn rules(config: &LogConfig, now: i64) -> Rules {
    let max_batch_bytes = config.max_message_bytes.max(0) as usize;
    Rules {
        max_batch_bytes,
        max_uncompressed: max_batch_bytes.saturating_mul(config.max_uncompressed_factor as usize),
        keys_required: config.cleanup_compact,
        // CreateTime bounds (LogAppendTime topics overwrite the timestamps, so Kafka skips them)
        timestamps: (config.timestamp_type == TimestampType::CreateTime).then(|| {
            (
                now.saturating_sub(config.timestamp_before_max_ms),
                now.saturating_add(config.timestamp_after_max_ms),
            )
        }),
    }
}

/// A refused batch as the log's error, in Kafka's words where Kafka has some.
fn refusal(e: Invalid, (topic, partition): (&str, i32)) -> LogError {
    match e {
        Invalid::TooLarge { size, max } => LogError::RecordTooLarge { size, max },
        Invalid::Corrupt(b) => b.into(),
        Invalid::Codec(c) => LogError::CorruptRecords(c.to_string()),
        Invalid::UncompressedTooLarge { .. } => LogError::UncompressedTooLarge(e.to_string()),
        Invalid::Batch(m) => LogError::InvalidRecord(m),
        Invalid::Record { index, reason } => LogError::InvalidRecords {
            indexes: vec![index],
            message: format!("record {index} of the batch is malformed: {reason}"),
        },
        Invalid::Keyless(indexes) => LogError::InvalidRecords {
            indexes,
            message: format!(
                "Compacted topic cannot accept message without key in topic partition {topic}-{partition}."
            ),
        },
        Invalid::Timestamp(m) => LogError::InvalidTimestamp(m),
    }
}
