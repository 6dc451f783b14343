//! Connection-pool limits towards an upstream (DestinationRule) or towards the
//! local application (Sidecar inbound).

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::min_1ms;
use crate::istio::common::Duration;

/// Connection limits for TCP and HTTP traffic to one host.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionPoolSettings {
    /// Limits common to TCP and HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpSettings>,
    /// Limits for HTTP/1.1, HTTP/2 and gRPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSettings>,
}

/// TCP connection limits.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TcpSettings {
    /// Most connections to each host of the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<i32>,
    /// How long connecting may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = min_1ms("connectTimeout must be at least 1ms"))]
    pub connect_timeout: Option<Duration>,
    /// TCP keepalive probing of idle connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// How long a connection may live before it is drained; unlimited if unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = min_1ms("maxConnectionDuration must be at least 1ms"))]
    pub max_connection_duration: Option<Duration>,
    /// How long a connection may sit without traffic before it is closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = min_1ms("tcp.idleTimeout must be at least 1ms"))]
    pub idle_timeout: Option<Duration>,
}

/// TCP keepalive settings (`SO_KEEPALIVE`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TcpKeepalive {
    /// Unanswered probes after which the connection is dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<u32>,
    /// Idle time before the first probe is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = min_1ms("tcpKeepalive.time must be at least 1ms"))]
    pub time: Option<Duration>,
    /// Time between probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = min_1ms("tcpKeepalive.interval must be at least 1ms"))]
    pub interval: Option<Duration>,
}

/// Whether an HTTP/1.1 connection to the upstream is upgraded to HTTP/2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum H2UpgradePolicy {
    /// Use the mesh-wide default.
    #[serde(rename = "DEFAULT")]
    Default,
    /// Never upgrade.
    #[serde(rename = "DO_NOT_UPGRADE")]
    DoNotUpgrade,
    /// Upgrade to HTTP/2.
    #[serde(rename = "UPGRADE")]
    Upgrade,
}

/// HTTP connection and request limits.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpSettings {
    /// Most requests queued while waiting for a connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http1_max_pending_requests: Option<i32>,
    /// Most requests in flight to the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_max_requests: Option<i32>,
    /// Most requests per connection; 1 disables keep-alive, 0 means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests_per_connection: Option<i32>,
    /// Most retries in flight to all hosts of the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<i32>,
    /// How long an upstream connection may sit without requests before it is closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = min_1ms("http.idleTimeout must be at least 1ms"))]
    pub idle_timeout: Option<Duration>,
    /// Whether HTTP/1.1 connections are upgraded to HTTP/2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h2_upgrade_policy: Option<H2UpgradePolicy>,
    /// Use the protocol the client used (HTTP/1.1 or HTTP/2) towards the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_client_protocol: Option<bool>,
    /// Most concurrent streams on one HTTP/2 connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_streams: Option<i32>,
}
