//! TLS for SSL and SASL_SSL listeners (rustls, TLS 1.2 and 1.3 only): the certificate, its key
//! and the CA for client certificates are read from PEM files and read again when they change,
//! so a renewed certificate is served without a restart. Client certificates (mTLS) are checked
//! against the CA; the principal of such a client is `User:<subject DN>` in RFC 2253 form, as
//! Kafka names it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// `ssl_client_auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

impl ClientAuth {
    pub fn parse(s: &str) -> ClientAuth {
        match s {
            "required" => ClientAuth::Required,
            "requested" => ClientAuth::Requested,
            _ => ClientAuth::None,
        }
    }
}

/// The files a TLS configuration is built from.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
    pub ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
}

/// What one reading of the files made: the acceptor of SSL listeners (client certificates as
/// `ssl_client_auth` says), the one of SASL_SSL listeners (clients authenticate with SASL, so no
/// certificate is asked for, as Kafka does without a listener-prefixed `ssl.client.auth`), and
/// the files' modification times.
struct Loaded {
    ssl: TlsAcceptor,
    sasl_ssl: TlsAcceptor,
    stamps: Vec<Option<SystemTime>>,
}

/// The current TLS configuration, swapped when the files change.
pub struct Tls {
    files: TlsFiles,
    current: parking_lot::RwLock<Loaded>,
}

impl Tls {
    /// Reads the files and builds the configuration; a missing or unusable file is an error
    /// the operator sees at start-up.
    pub async fn load(files: TlsFiles) -> Result<Arc<Tls>, String> {
        let loaded = build(&files).await?;
        Ok(Arc::new(Tls {
            files,
            current: parking_lot::RwLock::new(loaded),
        }))
    }

    /// What new connections are accepted with: on an SSL listener (`sasl` false) or a
    /// SASL_SSL one.
    pub fn acceptor(&self, sasl: bool) -> TlsAcceptor {
        let l = self.current.read();
        if sasl {
            l.sasl_ssl.clone()
        } else {
            l.ssl.clone()
        }
    }

    /// Rebuilds the configuration if a file changed since it was read; a change that does not
    /// load (a key written before its certificate, say) keeps the old one and is logged.
    pub async fn reload_if_changed(&self) -> bool {
        let stamps = stamps(&self.files).await;
        if stamps == self.current.read().stamps {
            return false;
        }
        match build(&self.files).await {
            Ok(next) => {
                tracing::info!(certificate = %self.files.certificate.display(), "TLS certificate reloaded");
                crate::metrics::tls_reloaded();
                *self.current.write() = next;
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "TLS files changed but do not load; still serving the previous certificate");
                // do not retry until they change again
                self.current.write().stamps = stamps;
                false
            }
        }
    }

    /// Checks the files every few seconds until `stop`.
    pub async fn watch(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        super::every_reload_check(stop, || async {
            self.reload_if_changed().await;
        })
        .await
    }
}

async fn stamps(files: &TlsFiles) -> Vec<Option<SystemTime>> {
    let mut out = Vec::new();
    for p in [
        Some(&files.certificate),
        Some(&files.key),
        files.ca.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        out.push(
            tokio::fs::metadata(p)
                .await
                .ok()
                .and_then(|m| m.modified().ok()),
        );
    }
    out
}

async fn read(what: &str, path: &PathBuf) -> Result<Vec<u8>, String> {
    tokio::fs::read(path)
        .await
        .map_err(|e| format!("{what} {}: {e}", path.display()))
}

async fn build(files: &TlsFiles) -> Result<Loaded, String> {
    // the stamps first: a change while reading is seen at the next check
    let stamps = stamps(files).await;
    let cert_pem = read("ssl_certificate", &files.certificate).await?;
    let key_pem = read("ssl_key", &files.key).await?;
    let ca_pem = match &files.ca {
        Some(p) => Some(read("ssl_ca", p).await?),
        None => None,
    };
    let ssl = server_config(&cert_pem, &key_pem, ca_pem.as_deref(), files.client_auth)?;
    let sasl_ssl = server_config(&cert_pem, &key_pem, None, ClientAuth::None)?;
    Ok(Loaded {
        ssl: TlsAcceptor::from(Arc::new(ssl)),
        sasl_ssl: TlsAcceptor::from(Arc::new(sasl_ssl)),
        stamps,
    })
}

/// A rustls server configuration from PEM bytes.
pub fn server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
    ca_pem: Option<&[u8]>,
    client_auth: ClientAuth,
) -> Result<ServerConfig, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("ssl_certificate: {e}"))?;
    if certs.is_empty() {
        return Err("ssl_certificate holds no PEM certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("ssl_key: {e}"))?;
    let provider = Arc::new(aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match (client_auth, ca_pem) {
        (ClientAuth::None, _) | (_, None) => builder.with_no_client_auth(),
        (auth, Some(ca)) => {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(ca) {
                let c = c.map_err(|e| format!("ssl_ca: {e}"))?;
                roots.add(c).map_err(|e| format!("ssl_ca: {e}"))?;
            }
            if roots.is_empty() {
                return Err("ssl_ca holds no PEM certificate".into());
            }
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let v = if auth == ClientAuth::Requested {
                v.allow_unauthenticated()
            } else {
                v
            };
            builder.with_client_cert_verifier(v.build().map_err(|e| format!("ssl_ca: {e}"))?)
        }
    };
    builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("ssl_certificate and ssl_key: {e}"))
}

/// The subject of a DER certificate as an RFC 2253 distinguished name (the last RDN first,
/// `CN=client,OU=eng,O=Example,C=US`), as Kafka's default principal builder names it.
pub fn subject_dn(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let registry = x509_parser::objects::oid_registry();
    let mut rdns = Vec::new();
    for rdn in cert.subject().iter_rdn() {
        let mut parts = Vec::new();
        for attr in rdn.iter() {
            let oid = attr.attr_type();
            let name = match x509_parser::objects::oid2abbrev(oid, registry) {
                Ok(n) if known_abbrev(n) => n.to_string(),
                _ => oid.to_id_string(),
            };
            let value = match attr.as_str() {
                Ok(s) if known_abbrev(&name) => escape(s),
                // RFC 2253 §2.4: an attribute named by its OID shows its BER encoding in hex
                _ => format!("#{}", hex(attr.attr_value().as_bytes())),
            };
            parts.push(format!("{name}={value}"));
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

/// The keywords RFC 2253 (and Java's X500Principal) print by name.
fn known_abbrev(n: &str) -> bool {
    matches!(
        n,
        "CN" | "C" | "L" | "ST" | "O" | "OU" | "STREET" | "DC" | "UID"
    )
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// RFC 2253 §2.4 escaping of an attribute value.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let last = s.chars().count().saturating_sub(1);
    for (i, c) in s.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == ' ' || c == '#'))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_as_rfc2253_says() {
        assert_eq!(escape("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape(" #x "), "\\ #x\\ ");
        assert_eq!(escape("plain"), "plain");
    }

    #[test]
    fn garbage_is_no_certificate() {
        assert_eq!(subject_dn(b"not a certificate"), None);
        let e = server_config(b"junk", b"junk", None, ClientAuth::None).expect_err("no cert");
        assert!(e.contains("ssl_certificate"), "{e}");
    }
}
