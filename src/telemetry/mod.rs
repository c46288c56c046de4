//! Client telemetry (KIP-714): clients ask which of their metrics the broker wants
//! (GetTelemetrySubscriptions) and push them every interval (PushTelemetry) as OTLP metrics.
//! The broker keeps each client instance's latest values and shows them on `/metrics` beside
//! its own, labelled by client id and software, so one Prometheus scrape sees both sides.
//!
//! Which metrics are asked for is one broker-wide subscription (`telemetry_metrics`: name
//! prefixes, `*` for all; empty asks for none, and clients then push nothing, as a Kafka broker
//! without subscriptions). Bounds: a push above `telemetry_max_bytes` is refused, the values
//! kept over all clients are capped at `telemetry_max_series` (what does not fit is dropped and
//! counted), at most [`MAX_INSTANCES`] client instances are remembered, and an instance that
//! has not pushed for three intervals (or said it is terminating) is forgotten with its values.

pub mod otlp;

use parking_lot::Mutex;
use std::collections::HashMap;
use std::fmt::Write;
use uuid::Uuid;

/// Client instances remembered at most (the least recently seen is forgotten first).
pub const MAX_INSTANCES: usize = 16_384;

pub use crate::config::TelemetryConfig;

/// One value of a client metric, as shown on `/metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The Prometheus name (the OTLP name with every other character than `[a-zA-Z0-9_]`
    /// turned into `_`, prefixed `tiercel_client_`).
    pub name: String,
    /// The data point's attributes, sanitized the same way.
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Why a push is refused, as Kafka answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The instance never asked for a subscription (or was forgotten), or the subscription
    /// changed: UNKNOWN_SUBSCRIPTION_ID, the client asks again.
    UnknownSubscription,
    /// Sooner than the push interval: THROTTLING_QUOTA_EXCEEDED.
    TooSoon,
    /// Above `telemetry_max_bytes`: TELEMETRY_TOO_LARGE.
    TooLarge,
    /// A compression type the subscription does not accept: UNSUPPORTED_COMPRESSION_TYPE.
    Compression,
    /// Metrics that do not decode: INVALID_RECORD.
    Invalid,
}

struct Instance {
    client_id: String,
    software: (String, String),
    last_seen_ms: i64,
    last_push_ms: Option<i64>,
    samples: Vec<Sample>,
}

/// The subscription a GetTelemetrySubscriptions answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub instance: Uuid,
    pub id: i32,
    pub requested: Vec<String>,
    pub push_interval_ms: i32,
    pub max_bytes: i32,
}

/// Compression types accepted for pushes (Kafka's ids): zstd, lz4, gzip, snappy.
pub const ACCEPTED_COMPRESSION: [i8; 4] = [4, 3, 1, 2];

pub struct Telemetry {
    cfg: TelemetryConfig,
    /// Changes whenever the configured subscription does (a hash of it).
    subscription_id: i32,
    instances: Mutex<HashMap<Uuid, Instance>>,
}

impl Telemetry {
    pub fn new(cfg: TelemetryConfig) -> Telemetry {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&cfg.metrics, cfg.push_interval_ms).hash(&mut h);
        let subscription_id = (h.finish() & 0x7fff_ffff) as i32;
        Telemetry {
            cfg,
            subscription_id,
            instances: Mutex::new(HashMap::new()),
        }
    }

    /// The prefixes as the protocol says them: empty asks for nothing, one empty string for all.
    fn requested(&self) -> Vec<String> {
        if self.cfg.metrics.iter().any(|m| m == "*") {
            vec![String::new()]
        } else {
            self.cfg.metrics.clone()
        }
    }

    /// GetTelemetrySubscriptions: `instance` (nil: a new one is handed out) of client
    /// `client_id`, running `software` (name, version).
    pub fn subscribe(
        &self,
        instance: Uuid,
        client_id: &str,
        software: (String, String),
        now_ms: i64,
    ) -> Subscription {
        let instance = if instance.is_nil() {
            Uuid::new_v4()
        } else {
            instance
        };
        let mut all = self.instances.lock();
        self.expire(&mut all, now_ms);
        if !all.contains_key(&instance) && all.len() >= MAX_INSTANCES {
            if let Some(oldest) = all
                .iter()
                .min_by_key(|(_, i)| i.last_seen_ms)
                .map(|(k, _)| *k)
            {
                all.remove(&oldest);
            }
        }
        let e = all.entry(instance).or_insert_with(|| Instance {
            client_id: String::new(),
            software: Default::default(),
            last_seen_ms: now_ms,
            last_push_ms: None,
            samples: Vec::new(),
        });
        e.client_id = client_id.to_string();
        e.software = software;
        e.last_seen_ms = now_ms;
        Subscription {
            instance,
            id: self.subscription_id,
            requested: self.requested(),
            push_interval_ms: self.cfg.push_interval_ms,
            max_bytes: self.cfg.max_bytes,
        }
    }

    /// PushTelemetry: checks the push as Kafka does (in its order: instance and subscription,
    /// interval, compression, size), then keeps its values (decoded by
    /// [`otlp::samples`]) as the instance's current ones; a terminating push forgets the instance.
    pub fn push(
        &self,
        instance: Uuid,
        subscription_id: i32,
        terminating: bool,
        compression: i8,
        metrics: &[u8],
        now_ms: i64,
    ) -> Result<(), PushError> {
        {
            let mut all = self.instances.lock();
            self.expire(&mut all, now_ms);
            let Some(i) = all.get_mut(&instance) else {
                return Err(PushError::UnknownSubscription);
            };
            if subscription_id != self.subscription_id {
                return Err(PushError::UnknownSubscription);
            }
            // a push well before its interval (half of it: clients add jitter) is throttled,
            // unless it is the client's last
            let soon = i
                .last_push_ms
                .is_some_and(|t| now_ms - t < (self.cfg.push_interval_ms as i64) / 2);
            if soon && !terminating {
                return Err(PushError::TooSoon);
            }
            if compression != 0 && !ACCEPTED_COMPRESSION.contains(&compression) {
                return Err(PushError::Compression);
            }
            if metrics.len() > self.cfg.max_bytes.max(0) as usize {
                return Err(PushError::TooLarge);
            }
            i.last_seen_ms = now_ms;
            i.last_push_ms = Some(now_ms);
        }
        let raw = if compression == 0 {
            std::borrow::Cow::Borrowed(metrics)
        } else {
            let limit = (self.cfg.max_bytes.max(0) as usize).saturating_mul(16);
            match crate::format::codec::decompress(compression as i16, metrics, limit) {
                Ok(v) => std::borrow::Cow::Owned(v),
                Err(_) => return Err(PushError::Invalid),
            }
        };
        let wanted = self.requested();
        let (samples, over) = otlp::samples(
            &raw,
            |name| wanted.iter().any(|p| name.starts_with(p.as_str())),
            self.cfg.max_series,
        )
        .map_err(|_| PushError::Invalid)?;
        let mut all = self.instances.lock();
        if terminating {
            all.remove(&instance);
            return Ok(());
        }
        let others: usize = all
            .iter()
            .filter(|(k, _)| **k != instance)
            .map(|(_, i)| i.samples.len())
            .sum();
        let room = self.cfg.max_series.saturating_sub(others);
        let Some(i) = all.get_mut(&instance) else {
            return Ok(()); // forgotten meanwhile
        };
        let mut samples = samples;
        let mut dropped = over;
        if samples.len() > room {
            dropped += samples.len() - room;
            samples.truncate(room);
        }
        if dropped > 0 {
            crate::metrics::telemetry_series_dropped(dropped as u64);
        }
        crate::metrics::telemetry_pushed();
        i.samples = samples;
        Ok(())
    }

    /// Forgets instances silent for three push intervals.
    fn expire(&self, all: &mut HashMap<Uuid, Instance>, now_ms: i64) {
        let ttl = 3 * (self.cfg.push_interval_ms.max(1) as i64);
        all.retain(|_, i| now_ms - i.last_seen_ms <= ttl);
    }

    /// Every kept value in Prometheus' text format, labelled by client instance, client id and
    /// software.
    pub fn render(&self, now_ms: i64) -> String {
        let mut all = self.instances.lock();
        self.expire(&mut all, now_ms);
        let mut by_name: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        for (id, i) in all.iter() {
            for s in &i.samples {
                let mut line = String::new();
                let _ = write!(
                    line,
                    "{}{{client_instance_id=\"{}\",client_id=\"{}\",client_software_name=\"{}\",client_software_version=\"{}\"",
                    s.name,
                    id,
                    escape(&i.client_id),
                    escape(&i.software.0),
                    escape(&i.software.1)
                );
                for (k, v) in &s.labels {
                    let _ = write!(line, ",{k}=\"{}\"", escape(v));
                }
                let _ = write!(line, "}} {}", s.value);
                by_name.entry(&s.name).or_default().push(line);
            }
        }
        let mut out = String::new();
        for (name, lines) in by_name {
            let _ = writeln!(out, "# TYPE {name} gauge");
            for l in lines {
                out.push_str(&l);
                out.push('\n');
            }
        }
        out
    }
}

/// A label value in Prometheus' text format.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A Prometheus name from an OTLP one: `[a-zA-Z0-9_]`, other characters as `_`.
pub fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}
