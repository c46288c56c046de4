//! The record codecs of a magic-v2 batch (attributes bits 0–2): none, gzip, snappy (raw or
//! xerial-framed, as the Java client writes it), lz4 frames and zstd. Decoding is a stream
//! ([`decoder`]): what it holds at once is the codec's own window, never the whole records
//! section, and a zstd frame asking for a window beyond the caller's limit is refused before
//! anything is allocated for it. Codec values 5–7 are undefined and refused.

use std::io::Read;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("unknown compression codec {0}")]
    Unknown(i16),
    #[error("corrupt {codec} data: {reason}")]
    Corrupt { codec: &'static str, reason: String },
    #[error("records decompress to more than {0} bytes")]
    TooLarge(usize),
}

/// The codec's name as Kafka's `compression.type` spells it.
pub fn name(codec: i16) -> &'static str {
    match codec {
        0 => "none",
        1 => "gzip",
        2 => "snappy",
        3 => "lz4",
        4 => "zstd",
        _ => "unknown",
    }
}

/// A reader of the records section compressed as `body` with `codec`. `limit` bounds what one
/// decoding step may hold (a zstd window, a snappy block); the caller bounds the total it reads.
pub fn decoder(codec: i16, body: &[u8], limit: usize) -> Result<Box<dyn Read + '_>, CodecError> {
    Ok(match codec {
        0 => Box::new(body),
        1 => Box::new(flate2::read::GzDecoder::new(body)),
        2 => Box::new(Snappy::new(body, limit)),
        3 => Box::new(lz4_flex::frame::FrameDecoder::new(body)),
        4 => {
            // libzstd refuses a frame whose window is past this before allocating it
            let allowed = limit.max(ZSTD_WINDOW_FLOOR);
            let window_log = (usize::BITS - (allowed - 1).leading_zeros()).clamp(10, 31);
            let mut d =
                zstd::stream::read::Decoder::with_buffer(body).map_err(|e| corrupt(4, e))?;
            d.window_log_max(window_log).map_err(|e| corrupt(4, e))?;
            Box::new(d)
        }
        other => return Err(CodecError::Unknown(other)),
    })
}

fn corrupt(codec: i16, e: impl std::fmt::Display) -> CodecError {
    CodecError::Corrupt {
        codec: name(codec),
        reason: e.to_string(),
    }
}

/// An I/O error of a decoder as the codec error it stands for.
pub fn io_error(codec: i16, e: std::io::Error) -> CodecError {
    match e.get_ref().and_then(|e| e.downcast_ref::<CodecError>()) {
        Some(inner) => inner.clone(),
        None => corrupt(codec, e),
    }
}

impl CodecError {
    fn into_io(self) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, self)
    }
}

/// The whole decompressed section, failing past `limit` bytes.
pub fn decompress(codec: i16, body: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    let n = decoder(codec, body, limit)?
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| io_error(codec, e))?;
    if n > limit {
        return Err(CodecError::TooLarge(limit));
    }
    Ok(out)
}

const XERIAL: &[u8] = b"\x82SNAPPY\x00";

/// Kafka's snappy: one raw block, or xerial framing (magic, version, compat, then
/// `[u32 length][raw block]`*), decoded one block at a time.
struct Snappy<'a> {
    /// Blocks not yet decoded.
    rest: &'a [u8],
    framed: bool,
    block: Vec<u8>,
    at: usize,
    limit: usize,
}

impl<'a> Snappy<'a> {
    fn new(body: &'a [u8], limit: usize) -> Self {
        let framed = body.len() >= 16 && &body[..8] == XERIAL;
        Snappy {
            rest: if framed { &body[16..] } else { body },
            framed,
            block: Vec::new(),
            at: 0,
            limit,
        }
    }

    /// Decodes the next block into `self.block`; `false` at the end.
    fn next_block(&mut self) -> Result<bool, CodecError> {
        let err = |reason: &str| corrupt(2, reason);
        if self.rest.is_empty() {
            return Ok(false);
        }
        let raw = if self.framed {
            let len = self
                .rest
                .get(..4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
                .ok_or_else(|| err("truncated xerial block length"))?;
            let raw = self
                .rest
                .get(4..4 + len)
                .ok_or_else(|| err("truncated xerial block"))?;
            self.rest = &self.rest[4 + len..];
            raw
        } else {
            std::mem::take(&mut self.rest)
        };
        let n = snap::raw::decompress_len(raw).map_err(|e| corrupt(2, e))?;
        if n > self.limit {
            return Err(CodecError::TooLarge(self.limit));
        }
        self.block.clear();
        self.block.resize(n, 0);
        snap::raw::Decoder::new()
            .decompress(raw, &mut self.block)
            .map_err(|e| corrupt(2, e))?;
        self.at = 0;
        Ok(true)
    }
}

impl Read for Snappy<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.block.len() {
            if !self.next_block().map_err(CodecError::into_io)? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.block.len() - self.at);
        buf[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// zstd windows up to this are decoded whatever the caller's limit: encoders pick windows by
/// level (8 MiB at level 19), not by how much they compress.
const ZSTD_WINDOW_FLOOR: usize = 8 << 20;

/// Compresses a records section the way Kafka's clients do: gzip, snappy in xerial framing
/// (32 KiB blocks, as the Java client writes), lz4 frames with independent blocks, zstd.
pub fn compress(codec: i16, data: &[u8]) -> Result<Vec<u8>, CodecError> {
    use std::io::Write;
    let err = |e: std::io::Error| corrupt(codec, e);
    Ok(match codec {
        0 => data.to_vec(),
        1 => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).map_err(err)?;
            e.finish().map_err(err)?
        }
        2 => {
            let mut out = XERIAL.to_vec();
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            let mut enc = snap::raw::Encoder::new();
            for chunk in data.chunks(32 << 10) {
                let block = enc.compress_vec(chunk).map_err(|e| corrupt(2, e))?;
                out.extend_from_slice(&(block.len() as u32).to_be_bytes());
                out.extend_from_slice(&block);
            }
            out
        }
        3 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut e = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
            e.write_all(data).map_err(err)?;
            e.finish().map_err(|e| corrupt(3, e))?
        }
        4 => zstd::bulk::compress(data, 3).map_err(err)?,
        other => return Err(CodecError::Unknown(other)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn every_codec(plain: &[u8]) -> Vec<(i16, Vec<u8>)> {
        let raw_snappy = snap::raw::Encoder::new()
            .compress_vec(plain)
            .expect("snappy");
        let mut lz4 = lz4_flex::frame::FrameEncoder::new(Vec::new());
        lz4.write_all(plain).expect("lz4");
        vec![
            (0, plain.to_vec()),
            (1, compress(1, plain).expect("gzip")),
            (2, raw_snappy),
            (2, compress(2, plain).expect("xerial")),
            (3, lz4.finish().expect("lz4")),
            (3, compress(3, plain).expect("lz4 independent")),
            (4, compress(4, plain).expect("zstd")),
        ]
    }

    #[test]
    fn every_codec_streams_back_what_was_compressed() {
        let plain: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for (codec, body) in every_codec(&plain) {
            let mut out = Vec::new();
            let mut r = decoder(codec, &body, 8 << 20).expect("decoder");
            // small reads, as a record walker makes them
            let mut buf = [0u8; 333];
            loop {
                let n = r.read(&mut buf).expect("read");
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            assert_eq!(out, plain, "codec {codec}");
        }
    }

    #[test]
    fn concatenated_zstd_frames_are_one_section() {
        let mut body = compress(4, b"first ").expect("zstd");
        body.extend(compress(4, b"second").expect("zstd"));
        assert_eq!(
            decompress(4, &body, 1 << 20).expect("two frames"),
            b"first second"
        );
    }

    #[test]
    fn a_zstd_window_beyond_the_limit_is_refused_before_decoding() {
        // a streamed frame (no content size) declaring a 128 MiB window
        let plain = vec![9u8; 100_000];
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("encoder");
        e.window_log(27).expect("window log");
        e.write_all(&plain).expect("compress");
        let frame = e.finish().expect("finish");
        let refused = decompress(4, &frame, 32 << 20).expect_err("window too large");
        assert!(
            matches!(&refused, CodecError::Corrupt { reason, .. } if reason.contains("memory")),
            "{refused}"
        );
        assert_eq!(decompress(4, &frame, 256 << 20).expect("allowed"), plain);
        // windows up to 8 MiB are decoded even under a smaller limit (the limit is the output's)
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("encoder");
        e.window_log(23).expect("window log");
        e.write_all(&plain).expect("compress");
        let frame = e.finish().expect("finish");
        assert_eq!(decompress(4, &frame, 1 << 20).expect("8 MiB window"), plain);
    }

    #[test]
    fn undefined_codecs_and_bombs_are_refused() {
        for c in 5..=7 {
            assert_eq!(decompress(c, b"x", 10).err(), Some(CodecError::Unknown(c)));
        }
        let zeros = vec![0u8; 1 << 20];
        for (codec, body) in every_codec(&zeros).into_iter().filter(|(c, _)| *c != 0) {
            assert_eq!(
                decompress(codec, &body, 1000).err(),
                Some(CodecError::TooLarge(1000)),
                "codec {codec}"
            );
        }
    }

    proptest::proptest! {
        /// Garbage behind every codec is an error or some bytes, never a panic or an unbounded
        /// allocation.
        #[test]
        fn garbage_is_an_error_not_a_panic(
            codec in 1i16..=4,
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
        ) {
            let _ = decompress(codec, &body, 1 << 20);
        }
    }
}
