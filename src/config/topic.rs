//! Topic configuration keys, declared once in [`TOPIC_KEYS`]: each key's Kafka name, its
//! broker-level name and setting, its type and its rule. The same rule validates a topic
//! override (CreateTopics, AlterConfigs), a dynamic broker default and the broker's own setting
//! at start-up. Also here: how a topic's effective [`LogConfig`] is resolved from its overrides
//! over the broker layers, and what DescribeConfigs reports (value, source, type, synonyms).

use super::settings::{Config, TimestampType};
use std::collections::BTreeMap;

/// A refused topic or dynamic broker config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicConfigError {
    /// An unknown key or a bad value (INVALID_CONFIG).
    #[error("{0}")]
    Invalid(String),
    /// A broker setting that cannot change at run time (INVALID_REQUEST).
    #[error("{0}")]
    NotDynamic(String),
}

/// The log settings of one topic, resolved from topic overrides and broker defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub segment_bytes: i64,
    pub segment_ms: i64,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub max_message_bytes: i32,
    /// A compressed batch decompresses to at most this many times `max_message_bytes`.
    pub max_uncompressed_factor: u32,
    pub timestamp_type: TimestampType,
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    pub index_interval_bytes: i64,
    /// Tier this topic's closed segments (only when the broker has a tier).
    pub remote_storage_enable: bool,
    /// Local copies of uploaded segments beyond these are deleted; -2 means `retention.*`.
    pub local_retention_ms: i64,
    pub local_retention_bytes: i64,
    /// `cleanup.policy` contains `compact`: the cleaner keeps the latest record per key.
    pub cleanup_compact: bool,
    /// `cleanup.policy` contains `delete`: time and size retention delete old segments.
    pub cleanup_delete: bool,
    /// How long tombstones stay readable after the cleaner reached them.
    pub delete_retention_ms: i64,
    pub min_cleanable_dirty_ratio: f64,
    /// Records younger than this are never compacted.
    pub min_compaction_lag_ms: i64,
    /// `compression.type`: the codec batches are stored with, `None` for `producer` (as sent).
    pub compression: Option<i16>,
    /// `flush.ms`: written data is synced within this (or the broker's flush interval, if
    /// shorter).
    pub flush_ms: i64,
    /// `flush.messages`: this many unsynced records start a sync at once.
    pub flush_messages: i64,
}

impl Default for LogConfig {
    /// The built-in broker defaults.
    fn default() -> Self {
        Config::default().log_defaults()
    }
}

impl LogConfig {
    /// `local.retention.ms` in effect (never more than `retention.ms`).
    pub fn effective_local_retention_ms(&self) -> i64 {
        effective_local(self.local_retention_ms, self.retention_ms)
    }

    pub fn effective_local_retention_bytes(&self) -> i64 {
        effective_local(self.local_retention_bytes, self.retention_bytes)
    }
}

/// Kafka's rule: -2 follows the total retention; otherwise the smaller of the two (-1 being
/// unlimited).
fn effective_local(local: i64, total: i64) -> i64 {
    match (local, total) {
        (-2, t) => t,
        (-1, t) => t,
        (l, -1) => l,
        (l, t) => l.min(t),
    }
}

impl Config {
    /// The log settings of a topic without overrides (the static broker settings).
    pub fn log_defaults(&self) -> LogConfig {
        let policy = &self.log_cleanup_policy;
        LogConfig {
            segment_bytes: self.log_segment_bytes,
            segment_ms: self.log_segment_ms,
            retention_ms: self.log_retention_ms,
            retention_bytes: self.log_retention_bytes,
            max_message_bytes: self.message_max_bytes,
            max_uncompressed_factor: self.batch_max_uncompressed_factor,
            timestamp_type: self.log_message_timestamp_type,
            timestamp_before_max_ms: self.log_message_timestamp_before_max_ms,
            timestamp_after_max_ms: self.log_message_timestamp_after_max_ms,
            index_interval_bytes: self.log_index_interval_bytes,
            remote_storage_enable: self.tier_url != "none",
            local_retention_ms: self.log_local_retention_ms,
            local_retention_bytes: self.log_local_retention_bytes,
            cleanup_compact: policy.contains("compact"),
            cleanup_delete: policy.contains("delete"),
            delete_retention_ms: self.log_cleaner_delete_retention_ms,
            min_cleanable_dirty_ratio: self.log_cleaner_min_cleanable_ratio,
            min_compaction_lag_ms: self.log_cleaner_min_compaction_lag_ms,
            compression: codec_of(&self.compression_type).flatten(),
            flush_ms: i64::try_from(self.flush_interval_ms).unwrap_or(i64::MAX),
            flush_messages: i64::MAX,
        }
    }
}

/// Kafka's `compression.type` values and their codec numbers (`producer` keeps the batch's).
pub fn codec_of(name: &str) -> Option<Option<i16>> {
    match name {
        "producer" => Some(None),
        "uncompressed" => Some(Some(0)),
        "gzip" => Some(Some(1)),
        "snappy" => Some(Some(2)),
        "lz4" => Some(Some(3)),
        "zstd" => Some(Some(4)),
        _ => None,
    }
}

/// Kafka's `ConfigSource` values as sent in DescribeConfigs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    DynamicTopic = 1,
    DynamicBroker = 2,
    DynamicDefaultBroker = 3,
    StaticBroker = 4,
    Default = 5,
    /// A group's own config (IncrementalAlterConfigs on a GROUP resource).
    DynamicGroup = 8,
}

/// What topic configs fall back to: dynamic broker configs (set with AlterConfigs on this
/// broker's id, then on the cluster default), then the static broker config, then defaults.
pub struct BrokerDefaults<'a> {
    pub config: &'a Config,
    pub dynamic: &'a BTreeMap<String, String>,
    pub dynamic_default: &'a BTreeMap<String, String>,
}

impl BrokerDefaults<'_> {
    /// The broker-level layers for `key`, most specific first (always ends with the default).
    fn layers(&self, key: &TopicKey) -> Vec<(String, ConfigSource)> {
        let mut out = Vec::new();
        if let Some(v) = self.dynamic.get(key.broker_name) {
            out.push((v.clone(), ConfigSource::DynamicBroker));
        }
        if let Some(v) = self.dynamic_default.get(key.broker_name) {
            out.push((v.clone(), ConfigSource::DynamicDefaultBroker));
        }
        let stat = (key.broker_value)(self.config);
        let default = (key.broker_value)(&Config::default());
        if stat != default {
            out.push((stat, ConfigSource::StaticBroker));
        }
        out.push((default, ConfigSource::Default));
        out
    }

    fn value(&self, key: &TopicKey) -> String {
        self.layers(key)
            .into_iter()
            .next()
            .map(|(v, _)| v)
            .unwrap_or_default()
    }
}

/// Kafka's `ConfigType` values (DescribeConfigs v3+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// One described config, with the broker-level setting it falls back to as a synonym.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigEntry {
    pub name: &'static str,
    pub value: String,
    pub source: ConfigSource,
    pub config_type: ConfigType,
    pub read_only: bool,
    /// `(name, value, source)` from most to least specific, the entry itself first.
    pub synonyms: Vec<(&'static str, String, ConfigSource)>,
}

pub struct TopicKey {
    /// The topic config's name (`retention.ms`).
    pub name: &'static str,
    /// The broker config it defaults to (`log.retention.ms`).
    pub broker_name: &'static str,
    /// The broker's own setting (flag, env and file key) holding that default, when it has one.
    pub setting: Option<&'static str>,
    pub ty: ConfigType,
    /// The broker-level value as a string.
    pub broker_value: fn(&Config) -> String,
    pub check: fn(&str) -> Result<(), String>,
}

fn long_at_least(min: i64) -> impl Fn(&str) -> Result<(), String> {
    move |v: &str| match v.parse::<i64>() {
        Ok(n) if n >= min => Ok(()),
        Ok(_) => Err(format!("value must be at least {min}")),
        Err(_) => Err(format!("`{v}` is not a number")),
    }
}

pub const TOPIC_KEYS: &[TopicKey] = &[
    TopicKey {
        name: "cleanup.policy",
        broker_name: "log.cleanup.policy",
        setting: Some("log_cleanup_policy"),
        ty: ConfigType::List,
        broker_value: |c| c.log_cleanup_policy.clone(),
        check: check_cleanup_policy,
    },
    TopicKey {
        name: "compression.type",
        broker_name: "compression.type",
        setting: Some("compression_type"),
        ty: ConfigType::String,
        broker_value: |c| c.compression_type.clone(),
        check: check_compression,
    },
    TopicKey {
        name: "delete.retention.ms",
        broker_name: "log.cleaner.delete.retention.ms",
        setting: Some("log_cleaner_delete_retention_ms"),
        ty: ConfigType::Long,
        broker_value: |c| c.log_cleaner_delete_retention_ms.to_string(),
        check: |v| long_at_least(0)(v),
    },
    TopicKey {
        name: "flush.messages",
        broker_name: "log.flush.interval.messages",
        setting: None,
        ty: ConfigType::Long,
        broker_value: |_| i64::MAX.to_string(),
        check: |v| long_at_least(1)(v),
    },
    TopicKey {
        name: "flush.ms",
        broker_name: "log.flush.interval.ms",
        setting: Some("flush_interval_ms"),
        ty: ConfigType::Long,
        broker_value: |c| c.flush_interval_ms.to_string(),
        check: |v| long_at_least(0)(v),
    },
    TopicKey {
        name: "index.interval.bytes",
        broker_name: "log.index.interval.bytes",
        setting: Some("log_index_interval_bytes"),
        ty: ConfigType::Int,
        broker_value: |c| c.log_index_interval_bytes.to_string(),
        check: |v| long_at_least(0)(v).and_then(|_| fits_i32(v)),
    },
    TopicKey {
        name: "local.retention.bytes",
        broker_name: "log.local.retention.bytes",
        setting: Some("log_local_retention_bytes"),
        ty: ConfigType::Long,
        broker_value: |c| c.log_local_retention_bytes.to_string(),
        check: |v| long_at_least(-2)(v),
    },
    TopicKey {
        name: "local.retention.ms",
        broker_name: "log.local.retention.ms",
        setting: Some("log_local_retention_ms"),
        ty: ConfigType::Long,
        broker_value: |c| c.log_local_retention_ms.to_string(),
        check: |v| long_at_least(-2)(v),
    },
    TopicKey {
        name: "max.message.bytes",
        broker_name: "message.max.bytes",
        setting: Some("message_max_bytes"),
        ty: ConfigType::Int,
        broker_value: |c| c.message_max_bytes.to_string(),
        check: |v| long_at_least(0)(v).and_then(|_| fits_i32(v)),
    },
    TopicKey {
        name: "message.timestamp.after.max.ms",
        broker_name: "log.message.timestamp.after.max.ms",
        setting: Some("log_message_timestamp_after_max_ms"),
        ty: ConfigType::Long,
        broker_value: |c| c.log_message_timestamp_after_max_ms.to_string(),
        check: |v| long_at_least(0)(v),
    },
    TopicKey {
        name: "message.timestamp.before.max.ms",
        broker_name: "log.message.timestamp.before.max.ms",
        setting: Some("log_message_timestamp_before_max_ms"),
        ty: ConfigType::Long,
        broker_value: |c| c.log_message_timestamp_before_max_ms.to_string(),
        check: |v| long_at_least(0)(v),
    },
    TopicKey {
        name: "message.timestamp.type",
        broker_name: "log.message.timestamp.type",
        setting: Some("log_message_timestamp_type"),
        ty: ConfigType::String,
        broker_value: |c| c.log_message_timestamp_type.to_string(),
        check: |v| v.parse::<TimestampType>().map(|_| ()),
    },
    TopicKey {
        name: "min.cleanable.dirty.ratio",
        broker_name: "log.cleaner.min.cleanable.ratio",
        setting: Some("log_cleaner_min_cleanable_ratio"),
        ty: ConfigType::Double,
        broker_value: |c| c.log_cleaner_min_cleanable_ratio.to_string(),
        check: check_ratio,
    },
    TopicKey {
        name: "min.compaction.lag.ms",
        broker_name: "log.cleaner.min.compaction.lag.ms",
        setting: Some("log_cleaner_min_compaction_lag_ms"),
        ty: ConfigType::Long,
        broker_value: |c| c.log_cleaner_min_compaction_lag_ms.to_string(),
        check: |v| long_at_least(0)(v),
    },
    TopicKey {
        name: "remote.storage.enable",
        broker_name: "remote.log.storage.system.enable",
        setting: None,
        ty: ConfigType::Boolean,
        broker_value: |c| (c.tier_url != "none").to_string(),
        check: |v| match v {
            "true" | "false" => Ok(()),
            _ => Err(format!("`{v}` is not true or false")),
        },
    },
    TopicKey {
        name: "retention.bytes",
        broker_name: "log.retention.bytes",
        setting: Some("log_retention_bytes"),
        ty: ConfigType::Long,
        broker_value: |c| c.log_retention_bytes.to_string(),
        check: |v| long_at_least(-1)(v),
    },
    TopicKey {
        name: "retention.ms",
        broker_name: "log.retention.ms",
        setting: Some("log_retention_ms"),
        ty: ConfigType::Long,
        broker_value: |c| c.log_retention_ms.to_string(),
        check: |v| long_at_least(-1)(v),
    },
    TopicKey {
        name: "segment.bytes",
        broker_name: "log.segment.bytes",
        setting: Some("log_segment_bytes"),
        ty: ConfigType::Int,
        broker_value: |c| c.log_segment_bytes.to_string(),
        check: |v| long_at_least(14)(v).and_then(|_| fits_i32(v)),
    },
    TopicKey {
        name: "segment.ms",
        broker_name: "log.roll.ms",
        setting: Some("log_segment_ms"),
        ty: ConfigType::Long,
        broker_value: |c| c.log_segment_ms.to_string(),
        check: |v| long_at_least(1)(v),
    },
];

/// `delete`, `compact`, or both (comma-separated, any order).
pub fn check_cleanup_policy(v: &str) -> Result<(), String> {
    let parts: Vec<&str> = v.split(',').map(str::trim).collect();
    if parts.is_empty()
        || parts.len() > 2
        || parts.iter().any(|p| *p != "delete" && *p != "compact")
    {
        return Err(format!(
            "`{v}` is not a valid cleanup.policy (delete, compact or both)"
        ));
    }
    Ok(())
}

/// `producer`, `uncompressed`, `gzip`, `snappy`, `lz4` or `zstd`.
pub fn check_compression(v: &str) -> Result<(), String> {
    codec_of(v).map(|_| ()).ok_or_else(|| {
        format!("`{v}` is not one of producer, uncompressed, gzip, snappy, lz4, zstd")
    })
}

/// A ratio between 0 and 1.
pub fn check_ratio(v: &str) -> Result<(), String> {
    match v.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(()),
        _ => Err(format!("`{v}` is not a number between 0 and 1")),
    }
}

fn fits_i32(v: &str) -> Result<(), String> {
    v.parse::<i32>()
        .map(|_| ())
        .map_err(|_| format!("`{v}` does not fit a 32-bit int"))
}

/// Every topic config key this broker understands.
pub const TOPIC_CONFIG_KEYS: &[&str] = &[
    "cleanup.policy",
    "compression.type",
    "delete.retention.ms",
    "flush.messages",
    "flush.ms",
    "index.interval.bytes",
    "local.retention.bytes",
    "local.retention.ms",
    "max.message.bytes",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.type",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "remote.storage.enable",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.ms",
];

/// Validates topic overrides: known keys, well-formed values.
pub fn validate_overrides(configs: &BTreeMap<String, String>) -> Result<(), TopicConfigError> {
    for (k, v) in configs {
        let key = TOPIC_KEYS
            .iter()
            .find(|t| t.name == k)
            .ok_or_else(|| TopicConfigError::Invalid(format!("unknown topic config name: {k}")))?;
        (key.check)(v).map_err(|e| {
            TopicConfigError::Invalid(format!("invalid value {v} for configuration {k}: {e}"))
        })?;
    }
    Ok(())
}

/// Validates dynamic broker configs: only the broker-level names of topic configs
/// (`log.retention.ms`, …) can change while the broker runs.
pub fn validate_broker_overrides(
    configs: &BTreeMap<String, String>,
) -> Result<(), TopicConfigError> {
    for (k, v) in configs {
        let key = TOPIC_KEYS
            .iter()
            .find(|t| t.broker_name == k)
            .ok_or_else(|| {
                TopicConfigError::NotDynamic(format!(
                "{k} is not a dynamic broker config; change it in the config file or with its flag"
            ))
            })?;
        (key.check)(v).map_err(|e| {
            TopicConfigError::Invalid(format!("invalid value {v} for configuration {k}: {e}"))
        })?;
    }
    Ok(())
}

/// Checks the broker's own settings of the topic defaults (`log_retention_ms`, …) with the
/// same rules as the topic keys: `(setting, reason)` of the first that fails.
pub fn check_broker_settings(c: &Config) -> Result<(), (&'static str, String)> {
    for key in TOPIC_KEYS {
        if let Some(setting) = key.setting {
            (key.check)(&(key.broker_value)(c)).map_err(|reason| (setting, reason))?;
        }
    }
    Ok(())
}

fn value_of(configs: &BTreeMap<String, String>, b: &BrokerDefaults, name: &str) -> String {
    configs.get(name).cloned().unwrap_or_else(|| {
        TOPIC_KEYS
            .iter()
            .find(|t| t.name == name)
            .map(|t| b.value(t))
            .unwrap_or_default()
    })
}

/// The effective log settings for topic overrides on top of broker defaults. Overrides were
/// validated when stored; a value that still fails to parse falls back to the broker default.
pub fn resolve(configs: &BTreeMap<String, String>, b: &BrokerDefaults) -> LogConfig {
    let base = b.config.log_defaults();
    let get = |name: &str| value_of(configs, b, name);
    let policy = get("cleanup.policy");
    LogConfig {
        segment_bytes: get("segment.bytes").parse().unwrap_or(base.segment_bytes),
        segment_ms: get("segment.ms").parse().unwrap_or(base.segment_ms),
        retention_ms: get("retention.ms").parse().unwrap_or(base.retention_ms),
        retention_bytes: get("retention.bytes")
            .parse()
            .unwrap_or(base.retention_bytes),
        max_message_bytes: get("max.message.bytes")
            .parse()
            .unwrap_or(base.max_message_bytes),
        max_uncompressed_factor: base.max_uncompressed_factor,
        timestamp_type: get("message.timestamp.type")
            .parse()
            .unwrap_or(base.timestamp_type),
        timestamp_before_max_ms: get("message.timestamp.before.max.ms")
            .parse()
            .unwrap_or(base.timestamp_before_max_ms),
        timestamp_after_max_ms: get("message.timestamp.after.max.ms")
            .parse()
            .unwrap_or(base.timestamp_after_max_ms),
        index_interval_bytes: get("index.interval.bytes")
            .parse()
            .unwrap_or(base.index_interval_bytes),
        // compacted topics stay local, as in Kafka (the cleaner rewrites closed segments)
        remote_storage_enable: base.remote_storage_enable
            && get("remote.storage.enable").parse().unwrap_or(true)
            && !policy.contains("compact"),
        cleanup_compact: policy.contains("compact"),
        cleanup_delete: policy.contains("delete"),
        delete_retention_ms: get("delete.retention.ms")
            .parse()
            .unwrap_or(base.delete_retention_ms),
        min_cleanable_dirty_ratio: get("min.cleanable.dirty.ratio")
            .parse()
            .unwrap_or(base.min_cleanable_dirty_ratio),
        min_compaction_lag_ms: get("min.compaction.lag.ms")
            .parse()
            .unwrap_or(base.min_compaction_lag_ms),
        compression: codec_of(&get("compression.type")).unwrap_or(base.compression),
        flush_ms: get("flush.ms").parse().unwrap_or(base.flush_ms),
        flush_messages: get("flush.messages").parse().unwrap_or(base.flush_messages),
        local_retention_ms: get("local.retention.ms")
            .parse()
            .unwrap_or(base.local_retention_ms),
        local_retention_bytes: get("local.retention.bytes")
            .parse()
            .unwrap_or(base.local_retention_bytes),
    }
}

/// DescribeConfigs entries for a topic.
pub fn topic_config_entries(
    configs: &BTreeMap<String, String>,
    b: &BrokerDefaults,
) -> Vec<ConfigEntry> {
    TOPIC_KEYS
        .iter()
        .map(|k| {
            let mut synonyms = Vec::new();
            if let Some(v) = configs.get(k.name) {
                synonyms.push((k.name, v.clone(), ConfigSource::DynamicTopic));
            }
            for (v, src) in b.layers(k) {
                synonyms.push((k.broker_name, v, src));
            }
            let (value, source) = synonyms
                .first()
                .map(|(_, v, s)| (v.clone(), *s))
                .unwrap_or((String::new(), ConfigSource::Default));
            ConfigEntry {
                name: k.name,
                value,
                source,
                config_type: k.ty,
                read_only: false,
                synonyms,
            }
        })
        .collect()
}

/// A broker-only setting: its Kafka name, how to read it from a config, its type.
type BrokerOnly = (&'static str, fn(&Config) -> String, ConfigType);

/// DescribeConfigs entries for the broker: the topic defaults (dynamic: AlterConfigs can change
/// them) and the broker-only settings (read-only: changed through the config file/flags).
/// `listen` and `advertised` are the listeners as Kafka writes them (`NAME://HOST:PORT,…`).
pub fn broker_config_entries(
    b: &BrokerDefaults,
    listen: &str,
    advertised: &str,
) -> Vec<ConfigEntry> {
    let broker = b.config;
    let d = Config::default();
    let entry = |name: &'static str, value: String, default: String, ty: ConfigType| {
        let source = if value == default {
            ConfigSource::Default
        } else {
            ConfigSource::StaticBroker
        };
        ConfigEntry {
            name,
            value: value.clone(),
            source,
            config_type: ty,
            read_only: true,
            synonyms: vec![(name, value, source)],
        }
    };
    let mut out: Vec<ConfigEntry> = TOPIC_KEYS
        .iter()
        .map(|k| {
            let synonyms: Vec<_> = b
                .layers(k)
                .into_iter()
                .map(|(v, s)| (k.broker_name, v, s))
                .collect();
            let (value, source) = synonyms
                .first()
                .map(|(_, v, s)| (v.clone(), *s))
                .unwrap_or((String::new(), ConfigSource::Default));
            ConfigEntry {
                name: k.broker_name,
                value,
                source,
                config_type: k.ty,
                read_only: false,
                synonyms,
            }
        })
        .collect();
    // broker-only settings: (Kafka name, value from a config, type)
    let broker_only: [BrokerOnly; 10] = [
        (
            "listener.security.protocol.map",
            |c| c.listener_security_protocol_map.clone(),
            ConfigType::String,
        ),
        (
            "sasl.enabled.mechanisms",
            |c| c.sasl_enabled_mechanisms.clone(),
            ConfigType::List,
        ),
        (
            "ssl.client.auth",
            |c| c.ssl_client_auth.clone(),
            ConfigType::String,
        ),
        (
            "connections.max.reauth.ms",
            |c| c.connections_max_reauth_ms.to_string(),
            ConfigType::Long,
        ),
        (
            "auto.create.topics.enable",
            |c| c.auto_create_topics_enable.to_string(),
            ConfigType::Boolean,
        ),
        (
            "num.partitions",
            |c| c.num_partitions.to_string(),
            ConfigType::Int,
        ),
        (
            "socket.request.max.bytes",
            |c| c.socket_request_max_bytes.to_string(),
            ConfigType::Int,
        ),
        (
            "log.retention.check.interval.ms",
            |c| c.log_retention_check_interval_ms.to_string(),
            ConfigType::Long,
        ),
        ("node.id", |c| c.node_id.to_string(), ConfigType::Int),
        (
            "log.dirs",
            |c| c.data_dir.display().to_string(),
            ConfigType::String,
        ),
    ];
    for (name, value, ty) in broker_only {
        out.push(entry(name, value(broker), value(&d), ty));
    }
    out.push(entry(
        "broker.rack",
        broker.rack().unwrap_or_default().to_string(),
        String::new(),
        ConfigType::String,
    ));
    out.push(entry(
        "listeners",
        listen.to_string(),
        String::new(),
        ConfigType::String,
    ));
    out.push(entry(
        "advertised.listeners",
        advertised.to_string(),
        String::new(),
        ConfigType::String,
    ));
    out.sort_by_key(|e| e.name);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_are_validated_and_resolved() {
        let broker = Config::default();
        let mut o = BTreeMap::new();
        o.insert("retention.ms".to_string(), "1000".to_string());
        o.insert(
            "message.timestamp.type".to_string(),
            "LogAppendTime".to_string(),
        );
        validate_overrides(&o).expect("valid");
        let none = BTreeMap::new();
        let b = BrokerDefaults {
            config: &broker,
            dynamic: &none,
            dynamic_default: &none,
        };
        let c = resolve(&o, &b);
        assert_eq!(c.retention_ms, 1000);
        assert_eq!(c.timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(c.segment_bytes, broker.log_segment_bytes);
        for (k, v) in [
            ("retention.ms", "-2"),
            ("segment.bytes", "3"),
            ("no.such", "1"),
            ("segment.bytes", "99999999999"),
            ("cleanup.policy", "compacted"),
            ("min.cleanable.dirty.ratio", "1.5"),
        ] {
            let mut bad = BTreeMap::new();
            bad.insert(k.to_string(), v.to_string());
            assert!(validate_overrides(&bad).is_err(), "{k}={v} accepted");
        }
        let names: Vec<&str> = TOPIC_KEYS.iter().map(|k| k.name).collect();
        assert_eq!(names, TOPIC_CONFIG_KEYS);
    }

    #[test]
    fn describe_reports_sources() {
        let broker = Config {
            log_retention_ms: 5,
            ..Config::default()
        };
        let mut o = BTreeMap::new();
        o.insert("segment.ms".to_string(), "100".to_string());
        let none = BTreeMap::new();
        let mut dynamic = BTreeMap::new();
        dynamic.insert("log.retention.bytes".to_string(), "777".to_string());
        let b = BrokerDefaults {
            config: &broker,
            dynamic: &none,
            dynamic_default: &dynamic,
        };
        let e = topic_config_entries(&o, &b);
        let get = |n: &str| e.iter().find(|x| x.name == n).cloned().expect("present");
        assert_eq!(get("segment.ms").source, ConfigSource::DynamicTopic);
        assert_eq!(get("retention.ms").source, ConfigSource::StaticBroker);
        assert_eq!(get("retention.ms").value, "5");
        assert_eq!(
            get("retention.bytes").source,
            ConfigSource::DynamicDefaultBroker
        );
        assert_eq!(get("retention.bytes").value, "777");
        assert_eq!(resolve(&o, &b).retention_bytes, 777);
        assert_eq!(
            get("retention.bytes").synonyms.len(),
            2,
            "dynamic default, then the default"
        );
        assert_eq!(get("index.interval.bytes").source, ConfigSource::Default);
        let mut bad = BTreeMap::new();
        bad.insert("log.dirs".to_string(), "/x".to_string());
        assert!(matches!(
            validate_broker_overrides(&bad),
            Err(TopicConfigError::NotDynamic(_))
        ));
        bad.clear();
        bad.insert("log.retention.ms".to_string(), "-7".to_string());
        assert!(matches!(
            validate_broker_overrides(&bad),
            Err(TopicConfigError::Invalid(_))
        ));
    }
}
