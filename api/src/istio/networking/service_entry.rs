//! `ServiceEntry`: adds services to the mesh's registry, e.g. external APIs
//! or VMs, so routing and policy can apply to them.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::MAX_ITERATED_ITEMS;
use super::workload_selector::WorkloadLabelSelector;
use crate::istio::common::IstioStatus;

/// A service added to the mesh's registry.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "networking.istio.io",
    version = "v1",
    kind = "ServiceEntry",
    namespaced,
    status = "IstioStatus",
    shortname = "se",
    category = "istio-io",
    category = "networking-istio-io",
    cel,
    doc = "A service added to the mesh's service registry, such as an external API or a set of VMs.",
    printcolumn = r#"{"name":"Hosts","type":"string","jsonPath":".spec.hosts","description":"Host names the entry adds"}"#,
    printcolumn = r#"{"name":"Location","type":"string","jsonPath":".spec.location","description":"MESH_EXTERNAL or MESH_INTERNAL"}"#,
    printcolumn = r#"{"name":"Resolution","type":"string","jsonPath":".spec.resolution","description":"How endpoints are found"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.workloadSelector) && has(self.endpoints))")
    .message("set workloadSelector or endpoints, not both"))]
#[x_kube(validation = Rule::new("(has(self.resolution) && self.resolution != 'NONE') || !has(self.endpoints)")
    .message("endpoints cannot be set with resolution NONE"))]
#[x_kube(validation = Rule::new(
    "!has(self.resolution) || self.resolution != 'DNS_ROUND_ROBIN' || !has(self.endpoints) || size(self.endpoints) <= 1"
).message("resolution DNS_ROUND_ROBIN allows at most one endpoint"))]
#[x_kube(validation = Rule::new(
    "!has(self.addresses) || !has(self.resolution) || self.resolution in ['NONE', 'STATIC'] || !self.addresses.exists(a, a.contains('/'))"
).message("addresses: CIDR ranges are only allowed with resolution NONE or STATIC"))]
#[x_kube(validation = Rule::new(
    "!has(self.resolution) || !(self.resolution in ['DNS', 'DNS_ROUND_ROBIN']) || has(self.endpoints) || !self.hosts.exists(h, h.startsWith('*'))"
).message("hosts: wildcard hosts need endpoints when resolution is DNS or DNS_ROUND_ROBIN"))]
#[x_kube(validation = Rule::new("self.hosts.all(h, h != '*')")
    .message("hosts: '*' alone is not a valid host"))]
#[x_kube(validation = Rule::new(
    "!has(self.ports) || self.ports.all(p, self.ports.exists_one(q, q.number == p.number))"
).message("ports: port numbers must be unique"))]
#[x_kube(validation = Rule::new(
    "!has(self.ports) || self.ports.all(p, self.ports.exists_one(q, q.name == p.name))"
).message("ports: port names must be unique"))]
pub struct ServiceEntrySpec {
    /// Host names of the service: DNS names, wildcard prefixes (`*.example.com`);
    /// matched against HTTP Host/authority and TLS SNI.
    #[schemars(length(min = 1, max = MAX_ITERATED_ITEMS), inner(length(max = 255)))]
    pub hosts: Vec<String>,
    /// Virtual IPs or CIDR ranges of the service; traffic to them is
    /// treated as traffic to the service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ITERATED_ITEMS), inner(length(max = 64)))]
    pub addresses: Vec<String>,
    /// Ports of the service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ITERATED_ITEMS))]
    pub ports: Vec<ServicePort>,
    /// Whether the service is outside the mesh or part of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// How the endpoints of the service are found; NONE when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    /// The endpoints of the service (not with `workloadSelector`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4096))]
    pub endpoints: Vec<WorkloadEntrySpec>,
    /// Pods and WorkloadEntries in the entry's namespace that serve the
    /// service (MESH_INTERNAL only; not with `endpoints`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadLabelSelector>,
    /// Namespaces the entry is visible in: `.` for its own, `*` for all
    /// (default), or namespace names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    /// Identities the endpoints' certificates may carry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
}

/// A port of a ServiceEntry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    /// Port number clients use.
    #[schemars(range(min = 1, max = 65535))]
    pub number: u32,
    /// Protocol: HTTP, HTTPS, GRPC, HTTP2, MONGO, TCP or TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Name of the port, unique within the entry.
    #[schemars(length(max = 128))]
    pub name: String,
    /// Port on the endpoints traffic is sent to; `number` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub target_port: Option<u32>,
}

/// Where a ServiceEntry's service lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Location {
    /// Outside the mesh: no mTLS, metrics and policy on the caller side only.
    #[serde(rename = "MESH_EXTERNAL")]
    MeshExternal,
    /// Part of the mesh, e.g. VMs with proxies.
    #[serde(rename = "MESH_INTERNAL")]
    MeshInternal,
}

/// How the endpoints of a ServiceEntry are found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Resolution {
    /// Forward to the IP the caller connected to.
    #[serde(rename = "NONE")]
    None,
    /// Use the endpoint addresses as given.
    #[serde(rename = "STATIC")]
    Static,
    /// Resolve host names (endpoints' or the hosts') by DNS, using all addresses.
    #[serde(rename = "DNS")]
    Dns,
    /// Resolve by DNS and use the first address only, for new connections.
    #[serde(rename = "DNS_ROUND_ROBIN")]
    DnsRoundRobin,
    /// Resolve the requested name (Host header or SNI) when traffic flows;
    /// for wildcard hosts.
    #[serde(rename = "DYNAMIC_DNS")]
    DynamicDns,
}

/// One endpoint of a ServiceEntry, with the fields of a WorkloadEntry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.address) || has(self.network)")
    .message("endpoints: address is required unless network is set"))]
#[x_kube(validation = Rule::new("!has(self.address) || !self.address.startsWith('unix://') || !has(self.ports)")
    .message("endpoints: a unix:// address cannot have ports"))]
pub struct WorkloadEntrySpec {
    /// IP address, DNS name or `unix://` socket of the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub address: Option<String>,
    /// Port on the endpoint for each port name of the service.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<String, u32>,
    /// Labels of the endpoint, used by subsets and selectors.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Network the endpoint is in, for multi-network meshes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Locality of the endpoint, `region/zone/subzone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    /// Load-balancing weight; endpoints with higher weights get more traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Service account of the endpoint's workload, for its identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::istio::networking::test_support::*;

    fn se(spec: &str) -> ServiceEntry {
        parse(&with_spec("ServiceEntry", spec))
    }

    #[test]
    fn full_sample_round_trips_and_validates() {
        let text = repo_file("config/samples/istio/networking/serviceentry-full.yaml");
        let se: ServiceEntry = assert_round_trip(&text);
        assert_eq!(se.spec.location, Some(Location::MeshExternal));
        assert_eq!(se.spec.resolution, Some(Resolution::Dns));
        assert_eq!(se.spec.endpoints.len(), 2);
        assert_eq!(se.spec.endpoints[0].ports.get("https"), Some(&8443));
        se.validate_cel().expect("sample passes the CEL rules");
    }

    #[test]
    fn cel_rules_accept_valid_and_reject_invalid() {
        const BASE: &str =
            "hosts: [api.example.com]\nports: [{number: 443, name: https, protocol: TLS}]";
        // (valid spec, invalid spec, message of the rule the invalid one breaks)
        let cases: &[(&str, &str, &str)] = &[
            (
                "resolution: STATIC\nworkloadSelector: {labels: {app: vm}}",
                "resolution: STATIC\nworkloadSelector: {labels: {app: vm}}\nendpoints: [{address: 10.0.0.1}]",
                "set workloadSelector or endpoints, not both",
            ),
            (
                "resolution: STATIC\nendpoints: [{address: 10.0.0.1}]",
                "endpoints: [{address: 10.0.0.1}]",
                "endpoints cannot be set with resolution NONE",
            ),
            (
                "resolution: DNS_ROUND_ROBIN\nendpoints: [{address: a.example.com}]",
                "resolution: DNS_ROUND_ROBIN\nendpoints: [{address: a.example.com}, {address: b.example.com}]",
                "resolution DNS_ROUND_ROBIN allows at most one endpoint",
            ),
            (
                "resolution: STATIC\naddresses: [10.1.0.0/16]\nendpoints: [{address: 10.1.0.1}]",
                "resolution: DNS\naddresses: [10.1.0.0/16]",
                "addresses: CIDR ranges are only allowed with resolution NONE or STATIC",
            ),
            (
                "resolution: DNS\nendpoints: [{address: api.example.com}]",
                "resolution: DNS\nhosts: ['*.example.com']",
                "hosts: wildcard hosts need endpoints when resolution is DNS or DNS_ROUND_ROBIN",
            ),
            (
                "resolution: NONE\nhosts: ['*.example.com']",
                "hosts: ['*']",
                "hosts: '*' alone is not a valid host",
            ),
            (
                "ports: [{number: 443, name: https}, {number: 80, name: http}]",
                "ports: [{number: 443, name: https}, {number: 443, name: tls}]",
                "ports: port numbers must be unique",
            ),
            (
                "ports: [{number: 443, name: https}, {number: 80, name: http}]",
                "ports: [{number: 443, name: https}, {number: 8443, name: https}]",
                "ports: port names must be unique",
            ),
            (
                "resolution: STATIC\nendpoints: [{network: remote, labels: {app: x}}]",
                "resolution: STATIC\nendpoints: [{labels: {app: x}}]",
                "endpoints: address is required unless network is set",
            ),
            (
                "resolution: STATIC\nendpoints: [{address: 'unix:///var/run/api.sock'}]",
                "resolution: STATIC\nendpoints: [{address: 'unix:///var/run/api.sock', ports: {https: 8443}}]",
                "endpoints: a unix:// address cannot have ports",
            ),
        ];
        for (valid, invalid, message) in cases {
            // Later keys win in YAML maps only when unique, so cases that set
            // `hosts` or `ports` replace the base ones instead of repeating them.
            let spec = |extra: &str| {
                let mut lines: Vec<&str> = BASE
                    .lines()
                    .filter(|l| {
                        !extra
                            .lines()
                            .any(|e| e.split(':').next() == l.split(':').next())
                    })
                    .collect();
                lines.extend(extra.lines());
                lines.join("\n")
            };
            let ok = se(&spec(valid));
            assert_eq!(
                cel_messages(ok.validate_cel()),
                Vec::<String>::new(),
                "valid case: {valid}"
            );
            let bad = se(&spec(invalid));
            assert_rejected(bad.validate_cel(), message);
        }
    }
}
