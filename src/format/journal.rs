//! The journal file format: a sequence of framed records, `u32` length, `u32` CRC-32C of the
//! body, then the body (JSON). A reader keeps the longest valid prefix: a torn or corrupt
//! tail ends it. Used by the group offsets and the transaction log (see `crate::journal`).

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io;

pub fn encode<R: Serialize>(r: &R, out: &mut Vec<u8>) -> io::Result<()> {
    let json = serde_json::to_vec(r).map_err(io::Error::other)?;
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&json).to_be_bytes());
    out.extend_from_slice(&json);
    Ok(())
}

/// Decodes the valid prefix of a file: the records and the length they span.
pub fn decode_prefix<R: DeserializeOwned>(bytes: &[u8]) -> (Vec<R>, usize) {
    let mut pos = 0;
    let mut out = Vec::new();
    while bytes.len() - pos >= 8 {
        let word = |at: usize| {
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let (len, crc) = (word(pos) as usize, word(pos + 4));
        let Some(body) = bytes.get(pos + 8..pos + 8 + len) else {
            break;
        };
        if crc32c::crc32c(body) != crc {
            break;
        }
        let Ok(r) = serde_json::from_slice::<R>(body) else {
            break;
        };
        out.push(r);
        pos += 8 + len;
    }
    (out, pos)
}
