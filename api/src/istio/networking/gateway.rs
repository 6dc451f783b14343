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
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
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
    #[schemars(length(max = 128))]
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
    #[schemars(length(max = 32))]
    pub protocol: String,
    /// Name of the port.
    pub name: String,
    /// Port on the endpoint traffic is sent to (only for ServiceEntry-style use).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub target_port: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::istio::networking::test_support::*;
    use crate::istio::networking::tls::ServerTlsMode;

    fn gw(spec: &str) -> Gateway {
        parse(&with_spec("Gateway", spec))
    }

    #[test]
    fn full_sample_round_trips_and_validates() {
        let text = repo_file("config/samples/istio/networking/gateway-full.yaml");
        let gw: Gateway = assert_round_trip(&text);
        assert_eq!(gw.spec.servers.len(), 5);
        assert_eq!(
            gw.spec.selector.get("istio").map(String::as_str),
            Some("ingressgateway")
        );
        let https = &gw.spec.servers[1];
        assert_eq!(https.port.target_port, Some(8443));
        let tls = https.tls.as_ref().expect("tls");
        assert_eq!(tls.mode, Some(ServerTlsMode::OptionalMutual));
        assert_eq!(tls.credential_names.len(), 2);
        gw.validate_cel().expect("sample passes the CEL rules");
    }

    #[test]
    fn cel_rules_accept_valid_and_reject_invalid() {
        const HTTP: &str = "port: {number: 80, name: http, protocol: HTTP}\n  hosts: ['*']";
        const HTTPS: &str = "port: {number: 443, name: https, protocol: https}\n  hosts: ['*']";
        // (valid spec, invalid spec, message of the rule the invalid one breaks)
        let cases: &[(String, String, &str)] = &[
            (
                format!("servers:\n- {HTTP}"),
                "selector: {istio: ingressgateway}".to_owned(),
                "servers: a Gateway needs at least one server",
            ),
            (
                format!(
                    "servers:\n- {HTTP}\n  name: a\n- {HTTPS}\n  name: b\n  tls: {{mode: PASSTHROUGH}}"
                ),
                format!(
                    "servers:\n- {HTTP}\n  name: a\n- {HTTPS}\n  name: a\n  tls: {{mode: PASSTHROUGH}}"
                ),
                "servers: names must be unique",
            ),
            (
                format!("servers:\n- {HTTPS}\n  tls: {{mode: SIMPLE, credentialName: cert}}"),
                format!("servers:\n- {HTTPS}"),
                "servers.tls is required when port.protocol is HTTPS or TLS",
            ),
            (
                format!("servers:\n- {HTTP}\n  tls: {{httpsRedirect: true}}"),
                format!(
                    "servers:\n- {HTTPS}\n  tls: {{httpsRedirect: true, mode: SIMPLE, credentialName: cert}}"
                ),
                "servers.tls.httpsRedirect only applies to a port with protocol HTTP",
            ),
            (
                format!(
                    "servers:\n- {HTTPS}\n  tls: {{mode: SIMPLE, credentialNames: [rsa, ecdsa]}}"
                ),
                format!(
                    "servers:\n- {HTTPS}\n  tls: {{mode: SIMPLE, credentialName: rsa, credentialNames: [ecdsa]}}"
                ),
                "tls: set only one of credentialName, credentialNames, tlsCertificates or serverCertificate",
            ),
            (
                format!(
                    "servers:\n- {HTTPS}\n  tls: {{mode: MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem}}"
                ),
                format!("servers:\n- {HTTPS}\n  tls: {{mode: MUTUAL, serverCertificate: /c.pem}}"),
                "tls.mode SIMPLE, MUTUAL and OPTIONAL_MUTUAL need credentialName, credentialNames, tlsCertificates, or serverCertificate and privateKey",
            ),
        ];
        for (valid, invalid, message) in cases {
            let ok = gw(valid);
            assert_eq!(
                cel_messages(ok.validate_cel()),
                Vec::<String>::new(),
                "valid case: {valid}"
            );
            let bad = gw(invalid);
            assert_rejected(bad.validate_cel(), message);
        }
    }

    #[test]
    fn a_server_without_port_does_not_parse() {
        let text = with_spec("Gateway", "servers:\n- hosts: ['*']");
        let err = serde_yaml_ng::from_str::<Gateway>(&text).expect_err("port is required");
        assert!(err.to_string().contains("missing field `port`"), "{err}");
    }
}
