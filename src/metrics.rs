//! Every metric name in one place, described once, and the Prometheus recorder whose text the
//! broker serves on `metrics_listen` (`GET /metrics`, see `server::http`). Durations are histograms with explicit
//! buckets, in seconds. Gauges that mirror state (partition offsets, group sizes, process
//! memory) are refreshed by [`refresh`], which the broker calls every second.

use std::time::Duration;

pub const REQUESTS: &str = "tiercel_requests_total";
pub const REQUEST_SECONDS: &str = "tiercel_request_duration_seconds";
pub const BAD_REQUESTS: &str = "tiercel_bad_requests_total";
pub const REQUEST_ERRORS: &str = "tiercel_request_errors_total";
pub const FETCH_RECORDS: &str = "tiercel_fetch_records_total";
pub const CONNECTIONS_ACCEPTED: &str = "tiercel_connections_accepted_total";
pub const CONNECTIONS_CLOSED: &str = "tiercel_connections_closed_total";
pub const CONNECTIONS_OPEN: &str = "tiercel_connections_open";
pub const SASL_AUTHENTICATIONS: &str = "tiercel_sasl_authentications_total";
pub const SASL_FAILURES: &str = "tiercel_sasl_authentication_failures_total";
pub const TLS_HANDSHAKE_FAILURES: &str = "tiercel_tls_handshake_failures_total";
pub const TLS_RELOADS: &str = "tiercel_tls_certificate_reloads_total";
pub const AUTHORIZATION_DENIALS: &str = "tiercel_authorization_denials_total";
pub const THROTTLE_MS: &str = "tiercel_throttle_time_milliseconds_total";
pub const THROTTLED_RESPONSES: &str = "tiercel_throttled_responses_total";
pub const PRODUCE_BYTES: &str = "tiercel_produce_bytes_total";
pub const PRODUCE_RECORDS: &str = "tiercel_produce_records_total";
pub const FETCH_BYTES: &str = "tiercel_fetch_bytes_total";
pub const FETCH_SENDFILE_BYTES: &str = "tiercel_fetch_sendfile_bytes_total";
pub const FLUSH_SECONDS: &str = "tiercel_log_flush_seconds";
pub const LOG_START: &str = "tiercel_partition_log_start_offset";
pub const LOG_END: &str = "tiercel_partition_log_end_offset";
pub const HIGH_WATERMARK: &str = "tiercel_partition_high_watermark";
pub const PARTITION_BYTES: &str = "tiercel_partition_size_bytes";
pub const GROUP_MEMBERS: &str = "tiercel_group_members";
pub const GROUP_STATE: &str = "tiercel_group_state";
pub const GROUP_LAG: &str = "tiercel_group_lag";
pub const SHARE_RECORDS: &str = "tiercel_share_records_total";
pub const SHARE_IN_FLIGHT: &str = "tiercel_share_records_in_flight";
pub const SHARE_ACQUIRED: &str = "tiercel_share_records_acquired";
pub const SHARE_LAG: &str = "tiercel_share_start_offset_lag";
pub const SHARE_SESSIONS: &str = "tiercel_share_sessions";
pub const REQUESTS_IN_FLIGHT: &str = "tiercel_requests_in_flight";
pub const FETCH_WAIT_SECONDS: &str = "tiercel_fetch_wait_seconds";
pub const FETCH_SESSIONS: &str = "tiercel_fetch_sessions";
pub const FETCH_SESSION_PARTITIONS: &str = "tiercel_fetch_session_partitions";
pub const FETCH_SESSION_EVICTIONS: &str = "tiercel_fetch_session_evictions_total";
pub const FETCH_SESSION_FETCHES: &str = "tiercel_fetch_session_requests_total";
pub const LAST_STABLE_OFFSET: &str = "tiercel_partition_last_stable_offset";
pub const TRANSACTIONS_ENDED: &str = "tiercel_transactions_total";
pub const TELEMETRY_PUSHES: &str = "tiercel_telemetry_pushes_total";
pub const TELEMETRY_DROPPED: &str = "tiercel_telemetry_series_dropped_total";
pub const TRANSACTIONS_OPEN: &str = "tiercel_transactions_open";
pub const COMPACTED_BYTES: &str = "tiercel_log_cleaner_reclaimed_bytes_total";
pub const RESIDENT_BYTES: &str = "tiercel_process_resident_memory_bytes";
pub const OPEN_FDS: &str = "tiercel_process_open_fds";
pub const TIER_REQUESTS: &str = "tiercel_tier_requests_total";
pub const TIER_REQUEST_SECONDS: &str = "tiercel_tier_request_duration_seconds";
pub const TIER_REQUEST_ERRORS: &str = "tiercel_tier_request_errors_total";
pub const TIER_UPLOAD_BYTES: &str = "tiercel_tier_upload_bytes_total";
pub const TIER_DOWNLOAD_BYTES: &str = "tiercel_tier_download_bytes_total";
pub const TIER_SEGMENTS_UPLOADED: &str = "tiercel_tier_segments_uploaded_total";
pub const TIER_SEGMENT_UPLOAD_SECONDS: &str = "tiercel_tier_segment_upload_duration_seconds";
pub const TIER_UPLOAD_FAILURES: &str = "tiercel_tier_upload_failures_total";
pub const TIER_UPLOAD_LAG_BYTES: &str = "tiercel_tier_upload_lag_bytes";
pub const TIER_UPLOAD_LAG_SEGMENTS: &str = "tiercel_tier_upload_lag_segments";
pub const TIER_REMOTE_BYTES: &str = "tiercel_tier_remote_size_bytes";
pub const TIER_CACHE_HITS: &str = "tiercel_tier_cache_hits_total";
pub const TIER_CACHE_MISSES: &str = "tiercel_tier_cache_misses_total";
pub const TIER_CACHE_BYTES: &str = "tiercel_tier_cache_size_bytes";
pub const TIER_AVAILABLE: &str = "tiercel_tier_available";
pub const CLUSTER_LEADERSHIPS: &str = "tiercel_cluster_partitions_led";
pub const CLUSTER_EPOCH_CHANGES: &str = "tiercel_cluster_leader_epoch_changes_total";
pub const CLUSTER_CONTROLLER: &str = "tiercel_cluster_controller";
pub const CLUSTER_LEASE: &str = "tiercel_cluster_lease_valid";
pub const CLUSTER_NODES: &str = "tiercel_cluster_live_nodes";
pub const FOLLOWER_FETCH_BYTES: &str = "tiercel_cluster_follower_fetch_bytes_total";
pub const FOLLOWER_COPIES: &str = "tiercel_cluster_follower_copies";
pub const PREFERRED_REPLICA: &str = "tiercel_cluster_preferred_replica_redirects_total";
pub const ETCD_REQUEST_SECONDS: &str = "tiercel_etcd_request_duration_seconds";
pub const ETCD_ERRORS: &str = "tiercel_etcd_errors_total";
pub const WAL_COMMIT_SECONDS: &str = "tiercel_cluster_wal_commit_duration_seconds";
pub const WAL_OBJECTS: &str = "tiercel_cluster_wal_objects_total";
pub const WAL_BYTES: &str = "tiercel_cluster_wal_bytes_total";

const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process's Prometheus recorder, once installed.
static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
    std::sync::OnceLock::new();

/// Installs the recorder (once per process: several brokers in one test process share it) and
/// describes every metric. The broker serves [`render`] on its HTTP listener.
pub fn install() -> Result<(), String> {
    use metrics_exporter_prometheus::{BuildError, PrometheusBuilder};
    if HANDLE.get().is_some() {
        return Ok(());
    }
    let builder = PrometheusBuilder::new()
        .set_buckets(SECONDS_BUCKETS)
        .map_err(|e| e.to_string())?;
    match builder.install_recorder() {
        Ok(handle) => {
            let _ = HANDLE.set(handle);
            describe();
            Ok(())
        }
        // another recorder (a test harness's): nothing to render
        Err(BuildError::FailedToSetGlobalRecorder(_)) => Ok(()),
        Err(e) => Err(format!("cannot install the metrics recorder: {e}")),
    }
}

/// Every metric in Prometheus' text format.
pub fn render() -> String {
    HANDLE.get().map(|h| h.render()).unwrap_or_default()
}

/// Drains histogram samples into their buckets; the broker calls it every second.
pub fn upkeep() {
    if let Some(h) = HANDLE.get() {
        h.run_upkeep();
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(REQUESTS, "Requests answered, by API and version");
    describe_counter!(
        TELEMETRY_PUSHES,
        "Client telemetry pushes (KIP-714) accepted; their values show as tiercel_client_*"
    );
    describe_counter!(
        TELEMETRY_DROPPED,
        "Client telemetry values dropped because telemetry_max_series were kept already"
    );
    describe_gauge!(
        CLUSTER_LEADERSHIPS,
        "Partitions this node leads and serves (cluster mode)"
    );
    describe_counter!(
        CLUSTER_EPOCH_CHANGES,
        "Leader epoch changes this node wrote to etcd (as controller or handing a partition over)"
    );
    describe_gauge!(CLUSTER_CONTROLLER, "1 while this node is the controller");
    describe_gauge!(
        CLUSTER_LEASE,
        "1 while this node's etcd lease is surely alive (it may lead partitions)"
    );
    describe_gauge!(CLUSTER_NODES, "Live nodes this node sees in etcd");
    describe_counter!(
        FOLLOWER_FETCH_BYTES,
        Unit::Bytes,
        "Record bytes this node served to consumers from follower copies of partitions other nodes lead (KIP-392)"
    );
    describe_gauge!(
        FOLLOWER_COPIES,
        "Follower copies of partitions other nodes lead that this node keeps for consumers in its rack"
    );
    describe_gauge!(
        FETCH_SESSIONS,
        "Incremental fetch sessions (KIP-227) in the session cache"
    );
    describe_gauge!(
        FETCH_SESSION_PARTITIONS,
        "Partitions held by the incremental fetch sessions"
    );
    describe_counter!(
        FETCH_SESSION_EVICTIONS,
        "Fetch sessions evicted to make room for a new one"
    );
    describe_counter!(
        FETCH_SESSION_FETCHES,
        "Fetch requests by session kind: full (opening a session), incremental, sessionless, error"
    );
    describe_counter!(
        PREFERRED_REPLICA,
        "Fetches this node (as leader) answered with a preferred read replica in the consumer's rack"
    );
    describe_histogram!(
        ETCD_REQUEST_SECONDS,
        Unit::Seconds,
        "Duration of the cluster's etcd reads"
    );
    describe_counter!(ETCD_ERRORS, "Failed etcd requests, by operation");
    describe_histogram!(
        WAL_COMMIT_SECONDS,
        Unit::Seconds,
        "Time to write one WAL object to the bucket and commit it in etcd (acks=all waits for it)"
    );
    describe_counter!(
        WAL_OBJECTS,
        "WAL objects written to the bucket (one PUT each)"
    );
    describe_counter!(
        WAL_BYTES,
        Unit::Bytes,
        "Bytes written to the bucket as WAL objects"
    );
    describe_histogram!(
        REQUEST_SECONDS,
        Unit::Seconds,
        "Time from a request's decoding to its response being written, by API"
    );
    describe_counter!(
        REQUEST_ERRORS,
        "Errors answered to clients (per partition or resource), by API and Kafka error"
    );
    describe_counter!(FETCH_RECORDS, "Records returned by Fetch, by topic");
    describe_counter!(
        BAD_REQUESTS,
        "Requests that could not be decoded (the connection was closed)"
    );
    describe_counter!(CONNECTIONS_ACCEPTED, "Client connections accepted");
    describe_counter!(CONNECTIONS_CLOSED, "Client connections closed");
    describe_counter!(
        SASL_AUTHENTICATIONS,
        "SASL authentications that succeeded, by mechanism"
    );
    describe_counter!(
        SASL_FAILURES,
        "SASL authentications refused (wrong password, unknown user, malformed exchange), by mechanism"
    );
    describe_counter!(
        TLS_HANDSHAKE_FAILURES,
        "TLS handshakes that failed or timed out (untrusted or expired client certificates, garbage on a TLS port)"
    );
    describe_counter!(
        AUTHORIZATION_DENIALS,
        "Operations the ACL authorizer refused, by operation and resource type"
    );
    describe_counter!(
        THROTTLE_MS,
        "Time responses were throttled for client quotas, by quota (produce, fetch, request) and principal"
    );
    describe_counter!(
        THROTTLED_RESPONSES,
        "Responses throttled for client quotas, by quota (produce, fetch, request) and principal"
    );
    describe_counter!(
        TLS_RELOADS,
        "Times the TLS certificate files were read again after they changed"
    );
    describe_gauge!(CONNECTIONS_OPEN, "Client connections open");
    describe_counter!(
        PRODUCE_BYTES,
        Unit::Bytes,
        "Record-batch bytes appended, by topic"
    );
    describe_counter!(PRODUCE_RECORDS, "Records appended, by topic");
    describe_counter!(
        FETCH_BYTES,
        Unit::Bytes,
        "Record-batch bytes returned by Fetch, by topic"
    );
    describe_counter!(
        FETCH_SENDFILE_BYTES,
        Unit::Bytes,
        "Record-batch bytes Fetch sent from segment files with sendfile (no copy through the broker)"
    );
    describe_histogram!(
        FLUSH_SECONDS,
        Unit::Seconds,
        "Duration of one group-commit fdatasync"
    );
    describe_gauge!(LOG_START, "First offset of a partition");
    describe_gauge!(LOG_END, "Next offset to be assigned in a partition");
    describe_gauge!(
        HIGH_WATERMARK,
        "Offset below which a partition's data is durable and readable"
    );
    describe_gauge!(
        PARTITION_BYTES,
        Unit::Bytes,
        "Bytes of a partition's segments"
    );
    describe_gauge!(GROUP_MEMBERS, "Members of a consumer group");
    describe_gauge!(
        GROUP_STATE,
        "1 for a consumer group's current state, 0 for the others"
    );
    describe_gauge!(
        GROUP_LAG,
        "High watermark minus the group's committed offset, by group and partition"
    );
    describe_counter!(
        SHARE_RECORDS,
        "Share groups: records acquired, redelivered, acknowledged, released, rejected, archived (delivery limit) and lock timeouts, by group, partition and event"
    );
    describe_gauge!(
        SHARE_IN_FLIGHT,
        "Share groups: records between the share-partition start offset and its end (acquired, available again, or done above an unfinished one)"
    );
    describe_gauge!(
        SHARE_ACQUIRED,
        "Share groups: records held by a member under an acquisition lock"
    );
    describe_gauge!(
        SHARE_LAG,
        "Share groups: high watermark minus the share-partition start offset"
    );
    describe_gauge!(SHARE_SESSIONS, "Open share sessions");
    describe_gauge!(
        REQUESTS_IN_FLIGHT,
        "Requests decoded whose response is not written yet (queued, waiting or being handled)"
    );
    describe_counter!(
        COMPACTED_BYTES,
        Unit::Bytes,
        "Bytes the log cleaner removed from compacted partitions"
    );
    describe_gauge!(
        LAST_STABLE_OFFSET,
        "First offset of the oldest open transaction in a partition, or its high watermark"
    );
    describe_counter!(
        TRANSACTIONS_ENDED,
        "Transactions completed, by result (commit or abort)"
    );
    describe_gauge!(
        TRANSACTIONS_OPEN,
        "Transactions open (Ongoing) on the coordinator"
    );
    describe_histogram!(
        FETCH_WAIT_SECONDS,
        Unit::Seconds,
        "Time a Fetch long-polled for data (fetches that had to wait)"
    );
    describe_gauge!(
        RESIDENT_BYTES,
        Unit::Bytes,
        "Resident memory of the broker process"
    );
    describe_gauge!(OPEN_FDS, "Open file descriptors of the broker process");
    describe_counter!(
        TIER_REQUESTS,
        "Object-store requests (each attempt), by operation"
    );
    describe_histogram!(
        TIER_REQUEST_SECONDS,
        Unit::Seconds,
        "Duration of one object-store request attempt, by operation"
    );
    describe_counter!(
        TIER_REQUEST_ERRORS,
        "Object-store request attempts that failed or timed out, by operation"
    );
    describe_counter!(
        TIER_UPLOAD_BYTES,
        Unit::Bytes,
        "Bytes written to the object store"
    );
    describe_counter!(
        TIER_DOWNLOAD_BYTES,
        Unit::Bytes,
        "Bytes read from the object store"
    );
    describe_counter!(
        TIER_SEGMENTS_UPLOADED,
        "Segments uploaded and listed in their manifest"
    );
    describe_histogram!(
        TIER_SEGMENT_UPLOAD_SECONDS,
        Unit::Seconds,
        "Time to upload one segment with its indexes and manifest"
    );
    describe_counter!(
        TIER_UPLOAD_FAILURES,
        "Segment uploads that failed and will be retried"
    );
    describe_gauge!(
        TIER_UPLOAD_LAG_BYTES,
        Unit::Bytes,
        "Bytes of closed local segments not yet in the object store, by partition"
    );
    describe_gauge!(
        TIER_UPLOAD_LAG_SEGMENTS,
        "Closed local segments not yet in the object store, by partition"
    );
    describe_gauge!(
        TIER_REMOTE_BYTES,
        Unit::Bytes,
        "Bytes of a partition's readable segments in the object store"
    );
    describe_counter!(TIER_CACHE_HITS, "Remote reads served from the cache");
    describe_counter!(
        TIER_CACHE_MISSES,
        "Remote reads that had to fetch from the object store"
    );
    describe_gauge!(
        TIER_CACHE_BYTES,
        Unit::Bytes,
        "Bytes held by the remote-read cache"
    );
    describe_gauge!(
        TIER_AVAILABLE,
        "1 while the object store answers the tier's requests, 0 since one failed after its retries"
    );
}

/// Latency of one group-commit `fdatasync`.
pub fn flush_latency(d: Duration) {
    metrics::histogram!(FLUSH_SECONDS).record(d.as_secs_f64());
}

pub fn request(api: &'static str, version: i16, d: Duration) {
    metrics::counter!(REQUESTS, "api" => api, "version" => version_label(version)).increment(1);
    metrics::histogram!(REQUEST_SECONDS, "api" => api).record(d.as_secs_f64());
}

/// A request version as a label, without allocating (versions are small; the decoder refuses
/// any the broker does not serve).
fn version_label(v: i16) -> &'static str {
    const LABELS: [&str; 21] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
        "17", "18", "19", "20",
    ];
    usize::try_from(v)
        .ok()
        .and_then(|i| LABELS.get(i))
        .copied()
        .unwrap_or("other")
}

pub fn request_error(api: &'static str, code: kafka_protocol::error::ResponseError) {
    metrics::counter!(REQUEST_ERRORS, "api" => api, "error" => format!("{code:?}")).increment(1);
}

pub fn fetched_records(topic: &str, records: u64) {
    metrics::counter!(FETCH_RECORDS, "topic" => topic.to_string()).increment(records);
}

pub fn bad_request() {
    metrics::counter!(BAD_REQUESTS).increment(1);
}

pub fn connection_opened() {
    metrics::counter!(CONNECTIONS_ACCEPTED).increment(1);
    metrics::gauge!(CONNECTIONS_OPEN).increment(1.0);
}

pub fn sasl_authenticated(mechanism: &'static str) {
    metrics::counter!(SASL_AUTHENTICATIONS, "mechanism" => mechanism).increment(1);
}

pub fn sasl_failed(mechanism: &'static str) {
    metrics::counter!(SASL_FAILURES, "mechanism" => mechanism).increment(1);
}

pub fn tls_handshake_failed() {
    metrics::counter!(TLS_HANDSHAKE_FAILURES).increment(1);
}

pub fn authorization_denied(operation: &'static str, resource_type: &'static str) {
    metrics::counter!(AUTHORIZATION_DENIALS, "operation" => operation, "resource_type" => resource_type)
        .increment(1);
}

pub fn throttled(quota: &'static str, principal: &str, d: Duration) {
    let principal = principal.to_string();
    metrics::counter!(THROTTLED_RESPONSES, "quota" => quota, "principal" => principal.clone())
        .increment(1);
    metrics::counter!(THROTTLE_MS, "quota" => quota, "principal" => principal)
        .increment(d.as_millis() as u64);
}

pub fn tls_reloaded() {
    metrics::counter!(TLS_RELOADS).increment(1);
}

pub fn connection_closed() {
    metrics::counter!(CONNECTIONS_CLOSED).increment(1);
    metrics::gauge!(CONNECTIONS_OPEN).decrement(1.0);
}

pub fn produced(topic: &str, bytes: usize, records: u64) {
    metrics::counter!(PRODUCE_BYTES, "topic" => topic.to_string()).increment(bytes as u64);
    metrics::counter!(PRODUCE_RECORDS, "topic" => topic.to_string()).increment(records);
}

pub fn fetched(topic: &str, bytes: usize) {
    metrics::counter!(FETCH_BYTES, "topic" => topic.to_string()).increment(bytes as u64);
}

/// Record bytes sent from a segment file with `sendfile`.
pub fn sent_from_file(bytes: usize) {
    metrics::counter!(FETCH_SENDFILE_BYTES).increment(bytes as u64);
}

/// One partition's offsets and size, as mirrored into gauges.
#[derive(Debug, Clone, Copy)]
pub struct PartitionGauges {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_end_offset: i64,
    pub size_bytes: u64,
}

/// State mirrored into gauges: one partition.
pub fn partition(topic: &str, partition: i32, g: PartitionGauges) {
    let labels = [
        ("topic", topic.to_string()),
        ("partition", partition.to_string()),
    ];
    metrics::gauge!(LOG_START, &labels).set(g.log_start_offset as f64);
    metrics::gauge!(LOG_END, &labels).set(g.log_end_offset as f64);
    metrics::gauge!(HIGH_WATERMARK, &labels).set(g.high_watermark as f64);
    metrics::gauge!(LAST_STABLE_OFFSET, &labels).set(g.last_stable_offset as f64);
    metrics::gauge!(PARTITION_BYTES, &labels).set(g.size_bytes as f64);
}

pub fn transaction_ended(commit: bool) {
    let result = if commit { "commit" } else { "abort" };
    metrics::counter!(TRANSACTIONS_ENDED, "result" => result).increment(1);
}

/// A client telemetry push was accepted.
pub fn telemetry_pushed() {
    metrics::counter!(TELEMETRY_PUSHES).increment(1);
}

/// Client telemetry values a push brought beyond `telemetry_max_series`.
pub fn telemetry_series_dropped(n: u64) {
    metrics::counter!(TELEMETRY_DROPPED).increment(n);
}

pub fn transactions_open(n: usize) {
    metrics::gauge!(TRANSACTIONS_OPEN).set(n as f64);
}

/// Most consumer groups given per-group series (members, state, lag); the broker never removes
/// a series, so a client naming new groups in a loop cannot grow `/metrics` without bound.
pub const MAX_GROUP_SERIES: usize = 1000;

pub fn group_members(group: &str, members: usize) {
    metrics::gauge!(GROUP_MEMBERS, "group" => group.to_string()).set(members as f64);
}

/// The group's state as a one-hot gauge over every state name.
pub fn group_state(group: &str, state: &'static str, all: &[&'static str]) {
    for s in all {
        let v = if *s == state { 1.0 } else { 0.0 };
        metrics::gauge!(GROUP_STATE, "group" => group.to_string(), "state" => *s).set(v);
    }
}

/// Counts what happened to a share-partition's records (`events`: name and count).
pub fn share_records(group: &str, topic: &str, partition: i32, events: &[(&'static str, u64)]) {
    for &(event, n) in events.iter().filter(|(_, n)| *n > 0) {
        metrics::counter!(
            SHARE_RECORDS,
            "group" => group.to_string(),
            "topic" => topic.to_string(),
            "partition" => partition.to_string(),
            "event" => event
        )
        .increment(n);
    }
}

pub fn share_sessions(n: usize) {
    metrics::gauge!(SHARE_SESSIONS).set(n as f64);
}

/// A share-partition's gauges.
pub fn share_partition(
    group: &str,
    topic: &str,
    partition: i32,
    in_flight: usize,
    acquired: usize,
    lag: i64,
) {
    let labels = [
        ("group", group.to_string()),
        ("topic", topic.to_string()),
        ("partition", partition.to_string()),
    ];
    metrics::gauge!(SHARE_IN_FLIGHT, &labels).set(in_flight as f64);
    metrics::gauge!(SHARE_ACQUIRED, &labels).set(acquired as f64);
    metrics::gauge!(SHARE_LAG, &labels).set(lag.max(0) as f64);
}

pub fn group_lag(group: &str, topic: &str, partition: i32, lag: i64) {
    metrics::gauge!(
        GROUP_LAG,
        "group" => group.to_string(),
        "topic" => topic.to_string(),
        "partition" => partition.to_string()
    )
    .set(lag.max(0) as f64);
}

pub fn in_flight(delta: f64) {
    metrics::gauge!(REQUESTS_IN_FLIGHT).increment(delta);
}

pub fn compacted(reclaimed: u64) {
    metrics::counter!(COMPACTED_BYTES).increment(reclaimed);
}

pub fn fetch_wait(d: Duration) {
    metrics::histogram!(FETCH_WAIT_SECONDS).record(d.as_secs_f64());
}

/// Resident memory and open descriptors, from /proc (Linux). procfs is memory-backed: these
/// reads never wait on a disk.
#[allow(clippy::disallowed_methods)]
pub fn process() {
    if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
        if let Some(pages) = statm
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<f64>().ok())
        {
            // SAFETY: sysconf has no preconditions
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
            metrics::gauge!(RESIDENT_BYTES).set(pages * page);
        }
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        metrics::gauge!(OPEN_FDS).set(fds.count() as f64);
    }
}

pub fn tier_request(op: &'static str, d: Duration) {
    metrics::counter!(TIER_REQUESTS, "op" => op).increment(1);
    metrics::histogram!(TIER_REQUEST_SECONDS, "op" => op).record(d.as_secs_f64());
}

pub fn tier_request_error(op: &'static str) {
    metrics::counter!(TIER_REQUEST_ERRORS, "op" => op).increment(1);
}

pub fn tier_uploaded(bytes: usize) {
    metrics::counter!(TIER_UPLOAD_BYTES).increment(bytes as u64);
}

pub fn tier_downloaded(bytes: usize) {
    metrics::counter!(TIER_DOWNLOAD_BYTES).increment(bytes as u64);
}

pub fn tier_segment_uploaded(d: Duration) {
    metrics::counter!(TIER_SEGMENTS_UPLOADED).increment(1);
    metrics::histogram!(TIER_SEGMENT_UPLOAD_SECONDS).record(d.as_secs_f64());
}

/// Whether the object store answered the tier's last request.
pub fn tier_available(up: bool) {
    metrics::gauge!(TIER_AVAILABLE).set(if up { 1.0 } else { 0.0 });
}

pub fn tier_upload_failed() {
    metrics::counter!(TIER_UPLOAD_FAILURES).increment(1);
}

pub fn tier_cache(hit: bool) {
    if hit {
        metrics::counter!(TIER_CACHE_HITS).increment(1);
    } else {
        metrics::counter!(TIER_CACHE_MISSES).increment(1);
    }
}

pub fn tier_cache_size(bytes: u64) {
    metrics::gauge!(TIER_CACHE_BYTES).set(bytes as f64);
}

/// State mirrored into gauges: one partition's tiering.
pub fn tier_partition(
    topic: &str,
    partition: i32,
    lag_bytes: u64,
    lag_segments: usize,
    remote_bytes: u64,
) {
    let labels = [
        ("topic", topic.to_string()),
        ("partition", partition.to_string()),
    ];
    metrics::gauge!(TIER_UPLOAD_LAG_BYTES, &labels).set(lag_bytes as f64);
    metrics::gauge!(TIER_UPLOAD_LAG_SEGMENTS, &labels).set(lag_segments as f64);
    metrics::gauge!(TIER_REMOTE_BYTES, &labels).set(remote_bytes as f64);
}

/// Cluster mode: partitions led and live nodes.
pub fn cluster_partitions(led: usize, live_nodes: usize) {
    metrics::gauge!(CLUSTER_LEADERSHIPS).set(led as f64);
    metrics::gauge!(CLUSTER_NODES).set(live_nodes as f64);
}

pub fn follower_fetched(bytes: usize) {
    metrics::counter!(FOLLOWER_FETCH_BYTES).increment(bytes as u64);
}

pub fn follower_copies(n: usize) {
    metrics::gauge!(FOLLOWER_COPIES).set(n as f64);
}

pub fn fetch_sessions(sessions: usize, partitions: usize) {
    metrics::gauge!(FETCH_SESSIONS).set(sessions as f64);
    metrics::gauge!(FETCH_SESSION_PARTITIONS).set(partitions as f64);
}

pub fn fetch_session_evicted() {
    metrics::counter!(FETCH_SESSION_EVICTIONS).increment(1);
}

/// A Fetch served `kind`: `full`, `incremental`, `sessionless` or `error`.
pub fn fetch_session_request(kind: &'static str) {
    metrics::counter!(FETCH_SESSION_FETCHES, "kind" => kind).increment(1);
}

pub fn preferred_replica() {
    metrics::counter!(PREFERRED_REPLICA).increment(1);
}

pub fn cluster_epoch_change() {
    metrics::counter!(CLUSTER_EPOCH_CHANGES).increment(1);
}

pub fn cluster_controller(is: bool) {
    metrics::gauge!(CLUSTER_CONTROLLER).set(if is { 1.0 } else { 0.0 });
}

pub fn cluster_lease(valid: bool) {
    metrics::gauge!(CLUSTER_LEASE).set(if valid { 1.0 } else { 0.0 });
}

pub fn cluster_etcd_request(d: Duration) {
    metrics::histogram!(ETCD_REQUEST_SECONDS).record(d.as_secs_f64());
}

pub fn cluster_wal_commit(d: Duration, bytes: usize) {
    metrics::histogram!(WAL_COMMIT_SECONDS).record(d.as_secs_f64());
    metrics::counter!(WAL_OBJECTS).increment(1);
    metrics::counter!(WAL_BYTES).increment(bytes as u64);
}

pub fn cluster_etcd_error(op: &'static str) {
    metrics::counter!(ETCD_ERRORS, "op" => op).increment(1);
}

#[cfg(test)]
mod tests {
    /// Every `pub const` metric name in this file.
    fn declared() -> Vec<String> {
        include_str!("metrics.rs")
            .lines()
            .filter(|l| l.starts_with("pub const ") && l.contains(": &str = \""))
            .filter_map(|l| l.split('"').nth(1).map(str::to_string))
            .collect()
    }

    /// `tiercel_…` names in `text`, with histogram suffixes removed.
    fn referenced(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = text;
        while let Some(i) = rest.find("tiercel_") {
            let tail = &rest[i..];
            // inside a longer name (the internal topic `__tiercel_groups`): not a metric
            if rest[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                rest = &tail["tiercel_".len()..];
                continue;
            }
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let mut name = &tail[..end];
            for suffix in ["_bucket", "_count", "_sum"] {
                name = name.strip_suffix(suffix).unwrap_or(name);
            }
            out.push(name.to_string());
            rest = &tail[end..];
        }
        out
    }

    #[test]
    fn the_shipped_dashboard_only_queries_metrics_that_exist() {
        let names = declared();
        assert!(names.len() > 20, "{names:?}");
        let dash = include_str!("../config/grafana-dashboard.json");
        let _: serde_json::Value = serde_json::from_str(dash).expect("dashboard is JSON");
        let used = referenced(dash);
        assert!(used.len() > 15);
        for n in used {
            assert!(names.contains(&n), "dashboard queries unknown metric {n}");
        }
    }

    #[test]
    fn the_readme_names_only_metrics_that_exist() {
        let names = declared();
        let readme = include_str!("../README.md");
        for n in referenced(readme) {
            // README abbreviates families as `tiercel_x_total`, `_closed_total`: full names only
            if n.ends_with('_') || n == "tiercel_" {
                continue;
            }
            // client telemetry: named after what clients push (`crate::telemetry`)
            if n.starts_with("tiercel_client_") {
                continue;
            }
            assert!(names.contains(&n), "README names unknown metric {n}");
        }
    }
}
