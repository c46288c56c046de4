//! Transaction markers: the control batches a transaction coordinator writes into each partition
//! of a transaction to commit or abort it. One control record per batch: key (version `i16` 0,
//! type `i16`: 0 abort, 1 commit), value (version `i16` 0, coordinator epoch `i32`).

use super::batch::{self, HEADER_LEN};

/// Marker types, as the control record's key says.
const ABORT: i16 = 0;
const COMMIT: i16 = 1;

/// Batch attributes of a marker: transactional | control.
pub const ATTRIBUTES: i16 = 0x10 | 0x20;

/// A control batch ending `producer_id`'s transaction (offset 0; the log assigns the real one).
pub fn marker_batch(
    producer_id: i64,
    epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    now_ms: i64,
) -> Vec<u8> {
    let mut key = 0i16.to_be_bytes().to_vec(); // key version
    key.extend_from_slice(&(if commit { COMMIT } else { ABORT }).to_be_bytes());
    let mut value = 0i16.to_be_bytes().to_vec(); // value version
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let mut body = Vec::with_capacity(32);
    super::records::put_record(&mut body, 0, Some(&key), Some(&value));
    super::records::new_batch(ATTRIBUTES, (producer_id, epoch), 1, now_ms, &body)
}

/// Whether a whole control batch is a commit (`Some(true)`) or abort (`Some(false)`) marker;
/// `None` for other control records or a malformed one.
pub fn marker_kind(whole_batch: &[u8]) -> Option<bool> {
    let b = whole_batch.get(HEADER_LEN..)?;
    let mut pos = 0;
    let _len = batch::read_varint(b, &mut pos)?;
    pos += 1; // attributes
    batch::read_varint(b, &mut pos)?; // timestamp delta
    batch::read_varint(b, &mut pos)?; // offset delta
    let key_len = batch::read_varint(b, &mut pos)?;
    if key_len < 4 {
        return None;
    }
    let key = b.get(pos..pos + 4)?;
    match i16::from_be_bytes([key[2], key[3]]) {
        COMMIT => Some(true),
        ABORT => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_valid_control_batches_of_their_kind() {
        for commit in [true, false] {
            let b = marker_batch(42, 3, commit, 0, 1000);
            let h = batch::validate(&b).expect("a valid batch");
            assert!(h.is_control() && h.is_transactional());
            assert_eq!((h.producer_id, h.producer_epoch), (42, 3));
            assert_eq!(marker_kind(&b), Some(commit));
        }
        assert_eq!(marker_kind(&[0u8; 10]), None);
    }
}
