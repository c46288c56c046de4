//! SASL OAUTHBEARER over real TCP: JWTs signed with a key of the JWKS file are accepted, as
//! the principal of their subject claim, with a session no longer than the token; expired,
//! wrongly addressed, unsigned, forged and unknown-key tokens are refused with
//! SASL_AUTHENTICATION_FAILED and a closed connection; a rotated JWKS file is read again.

#![allow(clippy::disallowed_methods)] // a test (or benchmark) reads and writes its files directly

mod common;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use common::{read_response, roundtrip, send_request, TestBroker};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SASL_AUTHENTICATION_FAILED: i16 = 58;

/// A P-256 key pair: the signing key and its public JWK named `kid`.
fn key(kid: &str) -> (EncodingKey, Jwk) {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .expect("key");
    let enc = EncodingKey::from_ec_der(pkcs8.as_ref());
    let mut jwk = Jwk::from_encoding_key(&enc, Algorithm::ES256).expect("jwk");
    jwk.common.key_id = Some(kid.to_string());
    (enc, jwk)
}

fn write_jwks(path: &std::path::Path, keys: &[&Jwk]) {
    let set = JwkSet {
        keys: keys.iter().map(|k| (*k).clone()).collect(),
    };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&set).expect("json")).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// A token for `sub` signed by `key` as `kid`, expiring in `ttl` seconds (negative: expired).
fn token(key: &EncodingKey, kid: &str, claims: serde_json::Value) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some(kid.to_string());
    jsonwebtoken::encode(&h, &claims, key).expect("sign")
}

fn claims(sub: &str, ttl: i64, aud: &str) -> serde_json::Value {
    serde_json::json!({
        "sub": sub,
        "iss": "https://idp.example",
        "aud": aud,
        "iat": now(),
        "exp": (now() as i64 + ttl) as u64,
    })
}

fn dial(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

/// SaslHandshake OAUTHBEARER then SaslAuthenticate with `token`: (error code, session lifetime
/// ms), and the connection.
fn login(addr: SocketAddr, token: &str) -> ((i16, i64), TcpStream) {
    let mut c = dial(addr);
    let mut h = SaslHandshakeRequest::default();
    h.mechanism = StrBytes::from_static_str("OAUTHBEARER");
    let hr: SaslHandshakeResponse = roundtrip(&mut c, 17, 1, 1, &h);
    assert_eq!(hr.error_code, 0, "{:?}", hr.mechanisms);
    let mut a = SaslAuthenticateRequest::default();
    a.auth_bytes = format!("n,,\x01auth=Bearer {token}\x01\x01")
        .into_bytes()
        .into();
    send_request(&mut c, 36, 2, 2, &a);
    let r: SaslAuthenticateResponse = read_response(&mut c, 36, 2, 2).expect("answer");
    ((r.error_code, r.session_lifetime_ms), c)
}

fn closed(c: &mut TcpStream) -> bool {
    let mut b = [0u8; 64];
    matches!(c.read(&mut b), Ok(0) | Err(_))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauthbearer_tokens_are_checked_against_the_jwks_file() {
    let keys_dir = tempfile::tempdir().expect("dir");
    let jwks = keys_dir.path().join("jwks.json");
    let (k1, jwk1) = key("k1");
    let (k2, jwk2) = key("k2");
    let (forger, _) = key("k1");
    write_jwks(&jwks, &[&jwk1]);
    let jwks_path = jwks.to_string_lossy().into_owned();
    let b = TestBroker::start_with(move |c| {
        c.listeners = "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0".into();
        c.sasl_enabled_mechanisms = "SCRAM-SHA-512,OAUTHBEARER".into();
        c.sasl_oauthbearer_jwks_file = jwks_path;
        c.sasl_oauthbearer_expected_audience = "tiercel,other".into();
        c.sasl_oauthbearer_expected_issuer = "https://idp.example".into();
        c.connections_max_reauth_ms = 600_000;
    })
    .await;
    let sasl = b
        .listeners
        .iter()
        .find(|(n, _)| n == "SASL_PLAINTEXT")
        .map(|(_, a)| *a)
        .expect("listener");
    tokio::task::spawn_blocking(move || {
        // a good token: authenticated, its session no longer than the token's 120 s
        let ((err, lifetime), mut c) =
            login(sasl, &token(&k1, "k1", claims("alice", 120, "tiercel")));
        assert_eq!(err, 0);
        assert!((100_000..=120_000).contains(&lifetime), "{lifetime}");
        let m: MetadataResponse = roundtrip(&mut c, 3, 12, 3, &MetadataRequest::default());
        assert_eq!(m.brokers.len(), 1, "served once authenticated");

        let refused = [
            (
                "expired",
                token(&k1, "k1", claims("alice", -120, "tiercel")),
            ),
            (
                "another audience",
                token(&k1, "k1", claims("alice", 120, "somewhere")),
            ),
            (
                "another issuer",
                token(&k1, "k1", {
                    let mut c = claims("alice", 120, "tiercel");
                    c["iss"] = "https://evil.example".into();
                    c
                }),
            ),
            (
                "no subject",
                token(&k1, "k1", {
                    let mut c = claims("alice", 120, "tiercel");
                    c.as_object_mut().expect("object").remove("sub");
                    c
                }),
            ),
            ("no audience claim (an audience is expected)", {
                let mut c = claims("alice", 120, "tiercel");
                c.as_object_mut().expect("object").remove("aud");
                token(&k1, "k1", c)
            }),
            ("no iat claim", {
                let mut c = claims("alice", 120, "tiercel");
                c.as_object_mut().expect("object").remove("iat");
                token(&k1, "k1", c)
            }),
            (
                "signed by another key under the same kid",
                token(&forger, "k1", claims("alice", 120, "tiercel")),
            ),
            (
                "an unknown kid",
                token(&k2, "k2", claims("alice", 120, "tiercel")),
            ),
            ("unsigned (alg none)", {
                use base64::Engine;
                let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
                format!(
                    "{}.{}.",
                    e.encode(br#"{"alg":"none","kid":"k1"}"#),
                    e.encode(claims("alice", 120, "tiercel").to_string())
                )
            }),
            ("not a JWT", "garbage".to_string()),
        ];
        for (what, t) in refused {
            let ((err, _), mut c) = login(sasl, &t);
            assert_eq!(err, SASL_AUTHENTICATION_FAILED, "{what}");
            assert!(closed(&mut c), "{what}: the connection is closed");
        }

        // the JWKS file rotated to k2: within a few seconds k2's tokens are accepted
        write_jwks(&jwks, &[&jwk2]);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let ((err, _), _) = login(sasl, &token(&k2, "k2", claims("bob", 60, "other")));
            if err == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the rotated JWKS file was not read again"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        let ((err, _), _) = login(sasl, &token(&k1, "k1", claims("alice", 60, "tiercel")));
        assert_eq!(err, SASL_AUTHENTICATION_FAILED, "k1 left the JWKS file");
    })
    .await
    .expect("checks");
}
