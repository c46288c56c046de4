//! DescribeCluster: the live nodes, the controller and the cluster id. A draining node
//! (`--decommission`) is reported fenced (v2: it may not be given partitions), and left out
//! unless the request includes fenced brokers.

use super::errors::code;
use super::Handler;
use crate::cluster::NodeInfo;
use crate::security::acl::resource;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

/// `endpoint_type` 1: brokers, the endpoint this listener is.
const ENDPOINT_BROKERS: i8 = 1;
/// `endpoint_type` 2: controllers, a known type this listener is not (as a Kafka broker
/// listener answers, MISMATCHED_ENDPOINT_TYPE; any other type is UNSUPPORTED_ENDPOINT_TYPE).
const ENDPOINT_CONTROLLERS: i8 = 2;

impl Handler {
    pub(super) fn describe_cluster(
        &self,
        req: DescribeClusterRequest,
        v: i16,
    ) -> DescribeClusterResponse {
        let mut resp = DescribeClusterResponse::default();
        resp.endpoint_type = req.endpoint_type;
        if req.endpoint_type != ENDPOINT_BROKERS {
            let (error, message) = if req.endpoint_type == ENDPOINT_CONTROLLERS {
                (
                    ResponseError::MismatchedEndpointType,
                    "this is a broker endpoint, not a controller endpoint",
                )
            } else {
                (
                    ResponseError::UnsupportedEndpointType,
                    "unknown endpoint type; only broker endpoints are served",
                )
            };
            resp.error_code = code(error);
            resp.error_message = Some(StrBytes::from_static_str(message));
            return resp;
        }
        resp.cluster_id = StrBytes::from_string(self.catalog.cluster_id());
        resp.cluster_authorized_operations = self.authorized_ops(
            req.include_cluster_authorized_operations,
            resource::CLUSTER,
            super::authz::CLUSTER_NAME,
        );
        let (nodes, controller) = self.nodes();
        resp.controller_id = BrokerId(controller);
        let fenced = |n: &NodeInfo| self.cluster.is_some() && n.draining;
        resp.brokers = nodes
            .into_iter()
            .filter(|n| v < 2 || req.include_fenced_brokers || !fenced(n))
            .map(|n| {
                let mut b = DescribeClusterBroker::default();
                b.broker_id = BrokerId(n.id);
                if v >= 2 {
                    b.is_fenced = fenced(&n);
                }
                let (host, port) = super::endpoint(&n);
                b.host = StrBytes::from_string(host);
                b.port = port;
                b.rack = n.rack.map(StrBytes::from_string);
                b
            })
            .collect();
        resp
    }
}
