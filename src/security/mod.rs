//! Security of the Kafka listeners: TLS ([`tls`]), SASL authentication against the user store
//! kept with the catalog ([`scram`], [`Sasl`]), and the principal a connection acts as.
//!
//! A connection on a SASL listener is served nothing but ApiVersions, SaslHandshake and
//! SaslAuthenticate until an exchange has validated an identity; a failed exchange is answered
//! with SASL_AUTHENTICATION_FAILED and the connection closed, as Kafka does.

pub mod acl;
pub mod cli;
pub mod oauth;
pub mod principal;
pub mod quotas;
pub mod scram;
pub mod tls;

use crate::catalog::Catalog;
use scram::{AuthFailed, Scram, ScramServer, Step};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The principal of a connection that did not authenticate (PLAINTEXT, or SSL without a
/// client certificate), as Kafka names it.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// A SASL mechanism this broker offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Scram(Scram),
    OAuthBearer,
}

impl Mechanism {
    pub fn parse(s: &str) -> Option<Mechanism> {
        match s {
            "PLAIN" => Some(Mechanism::Plain),
            "OAUTHBEARER" => Some(Mechanism::OAuthBearer),
            other => Scram::from_name(other).map(Mechanism::Scram),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(s) => s.name(),
            Mechanism::OAuthBearer => "OAUTHBEARER",
        }
    }
}

/// How often files that are read again when they change (certificates, the JWKS file) are
/// checked.
const RELOAD_CHECK: Duration = Duration::from_secs(5);

/// Runs `check` every [`RELOAD_CHECK`] until `stop`.
pub(crate) async fn every_reload_check<F: std::future::Future<Output = ()>>(
    stop: tokio_util::sync::CancellationToken,
    mut check: impl FnMut() -> F,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RELOAD_CHECK) => {}
            _ = stop.cancelled() => return,
        }
        check().await;
    }
}

/// What every connection's authentication shares.
pub struct Security {
    pub catalog: Arc<Catalog>,
    /// `sasl_enabled_mechanisms`, in the order offered.
    pub mechanisms: Vec<Mechanism>,
    /// `connections_max_reauth_ms` (`None`: sessions do not expire).
    pub reauth: Option<Duration>,
    /// `authentication_timeout_ms`.
    pub auth_timeout: Duration,
    /// `ssl_principal_mapping_rules`: a client certificate's subject DN to a principal name.
    pub principals: principal::PrincipalMapper,
    /// OAUTHBEARER's token validation, when that mechanism is enabled.
    pub oauth: Option<Arc<oauth::OAuth>>,
}

impl Security {
    /// `Err`: `ssl_principal_mapping_rules` does not parse.
    pub fn new(
        catalog: Arc<Catalog>,
        config: &crate::config::Config,
        oauth: Option<Arc<oauth::OAuth>>,
    ) -> Result<Security, String> {
        let principals = principal::PrincipalMapper::parse(&config.ssl_principal_mapping_rules)
            .map_err(|e| format!("ssl_principal_mapping_rules: {e}"))?;
        Ok(Security {
            principals,
            oauth,
            catalog,
            mechanisms: config
                .sasl_enabled_mechanisms
                .split(',')
                .filter_map(|m| Mechanism::parse(m.trim()))
                .collect(),
            reauth: (config.connections_max_reauth_ms > 0)
                .then(|| Duration::from_millis(config.connections_max_reauth_ms)),
            auth_timeout: Duration::from_millis(config.authentication_timeout_ms),
        })
    }

    pub fn mechanism_names(&self) -> Vec<&'static str> {
        self.mechanisms.iter().map(|m| m.name()).collect()
    }
}

enum Exchange {
    Plain,
    Scram(ScramServer),
    OAuthBearer,
}

/// Where a connection's SASL authentication stands.
enum State {
    /// Waiting for SaslHandshake.
    Handshake,
    /// Handshake done: the exchange's messages follow (`raw`: as bare frames, SaslHandshake v0).
    Exchanging { exchange: Exchange, raw: bool },
    /// Authenticated; a later SaslHandshake starts a re-authentication (KIP-368).
    Done,
}

/// One connection's SASL session.
pub struct Sasl {
    state: State,
    /// `User:<name>` once authenticated.
    principal: Option<Arc<str>>,
    /// When the session ends (KIP-368), if sessions expire.
    expires: Option<Instant>,
}

/// The answer to one SASL message.
pub enum SaslAnswer {
    /// Send these bytes (the challenge, or the last message) and carry on.
    Continue(Vec<u8>),
    /// Authenticated: send these bytes; the session lasts `lifetime` (`None`: forever).
    Authenticated {
        reply: Vec<u8>,
        lifetime: Option<Duration>,
    },
    /// Refused: answer SASL_AUTHENTICATION_FAILED and close; `reason` is for the log.
    Failed {
        mechanism: &'static str,
        reason: String,
    },
}

impl Default for Sasl {
    fn default() -> Self {
        Sasl::new()
    }
}

impl Sasl {
    pub fn new() -> Sasl {
        Sasl {
            state: State::Handshake,
            principal: None,
            expires: None,
        }
    }

    /// Authenticated, and the session has not expired.
    pub fn authenticated(&self) -> bool {
        self.principal.is_some() && self.expires.is_none_or(|e| Instant::now() < e)
    }

    /// Shared, so each request's session takes it without a copy.
    pub fn principal(&self) -> Option<&Arc<str>> {
        self.principal.as_ref()
    }

    /// The next frame is a bare SASL message (after SaslHandshake v0), not a Kafka request.
    pub fn expects_raw(&self) -> bool {
        matches!(self.state, State::Exchanging { raw: true, .. })
    }

    /// Whether a SaslHandshake is expected now: first, or to re-authenticate.
    pub fn handshake_allowed(&self) -> bool {
        matches!(self.state, State::Handshake | State::Done)
    }

    /// SaslHandshake for `mechanism`: whether it is offered (if not, nothing changes).
    pub fn handshake(&mut self, security: &Security, mechanism: &str, version: i16) -> bool {
        let Some(m) = security
            .mechanisms
            .iter()
            .copied()
            .find(|m| m.name() == mechanism)
        else {
            return false;
        };
        let exchange = match m {
            Mechanism::Plain => Exchange::Plain,
            Mechanism::Scram(s) => Exchange::Scram(ScramServer::new(s)),
            Mechanism::OAuthBearer => Exchange::OAuthBearer,
        };
        self.state = State::Exchanging {
            exchange,
            raw: version == 0,
        };
        true
    }

    /// Whether the exchange is under way (SaslAuthenticate is expected).
    pub fn exchanging(&self) -> bool {
        matches!(self.state, State::Exchanging { .. })
    }

    /// One message of the exchange.
    pub fn authenticate(&mut self, security: &Security, msg: &[u8]) -> SaslAnswer {
        let State::Exchanging { exchange, .. } = &mut self.state else {
            return SaslAnswer::Failed {
                mechanism: "",
                reason: "SaslAuthenticate before SaslHandshake".into(),
            };
        };
        let catalog = &security.catalog;
        // a bearer token's expiry bounds the session (KIP-368), like the reauth interval
        let mut token_expires = None;
        let (outcome, mechanism) = match exchange {
            Exchange::OAuthBearer => (
                match &security.oauth {
                    None => Err(AuthFailed {
                        reason: "OAUTHBEARER has no JWKS file".into(),
                    }),
                    Some(o) => oauth::bearer(msg).and_then(|t| o.validate(t)).map(|t| {
                        token_expires = Some(t.expires);
                        Step::Done {
                            user: t.subject,
                            reply: Vec::new(),
                        }
                    }),
                },
                "OAUTHBEARER",
            ),
            Exchange::Plain => (
                scram::plain(msg, |u, m| catalog.scram_credential(u, m.name())).map(|user| {
                    Step::Done {
                        user,
                        reply: Vec::new(),
                    }
                }),
                "PLAIN",
            ),
            Exchange::Scram(s) => {
                let name = s.mechanism().name();
                (s.step(msg, |u| catalog.scram_credential(u, name)), name)
            }
        };
        match outcome {
            Ok(Step::Continue(challenge)) => SaslAnswer::Continue(challenge),
            Ok(Step::Done { user, reply }) => {
                let principal = format!("User:{user}");
                if self.principal.as_ref().is_some_and(|p| **p != *principal) {
                    // KIP-368: re-authentication may not change who the connection is
                    self.state = State::Handshake;
                    return SaslAnswer::Failed {
                        mechanism,
                        reason: "re-authentication must keep the same principal".into(),
                    };
                }
                self.principal = Some(Arc::from(principal));
                // as Kafka: the reauth interval, the credential's remaining life, or the
                // shorter of the two
                let remaining = token_expires.map(|exp| {
                    exp.duration_since(std::time::SystemTime::now())
                        .unwrap_or_default()
                });
                let lifetime = match (security.reauth, remaining) {
                    (Some(d), Some(r)) => Some(d.min(r)),
                    (d, r) => d.or(r),
                };
                self.expires = lifetime.map(|d| Instant::now() + d);
                self.state = State::Done;
                crate::metrics::sasl_authenticated(mechanism);
                SaslAnswer::Authenticated { reply, lifetime }
            }
            Err(AuthFailed { reason }) => {
                self.state = State::Handshake;
                crate::metrics::sasl_failed(mechanism);
                SaslAnswer::Failed { mechanism, reason }
            }
        }
    }
}

/// The message a client is given for a failed exchange (never which of user or password).
pub fn failure_message(mechanism_hint: &str) -> String {
    format!("Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism_hint}")
}
