//! Any bytes as a produced record batch: refused, or accepted with records every reader can
//! parse (the count the header declares, offset deltas 0..n). The first byte picks the rules;
//! the batch length and CRC are made right (when the bytes hold a header) so the fuzzer gets
//! past them into the records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tiercel::format::{batch, records, validate};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, batch)) = data.split_first() else {
        return;
    };
    let mut batch = batch.to_vec();
    if batch.len() >= batch::HEADER_LEN {
        let len = (batch.len() - batch::LOG_OVERHEAD) as i32;
        batch[8..12].copy_from_slice(&len.to_be_bytes());
        batch[16] = 2;
        let crc = batch::compute_crc(&batch);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    let batch = batch.as_slice();
    let rules = validate::Rules {
        max_batch_bytes: 1 << 20,
        max_uncompressed: 4 << 20,
        keys_required: pick & 1 != 0,
        timestamps: (pick & 2 != 0).then_some((0, i64::MAX / 2)),
    };
    let Ok(h) = validate::client_batch(batch, &rules) else {
        return;
    };
    let section = records::records_section(batch, rules.max_uncompressed)
        .expect("an accepted batch decompresses within its cap");
    let recs = records::parse(&section, h.record_count).expect("an accepted batch parses");
    assert_eq!(recs.len(), h.record_count as usize);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.offset_delta as usize, i, "offset deltas run 0..n");
        if rules.keys_required {
            assert!(r.key.is_some(), "compacted topics get keys");
        }
    }
});
