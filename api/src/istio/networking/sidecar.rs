//! `Sidecar`: narrows what a workload's proxy listens on and which services it
//! can reach, so large meshes push less configuration to each proxy.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::MAX_ITERATED_ITEMS;
use super::connection_pool::ConnectionPoolSettings;
use super::destination::Destination;
use super::tls::ServerTlsSettings;
use super::workload_selector::WorkloadLabelSelector;
use crate::istio::common::IstioStatus;

/// Ingress and egress configuration of the proxies of selected workloads.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "networking.istio.io",
    version = "v1",
    kind = "Sidecar",
    namespaced,
    status = "IstioStatus",
    category = "istio-io",
    category = "networking-istio-io",
    cel,
    doc = "Ingress and egress configuration of the sidecar proxies of selected workloads.",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.egress) || self.egress.filter(e, !has(e.port)).size() <= 1")
    .message("egress: at most one listener may omit port (the catch-all listener)"))]
#[x_kube(validation = Rule::new(
    "!has(self.ingress) || self.ingress.all(i, self.ingress.exists_one(j, j.port.number == i.port.number))"
).message("ingress: port numbers must be unique"))]
pub struct SidecarSpec {
    /// Workloads in the Sidecar's namespace it applies to; without it, the
    /// Sidecar is the namespace default (one per namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadLabelSelector>,
    /// Listeners for traffic coming into the workload.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ITERATED_ITEMS))]
    pub ingress: Vec<IstioIngressListener>,
    /// Listeners for traffic leaving the workload, and the hosts it may reach.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ITERATED_ITEMS))]
    pub egress: Vec<IstioEgressListener>,
    /// Connection limits towards the application for all inbound ports,
    /// unless an ingress listener sets its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound_connection_pool: Option<ConnectionPoolSettings>,
    /// What happens to traffic for destinations the mesh does not know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
}

/// How traffic is captured into a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CaptureMode {
    /// The default for the environment.
    #[serde(rename = "DEFAULT")]
    Default,
    /// Redirected by iptables.
    #[serde(rename = "IPTABLES")]
    Iptables,
    /// Not captured; the application talks to the listener directly.
    #[serde(rename = "NONE")]
    None,
}

/// A listener for inbound traffic.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioIngressListener {
    /// Port the listener accepts traffic on.
    pub port: SidecarPort,
    /// Address the listener binds to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// How traffic reaches the listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_mode: Option<CaptureMode>,
    /// Where traffic is forwarded: `127.0.0.1:PORT`, `0.0.0.0:PORT`,
    /// `[::1]:PORT`, `[::]:PORT` or `unix://path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_endpoint: Option<String>,
    /// TLS terminated by the listener (file-based certificates only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsSettings>,
    /// Connection limits towards the application for this port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
}

/// A listener for outbound traffic.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioEgressListener {
    /// Port the listener accepts traffic on; the catch-all listener has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<SidecarPort>,
    /// Address or Unix socket the listener binds to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// How traffic reaches the listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_mode: Option<CaptureMode>,
    /// Services reachable through the listener, as `namespace/dnsName`;
    /// `*` and `.` (own namespace) and `~` (none) are allowed as namespace.
    #[schemars(length(min = 1))]
    pub hosts: Vec<String>,
}

/// A port of a sidecar listener.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SidecarPort {
    /// Port number.
    #[schemars(range(min = 1, max = 65535))]
    pub number: u32,
    /// Protocol: HTTP, HTTPS, GRPC, HTTP2, MONGO, TCP or TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Name of the port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Deprecated, not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub target_port: Option<u32>,
}

/// Policy for traffic to destinations the mesh does not know.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.egressProxy) || (has(self.mode) && self.mode == 'ALLOW_ANY')")
    .message("outboundTrafficPolicy.egressProxy requires mode ALLOW_ANY"))]
pub struct OutboundTrafficPolicy {
    /// Whether unknown destinations are blocked or passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<OutboundTrafficMode>,
    /// Service that traffic for unknown destinations is sent to (mode ALLOW_ANY).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_proxy: Option<Destination>,
}

/// Outbound traffic modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum OutboundTrafficMode {
    /// Only services in the registry are reachable.
    #[serde(rename = "REGISTRY_ONLY")]
    RegistryOnly,
    /// Unknown destinations are passed through.
    #[serde(rename = "ALLOW_ANY")]
    AllowAny,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::istio::networking::test_support::*;

    fn sidecar(spec: &str) -> Sidecar {
        parse(&with_spec("Sidecar", spec))
    }

    #[test]
    fn full_sample_round_trips_and_validates() {
        let text = repo_file("config/samples/istio/networking/sidecar-full.yaml");
        let sc: Sidecar = assert_round_trip(&text);
        assert_eq!(sc.spec.ingress.len(), 2);
        assert_eq!(sc.spec.egress.len(), 2);
        assert_eq!(sc.spec.egress[0].capture_mode, Some(CaptureMode::None));
        // Sidecar selects with `labels`, not `matchLabels` like DestinationRule.
        let selector = sc
            .spec
            .workload_selector
            .as_ref()
            .expect("workloadSelector");
        assert_eq!(
            selector.labels.get("app").map(String::as_str),
            Some("payments-api")
        );
        let policy = sc
            .spec
            .outbound_traffic_policy
            .as_ref()
            .expect("outboundTrafficPolicy");
        assert_eq!(policy.mode, Some(OutboundTrafficMode::AllowAny));
        sc.validate_cel().expect("sample passes the CEL rules");
    }

    #[test]
    fn cel_rules_accept_valid_and_reject_invalid() {
        // (valid spec, invalid spec, message of the rule the invalid one breaks)
        let cases: &[(&str, &str, &str)] = &[
            (
                "egress: [{port: {number: 5432}, hosts: [./db]}, {hosts: ['./*']}]",
                "egress: [{hosts: [./db]}, {hosts: ['./*']}]",
                "egress: at most one listener may omit port (the catch-all listener)",
            ),
            (
                "ingress: [{port: {number: 9080}}, {port: {number: 9443}}]",
                "ingress: [{port: {number: 9080}}, {port: {number: 9080, name: other}}]",
                "ingress: port numbers must be unique",
            ),
            (
                "outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: egress}}",
                "outboundTrafficPolicy: {mode: REGISTRY_ONLY, egressProxy: {host: egress}}",
                "outboundTrafficPolicy.egressProxy requires mode ALLOW_ANY",
            ),
            (
                "ingress: [{port: {number: 9443}, tls: {mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem}}]",
                "ingress: [{port: {number: 9443}, tls: {mode: SIMPLE}}]",
                "tls.mode SIMPLE, MUTUAL and OPTIONAL_MUTUAL need credentialName, credentialNames, tlsCertificates, or serverCertificate and privateKey",
            ),
            (
                "inboundConnectionPool: {http: {idleTimeout: 30s}}",
                "inboundConnectionPool: {http: {idleTimeout: 0s}}",
                "http.idleTimeout must be at least 1ms",
            ),
        ];
        for (valid, invalid, message) in cases {
            let ok = sidecar(valid);
            assert_eq!(
                cel_messages(ok.validate_cel()),
                Vec::<String>::new(),
                "valid case: {valid}"
            );
            let bad = sidecar(invalid);
            assert_rejected(bad.validate_cel(), message);
        }
    }
}
