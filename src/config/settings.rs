//! Every setting, declared once in [`settings!`]: the macro generates the clap flags (with
//! their env names), the TOML file schema, the resolved [`Config`] and the merge of the three.

use clap::Parser;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

/// A configuration error: names the key and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("invalid value for `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// `message.timestamp.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

impl FromStr for TimestampType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "CreateTime" => Ok(TimestampType::CreateTime),
            "LogAppendTime" => Ok(TimestampType::LogAppendTime),
            other => Err(format!("`{other}` is not CreateTime or LogAppendTime")),
        }
    }
}

impl std::fmt::Display for TimestampType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        })
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

macro_rules! settings {
    ($( $(#[doc = $doc:literal])* $field:ident : $ty:ty = $default:expr, env $env:literal; )*) => {
        /// Command-line flags. Each flag can also be set by its environment variable or by the
        /// key of the same name (with underscores) in the config file.
        #[derive(Debug, Clone, Default, Parser)]
        #[command(name = "tiercel", version, about = "A Kafka wire-protocol compatible broker with tiered storage")]
        pub struct Cli {
            /// TOML config file; its keys are the flag names with underscores
            #[arg(long, env = "TIERCEL_CONFIG", value_name = "FILE")]
            pub config: Option<PathBuf>,
            $( $(#[doc = $doc])* #[arg(long, env = $env)] pub $field: Option<$ty>, )*
        }

        /// The config file: every key optional, unknown keys refused.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct FileConfig {
            $( pub $field: Option<$ty>, )*
        }

        /// The resolved configuration.
        #[derive(Debug, Clone)]
        pub struct Config {
            $( $(#[doc = $doc])* pub $field: $ty, )*
        }

        impl Default for Config {
            fn default() -> Self {
                Config { $( $field: $default, )* }
            }
        }

        impl Config {
            /// Every key, in declaration order, with its environment variable.
            pub const KEYS: &'static [(&'static str, &'static str)] = &[ $( (stringify!($field), $env), )* ];

            pub(crate) fn merge(cli: Cli, file: FileConfig) -> Config {
                let d = Config::default();
                Config { $( $field: cli.$field.or(file.$field).unwrap_or(d.$field), )* }
            }
        }
    };
}

pub(crate) fn addr(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|_| unreachable!("built-in default address {s} parses"))
}

settings! {
    /// Address the Kafka listener binds to
    listen: SocketAddr = addr("127.0.0.1:9092"), env "TIERCEL_LISTEN";
    /// HOST:PORT clients are told to connect to (default: the listen address)
    advertised_listener: String = String::new(), env "TIERCEL_ADVERTISED_LISTENER";
    /// Listeners in Kafka's form, NAME://HOST:PORT separated by commas (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL or a name in listener_security_protocol_map); empty: `listen` as one PLAINTEXT listener
    listeners: String = String::new(), env "TIERCEL_LISTENERS";
    /// NAME://HOST:PORT clients of each listener are told to connect to (default: the address bound)
    advertised_listeners: String = String::new(), env "TIERCEL_ADVERTISED_LISTENERS";
    /// NAME:PROTOCOL for listeners named other than their security protocol (e.g. INTERNAL:SASL_PLAINTEXT)
    listener_security_protocol_map: String = String::new(), env "TIERCEL_LISTENER_SECURITY_PROTOCOL_MAP";
    /// The listener other nodes of a cluster connect to (default: the first)
    inter_broker_listener_name: String = String::new(), env "TIERCEL_INTER_BROKER_LISTENER_NAME";
    /// PEM certificate chain of SSL and SASL_SSL listeners (reloaded when the file changes)
    ssl_certificate: String = String::new(), env "TIERCEL_SSL_CERTIFICATE";
    /// PEM private key of ssl_certificate (PKCS#8, PKCS#1 or SEC1)
    ssl_key: String = String::new(), env "TIERCEL_SSL_KEY";
    /// PEM CA certificates that client certificates are checked against (mTLS)
    ssl_ca: String = String::new(), env "TIERCEL_SSL_CA";
    /// Client certificates on SSL listeners: none, requested (checked when sent) or required; the principal is User:<subject DN> (SASL_SSL clients authenticate with SASL instead)
    ssl_client_auth: String = "none".to_string(), env "TIERCEL_SSL_CLIENT_AUTH";
    /// How a client certificate's subject DN becomes the principal name, as Kafka's ssl.principal.mapping.rules: DEFAULT and RULE:pattern/replacement/[LU], separated by commas
    ssl_principal_mapping_rules: String = "DEFAULT".to_string(), env "TIERCEL_SSL_PRINCIPAL_MAPPING_RULES";
    /// SASL mechanisms offered on SASL listeners: SCRAM-SHA-256, SCRAM-SHA-512, PLAIN, OAUTHBEARER
    sasl_enabled_mechanisms: String = "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN".to_string(), env "TIERCEL_SASL_ENABLED_MECHANISMS";
    /// OAUTHBEARER: the JWKS file (JSON Web Key Set) whose public keys bearer tokens must be signed with; read again within 5 s when it changes
    sasl_oauthbearer_jwks_file: String = String::new(), env "TIERCEL_SASL_OAUTHBEARER_JWKS_FILE";
    /// OAUTHBEARER: audiences a token's aud claim must name one of, comma-separated (empty: not checked)
    sasl_oauthbearer_expected_audience: String = String::new(), env "TIERCEL_SASL_OAUTHBEARER_EXPECTED_AUDIENCE";
    /// OAUTHBEARER: the issuer a token's iss claim must be (empty: not checked)
    sasl_oauthbearer_expected_issuer: String = String::new(), env "TIERCEL_SASL_OAUTHBEARER_EXPECTED_ISSUER";
    /// OAUTHBEARER: the claim holding the principal name
    sasl_oauthbearer_sub_claim_name: String = "sub".to_string(), env "TIERCEL_SASL_OAUTHBEARER_SUB_CLAIM_NAME";
    /// OAUTHBEARER: clock difference allowed when checking exp and nbf, seconds
    sasl_oauthbearer_clock_skew_seconds: u64 = 30, env "TIERCEL_SASL_OAUTHBEARER_CLOCK_SKEW_SECONDS";
    /// Authorization: none (everyone may do everything) or acl (ACLs, managed with CreateAcls/DeleteAcls, decide)
    authorizer: String = "none".to_string(), env "TIERCEL_AUTHORIZER";
    /// Principals the ACL authorizer allows everything, separated by semicolons (User:admin;User:ops)
    super_users: String = String::new(), env "TIERCEL_SUPER_USERS";
    /// With the ACL authorizer, a resource no ACL names is open to everyone (Kafka's allow.everyone.if.no.acl.found)
    allow_everyone_if_no_acl_found: bool = false, env "TIERCEL_ALLOW_EVERYONE_IF_NO_ACL_FOUND";
    /// A SASL session lasts this long; the client re-authenticates on the same connection before it ends (KIP-368), or the connection is closed; 0: forever
    connections_max_reauth_ms: u64 = 0, env "TIERCEL_CONNECTIONS_MAX_REAUTH_MS";
    /// Time a new connection has to finish its TLS handshake and SASL authentication, ms
    authentication_timeout_ms: u64 = 10_000, env "TIERCEL_AUTHENTICATION_TIMEOUT_MS";
    /// Directory holding the partition logs and the catalog
    data_dir: PathBuf = PathBuf::from("./data"), env "TIERCEL_DATA_DIR";
    /// This broker's node id
    node_id: i32 = 0, env "TIERCEL_NODE_ID";
    /// Address of the Prometheus /metrics endpoint
    metrics_listen: SocketAddr = addr("127.0.0.1:9464"), env "TIERCEL_METRICS_LISTEN";
    /// Object store for closed segments: s3://bucket/prefix, gs://…, az://…, file:///dir, memory://, none; empty: a directory `<data_dir>.tier` beside the data dir
    tier_url: String = String::new(), env "TIERCEL_TIER_URL";
    /// Bytes of remote segment data and indexes kept in memory for remote reads
    tier_cache_bytes: u64 = 134_217_728, env "TIERCEL_TIER_CACHE_BYTES";
    /// Segments uploaded at the same time (across partitions)
    tier_upload_concurrency: usize = 4, env "TIERCEL_TIER_UPLOAD_CONCURRENCY";
    /// Time limit of one object-store request, ms
    tier_request_timeout_ms: u64 = 30_000, env "TIERCEL_TIER_REQUEST_TIMEOUT_MS";
    /// Attempts per object-store request before it fails (transient errors and timeouts are retried with backoff)
    tier_request_attempts: u32 = 5, env "TIERCEL_TIER_REQUEST_ATTEMPTS";
    /// S3 endpoint URL, overriding AWS_ENDPOINT_URL (MinIO, SeaweedFS, Ceph, R2)
    tier_s3_endpoint: String = String::new(), env "TIERCEL_TIER_S3_ENDPOINT";
    /// S3 region, overriding AWS_REGION
    tier_s3_region: String = String::new(), env "TIERCEL_TIER_S3_REGION";
    /// S3 access key id, overriding AWS_ACCESS_KEY_ID
    tier_s3_access_key_id: String = String::new(), env "TIERCEL_TIER_S3_ACCESS_KEY_ID";
    /// S3 secret access key, overriding AWS_SECRET_ACCESS_KEY
    tier_s3_secret_access_key: String = String::new(), env "TIERCEL_TIER_S3_SECRET_ACCESS_KEY";
    /// Allow plain-http S3 endpoints (as AWS_ALLOW_HTTP=true)
    tier_s3_allow_http: bool = false, env "TIERCEL_TIER_S3_ALLOW_HTTP";
    /// Virtual-hosted-style S3 requests (bucket in the host name) instead of path style
    tier_s3_virtual_hosted_style: bool = false, env "TIERCEL_TIER_S3_VIRTUAL_HOSTED_STYLE";
    /// Start even when the object store refuses the start-up probe (missing bucket, bad credentials): serve local data, keep retrying, /ready says why
    tier_start_degraded: bool = false, env "TIERCEL_TIER_START_DEGRADED";
    /// Create topics on first use by Metadata/Produce (auto.create.topics.enable)
    auto_create_topics_enable: bool = true, env "TIERCEL_AUTO_CREATE_TOPICS_ENABLE";
    /// Partitions the broker creates per second, across all clients, with bursts of ten seconds' worth (the controller mutation quota, KIP-599): past it CreateTopics and CreatePartitions get THROTTLING_QUOTA_EXCEEDED and Metadata auto-creation answers UNKNOWN_TOPIC_OR_PARTITION until it refills; 0 is unlimited
    topic_mutation_rate: u32 = 1000, env "TIERCEL_TOPIC_MUTATION_RATE";
    /// Partitions of an auto-created topic (num.partitions)
    num_partitions: i32 = 1, env "TIERCEL_NUM_PARTITIONS";
    /// Largest request frame accepted; larger frames close the connection (socket.request.max.bytes)
    socket_request_max_bytes: i32 = 104_857_600, env "TIERCEL_SOCKET_REQUEST_MAX_BYTES";
    /// Largest Fetch response the broker builds, whatever the client asks (fetch.max.bytes); the first batch is sent whole even if larger
    fetch_max_bytes: i32 = 57_671_680, env "TIERCEL_FETCH_MAX_BYTES";
    /// Record data all Fetch responses being built or sent may hold at once; a fetch takes what is left (at least 1 MiB, waiting for it), so slow readers share one bound
    fetch_memory_max_bytes: u64 = 134_217_728, env "TIERCEL_FETCH_MEMORY_MAX_BYTES";
    /// Incremental fetch sessions (KIP-227) the broker keeps; 0 turns them off (max.incremental.fetch.session.cache.slots)
    max_incremental_fetch_session_cache_slots: usize = 1000, env "TIERCEL_MAX_INCREMENTAL_FETCH_SESSION_CACHE_SLOTS";
    /// Maximum open client connections; further connections wait to be accepted
    max_connections: usize = 10_000, env "TIERCEL_MAX_CONNECTIONS";
    /// Most connections from one client address; 0 is unlimited (max.connections.per.ip)
    max_connections_per_ip: usize = 0, env "TIERCEL_MAX_CONNECTIONS_PER_IP";
    /// Per-address exceptions, `ip:count` comma-separated (max.connections.per.ip.overrides)
    max_connections_per_ip_overrides: String = String::new(), env "TIERCEL_MAX_CONNECTIONS_PER_IP_OVERRIDES";
    /// A connection with no request in flight that sends nothing for this long is closed, ms; 0 never (connections.max.idle.ms)
    connections_max_idle_ms: u64 = 600_000, env "TIERCEL_CONNECTIONS_MAX_IDLE_MS";
    /// At shutdown, the longest wait for connections to finish their requests before the broker closes its logs and exits, ms (parked long polls and joins are answered at once)
    shutdown_timeout_ms: u64 = 30_000, env "TIERCEL_SHUTDOWN_TIMEOUT_MS";
    /// Default segment size in bytes (log.segment.bytes / topic segment.bytes)
    log_segment_bytes: i64 = 1_073_741_824, env "TIERCEL_LOG_SEGMENT_BYTES";
    /// Default segment age before rolling, ms (log.roll.ms / topic segment.ms)
    log_segment_ms: i64 = 604_800_000, env "TIERCEL_LOG_SEGMENT_MS";
    /// Default time retention, ms; -1 keeps forever (log.retention.ms / topic retention.ms)
    log_retention_ms: i64 = 604_800_000, env "TIERCEL_LOG_RETENTION_MS";
    /// Default size retention per partition, bytes; -1 is unlimited (log.retention.bytes)
    log_retention_bytes: i64 = -1, env "TIERCEL_LOG_RETENTION_BYTES";
    /// Default local retention of uploaded segments, ms; -2 follows log_retention_ms (log.local.retention.ms / topic local.retention.ms)
    log_local_retention_ms: i64 = -2, env "TIERCEL_LOG_LOCAL_RETENTION_MS";
    /// Default local retention of uploaded segments per partition, bytes; -2 follows log_retention_bytes (log.local.retention.bytes)
    log_local_retention_bytes: i64 = -2, env "TIERCEL_LOG_LOCAL_RETENTION_BYTES";
    /// Default codec batches are stored with: producer (as sent), uncompressed, gzip, snappy, lz4, zstd (compression.type)
    compression_type: String = "producer".to_string(), env "TIERCEL_COMPRESSION_TYPE";
    /// Default cleanup policy: delete, compact or compact,delete (log.cleanup.policy / topic cleanup.policy)
    log_cleanup_policy: String = "delete".to_string(), env "TIERCEL_LOG_CLEANUP_POLICY";
    /// Default time a tombstone stays after compaction reached it, ms (log.cleaner.delete.retention.ms)
    log_cleaner_delete_retention_ms: i64 = 86_400_000, env "TIERCEL_LOG_CLEANER_DELETE_RETENTION_MS";
    /// Default share of uncompacted bytes that triggers compaction (log.cleaner.min.cleanable.ratio)
    log_cleaner_min_cleanable_ratio: f64 = 0.5, env "TIERCEL_LOG_CLEANER_MIN_CLEANABLE_RATIO";
    /// Default age below which records are not compacted, ms (log.cleaner.min.compaction.lag.ms)
    log_cleaner_min_compaction_lag_ms: i64 = 0, env "TIERCEL_LOG_CLEANER_MIN_COMPACTION_LAG_MS";
    /// Pause between log cleaner passes over the compacted partitions, ms (log.cleaner.backoff.ms)
    log_cleaner_backoff_ms: u64 = 15_000, env "TIERCEL_LOG_CLEANER_BACKOFF_MS";
    /// How often retention runs, ms (log.retention.check.interval.ms)
    log_retention_check_interval_ms: u64 = 300_000, env "TIERCEL_LOG_RETENTION_CHECK_INTERVAL_MS";
    /// Default largest record batch, bytes (message.max.bytes / topic max.message.bytes)
    message_max_bytes: i32 = 1_048_588, env "TIERCEL_MESSAGE_MAX_BYTES";
    /// A compressed batch may decompress to at most this many times its topic's max.message.bytes; beyond it the batch is refused with MESSAGE_TOO_LARGE
    batch_max_uncompressed_factor: u32 = 32, env "TIERCEL_BATCH_MAX_UNCOMPRESSED_FACTOR";
    /// Default timestamp type: CreateTime or LogAppendTime (log.message.timestamp.type)
    log_message_timestamp_type: TimestampType = TimestampType::CreateTime, env "TIERCEL_LOG_MESSAGE_TIMESTAMP_TYPE";
    /// Oldest CreateTime timestamp accepted, as ms before broker time (log.message.timestamp.before.max.ms)
    log_message_timestamp_before_max_ms: i64 = i64::MAX, env "TIERCEL_LOG_MESSAGE_TIMESTAMP_BEFORE_MAX_MS";
    /// Newest CreateTime timestamp accepted, as ms after broker time (log.message.timestamp.after.max.ms)
    log_message_timestamp_after_max_ms: i64 = 3_600_000, env "TIERCEL_LOG_MESSAGE_TIMESTAMP_AFTER_MAX_MS";
    /// Bytes between offset/time index entries (log.index.interval.bytes)
    log_index_interval_bytes: i64 = 4096, env "TIERCEL_LOG_INDEX_INTERVAL_BYTES";
    /// How long an idle idempotent producer's sequence state is kept, ms (producer.id.expiration.ms)
    producer_id_expiration_ms: i64 = 86_400_000, env "TIERCEL_PRODUCER_ID_EXPIRATION_MS";
    /// Longest transaction timeout a transactional producer may ask for, ms (transaction.max.timeout.ms)
    transaction_max_timeout_ms: i32 = 900_000, env "TIERCEL_TRANSACTION_MAX_TIMEOUT_MS";
    /// How long an idle transactional id is remembered, ms (transactional.id.expiration.ms)
    transactional_id_expiration_ms: i64 = 604_800_000, env "TIERCEL_TRANSACTIONAL_ID_EXPIRATION_MS";
    /// How often timed-out transactions are aborted, ms (transaction.abort.timed.out.transaction.cleanup.interval.ms)
    transaction_abort_interval_ms: u64 = 10_000, env "TIERCEL_TRANSACTION_ABORT_INTERVAL_MS";
    /// Client telemetry (KIP-714): metric name prefixes the broker asks clients to push, comma-separated; `*` asks for every metric, empty (the default) for none, and clients then push nothing
    telemetry_metrics: String = String::new(), env "TIERCEL_TELEMETRY_METRICS";
    /// Client telemetry: how often clients push, ms (a subscription's interval.ms)
    telemetry_push_interval_ms: i32 = 300_000, env "TIERCEL_TELEMETRY_PUSH_INTERVAL_MS";
    /// Client telemetry: largest push accepted, bytes as sent (telemetry.max.bytes)
    telemetry_max_bytes: i32 = 1_048_576, env "TIERCEL_TELEMETRY_MAX_BYTES";
    /// Client telemetry: most client metric values kept and shown on /metrics over all clients; what a push brings beyond is dropped and counted
    telemetry_max_series: usize = 10_000, env "TIERCEL_TELEMETRY_MAX_SERIES";
    /// Transaction protocol finalized for clients (the transaction.version feature): 2 lets clients that know it use transactions v2 (KIP-890: partitions join a transaction with their first produce, each transaction ends with an epoch bump); 0 or 1 keeps every client on the first protocol
    transaction_version: i16 = 2, env "TIERCEL_TRANSACTION_VERSION";
    /// Shortest session timeout a group member may ask for, ms (group.min.session.timeout.ms)
    group_min_session_timeout_ms: i32 = 6000, env "TIERCEL_GROUP_MIN_SESSION_TIMEOUT_MS";
    /// Longest session timeout a group member may ask for, ms (group.max.session.timeout.ms)
    group_max_session_timeout_ms: i32 = 1_800_000, env "TIERCEL_GROUP_MAX_SESSION_TIMEOUT_MS";
    /// How long a new group waits for more members before its first rebalance, ms (group.initial.rebalance.delay.ms)
    group_initial_rebalance_delay_ms: i64 = 3000, env "TIERCEL_GROUP_INITIAL_REBALANCE_DELAY_MS";
    /// Most members (joined or pending) in one group (group.max.size)
    group_max_size: usize = 1000, env "TIERCEL_GROUP_MAX_SIZE";
    /// KIP-848 consumer groups: a member that has not heartbeated for this long is removed, ms (group.consumer.session.timeout.ms)
    group_consumer_session_timeout_ms: i32 = 45_000, env "TIERCEL_GROUP_CONSUMER_SESSION_TIMEOUT_MS";
    /// KIP-848 consumer groups: how often members heartbeat, ms (group.consumer.heartbeat.interval.ms)
    group_consumer_heartbeat_interval_ms: i32 = 5000, env "TIERCEL_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS";
    /// KIP-848 consumer groups: most members in one group (group.consumer.max.size)
    group_consumer_max_size: usize = 1000, env "TIERCEL_GROUP_CONSUMER_MAX_SIZE";
    /// KIP-848 consumer groups: server-side assignors members may choose, comma-separated; the first is the default (group.consumer.assignors)
    group_consumer_assignors: String = "uniform,range".to_string(), env "TIERCEL_GROUP_CONSUMER_ASSIGNORS";
    /// Online conversion of a live group between the two group protocols (group.consumer.migration.policy): "bidirectional" converts a classic group to a KIP-848 group when a member of the new protocol joins it, and back when its last such member leaves; "upgrade" and "downgrade" allow one direction, "disabled" none
    group_consumer_migration_policy: String = "bidirectional".to_string(), env "TIERCEL_GROUP_CONSUMER_MIGRATION_POLICY";
    /// Share groups: how long a member holds the records it acquired before they go to another, ms (group.share.record.lock.duration.ms)
    group_share_record_lock_duration_ms: i64 = 30_000, env "TIERCEL_GROUP_SHARE_RECORD_LOCK_DURATION_MS";
    /// Share groups: deliveries of a record before it is archived instead of delivered again (group.share.delivery.count.limit)
    group_share_delivery_count_limit: i16 = 5, env "TIERCEL_GROUP_SHARE_DELIVERY_COUNT_LIMIT";
    /// Share groups: most records in flight per share-partition, from its start offset on (group.share.partition.max.record.locks)
    group_share_partition_max_record_locks: i64 = 2000, env "TIERCEL_GROUP_SHARE_PARTITION_MAX_RECORD_LOCKS";
    /// Share groups: a member that has not heartbeated for this long is removed and its records go back, ms (group.share.session.timeout.ms)
    group_share_session_timeout_ms: i32 = 45_000, env "TIERCEL_GROUP_SHARE_SESSION_TIMEOUT_MS";
    /// Share groups: how often members heartbeat, ms (group.share.heartbeat.interval.ms)
    group_share_heartbeat_interval_ms: i32 = 5000, env "TIERCEL_GROUP_SHARE_HEARTBEAT_INTERVAL_MS";
    /// Share groups: most members in one group (group.share.max.size)
    group_share_max_size: usize = 200, env "TIERCEL_GROUP_SHARE_MAX_SIZE";
    /// Share groups: most open share sessions on this broker (group.share.max.share.sessions)
    group_share_max_share_sessions: usize = 2000, env "TIERCEL_GROUP_SHARE_MAX_SHARE_SESSIONS";
    /// Share groups: where a share-partition with no state starts, for groups that do not set share.auto.offset.reset: "latest", "earliest" or "by_duration:<ISO-8601 duration>"
    share_auto_offset_reset: String = "latest".to_string(), env "TIERCEL_SHARE_AUTO_OFFSET_RESET";
    /// Most consumer groups the broker holds (with members, pending members or offsets); JoinGroup or OffsetCommit naming a new group past it gets COORDINATOR_NOT_AVAILABLE
    group_max_count: usize = 50_000, env "TIERCEL_GROUP_MAX_COUNT";
    /// How long committed offsets of an empty group are kept, minutes (offsets.retention.minutes)
    offsets_retention_minutes: i64 = 10_080, env "TIERCEL_OFFSETS_RETENTION_MINUTES";
    /// Largest metadata string stored with a committed offset (offset.metadata.max.bytes)
    offset_metadata_max_bytes: usize = 4096, env "TIERCEL_OFFSET_METADATA_MAX_BYTES";
    /// Longest time written data waits for the background fdatasync that makes it visible to consumers, ms
    flush_interval_ms: u64 = 5, env "TIERCEL_FLUSH_INTERVAL_MS";
    /// etcd endpoints (http://host:port, comma-separated) of the cluster this node joins; empty: run alone
    etcd_endpoints: String = String::new(), env "TIERCEL_ETCD_ENDPOINTS";
    /// Prefix of every key this cluster keeps in etcd (one etcd can hold several clusters)
    etcd_prefix: String = "/tiercel".to_string(), env "TIERCEL_ETCD_PREFIX";
    /// Time-to-live of this node's etcd lease, ms: a node silent this long loses its partitions
    cluster_lease_ttl_ms: u64 = 6000, env "TIERCEL_CLUSTER_LEASE_TTL_MS";
    /// Cluster mode: a partition's active segment is rolled and tiered once this old, ms (bounds the tail chunks a take-over reads and how long WAL data waits for the manifest)
    cluster_roll_ms: u64 = 600_000, env "TIERCEL_CLUSTER_ROLL_MS";
    /// Cluster mode: a partition's active segment is rolled and tiered once this big, bytes (bounds a take-over's replay as cluster_roll_ms does)
    cluster_roll_bytes: u64 = 67_108_864, env "TIERCEL_CLUSTER_ROLL_BYTES";
    /// This node's rack or zone (broker.rack): consumers that set the same client.rack are served by this node (KIP-392) whichever node leads the partition; empty: none
    rack: String = String::new(), env "TIERCEL_RACK";
    /// Cluster mode: start draining: the node takes no partitions and hands those it leads to the others (it serves them until each has moved); DescribeCluster v2 shows it fenced
    decommission: bool = false, env "TIERCEL_DECOMMISSION";
    /// Cluster mode: partitions of the internal topic that shards the consumer-group coordinators (offsets.topic.num.partitions); read when the cluster first creates the topic, its partition count wins after that
    offsets_topic_num_partitions: i32 = 16, env "TIERCEL_OFFSETS_TOPIC_NUM_PARTITIONS";
    /// Cluster mode: partitions of the internal topic that shards the transaction coordinators (transaction.state.log.num.partitions); read when the cluster first creates the topic, its partition count wins after that
    transaction_state_log_num_partitions: i32 = 16, env "TIERCEL_TRANSACTION_STATE_LOG_NUM_PARTITIONS";
    /// Log filter when RUST_LOG is unset (e.g. info, tiercel=debug)
    log_level: String = "info".to_string(), env "TIERCEL_LOG_LEVEL";
    /// Log format: text or json
    log_format: LogFormat = LogFormat::Text, env "TIERCEL_LOG_FORMAT";
}

impl Config {
    /// `rack`, `None` when empty.
    pub fn rack(&self) -> Option<&str> {
        Some(self.rack.trim()).filter(|r| !r.is_empty())
    }

    /// The tier URL in effect: `None` when tiering is off, the embedded default directory when
    /// the key is empty.
    pub fn effective_tier_url(&self) -> Result<Option<String>, String> {
        match self.tier_url.as_str() {
            "none" => Ok(None),
            "" => {
                let mut dir = std::path::absolute(&self.data_dir)
                    .map_err(|e| format!("cannot resolve data_dir: {e}"))?
                    .into_os_string();
                dir.push(".tier");
                let url = url::Url::from_directory_path(PathBuf::from(dir))
                    .map_err(|_| "data_dir is not a usable path".to_string())?;
                Ok(Some(url.to_string()))
            }
            other => {
                let u =
                    url::Url::parse(other).map_err(|e| format!("`{other}` is not a URL: {e}"))?;
                match u.scheme() {
                    "s3" | "s3a" | "gs" | "az" | "azure" | "abfs" | "abfss" | "file" | "memory" => {
                        Ok(Some(other.to_string()))
                    }
                    s => Err(format!(
                        "unsupported scheme `{s}`: use s3://, gs://, az://, file://, memory:// or none"
                    )),
                }
            }
        }
    }
}

pub(crate) fn parse_host_port(s: &str) -> Result<(String, i32), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("`{s}` is not HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{port}` is not a port number"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("`{s}` has no host"));
    }
    Ok((host.to_string(), port as i32))
}
