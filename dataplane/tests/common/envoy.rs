//! Envoy v3 resources in the shapes weftd's translation emits (see
//! controlplane/src/translate/), for two sidecars on loopback.

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{
    Address, AggregatedConfigSource, ApiVersion, CidrRange, ConfigSource, DataSource, HealthStatus,
    Http2ProtocolOptions, Metadata, SocketAddress, TransportSocket, address, config_source,
    data_source, socket_address, transport_socket,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter, filter, listener_filter,
};
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, route, route_action,
    route_match,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::original_dst::v3::OriginalDst;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use envoy_types::pb::envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig, Secret,
    SubjectAltNameMatcher, TlsCertificate, UpstreamTlsContext, common_tls_context, secret,
    subject_alt_name_matcher,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions, http_protocol_options,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
use envoy_types::pb::google::protobuf::{
    Any, BoolValue, Duration, Struct, UInt32Value, Value, value,
};
use prost::{Message, Name};
use weft_proxy::config::Resources;

pub fn any<M: Message + Name>(m: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: m.encode_to_vec(),
    }
}

fn ads() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        ..Default::default()
    }
}

pub fn addr(ip: &str, port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.into(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port.into())),
            ..Default::default()
        })),
    }
}

fn router() -> HttpFilter {
    HttpFilter {
        name: "envoy.filters.http.router".into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(
            any(&Router::default()),
        )),
        ..Default::default()
    }
}

fn hcm(stat: &str, spec: http_connection_manager::RouteSpecifier) -> Filter {
    let h = HttpConnectionManager {
        stat_prefix: stat.into(),
        route_specifier: Some(spec),
        http_filters: vec![router()],
        ..Default::default()
    };
    Filter {
        name: "envoy.filters.network.http_connection_manager".into(),
        config_type: Some(filter::ConfigType::TypedConfig(any(&h))),
    }
}

fn tcp(cluster: &str) -> Filter {
    let t = TcpProxy {
        stat_prefix: cluster.into(),
        cluster_specifier: Some(tcp_proxy::ClusterSpecifier::Cluster(cluster.into())),
        ..Default::default()
    };
    Filter {
        name: "envoy.filters.network.tcp_proxy".into(),
        config_type: Some(filter::ConfigType::TypedConfig(any(&t))),
    }
}

fn sds(name: &str) -> SdsSecretConfig {
    SdsSecretConfig {
        name: name.into(),
        sds_config: Some(ads()),
    }
}

fn tls_socket<M: Message + Name>(m: &M) -> TransportSocket {
    TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(any(m))),
    }
}

fn exact(s: &str) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(string_matcher::MatchPattern::Exact(s.into())),
        ..Default::default()
    }
}

pub fn mesh_upstream_tls(sni: &str, ids: &[String]) -> TransportSocket {
    tls_socket(&UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificate_sds_secret_configs: vec![sds("default")],
            alpn_protocols: vec!["istio".into()],
            validation_context_type: Some(
                common_tls_context::ValidationContextType::CombinedValidationContext(
                    common_tls_context::CombinedCertificateValidationContext {
                        default_validation_context: Some(CertificateValidationContext {
                            match_typed_subject_alt_names: ids
                                .iter()
                                .map(|id| SubjectAltNameMatcher {
                                    san_type: subject_alt_name_matcher::SanType::Uri as i32,
                                    matcher: Some(exact(id)),
                                    ..Default::default()
                                })
                                .collect(),
                            ..Default::default()
                        }),
                        validation_context_sds_secret_config: Some(sds("ROOTCA")),
                        ..Default::default()
                    },
                ),
            ),
            ..Default::default()
        }),
        sni: sni.into(),
        ..Default::default()
    })
}

fn mesh_downstream_tls() -> TransportSocket {
    tls_socket(&DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificate_sds_secret_configs: vec![sds("default")],
            alpn_protocols: vec!["h2".into(), "http/1.1".into(), "istio".into()],
            validation_context_type: Some(
                common_tls_context::ValidationContextType::ValidationContextSdsSecretConfig(sds(
                    "ROOTCA",
                )),
            ),
            ..Default::default()
        }),
        require_client_certificate: Some(BoolValue { value: true }),
        ..Default::default()
    })
}

fn tls_mode_struct() -> Struct {
    let mut fields = std::collections::HashMap::new();
    fields.insert(
        "tlsMode".to_owned(),
        Value {
            kind: Some(value::Kind::StringValue("istio".into())),
        },
    );
    Struct { fields }
}

pub fn outbound_name(port: u16, fqdn: &str) -> String {
    format!("outbound|{port}||{fqdn}")
}

/// One service seen from the client side.
pub struct Service {
    pub fqdn: String,
    pub vip: String,
    pub port: u16,
    pub http: bool,
    pub http2: bool,
    /// Endpoints (ip, port) of meshed pods, and their SPIFFE IDs.
    pub endpoints: Vec<(String, u16)>,
    pub ids: Vec<String>,
    pub meshed: bool,
}

/// Client-side (outbound) resources for `services`, as weftd emits them.
pub fn outbound(r: &mut Resources, services: &[Service]) {
    let mut chains = Vec::new();
    for s in services {
        let cname = outbound_name(s.port, &s.fqdn);
        let port_match = FilterChainMatch {
            destination_port: Some(UInt32Value {
                value: s.port.into(),
            }),
            ..Default::default()
        };
        if s.http {
            chains.push(FilterChain {
                name: format!("0.0.0.0_{}", s.port),
                filter_chain_match: Some(port_match),
                filters: vec![hcm(
                    &format!("outbound_0.0.0.0_{}", s.port),
                    http_connection_manager::RouteSpecifier::Rds(Rds {
                        config_source: Some(ads()),
                        route_config_name: s.port.to_string(),
                    }),
                )],
                ..Default::default()
            });
            let domains: Vec<String> = [s.fqdn.clone(), s.vip.clone()]
                .into_iter()
                .flat_map(|h| [format!("{h}:{}", s.port), h])
                .collect();
            let rc = RouteConfiguration {
                name: s.port.to_string(),
                virtual_hosts: vec![VirtualHost {
                    name: format!("{}:{}", s.fqdn, s.port),
                    domains,
                    routes: vec![Route {
                        r#match: Some(RouteMatch {
                            path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
                            ..Default::default()
                        }),
                        action: Some(route::Action::Route(RouteAction {
                            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
                                cname.clone(),
                            )),
                            timeout: Some(Duration::default()),
                            ..Default::default()
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                validate_clusters: Some(BoolValue { value: false }),
                ..Default::default()
            };
            r.insert_message(&rc.name.clone(), &rc);
        } else {
            chains.push(FilterChain {
                name: cname.clone(),
                filter_chain_match: Some(FilterChainMatch {
                    prefix_ranges: vec![CidrRange {
                        address_prefix: s.vip.clone(),
                        prefix_len: Some(UInt32Value { value: 32 }),
                    }],
                    ..port_match
                }),
                filters: vec![tcp(&cname)],
                ..Default::default()
            });
        }
        service_cluster(r, s);
    }
    let l = Listener {
        name: "virtualOutbound".into(),
        address: Some(addr("0.0.0.0", 15001)),
        use_original_dst: Some(BoolValue { value: true }),
        filter_chains: chains,
        default_filter_chain: Some(FilterChain {
            name: "PassthroughCluster".into(),
            filters: vec![tcp("PassthroughCluster")],
            ..Default::default()
        }),
        ..Default::default()
    };
    r.insert_message("virtualOutbound", &l);
    let passthrough = |name: &str| Cluster {
        name: name.into(),
        connect_timeout: Some(Duration {
            seconds: 10,
            nanos: 0,
        }),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::OriginalDst as i32,
        )),
        lb_policy: cluster::LbPolicy::ClusterProvided as i32,
        ..Default::default()
    };
    r.insert_message("PassthroughCluster", &passthrough("PassthroughCluster"));
    r.insert_message(
        "InboundPassthroughCluster",
        &passthrough("InboundPassthroughCluster"),
    );
}

/// The EDS cluster of a service port and its endpoints (mesh mTLS to
/// meshed endpoints).
pub fn service_cluster(r: &mut Resources, s: &Service) {
    let cname = outbound_name(s.port, &s.fqdn);
    let mut c = Cluster {
        name: cname.clone(),
        connect_timeout: Some(Duration {
            seconds: 10,
            nanos: 0,
        }),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cluster::EdsClusterConfig {
            eds_config: Some(ads()),
            service_name: cname.clone(),
        }),
        transport_socket_matches: vec![
            cluster::TransportSocketMatch {
                name: "tlsMode-istio".into(),
                r#match: Some(tls_mode_struct()),
                transport_socket: Some(mesh_upstream_tls(
                    &format!("outbound_.{}_._.{}", s.port, s.fqdn),
                    &s.ids,
                )),
            },
            cluster::TransportSocketMatch {
                name: "tlsMode-disabled".into(),
                r#match: Some(Struct::default()),
                transport_socket: Some(TransportSocket {
                    name: "envoy.transport_sockets.raw_buffer".into(),
                    config_type: Some(transport_socket::ConfigType::TypedConfig(any(
                        &RawBuffer::default(),
                    ))),
                }),
            },
        ],
        ..Default::default()
    };
    if s.http2 {
        set_http2(&mut c);
    }
    r.insert_message(&cname, &c);
    let metadata = s.meshed.then(|| {
        let mut fm = std::collections::HashMap::new();
        fm.insert("envoy.transport_socket_match".to_owned(), tls_mode_struct());
        Metadata {
            filter_metadata: fm,
            ..Default::default()
        }
    });
    let cla = ClusterLoadAssignment {
        cluster_name: cname.clone(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: s
                .endpoints
                .iter()
                .map(|(ip, port)| LbEndpoint {
                    health_status: HealthStatus::Healthy as i32,
                    metadata: metadata.clone(),
                    load_balancing_weight: Some(UInt32Value { value: 1 }),
                    host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                        address: Some(addr(ip, *port)),
                        ..Default::default()
                    })),
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    };
    r.insert_message(&cname, &cla);
}

pub fn set_http2(c: &mut Cluster) {
    let opts = HttpProtocolOptions {
        upstream_protocol_options: Some(
            http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
                http_protocol_options::ExplicitHttpConfig {
                    protocol_config: Some(
                        http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                            Http2ProtocolOptions::default(),
                        ),
                    ),
                },
            ),
        ),
        ..Default::default()
    };
    c.typed_extension_protocol_options.insert(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".into(),
        any(&opts),
    );
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mtls {
    Strict,
    Permissive,
    Disable,
}

/// One workload port on the server side.
pub struct WorkloadPort {
    pub port: u16,
    pub http: bool,
    pub http2: bool,
    pub mode: Mtls,
}

/// Server-side (inbound) resources, as weftd emits them; the app listens
/// on `app_ip`.
pub fn inbound(r: &mut Resources, app_ip: &str, ports: &[WorkloadPort]) {
    let mut chains = Vec::new();
    for p in ports {
        let cname = format!("inbound|{}||", p.port);
        let mut c = Cluster {
            name: cname.clone(),
            connect_timeout: Some(Duration {
                seconds: 10,
                nanos: 0,
            }),
            cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
                cluster::DiscoveryType::Static as i32,
            )),
            load_assignment: Some(ClusterLoadAssignment {
                cluster_name: cname.clone(),
                endpoints: vec![LocalityLbEndpoints {
                    lb_endpoints: vec![LbEndpoint {
                        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                            address: Some(addr(app_ip, p.port)),
                            ..Default::default()
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        if p.http2 {
            set_http2(&mut c);
        }
        r.insert_message(&cname, &c);
        let f = if p.http {
            let rc = RouteConfiguration {
                name: cname.clone(),
                virtual_hosts: vec![VirtualHost {
                    name: format!("inbound|http|{}", p.port),
                    domains: vec!["*".into()],
                    routes: vec![Route {
                        r#match: Some(RouteMatch {
                            path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
                            ..Default::default()
                        }),
                        action: Some(route::Action::Route(RouteAction {
                            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
                                cname.clone(),
                            )),
                            timeout: Some(Duration::default()),
                            ..Default::default()
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            };
            hcm(
                &format!("inbound_0.0.0.0_{}", p.port),
                http_connection_manager::RouteSpecifier::RouteConfig(rc),
            )
        } else {
            tcp(&cname)
        };
        let pm = |t: &str| FilterChainMatch {
            destination_port: Some(UInt32Value {
                value: p.port.into(),
            }),
            transport_protocol: t.into(),
            ..Default::default()
        };
        let tls_chain = FilterChain {
            name: format!("{cname}mtls"),
            filter_chain_match: Some(pm("tls")),
            filters: vec![f.clone()],
            transport_socket: Some(mesh_downstream_tls()),
            ..Default::default()
        };
        let plain = |t: &str| FilterChain {
            name: format!("{cname}plaintext"),
            filter_chain_match: Some(pm(t)),
            filters: vec![f.clone()],
            ..Default::default()
        };
        match p.mode {
            Mtls::Strict => chains.push(tls_chain),
            Mtls::Disable => chains.push(plain("")),
            Mtls::Permissive => {
                chains.push(tls_chain);
                chains.push(plain("raw_buffer"));
            }
        }
    }
    let lf = |name: &str, config| ListenerFilter {
        name: name.into(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    };
    let l = Listener {
        name: "virtualInbound".into(),
        address: Some(addr("0.0.0.0", 15006)),
        listener_filters: vec![
            lf(
                "envoy.filters.listener.original_dst",
                any(&OriginalDst::default()),
            ),
            lf(
                "envoy.filters.listener.tls_inspector",
                any(&TlsInspector::default()),
            ),
        ],
        filter_chains: chains,
        default_filter_chain: Some(FilterChain {
            name: "InboundPassthroughCluster".into(),
            filters: vec![tcp("InboundPassthroughCluster")],
            ..Default::default()
        }),
        ..Default::default()
    };
    r.insert_message("virtualInbound", &l);
}

/// A gateway listener on `ip:port` terminating TLS with `secret`, routing
/// `host` (prefix `/v1`) to `cluster`, and prefix `/legacy` there too as
/// `/v1` with the authority `payments.internal`; anything else 404s.
pub fn gateway(
    r: &mut Resources,
    ip: &str,
    port: u16,
    host: &str,
    secret_name: &str,
    cluster: &str,
) {
    let route_name = format!("http.{port}");
    let dtls = tls_socket(&DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificate_sds_secret_configs: vec![sds(secret_name)],
            alpn_protocols: vec!["h2".into(), "http/1.1".into()],
            ..Default::default()
        }),
        ..Default::default()
    });
    let l = Listener {
        name: format!("0.0.0.0_{port}"),
        address: Some(addr(ip, port)),
        listener_filters: vec![ListenerFilter {
            name: "envoy.filters.listener.tls_inspector".into(),
            config_type: Some(listener_filter::ConfigType::TypedConfig(any(
                &TlsInspector::default(),
            ))),
            ..Default::default()
        }],
        filter_chains: vec![FilterChain {
            name: format!("{port}|{host}"),
            filter_chain_match: Some(FilterChainMatch {
                server_names: vec![host.into()],
                ..Default::default()
            }),
            filters: vec![hcm(
                &format!("gateway_{port}"),
                http_connection_manager::RouteSpecifier::Rds(Rds {
                    config_source: Some(ads()),
                    route_config_name: route_name.clone(),
                }),
            )],
            transport_socket: Some(dtls),
            ..Default::default()
        }],
        ..Default::default()
    };
    r.insert_message(&l.name.clone(), &l);
    let forward = RouteAction {
        cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster.into())),
        timeout: Some(Duration::default()),
        ..Default::default()
    };
    let prefix_route = |prefix: &str, action: RouteAction| Route {
        r#match: Some(RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::PathSeparatedPrefix(
                prefix.into(),
            )),
            ..Default::default()
        }),
        action: Some(route::Action::Route(action)),
        ..Default::default()
    };
    let rc = RouteConfiguration {
        name: route_name.clone(),
        virtual_hosts: vec![VirtualHost {
            name: format!("{host}:{port}"),
            domains: vec![host.into(), format!("{host}:{port}")],
            routes: vec![
                prefix_route("/v1", forward.clone()),
                prefix_route(
                    "/legacy",
                    RouteAction {
                        prefix_rewrite: "/v1".into(),
                        host_rewrite_specifier: Some(
                            route_action::HostRewriteSpecifier::HostRewriteLiteral(
                                "payments.internal".into(),
                            ),
                        ),
                        ..forward
                    },
                ),
            ],
            ..Default::default()
        }],
        ..Default::default()
    };
    r.insert_message(&route_name, &rc);
}

pub fn tls_secret(r: &mut Resources, name: &str, chain_pem: &str, key_pem: &str) {
    let s = Secret {
        name: name.into(),
        r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: Some(DataSource {
                specifier: Some(data_source::Specifier::InlineBytes(
                    chain_pem.as_bytes().to_vec(),
                )),
                ..Default::default()
            }),
            private_key: Some(DataSource {
                specifier: Some(data_source::Specifier::InlineBytes(
                    key_pem.as_bytes().to_vec(),
                )),
                ..Default::default()
            }),
            ..Default::default()
        })),
    };
    r.insert_message(name, &s);
}
