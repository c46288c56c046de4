use super::*;
use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::RequestHeader;
use kafka_protocol::protocol::Encodable;
use proptest::prelude::*;

fn frame_with_header(api: ApiKey, version: i16, body: &[u8]) -> Bytes {
    let mut buf = BytesMut::new();
    let mut h = RequestHeader::default();
    h.request_api_key = api as i16;
    h.request_api_version = version;
    h.correlation_id = 42;
    h.client_id = Some(StrBytes::from_static_str("test"));
    h.encode(&mut buf, api.request_header_version(version))
        .expect("header");
    buf.put_slice(body);
    buf.freeze()
}

use kafka_protocol::protocol::StrBytes;

#[test]
fn huge_claimed_array_count_is_an_error_not_an_abort() {
    // Metadata v0 body: topics array claiming 2^31-1 entries, then nothing.
    let frame = frame_with_header(ApiKey::Metadata, 0, &i32::MAX.to_be_bytes());
    match decode_request(frame) {
        Err(DecodeError::Malformed { .. }) => {}
        other => panic!("expected malformed, got {other:?}"),
    }
    // Produce v3: null transactional id, acks, timeout, topics claiming 2^31-1 entries
    let mut body = Vec::new();
    body.extend((-1i16).to_be_bytes());
    body.extend(1i16.to_be_bytes());
    body.extend(1000i32.to_be_bytes());
    body.extend(i32::MAX.to_be_bytes());
    assert!(decode_request(frame_with_header(ApiKey::Produce, 3, &body)).is_err());
}

#[test]
fn api_versions_above_max_gets_the_fallback() {
    let frame = frame_with_header(ApiKey::ApiVersions, 3, &[1, 1, 0]);
    assert!(decode_request(frame).is_ok());
    let mut raw = BytesMut::new();
    raw.put_i16(ApiKey::ApiVersions as i16);
    raw.put_i16(99);
    raw.put_i32(7);
    raw.put_slice(&[0, 0, 0, 0]);
    match decode_request(raw.freeze()) {
        Err(DecodeError::ApiVersionsUnsupported {
            version: 99,
            correlation_id: 7,
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_and_unsupported_apis_are_refused() {
    let mut raw = BytesMut::new();
    raw.put_i16(9999);
    raw.put_i16(0);
    raw.put_i32(1);
    assert!(matches!(
        decode_request(raw.freeze()),
        Err(DecodeError::UnknownApiKey(9999))
    ));
    let frame = frame_with_header(ApiKey::Fetch, 18, &[]);
    assert!(matches!(
        decode_request(frame),
        Err(DecodeError::UnsupportedVersion { .. })
    ));
    assert!(matches!(
        decode_request(Bytes::from_static(&[0, 1])),
        Err(DecodeError::Truncated(2))
    ));
}

#[test]
fn request_roundtrip_through_the_codec() {
    let mut req = MetadataRequest::default();
    let mut t = kafka_protocol::messages::metadata_request::MetadataRequestTopic::default();
    t.name = Some(TopicName(StrBytes::from_static_str("orders")));
    req.topics = Some(vec![t]);
    for v in 0..=12 {
        let mut body = BytesMut::new();
        req.encode(&mut body, v).expect("encode");
        let (ctx, decoded) =
            decode_request(frame_with_header(ApiKey::Metadata, v, &body)).expect("decode");
        assert_eq!(ctx.correlation_id, 42);
        assert_eq!(ctx.api_version, v);
        match decoded {
            Request::Metadata(m) => {
                let names: Vec<String> = m
                    .topics
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
                    .collect();
                assert_eq!(names, vec!["orders".to_string()]);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn response_frames_carry_length_and_correlation_id() {
    let ctx = RequestContext {
        api_key: ApiKey::ApiVersions,
        api_version: 3,
        correlation_id: 99,
        client_id: None,
    };
    let body = crate::api::api_versions_response(0, 2, true);
    let bytes = encode_response(&ctx, &Response::ApiVersions(body)).expect("encode");
    let len = i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    assert_eq!(len + 4, bytes.len());
    assert_eq!(
        i32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
        99
    );
    // ApiVersions responses use header v0 even when flexible: error code follows directly
    assert_eq!(i16::from_be_bytes([bytes[8], bytes[9]]), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any body after a valid header, for every supported API and version, decodes or errors.
    #[test]
    fn arbitrary_bodies_never_panic_or_abort(
        which in 0usize..versions::SUPPORTED.len(),
        vsel in 0i16..16,
        body in proptest::collection::vec(any::<u8>(), 0..128),
    ) {
        let (api, min, max) = versions::SUPPORTED[which];
        let v = min + vsel % (max - min + 1);
        let _ = decode_request(frame_with_header(api, v, &body));
    }

    /// Arbitrary whole frames, header included.
    #[test]
    fn arbitrary_frames_never_panic_or_abort(frame in proptest::collection::vec(any::<u8>(), 0..96)) {
        let _ = decode_request(Bytes::from(frame));
    }

    /// Bodies that claim large array counts anywhere (big-endian i32 near 2^31 sprinkled in).
    #[test]
    fn large_counts_anywhere_never_abort(
        which in 0usize..versions::SUPPORTED.len(),
        pos in 0usize..36,
        body in proptest::collection::vec(any::<u8>(), 40..80),
    ) {
        let (api, min, max) = versions::SUPPORTED[which];
        let mut body = body;
        body[pos..pos + 4].copy_from_slice(&0x7fff_fff0i32.to_be_bytes());
        for v in min..=max {
            let _ = decode_request(frame_with_header(api, v, &body));
        }
    }
}

#[test]
fn api_names_match_the_key_names() {
    for &api in IMPLEMENTED {
        assert_eq!(api_name(api), format!("{api:?}"));
    }
}

/// A Fetch response with record sets large and small, absent and empty, aborted transactions
/// and (where the version has them) tagged fields and node endpoints.
fn fetch_response(version: i16, records: &[Option<Bytes>]) -> FetchResponse {
    use kafka_protocol::messages::fetch_response::*;
    let mut r = FetchResponse::default();
    r.throttle_time_ms = 3;
    r.session_id = if version >= 7 { 77 } else { 0 };
    for (t, chunk) in records.chunks(2).enumerate() {
        let mut topic = FetchableTopicResponse::default();
        if version >= 13 {
            topic.topic_id = uuid::Uuid::from_u128(t as u128 + 1);
        } else {
            topic.topic = TopicName(StrBytes::from_string(format!("topic-{t}")));
        }
        for (i, rec) in chunk.iter().enumerate() {
            let mut p = PartitionData::default();
            p.partition_index = i as i32;
            p.high_watermark = 1000 + i as i64;
            p.last_stable_offset = 900;
            p.log_start_offset = 5;
            let mut a = AbortedTransaction::default();
            a.producer_id = ProducerId(9);
            a.first_offset = 42;
            p.aborted_transactions = Some(vec![a]);
            if version >= 12 {
                p.current_leader.leader_id = BrokerId(1);
                p.current_leader.leader_epoch = 4;
            }
            p.records = rec.clone();
            topic.partitions.push(p);
        }
        r.responses.push(topic);
    }
    if version >= 16 {
        let mut n = NodeEndpoint::default();
        n.node_id = BrokerId(1);
        n.host = StrBytes::from_static_str("127.0.0.1");
        n.port = 9092;
        r.node_endpoints.push(n);
    }
    r
}

#[test]
fn a_fetch_response_in_chunks_is_the_same_frame_with_its_records_shared() {
    let big = |n: usize, fill: u8| Some(Bytes::from(vec![fill; n]));
    let records = vec![
        big(5000, 1),
        Some(Bytes::from_static(b"small")),
        None,
        big(chunked::MIN_SHARED, 2),
        Some(Bytes::new()),
        big(70_000, 3),
        // the same bytes twice: each partition's own slice is kept
        big(5000, 1),
    ];
    for version in 4..=17 {
        let resp = Response::Fetch(fetch_response(version, &records));
        let ctx = RequestContext {
            api_key: ApiKey::Fetch,
            api_version: version,
            correlation_id: 9,
            client_id: None,
        };
        let whole = encode_response(&ctx, &resp).expect("encodes");
        let chunks = encode_response_chunks(&ctx, &resp, &[]).expect("encodes in chunks");
        let joined = join(&chunks);
        assert_eq!(joined, whole.to_vec(), "v{version}");
        let Response::Fetch(f) = &resp else {
            unreachable!()
        };
        let shared = f
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .filter_map(|p| p.records.as_ref())
            .filter(|r| r.len() >= chunked::MIN_SHARED)
            .filter(|r| {
                chunks
                    .iter()
                    .any(|c| matches!(c, Chunk::Mem(c) if c.as_ptr() == r.as_ptr()))
            })
            .count();
        assert_eq!(
            shared, 4,
            "v{version}: every large record set is sent by reference"
        );
    }
}

#[test]
fn responses_without_large_records_are_one_chunk() {
    let ctx = RequestContext {
        api_key: ApiKey::Fetch,
        api_version: 12,
        correlation_id: 1,
        client_id: None,
    };
    let resp = Response::Fetch(fetch_response(12, &[Some(Bytes::from_static(b"x")), None]));
    let chunks = encode_response_chunks(&ctx, &resp, &[]).expect("encodes");
    assert_eq!(chunks.len(), 1);
    assert_eq!(
        join(&chunks),
        encode_response(&ctx, &resp).expect("encodes")
    );
}

/// The bytes of a response's chunks, file slices read.
fn join(chunks: &[Chunk]) -> Vec<u8> {
    chunks
        .iter()
        .flat_map(|c| match c {
            Chunk::Mem(b) => b.to_vec(),
            Chunk::File(f) => f.read().expect("reads the slice").to_vec(),
        })
        .collect()
}

#[test]
fn a_fetch_response_with_file_slices_is_the_frame_the_codec_writes_for_their_bytes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("segment");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 241) as u8).collect();
    std::fs::write(&path, &data).expect("writes");
    let file = std::sync::Arc::new(std::fs::File::open(&path).expect("opens"));
    let files: Vec<crate::fs::FileSlice> = [(0u64, 20_000usize), (50_001, 100_000), (7, 4096)]
        .iter()
        .map(|&(pos, len)| crate::fs::FileSlice {
            file: file.clone(),
            pos,
            len,
        })
        .collect();
    let real = |i: usize| {
        let f = &files[i];
        Some(Bytes::copy_from_slice(
            &data[f.pos as usize..f.pos as usize + f.len],
        ))
    };
    let stand_in = |i: usize| Some(placeholder(i, files[i].len).expect("a placeholder"));
    for version in 4..=17 {
        let ctx = RequestContext {
            api_key: ApiKey::Fetch,
            api_version: version,
            correlation_id: 3,
            client_id: None,
        };
        // the same partitions, once with the real bytes, once with placeholders for the files
        let with_bytes = [
            real(0),
            Some(Bytes::from(vec![9u8; 6000])),
            None,
            real(1),
            real(2),
        ];
        let mixed = [
            stand_in(0),
            with_bytes[1].clone(),
            None,
            stand_in(1),
            stand_in(2),
        ];
        let whole = encode_response(&ctx, &Response::Fetch(fetch_response(version, &with_bytes)))
            .expect("encodes");
        let resp = Response::Fetch(fetch_response(version, &mixed));
        let chunks = encode_response_chunks(&ctx, &resp, &files).expect("encodes in chunks");
        assert_eq!(join(&chunks), whole.to_vec(), "v{version}");
        let sent_from_files = chunks
            .iter()
            .filter(|c| matches!(c, Chunk::File(_)))
            .count();
        assert_eq!(sent_from_files, 3, "v{version}");
        // a placeholder without its file slice is an error, never zeros on the wire
        assert!(encode_response_chunks(&ctx, &resp, &files[..1]).is_err());
    }
}
