//! Typed configuration. Precedence: CLI flag > `TIERCEL_*` environment variable > config file >
//! built-in default. Every setting is declared once (`settings.rs`), which generates the clap flags
//! (with their env names), the TOML file schema and the merge, so the three can never drift
//! apart. `config/tiercel.toml` lists every key with its default; a test checks that.
//!
//! A leaf: it imports no other module of the broker. Each module takes the typed part it needs
//! ([`LogConfig`], [`TierConfig`], [`GroupConfig`], [`TxnConfig`]) rather than the whole
//! [`Config`]; the topic-config keys and their rules live in [`topic`].

mod listeners;
mod sections;
mod settings;
pub mod topic;

pub use listeners::{Listener, SecurityProtocol};
pub use sections::{
    ip_overrides, Assignor, Assignors, GroupConfig, MigrationPolicy, ShareConfig, StoreConfig,
    TelemetryConfig, TierConfig, TxnConfig,
};
pub use settings::{Cli, Config, ConfigError, FileConfig, LogFormat, TimestampType};
pub use topic::LogConfig;

use std::path::Path;

impl Config {
    /// Whether this node is one of a cluster (`etcd_endpoints` set).
    pub fn clustered(&self) -> bool {
        !self.etcd_endpoints.trim().is_empty()
    }

    /// Resolves CLI/env (already parsed by clap) over the optional config file over defaults,
    /// then validates.
    pub fn load(cli: Cli) -> Result<Config, ConfigError> {
        let file = match &cli.config {
            Some(path) => Self::read_file(path)?,
            None => FileConfig::default(),
        };
        let config = Config::merge(cli, file);
        config.validate()?;
        Ok(config)
    }

    /// Parses a config file (used by `load` and by the test that checks `config/tiercel.toml`).
    /// Read before the runtime starts.
    #[allow(clippy::disallowed_methods)]
    pub fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::File {
            path: path.to_owned(),
            reason: e.message().to_string(),
        })
    }

    /// The share-group settings' ranges (Kafka's, where Kafka has one).
    fn check_shares(&self) -> Result<(), ConfigError> {
        let bad = |key: &'static str, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_string(),
            })
        };
        if !(1000..=3_600_000).contains(&self.group_share_record_lock_duration_ms) {
            return bad(
                "group_share_record_lock_duration_ms",
                "must be 1000..=3600000",
            );
        }
        if !(2..=10).contains(&self.group_share_delivery_count_limit) {
            return bad("group_share_delivery_count_limit", "must be 2..=10");
        }
        if !(100..=10_000).contains(&self.group_share_partition_max_record_locks) {
            return bad(
                "group_share_partition_max_record_locks",
                "must be 100..=10000",
            );
        }
        if self.group_share_max_size == 0 || self.group_share_max_share_sessions == 0 {
            return bad(
                "group_share_max_size",
                "it and group_share_max_share_sessions must be >= 1",
            );
        }
        if self.group_share_heartbeat_interval_ms <= 0
            || self.group_share_heartbeat_interval_ms >= self.group_share_session_timeout_ms
        {
            return bad(
                "group_share_heartbeat_interval_ms",
                "must be > 0 and below group_share_session_timeout_ms",
            );
        }
        let reset = self.share_auto_offset_reset.as_str();
        if !matches!(reset, "earliest" | "latest") && !reset.starts_with("by_duration:P") {
            return bad(
                "share_auto_offset_reset",
                "must be earliest, latest or by_duration:<ISO-8601 duration>",
            );
        }
        Ok(())
    }

    /// Checks ranges and cross-field rules, naming the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn bad(key: &'static str, reason: impl Into<String>) -> Result<(), ConfigError> {
            Err(ConfigError::Invalid {
                key,
                reason: reason.into(),
            })
        }
        if self.node_id < 0 {
            return bad("node_id", "must be >= 0");
        }
        if self.num_partitions < 1 {
            return bad("num_partitions", "must be >= 1");
        }
        if self.socket_request_max_bytes < 1024 {
            return bad("socket_request_max_bytes", "must be >= 1024");
        }
        if self.max_connections == 0 {
            return bad("max_connections", "must be >= 1");
        }
        if let Err(e) = ip_overrides(&self.max_connections_per_ip_overrides) {
            return bad("max_connections_per_ip_overrides", &e);
        }
        topic::check_broker_settings(self)
            .map_err(|(key, reason)| ConfigError::Invalid { key, reason })?;
        if self.log_cleaner_backoff_ms == 0 {
            return bad("log_cleaner_backoff_ms", "must be >= 1");
        }
        if self.log_retention_check_interval_ms == 0 {
            return bad("log_retention_check_interval_ms", "must be >= 1");
        }
        if self.producer_id_expiration_ms < 1 {
            return bad("producer_id_expiration_ms", "must be >= 1");
        }
        if self.transaction_max_timeout_ms < 1 {
            return bad("transaction_max_timeout_ms", "must be >= 1");
        }
        if self.transactional_id_expiration_ms < 1 {
            return bad("transactional_id_expiration_ms", "must be >= 1");
        }
        if self.telemetry_push_interval_ms < 100 {
            return bad("telemetry_push_interval_ms", "must be >= 100");
        }
        if self.telemetry_max_bytes < 1 {
            return bad("telemetry_max_bytes", "must be >= 1");
        }
        if !(0..=2).contains(&self.transaction_version) {
            return bad("transaction_version", "must be 0, 1 or 2");
        }
        if self.transaction_abort_interval_ms == 0 {
            return bad("transaction_abort_interval_ms", "must be >= 1");
        }
        if self.group_min_session_timeout_ms < 1 {
            return bad("group_min_session_timeout_ms", "must be >= 1");
        }
        if self.group_max_session_timeout_ms < self.group_min_session_timeout_ms {
            return bad(
                "group_max_session_timeout_ms",
                "must be >= group_min_session_timeout_ms",
            );
        }
        if self.group_initial_rebalance_delay_ms < 0 {
            return bad("group_initial_rebalance_delay_ms", "must be >= 0");
        }
        if let Err(e) = Assignors::parse(&self.group_consumer_assignors) {
            return bad("group_consumer_assignors", e);
        }
        if let Err(e) = MigrationPolicy::parse(&self.group_consumer_migration_policy) {
            return bad("group_consumer_migration_policy", e);
        }
        if self.group_consumer_max_size == 0 {
            return bad("group_consumer_max_size", "must be >= 1");
        }
        if self.group_consumer_heartbeat_interval_ms <= 0
            || self.group_consumer_heartbeat_interval_ms >= self.group_consumer_session_timeout_ms
        {
            return bad(
                "group_consumer_heartbeat_interval_ms",
                "must be > 0 and below group_consumer_session_timeout_ms",
            );
        }
        if self.group_max_size == 0 {
            return bad("group_max_size", "must be >= 1");
        }
        self.check_shares()?;
        if self.offsets_retention_minutes < 1 {
            return bad("offsets_retention_minutes", "must be >= 1");
        }
        if self.flush_interval_ms == 0 || self.flush_interval_ms > 60_000 {
            return bad("flush_interval_ms", "must be between 1 and 60000");
        }
        let tiered = self
            .effective_tier_url()
            .map_err(|reason| ConfigError::Invalid {
                key: "tier_url",
                reason,
            })?
            .is_some();
        if tiered && self.log_cleanup_policy.contains("compact") {
            return bad(
                "log_cleanup_policy",
                "cannot include compact while topics are tiered (remote log storage is only supported for cleanup.policy=delete); set tier_url=none, or set cleanup.policy=compact on the topics that need it",
            );
        }
        if self.tier_upload_concurrency == 0 {
            return bad("tier_upload_concurrency", "must be >= 1");
        }
        if self.tier_request_timeout_ms == 0 {
            return bad("tier_request_timeout_ms", "must be >= 1");
        }
        if self.tier_request_attempts == 0 {
            return bad("tier_request_attempts", "must be >= 1");
        }
        if self.batch_max_uncompressed_factor < 1 {
            return bad("batch_max_uncompressed_factor", "must be >= 1");
        }
        if self.fetch_max_bytes < 1024 {
            return bad("fetch_max_bytes", "must be at least 1024");
        }
        if self.clustered() {
            if self.tier_url.is_empty() || self.tier_url == "none" {
                return bad(
                    "tier_url",
                    "a cluster (etcd_endpoints set) needs the bucket every node shares: set tier_url to it",
                );
            }
            if !self.etcd_prefix.starts_with('/') || self.etcd_prefix.ends_with('/') {
                return bad(
                    "etcd_prefix",
                    "must start with '/' and not end with one (e.g. /tiercel/prod)",
                );
            }
            if !(1000..=600_000).contains(&self.cluster_lease_ttl_ms) {
                return bad("cluster_lease_ttl_ms", "must be between 1000 and 600000");
            }
            if !(1000..=86_400_000).contains(&self.cluster_roll_ms) {
                return bad("cluster_roll_ms", "must be between 1000 and 86400000");
            }
            if self.cluster_roll_bytes < 1 << 20 {
                return bad("cluster_roll_bytes", "must be at least 1048576");
            }
            if !(1..=1000).contains(&self.offsets_topic_num_partitions) {
                return bad("offsets_topic_num_partitions", "must be between 1 and 1000");
            }
            if !(1..=1000).contains(&self.transaction_state_log_num_partitions) {
                return bad(
                    "transaction_state_log_num_partitions",
                    "must be between 1 and 1000",
                );
            }
        }
        let listeners = self.listeners()?;
        if listeners.iter().any(|l| l.protocol.tls())
            && (self.ssl_certificate.is_empty() || self.ssl_key.is_empty())
        {
            return bad(
                "ssl_certificate",
                "SSL and SASL_SSL listeners need ssl_certificate and ssl_key",
            );
        }
        if self.ssl_client_auth != "none" && self.ssl_ca.is_empty() {
            return bad(
                "ssl_ca",
                "ssl_client_auth needs the CA certificates client certificates are checked against",
            );
        }
        if listeners.iter().any(|l| l.protocol.sasl())
            && self
                .sasl_enabled_mechanisms
                .split(',')
                .all(|m| m.trim().is_empty())
        {
            return bad("sasl_enabled_mechanisms", "SASL listeners need a mechanism");
        }
        if !matches!(
            self.ssl_client_auth.as_str(),
            "none" | "requested" | "required"
        ) {
            return bad(
                "ssl_client_auth",
                format!(
                    "`{}` is not none, requested or required",
                    self.ssl_client_auth
                ),
            );
        }
        for m in self.sasl_enabled_mechanisms.split(',').map(str::trim) {
            if !matches!(
                m,
                "" | "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512" | "OAUTHBEARER"
            ) {
                return bad(
                    "sasl_enabled_mechanisms",
                    format!("`{m}` is not PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER"),
                );
            }
            if m == "OAUTHBEARER" && self.sasl_oauthbearer_jwks_file.is_empty() {
                return bad(
                    "sasl_oauthbearer_jwks_file",
                    "OAUTHBEARER needs the JWKS file tokens are checked against",
                );
            }
        }
        if !matches!(self.authorizer.as_str(), "none" | "acl") {
            return bad(
                "authorizer",
                format!("`{}` is not none or acl", self.authorizer),
            );
        }
        for p in self
            .super_users
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            if !p
                .split_once(':')
                .is_some_and(|(t, n)| !t.is_empty() && !n.is_empty())
            {
                return bad(
                    "super_users",
                    format!("`{p}` is not Type:name (User:admin)"),
                );
            }
        }
        if self.authentication_timeout_ms == 0 {
            return bad("authentication_timeout_ms", "must be at least 1");
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log_level).is_err() {
            return bad(
                "log_level",
                format!("`{}` is not a valid filter", self.log_level),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let mut argv = vec!["tiercel"];
        argv.extend_from_slice(args);
        Config::load(Cli::try_parse_from(argv).expect("flags parse"))
    }

    #[test]
    fn shipped_config_file_lists_every_key_with_its_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/tiercel.toml");
        let text = std::fs::read_to_string(&path).expect("config/tiercel.toml exists");
        for (key, _) in Config::KEYS {
            let present = text.lines().any(|l| {
                let l = l.trim_start_matches('#').trim_start();
                l.starts_with(&format!("{key} ="))
            });
            assert!(present, "config/tiercel.toml does not mention `{key}`");
        }
        let file = Config::read_file(&path).expect("shipped file parses");
        let merged = Config::merge(Cli::default(), file);
        let d = Config::default();
        assert_eq!(
            format!("{merged:?}"),
            format!("{d:?}"),
            "file values differ from defaults"
        );
    }

    #[test]
    fn cli_beats_file_beats_default() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("t.toml");
        std::fs::write(&f, "node_id = 7\nnum_partitions = 3\n").expect("write");
        let c = parse(&["--config", f.to_str().expect("utf8"), "--node-id", "9"]).expect("ok");
        assert_eq!(c.node_id, 9);
        assert_eq!(c.num_partitions, 3);
        assert_eq!(c.log_segment_bytes, 1_073_741_824);
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = parse(&["--num-partitions", "0"]).expect_err("invalid");
        assert!(e.to_string().contains("`num_partitions`"), "{e}");
        let e = parse(&["--advertised-listener", "nohost"]).expect_err("invalid");
        assert!(e.to_string().contains("`advertised_listener`"), "{e}");
        let e = parse(&["--log-cleanup-policy", "compact"]).expect_err("tiered by default");
        assert!(e.to_string().contains("`log_cleanup_policy`"), "{e}");
        let c = parse(&["--log-cleanup-policy", "compact", "--tier-url", "none"]);
        assert!(c.is_ok(), "without a tier a compact default is fine");
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("t.toml");
        std::fs::write(&f, "no_such_key = 1\n").expect("write");
        let e = parse(&["--config", f.to_str().expect("utf8")]).expect_err("unknown key");
        assert!(e.to_string().contains("no_such_key"), "{e}");
    }
}
