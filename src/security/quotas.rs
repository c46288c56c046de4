//! Client quotas: `producer_byte_rate`, `consumer_byte_rate` and `request_percentage` set per
//! user, per client id, per user and client id, and on their defaults (kept with the catalog),
//! resolved with Kafka's precedence and enforced with token buckets.
//!
//! A quota is shared by everything its entity covers: a quota on `user=alice` holds all of
//! alice's client ids together, one on the default user holds each user separately, one on
//! `client-id=x` every user of that client id together. A request is never refused: what it
//! uses is taken from its bucket, possibly into debt, and the response carries the time until
//! the debt is paid as `throttle_time_ms`, for which the connection is not read (KIP-219).

use crate::catalog::{Catalog, ClientQuota, QuotaName};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How much a bucket holds: this many seconds of its rate, taken at once after an idle spell.
const BURST_SECONDS: f64 = 1.0;
/// The longest one response is throttled; what is still owed throttles the next.
pub const MAX_THROTTLE: Duration = Duration::from_secs(10);
/// Buckets kept before idle ones are dropped.
const MAX_BUCKETS: usize = 16_384;

/// What a quota limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    /// Produce request bytes per second (`producer_byte_rate`).
    Produce,
    /// Fetch response record bytes per second (`consumer_byte_rate`).
    Fetch,
    /// Request handling time as a percentage of one thread (`request_percentage`).
    Request,
}

impl QuotaKind {
    pub fn key(self) -> &'static str {
        match self {
            QuotaKind::Produce => "producer_byte_rate",
            QuotaKind::Fetch => "consumer_byte_rate",
            QuotaKind::Request => "request_percentage",
        }
    }

    fn label(self) -> &'static str {
        match self {
            QuotaKind::Produce => "produce",
            QuotaKind::Fetch => "fetch",
            QuotaKind::Request => "request",
        }
    }
}

/// The quota keys a user or client-id entity accepts.
pub const KEYS: [&str; 3] = [
    "producer_byte_rate",
    "consumer_byte_rate",
    "request_percentage",
];

/// The user a principal is for quotas: its name without the type (`User:alice` → `alice`).
pub fn quota_user(principal: &str) -> &str {
    principal.split_once(':').map_or(principal, |(_, n)| n)
}

/// Whose bucket a request draws from: the user and client id the matching quota covers
/// separately (empty where it covers them all together).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct BucketKey {
    kind: QuotaKind,
    user: String,
    client_id: String,
}

/// One part of a quota entity as a lookup wants it: a name, the default, or no such part.
#[derive(Clone, Copy)]
enum Part<'a> {
    Named(&'a str),
    Default,
    Absent,
}

impl Part<'_> {
    fn is(self, part: &Option<QuotaName>) -> bool {
        match (self, part) {
            (Part::Named(want), Some(QuotaName::Named(n))) => n == want,
            (Part::Default, Some(QuotaName::Default)) | (Part::Absent, None) => true,
            _ => false,
        }
    }
}

/// The quota of `kind` for `user` using `client_id`, and the bucket it is counted in: the
/// first entity that sets it, in Kafka's order (user and client id; user and default client
/// id; user; default user and client id; default user and default client id; default user;
/// client id; default client id). Only a positive, finite rate is a quota. Nothing is
/// allocated unless one applies: this runs for every request.
fn resolve(
    quotas: &[ClientQuota],
    kind: QuotaKind,
    user: &str,
    client_id: &str,
) -> Option<(f64, BucketKey)> {
    use Part::{Absent, Default, Named};
    let (u, c) = (Named(user), Named(client_id));
    let order = [
        (u, c),
        (u, Default),
        (u, Absent),
        (Default, c),
        (Default, Default),
        (Default, Absent),
        (Absent, c),
        (Absent, Default),
    ];
    let (user_part, client_part, rate) =
        order.into_iter().find_map(|(user_part, client_part)| {
            let q = quotas
                .iter()
                .find(|q| user_part.is(&q.entity.user) && client_part.is(&q.entity.client_id))?;
            Some((user_part, client_part, *q.values.get(kind.key())?))
        })?;
    if !(rate.is_finite() && rate > 0.0) {
        return None;
    }
    // a bucket per user (and per client id) unless the entity leaves that part out
    let tag = |part: Part, name: &str| match part {
        Absent => String::new(),
        _ => name.to_string(),
    };
    let key = BucketKey {
        kind,
        user: tag(user_part, user),
        client_id: tag(client_part, client_id),
    };
    Some((rate, key))
}

/// A token bucket: what it holds, as of when. The refill is shared with the topic mutation
/// quota (`api::quota`); what taking means differs between them.
pub struct TokenBucket {
    pub tokens: f64,
    pub at: Instant,
}

impl TokenBucket {
    pub fn full(rate: f64, burst_seconds: f64, now: Instant) -> TokenBucket {
        TokenBucket {
            tokens: rate * burst_seconds,
            at: now,
        }
    }

    /// Adds what `rate` per second brought since it was last refilled, up to
    /// `burst_seconds` of it.
    pub fn refill(&mut self, rate: f64, burst_seconds: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate * burst_seconds);
        self.at = now;
    }

    /// Takes `amount` at `rate` per second; the time until the bucket is out of debt.
    fn take(&mut self, rate: f64, amount: f64, now: Instant) -> Duration {
        self.refill(rate, BURST_SECONDS, now);
        // a debt never outgrows the longest throttle: what one huge request owes is paid by
        // one throttle, not by hours of them
        self.tokens = (self.tokens - amount).max(-rate * MAX_THROTTLE.as_secs_f64());
        if self.tokens >= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(-self.tokens / rate)
    }
}

/// The client quotas in force and what each bucket holds.
pub struct ClientQuotas {
    catalog: Arc<Catalog>,
    buckets: Mutex<HashMap<BucketKey, TokenBucket>>,
}

impl ClientQuotas {
    pub fn new(catalog: Arc<Catalog>) -> ClientQuotas {
        ClientQuotas {
            catalog,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The most record bytes one Fetch of `principal` with `client_id` may carry: what its
    /// `consumer_byte_rate` bucket holds when full (`None`: no such quota). Kafka bounds a
    /// fetch by its quota window the same way, so one response is never owed for long.
    pub fn fetch_cap(&self, principal: &str, client_id: &str) -> Option<usize> {
        let user = quota_user(principal);
        let (rate, _) = self
            .catalog
            .with_quotas(|q| resolve(q, QuotaKind::Fetch, user, client_id))?;
        Some((rate * BURST_SECONDS).max(1.0) as usize)
    }

    /// Counts `amount` (bytes; for [`QuotaKind::Request`], seconds of handling) used by
    /// `principal` with `client_id`; how long its response is throttled (zero under quota, or
    /// with no quota set).
    pub fn record(
        &self,
        kind: QuotaKind,
        principal: &str,
        client_id: &str,
        amount: f64,
    ) -> Duration {
        let user = quota_user(principal);
        let Some((rate, key)) = self
            .catalog
            .with_quotas(|q| resolve(q, kind, user, client_id))
        else {
            return Duration::ZERO;
        };
        // a percentage of one thread: percent-seconds per second
        let amount = match kind {
            QuotaKind::Request => amount * 100.0,
            _ => amount,
        };
        let now = Instant::now();
        let throttle = {
            let mut buckets = self.buckets.lock();
            if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(&key) {
                // drop buckets idle long enough to be full again
                buckets
                    .retain(|_, b| now.saturating_duration_since(b.at) < Duration::from_secs(60));
            }
            let bucket = buckets
                .entry(key)
                .or_insert_with(|| TokenBucket::full(rate, BURST_SECONDS, now));
            bucket.take(rate, amount, now)
        };
        if !throttle.is_zero() {
            crate::metrics::throttled(kind.label(), principal, throttle);
        }
        throttle
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::QuotaEntity;
    use std::collections::BTreeMap;

    fn quota(user: Option<QuotaName>, client_id: Option<QuotaName>, rate: f64) -> ClientQuota {
        ClientQuota {
            entity: QuotaEntity { user, client_id },
            values: BTreeMap::from([("producer_byte_rate".to_string(), rate)]),
        }
    }

    fn named(s: &str) -> Option<QuotaName> {
        Some(QuotaName::Named(s.into()))
    }

    #[test]
    fn the_most_specific_entity_wins_in_kafkas_order() {
        let d = || Some(QuotaName::Default);
        let all = vec![
            quota(None, d(), 8.0),
            quota(None, named("app"), 7.0),
            quota(d(), None, 6.0),
            quota(d(), d(), 5.0),
            quota(d(), named("app"), 4.0),
            quota(named("alice"), None, 3.0),
            quota(named("alice"), d(), 2.0),
            quota(named("alice"), named("app"), 1.0),
        ];
        let p = QuotaKind::Produce;
        // removing the winner each time shows the next level
        let tags = |rate: f64, user: &str, client: &str| {
            (
                rate,
                BucketKey {
                    kind: p,
                    user: user.into(),
                    client_id: client.into(),
                },
            )
        };
        let expected = [
            tags(1.0, "alice", "app"),
            tags(2.0, "alice", "app"),
            tags(3.0, "alice", ""),
            tags(4.0, "alice", "app"),
            tags(5.0, "alice", "app"),
            tags(6.0, "alice", ""),
            tags(7.0, "", "app"),
            tags(8.0, "", "app"),
        ];
        let mut quotas = all.clone();
        for want in expected {
            assert_eq!(resolve(&quotas, p, "alice", "app"), Some(want));
            quotas.pop();
        }
        assert_eq!(resolve(&quotas, p, "alice", "app"), None);
        // another user and client id fall through to the defaults, counted on their own
        assert_eq!(
            resolve(&all, p, "bob", "other"),
            Some(tags(5.0, "bob", "other"))
        );
        // a quota of another kind does not apply
        assert_eq!(resolve(&all, QuotaKind::Fetch, "alice", "app"), None);
    }

    #[test]
    fn a_bucket_throttles_by_its_debt_and_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::full(1000.0, BURST_SECONDS, t0);
        assert_eq!(b.take(1000.0, 1000.0, t0), Duration::ZERO, "the burst");
        let wait = b.take(1000.0, 500.0, t0);
        assert_eq!(wait, Duration::from_millis(500));
        // after the wait the debt is paid; a second later a full second's worth is back
        assert_eq!(
            b.take(1000.0, 0.0, t0 + Duration::from_millis(500)),
            Duration::ZERO
        );
        assert_eq!(
            b.take(1000.0, 1000.0, t0 + Duration::from_millis(1500)),
            Duration::ZERO
        );
        // the burst never exceeds a second's worth however long the bucket sat idle
        assert!(!b
            .take(1000.0, 1001.0, t0 + Duration::from_secs(60))
            .is_zero());
        // a single huge request is throttled at most MAX_THROTTLE, and owes no more than that
        assert_eq!(b.take(1.0, 1e9, t0 + Duration::from_secs(60)), MAX_THROTTLE);
        assert_eq!(
            b.take(1.0, 0.0, t0 + Duration::from_secs(70)),
            Duration::ZERO
        );
    }

    #[test]
    fn a_quota_user_is_the_principal_name() {
        assert_eq!(quota_user("User:alice"), "alice");
        assert_eq!(quota_user("User:CN=a,O=b"), "CN=a,O=b");
        assert_eq!(quota_user("ANONYMOUS"), "ANONYMOUS");
    }
}
