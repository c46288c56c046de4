//! TCP listener and connections: length-prefixed frames with a size cap, a connection limit, and
//! per-connection pipelining with responses written in request order.
//!
//! Each connection has a reader (frames → `protocol::decode_request` → `Handler::handle`, which
//! does the order-sensitive work) and a writer that awaits each request's [`Pending`] in arrival
//! order and writes the response. A bad frame is logged with the peer address and the connection
//! closed; nothing a client sends can take down more than its own connection.
//!
//! Each listener ([`Endpoint`]) has its security protocol: SSL and SASL_SSL connections finish
//! a TLS handshake first, and SASL connections are served nothing but ApiVersions and the SASL
//! exchange until it has validated an identity (`api::sasl`), both within
//! `authentication_timeout_ms`.

pub mod http;
pub mod per_ip;
mod read_ahead;
mod writer;

use crate::api::errors::CURRENT_API;
use crate::api::sasl::Gate;
use crate::api::{Handler, Pending, Session, SESSION};
use crate::clock::Throttle;
use crate::config::SecurityProtocol;
use crate::protocol::{self, DecodeError, RequestContext, Response};
use crate::security::quotas::ClientQuotas;
use crate::security::tls::Tls;
use crate::security::{Sasl, Security};
use bytes::{Buf, Bytes, BytesMut};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Requests a connection may have decoded but not yet answered.
const MAX_IN_FLIGHT: usize = 64;
/// Frame bytes are buffered as they arrive, at most this much ahead of the data.
const READ_CHUNK: usize = 64 * 1024;
/// The largest frame a SASL listener reads from a connection that has not authenticated
/// (Kafka's `sasl.server.max.receive.size`).
const UNAUTHENTICATED_MAX_FRAME: usize = 512 * 1024;

/// What each request carries to the writer.
enum Outgoing {
    /// A request, the rest of its handling, when it was decoded, and its place in the
    /// in-flight gauge (released when the response is written or the connection drops),
    /// with what it counts against client quotas.
    Response(
        RequestContext,
        Pending,
        std::time::Instant,
        InFlight,
        Metered,
    ),
    /// The v0 ApiVersions error reply for an unsupported ApiVersions version.
    ApiVersionsFallback(i32),
    /// A response decided while reading (the SASL exchange); with `true`, the connection
    /// closes once it is written.
    Direct(RequestContext, Response, bool),
    /// A bare frame: a SASL message after SaslHandshake v0.
    Raw(Bytes),
}

/// What a request counts against its principal's client quotas.
struct Metered {
    principal: Arc<str>,
    /// The request frame's size (a Produce counts it against `producer_byte_rate`).
    request_bytes: usize,
    /// Time spent handling it before its response could wait (`request_percentage`).
    handling: Duration,
    /// The throttle what the reader counted asks for (the request's bytes and handling time).
    recorded: Duration,
}

/// Until when a throttled connection is not read (KIP-219 muting).
#[derive(Default)]
struct Muted(parking_lot::Mutex<Option<tokio::time::Instant>>);

impl Muted {
    fn until(&self) -> Option<tokio::time::Instant> {
        let until = *self.0.lock();
        until.filter(|t| *t > tokio::time::Instant::now())
    }

    fn extend(&self, d: Duration) {
        if d.is_zero() {
            return;
        }
        let t = tokio::time::Instant::now() + d;
        let mut until = self.0.lock();
        *until = Some(until.map_or(t, |u| u.max(t)));
    }
}

/// One listener as connections see it.
pub struct Endpoint {
    /// The listener's name, for the addresses its clients are answered with.
    pub name: Arc<str>,
    pub protocol: SecurityProtocol,
    /// SSL and SASL_SSL listeners: the current certificate.
    pub tls: Option<Arc<Tls>>,
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
    /// The connection closes once what was accepted is answered (a refused SASL exchange).
    AfterAnswers,
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
    /// SASL mechanisms, the user store and the authentication timeout.
    pub security: Arc<Security>,
    /// Client quotas and what each principal has used of them.
    pub quotas: Arc<ClientQuotas>,
}

/// What a connection's reader knows of it.
struct Conn<'a> {
    peer: SocketAddr,
    /// An SSL listener's client that presented a certificate: its principal.
    tls_principal: Option<Arc<str>>,
    /// Under TLS: where the reader says how much of a request it still waits for.
    wanted: Option<read_ahead::Wanted>,
    endpoint: &'a Endpoint,
    stop: &'a CancellationToken,
    unanswered: &'a AtomicUsize,
    muted: &'a Muted,
}

impl Server {
    /// Accepts connections until `cancel`; connection tasks are tracked by `tasks`.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        endpoint: Arc<Endpoint>,
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
            let endpoint = endpoint.clone();
            tasks.spawn(async move {
                let _admitted = admitted;
                crate::metrics::connection_opened();
                me.connection(stream, peer, &endpoint, cancel).await;
                crate::metrics::connection_closed();
                drop(permit);
            });
        }
    }

    async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        endpoint: &Endpoint,
        cancel: CancellationToken,
    ) {
        let _ = stream.set_nodelay(true);
        let Some(tls) = &endpoint.tls else {
            let (rd, wr) = stream.into_split();
            return self.run(rd, wr, (peer, None, None), endpoint, cancel).await;
        };
        // rustls reads the socket 4 KiB at a time: a buffer under it, grown with the traffic,
        // makes that one system call per buffer, and the reader's wants keep the socket from
        // waking the connection for every record of a large request
        let wanted = read_ahead::Wanted::default();
        let stream = read_ahead::ReadAhead::with_low_water(stream, wanted.clone());
        let handshake = tls.acceptor(endpoint.protocol.sasl()).accept(stream);
        let stream = tokio::select! {
            r = tokio::time::timeout(self.security.auth_timeout, handshake) => match r {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return tls_refused(peer, &e.to_string()),
                Err(_) => return tls_refused(peer, "handshake timed out (authentication_timeout_ms)"),
            },
            _ = cancel.cancelled() => return,
        };
        let mut principal = None;
        if let Some(dn) = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| crate::security::tls::subject_dn(c))
        {
            match self.security.principals.map(&dn) {
                Some(name) => {
                    tracing::debug!(%peer, principal = %format!("User:{name}"), "TLS client certificate accepted");
                    principal = Some(Arc::from(format!("User:{name}")));
                }
                None => {
                    return tls_refused(
                        peer,
                        &format!("no ssl_principal_mapping_rules rule applies to `{dn}`"),
                    )
                }
            }
        }
        let (rd, wr) = tokio::io::split(stream);
        self.run(rd, wr, (peer, principal, Some(wanted)), endpoint, cancel)
            .await
    }

    /// Serves one connection (over TCP or TLS) until it closes.
    async fn run<R, W>(
        self: Arc<Self>,
        rd: R,
        wr: W,
        (peer, tls_principal, wanted): (SocketAddr, Option<Arc<str>>, Option<read_ahead::Wanted>),
        endpoint: &Endpoint,
        cancel: CancellationToken,
    ) where
        R: AsyncRead + Unpin,
        W: writer::Sink + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(MAX_IN_FLIGHT);
        let unanswered = Arc::new(AtomicUsize::new(0));
        let muted = Arc::new(Muted::default());
        let writer = writer::Writer {
            peer,
            unanswered: unanswered.clone(),
            quotas: self.quotas.clone(),
            muted: muted.clone(),
        };
        let mut writer = tokio::spawn(writer.run(wr, rx));
        let conn = Conn {
            peer,
            tls_principal,
            wanted,
            endpoint,
            stop: &cancel,
            unanswered: &unanswered,
            muted: &muted,
        };
        tokio::select! {
            ended = self.read_loop(rd, tx, conn) => match ended {
                // shutting down: no new requests, but the writer answers everything accepted
                Ended::Stopping | Ended::AfterAnswers => { let _ = writer.await; }
                // the client went away or sent garbage: what it waits for is dropped at once,
                // as Kafka does, so a parked long poll or join does not hold the connection
                // slot until its timeout
                Ended::Closed => writer.abort(),
            },
            // the writer closed the connection (write error, or a failed acks=0 produce)
            _ = &mut writer => {}
        }
    }

    async fn read_loop<R: AsyncRead + Unpin>(
        &self,
        mut rd: R,
        tx: mpsc::Sender<Outgoing>,
        conn: Conn<'_>,
    ) -> Ended {
        let Conn {
            peer,
            tls_principal,
            wanted,
            endpoint,
            stop,
            unanswered,
            muted,
        } = conn;
        // a SASL listener's session: nothing but the exchange is served until it succeeds,
        // within authentication_timeout_ms
        let mut sasl = endpoint.protocol.sasl().then(Sasl::new);
        let anonymous: Arc<str> = Arc::from(crate::security::ANONYMOUS);
        let software = Arc::new(parking_lot::Mutex::new(None));
        let auth_timer = tokio::time::sleep(self.security.auth_timeout);
        tokio::pin!(auth_timer);
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
                let awaiting_auth = sasl.as_ref().is_some_and(|s| s.principal().is_none());
                let read = tokio::select! {
                    r = rd.read_buf(&mut buf) => r,
                    _ = &mut stopped => return Ended::Stopping,
                    _ = &mut auth_timer, if awaiting_auth => return auth_timed_out(peer),
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
            if len as usize > UNAUTHENTICATED_MAX_FRAME
                && sasl.as_ref().is_some_and(|s| !s.authenticated())
            {
                tracing::warn!(%peer, len, "a frame over 512 KiB before SASL authentication; closing connection");
                return Ended::Closed;
            }
            let len = len as usize;
            // grow with the data actually received, not with the length the client claims
            while buf.len() < len {
                let want = (len - buf.len()).min(READ_CHUNK.max(buf.capacity() - buf.len()));
                buf.reserve(want);
                if let Some(w) = &wanted {
                    w.set(len - buf.len());
                }
                let awaiting_auth = sasl.as_ref().is_some_and(|s| s.principal().is_none());
                let read = tokio::select! {
                    r = rd.read_buf(&mut buf) => r,
                    _ = &mut stopped => return Ended::Stopping, // a request never received in full
                    _ = &mut auth_timer, if awaiting_auth => return auth_timed_out(peer),
                };
                match read {
                    Ok(0) | Err(_) => return Ended::Closed,
                    Ok(_) => idle_timer
                        .as_mut()
                        .reset(tokio::time::Instant::now() + idle),
                }
            }
            if let Some(w) = &wanted {
                w.set(0);
            }
            let frame = buf.split_to(len).freeze();
            // a throttled client's next request waits until its throttle time has passed (the
            // throttle is set before the response is written, so a client that ignores it
            // cannot send ahead of it)
            if let Some(until) = muted.until() {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => {}
                    _ = &mut stopped => return Ended::Stopping,
                }
            }
            if let Some(s) = sasl.as_mut().filter(|s| s.expects_raw()) {
                // after SaslHandshake v0 the exchange goes in bare frames
                let Some(reply) = crate::api::sasl::raw(&self.security, s, &frame) else {
                    return Ended::Closed;
                };
                unanswered.fetch_add(1, Ordering::AcqRel);
                if tx.send(Outgoing::Raw(Bytes::from(reply))).await.is_err() {
                    return Ended::Closed;
                }
                continue;
            }
            let out = match protocol::decode_request(frame) {
                Ok((ctx, req)) => {
                    let req = match sasl.as_mut() {
                        None => req,
                        Some(s) => match crate::api::sasl::gate(&self.security, s, &ctx, peer, req)
                        {
                            Gate::Pass(req) => req,
                            Gate::Answer(resp, close) => {
                                if close {
                                    tracing::info!(%peer, api = ?ctx.api_key, "SASL exchange refused; closing connection");
                                }
                                unanswered.fetch_add(1, Ordering::AcqRel);
                                if tx.send(Outgoing::Direct(ctx, resp, close)).await.is_err() {
                                    return Ended::Closed;
                                }
                                if close {
                                    return Ended::AfterAnswers;
                                }
                                continue;
                            }
                            Gate::Close(reason) => {
                                tracing::info!(%peer, "{reason}; closing connection");
                                return Ended::Closed;
                            }
                        },
                    };
                    let decoded = std::time::Instant::now();
                    let in_flight = InFlight::new();
                    tracing::trace!(%peer, api = ?ctx.api_key, version = ctx.api_version, correlation_id = ctx.correlation_id, "request");
                    let api = protocol::api_name(ctx.api_key);
                    let principal = match sasl.as_ref().and_then(|s| s.principal()) {
                        Some(p) => p.clone(),
                        None => tls_principal.clone().unwrap_or_else(|| anonymous.clone()),
                    };
                    let session = Session {
                        listener: endpoint.name.clone(),
                        peer,
                        principal: principal.clone(),
                        software: software.clone(),
                        send_file: endpoint.tls.is_none(),
                    };
                    let pending = SESSION
                        .scope(
                            session.clone(),
                            CURRENT_API.scope(api, self.handler.handle(&ctx, peer, req)),
                        )
                        .await;
                    let pending: crate::api::Pending =
                        Box::pin(SESSION.scope(session, CURRENT_API.scope(api, pending)));
                    let mut metered = Metered {
                        principal,
                        request_bytes: len,
                        handling: decoded.elapsed(),
                        recorded: Duration::ZERO,
                    };
                    // counted here, before the next request is read, so that a throttle mutes
                    // the connection from the very next request on (an acks=0 producer has no
                    // response to wait for)
                    metered.recorded = writer::record_read(&self.quotas, &ctx, &metered);
                    muted.extend(metered.recorded);
                    Outgoing::Response(ctx, pending, decoded, in_flight, metered)
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

/// A TLS handshake that failed: counted, logged at most once a second.
fn tls_refused(peer: SocketAddr, why: &str) {
    static EVERY_SECOND: Throttle = Throttle::new(1);
    crate::metrics::tls_handshake_failed();
    if let Some(skipped) = EVERY_SECOND.pass() {
        tracing::warn!(%peer, reason = why, skipped, "TLS handshake failed; closing connection");
    }
}

fn auth_timed_out(peer: SocketAddr) -> Ended {
    tracing::info!(%peer, "no SASL authentication within authentication_timeout_ms; closing connection");
    Ended::Closed
}

/// Logs (at most once a second) that a connection was refused for `max_connections_per_ip`.
fn refused_per_ip(peer: SocketAddr) {
    static EVERY_SECOND: Throttle = Throttle::new(1);
    if EVERY_SECOND.pass().is_some() {
        tracing::warn!(%peer, "refusing a connection: its address holds max_connections_per_ip already");
    }
}
