use super::*;
use crate::format::batch::put_varint;
use crate::format::records;
use proptest::prelude::*;

const NOW: i64 = 1_700_000_000_000;

fn rules() -> Rules {
    Rules {
        max_batch_bytes: 1 << 20,
        max_uncompressed: 32 << 20,
        keys_required: false,
        timestamps: None,
    }
}

/// One record as a client encodes it.
fn record(
    offset_delta: i64,
    ts_delta: i64,
    key: Option<&[u8]>,
    headers: &[(&[u8], &[u8])],
) -> Vec<u8> {
    let mut r = vec![0u8];
    put_varint(&mut r, ts_delta);
    put_varint(&mut r, offset_delta);
    match key {
        Some(k) => {
            put_varint(&mut r, k.len() as i64);
            r.extend_from_slice(k);
        }
        None => put_varint(&mut r, -1),
    }
    put_varint(&mut r, 5);
    r.extend_from_slice(b"value");
    put_varint(&mut r, headers.len() as i64);
    for (k, v) in headers {
        put_varint(&mut r, k.len() as i64);
        r.extend_from_slice(k);
        put_varint(&mut r, v.len() as i64);
        r.extend_from_slice(v);
    }
    let mut out = Vec::new();
    put_varint(&mut out, r.len() as i64);
    out.extend(r);
    out
}

/// `n` well-formed records, timestamps NOW, NOW+1, …
fn section(n: i64) -> Vec<u8> {
    (0..n)
        .flat_map(|i| record(i, i, Some(format!("k{i}").as_bytes()), &[(b"h", b"v")]))
        .collect()
}

/// A client batch around `body` declaring `count` records (CRC computed).
fn batch_of(codec: i16, body: &[u8], count: i32, max_ts: i64) -> Vec<u8> {
    let h = BatchHeader {
        base_offset: 0,
        batch_length: 0,
        magic: 2,
        crc: 0,
        attributes: 0,
        last_offset_delta: count.wrapping_sub(1),
        base_timestamp: NOW,
        max_timestamp: max_ts,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        record_count: count,
    };
    records::write_batch(&h, codec, max_ts, count, body)
}

fn plain(body: &[u8], count: i32) -> Vec<u8> {
    batch_of(0, body, count, NOW + count as i64 - 1)
}

fn refused(b: &[u8]) -> Invalid {
    client_batch(b, &rules()).expect_err("refused")
}

#[test]
fn well_formed_batches_pass_under_every_codec() {
    let s = section(50);
    for codec in 0..=4 {
        let body = codec::compress(codec, &s).expect("compress");
        let b = batch_of(codec, &body, 50, NOW + 49);
        let h = client_batch(&b, &rules()).expect("valid");
        assert_eq!((h.record_count, h.compression()), (50, codec));
    }
    // null keys and values, no headers, negative timestamp deltas
    let mut s = record(0, 0, None, &[]);
    s.extend(record(1, -5, Some(b""), &[]));
    client_batch(&plain(&s, 2), &rules()).expect("valid");
}

#[test]
fn the_records_must_be_what_the_header_says() {
    let s = section(4);
    // more records declared than present (the 2^31 - 1 case included)
    assert!(matches!(
        refused(&plain(&s, 5)),
        Invalid::Record { index: 4, .. }
    ));
    let huge = batch_of(0, &s, i32::MAX, NOW + 3);
    assert!(matches!(refused(&huge), Invalid::Record { index: 4, .. }));
    // fewer declared than present: trailing bytes
    assert!(matches!(refused(&plain(&s, 3)), Invalid::Batch(_)));
    // garbage after the last record
    let mut g = s.clone();
    g.extend_from_slice(b"\x00\x01garbage");
    assert!(matches!(refused(&plain(&g, 4)), Invalid::Batch(_)));
    // truncated mid-record
    let cut = &s[..s.len() - 3];
    assert!(matches!(
        refused(&plain(cut, 4)),
        Invalid::Record { index: 3, .. }
    ));
    // offset deltas out of step with the count
    let mut skipped = record(0, 0, Some(b"a"), &[]);
    skipped.extend(record(2, 0, Some(b"b"), &[]));
    let e = refused(&batch_of(0, &skipped, 2, NOW));
    assert!(
        matches!(&e, Invalid::Record { index: 1, reason } if reason.contains("offset delta")),
        "{e}"
    );
}

#[test]
fn lengths_and_varints_out_of_range_are_refused() {
    let one = |raw: &[u8]| refused(&plain(raw, 1));
    // negative record length
    let mut r = Vec::new();
    put_varint(&mut r, -7);
    assert!(matches!(one(&r), Invalid::Record { index: 0, .. }));
    // a length of 2^31 does not fit an int varint
    let mut r = Vec::new();
    put_varint(&mut r, 1 << 31);
    r.extend_from_slice(&[0; 16]);
    assert!(matches!(one(&r), Invalid::Record { index: 0, .. }));
    // an overlong varint (six continuation bytes)
    let r = [0xffu8, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0, 0];
    assert!(matches!(one(&r), Invalid::Record { index: 0, .. }));
    // a record length larger than the section
    let mut r = Vec::new();
    put_varint(&mut r, 1000);
    r.extend(&record(0, 0, Some(b"k"), &[])[1..]);
    assert!(matches!(one(&r), Invalid::Record { index: 0, .. }));
    // a key running past the record's own length, with the next record behind it
    let good = record(0, 0, Some(b"key"), &[]);
    let mut lying = good.clone();
    let key_len_at = 1 + 1 + 1 + 1; // length, attributes, ts delta, offset delta
    lying[key_len_at] = 40; // key length 20
    lying.extend(record(1, 0, Some(b"padding-padding-padding"), &[]));
    let e = refused(&batch_of(0, &lying, 2, NOW));
    assert!(
        matches!(&e, Invalid::Record { index: 0, reason } if reason.contains("key")),
        "{e}"
    );
    // a negative header key length, and a negative header count
    let mut r = record(0, 0, Some(b"k"), &[(b"hk", b"hv")]);
    let hk = r.len() - 6; // varint(2) "hk" varint(2) "hv"
    r[hk] = 3; // -2
    assert!(matches!(one(&r), Invalid::Record { index: 0, .. }));
    let mut r = record(0, 0, Some(b"k"), &[]);
    let last = r.len() - 1;
    r[last] = 1; // header count -1
    assert!(matches!(one(&r), Invalid::Record { index: 0, .. }));
    // a record longer than its fields
    let mut r = record(0, 0, Some(b"k"), &[]);
    r[0] += 2;
    r.extend_from_slice(&[0, 0]);
    let e = one(&r);
    assert!(
        matches!(&e, Invalid::Record { reason, .. } if reason.contains("does not match")),
        "{e}"
    );
}

#[test]
fn timestamps_must_be_within_the_topic_bounds() {
    let s = section(3); // NOW, NOW+1, NOW+2
                        // the max timestamp is the records', whatever the header says (Kafka rewrites it; some
                        // clients send -1)
    for header_max in [NOW + 1, -1, NOW + 99] {
        let h = client_batch(&batch_of(0, &s, 3, header_max), &rules()).expect("accepted");
        assert_eq!(h.max_timestamp, NOW + 2, "header said {header_max}");
    }
    let strict = Rules {
        timestamps: Some((NOW + 1, NOW + 10)),
        ..rules()
    };
    let e = client_batch(&plain(&s, 3), &strict).expect_err("first record too early");
    assert!(
        matches!(&e, Invalid::Timestamp(m) if m.contains("record 0")),
        "{e}"
    );
    let late = Rules {
        timestamps: Some((0, NOW + 1)),
        ..rules()
    };
    assert!(matches!(
        client_batch(&plain(&s, 3), &late),
        Err(Invalid::Timestamp(_))
    ));
    let overflow = record(0, i64::MAX, Some(b"k"), &[]);
    assert!(matches!(
        refused(&plain(&overflow, 1)),
        Invalid::Record { .. }
    ));
}

#[test]
fn compressed_garbage_and_undefined_codecs_are_corrupt() {
    for codec in 1..=7 {
        let b = batch_of(codec, b"this is not compressed data at all", 1, NOW);
        let e = refused(&b);
        assert!(matches!(e, Invalid::Codec(_)), "codec {codec}: {e}");
    }
    // a valid stream of the wrong records is as invalid as the plain one
    let mut wrong = section(3);
    wrong.extend_from_slice(b"trailing");
    for codec in 1..=4 {
        let body = codec::compress(codec, &wrong).expect("compress");
        assert!(matches!(
            refused(&batch_of(codec, &body, 3, NOW + 2)),
            Invalid::Batch(_)
        ));
        let body = codec::compress(codec, &section(3)).expect("compress");
        assert!(matches!(
            refused(&batch_of(codec, &body, 4, NOW + 3)),
            Invalid::Record { index: 3, .. }
        ));
    }
}

#[test]
fn a_decompression_bomb_stops_at_the_cap() {
    // one record whose value is 16 MiB of zeros, compressed to well under max.message.bytes
    let mut r = vec![0u8, 0, 0];
    put_varint(&mut r, -1);
    put_varint(&mut r, 16 << 20);
    r.resize(r.len() + (16 << 20), 0);
    put_varint(&mut r, 0);
    let mut rec = Vec::new();
    put_varint(&mut rec, r.len() as i64);
    rec.extend(r);
    let capped = Rules {
        max_uncompressed: 8 << 20,
        ..rules()
    };
    for codec in 1..=4 {
        let body = codec::compress(codec, &rec).expect("compress");
        let b = batch_of(codec, &body, 1, NOW);
        assert_eq!(
            client_batch(&b, &capped),
            Err(Invalid::UncompressedTooLarge { max: 8 << 20 }),
            "codec {codec}"
        );
        client_batch(&b, &rules()).expect("within the default cap");
    }
}

#[test]
fn header_rules() {
    let s = section(2);
    let mut b = plain(&s, 2);
    assert!(matches!(
        client_batch(
            &b,
            &Rules {
                max_batch_bytes: 10,
                ..rules()
            }
        ),
        Err(Invalid::TooLarge { .. })
    ));
    b[30] ^= 1; // inside the CRC
    assert!(matches!(
        refused(&b),
        Invalid::Corrupt(BatchError::BadCrc { .. })
    ));
    // an idempotent batch needs a sequence
    let mut b = plain(&s, 2);
    b[43..51].copy_from_slice(&7i64.to_be_bytes());
    let crc = batch::compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(refused(&b), Invalid::Batch(m) if m.contains("sequence")));
}

#[test]
fn keyless_records_are_named_on_compacted_topics() {
    let mut s = record(0, 0, Some(b"a"), &[]);
    s.extend(record(1, 0, None, &[]));
    s.extend(record(2, 0, Some(b"c"), &[]));
    s.extend(record(3, 0, None, &[]));
    let b = batch_of(0, &s, 4, NOW);
    client_batch(&b, &rules()).expect("keys not required");
    let compact = Rules {
        keys_required: true,
        ..rules()
    };
    assert_eq!(
        client_batch(&b, &compact),
        Err(Invalid::Keyless(vec![1, 3]))
    );
}

proptest! {
    /// Any change to a valid batch's records (CRC recomputed, so only the walk can catch it)
    /// is refused or leaves records every reader can parse: never a panic.
    #[test]
    fn mutated_records_are_refused_or_readable(
        n in 1i64..20,
        codec in 0i16..=4,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut s = section(n);
        for (at, v) in &flips {
            let i = at.index(s.len());
            s[i] = *v;
        }
        if truncate {
            s.truncate(cut.index(s.len()));
        }
        let body = codec::compress(codec, &s).expect("compress");
        let b = batch_of(codec, &body, n as i32, NOW + n);
        if let Ok(h) = client_batch(&b, &rules()) {
            let section = records::records_section(&b, 1 << 20).expect("decompresses");
            let recs = records::parse(&section, h.record_count).expect("parses");
            prop_assert_eq!(recs.len() as i64, n);
            for (i, r) in recs.iter().enumerate() {
                prop_assert_eq!(r.offset_delta as usize, i);
            }
        }
    }
}
