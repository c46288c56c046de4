//! TCP listener and connections: length-prefixed frames with a size cap, a connection limit, and
//! per-connection pipelining with responses written in request order.
//!
//! Each connection has a reader (frames → `protocol::decode_request` → `Handler::handle`, which
//! does the order-sensitive work) and a writer that awaits each request's [`Pending`] in arrival
//! order and writes the response. A bad frame is logged with the peer address and the connection
//! closed; nothing a client sends can take down more than its own connection.

pub mod http;
pub mod per_ip;

use crate::api::errors::CURRENT_API;
use crate::api::{api_versions_response, Handler, Pending, Reply};
use crate::clock::Throttle;
use crate::protocol::{self, DecodeError, RequestContext};
use bytes::{Buf, BytesMut};
use kafka_protocol::error::ResponseError;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Requests a connection may have decoded but not yet answered.
const MAX_IN_FLIGHT: usize = 64;
/// Frame bytes are buffered as they arrive, at most this much ahead of the data.
const READ_CHUNK: usize = 64 * 1024;

/// What each request carries to the writer.
enum Outgoing {
    /// A request, the rest of its handling, when it was decoded, and its place in the
    /// in-flight gauge (released when the response is written or the connection drops).
    Response(RequestContext, Pending, std::time::Instant, InFlight),
    /// The v0 ApiVersions error reply for an unsupported ApiVersions version.
    ApiVersionsFallback(i32),
}

/// One request between decoding and its response, counted in `tiercel_requests_in_flight`.
struct InFlight;

impl InFlight {
    fn new() -> InFlight {
        crate::metrics::in_flight(1.0);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        crate::metrics::in_flight(-1.0);
    }
}

/// Why a connection's reader stopped.
enum Ended {
    /// The client closed the connection, or sent what closes it.
    Closed,
    /// The broker is shutting down.
    Stopping,
}

pub struct Server {
    pub handler: Arc<Handler>,
    pub max_frame: usize,
    pub connections: Arc<Semaphore>,
    /// `max_connections_per_ip` and its overrides.
    pub per_ip: Arc<per_ip::PerIp>,
    /// `connections_max_idle_ms`: a connection with nothing received and nothing in flight
    /// for this long is closed (`None`: never).
    pub max_idle: Option<Duration>,
}

impl Server {
    /// Accepts connections until `cancel`; connection tasks are tracked by `tasks`.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        cancel: CancellationToken,
        tasks: TaskTracker,
    ) {
        loop {
            let permit = tokio::select! {
                p = self.connections.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
                _ = cancel.cancelled() => return,
            };
            let (stream, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = cancel.cancelled() => return,
            };
            let Some(admitted) = self.per_ip.admit(peer.ip()) else {
                refused_per_ip(peer);
                continue; // the stream and the slot go
            };
            let me = self.clone();
            let cancel = cancel.clone();
            tasks.spawn(async move {
                let _admitted = admitted;
                crate::metrics::connection_opened();
                me.connection(stream, peer, cancel).await;
                crate::metrics::connection_closed();
                drop(permit);
            });
        }
    }

    async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        cancel: CancellationToken,
    ) {
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        let (tx, rx) = mpsc::channel(MAX_IN_FLIGHT);
        let unanswered = Arc::new(AtomicUsize::new(0));
        let mut writer = tokio::spawn(write_loop(wr, rx, peer, unanswered.clone()));
        tokio::select! {
            ended = self.read_loop(rd, tx, peer, &cancel, &unanswered) => match ended {
                // shutting down: no new requests, but the writer answers everything accepted
                Ended::Stopping => { let _ = writer.await; }
                // the client went away or sent garbage: what it waits for is dropped at once,
                // as Kafka does, so a parked long poll or join does not hold the connection
                // slot until its timeout
                Ended::Closed => writer.abort(),
            },
            // the writer closed the connection (write error, or a failed acks=0 produce)
            _ = &mut writer => {}
        }
    }

    async fn read_loop(
        &self,
        mut rd: OwnedReadHalf,
        tx: mpsc::Sender<Outgoing>,
        peer: SocketAddr,
        stop: &CancellationToken,
        unanswered: &AtomicUsize,
    ) -> Ended {
        // One buffer per connection: each frame is split off and frozen; once the request is
        // handled and its bytes dropped, `reserve` reclaims the same allocation for the next.
        let mut buf = BytesMut::new();
        // one waiter for the connection's life, not one registered per read
        let stopped = stop.cancelled();
        tokio::pin!(stopped);
        let idle = self.max_idle.unwrap_or(Duration::from_secs(86_400 * 365));
        let idle_timer = tokio::time::sleep(idle);
        tokio::pin!(idle_timer);
        loop {
            // the frame's length: read into the buffer (cancel-safe), so the idle timer can
            // fire between reads without losing bytes; shutdown stops the connection between
            // requests, never inside one's handling
            while buf.len() < 4 {
                buf.reserve(4); // an idle connection holds no more than this
                let read = tokio::select! {
                    r = rd.read_buf(&mut buf) => r,
                    _ = &mut stopped => return Ended::Stopping,
                    _ = &mut idle_timer => {
                        if self.max_idle.is_some() && buf.is_empty() && unanswered.load(Ordering::Acquire) == 0 {
                            tracing::debug!(%peer, idle_ms = idle.as_millis() as u64, "closing an idle connection (connections_max_idle_ms)");
                            return Ended::Closed;
                        }
                        idle_timer.as_mut().reset(tokio::time::Instant::now() + idle);
                        continue;
                    }
                };
                match read {
                    Ok(0) | Err(_) => return Ended::Closed, // closed by the client
                    Ok(_) => idle_timer
                        .as_mut()
                        .reset(tokio::time::Instant::now() + idle),
                }
            }
            let len = buf.get_i32();
            if len < 0 || len as usize > self.max_frame {
                tracing::warn!(%peer, len, max = self.max_frame, "request frame size out of bounds (socket_request_max_bytes); closing connection");
                return Ended::Closed;
            }
            let len = len as usize;
            // grow with the data actually received, not with the length the client claims
            while buf.len() < len {
                let want = (len - buf.len()).min(READ_CHUNK.max(buf.capacity() - buf.len()));
                buf.reserve(want);
                let read = tokio::select! {
                    r = rd.read_buf(&mut buf) => r,
                    _ = &mut stopped => return Ended::Stopping, // a request never received in full
                };
                match read {
                    Ok(0) | Err(_) => return Ended::Closed,
                    Ok(_) => idle_timer
                        .as_mut()
                        .reset(tokio::time::Instant::now() + idle),
                }
            }
            let frame = buf.split_to(len).freeze();
            let out = match protocol::decode_request(frame) {
                Ok((ctx, req)) => {
                    let decoded = std::time::Instant::now();
                    let in_flight = InFlight::new();
                    tracing::trace!(%peer, api = ?ctx.api_key, version = ctx.api_version, correlation_id = ctx.correlation_id, "request");
                    let api = protocol::api_name(ctx.api_key);
                    let pending = CURRENT_API
                        .scope(api, self.handler.handle(&ctx, peer, req))
                        .await;
                    let pending: crate::api::Pending = Box::pin(CURRENT_API.scope(api, pending));
                    Outgoing::Response(ctx, pending, decoded, in_flight)
                }
                Err(DecodeError::ApiVersionsUnsupported {
                    version,
                    correlation_id,
                }) => {
                    tracing::debug!(%peer, version, "ApiVersions version not supported; sending v0 fallback");
                    Outgoing::ApiVersionsFallback(correlation_id)
                }
                Err(e) => {
                    crate::metrics::bad_request();
                    tracing::warn!(%peer, error = %e, "bad request; closing connection");
                    return Ended::Closed;
                }
            };
            unanswered.fetch_add(1, Ordering::AcqRel);
            if tx.send(out).await.is_err() {
                return Ended::Closed;
            }
        }
    }
}

/// Logs (at most once a second) that a connection was refused for `max_connections_per_ip`.
fn refused_per_ip(peer: SocketAddr) {
    static EVERY_SECOND: Throttle = Throttle::new(1);
    if EVERY_SECOND.pass().is_some() {
        tracing::warn!(%peer, "refusing a connection: its address holds max_connections_per_ip already");
    }
}

/// One answered (or dropped) request, for the idle check.
struct Answered<'a>(&'a AtomicUsize);

impl Drop for Answered<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Outgoing>,
    peer: SocketAddr,
    unanswered: Arc<AtomicUsize>,
) {
    while let Some(out) = rx.recv().await {
        let _answered = Answered(&unanswered);
        let mut timing = None;
        // a fetch's share of the response memory budget, held until its bytes are written
        let mut _budget = None;
        let bytes = match out {
            Outgoing::Response(ctx, pending, decoded, _in_flight) => {
                let resp = match pending.await {
                    Reply::Nothing => continue,
                    Reply::Close => {
                        tracing::debug!(%peer, api = ?ctx.api_key, "acks=0 produce failed; closing connection");
                        return;
                    }
                    Reply::Send(resp) => resp,
                    Reply::SendHolding(resp, held) => {
                        _budget = Some(held);
                        resp
                    }
                };
                match protocol::encode_response(&ctx, &resp) {
                    Ok(b) => {
                        timing = Some((ctx.api_key, decoded));
                        b
                    }
                    Err(e) => {
                        tracing::error!(%peer, api = ?ctx.api_key, version = ctx.api_version, error = %e, "encoding response failed; closing connection");
                        return;
                    }
                }
            }
            Outgoing::ApiVersionsFallback(correlation_id) => {
                let body = api_versions_response(crate::api::errors::code(
                    ResponseError::UnsupportedVersion,
                ));
                match protocol::encode_api_versions_fallback(correlation_id, &body) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::error!(%peer, error = %e, "encoding ApiVersions fallback failed");
                        return;
                    }
                }
            }
        };
        tracing::trace!(%peer, len = bytes.len(), "response");
        if let Err(e) = wr.write_all(&bytes).await {
            tracing::debug!(%peer, error = %e, "write failed; closing connection");
            return;
        }
        if let Some((api, decoded)) = timing {
            crate::metrics::request(protocol::api_name(api), decoded.elapsed());
        }
    }
    let _ = wr.shutdown().await;
}
