//! A sidecar's configuration: the outbound capture listener (15001) with a
//! filter chain per service port, per-port route configurations, the
//! inbound listener (15006) with a chain per workload port, and the
//! clusters and endpoints behind them.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{
    BindConfig, CidrRange, SocketAddress, socket_address,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::config::listener::v3::{
    FilterChain, FilterChainMatch, Listener, ListenerFilter, listener_filter,
};
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, Route, RouteConfiguration, RouteMatch, VirtualHost, route, route_match,
};
use envoy_types::pb::envoy::extensions::filters::listener::original_dst::v3::OriginalDst;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::google::protobuf::{BoolValue, UInt32Value};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use weft_api::istio::security::peer_authentication::MtlsMode;

use super::clusters::{self, Upstream};
use super::model::{Mesh, Protocol, mtls_mode};
use super::routes::{self, Backend};
use super::{MeshSettings, OutboundPolicy, envoy};
use crate::identity::ProxyIdentity;
use crate::index::ObjectKey;
use crate::resources::{Resource, Resources, type_url};

pub const OUTBOUND_PORT: u32 = 15001;
pub const INBOUND_PORT: u32 = 15006;

pub fn translate(mesh: &Mesh<'_>, proxy: &ProxyIdentity, out: &mut Resources) {
    outbound(mesh, proxy, out);
    inbound(mesh, proxy, out);
    clusters::add_passthrough(out);
    add_service_clusters(mesh, proxy, out);
}

/// The outbound Cluster and ClusterLoadAssignment of every service port
/// (and DestinationRule subset) in `mesh`.
pub fn add_service_clusters(mesh: &Mesh<'_>, proxy: &ProxyIdentity, out: &mut Resources) {
    for svc in mesh.services.values() {
        for port in &svc.ports {
            clusters::add_service_port(out, mesh, svc, port, proxy.namespace(), Upstream::MeshTls);
        }
    }
}

fn port_match(port: u32) -> FilterChainMatch {
    FilterChainMatch {
        destination_port: Some(UInt32Value { value: port }),
        ..Default::default()
    }
}

fn unmatched_cluster(settings: &MeshSettings) -> &'static str {
    match settings.outbound_policy {
        OutboundPolicy::AllowAny => clusters::PASSTHROUGH,
        OutboundPolicy::RegistryOnly => clusters::BLACKHOLE,
    }
}

fn outbound(mesh: &Mesh<'_>, proxy: &ProxyIdentity, out: &mut Resources) {
    let mut chains = Vec::new();
    let mut http_ports: BTreeSet<u32> = BTreeSet::new();
    for svc in mesh.services.values() {
        for port in &svc.ports {
            if port.protocol.is_http() {
                http_ports.insert(port.number);
                continue;
            }
            let Some(ip) = &svc.cluster_ip else { continue };
            let cluster = clusters::outbound_name(port.number, "", &svc.fqdn);
            let prefix_len = if ip.contains(':') { 128 } else { 32 };
            chains.push(FilterChain {
                name: cluster.clone(),
                filter_chain_match: Some(FilterChainMatch {
                    prefix_ranges: vec![CidrRange {
                        address_prefix: ip.clone(),
                        prefix_len: Some(UInt32Value { value: prefix_len }),
                    }],
                    ..port_match(port.number)
                }),
                filters: vec![envoy::tcp_proxy_filter(&cluster, &cluster)],
                ..Default::default()
            });
        }
    }
    let vses = mesh.mesh_virtual_services(proxy.namespace());
    for port in &http_ports {
        let name = port.to_string();
        chains.push(FilterChain {
            name: format!("0.0.0.0_{port}"),
            filter_chain_match: Some(port_match(*port)),
            filters: vec![envoy::hcm_filter(&envoy::hcm_rds(
                &format!("outbound_0.0.0.0_{port}"),
                &name,
            ))],
            ..Default::default()
        });
        let mut vhosts = Vec::new();
        for svc in mesh.services.values() {
            if !svc.port(*port).is_some_and(|p| p.protocol.is_http()) {
                continue;
            }
            let vs = vses.iter().find(|(_, hosts)| hosts.contains(&svc.fqdn));
            let routes = match vs {
                Some((vs, _)) => {
                    let ns = vs.metadata.namespace.clone().unwrap_or_default();
                    // Clusters for every visible service exist already.
                    let mut unused = BTreeSet::<Backend>::new();
                    routes::virtual_service_routes(
                        mesh,
                        &vs.spec.http,
                        &ns,
                        Some(*port),
                        &mut unused,
                    )
                }
                None => vec![routes::default_route(&clusters::outbound_name(
                    *port, "", &svc.fqdn,
                ))],
            };
            vhosts.push(VirtualHost {
                name: format!("{}:{port}", svc.fqdn),
                domains: routes::domains(svc, *port, proxy.namespace()),
                routes,
                ..Default::default()
            });
        }
        vhosts.push(unknown_host(mesh.settings));
        let rc = RouteConfiguration {
            name: name.clone(),
            virtual_hosts: vhosts,
            validate_clusters: Some(BoolValue { value: false }),
            ..Default::default()
        };
        out.insert(Resource::from_message(&name, type_url::ROUTE, &rc));
    }
    let unmatched = unmatched_cluster(mesh.settings);
    let listener = Listener {
        name: "virtualOutbound".into(),
        address: Some(envoy::socket_address("0.0.0.0", OUTBOUND_PORT)),
        use_original_dst: Some(BoolValue { value: true }),
        filter_chains: chains,
        default_filter_chain: Some(FilterChain {
            name: unmatched.into(),
            filters: vec![envoy::tcp_proxy_filter(unmatched, unmatched)],
            ..Default::default()
        }),
        ..Default::default()
    };
    out.insert(Resource::from_message(
        &listener.name,
        type_url::LISTENER,
        &listener,
    ));
}

/// Requests for hosts the mesh does not know: passed through under
/// ALLOW_ANY, refused with 502 under REGISTRY_ONLY.
fn unknown_host(settings: &MeshSettings) -> VirtualHost {
    let (name, action) = match settings.outbound_policy {
        OutboundPolicy::AllowAny => (
            "allow_any",
            route::Action::Route(envoy_types::pb::envoy::config::route::v3::RouteAction {
                cluster_specifier: Some(
                    envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier::Cluster(
                        clusters::PASSTHROUGH.into(),
                    ),
                ),
                timeout: Some(envoy::secs(0)),
                ..Default::default()
            }),
        ),
        OutboundPolicy::RegistryOnly => (
            "block_all",
            route::Action::DirectResponse(DirectResponseAction {
                status: 502,
                body: None,
                body_format: None,
            }),
        ),
    };
    VirtualHost {
        name: name.into(),
        domains: vec!["*".into()],
        routes: vec![Route {
            r#match: Some(RouteMatch {
                path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
                ..Default::default()
            }),
            action: Some(action),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The proxy's workload ports: target ports of the services selecting its
/// pod, with the protocol of the service port.
fn workload_ports(mesh: &Mesh<'_>, proxy: &ProxyIdentity) -> BTreeMap<u32, Protocol> {
    let pod = proxy.pod.as_ref().and_then(|name| {
        mesh.snapshot
            .pods
            .get(&ObjectKey::new(proxy.namespace(), name))
    });
    let named = |name: &str| -> Option<u32> {
        pod?.spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name))
            .and_then(|p| u32::try_from(p.container_port).ok())
    };
    let mut ports = BTreeMap::new();
    for svc in mesh
        .snapshot
        .services
        .iter()
        .filter(|(k, _)| k.namespace == proxy.namespace())
    {
        let view = super::model::ServiceView::new(svc.0, svc.1, mesh.settings);
        if proxy.labels.is_empty() || !view.selects(&proxy.labels) {
            continue;
        }
        for port in &view.ports {
            let target = match &port.raw.target_port {
                Some(IntOrString::Int(n)) => u32::try_from(*n).ok(),
                Some(IntOrString::String(name)) => named(name),
                None => Some(port.number),
            };
            if let Some(target) = target {
                ports.entry(target).or_insert(port.protocol);
            }
        }
    }
    ports
}

/// Where the proxy dials its application from: 127.0.0.6 (::6 for IPv6),
/// which the pod's iptables rules let through, so the proxy's connection
/// to its own pod IP is not captured again (Istio's convention). None
/// when the workload is reached on loopback.
fn inbound_bind_config(local_ip: &str) -> Option<BindConfig> {
    let ip: std::net::IpAddr = local_ip.parse().ok()?;
    if ip.is_loopback() {
        return None;
    }
    let source = if ip.is_ipv4() { "127.0.0.6" } else { "::6" };
    Some(BindConfig {
        source_address: Some(SocketAddress {
            address: source.to_owned(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(0)),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn inbound(mesh: &Mesh<'_>, proxy: &ProxyIdentity, out: &mut Resources) {
    let local_ip = proxy.ips.first().map_or("127.0.0.1", String::as_str);
    let mut chains = Vec::new();
    for (port, protocol) in workload_ports(mesh, proxy) {
        let cluster_name = format!("inbound|{port}||");
        let mut c = Cluster {
            name: cluster_name.clone(),
            connect_timeout: Some(envoy::secs(10)),
            cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
                cluster::DiscoveryType::Static as i32,
            )),
            load_assignment: Some(ClusterLoadAssignment {
                cluster_name: cluster_name.clone(),
                endpoints: vec![LocalityLbEndpoints {
                    lb_endpoints: vec![LbEndpoint {
                        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                            address: Some(envoy::socket_address(local_ip, port)),
                            ..Default::default()
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }),
            upstream_bind_config: inbound_bind_config(local_ip),
            ..Default::default()
        };
        if protocol.is_http2() {
            envoy::set_http2(&mut c);
        }
        out.insert(Resource::from_message(&cluster_name, type_url::CLUSTER, &c));

        let filter = if protocol.is_http() {
            let rc = RouteConfiguration {
                name: cluster_name.clone(),
                virtual_hosts: vec![VirtualHost {
                    name: format!("inbound|http|{port}"),
                    domains: vec!["*".into()],
                    routes: vec![routes::default_route(&cluster_name)],
                    ..Default::default()
                }],
                validate_clusters: Some(BoolValue { value: false }),
                ..Default::default()
            };
            envoy::hcm_filter(&envoy::hcm_inline(&format!("inbound_0.0.0.0_{port}"), rc))
        } else {
            envoy::tcp_proxy_filter(&cluster_name, &cluster_name)
        };
        let mode = mtls_mode(mesh.snapshot, mesh.settings, proxy, port);
        let tls_chain = FilterChain {
            name: format!("{cluster_name}mtls"),
            filter_chain_match: Some(FilterChainMatch {
                transport_protocol: "tls".into(),
                ..port_match(port)
            }),
            filters: vec![filter.clone()],
            transport_socket: Some(envoy::mesh_downstream_tls()),
            ..Default::default()
        };
        let plain_chain = |transport: &str| FilterChain {
            name: format!("{cluster_name}plaintext"),
            filter_chain_match: Some(FilterChainMatch {
                transport_protocol: transport.into(),
                ..port_match(port)
            }),
            filters: vec![filter.clone()],
            ..Default::default()
        };
        match mode {
            MtlsMode::Strict => chains.push(tls_chain),
            MtlsMode::Disable => chains.push(plain_chain("")),
            MtlsMode::Permissive | MtlsMode::Unset => {
                chains.push(tls_chain);
                chains.push(plain_chain("raw_buffer"));
            }
        }
    }
    let listener_filter = |name: &str, config| ListenerFilter {
        name: name.into(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    };
    let listener = Listener {
        name: "virtualInbound".into(),
        address: Some(envoy::socket_address("0.0.0.0", INBOUND_PORT)),
        listener_filters: vec![
            listener_filter(
                "envoy.filters.listener.original_dst",
                envoy::any(&OriginalDst::default()),
            ),
            listener_filter(
                "envoy.filters.listener.tls_inspector",
                envoy::any(&TlsInspector::default()),
            ),
        ],
        filter_chains: chains,
        default_filter_chain: Some(FilterChain {
            name: clusters::INBOUND_PASSTHROUGH.into(),
            filters: vec![envoy::tcp_proxy_filter(
                clusters::INBOUND_PASSTHROUGH,
                clusters::INBOUND_PASSTHROUGH,
            )],
            ..Default::default()
        }),
        ..Default::default()
    };
    out.insert(Resource::from_message(
        &listener.name,
        type_url::LISTENER,
        &listener,
    ));
}
