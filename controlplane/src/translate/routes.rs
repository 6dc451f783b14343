//! HTTP routes: Istio VirtualService `http` rules and Gateway API HTTPRoute
//! rules become Envoy routes (path and header matches, weighted clusters,
//! timeouts, retries); virtual host domains list every name of a service.

use std::collections::BTreeSet;

use envoy_types::pb::envoy::config::core::v3::DataSource;
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, HeaderMatcher, QueryParameterMatcher, RedirectAction, RetryPolicy, Route,
    RouteAction, RouteMatch, WeightedCluster, header_matcher, query_parameter_matcher,
    redirect_action, route, route_action, route_match, weighted_cluster,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatcher, StringMatcher, string_matcher};
use envoy_types::pb::google::protobuf::{BoolValue, UInt32Value};
use weft_api::gateway::httproutes::{
    HttpRouteRules, HttpRouteRulesMatches, HttpRouteRulesMatchesHeadersType,
    HttpRouteRulesMatchesPathType, HttpRouteRulesMatchesQueryParamsType,
};
use weft_api::istio::common::StringMatch;
use weft_api::istio::networking::headers::KeyMatch;
use weft_api::istio::networking::virtual_service::{HttpMatchRequest, HttpRoute as VsHttpRoute};

use super::clusters::outbound_name;
use super::envoy;
use super::model::{Mesh, ServiceView};
use crate::index::{ObjectKey, Snapshot};

/// A service port that routes send traffic to (its clusters are needed).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Backend {
    pub fqdn: String,
    pub port: u32,
}

/// Every name a service answers to, for a virtual host: FQDN, `name.ns.svc`,
/// `name.ns`, the short name when the viewer shares the namespace, and the
/// ClusterIP; each with and without `:port`.
pub fn domains(svc: &ServiceView, port: u32, viewer: &str) -> Vec<String> {
    let name = &svc.key.name;
    let ns = &svc.key.namespace;
    let mut hosts = vec![
        svc.fqdn.clone(),
        format!("{name}.{ns}.svc"),
        format!("{name}.{ns}"),
    ];
    if ns == viewer {
        hosts.push(name.clone());
    }
    hosts.extend(svc.cluster_ip.clone());
    hosts
        .into_iter()
        .flat_map(|h| [format!("{h}:{port}"), h])
        .collect()
}

/// The route used when no rule routes a service: everything to its cluster.
pub fn default_route(cluster: &str) -> Route {
    Route {
        r#match: Some(RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
            ..Default::default()
        }),
        action: Some(route::Action::Route(route_to(vec![(
            cluster.to_owned(),
            1,
        )]))),
        ..Default::default()
    }
}

/// A route action to one cluster or weighted clusters; the route timeout is
/// off (streams and long polls are the application's business) unless set.
fn route_to(mut clusters: Vec<(String, u32)>) -> RouteAction {
    let specifier = if clusters.len() == 1 {
        route_action::ClusterSpecifier::Cluster(clusters.remove(0).0)
    } else {
        route_action::ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: clusters
                .into_iter()
                .map(|(name, weight)| weighted_cluster::ClusterWeight {
                    name,
                    weight: Some(UInt32Value { value: weight }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    };
    RouteAction {
        cluster_specifier: Some(specifier),
        timeout: Some(envoy::secs(0)),
        ..Default::default()
    }
}

fn string_matcher(m: &StringMatch, ignore_case: bool) -> StringMatcher {
    let pattern = match m {
        StringMatch::Exact(s) => string_matcher::MatchPattern::Exact(s.clone()),
        StringMatch::Prefix(s) => string_matcher::MatchPattern::Prefix(s.clone()),
        StringMatch::Regex(s) => string_matcher::MatchPattern::SafeRegex(regex(s)),
    };
    StringMatcher {
        match_pattern: Some(pattern),
        ignore_case,
    }
}

fn regex(s: &str) -> RegexMatcher {
    RegexMatcher {
        regex: s.to_owned(),
        ..Default::default()
    }
}

fn header(name: &str, m: &KeyMatch) -> HeaderMatcher {
    let spec = match &m.0 {
        Some(m) => header_matcher::HeaderMatchSpecifier::StringMatch(string_matcher(m, false)),
        None => header_matcher::HeaderMatchSpecifier::PresentMatch(true),
    };
    HeaderMatcher {
        name: name.to_owned(),
        header_match_specifier: Some(spec),
        ..Default::default()
    }
}

fn vs_match(m: &HttpMatchRequest) -> RouteMatch {
    let path = match &m.uri {
        None => route_match::PathSpecifier::Prefix("/".into()),
        Some(StringMatch::Exact(s)) => route_match::PathSpecifier::Path(s.clone()),
        Some(StringMatch::Prefix(s)) => route_match::PathSpecifier::Prefix(s.clone()),
        Some(StringMatch::Regex(s)) => route_match::PathSpecifier::SafeRegex(regex(s)),
    };
    let mut headers: Vec<HeaderMatcher> = m.headers.iter().map(|(k, v)| header(k, v)).collect();
    for (name, value) in [
        (":method", &m.method),
        (":authority", &m.authority),
        (":scheme", &m.scheme),
    ] {
        if let Some(v) = value {
            headers.push(header(name, &KeyMatch(Some(v.clone()))));
        }
    }
    headers.extend(m.without_headers.iter().map(|(k, v)| HeaderMatcher {
        invert_match: true,
        ..header(k, v)
    }));
    RouteMatch {
        path_specifier: Some(path),
        case_sensitive: m
            .ignore_uri_case
            .filter(|i| *i)
            .map(|_| BoolValue { value: false }),
        headers,
        query_parameters: m
            .query_params
            .iter()
            .map(|(k, v)| QueryParameterMatcher {
                name: k.clone(),
                query_parameter_match_specifier: Some(match &v.0 {
                    Some(m) => query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(
                        string_matcher(m, false),
                    ),
                    None => {
                        query_parameter_matcher::QueryParameterMatchSpecifier::PresentMatch(true)
                    }
                }),
            })
            .collect(),
        ..Default::default()
    }
}

/// Resolves a destination host to an FQDN: a known service, else the host
/// qualified like Kubernetes names (so a later ServiceEntry can fill it).
fn fqdn(mesh: &Mesh<'_>, host: &str, ns: &str) -> String {
    mesh.resolve(host, ns)
        .map(|s| s.fqdn.clone())
        .unwrap_or_else(|| host.to_owned())
}

/// Envoy routes for a VirtualService's `http` rules. `port` is the port the
/// traffic arrived for (a destination without a port goes there, or to the
/// service's only port). Rules with a `match.port` for another port are
/// skipped. The backends the routes use are added to `backends`.
pub fn virtual_service_routes(
    mesh: &Mesh<'_>,
    rules: &[VsHttpRoute],
    vs_ns: &str,
    port: Option<u32>,
    backends: &mut BTreeSet<Backend>,
) -> Vec<Route> {
    let mut out = Vec::new();
    for rule in rules {
        let Some(action) = vs_action(mesh, rule, vs_ns, port, backends) else {
            continue;
        };
        let any = [HttpMatchRequest::default()];
        let matches = if rule.r#match.is_empty() {
            &any[..]
        } else {
            &rule.r#match[..]
        };
        for m in matches {
            if m.port.is_some_and(|p| Some(p) != port) {
                continue;
            }
            let mut action = action.clone();
            if let (Some(rewrite), route::Action::Route(ra)) = (&rule.rewrite, &mut action) {
                if let Some(uri) = &rewrite.uri {
                    ra.prefix_rewrite = uri.clone();
                }
                if let Some(authority) = &rewrite.authority {
                    ra.host_rewrite_specifier = Some(
                        route_action::HostRewriteSpecifier::HostRewriteLiteral(authority.clone()),
                    );
                }
            }
            out.push(Route {
                name: rule.name.clone().unwrap_or_default(),
                r#match: Some(vs_match(m)),
                action: Some(action),
                ..Default::default()
            });
        }
    }
    out
}

fn vs_action(
    mesh: &Mesh<'_>,
    rule: &VsHttpRoute,
    vs_ns: &str,
    port: Option<u32>,
    backends: &mut BTreeSet<Backend>,
) -> Option<route::Action> {
    if let Some(d) = &rule.direct_response {
        return Some(route::Action::DirectResponse(DirectResponseAction {
            status: d.status,
            body: d.body.as_ref().and_then(|b| b.string.clone()).map(|s| DataSource {
                specifier: Some(envoy_types::pb::envoy::config::core::v3::data_source::Specifier::InlineString(s)),
                ..Default::default()
            }),
            body_format: None,
        }));
    }
    if let Some(r) = &rule.redirect {
        let code = match r.redirect_code.unwrap_or(301) {
            302 => redirect_action::RedirectResponseCode::Found,
            303 => redirect_action::RedirectResponseCode::SeeOther,
            307 => redirect_action::RedirectResponseCode::TemporaryRedirect,
            308 => redirect_action::RedirectResponseCode::PermanentRedirect,
            _ => redirect_action::RedirectResponseCode::MovedPermanently,
        };
        return Some(route::Action::Redirect(RedirectAction {
            host_redirect: r.authority.clone().unwrap_or_default(),
            port_redirect: r.port.unwrap_or(0),
            path_rewrite_specifier: r
                .uri
                .clone()
                .map(redirect_action::PathRewriteSpecifier::PathRedirect),
            scheme_rewrite_specifier: r
                .scheme
                .clone()
                .map(redirect_action::SchemeRewriteSpecifier::SchemeRedirect),
            response_code: code as i32,
            ..Default::default()
        }));
    }
    let n = rule.route.len();
    let mut clusters = Vec::new();
    for d in &rule.route {
        let host = fqdn(mesh, &d.destination.host, vs_ns);
        let svc = mesh.services.get(&host);
        let dport = d
            .destination
            .port
            .as_ref()
            .and_then(|p| p.number)
            .or_else(|| port.filter(|p| svc.is_none_or(|s| s.port(*p).is_some())))
            .or_else(|| match svc.map(|s| s.ports.as_slice()) {
                Some([only]) => Some(only.number),
                _ => None,
            })?;
        let weight = match d.weight {
            Some(w) => u32::try_from(w).unwrap_or(0),
            None if n == 1 => 100,
            None => 0,
        };
        if weight == 0 && n > 1 {
            continue;
        }
        if svc.is_some() {
            backends.insert(Backend {
                fqdn: host.clone(),
                port: dport,
            });
        }
        let subset = d.destination.subset.clone().unwrap_or_default();
        clusters.push((outbound_name(dport, &subset, &host), weight.max(1)));
    }
    if clusters.is_empty() {
        return None;
    }
    let mut action = route_to(clusters);
    if let Some(t) = rule.timeout.as_ref().and_then(|t| t.parse().ok()) {
        action.timeout = Some(envoy::duration(t));
    }
    if let Some(r) = &rule.retries {
        action.retry_policy = Some(RetryPolicy {
            retry_on: r.retry_on.clone().unwrap_or_else(|| {
                "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes".into()
            }),
            num_retries: r
                .attempts
                .and_then(|a| u32::try_from(a).ok())
                .map(|value| UInt32Value { value }),
            per_try_timeout: r
                .per_try_timeout
                .as_ref()
                .and_then(|t| t.parse().ok())
                .map(envoy::duration),
            ..Default::default()
        });
    }
    Some(route::Action::Route(action))
}

/// Where a Gateway API rule may send traffic: a Service in the route's
/// namespace, or in another one a ReferenceGrant opens to HTTPRoutes.
pub fn backend_allowed(
    snapshot: &Snapshot,
    route_ns: &str,
    target_ns: &str,
    kind: &str,
    name: &str,
) -> bool {
    route_ns == target_ns
        || Snapshot::in_namespace(&snapshot.reference_grants, target_ns).any(|(_, g)| {
            g.spec.from.iter().any(|f| {
                f.group == "gateway.networking.k8s.io"
                    && f.kind == "HTTPRoute"
                    && f.namespace == route_ns
            }) && g.spec.to.iter().any(|t| {
                t.group.is_empty() && t.kind == kind && t.name.as_deref().is_none_or(|n| n == name)
            })
        })
}

/// Sort key for Gateway API precedence: exact paths first, then longer
/// prefixes, then more header matches, then more query matches (earlier
/// rules win ties through the stable sort).
fn precedence(
    m: &HttpRouteRulesMatches,
) -> (
    u8,
    std::cmp::Reverse<usize>,
    std::cmp::Reverse<usize>,
    std::cmp::Reverse<usize>,
    std::cmp::Reverse<usize>,
) {
    use std::cmp::Reverse;
    let (kind, len) = match &m.path {
        Some(p) => match p.r#type {
            Some(HttpRouteRulesMatchesPathType::Exact) => {
                (0, p.value.as_deref().unwrap_or("/").len())
            }
            Some(HttpRouteRulesMatchesPathType::RegularExpression) => {
                (2, p.value.as_deref().unwrap_or("").len())
            }
            _ => (1, p.value.as_deref().unwrap_or("/").len()),
        },
        None => (1, 1),
    };
    (
        kind,
        Reverse(len),
        Reverse(usize::from(m.method.is_some())),
        Reverse(m.headers.as_ref().map_or(0, Vec::len)),
        Reverse(m.query_params.as_ref().map_or(0, Vec::len)),
    )
}

fn gateway_match(m: &HttpRouteRulesMatches) -> RouteMatch {
    let path = match &m.path {
        Some(p) => {
            let value = p.value.clone().unwrap_or_else(|| "/".into());
            match p.r#type {
                Some(HttpRouteRulesMatchesPathType::Exact) => {
                    route_match::PathSpecifier::Path(value)
                }
                Some(HttpRouteRulesMatchesPathType::RegularExpression) => {
                    route_match::PathSpecifier::SafeRegex(regex(&value))
                }
                _ => {
                    // Prefixes match whole path segments: /v1 matches /v1 and
                    // /v1/x, not /v1x; a trailing slash is not significant.
                    let trimmed = value.trim_end_matches('/');
                    if trimmed.is_empty() {
                        route_match::PathSpecifier::Prefix("/".into())
                    } else {
                        route_match::PathSpecifier::PathSeparatedPrefix(trimmed.to_owned())
                    }
                }
            }
        }
        None => route_match::PathSpecifier::Prefix("/".into()),
    };
    let mut headers: Vec<HeaderMatcher> = m
        .headers
        .iter()
        .flatten()
        .map(|h| {
            let sm = match h.r#type {
                Some(HttpRouteRulesMatchesHeadersType::RegularExpression) => {
                    StringMatch::Regex(h.value.clone())
                }
                _ => StringMatch::Exact(h.value.clone()),
            };
            header(&h.name.to_ascii_lowercase(), &KeyMatch(Some(sm)))
        })
        .collect();
    if let Some(method) = &m.method {
        let name = serde_json::to_value(method)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        headers.push(header(":method", &KeyMatch(Some(StringMatch::Exact(name)))));
    }
    RouteMatch {
        path_specifier: Some(path),
        headers,
        query_parameters: m
            .query_params
            .iter()
            .flatten()
            .map(|q| {
                let sm = match q.r#type {
                    Some(HttpRouteRulesMatchesQueryParamsType::RegularExpression) => {
                        StringMatch::Regex(q.value.clone())
                    }
                    _ => StringMatch::Exact(q.value.clone()),
                };
                QueryParameterMatcher {
                    name: q.name.clone(),
                    query_parameter_match_specifier: Some(
                        query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(
                            string_matcher(&sm, false),
                        ),
                    ),
                }
            })
            .collect(),
        ..Default::default()
    }
}

/// Envoy routes for the rules of one HTTPRoute, in Gateway API precedence.
/// A rule whose backends all fail to resolve answers 500, as the spec asks.
pub fn http_route_routes(
    mesh: &Mesh<'_>,
    route_key: &ObjectKey,
    rules: &[HttpRouteRules],
    backends: &mut BTreeSet<Backend>,
) -> Vec<(HttpRouteRulesMatches, Route)> {
    let mut out = Vec::new();
    for rule in rules {
        let mut clusters = Vec::new();
        for b in rule.backend_refs.iter().flatten() {
            let kind = b.kind.as_deref().unwrap_or("Service");
            let group = b.group.as_deref().unwrap_or("");
            let ns = b
                .namespace
                .clone()
                .unwrap_or_else(|| route_key.namespace.clone());
            let weight = u32::try_from(b.weight.unwrap_or(1)).unwrap_or(0);
            let resolved = (kind == "Service" && group.is_empty())
                .then(|| mesh.resolve(&b.name, &ns))
                .flatten()
                .filter(|_| {
                    backend_allowed(mesh.snapshot, &route_key.namespace, &ns, kind, &b.name)
                })
                .zip(b.port.and_then(|p| u32::try_from(p).ok()))
                .filter(|(svc, port)| svc.port(*port).is_some());
            // Unresolved and zero-weight backends get no traffic.
            if let Some((svc, port)) = resolved.filter(|_| weight > 0) {
                backends.insert(Backend {
                    fqdn: svc.fqdn.clone(),
                    port,
                });
                clusters.push((outbound_name(port, "", &svc.fqdn), weight));
            }
        }
        let action = if clusters.is_empty() {
            route::Action::DirectResponse(DirectResponseAction {
                status: 500,
                body: None,
                body_format: None,
            })
        } else {
            route::Action::Route(route_to(clusters))
        };
        let default = [HttpRouteRulesMatches::default()];
        let matches = match &rule.matches {
            Some(m) if !m.is_empty() => &m[..],
            _ => &default[..],
        };
        for m in matches {
            out.push((
                m.clone(),
                Route {
                    name: rule.name.clone().unwrap_or_default(),
                    r#match: Some(gateway_match(m)),
                    action: Some(action.clone()),
                    ..Default::default()
                },
            ));
        }
    }
    out
}

/// Orders routes collected from several HTTPRoutes by Gateway API precedence.
pub fn sort_by_precedence(routes: &mut [(HttpRouteRulesMatches, Route)]) {
    routes.sort_by_key(|(m, _)| precedence(m));
}
