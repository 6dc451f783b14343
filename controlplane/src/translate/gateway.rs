//! Gateway proxies: listeners, TLS termination and routes from Gateway API
//! `Gateway` + `HTTPRoute` and from Istio `Gateway` + the VirtualServices
//! bound to it. A gateway proxy receives only its own listeners, the routes
//! attached to them, the clusters those routes use, and its certificates.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::listener::v3::{
    FilterChain, FilterChainMatch, Listener, ListenerFilter, listener_filter,
};
use envoy_types::pb::envoy::config::route::v3::{Route, RouteConfiguration, VirtualHost};
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    Secret, TlsCertificate, secret,
};
use envoy_types::pb::google::protobuf::BoolValue;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use weft_api::gateway::gateways::{
    Gateway, GatewayListeners, GatewayListenersAllowedRoutesNamespacesFrom, GatewayListenersTlsMode,
};
use weft_api::gateway::httproutes::{HttpRoute, HttpRouteRulesMatches};
use weft_api::istio::networking::tls::ServerTlsMode;

use super::clusters::{self, Upstream};
use super::envoy;
use super::model::{Mesh, host_matches, matches_labels};
use super::routes::{self, Backend};
use crate::identity::ProxyIdentity;
use crate::index::{ObjectKey, Snapshot};
use crate::resources::{Resource, Resources, type_url};

/// Label on a gateway's pods naming the Gateway API `Gateway` they serve
/// (in the pods' namespace); the gateway controller sets it.
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// One filter chain of a gateway port.
#[derive(Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Chain {
    /// SNI names (empty: any).
    server_names: Vec<String>,
    /// SDS secret names of the certificates; empty for plain HTTP.
    secrets: Vec<String>,
}

/// What one gateway port serves.
#[derive(Default)]
struct PortPlan {
    chains: BTreeSet<Chain>,
    /// Gateway API routes per hostname, ordered by precedence later.
    api_routes: BTreeMap<String, Vec<(HttpRouteRulesMatches, Route)>>,
    /// Istio VirtualService routes per hostname, in rule order.
    istio_routes: BTreeMap<String, Vec<Route>>,
}

pub fn translate(mesh: &Mesh<'_>, proxy: &ProxyIdentity, out: &mut Resources) {
    let mut plan: BTreeMap<u32, PortPlan> = BTreeMap::new();
    let mut backends = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    gateway_api(mesh, proxy, &mut plan, &mut backends, &mut secrets);
    istio(mesh, proxy, &mut plan, &mut backends, &mut secrets);

    for (port, p) in plan {
        emit_port(out, port, p);
    }
    for b in backends {
        if let Some(svc) = mesh.services.get(&b.fqdn)
            && let Some(port) = svc.port(b.port)
        {
            clusters::add_service_port(out, mesh, svc, port, proxy.namespace(), Upstream::MeshTls);
        }
    }
    for key in secrets {
        let Some(cred) = mesh.snapshot.secrets.get(&key) else {
            continue;
        };
        let name = key.to_string();
        let s = Secret {
            name: name.clone(),
            r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
                certificate_chain: Some(envoy::inline_bytes(&cred.cert_chain)),
                private_key: Some(envoy::inline_bytes(&cred.private_key)),
                ..Default::default()
            })),
        };
        out.insert(Resource::from_message(&name, type_url::SECRET, &s));
    }
}

fn emit_port(out: &mut Resources, port: u32, plan: PortPlan) {
    let route_name = format!("http.{port}");
    let tls = plan.chains.iter().any(|c| !c.secrets.is_empty());
    let chains = plan
        .chains
        .iter()
        .map(|c| FilterChain {
            name: if c.server_names.is_empty() {
                format!("{port}")
            } else {
                format!("{port}|{}", c.server_names.join(","))
            },
            filter_chain_match: (!c.server_names.is_empty()).then(|| FilterChainMatch {
                server_names: c.server_names.clone(),
                ..Default::default()
            }),
            filters: vec![envoy::hcm_filter(&envoy::hcm_rds(
                &format!("gateway_{port}"),
                &route_name,
            ))],
            transport_socket: (!c.secrets.is_empty())
                .then(|| envoy::gateway_downstream_tls(&c.secrets)),
            ..Default::default()
        })
        .collect();
    let listener = Listener {
        name: format!("0.0.0.0_{port}"),
        address: Some(envoy::socket_address("0.0.0.0", port)),
        listener_filters: if tls {
            vec![ListenerFilter {
                name: "envoy.filters.listener.tls_inspector".into(),
                config_type: Some(listener_filter::ConfigType::TypedConfig(envoy::any(
                    &TlsInspector::default(),
                ))),
                ..Default::default()
            }]
        } else {
            Vec::new()
        },
        filter_chains: chains,
        ..Default::default()
    };
    out.insert(Resource::from_message(
        &listener.name,
        type_url::LISTENER,
        &listener,
    ));

    let mut hosts: BTreeMap<String, Vec<Route>> = BTreeMap::new();
    for (host, mut rs) in plan.api_routes {
        routes::sort_by_precedence(&mut rs);
        hosts
            .entry(host)
            .or_default()
            .extend(rs.into_iter().map(|(_, r)| r));
    }
    for (host, rs) in plan.istio_routes {
        hosts.entry(host).or_default().extend(rs);
    }
    let rc = RouteConfiguration {
        name: route_name.clone(),
        virtual_hosts: hosts
            .into_iter()
            .map(|(host, routes)| VirtualHost {
                name: format!("{host}:{port}"),
                domains: if host == "*" {
                    vec!["*".into()]
                } else {
                    vec![host.clone(), format!("{host}:{port}")]
                },
                routes,
                ..Default::default()
            })
            .collect(),
        validate_clusters: Some(BoolValue { value: false }),
        ..Default::default()
    };
    out.insert(Resource::from_message(&route_name, type_url::ROUTE, &rc));
}

/// The hostnames a route serves on a listener (Gateway API intersection);
/// empty when they do not overlap, `*` when neither restricts.
fn intersect(listener: Option<&str>, route: &[String]) -> Vec<String> {
    match (listener, route.is_empty()) {
        (None, true) => vec!["*".into()],
        (None, false) => route.to_vec(),
        (Some(l), true) => vec![l.to_owned()],
        (Some(l), false) => route
            .iter()
            .filter_map(|h| {
                if h == l || (l.starts_with("*.") && host_matches(l, h)) {
                    Some(h.clone())
                } else if h.starts_with("*.") && host_matches(h, l) {
                    Some(l.to_owned())
                } else {
                    None
                }
            })
            .collect(),
    }
}

/// Whether a listener admits routes from `route_ns`.
fn namespace_allowed(
    snapshot: &Snapshot,
    gw_ns: &str,
    listener: &GatewayListeners,
    route_ns: &str,
) -> bool {
    let ns = listener
        .allowed_routes
        .as_ref()
        .and_then(|a| a.namespaces.as_ref());
    match ns.and_then(|n| n.from.as_ref()) {
        Some(GatewayListenersAllowedRoutesNamespacesFrom::All) => true,
        Some(GatewayListenersAllowedRoutesNamespacesFrom::Selector) => {
            let labels = snapshot
                .namespaces
                .get(&ObjectKey::new("", route_ns))
                .and_then(|n| n.metadata.labels.clone())
                .unwrap_or_default();
            let want = ns
                .and_then(|n| n.selector.as_ref())
                .and_then(|s| s.match_labels.clone())
                .unwrap_or_default();
            matches_labels(&want, &labels)
        }
        Some(GatewayListenersAllowedRoutesNamespacesFrom::Same) | None => route_ns == gw_ns,
    }
}

fn kind_allowed(listener: &GatewayListeners) -> bool {
    match listener
        .allowed_routes
        .as_ref()
        .and_then(|a| a.kinds.as_ref())
    {
        Some(kinds) if !kinds.is_empty() => kinds.iter().any(|k| {
            k.kind == "HTTPRoute"
                && k.group.as_deref().unwrap_or("gateway.networking.k8s.io")
                    == "gateway.networking.k8s.io"
        }),
        _ => true,
    }
}

/// Whether an HTTPRoute attaches to this listener of `gw`.
fn attaches(
    route_key: &ObjectKey,
    route: &HttpRoute,
    gw_key: &ObjectKey,
    listener: &GatewayListeners,
) -> bool {
    route.spec.parent_refs.iter().flatten().any(|p| {
        p.group.as_deref().unwrap_or("gateway.networking.k8s.io") == "gateway.networking.k8s.io"
            && p.kind.as_deref().unwrap_or("Gateway") == "Gateway"
            && p.name == gw_key.name
            && p.namespace.as_deref().unwrap_or(&route_key.namespace) == gw_key.namespace
            && p.section_name.as_deref().is_none_or(|s| s == listener.name)
            && p.port.is_none_or(|port| port == listener.port)
    })
}

fn gateway_api(
    mesh: &Mesh<'_>,
    proxy: &ProxyIdentity,
    plan: &mut BTreeMap<u32, PortPlan>,
    backends: &mut BTreeSet<Backend>,
    secrets: &mut BTreeSet<ObjectKey>,
) {
    let Some(gw_name) = proxy.labels.get(GATEWAY_NAME_LABEL) else {
        return;
    };
    let gw_key = ObjectKey::new(proxy.namespace(), gw_name);
    let Some(gw) = mesh.snapshot.gateways.get(&gw_key) else {
        return;
    };
    if !mesh
        .settings
        .gateway_class_names
        .contains(&gw.spec.gateway_class_name)
    {
        return;
    }
    for listener in &gw.spec.listeners {
        let Some(chain) = listener_chain(&gw_key, gw, listener, secrets) else {
            continue;
        };
        let Ok(port) = u32::try_from(listener.port) else {
            continue;
        };
        let p = plan.entry(port).or_default();
        p.chains.insert(chain);
        if !kind_allowed(listener) {
            continue;
        }
        for (rk, route) in mesh.snapshot.http_routes.iter() {
            if !attaches(rk, route, &gw_key, listener)
                || !namespace_allowed(mesh.snapshot, &gw_key.namespace, listener, &rk.namespace)
            {
                continue;
            }
            let hosts = intersect(
                listener.hostname.as_deref(),
                route.spec.hostnames.as_deref().unwrap_or_default(),
            );
            if hosts.is_empty() {
                continue;
            }
            let rules = route.spec.rules.as_deref().unwrap_or_default();
            let rs = routes::http_route_routes(mesh, rk, rules, backends);
            for h in hosts {
                p.api_routes
                    .entry(h)
                    .or_default()
                    .extend(rs.iter().cloned());
            }
        }
    }
}

/// The filter chain of an HTTP or HTTPS (Terminate) listener; other
/// protocols are not served yet.
fn listener_chain(
    gw_key: &ObjectKey,
    _gw: &Gateway,
    listener: &GatewayListeners,
    secrets: &mut BTreeSet<ObjectKey>,
) -> Option<Chain> {
    match listener.protocol.as_str() {
        "HTTP" => Some(Chain::default()),
        "HTTPS" => {
            let tls = listener.tls.as_ref()?;
            if tls
                .mode
                .as_ref()
                .is_some_and(|m| *m != GatewayListenersTlsMode::Terminate)
            {
                return None;
            }
            let mut names = Vec::new();
            for r in tls.certificate_refs.iter().flatten() {
                if r.kind.as_deref().unwrap_or("Secret") != "Secret"
                    || !r.group.as_deref().unwrap_or("").is_empty()
                {
                    continue;
                }
                let key = ObjectKey::new(
                    r.namespace
                        .clone()
                        .unwrap_or_else(|| gw_key.namespace.clone()),
                    &r.name,
                );
                names.push(key.to_string());
                secrets.insert(key);
            }
            if names.is_empty() {
                return None;
            }
            Some(Chain {
                server_names: listener.hostname.iter().cloned().collect(),
                secrets: names,
            })
        }
        _ => None,
    }
}

fn istio(
    mesh: &Mesh<'_>,
    proxy: &ProxyIdentity,
    plan: &mut BTreeMap<u32, PortPlan>,
    backends: &mut BTreeSet<Backend>,
    secrets: &mut BTreeSet<ObjectKey>,
) {
    for (gk, gw) in mesh.snapshot.istio_gateways.iter() {
        if gw.spec.selector.is_empty() || !matches_labels(&gw.spec.selector, &proxy.labels) {
            continue;
        }
        for server in &gw.spec.servers {
            let protocol = server.port.protocol.to_ascii_uppercase();
            let chain = match protocol.as_str() {
                "HTTP" | "HTTP2" | "GRPC" => Chain::default(),
                "HTTPS" => {
                    let Some(tls) = &server.tls else { continue };
                    if tls.mode.is_some_and(|m| m != ServerTlsMode::Simple) {
                        continue;
                    }
                    let keys: Vec<ObjectKey> = tls
                        .credential_name
                        .iter()
                        .chain(&tls.credential_names)
                        .map(|c| ObjectKey::new(&gk.namespace, c))
                        .collect();
                    if keys.is_empty() {
                        continue;
                    }
                    let names = keys.iter().map(ToString::to_string).collect();
                    secrets.extend(keys);
                    let sni: Vec<String> = server
                        .hosts
                        .iter()
                        .map(|h| h.split_once('/').map_or(h.as_str(), |(_, h)| h).to_owned())
                        .filter(|h| h != "*")
                        .collect();
                    Chain {
                        server_names: sni,
                        secrets: names,
                    }
                }
                _ => continue,
            };
            let p = plan
                .entry(listen_port(mesh, proxy, server.port.number))
                .or_default();
            p.chains.insert(chain);
            for (vk, vs) in mesh.snapshot.virtual_services.iter() {
                let bound = vs.spec.gateways.iter().any(|g| match g.split_once('/') {
                    Some((ns, name)) => ns == gk.namespace && name == gk.name,
                    None => g == &gk.name && vk.namespace == gk.namespace,
                });
                if !bound {
                    continue;
                }
                let hosts: Vec<&String> = vs
                    .spec
                    .hosts
                    .iter()
                    .filter(|h| server_admits(&server.hosts, &gk.namespace, &vk.namespace, h))
                    .collect();
                if hosts.is_empty() {
                    continue;
                }
                let rs = routes::virtual_service_routes(
                    mesh,
                    &vs.spec.http,
                    &vk.namespace,
                    None,
                    backends,
                );
                for h in hosts {
                    p.istio_routes
                        .entry(h.clone())
                        .or_default()
                        .extend(rs.iter().cloned());
                }
            }
        }
    }
}

/// The port a gateway proxy listens on for an Istio `Gateway` server
/// port: as in Istio, a server port that is a port of a Service selecting
/// the gateway's pods is served on that port's numeric `targetPort` (an
/// ingress Service 80 → 8080 makes the proxy listen on 8080); any other
/// number is listened on as is.
fn listen_port(mesh: &Mesh<'_>, proxy: &ProxyIdentity, number: u32) -> u32 {
    Snapshot::in_namespace(&mesh.snapshot.services, proxy.namespace())
        .filter_map(|(_, svc)| svc.spec.as_ref())
        .filter(|spec| {
            spec.selector
                .as_ref()
                .is_some_and(|sel| !sel.is_empty() && matches_labels(sel, &proxy.labels))
        })
        .flat_map(|spec| spec.ports.iter().flatten())
        .filter(|p| u32::try_from(p.port).ok() == Some(number))
        .find_map(|p| match &p.target_port {
            Some(IntOrString::Int(t)) => u32::try_from(*t).ok().filter(|t| *t > 0),
            _ => None,
        })
        .unwrap_or(number)
}

/// Whether a server's hosts (`[ns/]host`, ns `*` or `.` or a name) admit a
/// VirtualService host from `vs_ns`.
fn server_admits(server_hosts: &[String], gw_ns: &str, vs_ns: &str, host: &str) -> bool {
    server_hosts.iter().any(|sh| {
        let (ns, pattern) = sh.split_once('/').unwrap_or(("*", sh.as_str()));
        let ns_ok = match ns {
            "*" => true,
            "." => vs_ns == gw_ns,
            other => other == vs_ns,
        };
        ns_ok
            && (host_matches(pattern, host)
                || (host.starts_with("*.") && host_matches(host, pattern)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_intersect_like_the_gateway_api() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(intersect(None, &[]), s(&["*"]));
        assert_eq!(intersect(None, &s(&["a.com"])), s(&["a.com"]));
        assert_eq!(intersect(Some("a.com"), &[]), s(&["a.com"]));
        assert_eq!(
            intersect(Some("*.a.com"), &s(&["x.a.com", "b.com"])),
            s(&["x.a.com"])
        );
        assert_eq!(
            intersect(Some("x.a.com"), &s(&["*.a.com"])),
            s(&["x.a.com"])
        );
        assert!(intersect(Some("a.com"), &s(&["b.com"])).is_empty());
    }

    /// An ingress gateway pod behind a Service 80 → 8080 (what the
    /// operator renders), an Istio Gateway on port 80 selecting it, and a
    /// VirtualService bound to it: the proxy listens on 8080 and routes
    /// there; a server port no Service maps is listened on as is.
    #[test]
    fn istio_server_port_is_served_on_the_gateway_service_target_port() {
        use crate::identity::{ProxyKind, SpiffeId};
        use crate::index::Index;
        use serde_json::json;

        fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
            serde_json::from_value(v).expect("test object parses")
        }
        let mut index = Index::new();
        index.apply::<k8s_openapi::api::core::v1::Pod>(obj(json!({
            "metadata": {"namespace": "weft-system", "name": "ingress-1",
                         "labels": {"weft.dev/gateway": "ingress", "istio": "ingressgateway"}},
            "spec": {"serviceAccountName": "ingress", "containers": []},
            "status": {"podIP": "10.9.0.1"}})));
        index.apply::<k8s_openapi::api::core::v1::Service>(obj(json!({
            "metadata": {"namespace": "weft-system", "name": "ingress"},
            "spec": {"selector": {"weft.dev/gateway": "ingress"},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})));
        index.apply::<weft_api::istio::networking::Gateway>(obj(json!({
            "metadata": {"namespace": "weft-system", "name": "public"},
            "spec": {"selector": {"istio": "ingressgateway"},
                     "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"},
                                  "hosts": ["*"]},
                                 {"port": {"number": 9080, "name": "http-alt", "protocol": "HTTP"},
                                  "hosts": ["*"]}]}})));
        index.apply::<weft_api::istio::networking::VirtualService>(obj(json!({
            "metadata": {"namespace": "shop", "name": "web"},
            "spec": {"hosts": ["*"], "gateways": ["weft-system/public"],
                     "http": [{"route": [{"destination": {"host": "web.shop.svc.cluster.local"}}]}]}})));
        let snapshot = index.snapshot();
        let proxy = snapshot.proxy_identity(
            &SpiffeId::new("cluster.local", "weft-system", "ingress"),
            "router~10.9.0.1~ingress-1.weft-system~weft-system.svc.cluster.local",
            Some(ProxyKind::Gateway),
            "default",
        );
        let out = crate::translate::for_proxy(&snapshot, &proxy, &Default::default());
        let listeners: Vec<&str> = out
            .of_type(type_url::LISTENER)
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(listeners, ["0.0.0.0_8080", "0.0.0.0_9080"]);
        assert!(out.get(type_url::ROUTE, "http.8080").is_some());
    }

    #[test]
    fn istio_server_hosts_admit_virtual_service_hosts() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(server_admits(&s(&["*"]), "gw", "app", "x.com"));
        assert!(server_admits(
            &s(&["app/*.corp.com"]),
            "gw",
            "app",
            "api.corp.com"
        ));
        assert!(!server_admits(
            &s(&["other/*.corp.com"]),
            "gw",
            "app",
            "api.corp.com"
        ));
        assert!(server_admits(&s(&["./x.com"]), "gw", "gw", "x.com"));
        assert!(!server_admits(&s(&["./x.com"]), "gw", "app", "x.com"));
    }
}
