//! DescribeCluster: this one broker and the cluster id.

use super::errors::code;
use super::Handler;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

/// `endpoint_type` 1: brokers (2 would be controllers, which this broker does not expose).
const ENDPOINT_BROKERS: i8 = 1;

impl Handler {
    pub(super) fn describe_cluster(&self, req: DescribeClusterRequest) -> DescribeClusterResponse {
        let mut resp = DescribeClusterResponse::default();
        resp.endpoint_type = req.endpoint_type;
        if req.endpoint_type != ENDPOINT_BROKERS {
            resp.error_code = code(ResponseError::UnsupportedEndpointType);
            resp.error_message = Some(StrBytes::from_static_str(
                "only broker endpoints are served",
            ));
            return resp;
        }
        resp.cluster_id = StrBytes::from_string(self.catalog.cluster_id());
        resp.controller_id = self.node_id();
        let mut b = DescribeClusterBroker::default();
        b.broker_id = self.node_id();
        b.host = StrBytes::from_string(self.advertised.0.clone());
        b.port = self.advertised.1;
        resp.brokers = vec![b];
        resp
    }
}
