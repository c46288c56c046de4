//! Individual records inside a magic-v2 batch, held whole, for the few places that rewrite
//! them: the log cleaner, `compression.type` recompression and timestamp lookups. Compressed
//! sections are decompressed ([`super::codec`]) with a cap on the output, so a small batch
//! cannot expand into unbounded memory. Produce checks records without holding them
//! ([`super::validate`]); fetch never looks inside a batch.

use crate::format::batch::{self, BatchHeader, HEADER_LEN};
use crate::format::codec::{self, CodecError};
use std::borrow::Cow;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordsError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("malformed record {index}: {reason}")]
    Malformed { index: usize, reason: &'static str },
}

/// One record, borrowing from the (decompressed) records section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// The whole record as encoded, length prefix included (copied as is when rebuilding).
    pub raw: &'a [u8],
}

/// The records section of `batch` (one whole batch), decompressed if needed, at most `limit`
/// bytes.
pub fn records_section(batch: &[u8], limit: usize) -> Result<Cow<'_, [u8]>, RecordsError> {
    let h = BatchHeader::parse(batch).map_err(|_| RecordsError::Malformed {
        index: 0,
        reason: "batch header",
    })?;
    let body = &batch[HEADER_LEN.min(batch.len())..];
    Ok(match h.compression() {
        0 => Cow::Borrowed(body),
        codec => Cow::Owned(codec::decompress(codec, body, limit)?),
    })
}

/// Parses `count` records from a records section.
pub fn parse(section: &[u8], count: i32) -> Result<Vec<Record<'_>>, RecordsError> {
    let mut out = Vec::with_capacity(count.clamp(0, 1 << 16) as usize);
    let mut pos = 0usize;
    for index in 0..count.max(0) as usize {
        let bad = |reason| RecordsError::Malformed { index, reason };
        let start = pos;
        let len = batch::read_varint(section, &mut pos).ok_or(bad("length"))?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| pos.checked_add(l))
            .filter(|&e| e <= section.len())
            .ok_or(bad("length past the end"))?;
        let rec = &section[..end];
        pos += 1; // attributes
        let timestamp_delta = batch::read_varint(rec, &mut pos).ok_or(bad("timestamp delta"))?;
        let offset_delta = batch::read_varint(rec, &mut pos)
            .and_then(|d| i32::try_from(d).ok())
            .ok_or(bad("offset delta"))?;
        let key = bytes_field(rec, &mut pos).ok_or(bad("key"))?;
        let value = bytes_field(rec, &mut pos).ok_or(bad("value"))?;
        out.push(Record {
            offset_delta,
            timestamp_delta,
            key,
            value,
            raw: &section[start..end],
        });
        pos = end;
    }
    Ok(out)
}

fn bytes_field<'a>(b: &'a [u8], pos: &mut usize) -> Option<Option<&'a [u8]>> {
    let len = batch::read_varint(b, pos)?;
    if len < 0 {
        return Some(None);
    }
    let end = pos.checked_add(len as usize)?;
    let s = b.get(*pos..end)?;
    *pos = end;
    Some(Some(s))
}

/// Largest records section the broker decompresses from one batch (recompression, compaction,
/// timestamp lookups); a larger one is refused or left as it is.
pub const MAX_SECTION: usize = 256 << 20;

/// A new uncompressed batch holding `records` (raw encodings from a batch with header `h`). The
/// base offset, last offset delta, producer fields and base timestamp stay as they were, so every
/// retained record keeps its offset and timestamp; the max timestamp is recomputed for
/// CreateTime batches (LogAppendTime keeps the broker's).
pub fn rebuild(h: &BatchHeader, records: &[Record<'_>]) -> Vec<u8> {
    let max_ts = if h.is_log_append_time() {
        h.max_timestamp
    } else {
        records
            .iter()
            .map(|r| h.base_timestamp.saturating_add(r.timestamp_delta))
            .max()
            .unwrap_or(h.base_timestamp)
    };
    let body: Vec<u8> = records.iter().flat_map(|r| r.raw.iter().copied()).collect();
    write_batch(h, 0, max_ts, records.len() as i32, &body)
}

/// The same batch with its records compressed with `codec` (0 for none): Kafka's
/// `compression.type` when it differs from what the producer used.
pub fn recompress(batch: &[u8], codec: i16, limit: usize) -> Result<Vec<u8>, RecordsError> {
    let h = BatchHeader::parse(batch).map_err(|_| RecordsError::Malformed {
        index: 0,
        reason: "batch header",
    })?;
    let section = records_section(batch, limit)?;
    let body = codec::compress(codec, &section)?;
    Ok(write_batch(
        &h,
        codec,
        h.max_timestamp,
        h.record_count,
        &body,
    ))
}

/// A batch with `h`'s offsets, timestamps and producer fields around `body`.
pub(crate) fn write_batch(
    h: &BatchHeader,
    codec: i16,
    max_ts: i64,
    count: i32,
    body: &[u8],
) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_LEN + body.len());
    let attributes = (h.attributes & !0x07) | codec;
    b.extend_from_slice(&h.base_offset.to_be_bytes());
    b.extend_from_slice(&((HEADER_LEN - batch::LOG_OVERHEAD + body.len()) as i32).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    b.push(2);
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, below
    b.extend_from_slice(&attributes.to_be_bytes());
    b.extend_from_slice(&h.last_offset_delta.to_be_bytes());
    b.extend_from_slice(&h.base_timestamp.to_be_bytes());
    b.extend_from_slice(&max_ts.to_be_bytes());
    b.extend_from_slice(&h.producer_id.to_be_bytes());
    b.extend_from_slice(&h.producer_epoch.to_be_bytes());
    b.extend_from_slice(&h.base_sequence.to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(body);
    let crc = batch::compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Appends one record with timestamp delta 0 and no headers, length first.
pub(crate) fn put_record(
    out: &mut Vec<u8>,
    offset_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) {
    let mut rec =
        Vec::with_capacity(16 + key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len));
    rec.push(0); // attributes
    batch::put_varint(&mut rec, 0); // timestamp delta
    batch::put_varint(&mut rec, offset_delta);
    for field in [key, value] {
        match field {
            Some(b) => {
                batch::put_varint(&mut rec, b.len() as i64);
                rec.extend_from_slice(b);
            }
            None => batch::put_varint(&mut rec, -1),
        }
    }
    batch::put_varint(&mut rec, 0); // headers
    batch::put_varint(out, rec.len() as i64);
    out.extend_from_slice(&rec);
}

/// A new uncompressed batch at offset 0 (the log assigns the real one) holding `count` records
/// encoded in `body`, all at `now_ms`.
pub(crate) fn new_batch(
    attributes: i16,
    (producer_id, producer_epoch): (i64, i16),
    count: i32,
    now_ms: i64,
    body: &[u8],
) -> Vec<u8> {
    let h = BatchHeader {
        base_offset: 0,
        batch_length: 0,
        magic: 2,
        crc: 0,
        attributes,
        last_offset_delta: (count - 1).max(0),
        base_timestamp: now_ms,
        max_timestamp: now_ms,
        producer_id,
        producer_epoch,
        base_sequence: -1,
        record_count: count,
    };
    write_batch(&h, 0, now_ms, count, body)
}

/// A new uncompressed batch without a producer holding one keyless record per value, every
/// record at `now_ms` (the internal logs that keep the coordinators' journals).
pub fn values_batch(values: &[Vec<u8>], now_ms: i64) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, v) in values.iter().enumerate() {
        put_record(&mut body, i as i64, None, Some(v));
    }
    new_batch(0, (-1, -1), values.len() as i32, now_ms, &body)
}

/// The values of the records of every data batch in `bytes` (whole stored batches, as a read
/// returns them), with the offset of the last batch read; control batches hold none.
pub fn values_of(bytes: &[u8]) -> Result<(Vec<Vec<u8>>, Option<i64>), RecordsError> {
    let mut out = Vec::new();
    let mut last = None;
    let mut pos = 0;
    while pos < bytes.len() {
        if bytes.len() - pos < batch::LOG_OVERHEAD {
            break;
        }
        let bad = |reason| RecordsError::Malformed { index: 0, reason };
        let (_, len) = batch::peek_frame(&bytes[pos..]).map_err(|_| bad("batch frame"))?;
        let Some(one) = bytes.get(pos..pos + len) else {
            break; // a read may end inside a batch
        };
        let h = BatchHeader::parse(one).map_err(|_| bad("batch header"))?;
        if !h.is_control() {
            let section = records_section(one, MAX_SECTION)?;
            for r in parse(&section, h.record_count)? {
                out.push(r.value.unwrap_or_default().to_vec());
            }
        }
        last = Some(h.last_offset());
        pos += len;
    }
    Ok((out, last))
}

/// Within one batch, the offset and timestamp of the first record with timestamp `>= ts`.
/// Compressed batches are decompressed (with a cap) to find it; a LogAppendTime batch has one
/// timestamp for all its records, so its first offset answers.
pub fn first_at_or_after(bytes: &[u8], h: &BatchHeader, ts: i64) -> (i64, i64) {
    if h.is_log_append_time() {
        return (h.base_offset, h.max_timestamp);
    }
    let found = records_section(bytes, MAX_SECTION)
        .ok()
        .and_then(|section| {
            let recs = parse(&section, h.record_count).ok()?;
            recs.iter()
                .map(|r| {
                    (
                        r.offset_delta,
                        h.base_timestamp.saturating_add(r.timestamp_delta),
                    )
                })
                .find(|&(_, rts)| rts >= ts)
                .map(|(d, rts)| (h.base_offset + d as i64, rts))
        });
    found.unwrap_or((h.base_offset, h.max_timestamp))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::format::batch::put_varint;
    use std::io::Write;

    /// Records with keys `k{i}` (None for `i` in `null_keys`) and values `v{i}`.
    fn section(n: i64, null_keys: &[i64]) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            let mut r = vec![0u8];
            put_varint(&mut r, i * 10);
            put_varint(&mut r, i);
            if null_keys.contains(&i) {
                put_varint(&mut r, -1);
            } else {
                let k = format!("k{i}");
                put_varint(&mut r, k.len() as i64);
                r.extend_from_slice(k.as_bytes());
            }
            let v = format!("v{i}");
            put_varint(&mut r, v.len() as i64);
            r.extend_from_slice(v.as_bytes());
            put_varint(&mut r, 0);
            put_varint(&mut out, r.len() as i64);
            out.extend(r);
        }
        out
    }

    fn batch_with(codec: i16, body: &[u8], n: i32) -> Vec<u8> {
        let h = BatchHeader {
            base_offset: 100,
            batch_length: 0,
            magic: 2,
            crc: 0,
            attributes: codec,
            last_offset_delta: n - 1,
            base_timestamp: 1000,
            max_timestamp: 1000 + 10 * (n as i64 - 1),
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            record_count: n,
        };
        let mut b = rebuild(&h, &[]);
        b.truncate(HEADER_LEN);
        b[21..23].copy_from_slice(&codec.to_be_bytes());
        b[35..43].copy_from_slice(&h.max_timestamp.to_be_bytes());
        b[57..61].copy_from_slice(&n.to_be_bytes());
        b.extend_from_slice(body);
        let len = (b.len() - batch::LOG_OVERHEAD) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        let crc = batch::compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn every_codec_decompresses_to_the_same_records() {
        let plain = section(5, &[3]);
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&plain).expect("gzip");
            e.finish().expect("gzip")
        };
        let raw_snappy = snap::raw::Encoder::new()
            .compress_vec(&plain)
            .expect("snappy");
        let xerial = {
            let mut x = b"\x82SNAPPY\x00".to_vec();
            x.extend_from_slice(&1i32.to_be_bytes());
            x.extend_from_slice(&1i32.to_be_bytes());
            x.extend_from_slice(&(raw_snappy.len() as u32).to_be_bytes());
            x.extend_from_slice(&raw_snappy);
            x
        };
        let lz4 = {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            e.write_all(&plain).expect("lz4");
            e.finish().expect("lz4")
        };
        let zstd = zstd::bulk::compress(&plain, 3).expect("zstd");
        for (codec, body) in [
            (0, plain.clone()),
            (1, gz),
            (2, raw_snappy),
            (2, xerial),
            (3, lz4),
            (4, zstd),
        ] {
            let b = batch_with(codec, &body, 5);
            batch::validate(&b).expect("valid batch");
            let s = records_section(&b, 1 << 20).expect("decompress");
            assert_eq!(&*s, plain.as_slice(), "codec {codec}");
            let recs = parse(&s, 5).expect("parse");
            assert_eq!(recs.len(), 5);
            assert_eq!(recs[2].key, Some(&b"k2"[..]));
            assert_eq!(recs[3].key, None);
            assert_eq!(recs[4].value, Some(&b"v4"[..]));
            assert_eq!((recs[4].offset_delta, recs[4].timestamp_delta), (4, 40));
        }
        // the cap holds
        let b = batch_with(0, &plain, 5);
        assert_eq!(
            records_section(&b, 10).map(|s| s.len()).ok(),
            Some(plain.len()),
            "uncompressed: no copy, no cap"
        );
        let lz = {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            e.write_all(&vec![0u8; 1 << 20]).expect("lz4");
            e.finish().expect("lz4")
        };
        let bomb = batch_with(3, &lz, 1);
        assert_eq!(
            records_section(&bomb, 1000),
            Err(RecordsError::Codec(CodecError::TooLarge(1000)))
        );
    }

    proptest::proptest! {
        /// Garbage behind every codec flag is an error, never a panic or an unbounded allocation.
        #[test]
        fn corrupt_compressed_bodies_are_errors(
            codec in 1i16..=4,
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            count in -5i32..5000,
        ) {
            let b = batch_with(codec, &body, 1);
            if let Ok(section) = records_section(&b, 1 << 20) {
                let _ = parse(&section, count);
            }
        }
    }

    /// A batch of `n` records (timestamps 1000, 1010, …) compressed with gzip, for callers that
    /// need a compressed batch.
    pub(crate) fn gzip_batch(n: i64) -> Vec<u8> {
        let plain = section(n, &[]);
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&plain).expect("gzip");
        batch_with(1, &e.finish().expect("gzip"), n as i32)
    }

    #[test]
    fn recompressed_batches_hold_the_same_records_under_every_codec() {
        let plain = section(40, &[5]);
        let original = batch_with(0, &plain, 40);
        for codec in 0..=4 {
            let b = recompress(&original, codec, 1 << 20).expect("recompress");
            let h = batch::validate(&b).expect("a valid client-shaped batch");
            assert_eq!(h.compression(), codec);
            assert_eq!(
                (h.base_offset, h.last_offset_delta, h.max_timestamp),
                (100, 39, 1390)
            );
            assert_eq!(
                &*records_section(&b, 1 << 20).expect("back"),
                plain.as_slice()
            );
            // and back to the original from any codec
            let again = recompress(&b, 0, 1 << 20).expect("decompress");
            assert_eq!(again, original, "codec {codec}");
        }
    }

    #[test]
    fn rebuilt_batches_keep_offsets_and_validate() {
        let plain = section(6, &[]);
        let b = batch_with(0, &plain, 6);
        let h = batch::validate(&b).expect("valid");
        let recs = parse(&plain, 6).expect("parse");
        let kept: Vec<Record> = recs
            .into_iter()
            .filter(|r| r.offset_delta % 2 == 1)
            .collect();
        let nb = rebuild(&h, &kept);
        assert!(
            batch::validate(&nb).is_err(),
            "fewer records than offsets: not a client batch"
        );
        let nh = batch::validate_stored(&nb).expect("rebuilt batch is valid in the log");
        assert_eq!(nh.base_offset, 100);
        assert_eq!(nh.last_offset_delta, 5, "last offset kept");
        assert_eq!(nh.record_count, 3);
        assert_eq!(nh.max_timestamp, 1050);
        let again = parse(&nb[HEADER_LEN..], 3).expect("parse");
        let deltas: Vec<i32> = again.iter().map(|r| r.offset_delta).collect();
        assert_eq!(deltas, vec![1, 3, 5]);
        assert!(parse(&plain[..plain.len() - 2], 6).is_err(), "truncated");
    }
}
