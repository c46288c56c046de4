//! A connection's writer: answers in request order, applies client quotas to each response,
//! and writes it, record sets in segment files with `sendfile` on plain TCP.

use super::{Metered, Muted, Outgoing};
use crate::api::{api_versions_response, Reply};
use crate::fs::FileSlice;
use crate::protocol::{self, Chunk, RequestContext, Response};
use crate::security::quotas::{ClientQuotas, QuotaKind};
use bytes::{BufMut, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ApiKey;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// One answered (or dropped) request, for the idle check.
struct Answered<'a>(&'a AtomicUsize);

impl Drop for Answered<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection's writer: answers in request order and applies client quotas to each response.
pub(super) struct Writer {
    pub(super) peer: SocketAddr,
    pub(super) unanswered: Arc<AtomicUsize>,
    pub(super) quotas: Arc<ClientQuotas>,
    pub(super) muted: Arc<Muted>,
}

impl Writer {
    /// Counts a request and its response (`None`: an acks=0 produce, answered with nothing)
    /// against its principal's quotas; the longest throttle any of them asks for is set in the
    /// response and mutes the connection for as long.
    fn throttle(&self, ctx: &RequestContext, resp: Option<&mut Response>, m: &Metered) -> Duration {
        let client = ctx.client_id.as_deref().unwrap_or_default();
        let fetched = match (ctx.api_key, &resp) {
            (ApiKey::Fetch, Some(Response::Fetch(f))) => self.quotas.record(
                QuotaKind::Fetch,
                &m.principal,
                client,
                protocol::fetch_record_bytes(f) as f64,
            ),
            _ => Duration::ZERO,
        };
        // the reader muted the connection for what it counted already
        self.muted.extend(fetched);
        let throttle = fetched.max(m.recorded);
        if !throttle.is_zero() {
            if let Some(resp) = resp {
                protocol::throttle(resp, crate::api::quota::throttle_ms(throttle));
            }
        }
        throttle
    }

    pub(super) async fn run<W: Sink>(self, mut wr: W, mut rx: mpsc::Receiver<Outgoing>) {
        while let Some(out) = rx.recv().await {
            let _answered = Answered(&self.unanswered);
            if !self.answer(&mut wr, out).await {
                return;
            }
        }
        let _ = wr.shutdown().await;
    }

    /// Writes one answer; `false` when the connection is to close.
    async fn answer<W: Sink>(&self, wr: &mut W, out: Outgoing) -> bool {
        let peer = self.peer;
        let mut timing = None;
        let mut close_after = false;
        // a fetch's share of the response memory budget, held until its bytes are written
        let mut _budget = None;
        let mut files = Vec::new();
        let bytes = match out {
            Outgoing::Response(ctx, pending, decoded, _in_flight, metered) => {
                let mut resp = match pending.await {
                    Reply::Nothing => {
                        // an acks=0 produce: counted, and muting is its only throttle
                        self.throttle(&ctx, None, &metered);
                        return true;
                    }
                    Reply::Close => {
                        tracing::debug!(%peer, api = ?ctx.api_key, "acks=0 produce failed; closing connection");
                        return false;
                    }
                    Reply::Send(resp) => resp,
                    Reply::Fetched(resp, held, slices) => {
                        _budget = held;
                        files = slices;
                        resp
                    }
                };
                let throttle = self.throttle(&ctx, Some(&mut resp), &metered);
                if !throttle.is_zero() && !protocol::client_throttles(ctx.api_key, ctx.api_version)
                {
                    // a client from before KIP-219 waits for its response instead
                    tokio::time::sleep(throttle).await;
                }
                match protocol::encode_response_chunks(&ctx, &resp, &files) {
                    Ok(b) => {
                        timing = Some((ctx.api_key, ctx.api_version, decoded));
                        b
                    }
                    Err(e) => {
                        tracing::error!(%peer, api = ?ctx.api_key, version = ctx.api_version, error = %e, "encoding response failed; closing connection");
                        return false;
                    }
                }
            }
            Outgoing::Direct(ctx, resp, close) => {
                close_after = close;
                match protocol::encode_response(&ctx, &resp) {
                    Ok(b) => vec![Chunk::Mem(b)],
                    Err(e) => {
                        tracing::error!(%peer, api = ?ctx.api_key, error = %e, "encoding response failed; closing connection");
                        return false;
                    }
                }
            }
            Outgoing::Raw(token) => {
                let mut b = BytesMut::with_capacity(4 + token.len());
                b.put_i32(token.len() as i32);
                b.extend_from_slice(&token);
                vec![Chunk::Mem(b.freeze())]
            }
            Outgoing::ApiVersionsFallback(correlation_id) => {
                // v0: no features
                let body = api_versions_response(
                    crate::api::errors::code(ResponseError::UnsupportedVersion),
                    0,
                    false,
                );
                match protocol::encode_api_versions_fallback(correlation_id, &body) {
                    Ok(b) => vec![Chunk::Mem(b)],
                    Err(e) => {
                        tracing::error!(%peer, error = %e, "encoding ApiVersions fallback failed");
                        return false;
                    }
                }
            }
        };
        tracing::trace!(%peer, len = bytes.iter().map(Chunk::len).sum::<usize>(), "response");
        // flush: TLS keeps encrypted records it could not send at once until told to (a
        // no-op on plain TCP)
        if let Err(e) = write_chunks(wr, &bytes).await.and(wr.flush().await) {
            tracing::debug!(%peer, error = %e, "write failed; closing connection");
            return false;
        }
        if let Some((api, version, decoded)) = timing {
            crate::metrics::request(protocol::api_name(api), version, decoded.elapsed());
        }
        if close_after {
            let _ = wr.shutdown().await;
            return false;
        }
        true
    }
}

/// Counts what is known of a request once it is read against its principal's client quotas: a
/// Produce's bytes (`producer_byte_rate`) and the time spent handling it (`request_percentage`).
/// The longest throttle they ask for.
pub(super) fn record_read(quotas: &ClientQuotas, ctx: &RequestContext, m: &Metered) -> Duration {
    let client = ctx.client_id.as_deref().unwrap_or_default();
    let record = |kind, amount: f64| quotas.record(kind, &m.principal, client, amount);
    let bytes = match ctx.api_key {
        ApiKey::Produce => record(QuotaKind::Produce, m.request_bytes as f64),
        _ => Duration::ZERO,
    };
    // what only brokers send, and the exchange that comes before any quota applies
    let exempt = matches!(ctx.api_key, ApiKey::ApiVersions | ApiKey::WriteTxnMarkers);
    let handling = if exempt {
        Duration::ZERO
    } else {
        record(QuotaKind::Request, m.handling.as_secs_f64())
    };
    bytes.max(handling)
}

/// A connection's write side: plain TCP sends file slices with `sendfile`.
pub(super) trait Sink: AsyncWrite + Unpin {
    fn tcp(&self) -> Option<&TcpStream> {
        None
    }
}

impl Sink for tokio::net::tcp::OwnedWriteHalf {
    fn tcp(&self) -> Option<&TcpStream> {
        Some(self.as_ref())
    }
}

impl<T: AsyncWrite> Sink for tokio::io::WriteHalf<T> {}

/// Writes every chunk of a response in order: runs of bytes several per system call where the
/// stream takes vectored writes, file slices with `sendfile` (or read off the runtime and
/// written, where the stream is not plain TCP).
async fn write_chunks<W: Sink>(wr: &mut W, chunks: &[Chunk]) -> std::io::Result<()> {
    let mut rest = chunks;
    while !rest.is_empty() {
        let mem = rest
            .iter()
            .position(|c| matches!(c, Chunk::File(_)))
            .unwrap_or(rest.len());
        let run: Vec<&[u8]> = rest[..mem]
            .iter()
            .filter_map(|c| match c {
                Chunk::Mem(b) => Some(&b[..]),
                Chunk::File(_) => None,
            })
            .collect();
        write_run(wr, &run).await?;
        if let Some(Chunk::File(f)) = rest.get(mem) {
            send_file(wr, f).await?;
        }
        rest = rest.get(mem + 1..).unwrap_or_default();
    }
    Ok(())
}

/// Sends a file slice: `sendfile` on plain TCP, once what was written before it has left the
/// stream's buffers. A slice whose pages left the page cache since the fetch found them there
/// (or any slice on another stream) is read off the runtime and written instead, so a worker
/// never waits for the disk.
async fn send_file<W: Sink>(wr: &mut W, f: &FileSlice) -> std::io::Result<()> {
    wr.flush().await?;
    let tcp = match wr.tcp() {
        Some(tcp) if f.resident() => tcp,
        _ => {
            let slice = f.clone();
            let bytes = tokio::task::spawn_blocking(move || slice.read())
                .await
                .map_err(std::io::Error::other)??;
            return wr.write_all(&bytes).await;
        }
    };
    let fd = tcp.as_raw_fd();
    let mut sent = 0;
    while sent < f.len {
        match tcp
            .async_io(tokio::io::Interest::WRITABLE, || f.send_to(fd, sent))
            .await
        {
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    crate::metrics::sent_from_file(f.len);
    Ok(())
}

/// Writes slices in order, several per system call where the stream takes vectored writes.
async fn write_run<W: AsyncWrite + Unpin>(wr: &mut W, chunks: &[&[u8]]) -> std::io::Result<()> {
    if let [one] = chunks {
        return wr.write_all(one).await;
    }
    // (chunk, offset in it) of the first byte not yet written
    let (mut i, mut off) = (0, 0);
    while i < chunks.len() {
        let slices: Vec<std::io::IoSlice<'_>> = std::iter::once(&chunks[i][off..])
            .chain(chunks[i + 1..].iter().copied())
            .take(64)
            .map(std::io::IoSlice::new)
            .collect();
        let mut n = wr.write_vectored(&slices).await?;
        if n == 0 && slices.iter().any(|s| !s.is_empty()) {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while i < chunks.len() && off + n >= chunks[i].len() {
            n -= chunks[i].len() - off;
            i += 1;
            off = 0;
        }
        off += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// Takes at most 5 bytes per call, over at most two buffers: partial vectored writes.
    struct Trickle(Vec<u8>);

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let n = buf.len().min(5);
            self.0.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[std::io::IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let mut left = 5;
            for b in bufs.iter().take(2) {
                let n = b.len().min(left);
                self.0.extend_from_slice(&b[..n]);
                left -= n;
            }
            Poll::Ready(Ok(5 - left))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl Sink for Trickle {}

    fn mem(parts: &[&'static str]) -> Vec<Chunk> {
        parts
            .iter()
            .map(|s| Chunk::Mem(Bytes::from_static(s.as_bytes())))
            .collect()
    }

    #[tokio::test]
    async fn chunks_are_written_whole_and_in_order_through_partial_writes() {
        let chunks = mem(&["abc", "", "defghijk", "l", "", "mnopqrstuvwxyz0123"]);
        let mut w = Trickle(Vec::new());
        write_chunks(&mut w, &chunks).await.expect("writes");
        assert_eq!(w.0, b"abcdefghijklmnopqrstuvwxyz0123");
    }

    /// A file of `len` bytes counting up, and a slice of it.
    fn file_slice(dir: &std::path::Path, len: usize, pos: u64, n: usize) -> (Vec<u8>, FileSlice) {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let path = dir.join("slice");
        std::fs::write(&path, &data).expect("writes the file");
        let file = Arc::new(std::fs::File::open(&path).expect("opens"));
        let slice = FileSlice { file, pos, len: n };
        (data[pos as usize..pos as usize + n].to_vec(), slice)
    }

    #[tokio::test]
    async fn file_slices_are_read_and_written_where_the_stream_is_not_tcp() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (want, slice) = file_slice(dir.path(), 100_000, 777, 50_000);
        let mut chunks = mem(&["head", "er"]);
        chunks.push(Chunk::File(slice.clone()));
        chunks.extend(mem(&["tail"]));
        chunks.push(Chunk::File(slice));
        let mut w = Trickle(Vec::new());
        write_chunks(&mut w, &chunks).await.expect("writes");
        let expected = [b"header".as_slice(), &want, b"tail", &want].concat();
        assert_eq!(w.0, expected);
    }

    #[tokio::test]
    async fn file_slices_go_out_with_sendfile_on_tcp_between_the_bytes_around_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        // larger than the socket buffers: sendfile meets a full socket and waits
        let (want, slice) = file_slice(dir.path(), 9 << 20, 4095, 8 << 20);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("address");
        let reader = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accepts");
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.expect("reads");
            got
        });
        let (_, mut wr) = TcpStream::connect(addr)
            .await
            .expect("connects")
            .into_split();
        let mut chunks = mem(&["frame", "-"]);
        chunks.push(Chunk::File(slice));
        chunks.extend(mem(&["after"]));
        write_chunks(&mut wr, &chunks).await.expect("writes");
        wr.shutdown().await.expect("shuts down");
        let got = reader.await.expect("reader");
        let expected = [b"frame-".as_slice(), &want, b"after"].concat();
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "the bytes differ");
    }
}
