//! A small etcd v3 client over etcd's JSON gateway (`POST /v3/kv/range`, `/v3/kv/txn`,
//! `/v3/lease/*` on the client port, served by every etcd since 3.3).
//!
//! Why not the gRPC client: it generates its code from `.proto` files at build time and needs
//! `protoc` on the build machine, which would break building Tiercel with nothing but Rust and a
//! C compiler. The gateway speaks the same API as JSON (keys and values base64, 64-bit integers
//! as strings, fields at their default value left out); the HTTP client is the one the object
//! store already uses. Watches are not used: callers poll the store's revision (cheap: a range
//! of one key, keys only), which bounds the staleness of their view by the poll interval.
//!
//! Endpoints are tried in turn: a request that cannot reach one endpoint goes to the next, and
//! the one that answered is tried first next time.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// No endpoint answered (connection refused, timeout): retriable.
    #[error("etcd unreachable ({endpoint}): {reason}")]
    Unreachable { endpoint: String, reason: String },
    /// etcd answered with an error (bad request, lease not found, request too large).
    #[error("etcd refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("etcd answered something unreadable: {0}")]
    Decode(String),
}

impl EtcdError {
    /// Whether the lease named in the request no longer exists.
    pub fn is_lease_not_found(&self) -> bool {
        matches!(self, EtcdError::Refused { message, .. } if message.contains("requested lease not found"))
    }
}

/// One key-value pair as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Kv {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub lease: i64,
}

/// A condition of a transaction (always "equal").
#[derive(Debug, Clone)]
pub enum Compare {
    /// The key's creation revision; 0 means "the key does not exist".
    CreateRevision(Vec<u8>, i64),
    /// The key's last modification revision; 0 means "the key does not exist".
    ModRevision(Vec<u8>, i64),
    /// The key's value.
    Value(Vec<u8>, Vec<u8>),
}

/// An operation of a transaction.
#[derive(Debug, Clone)]
pub enum Op {
    /// Writes `value` under `key`, attached to `lease` (0: none).
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        lease: i64,
    },
    Delete(Vec<u8>),
    /// Reads one key.
    Get(Vec<u8>),
}

/// The outcome of a transaction.
#[derive(Debug, Clone, Default)]
pub struct TxnResult {
    pub succeeded: bool,
    /// The store's revision after the transaction.
    pub revision: i64,
    /// For each `Op::Get` of the branch taken, in order: what it found.
    pub gets: Vec<Vec<Kv>>,
}

pub struct Etcd {
    http: reqwest::Client,
    endpoints: Vec<String>,
    /// The endpoint that answered last.
    current: AtomicUsize,
}

/// The end of the key range that holds every key starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0] // every key
}

impl Etcd {
    /// A client of the etcd cluster at `endpoints` (`http://host:port`, comma-separated).
    /// Connects lazily: nothing is sent until the first request.
    pub fn new(endpoints: &str, timeout: Duration) -> Result<Etcd, EtcdError> {
        let endpoints: Vec<String> = endpoints
            .split(',')
            .map(|e| e.trim().trim_end_matches('/').to_string())
            .filter(|e| !e.is_empty())
            .collect();
        if endpoints.is_empty() {
            return Err(EtcdError::Decode("no etcd endpoint given".into()));
        }
        for e in &endpoints {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(EtcdError::Decode(format!(
                    "etcd endpoint `{e}` is not an http:// or https:// URL"
                )));
            }
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .build()
            .map_err(|e| EtcdError::Decode(e.to_string()))?;
        Ok(Etcd {
            http,
            endpoints,
            current: AtomicUsize::new(0),
        })
    }

    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// POSTs `body` to `path` on the first endpoint that answers.
    async fn call(&self, path: &str, body: Value) -> Result<Value, EtcdError> {
        let n = self.endpoints.len();
        let first = self.current.load(Ordering::Relaxed) % n;
        let body = serde_json::to_vec(&body).map_err(|e| EtcdError::Decode(e.to_string()))?;
        let mut last = None;
        for i in 0..n {
            let at = (first + i) % n;
            let endpoint = &self.endpoints[at];
            let sent = self
                .http
                .post(format!("{endpoint}{path}"))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await;
            let resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    last = Some(EtcdError::Unreachable {
                        endpoint: endpoint.clone(),
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            let status = resp.status().as_u16();
            let bytes = match resp.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    last = Some(EtcdError::Unreachable {
                        endpoint: endpoint.clone(),
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            self.current.store(at, Ordering::Relaxed);
            let v: Value = serde_json::from_slice(&bytes)
                .map_err(|e| EtcdError::Decode(format!("{path}: {e}")))?;
            if status != 200 || v.get("error").is_some() {
                let message = v
                    .get("message")
                    .or_else(|| v.get("error"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                // a gateway error with the leader unknown is a retriable outage
                if status == 503 || message.contains("no leader") {
                    last = Some(EtcdError::Unreachable {
                        endpoint: endpoint.clone(),
                        reason: message,
                    });
                    continue;
                }
                return Err(EtcdError::Refused { status, message });
            }
            return Ok(v);
        }
        Err(last.unwrap_or(EtcdError::Unreachable {
            endpoint: String::new(),
            reason: "no endpoint".into(),
        }))
    }

    /// Every key in `[key, range_end)` (or just `key` when `range_end` is `None`) and the
    /// store's revision.
    pub async fn range(
        &self,
        key: &[u8],
        range_end: Option<&[u8]>,
    ) -> Result<(i64, Vec<Kv>), EtcdError> {
        let mut req = json!({ "key": B64.encode(key) });
        if let Some(end) = range_end {
            req["range_end"] = json!(B64.encode(end));
        }
        self.range_request(req).await
    }

    /// One range request (key, range end, options) and its answer: the store's revision and
    /// the keys.
    async fn range_request(&self, req: serde_json::Value) -> Result<(i64, Vec<Kv>), EtcdError> {
        let v = self.call("/v3/kv/range", req).await?;
        let r: RangeResponse = decode(v)?;
        Ok((r.header.revision()?, kvs(r.kvs)?))
    }

    /// Every key that starts with `prefix`.
    pub async fn range_prefix(&self, prefix: &[u8]) -> Result<(i64, Vec<Kv>), EtcdError> {
        self.range(prefix, Some(&prefix_end(prefix))).await
    }

    /// Every key that starts with `prefix` and was last modified at revision `min_mod_revision`
    /// or later, and the store's revision: what changed under `prefix` since a read at
    /// `min_mod_revision - 1` (deletions aside).
    pub async fn range_prefix_since(
        &self,
        prefix: &[u8],
        min_mod_revision: i64,
    ) -> Result<(i64, Vec<Kv>), EtcdError> {
        self.range_request(json!({
            "key": B64.encode(prefix),
            "range_end": B64.encode(prefix_end(prefix)),
            "min_mod_revision": min_mod_revision.to_string(),
        }))
        .await
    }

    /// The highest modification revision among the keys starting with `prefix` (`None` when
    /// there are none): tells whether any of them changed since a read.
    pub async fn latest_mod_revision(&self, prefix: &[u8]) -> Result<Option<i64>, EtcdError> {
        let v = self
            .call(
                "/v3/kv/range",
                json!({
                    "key": B64.encode(prefix),
                    "range_end": B64.encode(prefix_end(prefix)),
                    "sort_order": "DESCEND",
                    "sort_target": "MOD",
                    "limit": "1",
                    "keys_only": true,
                }),
            )
            .await?;
        let r: RangeResponse = decode(v)?;
        Ok(kvs(r.kvs)?.first().map(|kv| kv.mod_revision))
    }

    /// The store's current revision (any write anywhere raises it).
    pub async fn revision(&self) -> Result<i64, EtcdError> {
        let v = self
            .call(
                "/v3/kv/range",
                json!({ "key": B64.encode([0u8]), "keys_only": true, "limit": "1" }),
            )
            .await?;
        let r: RangeResponse = decode(v)?;
        r.header.revision()
    }

    /// If every compare holds, runs `success`, else `failure`; atomically.
    pub async fn txn(
        &self,
        compare: &[Compare],
        success: &[Op],
        failure: &[Op],
    ) -> Result<TxnResult, EtcdError> {
        let req = json!({
            "compare": compare.iter().map(compare_json).collect::<Vec<_>>(),
            "success": success.iter().map(op_json).collect::<Vec<_>>(),
            "failure": failure.iter().map(op_json).collect::<Vec<_>>(),
        });
        let v = self.call("/v3/kv/txn", req).await?;
        let r: TxnResponse = decode(v)?;
        let mut gets = Vec::new();
        for resp in r.responses {
            if let Some(range) = resp.response_range {
                gets.push(kvs(range.kvs)?);
            }
        }
        Ok(TxnResult {
            succeeded: r.succeeded,
            revision: r.header.revision()?,
            gets,
        })
    }

    /// A new lease of `ttl_s` seconds.
    pub async fn lease_grant(&self, ttl_s: i64) -> Result<i64, EtcdError> {
        let v = self
            .call("/v3/lease/grant", json!({ "TTL": ttl_s.to_string() }))
            .await?;
        let r: LeaseResponse = decode(v)?;
        num(r.id.as_deref().unwrap_or("0"))
    }

    /// Renews a lease; answers the TTL it now has, 0 if it expired.
    pub async fn lease_keepalive(&self, id: i64) -> Result<i64, EtcdError> {
        let v = self
            .call("/v3/lease/keepalive", json!({ "ID": id.to_string() }))
            .await?;
        let r: KeepAliveResponse = decode(v)?;
        num(r.result.ttl.as_deref().unwrap_or("0"))
    }

    /// Ends a lease now: every key attached to it is deleted.
    pub async fn lease_revoke(&self, id: i64) -> Result<(), EtcdError> {
        match self
            .call("/v3/lease/revoke", json!({ "ID": id.to_string() }))
            .await
        {
            Err(e) if e.is_lease_not_found() => Ok(()),
            r => r.map(|_| ()),
        }
    }
}

fn compare_json(c: &Compare) -> Value {
    match c {
        Compare::CreateRevision(k, r) => json!({
            "key": B64.encode(k), "result": "EQUAL", "target": "CREATE", "create_revision": r.to_string()
        }),
        Compare::ModRevision(k, r) => json!({
            "key": B64.encode(k), "result": "EQUAL", "target": "MOD", "mod_revision": r.to_string()
        }),
        Compare::Value(k, v) => json!({
            "key": B64.encode(k), "result": "EQUAL", "target": "VALUE", "value": B64.encode(v)
        }),
    }
}

fn op_json(op: &Op) -> Value {
    match op {
        Op::Put { key, value, lease } => {
            let mut p = json!({ "key": B64.encode(key), "value": B64.encode(value) });
            if *lease != 0 {
                p["lease"] = json!(lease.to_string());
            }
            json!({ "request_put": p })
        }
        Op::Delete(key) => json!({ "request_delete_range": { "key": B64.encode(key) } }),
        Op::Get(key) => json!({ "request_range": { "key": B64.encode(key) } }),
    }
}

fn decode<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, EtcdError> {
    serde_json::from_value(v).map_err(|e| EtcdError::Decode(e.to_string()))
}

fn num(s: &str) -> Result<i64, EtcdError> {
    s.parse()
        .map_err(|_| EtcdError::Decode(format!("`{s}` is not a number")))
}

fn b64(s: &str) -> Result<Vec<u8>, EtcdError> {
    B64.decode(s)
        .map_err(|e| EtcdError::Decode(format!("base64: {e}")))
}

fn kvs(raw: Vec<RawKv>) -> Result<Vec<Kv>, EtcdError> {
    raw.into_iter()
        .map(|k| {
            Ok(Kv {
                key: b64(&k.key)?,
                value: b64(k.value.as_deref().unwrap_or(""))?,
                create_revision: num(k.create_revision.as_deref().unwrap_or("0"))?,
                mod_revision: num(k.mod_revision.as_deref().unwrap_or("0"))?,
                lease: num(k.lease.as_deref().unwrap_or("0"))?,
            })
        })
        .collect()
}

#[derive(Deserialize, Default)]
struct Header {
    revision: Option<String>,
}

impl Header {
    fn revision(&self) -> Result<i64, EtcdError> {
        num(self.revision.as_deref().unwrap_or("0"))
    }
}

#[derive(Deserialize)]
struct RawKv {
    key: String,
    value: Option<String>,
    create_revision: Option<String>,
    mod_revision: Option<String>,
    lease: Option<String>,
}

#[derive(Deserialize)]
struct RangeResponse {
    #[serde(default)]
    header: Header,
    #[serde(default)]
    kvs: Vec<RawKv>,
}

#[derive(Deserialize)]
struct TxnResponse {
    #[serde(default)]
    header: Header,
    #[serde(default)]
    succeeded: bool,
    #[serde(default)]
    responses: Vec<TxnOpResponse>,
}

#[derive(Deserialize)]
struct TxnOpResponse {
    response_range: Option<RangeResponse>,
}

#[derive(Deserialize)]
struct LeaseResponse {
    #[serde(rename = "ID")]
    id: Option<String>,
}

#[derive(Deserialize)]
struct KeepAliveResponse {
    result: KeepAliveResult,
}

#[derive(Deserialize)]
struct KeepAliveResult {
    #[serde(rename = "TTL")]
    ttl: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_key_after_every_key_with_the_prefix() {
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(&[1, 0xff]), vec![2]);
        assert_eq!(prefix_end(&[0xff]), vec![0]);
    }

    #[test]
    fn endpoints_must_be_urls() {
        assert!(Etcd::new("127.0.0.1:2379", Duration::from_secs(1)).is_err());
        assert!(Etcd::new("", Duration::from_secs(1)).is_err());
        let e = Etcd::new(
            "http://127.0.0.1:2379/, http://127.0.0.1:2380",
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(e.endpoints().len(), 2);
        assert_eq!(e.endpoints()[0], "http://127.0.0.1:2379");
    }

    #[test]
    fn defaults_left_out_by_the_gateway_read_as_zero() {
        let v = json!({"header":{"revision":"7"},"responses":[{"response_range":{"header":{"revision":"7"}}}]});
        let r: TxnResponse = decode(v).unwrap();
        assert!(!r.succeeded);
        assert_eq!(r.header.revision().unwrap(), 7);
        let k = kvs(vec![RawKv {
            key: B64.encode("k"),
            value: None,
            create_revision: Some("3".into()),
            mod_revision: None,
            lease: None,
        }])
        .unwrap();
        assert_eq!(k[0].key, b"k");
        assert!(k[0].value.is_empty());
        assert_eq!((k[0].create_revision, k[0].mod_revision), (3, 0));
    }
}
