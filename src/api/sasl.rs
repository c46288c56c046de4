//! SaslHandshake and SaslAuthenticate on SASL listeners: what a connection may send before it
//! has authenticated, and the answers Kafka gives.
//!
//! Until an exchange validates an identity only ApiVersions, SaslHandshake and SaslAuthenticate
//! are served; anything else closes the connection, as does a failed exchange (after its
//! SASL_AUTHENTICATION_FAILED answer). A session with `connections_max_reauth_ms` expires: the
//! client re-authenticates on the same connection (KIP-368) or its next request closes it.

use super::errors::code;
use crate::protocol::{Request, RequestContext, Response};
use crate::security::{failure_message, Sasl, SaslAnswer, Security};
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SaslAuthenticateResponse, SaslHandshakeResponse};
use kafka_protocol::protocol::StrBytes;

/// What the server does with a request on a SASL listener.
pub enum Gate {
    /// Authenticated: handle it as usual.
    Pass(Request),
    /// Answer this; with `close`, then close the connection.
    Answer(Response, bool),
    /// Close the connection without an answer; the reason is for the log.
    Close(String),
}

fn mechanisms(security: &Security) -> Vec<StrBytes> {
    security
        .mechanism_names()
        .into_iter()
        .map(StrBytes::from_static_str)
        .collect()
}

fn handshake(error: ResponseError, security: &Security) -> Response {
    let mut r = SaslHandshakeResponse::default();
    r.error_code = code(error);
    r.mechanisms = mechanisms(security);
    Response::SaslHandshake(r)
}

fn authenticate_error(error: ResponseError, message: String) -> Response {
    let mut r = SaslAuthenticateResponse::default();
    r.error_code = code(error);
    r.error_message = Some(StrBytes::from_string(message));
    Response::SaslAuthenticate(r)
}

/// Decides what becomes of `req` on a connection whose SASL session is `sasl`.
pub fn gate(
    security: &Security,
    sasl: &mut Sasl,
    ctx: &RequestContext,
    peer: std::net::SocketAddr,
    req: Request,
) -> Gate {
    match req {
        Request::ApiVersions(_) => Gate::Pass(req),
        Request::SaslHandshake(r) => {
            if !sasl.handshake_allowed() {
                return Gate::Answer(handshake(ResponseError::IllegalSaslState, security), true);
            }
            if sasl.handshake(security, r.mechanism.as_str(), ctx.api_version) {
                let mut resp = SaslHandshakeResponse::default();
                resp.mechanisms = mechanisms(security);
                Gate::Answer(Response::SaslHandshake(resp), false)
            } else {
                // Kafka answers with what it offers and closes the connection
                Gate::Answer(
                    handshake(ResponseError::UnsupportedSaslMechanism, security),
                    true,
                )
            }
        }
        Request::SaslAuthenticate(r) => {
            if !sasl.exchanging() {
                return Gate::Answer(
                    authenticate_error(
                        ResponseError::IllegalSaslState,
                        "SaslAuthenticate is not expected now".into(),
                    ),
                    true,
                );
            }
            match sasl.authenticate(security, &r.auth_bytes) {
                SaslAnswer::Continue(challenge) => {
                    let mut resp = SaslAuthenticateResponse::default();
                    resp.auth_bytes = Bytes::from(challenge);
                    Gate::Answer(Response::SaslAuthenticate(resp), false)
                }
                SaslAnswer::Authenticated { reply, lifetime } => {
                    let mut resp = SaslAuthenticateResponse::default();
                    resp.auth_bytes = Bytes::from(reply);
                    if ctx.api_version >= 1 {
                        resp.session_lifetime_ms =
                            lifetime.map_or(0, |d| d.as_millis().min(i64::MAX as u128) as i64);
                    }
                    Gate::Answer(Response::SaslAuthenticate(resp), false)
                }
                SaslAnswer::Failed { mechanism, reason } => {
                    audit_failure(ctx, peer, mechanism, &reason);
                    Gate::Answer(
                        authenticate_error(
                            ResponseError::SaslAuthenticationFailed,
                            failure_message(mechanism),
                        ),
                        true,
                    )
                }
            }
        }
        req if sasl.authenticated() => Gate::Pass(req),
        _ if sasl.principal().is_some() => Gate::Close(format!(
            "{:?} after the SASL session of {} expired (connections_max_reauth_ms) without re-authentication",
            ctx.api_key,
            sasl.principal().map_or("", |p| &**p)
        )),
        _ => Gate::Close(format!(
            "{:?} before SASL authentication (clients of a SASL listener authenticate first)",
            ctx.api_key
        )),
    }
}

/// A bare SASL message after SaslHandshake v0: the bytes to send back as a bare frame, or
/// `None` to close the connection (how Kafka ends a failed v0 exchange).
pub fn raw(security: &Security, sasl: &mut Sasl, msg: &[u8]) -> Option<Vec<u8>> {
    match sasl.authenticate(security, msg) {
        SaslAnswer::Continue(b) => Some(b),
        SaslAnswer::Authenticated { reply, .. } => Some(reply),
        SaslAnswer::Failed { mechanism, reason } => {
            tracing::info!(mechanism, reason = %reason, "SASL authentication failed (SaslHandshake v0); closing connection");
            None
        }
    }
}

fn audit_failure(ctx: &RequestContext, peer: std::net::SocketAddr, mechanism: &str, reason: &str) {
    static EVERY_SECOND: crate::clock::Throttle = crate::clock::Throttle::new(1);
    if let Some(skipped) = EVERY_SECOND.pass() {
        tracing::warn!(
            %peer,
            mechanism,
            client_id = ctx.client_id.as_deref().unwrap_or(""),
            reason,
            skipped,
            "SASL authentication failed"
        );
    }
}

/// On a listener without SASL: Kafka's answer to SaslHandshake and SaslAuthenticate.
pub fn not_a_sasl_listener(req: &Request) -> Option<Response> {
    match req {
        Request::SaslHandshake(_) => {
            let mut r = SaslHandshakeResponse::default();
            r.error_code = code(ResponseError::IllegalSaslState);
            Some(Response::SaslHandshake(r))
        }
        Request::SaslAuthenticate(_) => Some(authenticate_error(
            ResponseError::IllegalSaslState,
            "this listener does not use SASL".into(),
        )),
        _ => None,
    }
}
