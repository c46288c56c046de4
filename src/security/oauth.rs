//! SASL OAUTHBEARER (RFC 7628, KIP-255): the client sends a JWT bearer token, which is accepted
//! only if its signature verifies against a key of the JWKS file (`sasl_oauthbearer_jwks_file`,
//! read again when it changes), it has not expired, and its issuer and audience are the
//! expected ones when those are set. The principal is `User:` and the subject claim
//! (`sasl_oauthbearer_sub_claim_name`, `sub` by default). Unsigned tokens (`alg: none`) and
//! symmetric (HMAC) keys are refused: only a key pair's public half belongs in a JWKS file.

use super::scram::{failed, gs2_header, AuthFailed};
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::RwLock;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The OAUTHBEARER settings and the keys last read.
pub struct OAuth {
    jwks_file: PathBuf,
    audience: Vec<String>,
    issuer: Option<String>,
    sub_claim: String,
    clock_skew: Duration,
    keys: RwLock<Keys>,
}

struct Keys {
    /// The file's modification time when it was read.
    read_at: Option<SystemTime>,
    set: Arc<JwkSet>,
}

/// A validated token: who it is for and when it expires.
#[derive(Debug, PartialEq)]
pub struct Token {
    pub subject: String,
    pub expires: SystemTime,
}

/// The bearer token of a client's first message: `n,[a=authzid],` then `\x01`-separated
/// `key=value` pairs (`auth=Bearer <token>` among them) and a final `\x01\x01`.
pub fn bearer(msg: &[u8]) -> Result<&str, AuthFailed> {
    let msg = std::str::from_utf8(msg).map_err(|_| failed("the message is not UTF-8"))?;
    let (_flag, _authzid, kvs) = gs2_header(msg)?;
    let kvs = kvs
        .strip_suffix("\u{1}\u{1}")
        .ok_or_else(|| failed("the message does not end with two ^A"))?;
    kvs.split('\u{1}')
        .filter(|kv| !kv.is_empty())
        .find_map(|kv| kv.strip_prefix("auth="))
        .and_then(|a| {
            let (scheme, token) = a.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then_some(token.trim())
        })
        .ok_or_else(|| failed("no auth=Bearer <token>"))
}

async fn read_keys(path: &PathBuf) -> Result<(Option<SystemTime>, JwkSet), String> {
    let modified = tokio::fs::metadata(path)
        .await
        .ok()
        .and_then(|m| m.modified().ok());
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|e| format!("sasl_oauthbearer_jwks_file {}: {e}", path.display()))?;
    let set: JwkSet = serde_json::from_slice(&bytes)
        .map_err(|e| format!("sasl_oauthbearer_jwks_file {}: {e}", path.display()))?;
    Ok((modified, set))
}

impl OAuth {
    /// Reads the JWKS file: `Err` if it cannot be read or parsed.
    pub async fn load(
        jwks_file: PathBuf,
        audience: &str,
        issuer: &str,
        sub_claim: &str,
        clock_skew: Duration,
    ) -> Result<Arc<OAuth>, String> {
        let (read_at, set) = read_keys(&jwks_file).await?;
        Ok(Arc::new(OAuth {
            jwks_file,
            audience: audience
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(String::from)
                .collect(),
            issuer: (!issuer.is_empty()).then(|| issuer.to_string()),
            sub_claim: sub_claim.to_string(),
            clock_skew,
            keys: RwLock::new(Keys {
                read_at,
                set: Arc::new(set),
            }),
        }))
    }

    /// Reads the JWKS file again if it changed; a file that does not parse keeps the keys read
    /// before, with a log line.
    pub async fn reload_if_changed(&self) {
        let modified = tokio::fs::metadata(&self.jwks_file)
            .await
            .ok()
            .and_then(|m| m.modified().ok());
        if modified == self.keys.read().read_at {
            return;
        }
        match read_keys(&self.jwks_file).await {
            Ok((read_at, set)) => {
                tracing::info!(file = %self.jwks_file.display(), keys = set.keys.len(), "JWKS file read again");
                *self.keys.write() = Keys {
                    read_at,
                    set: Arc::new(set),
                };
            }
            Err(e) => {
                tracing::warn!(error = %e, "the JWKS file changed but does not load; keeping the keys read before");
                self.keys.write().read_at = modified;
            }
        }
    }

    /// Checks the JWKS file every few seconds until `stop`.
    pub async fn watch(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        super::every_reload_check(stop, || self.reload_if_changed()).await
    }

    /// Checks a token: signature, expiry, issuer, audience and subject.
    pub fn validate(&self, token: &str) -> Result<Token, AuthFailed> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| failed(format!("not a JWT: {e}")))?;
        let set = self.keys.read().set.clone();
        let jwk = match &header.kid {
            Some(kid) => set
                .find(kid)
                .ok_or_else(|| failed(format!("no key `{kid}` in the JWKS file")))?,
            None if set.keys.len() == 1 => &set.keys[0],
            None => {
                return Err(failed(
                    "the token names no key (kid) and the JWKS file has several",
                ))
            }
        };
        check_key(jwk, header.alg)?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| failed(format!("key: {e}")))?;
        let mut v = Validation::new(header.alg);
        v.leeway = self.clock_skew.as_secs();
        v.validate_nbf = true;
        // what is checked must be there: a token without `aud` or `iss` is not let through
        // because it says nothing
        let mut required = vec!["exp"];
        if self.audience.is_empty() {
            v.validate_aud = false;
        } else {
            v.set_audience(&self.audience);
            required.push("aud");
        }
        if let Some(iss) = &self.issuer {
            v.set_issuer(&[iss]);
            required.push("iss");
        }
        v.set_required_spec_claims(&required);
        let data =
            jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, &key, &v)
                .map_err(|e| failed(format!("token refused: {e}")))?;
        let subject = data
            .claims
            .get(&self.sub_claim)
            .and_then(|s| s.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| failed(format!("no `{}` claim", self.sub_claim)))?
            .to_string();
        // Kafka's validator requires an issued-at time too
        if !data.claims.get("iat").is_some_and(|i| i.is_number()) {
            return Err(failed("no numeric iat claim"));
        }
        let exp = data
            .claims
            .get("exp")
            .and_then(|e| e.as_f64())
            .filter(|e| e.is_finite() && *e >= 0.0)
            .ok_or_else(|| failed("no numeric exp claim"))?;
        let expires = UNIX_EPOCH
            .checked_add(Duration::from_secs_f64(exp.min(1e12)))
            .ok_or_else(|| failed("exp is out of range"))?;
        Ok(Token { subject, expires })
    }
}

/// The token's algorithm fits the key: asymmetric only, of the key's family, and the key's own
/// `alg` when it names one.
fn check_key(jwk: &Jwk, alg: Algorithm) -> Result<(), AuthFailed> {
    use Algorithm::*;
    let family_ok = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
        AlgorithmParameters::EllipticCurve(_) => matches!(alg, ES256 | ES384),
        AlgorithmParameters::OctetKeyPair(_) => matches!(alg, EdDSA),
        AlgorithmParameters::OctetKey(_) => false,
    };
    if !family_ok {
        return Err(failed(format!("{alg:?} does not fit the key's type")));
    }
    if let Some(ka) = jwk.common.key_algorithm {
        if format!("{ka:?}") != format!("{alg:?}") {
            return Err(failed(format!("the key is for {ka:?}, not {alg:?}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_token_is_found_in_the_client_message() {
        assert_eq!(
            bearer(b"n,,\x01auth=Bearer abc.def.ghi\x01\x01").map_err(|e| e.reason),
            Ok("abc.def.ghi")
        );
        assert_eq!(
            bearer(b"n,a=alice,\x01host=x\x01auth=bearer t\x01\x01").map_err(|e| e.reason),
            Ok("t")
        );
        for bad in [
            &b""[..],
            b"n,,",
            b"n,,\x01auth=Bearer t",
            b"p=x,,\x01auth=Bearer t\x01\x01",
            b"n,,\x01auth=Basic t\x01\x01",
            b"n,,\x01\x01",
            b"\xff\xfe",
        ] {
            assert!(bearer(bad).is_err(), "{bad:?}");
        }
    }
}
