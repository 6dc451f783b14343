//! The compiled, immutable configuration the proxy routes with: listeners
//! and their filter chains, route tables, clusters with their endpoints,
//! and certificates. Built by [`Snapshot::build`](super::Snapshot::build);
//! the matching functions here are pure and unit-tested.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use regex::Regex;

/// A listener: where it listens and how it picks a filter chain.
#[derive(Clone, Debug)]
pub struct Listener {
    pub name: String,
    pub address: SocketAddr,
    /// The sidecar capture listeners: the chain is chosen by the original
    /// destination of the redirected connection.
    pub use_original_dst: bool,
    pub chains: Vec<FilterChain>,
    pub default_chain: Option<FilterChain>,
}

/// Which transport a connection arrived with (Envoy's `transport_protocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Tls,
    RawBuffer,
}

/// What a filter chain matches; unset fields match anything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainMatch {
    pub destination_port: Option<u16>,
    pub prefix_ranges: Vec<Cidr>,
    pub server_names: Vec<String>,
    /// `None`: any transport.
    pub transport: Option<Transport>,
}

/// An address prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub len: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let len = u32::from(self.len.min(32));
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let len = u32::from(self.len.min(128));
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }
}

/// Downstream TLS of a filter chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DownstreamTls {
    /// Mesh mTLS: the workload certificate, a client certificate from the
    /// mesh trust bundle required.
    Mesh,
    /// Gateway TLS termination with these SDS secrets (certificate chosen
    /// by SNI among them).
    Terminate { secrets: Vec<String> },
}

/// A filter chain: a match, optional TLS, and one network filter.
#[derive(Clone, Debug)]
pub struct FilterChain {
    pub name: String,
    pub matcher: ChainMatch,
    pub tls: Option<DownstreamTls>,
    pub filter: NetworkFilter,
}

/// The network filter ending a chain.
#[derive(Clone, Debug)]
pub enum NetworkFilter {
    /// Opaque TCP to a cluster.
    TcpProxy {
        stat_prefix: String,
        cluster: String,
    },
    /// HTTP, routed by a route table.
    Http {
        stat_prefix: String,
        routes: RouteSource,
    },
}

/// Where an HTTP connection manager's routes come from.
#[derive(Clone, Debug)]
pub enum RouteSource {
    /// A RouteConfiguration by name (RDS).
    Rds(String),
    Inline(Arc<RouteTable>),
}

/// What the proxy knows of a connection when it picks a chain.
#[derive(Clone, Debug)]
pub struct ConnectionFacts<'a> {
    pub destination: SocketAddr,
    pub transport: Transport,
    pub server_name: Option<&'a str>,
}

impl Listener {
    /// Envoy's filter chain selection: candidates must match every set
    /// criterion; the most specific wins, criterion by criterion
    /// (destination port, then address prefix length, then server name,
    /// then transport protocol).
    pub fn select_chain(&self, facts: &ConnectionFacts<'_>) -> Option<&FilterChain> {
        self.chains
            .iter()
            .filter_map(|c| chain_score(&c.matcher, facts).map(|s| (s, c)))
            .max_by_key(|(score, _)| *score)
            .map(|(_, c)| c)
            .or(self.default_chain.as_ref())
    }
}

/// Specificity of a match, or `None` when it does not match.
fn chain_score(m: &ChainMatch, facts: &ConnectionFacts<'_>) -> Option<(u8, u8, u8, u8)> {
    let port = match m.destination_port {
        Some(p) if p != facts.destination.port() => return None,
        Some(_) => 1,
        None => 0,
    };
    let prefix = if m.prefix_ranges.is_empty() {
        0
    } else {
        let best = m
            .prefix_ranges
            .iter()
            .filter(|c| c.contains(facts.destination.ip()))
            .map(|c| c.len)
            .max()?;
        best.saturating_add(1)
    };
    let sni = if m.server_names.is_empty() {
        0
    } else {
        let name = facts.server_name?;
        m.server_names
            .iter()
            .filter_map(|n| server_name_specificity(n, name))
            .max()?
    };
    let transport = match m.transport {
        Some(t) if t != facts.transport => return None,
        Some(_) => 1,
        None => 0,
    };
    Some((port, prefix, sni, transport))
}

/// 2 for an exact match, 1 for a `*.suffix` wildcard match.
fn server_name_specificity(pattern: &str, name: &str) -> Option<u8> {
    if pattern.eq_ignore_ascii_case(name) {
        Some(2)
    } else if let Some(suffix) = pattern.strip_prefix('*') {
        let matches = name.len() > suffix.len()
            && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix);
        matches.then_some(1)
    } else {
        None
    }
}

/// A route configuration.
#[derive(Clone, Debug)]
pub struct RouteTable {
    pub name: String,
    pub virtual_hosts: Vec<VirtualHost>,
}

#[derive(Clone, Debug)]
pub struct VirtualHost {
    pub name: String,
    pub domains: Vec<String>,
    pub routes: Vec<Route>,
}

#[derive(Clone, Debug)]
pub struct Route {
    pub name: String,
    pub matcher: RouteMatch,
    pub action: RouteAction,
}

#[derive(Clone, Debug)]
pub enum PathMatch {
    Prefix(String),
    Exact(String),
    /// Whole path segments: `/v1` matches `/v1` and `/v1/x`, not `/v1x`.
    SeparatedPrefix(String),
    Regex(Regex),
}

#[derive(Clone, Debug)]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    Regex(Regex),
}

impl StringMatch {
    pub fn matches(&self, value: &str, ignore_case: bool) -> bool {
        let (v, fold);
        if ignore_case {
            fold = value.to_ascii_lowercase();
            v = fold.as_str();
        } else {
            v = value;
        }
        let norm = |s: &str| {
            if ignore_case {
                s.to_ascii_lowercase()
            } else {
                s.to_owned()
            }
        };
        match self {
            Self::Exact(s) => v == norm(s),
            Self::Prefix(s) => v.starts_with(&norm(s)),
            Self::Suffix(s) => v.ends_with(&norm(s)),
            Self::Contains(s) => v.contains(&norm(s)),
            Self::Regex(r) => r.is_match(value),
        }
    }
}

/// A header (or pseudo-header `:method`, `:authority`, `:scheme`) test.
#[derive(Clone, Debug)]
pub struct HeaderMatch {
    pub name: String,
    /// `None`: present.
    pub value: Option<StringMatch>,
    pub ignore_case: bool,
    pub invert: bool,
}

#[derive(Clone, Debug)]
pub struct QueryMatch {
    pub name: String,
    pub value: Option<StringMatch>,
    pub ignore_case: bool,
}

#[derive(Clone, Debug)]
pub struct RouteMatch {
    pub path: PathMatch,
    pub case_sensitive: bool,
    pub headers: Vec<HeaderMatch>,
    pub query: Vec<QueryMatch>,
}

/// The parts of a request routing looks at.
#[derive(Clone, Copy, Debug)]
pub struct RequestFacts<'a> {
    pub authority: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub method: &'a str,
    pub scheme: &'a str,
    pub headers: &'a http::HeaderMap,
}

impl RouteMatch {
    pub fn matches(&self, req: &RequestFacts<'_>) -> bool {
        let path_ok = match &self.path {
            PathMatch::Prefix(p) => starts_with(req.path, p, !self.case_sensitive),
            PathMatch::Exact(p) => {
                if self.case_sensitive {
                    req.path == p
                } else {
                    req.path.eq_ignore_ascii_case(p)
                }
            }
            PathMatch::SeparatedPrefix(p) => {
                starts_with(req.path, p, !self.case_sensitive)
                    && matches!(req.path.as_bytes().get(p.len()), None | Some(b'/'))
            }
            PathMatch::Regex(r) => r.is_match(req.path),
        };
        path_ok
            && self.headers.iter().all(|h| header_matches(h, req))
            && self.query.iter().all(|q| query_matches(q, req.query))
    }
}

fn starts_with(path: &str, prefix: &str, ignore_case: bool) -> bool {
    path.len() >= prefix.len()
        && if ignore_case {
            path[..prefix.len()].eq_ignore_ascii_case(prefix)
        } else {
            path.starts_with(prefix)
        }
}

fn header_matches(h: &HeaderMatch, req: &RequestFacts<'_>) -> bool {
    let joined;
    let value: Option<&str> = match h.name.as_str() {
        ":method" => Some(req.method),
        ":authority" => Some(req.authority),
        ":scheme" => Some(req.scheme),
        ":path" => Some(req.path),
        name => {
            let all: Vec<&str> = req
                .headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            if all.is_empty() {
                None
            } else {
                joined = all.join(",");
                Some(joined.as_str())
            }
        }
    };
    let hit = match (&h.value, value) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(m), Some(v)) => m.matches(v, h.ignore_case),
    };
    hit != h.invert
}

fn query_matches(q: &QueryMatch, query: Option<&str>) -> bool {
    let value = query.into_iter().flat_map(|q| q.split('&')).find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == q.name).then_some(v)
    });
    match (&q.value, value) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(m), Some(v)) => m.matches(v, q.ignore_case),
    }
}

/// What a route does.
#[derive(Clone, Debug)]
pub enum RouteAction {
    Forward(Forward),
    Direct { status: u16, body: Option<String> },
    Redirect(Redirect),
}

#[derive(Clone, Debug)]
pub struct Forward {
    /// Clusters with weights (one entry: all traffic).
    pub clusters: Vec<(String, u32)>,
    /// Total timeout; `None` (Envoy's `0s`) disables it.
    pub timeout: Option<Duration>,
    pub prefix_rewrite: Option<String>,
    /// Replaces the authority (HTTP/2 `:authority`, HTTP/1.1 `Host`).
    pub host_rewrite: Option<http::uri::Authority>,
    pub retry: Option<RetryPolicy>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub retry_on: Vec<String>,
    pub num_retries: u32,
    pub per_try_timeout: Option<Duration>,
}

#[derive(Clone, Debug, Default)]
pub struct Redirect {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub path: Option<String>,
    pub scheme: Option<String>,
    pub status: u16,
}

impl RouteTable {
    /// Envoy's virtual host selection: exact domain, then the longest
    /// `*.suffix` wildcard, then the longest `prefix*` wildcard, then `*`.
    pub fn virtual_host(&self, authority: &str) -> Option<&VirtualHost> {
        let host = authority.to_ascii_lowercase();
        let mut best: Option<(u8, usize, &VirtualHost)> = None;
        for vh in &self.virtual_hosts {
            for d in &vh.domains {
                let d = d.to_ascii_lowercase();
                let score = if d == host {
                    Some((4, d.len()))
                } else if d == "*" {
                    Some((1, 0))
                } else if let Some(s) = d.strip_prefix('*') {
                    (host.len() > s.len() && host.ends_with(s)).then_some((3, s.len()))
                } else if let Some(p) = d.strip_suffix('*') {
                    (host.len() > p.len() && host.starts_with(p)).then_some((2, p.len()))
                } else {
                    None
                };
                if let Some((class, len)) = score
                    && best.is_none_or(|(bc, bl, _)| (class, len) > (bc, bl))
                {
                    best = Some((class, len, vh));
                }
            }
        }
        best.map(|(_, _, vh)| vh)
    }

    /// The first route of the chosen virtual host that matches.
    pub fn route(&self, req: &RequestFacts<'_>) -> Option<(&VirtualHost, &Route)> {
        let vh = self.virtual_host(req.authority)?;
        vh.routes
            .iter()
            .find(|r| r.matcher.matches(req))
            .map(|r| (vh, r))
    }
}

/// How a cluster balances load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LbPolicy {
    RoundRobin,
    LeastRequest,
    Random,
}

/// How a cluster finds its endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Discovery {
    /// From the ClusterLoadAssignment named `service_name`.
    Eds { service_name: String },
    /// Inline endpoints (an empty list is a black hole).
    Static,
    /// The connection's original destination.
    OriginalDst,
}

/// Transport towards an endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpstreamTls {
    Plaintext,
    /// Mesh mTLS: the workload certificate; the peer must chain to the
    /// trust bundle and carry one of `sans` (any mesh ID when empty).
    Mesh {
        sni: Arc<str>,
        sans: Arc<[String]>,
    },
}

/// `transport_socket_matches`: the first whose criteria are all in the
/// endpoint's `envoy.transport_socket_match` metadata applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportSocketMatch {
    pub name: String,
    pub criteria: BTreeMap<String, String>,
    pub tls: UpstreamTls,
}

#[derive(Clone, Debug)]
pub struct Cluster {
    pub name: String,
    /// The service the name points at (`outbound|<port>|<subset>|<fqdn>`),
    /// the `destination_service` of its requests' metrics.
    pub service: Option<Arc<str>>,
    pub discovery: Discovery,
    pub lb: LbPolicy,
    pub connect_timeout: Duration,
    /// Upstream speaks HTTP/2 (gRPC, h2c).
    pub http2: bool,
    pub transport_socket_matches: Vec<TransportSocketMatch>,
    /// Used when no match applies.
    pub default_tls: UpstreamTls,
    pub endpoints: Arc<[Endpoint]>,
    /// Source address of upstream connections (`upstream_bind_config`).
    pub bind_source: Option<std::net::IpAddr>,
    /// Round-robin position; lives as long as this snapshot of the cluster.
    pub rr: Arc<AtomicUsize>,
}

impl Cluster {
    /// The transport for one endpoint.
    pub fn tls_for(&self, ep: &Endpoint) -> &UpstreamTls {
        self.transport_socket_matches
            .iter()
            .find(|m| {
                m.criteria
                    .iter()
                    .all(|(k, v)| ep.socket_match.get(k) == Some(v))
            })
            .map_or(&self.default_tls, |m| &m.tls)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Healthy,
    Unhealthy,
    Draining,
    Timeout,
    Degraded,
}

impl Health {
    /// Whether load balancing may pick it (Envoy: UNKNOWN counts as healthy).
    pub fn routable(self) -> bool {
        matches!(self, Self::Unknown | Self::Healthy | Self::Degraded)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub address: SocketAddr,
    pub health: Health,
    pub weight: u32,
    pub region: String,
    pub zone: String,
    pub priority: u32,
    /// `envoy.transport_socket_match` metadata.
    pub socket_match: BTreeMap<String, String>,
}

/// An SDS secret.
#[derive(Clone, Debug)]
pub enum SecretConfig {
    Certificate(Arc<crate::tls::ServingCert>),
    /// A trust bundle (PEM certificates).
    ValidationContext {
        trusted_ca_pem: Vec<u8>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(
        dest: &str,
        transport: Transport,
        sni: Option<&'static str>,
    ) -> ConnectionFacts<'static> {
        ConnectionFacts {
            destination: dest.parse().unwrap(),
            transport,
            server_name: sni,
        }
    }

    fn chain(name: &str, matcher: ChainMatch) -> FilterChain {
        FilterChain {
            name: name.into(),
            matcher,
            tls: None,
            filter: NetworkFilter::TcpProxy {
                stat_prefix: name.into(),
                cluster: name.into(),
            },
        }
    }

    #[test]
    fn most_specific_chain_wins() {
        let cidr = |s: &str, len| Cidr {
            addr: s.parse().unwrap(),
            len,
        };
        let l = Listener {
            name: "l".into(),
            address: "0.0.0.0:15001".parse().unwrap(),
            use_original_dst: true,
            chains: vec![
                chain(
                    "port",
                    ChainMatch {
                        destination_port: Some(80),
                        ..Default::default()
                    },
                ),
                chain(
                    "port+ip",
                    ChainMatch {
                        destination_port: Some(80),
                        prefix_ranges: vec![cidr("10.0.0.1", 32)],
                        ..Default::default()
                    },
                ),
                chain(
                    "tls",
                    ChainMatch {
                        destination_port: Some(443),
                        transport: Some(Transport::Tls),
                        ..Default::default()
                    },
                ),
                chain(
                    "sni",
                    ChainMatch {
                        destination_port: Some(443),
                        server_names: vec!["*.example.com".into()],
                        ..Default::default()
                    },
                ),
            ],
            default_chain: Some(chain("default", ChainMatch::default())),
        };
        let pick = |f: ConnectionFacts<'_>| l.select_chain(&f).map(|c| c.name.clone());
        assert_eq!(
            pick(facts("10.0.0.1:80", Transport::RawBuffer, None)).as_deref(),
            Some("port+ip")
        );
        assert_eq!(
            pick(facts("10.0.0.2:80", Transport::RawBuffer, None)).as_deref(),
            Some("port")
        );
        assert_eq!(
            pick(facts("10.0.0.2:443", Transport::Tls, Some("a.example.com"))).as_deref(),
            Some("sni"),
            "server name is more specific than transport"
        );
        assert_eq!(
            pick(facts("10.0.0.2:443", Transport::Tls, Some("other.org"))).as_deref(),
            Some("tls")
        );
        assert_eq!(
            pick(facts("10.0.0.2:443", Transport::RawBuffer, None)).as_deref(),
            Some("default")
        );
    }

    fn vh(name: &str, domains: &[&str]) -> VirtualHost {
        VirtualHost {
            name: name.into(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            routes: vec![],
        }
    }

    #[test]
    fn virtual_host_selection_follows_envoy_precedence() {
        let t = RouteTable {
            name: "80".into(),
            virtual_hosts: vec![
                vh("any", &["*"]),
                vh("wild", &["*.example.com"]),
                vh("wilder", &["*.com"]),
                vh("exact", &["api.example.com", "api.example.com:80"]),
                vh("pre", &["api.*"]),
            ],
        };
        let name = |a: &str| t.virtual_host(a).map(|v| v.name.clone()).unwrap();
        assert_eq!(name("api.example.com"), "exact");
        assert_eq!(name("API.example.com:80"), "exact");
        assert_eq!(name("x.example.com"), "wild");
        assert_eq!(name("x.other.com"), "wilder");
        assert_eq!(name("api.org"), "pre");
        assert_eq!(name("nothing"), "any");
    }

    #[test]
    fn route_matches_paths_headers_and_queries() {
        let headers = {
            let mut h = http::HeaderMap::new();
            h.insert("x-user", "alice".parse().unwrap());
            h
        };
        let req = |path: &'static str, query: Option<&'static str>| RequestFacts {
            authority: "a",
            path,
            query,
            method: "GET",
            scheme: "http",
            headers: &headers,
        };
        let m = |path: PathMatch| RouteMatch {
            path,
            case_sensitive: true,
            headers: vec![],
            query: vec![],
        };
        assert!(m(PathMatch::SeparatedPrefix("/v1".into())).matches(&req("/v1/x", None)));
        assert!(m(PathMatch::SeparatedPrefix("/v1".into())).matches(&req("/v1", None)));
        assert!(!m(PathMatch::SeparatedPrefix("/v1".into())).matches(&req("/v1x", None)));
        assert!(m(PathMatch::Prefix("/v1".into())).matches(&req("/v1x", None)));
        assert!(!m(PathMatch::Exact("/v1".into())).matches(&req("/v1/", None)));
        let mut insensitive = m(PathMatch::Exact("/V1".into()));
        insensitive.case_sensitive = false;
        assert!(insensitive.matches(&req("/v1", None)));

        let mut with_header = m(PathMatch::Prefix("/".into()));
        with_header.headers.push(HeaderMatch {
            name: "x-user".into(),
            value: Some(StringMatch::Exact("alice".into())),
            ignore_case: false,
            invert: false,
        });
        assert!(with_header.matches(&req("/", None)));
        with_header.headers[0].invert = true;
        assert!(!with_header.matches(&req("/", None)));
        with_header.headers[0] = HeaderMatch {
            name: ":method".into(),
            value: Some(StringMatch::Exact("POST".into())),
            ignore_case: false,
            invert: false,
        };
        assert!(!with_header.matches(&req("/", None)));

        let mut with_query = m(PathMatch::Prefix("/".into()));
        with_query.query.push(QueryMatch {
            name: "debug".into(),
            value: None,
            ignore_case: false,
        });
        assert!(with_query.matches(&req("/", Some("a=1&debug"))));
        assert!(!with_query.matches(&req("/", Some("a=1"))));
    }

    #[test]
    fn cidr_contains() {
        let c = Cidr {
            addr: "10.1.0.0".parse().unwrap(),
            len: 16,
        };
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
    }
}
