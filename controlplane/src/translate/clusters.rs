//! Outbound clusters (`outbound|<port>|<subset>|<fqdn>`, EDS) and their
//! ClusterLoadAssignments from EndpointSlices: readiness becomes health,
//! zone/region become locality, subsets filter endpoints by pod labels.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{
    HealthStatus, Locality, Metadata, TransportSocket, transport_socket,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer;
use envoy_types::pb::google::protobuf::{Struct, UInt32Value, Value, value};
use k8s_openapi::api::discovery::v1::Endpoint as K8sEndpoint;
use weft_api::istio::networking::destination_rule::SimpleLb;
use weft_api::istio::networking::tls::ClientTlsMode;

use super::envoy;
use super::model::{Mesh, Port, ServiceView, matches_labels};
use crate::index::ObjectKey;
use crate::resources::{Resource, Resources, type_url};

/// Istio's cluster name: `outbound|<port>|<subset>|<fqdn>`.
pub fn outbound_name(port: u32, subset: &str, fqdn: &str) -> String {
    format!("outbound|{port}|{subset}|{fqdn}")
}

/// The pod label Istio's injector sets on meshed pods; endpoints of such
/// pods are reached with mesh mTLS, others in plaintext.
pub const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";
const TRANSPORT_SOCKET_MATCH: &str = "envoy.transport_socket_match";

/// Whether clusters carry mesh mTLS (sidecars and gateways) or not
/// (proxyless gRPC clients without xDS credentials).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upstream {
    MeshTls,
    Plaintext,
}

/// One endpoint resolved against its pod.
struct Ep {
    ip: String,
    port: u32,
    health: HealthStatus,
    zone: String,
    region: String,
    labels: BTreeMap<String, String>,
    meshed: bool,
    service_account: Option<String>,
}

fn endpoints(mesh: &Mesh<'_>, svc: &ServiceView, port: &Port) -> Vec<Ep> {
    let mut out = Vec::new();
    for slice in mesh.snapshot.slices_of(&svc.key) {
        if slice.address_type == "FQDN" {
            continue;
        }
        let Some(target) = slice
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref().unwrap_or("") == port.name.as_deref().unwrap_or(""))
            .and_then(|p| p.port)
            .and_then(|p| u32::try_from(p).ok())
        else {
            continue;
        };
        for e in &slice.endpoints {
            let Some(ip) = e.addresses.first() else {
                continue;
            };
            out.push(resolve(mesh, &svc.key.namespace, e, ip, target));
        }
    }
    out.sort_by(|a, b| (&a.ip, a.port).cmp(&(&b.ip, b.port)));
    out.dedup_by(|a, b| a.ip == b.ip && a.port == b.port);
    out
}

fn resolve(mesh: &Mesh<'_>, ns: &str, e: &K8sEndpoint, ip: &str, port: u32) -> Ep {
    let cond = e.conditions.clone().unwrap_or_default();
    let health = if cond.ready.unwrap_or(true) {
        HealthStatus::Healthy
    } else if cond.serving == Some(true) && cond.terminating == Some(true) {
        HealthStatus::Draining
    } else {
        HealthStatus::Unhealthy
    };
    let pod = e
        .target_ref
        .as_ref()
        .filter(|r| r.kind.as_deref() == Some("Pod"))
        .and_then(|r| mesh.pod(r.namespace.as_deref().unwrap_or(ns), r.name.as_deref()?));
    let labels = pod
        .and_then(|p| p.metadata.labels.clone())
        .unwrap_or_default();
    let region = e
        .node_name
        .as_ref()
        .and_then(|n| mesh.snapshot.nodes.get(&ObjectKey::new("", n)))
        .and_then(|n| {
            n.metadata
                .labels
                .as_ref()?
                .get("topology.kubernetes.io/region")
                .cloned()
        })
        .unwrap_or_default();
    Ep {
        ip: ip.to_owned(),
        port,
        health,
        zone: e.zone.clone().unwrap_or_default(),
        region,
        meshed: labels.get(TLS_MODE_LABEL).map(String::as_str) == Some("istio"),
        service_account: pod.map(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.service_account_name.clone())
                .unwrap_or_else(|| "default".into())
        }),
        labels,
    }
}

fn tls_mode_metadata() -> Metadata {
    let mut fields = std::collections::HashMap::new();
    fields.insert(
        "tlsMode".to_owned(),
        Value {
            kind: Some(value::Kind::StringValue("istio".into())),
        },
    );
    let mut filter_metadata = std::collections::HashMap::new();
    filter_metadata.insert(TRANSPORT_SOCKET_MATCH.to_owned(), Struct { fields });
    Metadata {
        filter_metadata,
        ..Default::default()
    }
}

fn load_assignment(name: &str, eps: &[&Ep]) -> ClusterLoadAssignment {
    let mut by_locality: BTreeMap<(&str, &str), Vec<LbEndpoint>> = BTreeMap::new();
    for ep in eps {
        by_locality
            .entry((&ep.region, &ep.zone))
            .or_default()
            .push(LbEndpoint {
                health_status: ep.health as i32,
                metadata: ep.meshed.then(tls_mode_metadata),
                load_balancing_weight: Some(UInt32Value { value: 1 }),
                host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                    address: Some(envoy::socket_address(&ep.ip, ep.port)),
                    ..Default::default()
                })),
            });
    }
    ClusterLoadAssignment {
        cluster_name: name.to_owned(),
        endpoints: by_locality
            .into_iter()
            .map(|((region, zone), lb_endpoints)| LocalityLbEndpoints {
                locality: Some(Locality {
                    region: region.to_owned(),
                    zone: zone.to_owned(),
                    ..Default::default()
                }),
                load_balancing_weight: Some(UInt32Value {
                    value: u32::try_from(lb_endpoints.len()).unwrap_or(u32::MAX),
                }),
                lb_endpoints,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn raw_buffer() -> TransportSocket {
    TransportSocket {
        name: "envoy.transport_sockets.raw_buffer".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(envoy::any(
            &RawBuffer::default(),
        ))),
    }
}

/// Adds the clusters of one service port (default and one per
/// DestinationRule subset) and their endpoints, as seen from `viewer`.
pub fn add_service_port(
    out: &mut Resources,
    mesh: &Mesh<'_>,
    svc: &ServiceView,
    port: &Port,
    viewer: &str,
    upstream: Upstream,
) {
    let eps = endpoints(mesh, svc, port);
    let dr = mesh.destination_rule(svc, viewer);
    let policy = dr.and_then(|dr| dr.spec.traffic_policy.as_ref());
    let tls_disabled = policy
        .and_then(|p| p.tls.as_ref())
        .is_some_and(|t| t.mode == Some(ClientTlsMode::Disable));
    let lb = policy
        .and_then(|p| p.load_balancer.as_ref())
        .and_then(|lb| lb.simple);
    let mut subsets: Vec<(String, BTreeMap<String, String>)> =
        vec![(String::new(), BTreeMap::new())];
    if let Some(dr) = dr {
        subsets.extend(
            dr.spec
                .subsets
                .iter()
                .map(|s| (s.name.clone(), s.labels.clone())),
        );
    }
    for (subset, labels) in subsets {
        let name = outbound_name(port.number, &subset, &svc.fqdn);
        let chosen: Vec<&Ep> = eps
            .iter()
            .filter(|e| matches_labels(&labels, &e.labels))
            .collect();
        let mut c = envoy::eds_cluster(&name);
        c.lb_policy = match lb {
            Some(SimpleLb::LeastConn | SimpleLb::LeastRequest) => cluster::LbPolicy::LeastRequest,
            Some(SimpleLb::Random) => cluster::LbPolicy::Random,
            _ => cluster::LbPolicy::RoundRobin,
        } as i32;
        if port.protocol.is_http2() {
            envoy::set_http2(&mut c);
        }
        if upstream == Upstream::MeshTls && !tls_disabled {
            let ids: BTreeSet<String> = chosen
                .iter()
                .filter_map(|e| e.service_account.as_ref())
                .map(|sa| {
                    crate::identity::SpiffeId::new(
                        &mesh.settings.trust_domain,
                        &svc.key.namespace,
                        sa,
                    )
                    .to_string()
                })
                .collect();
            let ids: Vec<String> = ids.into_iter().collect();
            let sni = format!("outbound_.{}_.{}_.{}", port.number, subset, svc.fqdn);
            c.transport_socket_matches = vec![
                cluster::TransportSocketMatch {
                    name: "tlsMode-istio".into(),
                    r#match: Some(
                        tls_mode_metadata()
                            .filter_metadata
                            .remove(TRANSPORT_SOCKET_MATCH)
                            .unwrap_or_default(),
                    ),
                    transport_socket: Some(envoy::mesh_upstream_tls(&sni, &ids)),
                },
                cluster::TransportSocketMatch {
                    name: "tlsMode-disabled".into(),
                    r#match: Some(Struct::default()),
                    transport_socket: Some(raw_buffer()),
                },
            ];
        }
        out.insert(Resource::from_message(&name, type_url::CLUSTER, &c));
        let cla = load_assignment(&name, &chosen);
        out.insert(Resource::from_message(&name, type_url::ENDPOINT, &cla));
    }
}

/// Clusters every sidecar has: where unknown destinations go.
pub fn add_passthrough(out: &mut Resources) {
    let original_dst = |name: &str| Cluster {
        name: name.into(),
        connect_timeout: Some(envoy::secs(10)),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::OriginalDst as i32,
        )),
        lb_policy: cluster::LbPolicy::ClusterProvided as i32,
        ..Default::default()
    };
    let blackhole = Cluster {
        name: BLACKHOLE.into(),
        connect_timeout: Some(envoy::secs(10)),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Static as i32,
        )),
        ..Default::default()
    };
    for c in [
        original_dst(PASSTHROUGH),
        original_dst(INBOUND_PASSTHROUGH),
        blackhole,
    ] {
        out.insert(Resource::from_message(&c.name, type_url::CLUSTER, &c));
    }
}

/// Unknown outbound destinations under outbound policy ALLOW_ANY.
pub const PASSTHROUGH: &str = "PassthroughCluster";
/// Inbound ports no service declares.
pub const INBOUND_PASSTHROUGH: &str = "InboundPassthroughCluster";
/// Unknown outbound destinations under REGISTRY_ONLY.
pub const BLACKHOLE: &str = "BlackHoleCluster";
