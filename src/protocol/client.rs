//! The broker as a Kafka client of another node (cluster mode): one request, one response, over
//! a fresh connection. Used for what a coordinator asks a partition's leader (transaction
//! markers) and a leader asks a coordinator (verifying a transactional produce); neither is on
//! a per-record path.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response accepted from a peer.
const MAX_RESPONSE: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("{addr}: no answer within {0:?}", .timeout)]
    Timeout { addr: String, timeout: Duration },
    #[error("{addr}: {reason}")]
    Protocol { addr: String, reason: String },
}

/// Sends `req` at `version` to the node at `addr` and decodes its answer.
pub async fn call<R: Request>(
    addr: &str,
    version: i16,
    req: &R,
    timeout: Duration,
) -> Result<R::Response, ClientError> {
    match tokio::time::timeout(timeout, exchange(addr, version, req)).await {
        Ok(r) => r,
        Err(_) => Err(ClientError::Timeout {
            addr: addr.to_string(),
            timeout,
        }),
    }
}

async fn exchange<R: Request>(
    addr: &str,
    version: i16,
    req: &R,
) -> Result<R::Response, ClientError> {
    let io = |source| ClientError::Io {
        addr: addr.to_string(),
        source,
    };
    let protocol = |reason: String| ClientError::Protocol {
        addr: addr.to_string(),
        reason,
    };
    let frame = encode_request(version, req).map_err(|e| protocol(e.to_string()))?;
    let mut s = TcpStream::connect(addr).await.map_err(io)?;
    s.set_nodelay(true).map_err(io)?;
    s.write_all(&frame).await.map_err(io)?;
    let len = s.read_i32().await.map_err(io)?;
    let len = usize::try_from(len)
        .ok()
        .filter(|l| *l <= MAX_RESPONSE)
        .ok_or_else(|| protocol(format!("response of {len} bytes")))?;
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).await.map_err(io)?;
    decode_response::<R>(version, Bytes::from(buf)).map_err(|e| protocol(e.to_string()))
}

const CORRELATION_ID: i32 = 1;

/// A request frame, length prefix included.
pub fn encode_request<R: Request>(version: i16, req: &R) -> anyhow::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(CORRELATION_ID)
        .with_client_id(Some(StrBytes::from_static_str("tiercel-node")));
    header.encode(&mut buf, R::header_version(version))?;
    req.encode(&mut buf, version)?;
    let len = i32::try_from(buf.len() - 4)?;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}

/// A response frame's body (without its length prefix), its correlation id checked.
pub fn decode_response<R: Request>(version: i16, mut frame: Bytes) -> anyhow::Result<R::Response> {
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let header = ResponseHeader::decode(
            &mut frame,
            <R::Response as kafka_protocol::protocol::HeaderVersion>::header_version(version),
        )?;
        anyhow::ensure!(
            header.correlation_id == CORRELATION_ID,
            "answer to another request ({})",
            header.correlation_id
        );
        let body = R::Response::decode(&mut frame, version)?;
        anyhow::ensure!(
            !frame.has_remaining(),
            "{} bytes after the body",
            frame.remaining()
        );
        Ok(body)
    }));
    decoded.unwrap_or_else(|_| anyhow::bail!("decoder panicked"))
}
