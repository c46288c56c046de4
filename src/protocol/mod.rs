//! Frames ↔ typed requests and responses.
//!
//! The only module besides `api` that touches `kafka-protocol` wire types. Decoding is guarded:
//! the header is bounds-checked before the codec sees it, versions outside the supported table
//! are refused before the body is decoded, the codec runs inside `catch_unwind`, and oversized
//! claimed array counts are made harmless by the process allocator (see `crate::alloc`).

mod chunked;
pub mod client;
pub mod versions;

pub use chunked::{placeholder, placeholder_index, Chunk, PLACEHOLDER_MAX};

use crate::fs::FileSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};

/// Declares every implemented API once: the typed `Request` and `Response` enums, body
/// decoding and response encoding are generated from this list (the version ranges live in
/// `versions::SUPPORTED`, checked against this list by a test).
macro_rules! apis {
    ($($api:ident: $req:ident => $resp:ident),* $(,)?) => {
        /// A decoded request of an implemented API.
        #[derive(Debug)]
        pub enum Request { $($api($req)),* }

        /// A response to encode.
        #[derive(Debug)]
        pub enum Response { $($api($resp)),* }

        /// The API keys this broker decodes.
        pub const IMPLEMENTED: &[ApiKey] = &[$(ApiKey::$api),*];

        /// The name of an implemented API, for logs and metric labels (no allocation).
        pub fn api_name(api: ApiKey) -> &'static str {
            match api {
                $(ApiKey::$api => stringify!($api),)*
                _ => "Other",
            }
        }

        fn decode_body(api: ApiKey, buf: &mut Bytes, v: i16) -> anyhow::Result<Request> {
            Ok(match api {
                $(ApiKey::$api => Request::$api($req::decode(buf, v)?),)*
                other => anyhow::bail!("no decoder for {other:?}"),
            })
        }

        fn encode_body(response: &Response, buf: &mut BytesMut, v: i16) -> anyhow::Result<()> {
            match response {
                $(Response::$api(r) => r.encode(buf, v),)*
            }
        }
    };
}

apis! {
    ApiVersions: ApiVersionsRequest => ApiVersionsResponse,
    Metadata: MetadataRequest => MetadataResponse,
    Produce: ProduceRequest => ProduceResponse,
    Fetch: FetchRequest => FetchResponse,
    ListOffsets: ListOffsetsRequest => ListOffsetsResponse,
    CreateTopics: CreateTopicsRequest => CreateTopicsResponse,
    DeleteTopics: DeleteTopicsRequest => DeleteTopicsResponse,
    CreatePartitions: CreatePartitionsRequest => CreatePartitionsResponse,
    DescribeConfigs: DescribeConfigsRequest => DescribeConfigsResponse,
    DescribeCluster: DescribeClusterRequest => DescribeClusterResponse,
    DescribeTopicPartitions: DescribeTopicPartitionsRequest => DescribeTopicPartitionsResponse,
    AlterPartitionReassignments: AlterPartitionReassignmentsRequest => AlterPartitionReassignmentsResponse,
    ListPartitionReassignments: ListPartitionReassignmentsRequest => ListPartitionReassignmentsResponse,
    ElectLeaders: ElectLeadersRequest => ElectLeadersResponse,
    FindCoordinator: FindCoordinatorRequest => FindCoordinatorResponse,
    JoinGroup: JoinGroupRequest => JoinGroupResponse,
    SyncGroup: SyncGroupRequest => SyncGroupResponse,
    Heartbeat: HeartbeatRequest => HeartbeatResponse,
    LeaveGroup: LeaveGroupRequest => LeaveGroupResponse,
    OffsetCommit: OffsetCommitRequest => OffsetCommitResponse,
    OffsetFetch: OffsetFetchRequest => OffsetFetchResponse,
    DescribeGroups: DescribeGroupsRequest => DescribeGroupsResponse,
    ListGroups: ListGroupsRequest => ListGroupsResponse,
    DeleteGroups: DeleteGroupsRequest => DeleteGroupsResponse,
    ConsumerGroupHeartbeat: ConsumerGroupHeartbeatRequest => ConsumerGroupHeartbeatResponse,
    ConsumerGroupDescribe: ConsumerGroupDescribeRequest => ConsumerGroupDescribeResponse,
    OffsetDelete: OffsetDeleteRequest => OffsetDeleteResponse,
    InitProducerId: InitProducerIdRequest => InitProducerIdResponse,
    AlterConfigs: AlterConfigsRequest => AlterConfigsResponse,
    IncrementalAlterConfigs: IncrementalAlterConfigsRequest => IncrementalAlterConfigsResponse,
    DeleteRecords: DeleteRecordsRequest => DeleteRecordsResponse,
    DescribeLogDirs: DescribeLogDirsRequest => DescribeLogDirsResponse,
    AddPartitionsToTxn: AddPartitionsToTxnRequest => AddPartitionsToTxnResponse,
    AddOffsetsToTxn: AddOffsetsToTxnRequest => AddOffsetsToTxnResponse,
    EndTxn: EndTxnRequest => EndTxnResponse,
    TxnOffsetCommit: TxnOffsetCommitRequest => TxnOffsetCommitResponse,
    DescribeProducers: DescribeProducersRequest => DescribeProducersResponse,
    DescribeTransactions: DescribeTransactionsRequest => DescribeTransactionsResponse,
    ListTransactions: ListTransactionsRequest => ListTransactionsResponse,
    OffsetForLeaderEpoch: OffsetForLeaderEpochRequest => OffsetForLeaderEpochResponse,
    WriteTxnMarkers: WriteTxnMarkersRequest => WriteTxnMarkersResponse,
    SaslHandshake: SaslHandshakeRequest => SaslHandshakeResponse,
    SaslAuthenticate: SaslAuthenticateRequest => SaslAuthenticateResponse,
    DescribeUserScramCredentials: DescribeUserScramCredentialsRequest => DescribeUserScramCredentialsResponse,
    AlterUserScramCredentials: AlterUserScramCredentialsRequest => AlterUserScramCredentialsResponse,
    CreateAcls: CreateAclsRequest => CreateAclsResponse,
    DescribeAcls: DescribeAclsRequest => DescribeAclsResponse,
    DeleteAcls: DeleteAclsRequest => DeleteAclsResponse,
    DescribeClientQuotas: DescribeClientQuotasRequest => DescribeClientQuotasResponse,
    AlterClientQuotas: AlterClientQuotasRequest => AlterClientQuotasResponse,
    GetTelemetrySubscriptions: GetTelemetrySubscriptionsRequest => GetTelemetrySubscriptionsResponse,
    PushTelemetry: PushTelemetryRequest => PushTelemetryResponse,
    ShareGroupHeartbeat: ShareGroupHeartbeatRequest => ShareGroupHeartbeatResponse,
    ShareGroupDescribe: ShareGroupDescribeRequest => ShareGroupDescribeResponse,
    ShareFetch: ShareFetchRequest => ShareFetchResponse,
    ShareAcknowledge: ShareAcknowledgeRequest => ShareAcknowledgeResponse,
    DescribeShareGroupOffsets: DescribeShareGroupOffsetsRequest => DescribeShareGroupOffsetsResponse,
    AlterShareGroupOffsets: AlterShareGroupOffsetsRequest => AlterShareGroupOffsetsResponse,
    DeleteShareGroupOffsets: DeleteShareGroupOffsetsRequest => DeleteShareGroupOffsetsResponse,
}

/// Raises a response's `throttle_time_ms` to `ms` (a response without the field, or at a
/// version without it, is sent as it is).
pub fn throttle(response: &mut Response, ms: i32) {
    macro_rules! throttled {
        ($($api:ident),* $(,)?) => {
            match response {
                $(Response::$api(r) => r.throttle_time_ms = r.throttle_time_ms.max(ms),)*
                Response::WriteTxnMarkers(_)
                | Response::SaslHandshake(_)
                | Response::SaslAuthenticate(_) => {}
            }
        };
    }
    throttled!(
        ApiVersions,
        Metadata,
        Produce,
        Fetch,
        ListOffsets,
        CreateTopics,
        DeleteTopics,
        CreatePartitions,
        DescribeConfigs,
        DescribeCluster,
        DescribeTopicPartitions,
        AlterPartitionReassignments,
        ListPartitionReassignments,
        ElectLeaders,
        FindCoordinator,
        JoinGroup,
        SyncGroup,
        Heartbeat,
        LeaveGroup,
        OffsetCommit,
        OffsetFetch,
        DescribeGroups,
        ListGroups,
        DeleteGroups,
        ConsumerGroupHeartbeat,
        ConsumerGroupDescribe,
        OffsetDelete,
        InitProducerId,
        AlterConfigs,
        IncrementalAlterConfigs,
        DeleteRecords,
        DescribeLogDirs,
        AddPartitionsToTxn,
        AddOffsetsToTxn,
        EndTxn,
        TxnOffsetCommit,
        DescribeProducers,
        DescribeTransactions,
        ListTransactions,
        OffsetForLeaderEpoch,
        DescribeUserScramCredentials,
        AlterUserScramCredentials,
        CreateAcls,
        DescribeAcls,
        DeleteAcls,
        DescribeClientQuotas,
        AlterClientQuotas,
        GetTelemetrySubscriptions,
        PushTelemetry,
        ShareGroupHeartbeat,
        ShareGroupDescribe,
        ShareFetch,
        ShareAcknowledge,
        DescribeShareGroupOffsets,
        AlterShareGroupOffsets,
        DeleteShareGroupOffsets,
    );
}

/// The record bytes a Fetch response carries (what a consumer byte-rate quota counts).
pub fn fetch_record_bytes(r: &FetchResponse) -> usize {
    r.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .filter_map(|p| p.records.as_ref())
        .map(|b| b.len())
        .sum()
}

/// Whether a client asks for `api` at a version that honours `throttle_time_ms` itself
/// (KIP-219); an older one has its throttled responses held back instead.
pub fn client_throttles(api: ApiKey, version: i16) -> bool {
    match api {
        ApiKey::Produce => version >= 6,
        ApiKey::Fetch => version >= 8,
        _ => true,
    }
}

/// What identifies a request on its connection.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub api_key: ApiKey,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("frame of {0} bytes is too short for a request header")]
    Truncated(usize),
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    /// ApiVersions at an unsupported version: answered with the v0 error reply, as Kafka does.
    #[error("ApiVersions v{version} is not supported")]
    ApiVersionsUnsupported { version: i16, correlation_id: i32 },
    #[error("{api:?} v{version} is not supported")]
    UnsupportedVersion { api: ApiKey, version: i16 },
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed {
        api: ApiKey,
        version: i16,
        reason: String,
    },
}

/// Decodes one request frame (without its 4-byte length prefix).
pub fn decode_request(mut frame: Bytes) -> Result<(RequestContext, Request), DecodeError> {
    if frame.len() < 8 {
        return Err(DecodeError::Truncated(frame.len()));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api = ApiKey::try_from(raw_key).map_err(|_| DecodeError::UnknownApiKey(raw_key))?;
    let Some((min, max)) = versions::supported(api) else {
        return Err(DecodeError::UnsupportedVersion { api, version });
    };
    if version < min || version > max {
        if api == ApiKey::ApiVersions {
            return Err(DecodeError::ApiVersionsUnsupported {
                version,
                correlation_id,
            });
        }
        return Err(DecodeError::UnsupportedVersion { api, version });
    }
    let malformed = |reason: String| DecodeError::Malformed {
        api,
        version,
        reason,
    };
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let header_version = api.request_header_version(version);
        let header = RequestHeader::decode(&mut frame, header_version)?;
        let body = decode_body(api, &mut frame, version)?;
        anyhow::Ok((header, body))
    }));
    let (header, body) = match decoded {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return Err(malformed(e.to_string())),
        Err(_) => return Err(malformed("decoder panicked".to_string())),
    };
    let ctx = RequestContext {
        api_key: api,
        api_version: version,
        correlation_id: header.correlation_id,
        client_id: header.client_id.map(|s| s.to_string()),
    };
    Ok((ctx, body))
}

/// Encodes a response frame, length prefix included.
pub fn encode_response(ctx: &RequestContext, response: &Response) -> anyhow::Result<Bytes> {
    let v = ctx.api_version;
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0); // length, patched below
    let header = ResponseHeader::default().with_correlation_id(ctx.correlation_id);
    header.encode(&mut buf, ctx.api_key.response_header_version(v))?;
    encode_body(response, &mut buf, v)?;
    let len = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}

/// Encodes a response frame as chunks for one vectored write: a Fetch response keeps its large
/// record sets by reference (see [`chunked`]) instead of copying them into the frame, and puts
/// each record set that is a [`placeholder`] for one of `files` in its place; any other response
/// is one chunk.
pub fn encode_response_chunks(
    ctx: &RequestContext,
    response: &Response,
    files: &[FileSlice],
) -> anyhow::Result<Vec<Chunk>> {
    let Response::Fetch(fetch) = response else {
        return Ok(vec![Chunk::Mem(encode_response(ctx, response)?)]);
    };
    let mut shared = Vec::new();
    for r in fetch
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .filter_map(|p| p.records.as_ref())
    {
        if let Some(i) = chunked::placeholder_index(r) {
            let file = files
                .get(i)
                .filter(|f| f.len == r.len())
                .ok_or_else(|| anyhow::anyhow!("a record placeholder without its file slice"))?;
            shared.push(chunked::Candidate::file(r, file.clone()));
        } else if r.len() >= chunked::MIN_SHARED {
            shared.push(chunked::Candidate::mem(r));
        }
    }
    if shared.is_empty() {
        return Ok(vec![Chunk::Mem(encode_response(ctx, response)?)]);
    }
    let v = ctx.api_version;
    let mut buf = chunked::ChunkedBuf::new(shared);
    let header = ResponseHeader::default().with_correlation_id(ctx.correlation_id);
    header.encode(&mut buf, ctx.api_key.response_header_version(v))?;
    fetch.encode(&mut buf, v)?;
    let mut chunks = buf.into_chunks()?;
    let len: usize = chunks.iter().map(Chunk::len).sum();
    let len = i32::try_from(len).map_err(|_| anyhow::anyhow!("response of {len} bytes"))?;
    chunks.insert(0, Chunk::Mem(Bytes::copy_from_slice(&len.to_be_bytes())));
    Ok(chunks)
}

/// The v0-format ApiVersions error reply Kafka sends to a client that asked for a version it does
/// not support: UNSUPPORTED_VERSION plus the supported ranges, response header v0.
pub fn encode_api_versions_fallback(
    correlation_id: i32,
    body: &ApiVersionsResponse,
) -> anyhow::Result<Bytes> {
    let ctx = RequestContext {
        api_key: ApiKey::ApiVersions,
        api_version: 0,
        correlation_id,
        client_id: None,
    };
    encode_response(&ctx, &Response::ApiVersions(body.clone()))
}

#[cfg(test)]
mod tests;
