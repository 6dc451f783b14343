//! [`Snapshot`]: the compiled form of a [`Resources`] set, built in one
//! pure step that either succeeds entirely or names the first field it
//! cannot use.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster as PbCluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener as PbListener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use rustls::ServerConfig;

use super::error::{ConfigError, Ctx};
use super::model::{Cluster, DownstreamTls, Endpoint, Listener, RouteTable, SecretConfig};
use super::resources::{Resources, type_url};
use super::{cluster, listener, route, secret};

/// Everything the proxy routes with, immutable once built.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub listeners: BTreeMap<String, Arc<Listener>>,
    pub routes: HashMap<String, Arc<RouteTable>>,
    pub clusters: HashMap<String, Arc<Cluster>>,
    pub secrets: HashMap<String, SecretConfig>,
    /// Gateway TLS termination configs, by the chain's secret names; a
    /// chain whose secrets have not all arrived has none (handshakes fail).
    pub terminations: HashMap<Vec<String>, Arc<ServerConfig>>,
    /// The resources this was built from (for `/config_dump`).
    pub resources: Resources,
}

fn check_name(ctx: &Ctx<'_>, field: &str, inner: &str) -> Result<(), ConfigError> {
    if inner == ctx.name {
        Ok(())
    } else {
        Err(ctx.err(
            field,
            format!("{inner:?} differs from the resource name {:?}", ctx.name),
        ))
    }
}

/// Every resource of `type_url`, decoded as `M`, with its context: the
/// `Any`'s type must be `type_url` and the message's own name (`field`,
/// read by `name_of`) must equal the name it is listed under.
fn decoded<'a, M: prost::Message + Default>(
    resources: &'a Resources,
    type_url: &str,
    kind: &'static str,
    field: &str,
    name_of: fn(&M) -> &String,
) -> Result<Vec<(Ctx<'a>, M)>, ConfigError> {
    resources
        .of_type(type_url)
        .map(|(name, any)| {
            let ctx = Ctx { kind, name };
            check_type(&ctx, type_url, &any.type_url)?;
            let message: M = ctx.decode(&any.value)?;
            check_name(&ctx, field, name_of(&message))?;
            Ok((ctx, message))
        })
        .collect()
}

fn check_type(ctx: &Ctx<'_>, want: &str, got: &str) -> Result<(), ConfigError> {
    if want == got {
        Ok(())
    } else {
        Err(ConfigError::UnsupportedType {
            type_url: got.to_owned(),
            name: ctx.name.to_owned(),
        })
    }
}

impl Snapshot {
    /// Validates and compiles `resources`.
    pub fn build(resources: &Resources) -> Result<Snapshot, ConfigError> {
        for t in resources.type_urls() {
            if !type_url::ALL.contains(&t) {
                let name = resources.names(t).into_iter().next().unwrap_or_default();
                return Err(ConfigError::UnsupportedType {
                    type_url: t.to_owned(),
                    name,
                });
            }
        }
        let mut endpoints: HashMap<String, Arc<[Endpoint]>> = HashMap::new();
        for (ctx, cla) in decoded::<ClusterLoadAssignment>(
            resources,
            type_url::ENDPOINT,
            "ClusterLoadAssignment",
            "cluster_name",
            |m| &m.cluster_name,
        )? {
            let name = ctx.name;
            endpoints.insert(name.to_owned(), cluster::endpoints(&ctx, "", &cla)?);
        }
        let mut clusters = HashMap::new();
        for (ctx, c) in
            decoded::<PbCluster>(resources, type_url::CLUSTER, "Cluster", "name", |m| &m.name)?
        {
            let name = ctx.name;
            let compiled = cluster::compile(&ctx, &c, |svc| endpoints.get(svc).cloned())?;
            clusters.insert(name.to_owned(), Arc::new(compiled));
        }
        let mut routes = HashMap::new();
        for (ctx, rc) in decoded::<RouteConfiguration>(
            resources,
            type_url::ROUTE,
            "RouteConfiguration",
            "name",
            |m| &m.name,
        )? {
            let name = ctx.name;
            routes.insert(name.to_owned(), Arc::new(route::compile(&ctx, "", &rc)?));
        }
        let mut secrets = HashMap::new();
        for (ctx, s) in
            decoded::<Secret>(resources, type_url::SECRET, "Secret", "name", |m| &m.name)?
        {
            let name = ctx.name;
            secrets.insert(name.to_owned(), secret::compile(&ctx, &s)?);
        }
        let mut listeners = BTreeMap::new();
        let mut terminations = HashMap::new();
        for (ctx, l) in
            decoded::<PbListener>(resources, type_url::LISTENER, "Listener", "name", |m| {
                &m.name
            })?
        {
            let name = ctx.name;
            let compiled = listener::compile(&ctx, &l)?;
            for (i, chain) in compiled.chains.iter().enumerate() {
                let Some(DownstreamTls::Terminate { secrets: names }) = &chain.tls else {
                    continue;
                };
                if terminations.contains_key(names) {
                    continue;
                }
                let certs: Option<Vec<_>> = names
                    .iter()
                    .map(|n| match secrets.get(n) {
                        Some(SecretConfig::Certificate(c)) => Some(c.clone()),
                        _ => None,
                    })
                    .collect();
                if let Some(certs) = certs {
                    let config = crate::tls::terminate_config(certs).map_err(|e| {
                        ctx.err(
                            format!("filter_chains[{i}].transport_socket"),
                            e.to_string(),
                        )
                    })?;
                    terminations.insert(names.clone(), config);
                }
            }
            listeners.insert(name.to_owned(), Arc::new(compiled));
        }
        Ok(Snapshot {
            listeners,
            routes,
            clusters,
            secrets,
            terminations,
            resources: resources.clone(),
        })
    }

    /// Names of resources of `type_url` this snapshot refers to but that
    /// are other resources' business to deliver: route configurations
    /// named by listeners (RDS), assignments named by EDS clusters,
    /// secrets named by TLS contexts (SDS). An xDS client subscribes to
    /// these; Listener and Cluster are wildcard.
    pub fn referenced_names(&self, type_url: &str) -> std::collections::BTreeSet<String> {
        use super::model::{Discovery, NetworkFilter, RouteSource};
        let chains = || {
            self.listeners
                .values()
                .flat_map(|l| l.chains.iter().chain(l.default_chain.as_ref()))
        };
        match type_url {
            super::type_url::ROUTE => chains()
                .filter_map(|c| match &c.filter {
                    NetworkFilter::Http {
                        routes: RouteSource::Rds(n),
                        ..
                    } => Some(n.clone()),
                    _ => None,
                })
                .collect(),
            super::type_url::ENDPOINT => self
                .clusters
                .values()
                .filter_map(|c| match &c.discovery {
                    Discovery::Eds { service_name } => Some(service_name.clone()),
                    _ => None,
                })
                .collect(),
            super::type_url::SECRET => {
                let mut names: std::collections::BTreeSet<String> = chains()
                    .filter_map(|c| match &c.tls {
                        Some(DownstreamTls::Terminate { secrets }) => Some(secrets.clone()),
                        _ => None,
                    })
                    .flatten()
                    .collect();
                // The trust bundle; the workload certificate comes from the CA.
                names.insert(super::ROOT_CA.to_owned());
                names
            }
            _ => Default::default(),
        }
    }

    /// The listener bound on `port`, if any.
    pub fn listener_on_port(&self, port: u16) -> Option<&Arc<Listener>> {
        self.listeners.values().find(|l| l.address.port() == port)
    }

    /// The mesh trust bundle from the `ROOTCA` secret, when present.
    pub fn trust_bundle_pem(&self) -> Option<&[u8]> {
        match self.secrets.get(super::ROOT_CA) {
            Some(SecretConfig::ValidationContext { trusted_ca_pem })
                if !trusted_ca_pem.is_empty() =>
            {
                Some(trusted_ca_pem)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::cluster::v3::cluster;
    use envoy_types::pb::envoy::config::route::v3::{
        Route, RouteAction, RouteMatch, VirtualHost, route, route_action, route_match,
    };
    use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatcher;

    use super::*;
    use crate::config::Any;

    fn route_config(name: &str, path: route_match::PathSpecifier) -> RouteConfiguration {
        RouteConfiguration {
            name: name.into(),
            virtual_hosts: vec![VirtualHost {
                name: "vh".into(),
                domains: vec!["*".into()],
                routes: vec![Route {
                    r#match: Some(RouteMatch {
                        path_specifier: Some(path),
                        ..Default::default()
                    }),
                    action: Some(route::Action::Route(RouteAction {
                        cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
                            "c".into(),
                        )),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn errors_name_type_resource_and_field() {
        let cases: Vec<(Resources, &str)> = vec![
            {
                let mut r = Resources::default();
                r.insert_message(
                    "r",
                    &route_config(
                        "r",
                        route_match::PathSpecifier::SafeRegex(RegexMatcher {
                            regex: "(".into(),
                            ..Default::default()
                        }),
                    ),
                );
                (
                    r,
                    "RouteConfiguration \"r\": virtual_hosts[0].routes[0].match.safe_regex: invalid regex",
                )
            },
            {
                let mut r = Resources::default();
                r.insert_message(
                    "r",
                    &route_config("other", route_match::PathSpecifier::Prefix("/".into())),
                );
                (r, "RouteConfiguration \"r\": name: \"other\" differs")
            },
            {
                let mut rc = route_config("r", route_match::PathSpecifier::Prefix("/".into()));
                if let Some(route::Action::Route(ra)) = &mut rc.virtual_hosts[0].routes[0].action {
                    ra.host_rewrite_specifier = Some(
                        route_action::HostRewriteSpecifier::HostRewriteLiteral("a b".into()),
                    );
                }
                let mut r = Resources::default();
                r.insert_message("r", &rc);
                (
                    r,
                    "RouteConfiguration \"r\": virtual_hosts[0].routes[0].route.host_rewrite_literal: \"a b\" is not a host[:port]",
                )
            },
            {
                let mut r = Resources::default();
                r.insert_message(
                    "c",
                    &PbCluster {
                        name: "c".into(),
                        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
                            cluster::DiscoveryType::StrictDns as i32,
                        )),
                        ..Default::default()
                    },
                );
                (r, "Cluster \"c\": cluster_discovery_type: only EDS")
            },
            {
                let mut r = Resources::default();
                r.apply(
                    "type.googleapis.com/envoy.config.rbac.v3.RBAC",
                    vec![(
                        "x".into(),
                        Any {
                            type_url: "type.googleapis.com/envoy.config.rbac.v3.RBAC".into(),
                            value: vec![],
                        },
                    )],
                    &[],
                );
                (r, "resource \"x\" has unsupported type")
            },
            {
                let mut r = Resources::default();
                r.apply(
                    type_url::CLUSTER,
                    vec![(
                        "c".into(),
                        Any {
                            type_url: type_url::CLUSTER.into(),
                            value: vec![0xff, 0xff],
                        },
                    )],
                    &[],
                );
                (r, "Cluster \"c\": the resource does not decode")
            },
        ];
        for (resources, want) in cases {
            let err = Snapshot::build(&resources).unwrap_err().to_string();
            assert!(err.starts_with(want), "{err:?} should start with {want:?}");
        }
    }

    #[test]
    fn eds_clusters_take_endpoints_from_their_assignment() {
        use envoy_types::pb::envoy::config::core::v3::{
            Address, SocketAddress, address, socket_address,
        };
        use envoy_types::pb::envoy::config::endpoint::v3::{
            Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
        };
        let mut r = Resources::default();
        r.insert_message(
            "c",
            &PbCluster {
                name: "c".into(),
                cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
                    cluster::DiscoveryType::Eds as i32,
                )),
                eds_cluster_config: Some(cluster::EdsClusterConfig {
                    eds_config: None,
                    service_name: "svc".into(),
                }),
                ..Default::default()
            },
        );
        let built = Snapshot::build(&r).unwrap();
        assert!(
            built.clusters["c"].endpoints.is_empty(),
            "warming: no endpoints yet"
        );
        r.insert_message(
            "svc",
            &ClusterLoadAssignment {
                cluster_name: "svc".into(),
                endpoints: vec![LocalityLbEndpoints {
                    lb_endpoints: vec![LbEndpoint {
                        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                            address: Some(Address {
                                address: Some(address::Address::SocketAddress(SocketAddress {
                                    address: "10.1.2.3".into(),
                                    port_specifier: Some(socket_address::PortSpecifier::PortValue(
                                        80,
                                    )),
                                    ..Default::default()
                                })),
                            }),
                            ..Default::default()
                        })),
                        ..Default::default()
                    }],
                    priority: 1,
                    ..Default::default()
                }],
                ..Default::default()
            },
        );
        let built = Snapshot::build(&r).unwrap();
        let eps = &built.clusters["c"].endpoints;
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0].address, "10.1.2.3:80".parse().unwrap());
        assert_eq!(eps[0].priority, 1);
    }
}
