//! The magic-v2 record batch: the unit clients send, the log stores and consumers read.
//!
//! The same bytes are the wire format and the disk format, so this module is a leaf that both
//! `protocol`/`api` (validating produce) and `log` (recovery, fetch boundaries) use. It only looks
//! at the 61-byte batch header and never decodes individual records: produce patches the base
//! offset (outside the CRC) and appends the client's bytes unchanged.
//!
//! Layout (big-endian), offsets from the start of the batch:
//! `baseOffset i64 @0, batchLength i32 @8, partitionLeaderEpoch i32 @12, magic i8 @16,
//! crc u32 @17, attributes i16 @21, lastOffsetDelta i32 @23, baseTimestamp i64 @27,
//! maxTimestamp i64 @35, producerId i64 @43, producerEpoch i16 @51, baseSequence i32 @53,
//! recordCount i32 @57`. The CRC-32C covers everything from `attributes` to the end.

/// Bytes before `batchLength`'s payload starts: base offset (8) + length (4).
pub const LOG_OVERHEAD: usize = 12;
/// Size of the full v2 batch header.
pub const HEADER_LEN: usize = 61;
/// Start of the CRC-covered region.
const CRC_START: usize = 21;

const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_TIMESTAMP_TYPE: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

/// Why a batch was refused. `api` maps each kind to the Kafka error code a Kafka broker returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch truncated: {0} bytes")]
    Truncated(usize),
    #[error("batch length {0} is invalid")]
    BadLength(i64),
    #[error("unsupported magic {0}")]
    BadMagic(i8),
    #[error("crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc { stored: u32, computed: u32 },
    #[error("record count {count} does not match last offset delta {last_offset_delta}")]
    BadCount { count: i32, last_offset_delta: i32 },
    #[error("expected exactly one record batch, found trailing bytes")]
    NotOneBatch,
}

/// A parsed view of a batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

/// Reads `(base_offset, total_len)` from the first 12 bytes, enough to walk a sequence of
/// batches. `total_len` includes the 12-byte overhead. Refuses lengths that cannot hold a header.
pub fn peek_frame(buf: &[u8]) -> Result<(i64, usize), BatchError> {
    if buf.len() < LOG_OVERHEAD {
        return Err(BatchError::Truncated(buf.len()));
    }
    let len = be_i32(buf, 8);
    if (len as i64) < (HEADER_LEN - LOG_OVERHEAD) as i64 {
        return Err(BatchError::BadLength(len as i64));
    }
    Ok((be_i64(buf, 0), LOG_OVERHEAD + len as usize))
}

impl BatchHeader {
    /// Parses the header fields without checking the CRC. `buf` must hold at least 61 bytes.
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        if buf.len() < HEADER_LEN {
            return Err(BatchError::Truncated(buf.len()));
        }
        let h = BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length: be_i32(buf, 8),
            magic: buf[16] as i8,
            crc: u32::from_be_bytes([buf[17], buf[18], buf[19], buf[20]]),
            attributes: be_i16(buf, 21),
            last_offset_delta: be_i32(buf, 23),
            base_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, 35),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            record_count: be_i32(buf, 57),
        };
        if h.magic != 2 {
            return Err(BatchError::BadMagic(h.magic));
        }
        if (h.batch_length as i64) < (HEADER_LEN - LOG_OVERHEAD) as i64 {
            return Err(BatchError::BadLength(h.batch_length as i64));
        }
        Ok(h)
    }

    /// Size of the whole batch including the 12-byte log overhead.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }
    pub fn compression(&self) -> i16 {
        self.attributes & ATTR_COMPRESSION_MASK
    }
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_TIMESTAMP_TYPE != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }
}

/// The codec a batch's attributes name, read before anything else is checked (`None`: too
/// short to have attributes).
pub fn codec_of(batch: &[u8]) -> Option<i16> {
    batch
        .get(21..23)
        .map(|a| be_i16(a, 0) & ATTR_COMPRESSION_MASK)
}

/// CRC-32C of the region the batch's `crc` field covers.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[CRC_START..])
}

/// Full structural check of one complete batch held in `batch` (which must be exactly one batch)
/// as a client must send it: length, magic, CRC-32C and record count = last offset delta + 1.
pub fn validate(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    let h = validate_stored(batch)?;
    if h.record_count != h.last_offset_delta.wrapping_add(1) {
        return Err(BatchError::BadCount {
            count: h.record_count,
            last_offset_delta: h.last_offset_delta,
        });
    }
    Ok(h)
}

/// The check for a batch already in the log: as [`validate`], except that compaction may have
/// removed records, so the count may be lower than the offset range (never higher).
pub fn validate_stored(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    let h = BatchHeader::parse(batch)?;
    if h.total_len() != batch.len() {
        return if h.total_len() > batch.len() {
            Err(BatchError::Truncated(batch.len()))
        } else {
            Err(BatchError::NotOneBatch)
        };
    }
    let computed = compute_crc(batch);
    if computed != h.crc {
        return Err(BatchError::BadCrc {
            stored: h.crc,
            computed,
        });
    }
    if h.last_offset_delta < 0
        || h.record_count < 0
        || h.record_count > h.last_offset_delta.wrapping_add(1)
    {
        return Err(BatchError::BadCount {
            count: h.record_count,
            last_offset_delta: h.last_offset_delta,
        });
    }
    Ok(h)
}

/// Overwrites the base offset. It lies outside the CRC, so the batch stays valid.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Stamps the leader epoch the batch was appended in. Like the base offset it lies outside the
/// CRC.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[12..16].copy_from_slice(&epoch.to_be_bytes());
}

/// Marks a batch as LogAppendTime with `now_ms` as its max timestamp and recomputes the CRC, as
/// Kafka does for topics with `message.timestamp.type=LogAppendTime`. Works on a copy of the
/// header so the (possibly large, shared) record bytes in `body` are never copied.
pub fn set_log_append_time(head: &mut [u8; HEADER_LEN], body: &[u8], now_ms: i64) {
    let attrs = be_i16(head, 21) | ATTR_TIMESTAMP_TYPE;
    head[21..23].copy_from_slice(&attrs.to_be_bytes());
    set_max_timestamp(head, body, now_ms);
}

/// Sets the max timestamp and recomputes the CRC (on a copy of the header, as above).
pub fn set_max_timestamp(head: &mut [u8; HEADER_LEN], body: &[u8], ts: i64) {
    head[35..43].copy_from_slice(&ts.to_be_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&head[CRC_START..]), body);
    head[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// A copy of the batch's header, to patch without touching the record bytes.
pub fn header_copy(batch: &[u8]) -> [u8; HEADER_LEN] {
    let mut head = [0u8; HEADER_LEN];
    head.copy_from_slice(&batch[..HEADER_LEN]);
    head
}

/// Walks the records of an uncompressed batch, yielding `(offset_delta, timestamp_delta)` per
/// record. Stops at the first malformed record; never reads out of bounds.
/// Reads a zig-zag varint (the record fields' encoding) at `*pos`, advancing it.
pub fn read_varint(b: &[u8], pos: &mut usize) -> Option<i64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Some(((v >> 1) as i64) ^ -((v & 1) as i64));
        }
    }
    None
}

/// Appends `v` as a zig-zag varint.
pub fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `b` made a transactional batch of `pid` at `epoch` with first sequence `seq` (CRC redone).
    pub(crate) fn transactional(mut b: Vec<u8>, pid: i64, epoch: i16, seq: i32) -> Vec<u8> {
        let attrs = i16::from_be_bytes([b[21], b[22]]) | ATTR_TRANSACTIONAL;
        b[21..23].copy_from_slice(&attrs.to_be_bytes());
        b[43..51].copy_from_slice(&pid.to_be_bytes());
        b[51..53].copy_from_slice(&epoch.to_be_bytes());
        b[53..57].copy_from_slice(&seq.to_be_bytes());
        let crc = compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// Builds a valid uncompressed batch holding `n` records with the given value size.
    pub(crate) fn make_batch(base_offset: i64, n: i32, value_len: usize, ts: i64) -> Vec<u8> {
        let mut records = Vec::new();
        for i in 0..n {
            let mut rec = Vec::new();
            rec.push(0u8); // attributes
            put_varint(&mut rec, 0); // timestamp delta
            put_varint(&mut rec, i as i64); // offset delta
            put_varint(&mut rec, -1); // null key
            put_varint(&mut rec, value_len as i64);
            rec.extend(std::iter::repeat_n(b'x', value_len));
            put_varint(&mut rec, 0); // headers
            put_varint(&mut records, rec.len() as i64);
            records.extend(rec);
        }
        let mut b = Vec::with_capacity(HEADER_LEN + records.len());
        b.extend(base_offset.to_be_bytes());
        b.extend(((HEADER_LEN - LOG_OVERHEAD + records.len()) as i32).to_be_bytes());
        b.extend(0i32.to_be_bytes()); // leader epoch
        b.push(2); // magic
        b.extend(0u32.to_be_bytes()); // crc placeholder
        b.extend(0i16.to_be_bytes()); // attributes
        b.extend((n - 1).to_be_bytes());
        b.extend(ts.to_be_bytes());
        b.extend(ts.to_be_bytes());
        b.extend((-1i64).to_be_bytes());
        b.extend((-1i16).to_be_bytes());
        b.extend((-1i32).to_be_bytes());
        b.extend(n.to_be_bytes());
        b.extend(records);
        let crc = compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn valid_batch_roundtrips() {
        let mut b = make_batch(0, 3, 10, 1000);
        let h = validate(&b).expect("valid");
        assert_eq!(h.record_count, 3);
        assert_eq!(h.last_offset(), 2);
        set_base_offset(&mut b, 42);
        let h = validate(&b).expect("still valid after base offset patch");
        assert_eq!(h.base_offset, 42);
        assert_eq!(h.last_offset(), 44);
    }

    #[test]
    fn corrupt_crc_is_detected() {
        let mut b = make_batch(0, 1, 10, 1000);
        let last = b.len() - 1;
        b[last] ^= 0xff;
        assert!(matches!(validate(&b), Err(BatchError::BadCrc { .. })));
    }

    #[test]
    fn log_append_time_rewrites_crc() {
        let b = make_batch(0, 2, 5, 1000);
        let mut head = header_copy(&b);
        set_log_append_time(&mut head, &b[HEADER_LEN..], 77);
        let mut patched = head.to_vec();
        patched.extend_from_slice(&b[HEADER_LEN..]);
        let h = validate(&patched).expect("valid");
        assert!(h.is_log_append_time());
        assert_eq!(h.max_timestamp, 77);
    }

    #[test]
    fn count_mismatch_and_trailing_bytes() {
        let mut b = make_batch(0, 2, 5, 1000);
        b[57..61].copy_from_slice(&5i32.to_be_bytes());
        let crc = compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(validate(&b), Err(BatchError::BadCount { .. })));
        let mut two = make_batch(0, 1, 5, 1);
        two.extend(make_batch(1, 1, 5, 1));
        assert_eq!(validate(&two), Err(BatchError::NotOneBatch));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = validate(&data);
            let _ = peek_frame(&data);
            let _ = BatchHeader::parse(&data);
            let _ = crate::format::records::parse(&data, 1000);
            let _ = crate::format::records::records_section(&data, 1 << 16);
        }

        #[test]
        fn any_single_byte_flip_is_caught(pos in 0usize..200, bit in 0u8..8) {
            let b = make_batch(7, 4, 20, 5);
            let pos = pos % b.len();
            // the base offset and partition leader epoch are outside the CRC by design
            prop_assume!(pos >= 8 && !(12..16).contains(&pos));
            let mut c = b.clone();
            c[pos] ^= 1 << bit;
            prop_assert!(validate(&c).is_err());
        }
    }
}
