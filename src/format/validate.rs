//! Kafka's produce-side rules for a client's record batch (its `LogValidator`), in one place:
//! size, header, CRC, count, control and transactional attributes, and then every record.
//!
//! The records of an uncompressed batch are walked in place, without a copy: the count, each
//! length and varint within its range and inside the batch, offset deltas 0, 1, 2, … as the
//! header's count says, timestamps within the topic's bounds, and nothing after the last
//! record. A CreateTime batch's max timestamp is taken from its records, as Kafka rewrites it
//! (some clients send -1 there): the header returned carries it, and the log stores it. A compressed batch is walked the same
//! way as a stream out of its codec ([`super::codec`]) through a small working buffer: the
//! decompressed section is never held whole, and stops being read past the caller's cap.
//!
//! What is refused, and as what (`log` maps these to Kafka's error codes): a header or CRC
//! problem is corrupt (CORRUPT_MESSAGE), as is a compressed section that does not decode or an
//! undefined codec; a well-formed batch whose records break a rule is invalid (INVALID_RECORD),
//! naming the first bad record's index (KIP-467) where there is one.

use super::batch::{self, BatchError, BatchHeader, HEADER_LEN};
use super::codec::{self, CodecError};
use std::io::Read;

/// What a topic asks of a client batch.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// `max.message.bytes`: the largest batch, as sent.
    pub max_batch_bytes: usize,
    /// The most a compressed batch's records may decompress to.
    pub max_uncompressed: usize,
    /// Compacted topics: every record needs a key.
    pub keys_required: bool,
    /// CreateTime topics: the earliest and latest record timestamp accepted now
    /// (`message.timestamp.before.max.ms` / `after.max.ms`).
    pub timestamps: Option<(i64, i64)>,
}

/// Why a client batch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("batch of {size} bytes exceeds max.message.bytes {max}")]
    TooLarge { size: usize, max: usize },
    #[error("{0}")]
    Corrupt(BatchError),
    /// The compressed records do not decode, or the codec is undefined.
    #[error("{0}")]
    Codec(CodecError),
    #[error("records decompress to more than {max} bytes")]
    UncompressedTooLarge { max: usize },
    /// A rule about the batch as a whole.
    #[error("{0}")]
    Batch(String),
    /// A rule broken by one record (its index in the batch).
    #[error("record {index}: {reason}")]
    Record { index: i32, reason: String },
    /// Keyless records on a compacted topic (their indexes).
    #[error("records without a key at {0:?}")]
    Keyless(Vec<i32>),
    #[error("{0}")]
    Timestamp(String),
}

impl From<BatchError> for Invalid {
    fn from(e: BatchError) -> Self {
        Invalid::Corrupt(e)
    }
}

impl From<CodecError> for Invalid {
    fn from(e: CodecError) -> Self {
        match e {
            CodecError::TooLarge(max) => Invalid::UncompressedTooLarge { max },
            other => Invalid::Codec(other),
        }
    }
}

/// Checks one client batch (exactly one, as a Produce request carries it) against `rules`.
/// Returns its header as it is to be stored: a CreateTime batch's `max_timestamp` is its
/// records' latest timestamp, whatever the client wrote there.
pub fn client_batch(data: &[u8], rules: &Rules) -> Result<BatchHeader, Invalid> {
    if data.len() > rules.max_batch_bytes {
        return Err(Invalid::TooLarge {
            size: data.len(),
            max: rules.max_batch_bytes,
        });
    }
    let mut h = batch::validate(data)?;
    if h.is_control() {
        return Err(Invalid::Batch(
            "clients may not write control batches".into(),
        ));
    }
    if h.producer_id < 0 && h.is_transactional() {
        return Err(Invalid::Batch(
            "transactional batch without a producer id".into(),
        ));
    }
    if h.producer_id >= 0 && h.base_sequence < 0 {
        return Err(Invalid::Batch(format!(
            "invalid sequence number {} for producer {}",
            h.base_sequence, h.producer_id
        )));
    }
    let body = &data[HEADER_LEN..];
    let walked = match h.compression() {
        0 => walk(&mut Slice { b: body, at: 0 }, &h, rules)?,
        c => {
            let limit = rules.max_uncompressed;
            let mut input = Stream {
                r: codec::decoder(c, body, limit)?,
                codec: c,
                buf: vec![0; STREAM_BUF],
                at: 0,
                len: 0,
                read: 0,
                cap: limit as u64,
            };
            walk(&mut input, &h, rules)?
        }
    };
    if !walked.keyless.is_empty() {
        return Err(Invalid::Keyless(walked.keyless));
    }
    if !h.is_log_append_time() {
        h.max_timestamp = walked.max_timestamp;
    }
    Ok(h)
}

/// What the walk found beyond the rules.
struct Walked {
    /// Indexes of keyless records, when keys are required.
    keyless: Vec<i32>,
    /// The latest record timestamp.
    max_timestamp: i64,
}

/// The working buffer of a compressed batch's walk.
const STREAM_BUF: usize = 32 << 10;

/// Why the input stopped.
enum Stop {
    /// No more bytes.
    End,
    Codec(CodecError),
}

/// The records section, as the walk reads it.
trait Input {
    fn byte(&mut self) -> Result<u8, Stop>;
    fn skip(&mut self, n: u64) -> Result<(), Stop>;
    /// Bytes of the section read so far.
    fn consumed(&self) -> u64;
    fn at_end(&mut self) -> Result<bool, Stop>;
}

struct Slice<'a> {
    b: &'a [u8],
    at: usize,
}

impl Input for Slice<'_> {
    #[inline]
    fn byte(&mut self) -> Result<u8, Stop> {
        let v = *self.b.get(self.at).ok_or(Stop::End)?;
        self.at += 1;
        Ok(v)
    }
    #[inline]
    fn skip(&mut self, n: u64) -> Result<(), Stop> {
        let left = (self.b.len() - self.at) as u64;
        if n > left {
            return Err(Stop::End);
        }
        self.at += n as usize;
        Ok(())
    }
    #[inline]
    fn consumed(&self) -> u64 {
        self.at as u64
    }
    fn at_end(&mut self) -> Result<bool, Stop> {
        Ok(self.at == self.b.len())
    }
}

/// A decoder's output read through a fixed buffer, stopping past `cap` bytes.
struct Stream<'a> {
    r: Box<dyn Read + 'a>,
    codec: i16,
    buf: Vec<u8>,
    at: usize,
    len: usize,
    /// Bytes taken from the decoder so far.
    read: u64,
    cap: u64,
}

impl Stream<'_> {
    fn fill(&mut self) -> Result<(), Stop> {
        let n = loop {
            match self.r.read(&mut self.buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Stop::Codec(codec::io_error(self.codec, e))),
            }
        };
        if n == 0 {
            return Err(Stop::End);
        }
        self.read += n as u64;
        if self.read > self.cap {
            return Err(Stop::Codec(CodecError::TooLarge(self.cap as usize)));
        }
        self.at = 0;
        self.len = n;
        Ok(())
    }
}

impl Input for Stream<'_> {
    fn byte(&mut self) -> Result<u8, Stop> {
        if self.at == self.len {
            self.fill()?;
        }
        let v = self.buf[self.at];
        self.at += 1;
        Ok(v)
    }
    fn skip(&mut self, mut n: u64) -> Result<(), Stop> {
        while n > 0 {
            if self.at == self.len {
                self.fill()?;
            }
            let step = n.min((self.len - self.at) as u64);
            self.at += step as usize;
            n -= step;
        }
        Ok(())
    }
    fn consumed(&self) -> u64 {
        self.read - (self.len - self.at) as u64
    }
    fn at_end(&mut self) -> Result<bool, Stop> {
        if self.at < self.len {
            return Ok(false);
        }
        match self.fill() {
            Ok(()) => Ok(false),
            Err(Stop::End) => Ok(true),
            Err(e) => Err(e),
        }
    }
}

/// A zig-zag varint of at most `max_bytes` bytes (5 for int fields, 10 for long ones).
#[inline]
fn varint(input: &mut impl Input, max_bytes: u32) -> Result<Option<i64>, Stop> {
    let mut v: u64 = 0;
    for i in 0..max_bytes {
        let b = input.byte()?;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some(((v >> 1) as i64) ^ -((v & 1) as i64)));
        }
    }
    Ok(None)
}

/// Walks `h.record_count` records and the end of the section.
fn walk(input: &mut impl Input, h: &BatchHeader, rules: &Rules) -> Result<Walked, Invalid> {
    let mut keyless = Vec::new();
    let mut max_timestamp = i64::MIN;
    for index in 0..h.record_count {
        let bad = |reason: String| Invalid::Record { index, reason };
        let stopped = |s: Stop| match s {
            Stop::End => bad("the records section ends inside it".into()),
            Stop::Codec(e) => Invalid::from(e),
        };
        let int = |input: &mut _, field: &str| -> Result<i64, Invalid> {
            match varint(input, 5).map_err(stopped)? {
                Some(v) if i32::try_from(v).is_ok() => Ok(v),
                _ => Err(bad(format!("{field} is not a valid varint"))),
            }
        };
        let len = int(input, "length")?;
        if len < 0 {
            return Err(bad(format!("negative length {len}")));
        }
        let end = input.consumed() + len as u64;
        // a field that would end past the record
        let field = |input: &mut _, name: &str, nullable: bool| -> Result<bool, Invalid> {
            let n = int(input, name)?;
            if n == -1 && nullable {
                return Ok(false);
            }
            if n < 0 {
                return Err(bad(format!("{name} has length {n}")));
            }
            let n = n as u64;
            if Input::consumed(input) + n > end {
                return Err(bad(format!("{name} runs past the record's length {len}")));
            }
            Input::skip(input, n).map_err(stopped)?;
            Ok(true)
        };
        input.byte().map_err(stopped)?; // attributes: none are defined for records
        let ts_delta = match varint(input, 10).map_err(stopped)? {
            Some(d) => d,
            None => return Err(bad("timestamp delta is not a valid varint".into())),
        };
        let offset_delta = int(input, "offset delta")?;
        if offset_delta != i64::from(index) {
            return Err(bad(format!(
                "offset delta {offset_delta} where {index} belongs"
            )));
        }
        if !field(input, "key", true)? && rules.keys_required {
            keyless.push(index);
        }
        field(input, "value", true)?;
        let headers = int(input, "header count")?;
        if headers < 0 {
            return Err(bad(format!("header count {headers}")));
        }
        for _ in 0..headers {
            field(input, "header key", false)?;
            field(input, "header value", true)?;
            if input.consumed() > end {
                break;
            }
        }
        if input.consumed() != end {
            return Err(bad(format!(
                "length {len} does not match its fields ({} bytes)",
                input.consumed() + len as u64 - end
            )));
        }
        let ts = h
            .base_timestamp
            .checked_add(ts_delta)
            .ok_or_else(|| bad(format!("timestamp delta {ts_delta} overflows")))?;
        max_timestamp = max_timestamp.max(ts);
        if let Some((earliest, latest)) = rules.timestamps {
            check_timestamp(ts, earliest, latest, index)?;
        }
    }
    let walked = Walked {
        keyless,
        max_timestamp,
    };
    match input.at_end() {
        Ok(true) | Err(Stop::End) => Ok(walked),
        Ok(false) => Err(Invalid::Batch(format!(
            "bytes follow the {} records the batch declares",
            h.record_count
        ))),
        Err(Stop::Codec(e)) => Err(e.into()),
    }
}

fn check_timestamp(ts: i64, earliest: i64, latest: i64, index: i32) -> Result<(), Invalid> {
    if ts > latest {
        return Err(Invalid::Timestamp(format!(
            "record {index}: timestamp {ts} is later than {latest} (message.timestamp.after.max.ms)"
        )));
    }
    if ts < earliest {
        return Err(Invalid::Timestamp(format!(
            "record {index}: timestamp {ts} is earlier than {earliest} (message.timestamp.before.max.ms)"
        )));
    }
    Ok(())
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
