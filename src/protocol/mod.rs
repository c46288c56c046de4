//! Frames ↔ typed requests and responses.
//!
//! The only module besides `api` that touches `kafka-protocol` wire types. Decoding is guarded:
//! the header is bounds-checked before the codec sees it, versions outside the supported table
//! are refused before the body is decoded, the codec runs inside `catch_unwind`, and oversized
//! claimed array counts are made harmless by the process allocator (see `crate::alloc`).

pub mod versions;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};

/// A decoded request of an implemented API.
#[derive(Debug)]
pub enum Request {
    ApiVersions(ApiVersionsRequest),
    Metadata(MetadataRequest),
    Produce(ProduceRequest),
    Fetch(FetchRequest),
    ListOffsets(ListOffsetsRequest),
    CreateTopics(CreateTopicsRequest),
    DeleteTopics(DeleteTopicsRequest),
    CreatePartitions(CreatePartitionsRequest),
    DescribeConfigs(DescribeConfigsRequest),
    DescribeCluster(DescribeClusterRequest),
}

/// A response to encode.
#[derive(Debug)]
pub enum Response {
    ApiVersions(ApiVersionsResponse),
    Metadata(MetadataResponse),
    Produce(ProduceResponse),
    Fetch(FetchResponse),
    ListOffsets(ListOffsetsResponse),
    CreateTopics(CreateTopicsResponse),
    DeleteTopics(DeleteTopicsResponse),
    CreatePartitions(CreatePartitionsResponse),
    DescribeConfigs(DescribeConfigsResponse),
    DescribeCluster(DescribeClusterResponse),
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

fn decode_body(api: ApiKey, buf: &mut Bytes, v: i16) -> anyhow::Result<Request> {
    Ok(match api {
        ApiKey::ApiVersions => Request::ApiVersions(ApiVersionsRequest::decode(buf, v)?),
        ApiKey::Metadata => Request::Metadata(MetadataRequest::decode(buf, v)?),
        ApiKey::Produce => Request::Produce(ProduceRequest::decode(buf, v)?),
        ApiKey::Fetch => Request::Fetch(FetchRequest::decode(buf, v)?),
        ApiKey::ListOffsets => Request::ListOffsets(ListOffsetsRequest::decode(buf, v)?),
        ApiKey::CreateTopics => Request::CreateTopics(CreateTopicsRequest::decode(buf, v)?),
        ApiKey::DeleteTopics => Request::DeleteTopics(DeleteTopicsRequest::decode(buf, v)?),
        ApiKey::CreatePartitions => {
            Request::CreatePartitions(CreatePartitionsRequest::decode(buf, v)?)
        }
        ApiKey::DescribeConfigs => {
            Request::DescribeConfigs(DescribeConfigsRequest::decode(buf, v)?)
        }
        ApiKey::DescribeCluster => {
            Request::DescribeCluster(DescribeClusterRequest::decode(buf, v)?)
        }
        other => anyhow::bail!("no decoder for {other:?}"),
    })
}

/// Encodes a response frame, length prefix included.
pub fn encode_response(ctx: &RequestContext, response: &Response) -> anyhow::Result<Bytes> {
    let v = ctx.api_version;
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0); // length, patched below
    let header = ResponseHeader::default().with_correlation_id(ctx.correlation_id);
    header.encode(&mut buf, ctx.api_key.response_header_version(v))?;
    match response {
        Response::ApiVersions(r) => r.encode(&mut buf, v)?,
        Response::Metadata(r) => r.encode(&mut buf, v)?,
        Response::Produce(r) => r.encode(&mut buf, v)?,
        Response::Fetch(r) => r.encode(&mut buf, v)?,
        Response::ListOffsets(r) => r.encode(&mut buf, v)?,
        Response::CreateTopics(r) => r.encode(&mut buf, v)?,
        Response::DeleteTopics(r) => r.encode(&mut buf, v)?,
        Response::CreatePartitions(r) => r.encode(&mut buf, v)?,
        Response::DescribeConfigs(r) => r.encode(&mut buf, v)?,
        Response::DescribeCluster(r) => r.encode(&mut buf, v)?,
    }
    let len = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
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
