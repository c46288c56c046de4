//! Listeners, SASL and TLS over real TCP: users made over the Kafka API (KIP-554), SCRAM and
//! PLAIN exchanges that succeed only with the right password, nothing served before
//! authentication, each listener answered with its own advertised address, users surviving a
//! restart, TLS with client certificates and certificate reload; librdkafka over SASL PLAIN.

#![allow(clippy::disallowed_methods)] // a test (or benchmark) reads and writes its files directly

mod common;

use aws_lc_rs::{digest, hmac};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use common::{read_response, roundtrip, send_request, TestBroker};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use tiercel::security::scram::Scram;
use tokio_rustls::rustls;

const SASL_HANDSHAKE: i16 = 17;
const SASL_AUTHENTICATE: i16 = 36;
const METADATA: i16 = 3;
const API_VERSIONS: i16 = 18;
const DESCRIBE_USERS: i16 = 50;
const ALTER_USERS: i16 = 51;

fn listener(b: &TestBroker, name: &str) -> SocketAddr {
    b.listeners
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, a)| *a)
        .unwrap_or_else(|| panic!("listener {name} in {:?}", b.listeners))
}

fn dial(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

async fn sasl_broker(dir: Option<tempfile::TempDir>) -> TestBroker {
    let tweak = |c: &mut tiercel::config::Config| {
        c.listeners = "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0".into();
        c.authentication_timeout_ms = 2000;
    };
    match dir {
        Some(d) => TestBroker::start_in(d, tweak).await,
        None => TestBroker::start_with(tweak).await,
    }
}

/// AlterUserScramCredentials as the Java Admin sends it: the salted password, not the password.
fn set_user<S: Read + Write>(
    s: &mut S,
    user: &str,
    mech: Scram,
    password: &str,
    iterations: i32,
) -> i16 {
    let salt = b"0123456789abcdef0123456789abcdef".to_vec();
    let mut u = ScramCredentialUpsertion::default();
    u.name = StrBytes::from_string(user.into());
    u.mechanism = mech.type_id();
    u.iterations = iterations;
    u.salted_password = mech
        .salted_password(password.as_bytes(), &salt, iterations.max(1) as u32)
        .into();
    u.salt = salt.into();
    let mut req = AlterUserScramCredentialsRequest::default();
    req.upsertions = vec![u];
    let resp: AlterUserScramCredentialsResponse = roundtrip(s, ALTER_USERS, 0, 7, &req);
    assert_eq!(resp.results.len(), 1);
    resp.results[0].error_code
}

fn mac(mech: Scram, key: &[u8], data: &[u8]) -> Vec<u8> {
    let alg = match mech {
        Scram::Sha256 => hmac::HMAC_SHA256,
        Scram::Sha512 => hmac::HMAC_SHA512,
    };
    hmac::sign(&hmac::Key::new(alg, key), data)
        .as_ref()
        .to_vec()
}

fn hash(mech: Scram, data: &[u8]) -> Vec<u8> {
    let alg = match mech {
        Scram::Sha256 => &digest::SHA256,
        Scram::Sha512 => &digest::SHA512,
    };
    digest::digest(alg, data).as_ref().to_vec()
}

fn handshake<S: Read + Write>(s: &mut S, mechanism: &str, version: i16) -> SaslHandshakeResponse {
    let mut h = SaslHandshakeRequest::default();
    h.mechanism = StrBytes::from_string(mechanism.into());
    roundtrip(s, SASL_HANDSHAKE, version, 1, &h)
}

fn authenticate<S: Read + Write>(
    s: &mut S,
    bytes: Vec<u8>,
    corr: i32,
) -> std::io::Result<SaslAuthenticateResponse> {
    let mut a = SaslAuthenticateRequest::default();
    a.auth_bytes = bytes.into();
    send_request(s, SASL_AUTHENTICATE, 2, corr, &a);
    read_response(s, SASL_AUTHENTICATE, 2, corr)
}

/// A SCRAM exchange as a client runs it; the final SaslAuthenticate answer (error or not),
/// after checking the server's signature when it succeeded.
fn scram_login<S: Read + Write>(
    s: &mut S,
    mech: Scram,
    user: &str,
    password: &str,
) -> SaslAuthenticateResponse {
    let hs = handshake(s, mech.name(), 1);
    assert_eq!(hs.error_code, 0, "handshake for {}", mech.name());
    let bare = format!("n={user},r=clientnonce123");
    let first = authenticate(s, format!("n,,{bare}").into_bytes(), 2).expect("server-first");
    assert_eq!(first.error_code, 0);
    let server_first = String::from_utf8(first.auth_bytes.to_vec()).expect("utf-8");
    let attr = |k: &str| {
        server_first
            .split(',')
            .find_map(|a| a.strip_prefix(k))
            .map(str::to_string)
            .expect("attribute")
    };
    let (nonce, salt, iterations) = (attr("r="), attr("s="), attr("i="));
    assert!(
        nonce.starts_with("clientnonce123") && nonce.len() > 20,
        "{nonce}"
    );
    let salted = mech.salted_password(
        password.as_bytes(),
        &B64.decode(salt).expect("salt"),
        iterations.parse().expect("iterations"),
    );
    let client_key = mac(mech, &salted, b"Client Key");
    let without_proof = format!("c=biws,r={nonce}");
    let auth = format!("{bare},{server_first},{without_proof}");
    let sig = mac(mech, &hash(mech, &client_key), auth.as_bytes());
    let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
    let last = authenticate(
        s,
        format!("{without_proof},p={}", B64.encode(proof)).into_bytes(),
        3,
    )
    .expect("server-final");
    if last.error_code == 0 {
        let server_sig = mac(mech, &mac(mech, &salted, b"Server Key"), auth.as_bytes());
        assert_eq!(
            last.auth_bytes.as_ref(),
            format!("v={}", B64.encode(server_sig)).as_bytes(),
            "the server proves it knows the credential too"
        );
    }
    last
}

fn metadata_port<S: Read + Write>(s: &mut S) -> i32 {
    let resp: MetadataResponse = roundtrip(s, METADATA, 12, 9, &MetadataRequest::default());
    assert_eq!(resp.brokers.len(), 1);
    resp.brokers[0].port
}

/// The broker closes the connection (after whatever it still sends, such as a TLS alert)
/// within the read timeout.
fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 512];
    let mut received = 0;
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(n) if received + n < 64 * 1024 => received += n,
            Ok(_) => return false,
            Err(e) => {
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                )
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_and_plain_users_over_the_kafka_api() {
    let b = sasl_broker(None).await;
    let (plain_addr, sasl_addr) = (listener(&b, "PLAINTEXT"), listener(&b, "SASL_PLAINTEXT"));
    tokio::task::spawn_blocking(move || {
        let mut admin = dial(plain_addr);
        assert_eq!(metadata_port(&mut admin), i32::from(plain_addr.port()));
        assert_eq!(
            set_user(&mut admin, "alice", Scram::Sha512, "wonderland", 4096),
            0
        );
        assert_eq!(
            set_user(&mut admin, "alice", Scram::Sha256, "wonderland", 8192),
            0
        );
        assert_eq!(
            set_user(&mut admin, "bob", Scram::Sha256, "builder", 4096),
            0
        );
        // what Kafka refuses
        assert_eq!(set_user(&mut admin, "carol", Scram::Sha256, "x", 100), 93); // UNACCEPTABLE_CREDENTIAL
        assert_eq!(set_user(&mut admin, "", Scram::Sha256, "x", 4096), 93);
        let mut del = AlterUserScramCredentialsRequest::default();
        let mut d = ScramCredentialDeletion::default();
        d.name = StrBytes::from_static_str("nobody");
        d.mechanism = 1;
        del.deletions = vec![d.clone()];
        let mut bad_mech = d.clone();
        bad_mech.name = StrBytes::from_static_str("bob");
        bad_mech.mechanism = 9;
        del.deletions.push(bad_mech);
        let resp: AlterUserScramCredentialsResponse =
            roundtrip(&mut admin, ALTER_USERS, 0, 8, &del);
        let codes: Vec<(String, i16)> = resp
            .results
            .iter()
            .map(|r| (r.user.to_string(), r.error_code))
            .collect();
        assert_eq!(codes, vec![("bob".into(), 33), ("nobody".into(), 91)]);

        let mut describe = DescribeUserScramCredentialsRequest::default();
        describe.users = Some(
            ["alice", "zed", "alice"]
                .iter()
                .map(|u| {
                    let mut n = UserName::default();
                    n.name = StrBytes::from_static_str(u);
                    n
                })
                .collect(),
        );
        let resp: DescribeUserScramCredentialsResponse =
            roundtrip(&mut admin, DESCRIBE_USERS, 0, 10, &describe);
        let got: Vec<(String, i16, usize)> = resp
            .results
            .iter()
            .map(|r| (r.user.to_string(), r.error_code, r.credential_infos.len()))
            .collect();
        assert_eq!(got, vec![("alice".into(), 92, 0), ("zed".into(), 91, 0)]);
        let all: DescribeUserScramCredentialsResponse = roundtrip(
            &mut admin,
            DESCRIBE_USERS,
            0,
            11,
            &DescribeUserScramCredentialsRequest::default(),
        );
        let mut infos: Vec<(String, i8, i32)> = all
            .results
            .iter()
            .flat_map(|r| {
                r.credential_infos
                    .iter()
                    .map(|c| (r.user.to_string(), c.mechanism, c.iterations))
            })
            .collect();
        infos.sort();
        assert_eq!(
            infos,
            vec![
                ("alice".into(), 1, 8192),
                ("alice".into(), 2, 4096),
                ("bob".into(), 1, 4096)
            ]
        );

        // SCRAM: the right password only; the SASL listener answers with its own address
        for mech in [Scram::Sha512, Scram::Sha256] {
            let mut s = dial(sasl_addr);
            let ok = scram_login(&mut s, mech, "alice", "wonderland");
            assert_eq!(ok.error_code, 0, "{:?}", ok.error_message);
            assert_eq!(metadata_port(&mut s), i32::from(sasl_addr.port()));
            let mut s = dial(sasl_addr);
            let refused = scram_login(&mut s, mech, "alice", "looking-glass");
            assert_eq!(refused.error_code, 58, "SASL_AUTHENTICATION_FAILED");
            assert!(closed(&mut s), "a failed exchange closes the connection");
        }
        let mut s = dial(sasl_addr);
        assert_eq!(
            scram_login(&mut s, Scram::Sha512, "mallory", "x").error_code,
            58
        );

        // PLAIN against the same store
        let mut s = dial(sasl_addr);
        assert_eq!(handshake(&mut s, "PLAIN", 1).error_code, 0);
        let ok = authenticate(&mut s, b"\0bob\0builder".to_vec(), 2).expect("answer");
        assert_eq!(ok.error_code, 0);
        assert_eq!(metadata_port(&mut s), i32::from(sasl_addr.port()));
        let mut s = dial(sasl_addr);
        assert_eq!(handshake(&mut s, "PLAIN", 1).error_code, 0);
        let no = authenticate(&mut s, b"\0bob\0wrecker".to_vec(), 2).expect("answer");
        assert_eq!(no.error_code, 58);
        assert!(closed(&mut s));

        // SaslHandshake v0: the exchange in bare frames, then requests as usual
        let mut s = dial(sasl_addr);
        assert_eq!(handshake(&mut s, "PLAIN", 0).error_code, 0);
        let token = b"\0bob\0builder";
        let mut frame = (token.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(token);
        s.write_all(&frame).expect("write");
        let mut len = [0u8; 4];
        s.read_exact(&mut len).expect("bare answer");
        assert_eq!(i32::from_be_bytes(len), 0);
        assert_eq!(metadata_port(&mut s), i32::from(sasl_addr.port()));

        // an unknown mechanism is answered with what is offered, then the connection closes
        let mut s = dial(sasl_addr);
        let hs = handshake(&mut s, "GSSAPI", 1);
        assert_eq!(hs.error_code, 33);
        let offered: Vec<String> = hs.mechanisms.iter().map(|m| m.to_string()).collect();
        assert_eq!(offered, ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]);
        assert!(closed(&mut s));

        // nothing but ApiVersions and the exchange before authentication
        let mut s = dial(sasl_addr);
        let v: ApiVersionsResponse =
            roundtrip(&mut s, API_VERSIONS, 3, 1, &ApiVersionsRequest::default());
        assert_eq!(v.error_code, 0);
        send_request(&mut s, METADATA, 12, 2, &MetadataRequest::default());
        assert!(
            closed(&mut s),
            "Metadata before authentication closes the connection"
        );
        // a big frame before authentication closes the connection at its length
        let mut s = dial(sasl_addr);
        s.write_all(&(10_000_000i32).to_be_bytes()).expect("write");
        assert!(closed(&mut s), "10 MB claimed before authentication");
        // and a client that never authenticates is cut after authentication_timeout_ms
        let mut s = dial(sasl_addr);
        let started = std::time::Instant::now();
        assert!(closed(&mut s));
        assert!(started.elapsed() < Duration::from_secs(9));

        // the PLAINTEXT listener has no SASL
        let hs = handshake(&mut admin, "PLAIN", 1);
        assert_eq!(hs.error_code, 34, "ILLEGAL_SASL_STATE");
    })
    .await
    .expect("client");

    // users survive a restart
    let dir = b.stop().await;
    let b = sasl_broker(Some(dir)).await;
    let sasl_addr = listener(&b, "SASL_PLAINTEXT");
    tokio::task::spawn_blocking(move || {
        let mut s = dial(sasl_addr);
        assert_eq!(
            scram_login(&mut s, Scram::Sha512, "alice", "wonderland").error_code,
            0
        );
    })
    .await
    .expect("client");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reauthentication_keeps_the_connection_and_expiry_closes_it() {
    let b = TestBroker::start_with(|c| {
        c.listeners = "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0".into();
        c.connections_max_reauth_ms = 1500;
    })
    .await;
    let (plain_addr, sasl_addr) = (listener(&b, "PLAINTEXT"), listener(&b, "SASL_PLAINTEXT"));
    tokio::task::spawn_blocking(move || {
        let mut admin = dial(plain_addr);
        assert_eq!(set_user(&mut admin, "alice", Scram::Sha256, "pw", 4096), 0);
        assert_eq!(set_user(&mut admin, "bob", Scram::Sha256, "pw2", 4096), 0);
        let mut s = dial(sasl_addr);
        let ok = scram_login(&mut s, Scram::Sha256, "alice", "pw");
        assert_eq!(ok.error_code, 0);
        assert_eq!(
            ok.session_lifetime_ms, 1500,
            "KIP-368: the session's lifetime"
        );
        // re-authenticating on the same connection before it expires
        std::thread::sleep(Duration::from_millis(1000));
        assert_eq!(
            scram_login(&mut s, Scram::Sha256, "alice", "pw").error_code,
            0
        );
        std::thread::sleep(Duration::from_millis(1000));
        assert_eq!(metadata_port(&mut s), i32::from(sasl_addr.port()));
        // re-authenticating as someone else is refused
        assert_eq!(
            scram_login(&mut s, Scram::Sha256, "bob", "pw2").error_code,
            58
        );
        // a session left to expire: the next request closes the connection
        let mut s = dial(sasl_addr);
        assert_eq!(
            scram_login(&mut s, Scram::Sha256, "alice", "pw").error_code,
            0
        );
        std::thread::sleep(Duration::from_millis(1800));
        send_request(&mut s, METADATA, 12, 5, &MetadataRequest::default());
        assert!(closed(&mut s));
    })
    .await
    .expect("client");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_produces_and_consumes_over_sasl_plain() {
    use rdkafka::producer::FutureRecord;
    let b = sasl_broker(None).await;
    let (plain_addr, sasl_addr) = (listener(&b, "PLAINTEXT"), listener(&b, "SASL_PLAINTEXT"));
    tokio::task::spawn_blocking(move || {
        let mut admin = dial(plain_addr);
        assert_eq!(
            set_user(&mut admin, "app", Scram::Sha512, "s3cret", 4096),
            0
        );
    })
    .await
    .expect("admin");
    let client = move |password: &str| {
        let mut c = rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", sasl_addr.to_string())
            .set("security.protocol", "SASL_PLAINTEXT")
            .set("sasl.mechanism", "PLAIN")
            .set("sasl.username", "app")
            .set("sasl.password", password)
            .set("message.timeout.ms", "10000");
        c
    };
    let producer: rdkafka::producer::FutureProducer = client("s3cret").create().expect("producer");
    for i in 0..20 {
        let payload = format!("v{i}");
        producer
            .send(
                FutureRecord::<(), _>::to("secured").payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .expect("delivered over SASL");
    }
    let sasl_bootstrap = sasl_addr.to_string();
    let got = tokio::task::spawn_blocking(move || {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::Message;
        let mut c = client("s3cret");
        c.set("group.id", "g")
            .set("auto.offset.reset", "earliest")
            .set("bootstrap.servers", &sasl_bootstrap);
        let consumer: BaseConsumer = c.create().expect("consumer");
        consumer.subscribe(&["secured"]).expect("subscribe");
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while got.len() < 20 && std::time::Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
            }
        }
        got
    })
    .await
    .expect("consumer");
    assert_eq!(got.len(), 20, "{got:?}");
    // a wrong password never delivers
    let bad: rdkafka::producer::FutureProducer = client("wrong").create().expect("producer");
    let r = bad
        .send(
            FutureRecord::<(), _>::to("secured").payload("x"),
            Duration::from_secs(5),
        )
        .await;
    assert!(
        r.is_err(),
        "a producer with a wrong password must not deliver"
    );
    b.stop().await;
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files in `dir`.
struct Pki {
    ca: String,
    ca_key: rcgen::KeyPair,
    ca_cert: rcgen::Certificate,
}

impl Pki {
    fn new() -> Pki {
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "Tiercel Test CA");
        let ca_cert = p.self_signed(&ca_key).expect("CA");
        Pki {
            ca: ca_cert.pem(),
            ca_key,
            ca_cert,
        }
    }

    /// A certificate signed by the CA: (cert PEM, key PEM).
    fn issue(&self, cn: &str, sans: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut p = rcgen::CertificateParams::new(sans).expect("params");
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, "Tiercel Tests");
        let cert = p
            .signed_by(&key, &self.ca_cert, &self.ca_key)
            .expect("signed");
        (cert.pem(), key.serialize_pem())
    }
}

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn tls_dial(addr: SocketAddr, ca_pem: &str, client: Option<&(String, String)>) -> TlsStream {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.expect("ca pem")).expect("root");
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .map(|c| c.expect("cert"))
                    .collect(),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key"),
            )
            .expect("client cert"),
        None => builder.with_no_client_auth(),
    };
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("conn");
    TlsStream::new(conn, dial(addr))
}

fn write_pem(dir: &std::path::Path, name: &str, pem: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, pem).expect("write pem");
    p.to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_mtls_listeners_with_certificate_reload() {
    let pki = Pki::new();
    let certs = tempfile::tempdir().expect("tempdir");
    let server = pki.issue("broker", &["127.0.0.1", "localhost"]);
    let (cert_path, key_path) = (
        write_pem(certs.path(), "server.pem", &server.0),
        write_pem(certs.path(), "server.key", &server.1),
    );
    let ca_path = write_pem(certs.path(), "ca.pem", &pki.ca);
    let b = TestBroker::start_with(|c| {
        c.listeners = "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,SASL_SSL://127.0.0.1:0".into();
        c.ssl_certificate = cert_path.clone();
        c.ssl_key = key_path.clone();
        c.ssl_ca = ca_path.clone();
        c.ssl_client_auth = "requested".into();
        c.authentication_timeout_ms = 1500;
    })
    .await;
    let (plain, ssl, sasl_ssl) = (
        listener(&b, "PLAINTEXT"),
        listener(&b, "SSL"),
        listener(&b, "SASL_SSL"),
    );
    let client_cert = pki.issue("client-1", &[]);
    let ca = pki.ca.clone();
    let dir = certs.path().to_owned();
    tokio::task::spawn_blocking(move || {
        // TLS without a client certificate (requested, not required), and with one
        let mut s = tls_dial(ssl, &ca, None);
        assert_eq!(metadata_port(&mut s), i32::from(ssl.port()));
        let mut s = tls_dial(ssl, &ca, Some(&client_cert));
        assert_eq!(metadata_port(&mut s), i32::from(ssl.port()));
        // a certificate from another CA is refused
        let stranger = Pki::new().issue("stranger", &[]);
        let mut s = tls_dial(ssl, &ca, Some(&stranger));
        send_request(&mut s, METADATA, 12, 1, &MetadataRequest::default());
        assert!(read_response::<_, MetadataResponse>(&mut s, METADATA, 12, 1).is_err());
        // SASL_SSL: SCRAM inside TLS
        let mut admin = dial(plain);
        assert_eq!(
            set_user(&mut admin, "tls-user", Scram::Sha512, "pw", 4096),
            0
        );
        let mut s = tls_dial(sasl_ssl, &ca, None);
        assert_eq!(
            scram_login(&mut s, Scram::Sha512, "tls-user", "pw").error_code,
            0
        );
        assert_eq!(metadata_port(&mut s), i32::from(sasl_ssl.port()));
        // garbage on a TLS port closes that connection and nothing else
        let mut g = dial(ssl);
        let _ = g.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8]);
        let _ = g.write_all(&[0u8; 4096]);
        assert!(closed(&mut g));
        // a handshake that never starts is cut after authentication_timeout_ms
        let mut idle = dial(ssl);
        assert!(closed(&mut idle));
        // a renewed certificate is served without a restart
        let renewed = pki.issue("renewed", &["127.0.0.1"]);
        std::fs::write(dir.join("server.key"), &renewed.1).expect("key");
        std::fs::write(dir.join("server.pem"), &renewed.0).expect("cert");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let mut s = tls_dial(ssl, &ca, None);
            assert_eq!(metadata_port(&mut s), i32::from(ssl.port()));
            let dn = s
                .conn
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| tiercel::security::tls::subject_dn(c))
                .expect("server certificate");
            if dn.contains("CN=renewed") {
                // RFC 2253: the last RDN first
                assert_eq!(dn, "O=Tiercel Tests,CN=renewed");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "still serving {dn}");
            std::thread::sleep(Duration::from_millis(500));
        }
    })
    .await
    .expect("client");
    b.stop().await;
}
