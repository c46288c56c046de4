//! ApiVersions: generated from `protocol::versions::SUPPORTED`, with the features (v3+) this
//! broker implements: `group.version` 1 is the KIP-848 consumer group protocol,
//! `transaction.version` 2 transactions v2 (KIP-890), which clients use once it is finalized,
//! `share.version` 1 share groups (KIP-932; a node in a cluster serves neither them nor the
//! feature).

use crate::protocol::versions::{SHARE_GROUP_APIS, SUPPORTED};
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::protocol::StrBytes;

/// The response, with `error_code` (0, or UNSUPPORTED_VERSION for the v0 fallback reply) and
/// the `transaction.version` finalized here (`transaction_version`; 2 is transactions v2,
/// KIP-890; a level of 0 is not listed, as Kafka leaves it out), and whether share groups are
/// served (`share_groups`).
pub fn api_versions_response(
    error_code: i16,
    transaction_version: i16,
    share_groups: bool,
) -> ApiVersionsResponse {
    let mut r = ApiVersionsResponse::default();
    r.error_code = error_code;
    r.api_keys = SUPPORTED
        .iter()
        .filter(|(key, _, _)| share_groups || !SHARE_GROUP_APIS.contains(key))
        .map(|&(key, min, max)| {
            let mut v = ApiVersion::default();
            v.api_key = key as i16;
            v.min_version = min;
            v.max_version = max;
            v
        })
        .collect();
    let features = [
        ("group.version", 1, 1),
        ("transaction.version", 2, transaction_version),
        ("share.version", 1, 1),
    ];
    for (name, supported, level) in features {
        if name == "share.version" && !share_groups {
            continue;
        }
        let mut f = SupportedFeatureKey::default();
        f.name = StrBytes::from_static_str(name);
        f.min_version = 0;
        f.max_version = supported;
        r.supported_features.push(f);
        if level > 0 {
            let mut f = FinalizedFeatureKey::default();
            f.name = StrBytes::from_static_str(name);
            f.min_version_level = level;
            f.max_version_level = level;
            r.finalized_features.push(f);
        }
    }
    // the features never change while a broker runs
    r.finalized_features_epoch = 1;
    r
}
