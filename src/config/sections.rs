//! The typed parts of the configuration each module takes: a module depends on its own section,
//! not on the whole [`Config`].

use super::settings::Config;
use std::time::Duration;

/// Tiered storage: where, and how hard to try.
#[derive(Debug, Clone)]
pub struct TierConfig {
    /// The object store URL (the embedded default already resolved).
    pub url: String,
    /// Memory for cached remote segment chunks and indexes.
    pub cache_bytes: u64,
    /// Segments uploading at once, across partitions.
    pub upload_concurrency: usize,
    pub store: StoreConfig,
}

/// How the object store is reached.
#[derive(Debug, Clone, Default)]
pub struct StoreConfig {
    pub request_timeout: Duration,
    pub max_attempts: u32,
    /// S3 overrides (empty/false: keep what the URL and the `AWS_*` environment say).
    pub s3_endpoint: String,
    pub s3_region: String,
    pub s3_access_key_id: String,
    pub s3_secret_access_key: String,
    pub s3_allow_http: bool,
    pub s3_virtual_hosted_style: bool,
}

/// Share groups (KIP-932): locks, delivery limits, membership and sessions.
#[derive(Debug, Clone)]
pub struct ShareConfig {
    pub lock_ms: i64,
    pub delivery_limit: i16,
    pub max_locks: i64,
    pub session_timeout_ms: i64,
    pub heartbeat_interval_ms: i32,
    pub max_size: usize,
    pub max_sessions: usize,
    /// Most share groups with members (`group_max_count`).
    pub max_groups: usize,
    /// `share.auto.offset.reset` of groups that do not set it.
    pub auto_offset_reset: String,
}

/// Consumer groups: limits, timings and committed-offset retention.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub initial_rebalance_delay_ms: i64,
    pub max_size: usize,
    /// Most groups the broker holds; a new one past it is refused.
    pub max_groups: usize,
    /// Committed offsets of an empty group are kept this long.
    pub offsets_retention_ms: i64,
    /// Largest metadata string stored with a commit.
    pub offset_metadata_max_bytes: usize,
    /// Consumer groups of KIP-848: a member silent this long is removed.
    pub consumer_session_timeout_ms: i32,
    /// How often members of a KIP-848 group heartbeat.
    pub consumer_heartbeat_interval_ms: i32,
    /// Most members of one KIP-848 group.
    pub consumer_max_size: usize,
    /// The server-side assignors members may ask for; the first is the default.
    pub consumer_assignors: Assignors,
    /// Which way a live group may change protocol.
    pub consumer_migration_policy: MigrationPolicy,
}

/// Online conversion of a live group between the classic protocol and KIP-848's
/// (`group_consumer_migration_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MigrationPolicy {
    Disabled,
    Upgrade,
    Downgrade,
    #[default]
    Bidirectional,
}

impl MigrationPolicy {
    pub fn parse(name: &str) -> Result<MigrationPolicy, String> {
        match name.trim().to_ascii_lowercase().as_str() {
            "disabled" => Ok(MigrationPolicy::Disabled),
            "upgrade" => Ok(MigrationPolicy::Upgrade),
            "downgrade" => Ok(MigrationPolicy::Downgrade),
            "bidirectional" => Ok(MigrationPolicy::Bidirectional),
            other => Err(format!(
                "unknown policy {other:?} (known: bidirectional, upgrade, downgrade, disabled)"
            )),
        }
    }

    /// A classic group with members may become a KIP-848 group.
    pub fn upgrades(self) -> bool {
        matches!(
            self,
            MigrationPolicy::Upgrade | MigrationPolicy::Bidirectional
        )
    }

    /// A KIP-848 group left with classic members only may become a classic group again.
    pub fn downgrades(self) -> bool {
        matches!(
            self,
            MigrationPolicy::Downgrade | MigrationPolicy::Bidirectional
        )
    }

    /// Classic members may join a KIP-848 group that has members.
    pub fn mixes(self) -> bool {
        self != MigrationPolicy::Disabled
    }
}

/// A server-side partition assignor of KIP-848 groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    Uniform,
    Range,
}

impl Assignor {
    pub const ALL: [Assignor; 2] = [Assignor::Uniform, Assignor::Range];

    pub fn name(self) -> &'static str {
        match self {
            Assignor::Uniform => "uniform",
            Assignor::Range => "range",
        }
    }

    pub fn parse(name: &str) -> Option<Assignor> {
        Assignor::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// The enabled assignors in order (`group_consumer_assignors`); never empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assignors {
    list: [Option<Assignor>; 2],
}

impl Assignors {
    /// Parses a comma-separated list of assignor names.
    pub fn parse(names: &str) -> Result<Assignors, String> {
        let mut list = [None; 2];
        let mut n = 0;
        for name in names.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let a = Assignor::parse(name)
                .ok_or_else(|| format!("unknown assignor {name:?} (known: uniform, range)"))?;
            if list.contains(&Some(a)) {
                continue;
            }
            list[n] = Some(a);
            n += 1;
        }
        if n == 0 {
            return Err("at least one assignor is required".into());
        }
        Ok(Assignors { list })
    }

    pub fn preferred(&self) -> Assignor {
        self.list[0].unwrap_or(Assignor::Uniform)
    }

    pub fn contains(&self, a: Assignor) -> bool {
        self.list.contains(&Some(a))
    }
}

impl Default for Assignors {
    fn default() -> Assignors {
        Assignors {
            list: [Some(Assignor::Uniform), Some(Assignor::Range)],
        }
    }
}

/// Client telemetry (KIP-714).
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// Metric name prefixes asked for; `*` alone asks for every metric.
    pub metrics: Vec<String>,
    pub push_interval_ms: i32,
    pub max_bytes: i32,
    pub max_series: usize,
}

/// Transactions.
#[derive(Debug, Clone, Copy)]
pub struct TxnConfig {
    /// Longest transaction timeout a producer may ask for (transaction.max.timeout.ms).
    pub max_timeout_ms: i32,
    /// How long an idle transactional id is remembered (transactional.id.expiration.ms).
    pub id_expiration_ms: i64,
    /// How often timed-out transactions are aborted.
    pub abort_interval: Duration,
}

impl Config {
    /// The tier section, `None` when tiering is off (`tier_url = "none"`).
    pub fn tier(&self) -> Result<Option<TierConfig>, String> {
        let Some(url) = self.effective_tier_url()? else {
            return Ok(None);
        };
        Ok(Some(TierConfig {
            url,
            cache_bytes: self.tier_cache_bytes,
            upload_concurrency: self.tier_upload_concurrency.max(1),
            store: StoreConfig {
                request_timeout: Duration::from_millis(self.tier_request_timeout_ms),
                max_attempts: self.tier_request_attempts,
                s3_endpoint: self.tier_s3_endpoint.clone(),
                s3_region: self.tier_s3_region.clone(),
                s3_access_key_id: self.tier_s3_access_key_id.clone(),
                s3_secret_access_key: self.tier_s3_secret_access_key.clone(),
                s3_allow_http: self.tier_s3_allow_http,
                s3_virtual_hosted_style: self.tier_s3_virtual_hosted_style,
            },
        }))
    }

    pub fn groups(&self) -> GroupConfig {
        GroupConfig {
            min_session_timeout_ms: self.group_min_session_timeout_ms,
            max_session_timeout_ms: self.group_max_session_timeout_ms,
            initial_rebalance_delay_ms: self.group_initial_rebalance_delay_ms,
            max_size: self.group_max_size,
            max_groups: self.group_max_count,
            offsets_retention_ms: self.offsets_retention_minutes.saturating_mul(60_000),
            offset_metadata_max_bytes: self.offset_metadata_max_bytes,
            consumer_session_timeout_ms: self.group_consumer_session_timeout_ms,
            consumer_heartbeat_interval_ms: self.group_consumer_heartbeat_interval_ms,
            consumer_max_size: self.group_consumer_max_size,
            consumer_assignors: Assignors::parse(&self.group_consumer_assignors)
                .unwrap_or_default(),
            consumer_migration_policy: MigrationPolicy::parse(
                &self.group_consumer_migration_policy,
            )
            .unwrap_or_default(),
        }
    }

    pub fn shares(&self) -> ShareConfig {
        ShareConfig {
            lock_ms: self.group_share_record_lock_duration_ms,
            delivery_limit: self.group_share_delivery_count_limit,
            max_locks: self.group_share_partition_max_record_locks,
            session_timeout_ms: self.group_share_session_timeout_ms as i64,
            heartbeat_interval_ms: self.group_share_heartbeat_interval_ms,
            max_size: self.group_share_max_size,
            max_sessions: self.group_share_max_share_sessions,
            max_groups: self.group_max_count,
            auto_offset_reset: self.share_auto_offset_reset.clone(),
        }
    }

    /// Client telemetry (KIP-714).
    pub fn telemetry(&self) -> TelemetryConfig {
        TelemetryConfig {
            metrics: self
                .telemetry_metrics
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(str::to_string)
                .collect(),
            push_interval_ms: self.telemetry_push_interval_ms,
            max_bytes: self.telemetry_max_bytes,
            max_series: self.telemetry_max_series,
        }
    }

    pub fn transactions(&self) -> TxnConfig {
        TxnConfig {
            max_timeout_ms: self.transaction_max_timeout_ms,
            id_expiration_ms: self.transactional_id_expiration_ms,
            abort_interval: Duration::from_millis(self.transaction_abort_interval_ms),
        }
    }
}

/// `max_connections_per_ip_overrides`: `ip:count,ip:count` (an IPv6 address keeps its colons: the count follows the last one).
pub fn ip_overrides(s: &str) -> Result<std::collections::HashMap<std::net::IpAddr, usize>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (ip, n) = e
                .rsplit_once(':')
                .ok_or_else(|| format!("`{e}` is not ip:count"))?;
            let ip: std::net::IpAddr = ip
                .trim_matches(|c| c == '[' || c == ']')
                .parse()
                .map_err(|_| format!("`{ip}` is not an IP address"))?;
            let n: usize = n.parse().map_err(|_| format!("`{n}` is not a count"))?;
            Ok((ip, n))
        })
        .collect()
}
