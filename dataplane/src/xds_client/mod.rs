//! The delta ADS client
//! (`envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources`)
//! to weftd's TLS port, authenticated with the workload certificate (weftd
//! takes the proxy's identity from it).
//!
//! It subscribes to Cluster, ClusterLoadAssignment, Listener,
//! RouteConfiguration and Secret (wildcard: weftd sends each proxy exactly
//! what concerns it), hands every response to a [`ConfigSink`], ACKs what
//! the sink applied and NACKs what it refused with the sink's message in
//! `error_detail` (the sink keeps its last good configuration). When the
//! stream breaks it reconnects with exponential backoff and jitter,
//! announcing the versions it holds (`initial_resource_versions`) so only
//! changes are sent again; the sink keeps serving meanwhile.
//!
//! - [`state`]: the protocol, pure (requests in/out, versions held).
//! - [`node`]: the `Node` weftd identifies the proxy by.
//! - [`stream`]: connecting, the stream loop, reconnects (glue).

pub mod node;
pub mod state;
pub mod stream;

use envoy_types::pb::google::protobuf::Any;

pub use node::{NodeInfo, ProxyMode};
pub use stream::{XdsClient, XdsClientConfig, XdsStatus};

/// Where the configuration goes: the data path's resources, or a test's
/// recorder. `Err` carries the message sent back to weftd in the NACK
/// (name the resource and field).
pub trait ConfigSink: Send + 'static {
    fn apply(
        &mut self,
        type_url: &str,
        added: Vec<(String, Any)>,
        removed: &[String],
    ) -> Result<(), String>;
}

/// Why a stream ended.
#[derive(Debug, thiserror::Error)]
pub enum XdsError {
    #[error(transparent)]
    Channel(#[from] crate::control_channel::ChannelError),
    #[error("weftd refused the xDS stream ({code:?}): {message}")]
    Refused { code: tonic::Code, message: String },
    #[error("the xDS stream broke ({code:?}): {message}")]
    Stream { code: tonic::Code, message: String },
    #[error("weftd closed the xDS stream")]
    Closed,
}

impl XdsError {
    /// Stable short label (logs, metrics).
    pub fn label(&self) -> &'static str {
        match self {
            Self::Channel(_) => "Connect",
            Self::Refused { .. } => "Refused",
            Self::Stream { .. } => "StreamError",
            Self::Closed => "Closed",
        }
    }
}
