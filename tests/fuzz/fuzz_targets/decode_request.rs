//! Any bytes as a request frame (after its length prefix): decoded or refused, never a panic,
//! an abort or an unbounded allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    let _ = tiercel::protocol::decode_request(bytes::Bytes::copy_from_slice(frame));
});
