//! Client telemetry (KIP-714): GetTelemetrySubscriptions and PushTelemetry v0, served from the
//! broker's [`crate::telemetry::Telemetry`] (what is asked for, what was pushed).

use super::errors::code;
use super::Handler;
use crate::clock::{Clock, SystemClock};
use crate::telemetry::{PushError, ACCEPTED_COMPRESSION};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    GetTelemetrySubscriptionsRequest, GetTelemetrySubscriptionsResponse, PushTelemetryRequest,
    PushTelemetryResponse,
};
use kafka_protocol::protocol::StrBytes;

impl Handler {
    pub(super) fn get_telemetry_subscriptions(
        &self,
        req: GetTelemetrySubscriptionsRequest,
        client_id: &str,
    ) -> GetTelemetrySubscriptionsResponse {
        let software = super::SESSION
            .try_with(|s| s.software.lock().clone())
            .ok()
            .flatten()
            .unwrap_or_default();
        let sub = self.telemetry.subscribe(
            req.client_instance_id,
            client_id,
            software,
            SystemClock.now_ms(),
        );
        let mut resp = GetTelemetrySubscriptionsResponse::default();
        resp.client_instance_id = sub.instance;
        resp.subscription_id = sub.id;
        resp.accepted_compression_types = ACCEPTED_COMPRESSION.to_vec();
        resp.push_interval_ms = sub.push_interval_ms;
        resp.telemetry_max_bytes = sub.max_bytes;
        // cumulative values: each push carries every metric's current value
        resp.delta_temporality = false;
        resp.requested_metrics = sub
            .requested
            .into_iter()
            .map(StrBytes::from_string)
            .collect();
        resp
    }

    pub(super) fn push_telemetry(&self, req: PushTelemetryRequest) -> PushTelemetryResponse {
        let mut resp = PushTelemetryResponse::default();
        if req.client_instance_id.is_nil() {
            resp.error_code = code(ResponseError::InvalidRequest);
            return resp;
        }
        let pushed = self.telemetry.push(
            req.client_instance_id,
            req.subscription_id,
            req.terminating,
            req.compression_type,
            &req.metrics,
            SystemClock.now_ms(),
        );
        if let Err(e) = pushed {
            tracing::debug!(instance = %req.client_instance_id, error = ?e, "client telemetry push refused");
            resp.error_code = code(match e {
                PushError::UnknownSubscription => ResponseError::UnknownSubscriptionId,
                PushError::TooSoon => ResponseError::ThrottlingQuotaExceeded,
                PushError::TooLarge => ResponseError::TelemetryTooLarge,
                PushError::Compression => ResponseError::UnsupportedCompressionType,
                PushError::Invalid => ResponseError::InvalidRecord,
            });
        }
        resp
    }
}
