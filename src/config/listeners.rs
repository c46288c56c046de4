//! Listeners in Kafka's form: `listeners = "PLAINTEXT://127.0.0.1:9092,SASL_SSL://0.0.0.0:9093"`,
//! `advertised_listeners` in the same form, and `listener_security_protocol_map` for named
//! listeners (`INTERNAL:SASL_PLAINTEXT`). Without `listeners`, `listen` is one PLAINTEXT
//! listener and `advertised_listener` its advertised address, as before.

use super::settings::{parse_host_port, Config, ConfigError};
use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};

/// How a listener's connections are secured (Kafka's `SecurityProtocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn parse(s: &str) -> Option<SecurityProtocol> {
        Some(match s.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => SecurityProtocol::Plaintext,
            "SSL" => SecurityProtocol::Ssl,
            "SASL_PLAINTEXT" => SecurityProtocol::SaslPlaintext,
            "SASL_SSL" => SecurityProtocol::SaslSsl,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Connections are wrapped in TLS.
    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Clients authenticate with SASL before anything else is served.
    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// One listener: its name, security, the address it binds and the one clients are told.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    /// Upper case, as Kafka compares listener names.
    pub name: String,
    pub protocol: SecurityProtocol,
    pub bind: SocketAddr,
    /// From `advertised_listeners` (or `advertised_listener` for the first); `None`: the
    /// address actually bound.
    pub advertised: Option<(String, i32)>,
}

fn bad(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

/// `NAME://HOST:PORT` entries of a comma-separated list.
fn entries(key: &'static str, list: &str) -> Result<Vec<(String, String, u16)>, ConfigError> {
    let mut out = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, addr) = entry
            .split_once("://")
            .ok_or_else(|| bad(key, format!("`{entry}` is not NAME://HOST:PORT")))?;
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| bad(key, format!("`{entry}` has no port")))?;
        let port: u16 = port
            .parse()
            .map_err(|_| bad(key, format!("`{port}` in `{entry}` is not a port number")))?;
        let name = name.trim().to_ascii_uppercase();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(bad(key, format!("`{entry}` has no usable listener name")));
        }
        if out.iter().any(|(n, _, _)| *n == name) {
            return Err(bad(key, format!("listener `{name}` is named twice")));
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        out.push((name, host.to_string(), port));
    }
    Ok(out)
}

/// `listener_security_protocol_map`: `NAME:PROTOCOL,…`; every protocol name maps to itself.
fn protocol_map(s: &str) -> Result<BTreeMap<String, SecurityProtocol>, ConfigError> {
    let key = "listener_security_protocol_map";
    let mut map: BTreeMap<String, SecurityProtocol> = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ]
    .into_iter()
    .map(|p| (p.name().to_string(), p))
    .collect();
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, proto) = entry
            .split_once(':')
            .ok_or_else(|| bad(key, format!("`{entry}` is not NAME:PROTOCOL")))?;
        let p = SecurityProtocol::parse(proto.trim()).ok_or_else(|| {
            bad(
                key,
                format!("`{proto}` is not PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"),
            )
        })?;
        map.insert(name.trim().to_ascii_uppercase(), p);
    }
    Ok(map)
}

fn resolve(key: &'static str, host: &str, port: u16) -> Result<SocketAddr, ConfigError> {
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port)
        .to_socket_addrs()
        .map_err(|e| bad(key, format!("cannot resolve `{host}`: {e}")))?
        .next()
        .ok_or_else(|| bad(key, format!("`{host}` resolves to no address")))
}

impl Listener {
    /// The host and port its clients are told: the advertised address, or the one `bound`.
    pub fn advertised_or(&self, bound: SocketAddr) -> (String, i32) {
        self.advertised
            .clone()
            .unwrap_or_else(|| (bound.ip().to_string(), i32::from(bound.port())))
    }
}

impl Config {
    /// The listeners in effect, the first being the one `listen`/`advertised_listener` describe
    /// when `listeners` is empty.
    pub fn listeners(&self) -> Result<Vec<Listener>, ConfigError> {
        let legacy_advertised = if self.advertised_listener.is_empty() {
            None
        } else {
            Some(
                parse_host_port(&self.advertised_listener)
                    .map_err(|r| bad("advertised_listener", r))?,
            )
        };
        if self.listeners.trim().is_empty() {
            return Ok(vec![Listener {
                name: "PLAINTEXT".into(),
                protocol: SecurityProtocol::Plaintext,
                bind: self.listen,
                advertised: legacy_advertised,
            }]);
        }
        let map = protocol_map(&self.listener_security_protocol_map)?;
        let advertised = entries("advertised_listeners", &self.advertised_listeners)?;
        let mut out: Vec<Listener> = Vec::new();
        for (name, host, port) in entries("listeners", &self.listeners)? {
            let protocol = *map.get(&name).ok_or_else(|| {
                bad(
                    "listeners",
                    format!("listener `{name}` is not a security protocol and not in listener_security_protocol_map"),
                )
            })?;
            let bind = resolve("listeners", &host, port)?;
            if port != 0 && out.iter().any(|l| l.bind.port() == port) {
                return Err(bad("listeners", format!("port {port} is used twice")));
            }
            let adv = advertised
                .iter()
                .find(|(n, _, _)| *n == name)
                .map(|(_, h, p)| (h.clone(), i32::from(*p)))
                .or_else(|| out.is_empty().then(|| legacy_advertised.clone()).flatten());
            if let Some((h, _)) = &adv {
                if h.is_empty() {
                    return Err(bad(
                        "advertised_listeners",
                        format!("listener `{name}` advertises no host"),
                    ));
                }
            }
            out.push(Listener {
                name,
                protocol,
                bind,
                advertised: adv,
            });
        }
        if out.is_empty() {
            return Err(bad("listeners", "names no listener"));
        }
        if let Some((n, _, _)) = advertised
            .iter()
            .find(|(n, _, _)| !out.iter().any(|l| l.name == *n))
        {
            return Err(bad(
                "advertised_listeners",
                format!("`{n}` is not one of `listeners`"),
            ));
        }
        let inter = self.inter_broker_listener_name.trim().to_ascii_uppercase();
        if !inter.is_empty() && !out.iter().any(|l| l.name == inter) {
            return Err(bad(
                "inter_broker_listener_name",
                format!("`{inter}` is not one of `listeners`"),
            ));
        }
        Ok(out)
    }

    /// The listener other nodes use (`inter_broker_listener_name`, or the first).
    pub fn inter_broker_listener<'a>(&self, listeners: &'a [Listener]) -> Option<&'a Listener> {
        let inter = self.inter_broker_listener_name.trim().to_ascii_uppercase();
        listeners
            .iter()
            .find(|l| l.name == inter)
            .or_else(|| listeners.first())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(listeners: &str, advertised: &str, map: &str) -> Result<Vec<Listener>, ConfigError> {
        Config {
            listeners: listeners.into(),
            advertised_listeners: advertised.into(),
            listener_security_protocol_map: map.into(),
            ..Config::default()
        }
        .listeners()
    }

    #[test]
    fn default_is_listen_as_plaintext() {
        let l = Config::default().listeners().expect("default");
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].name, "PLAINTEXT");
        assert_eq!(l[0].bind, "127.0.0.1:9092".parse().expect("addr"));
        assert_eq!(l[0].advertised, None);
    }

    #[test]
    fn advertised_defaults_to_the_bound_address() {
        let bound: SocketAddr = "127.0.0.1:1234".parse().expect("addr");
        let l = Config::default().listeners().expect("default");
        assert_eq!(l[0].advertised_or(bound), ("127.0.0.1".into(), 1234));
        let l = Config {
            advertised_listener: "kafka.example:19092".into(),
            ..Config::default()
        }
        .listeners()
        .expect("legacy advertised");
        let any: SocketAddr = "0.0.0.0:1".parse().expect("addr");
        assert_eq!(l[0].advertised_or(any), ("kafka.example".into(), 19092));
    }

    #[test]
    fn kafka_form_with_names_and_advertised() {
        let l = with(
            "PLAINTEXT://127.0.0.1:9092, internal://:9094,SASL_SSL://0.0.0.0:9093",
            "SASL_SSL://kafka.example:443",
            "INTERNAL:SASL_PLAINTEXT",
        )
        .expect("valid");
        assert_eq!(l.len(), 3);
        assert_eq!(l[1].name, "INTERNAL");
        assert_eq!(l[1].protocol, SecurityProtocol::SaslPlaintext);
        assert_eq!(l[1].bind, "0.0.0.0:9094".parse().expect("addr"));
        assert_eq!(l[2].protocol, SecurityProtocol::SaslSsl);
        assert_eq!(l[2].advertised, Some(("kafka.example".into(), 443)));
        assert!(l[2].protocol.tls() && l[2].protocol.sasl());
    }

    #[test]
    fn refuses_what_kafka_refuses() {
        for (listeners, advertised, map, key) in [
            ("FOO://:9092", "", "", "listeners"),
            ("PLAINTEXT://:9092,PLAINTEXT://:9093", "", "", "listeners"),
            ("PLAINTEXT://:9092,SSL://:9092", "", "", "listeners"),
            ("PLAINTEXT:9092", "", "", "listeners"),
            ("PLAINTEXT://:x", "", "", "listeners"),
            ("PLAINTEXT://:9092", "SSL://h:1", "", "advertised_listeners"),
            ("A://:9092", "", "A:TLS", "listener_security_protocol_map"),
        ] {
            let e = with(listeners, advertised, map).expect_err(listeners);
            assert!(
                e.to_string().contains(&format!("`{key}`")),
                "{listeners}: {e}"
            );
        }
    }
}
