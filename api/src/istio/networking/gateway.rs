//! `Gateway`: the ports, protocols, hosts and TLS settings of a load balancer
//! at the edge of the mesh.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::MAX_ITERATED_ITEMS;
use super::tls::ServerTlsSettings;
use crate::istio::common::IstioStatus;

/// Listeners a gateway workload exposes.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "networking.istio.io",
    version = "v1",
    kind = "Gateway",
    namespaced,
    status = "IstioStatus",
    shortname = "gw",
    category = "istio-io",
    category = "networking-istio-io",
    cel,
    doc = "Ports, protocols, hosts and TLS of a load balancer at the edge of the mesh.",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.servers) && size(self.servers) > 0")
    .message("servers: a Gateway needs at least one server"))]
#[x_kube(validation = Rule::new(
    "!has(self.servers) || self.servers.all(s, !has(s.name) || self.servers.exists_one(t, has(t.name) && t.name == s.name))"
).message("servers: names must be unique"))]
pub struct GatewaySpec {
    /// The listeners: port, hosts and TLS of each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ITERATED_ITEMS))]
    pub servers: Vec<Server>,
    /// Labels of the gateway pods that take this configuration; searched in
    /// the Gateway's namespace (or all namespaces, depending on mesh settings).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
}

/// One listener of the gateway.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "!(self.port.protocol.upperAscii() in ['HTTPS', 'TLS']) || has(self.tls)"
).message("servers.tls is required when port.protocol is HTTPS or TLS"))]
#[x_kube(validation = Rule::new(
    "!has(self.tls) || !has(self.tls.httpsRedirect) || !self.tls.httpsRedirect || self.port.protocol.upperAscii() == 'HTTP'"
).message("servers.tls.httpsRedirect only applies to a port with protocol HTTP"))]
pub struct Server {
    /// Port the gateway listens on.
    pub port: Port,
    /// Address or Unix socket the listener binds to; all addresses when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// Hosts served, as `[namespace/]host`; wildcards allowed. The namespace
    /// part limits which VirtualServices may bind.
    #[schemars(length(min = 1))]
    pub hosts: Vec<String>,
    /// TLS settings for HTTPS and TLS ports, or an HTTPS redirect for HTTP ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsSettings>,
    /// Loopback address or Unix socket that traffic is forwarded to (sidecar
    /// ingress only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_endpoint: Option<String>,
    /// Name of the server, used in metrics and to refer to it from routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A gateway listener port.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Port {
    /// Port number.
    #[schemars(range(min = 1, max = 65535))]
    pub number: u32,
    /// Protocol: HTTP, HTTPS, GRPC, GRPC-WEB, HTTP2, MONGO, TCP or TLS.
    pub protocol: String,
    /// Name of the port.
    pub name: String,
    /// Port on the endpoint traffic is sent to (only for ServiceEntry-style use).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub target_port: Option<u32>,
}
