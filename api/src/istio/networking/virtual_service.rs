//! `VirtualService`: how requests for a set of hosts are matched and routed.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::destination::Destination;
use super::headers::{Headers, KeyMatch};
use super::{MAX_ITERATED_ITEMS, min_1ms};
use crate::istio::common::{Duration, IstioStatus, Percent, StringMatch};

/// Routing rules for traffic addressed to `hosts`, through the mesh or
/// through the listed gateways.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "networking.istio.io",
    version = "v1",
    kind = "VirtualService",
    namespaced,
    status = "IstioStatus",
    shortname = "vs",
    category = "istio-io",
    category = "networking-istio-io",
    cel,
    doc = "Routing rules for requests addressed to a set of hosts.",
    printcolumn = r#"{"name":"Gateways","type":"string","jsonPath":".spec.gateways","description":"Gateways the rules are bound to"}"#,
    printcolumn = r#"{"name":"Hosts","type":"string","jsonPath":".spec.hosts","description":"Hosts the rules route"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServiceSpec {
    /// Hosts the rules apply to: short names, FQDNs, wildcard prefixes
    /// (`*.example.com`) or IP addresses. Empty only in a delegate VirtualService.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Gateways (`<namespace>/<name>`) the rules apply to; the reserved name
    /// `mesh` means all sidecars. Defaults to `mesh`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Ordered HTTP, HTTP/2 and gRPC rules; the first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ITERATED_ITEMS))]
    pub http: Vec<HttpRoute>,
    /// Ordered rules for TLS and HTTPS traffic that is not terminated, matched by SNI.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ITERATED_ITEMS))]
    pub tls: Vec<TlsRoute>,
    /// Ordered rules for opaque TCP traffic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ITERATED_ITEMS))]
    pub tcp: Vec<TcpRoute>,
    /// Namespaces the rule is visible in: `.` for its own, `*` for all
    /// (default), or namespace names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
}

/// The CEL rule shared by every list of weighted destinations: when a route
/// has several destinations and any of them sets a weight, the weights (an
/// unset weight counting as 0) must add up to 100. A single destination always
/// gets all traffic, and destinations without any weight share traffic evenly.
const WEIGHTS_SUM_TO_100: &str = "!has(self.route) || size(self.route) <= 1 || !self.route.exists(d, has(d.weight)) || self.route.map(d, has(d.weight) ? d.weight : 0).sum() == 100";

/// One HTTP routing rule: conditions and what to do with a matching request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "(has(self.route) ? 1 : 0) + (has(self.redirect) ? 1 : 0) + (has(self.directResponse) ? 1 : 0) + (has(self.delegate) ? 1 : 0) == 1"
).message("http: set exactly one of route, redirect, directResponse or delegate"))]
#[x_kube(validation = Rule::new(WEIGHTS_SUM_TO_100)
    .message("http.route: weights must sum to 100 when several destinations are listed and any sets a weight"))]
#[x_kube(validation = Rule::new("!(has(self.rewrite) && has(self.redirect))")
    .message("http: rewrite cannot be combined with redirect"))]
#[x_kube(validation = Rule::new("!(has(self.mirror) && has(self.mirrors))")
    .message("http: set mirror or mirrors, not both"))]
#[x_kube(validation = Rule::new("!(has(self.mirrorPercent) && has(self.mirrorPercentage))")
    .message("http: set mirrorPercentage or the deprecated mirrorPercent, not both"))]
pub struct HttpRoute {
    /// Name of the rule, used in access logs and metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Conditions a request must meet, any one of them (OR); all
    /// requests match when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub r#match: Vec<HttpMatchRequest>,
    /// Destinations to forward to, with traffic weights.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ITERATED_ITEMS))]
    pub route: Vec<HttpRouteDestination>,
    /// Answer with a redirect instead of forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<HttpRedirect>,
    /// Answer with a fixed response instead of forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_response: Option<HttpDirectResponse>,
    /// Hand routing over to another VirtualService (only in a root
    /// VirtualService whose `hosts` are set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegate: Option<Delegate>,
    /// Rewrite the path and/or authority before forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<HttpRewrite>,
    /// Overall timeout for a request, retries included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = min_1ms("http.timeout must be at least 1ms"))]
    pub timeout: Option<Duration>,
    /// Retry policy for failed requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<HttpRetry>,
    /// Faults to inject (delays, aborts); retries and timeouts are off
    /// while faults are injected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<HttpFaultInjection>,
    /// Copy requests to this destination as well; responses are dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Destination>,
    /// Copy requests to several destinations, each with its own percentage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<HttpMirrorPolicy>,
    /// Share of requests mirrored to `mirror`; 100 % when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_percentage: Option<Percent>,
    /// Deprecated integer form of `mirrorPercentage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 100))]
    pub mirror_percent: Option<u32>,
    /// Cross-origin resource sharing policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors_policy: Option<CorsPolicy>,
    /// Header changes for this route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
}

/// Conditions on an HTTP request; all set fields must match (AND).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpMatchRequest {
    /// Name of the condition, appended to the rule name in logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Match on the URI path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<StringMatch>,
    /// Match on the URI scheme (`http`, `https`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<StringMatch>,
    /// Match on the HTTP method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,
    /// Match on the authority (`Host`) header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<StringMatch>,
    /// Headers that must be present and match; keys are lower-case header
    /// names, `{}` only checks presence.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, KeyMatch>,
    /// Port the request arrived on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u32>,
    /// Labels the calling workload must carry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_labels: BTreeMap<String, String>,
    /// Gateways this condition applies to, overriding the top-level `gateways`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Query parameters that must match; `{}` only checks presence.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query_params: BTreeMap<String, KeyMatch>,
    /// Match `uri` case-insensitively.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_uri_case: Option<bool>,
    /// Headers that must not match (or, with `{}`, must be absent).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub without_headers: BTreeMap<String, KeyMatch>,
    /// Namespace the calling workload must run in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_namespace: Option<String>,
    /// Prefix for the proxy's per-route statistics of this match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stat_prefix: Option<String>,
}

/// A weighted HTTP destination with its own header changes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteDestination {
    /// Where matching requests are forwarded.
    pub destination: Destination,
    /// Share of traffic (0-100) sent here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub weight: Option<i32>,
    /// Header changes applied when traffic goes to this destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
}

/// A weighted destination for TLS and TCP routes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteDestination {
    /// Where matching connections are forwarded.
    pub destination: Destination,
    /// Share of traffic (0-100) sent here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub weight: Option<i32>,
}

/// Which port a redirect points at when `port` is not given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RedirectPortSelection {
    /// 80 for HTTP, 443 for HTTPS.
    #[serde(rename = "FROM_PROTOCOL_DEFAULT")]
    FromProtocolDefault,
    /// The port the request arrived on.
    #[serde(rename = "FROM_REQUEST_PORT")]
    FromRequestPort,
}

/// A redirect sent back to the client.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.port) && has(self.derivePort))")
    .message("redirect: set port or derivePort, not both"))]
pub struct HttpRedirect {
    /// Path that replaces the request's path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Authority that replaces the request's authority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// Port of the redirect location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u32>,
    /// Derive the redirect port instead of naming it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derive_port: Option<RedirectPortSelection>,
    /// Scheme of the redirect location; the request's scheme when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// Status code of the redirect; 301 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 300, max = 399))]
    pub redirect_code: Option<u32>,
}

/// A fixed response sent back to the client.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpDirectResponse {
    /// HTTP status code of the response.
    #[schemars(range(min = 200, max = 599))]
    pub status: u32,
    /// Body of the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<HttpBody>,
}

/// A response body, as text or as base64-encoded bytes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.string) && has(self.bytes))")
    .message("directResponse.body: set string or bytes, not both"))]
pub struct HttpBody {
    /// Body as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string: Option<String>,
    /// Body as base64-encoded bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "byte"))]
    pub bytes: Option<String>,
}

/// A reference to the VirtualService that routing is handed over to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delegate {
    /// Name of the delegate VirtualService.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace of the delegate VirtualService; the root's namespace when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Rewrites applied before forwarding.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.uri) && has(self.uriRegexRewrite))")
    .message("rewrite: set uri or uriRegexRewrite, not both"))]
pub struct HttpRewrite {
    /// Replaces the matched part of the path (the prefix for a prefix
    /// match, the whole path otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Replaces the authority (`Host`) header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// Rewrites the path with a regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri_regex_rewrite: Option<RegexRewrite>,
}

/// A regular-expression rewrite.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegexRewrite {
    /// RE2 expression to find.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#match: Option<String>,
    /// Replacement; may use capture groups such as `\1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<String>,
}

/// Retry policy for HTTP requests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRetry {
    /// Number of retries; 0 disables retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub attempts: Option<i32>,
    /// Timeout of each attempt, initial call and retries alike.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = min_1ms("retries.perTryTimeout must be at least 1ms"))]
    pub per_try_timeout: Option<Duration>,
    /// Comma-separated conditions that trigger a retry (e.g.
    /// `5xx,reset,connect-failure`, gRPC status names, or status codes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<String>,
    /// Whether retries may go to endpoints in other localities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_remote_localities: Option<bool>,
    /// Whether retries avoid hosts already tried; true when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_ignore_previous_hosts: Option<bool>,
    /// Minimum time between attempts; 25ms when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = min_1ms("retries.backoff must be at least 1ms"))]
    pub backoff: Option<Duration>,
}

/// What to do with preflight requests whose origin does not match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum UnmatchedPreflights {
    /// The proxy's default, which is to forward them.
    #[serde(rename = "UNSPECIFIED")]
    Unspecified,
    /// Forward them to the upstream.
    #[serde(rename = "FORWARD")]
    Forward,
    /// Answer them without CORS headers and do not forward.
    #[serde(rename = "IGNORE")]
    Ignore,
}

/// Cross-origin resource sharing (CORS) policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CorsPolicy {
    /// Origins allowed to make requests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origins: Vec<StringMatch>,
    /// Deprecated: exact origins allowed; use `allowOrigins`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origin: Vec<String>,
    /// Methods allowed (`Access-Control-Allow-Methods`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    /// Headers allowed in requests (`Access-Control-Allow-Headers`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    /// Headers browsers may read (`Access-Control-Expose-Headers`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// How long a preflight result may be cached (`Access-Control-Max-Age`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = min_1ms("corsPolicy.maxAge must be at least 1ms"))]
    pub max_age: Option<Duration>,
    /// Whether requests may carry credentials (`Access-Control-Allow-Credentials`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
    /// Whether preflight requests from origins that do not match are forwarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmatched_preflights: Option<UnmatchedPreflights>,
}

/// Faults injected into matching requests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.delay) || has(self.abort)")
    .message("fault: set delay, abort or both"))]
pub struct HttpFaultInjection {
    /// Delay requests before forwarding them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<FaultDelay>,
    /// Answer requests with an error instead of forwarding them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<FaultAbort>,
}

/// A delay added before forwarding.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.fixedDelay) != has(self.exponentialDelay)")
    .message("fault.delay: set exactly one of fixedDelay or exponentialDelay"))]
pub struct FaultDelay {
    /// Deprecated integer percentage of delayed requests; use `percentage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub percent: Option<i32>,
    /// Fixed delay added to each affected request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = min_1ms("fault.delay.fixedDelay must be at least 1ms"))]
    pub fixed_delay: Option<Duration>,
    /// Exponentially growing delay (not documented by Istio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = min_1ms("fault.delay.exponentialDelay must be at least 1ms"))]
    pub exponential_delay: Option<Duration>,
    /// Share of requests delayed; all when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
}

/// An error returned instead of forwarding.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "(has(self.httpStatus) ? 1 : 0) + (has(self.grpcStatus) ? 1 : 0) + (has(self.http2Error) ? 1 : 0) == 1"
).message("fault.abort: set exactly one of httpStatus, grpcStatus or http2Error"))]
pub struct FaultAbort {
    /// HTTP status code returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 200, max = 599))]
    pub http_status: Option<i32>,
    /// gRPC status returned, e.g. `UNAVAILABLE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_status: Option<String>,
    /// HTTP/2 error code returned (not documented by Istio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_error: Option<String>,
    /// Share of requests aborted; all when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
}

/// One mirror destination with its own share of traffic.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpMirrorPolicy {
    /// Where copies of requests are sent.
    pub destination: Destination,
    /// Share of requests copied; all when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
}

/// A rule for TLS traffic that is passed through, matched by SNI.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(WEIGHTS_SUM_TO_100)
    .message("tls.route: weights must sum to 100 when several destinations are listed and any sets a weight"))]
pub struct TlsRoute {
    /// Conditions a connection must meet, any one of them.
    pub r#match: Vec<TlsMatchAttributes>,
    /// Destinations to forward to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ITERATED_ITEMS))]
    pub route: Vec<RouteDestination>,
}

/// Conditions on a TLS connection.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsMatchAttributes {
    /// SNI values to match; wildcards allowed.
    #[schemars(length(min = 1))]
    pub sni_hosts: Vec<String>,
    /// Destination IPs or CIDRs to match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_subnets: Vec<String>,
    /// Port the connection is addressed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u32>,
    /// Labels the calling workload must carry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_labels: BTreeMap<String, String>,
    /// Gateways this condition applies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Namespace the calling workload must run in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_namespace: Option<String>,
}

/// A rule for opaque TCP traffic.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(WEIGHTS_SUM_TO_100)
    .message("tcp.route: weights must sum to 100 when several destinations are listed and any sets a weight"))]
pub struct TcpRoute {
    /// Conditions a connection must meet, any one of them; all match when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub r#match: Vec<L4MatchAttributes>,
    /// Destinations to forward to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ITERATED_ITEMS))]
    pub route: Vec<RouteDestination>,
}

/// Conditions on a TCP connection.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct L4MatchAttributes {
    /// Destination IPs or CIDRs to match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_subnets: Vec<String>,
    /// Port the connection is addressed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u32>,
    /// Source IP or CIDR (not documented by Istio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_subnet: Option<String>,
    /// Labels the calling workload must carry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_labels: BTreeMap<String, String>,
    /// Gateways this condition applies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Namespace the calling workload must run in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_namespace: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::istio::networking::test_support::*;

    /// The VirtualService of the reference users come from (canary split).
    const REFERENCE: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: payments-api
  namespace: payments
spec:
  hosts:
    - payments-api.payments.svc.cluster.local
  http:
    # Header-based override for test traffic
    - match:
        - headers:
            x-test-cohort:
              exact: canary
      route:
        - destination:
            host: payments-api
            subset: v2
    # Default 90/10 split
    - route:
        - destination:
            host: payments-api
            subset: v1
          weight: 90
        - destination:
            host: payments-api
            subset: v2
          weight: 10
      retries:
        attempts: 3
        perTryTimeout: 2s
        retryOn: 5xx,reset,connect-failure
      timeout: 10s
      fault:
        delay:                  # Chaos engineering: 0.1% requests get +5s delay
          percentage:
            value: 0.1
          fixedDelay: 5s
"#;

    fn vs(spec: &str) -> VirtualService {
        parse(&with_spec("VirtualService", spec))
    }

    #[test]
    fn reference_virtual_service_parses_and_validates() {
        let vs: VirtualService = assert_round_trip(REFERENCE);
        assert_eq!(vs.metadata.namespace.as_deref(), Some("payments"));
        let [canary, split] = vs.spec.http.as_slice() else {
            panic!("two http routes expected, got {:?}", vs.spec.http)
        };
        assert_eq!(
            canary.r#match[0].headers.get("x-test-cohort"),
            Some(&KeyMatch::from(StringMatch::Exact("canary".into())))
        );
        assert_eq!(canary.route[0].destination.subset.as_deref(), Some("v2"));
        let weights: Vec<_> = split.route.iter().map(|d| d.weight).collect();
        assert_eq!(weights, [Some(90), Some(10)]);
        let retries = split.retries.as_ref().expect("retries");
        assert_eq!(retries.attempts, Some(3));
        assert_eq!(retries.per_try_timeout, Some(Duration::from("2s")));
        assert_eq!(split.timeout, Some(Duration::from("10s")));
        let delay = split
            .fault
            .as_ref()
            .and_then(|f| f.delay.as_ref())
            .expect("delay");
        assert_eq!(delay.fixed_delay, Some(Duration::from("5s")));
        assert_eq!(delay.percentage, Some(Percent { value: 0.1 }));
        vs.validate_cel()
            .expect("reference object passes the CEL rules");
    }

    #[test]
    fn full_sample_round_trips_and_validates() {
        let text = repo_file("config/samples/istio/networking/virtualservice-full.yaml");
        let vs: VirtualService = assert_round_trip(&text);
        assert_eq!(vs.spec.http.len(), 5);
        assert_eq!(vs.spec.tls.len(), 1);
        assert_eq!(vs.spec.tcp.len(), 1);
        assert_eq!(
            vs.spec.http[0].r#match[0].headers.get("x-request-id"),
            Some(&KeyMatch::present())
        );
        vs.validate_cel().expect("sample passes the CEL rules");
    }

    #[test]
    fn cel_rules_accept_valid_and_reject_invalid() {
        // (valid spec, invalid spec, message of the rule the invalid one breaks)
        let cases: &[(&str, &str, &str)] = &[
            (
                "http:\n- route: [{destination: {host: a}}]",
                "http:\n- route: [{destination: {host: a}}]\n  redirect: {uri: /b}",
                "http: set exactly one of route, redirect, directResponse or delegate",
            ),
            (
                "http:\n- directResponse: {status: 503}",
                "http:\n- name: nothing-to-do",
                "http: set exactly one of route, redirect, directResponse or delegate",
            ),
            (
                "http:\n- route: [{destination: {host: a}, weight: 75}, {destination: {host: b}, weight: 25}]",
                "http:\n- route: [{destination: {host: a}, weight: 75}, {destination: {host: b}, weight: 20}]",
                "http.route: weights must sum to 100 when several destinations are listed and any sets a weight",
            ),
            (
                "http:\n- route: [{destination: {host: a}}, {destination: {host: b}}]",
                "http:\n- route: [{destination: {host: a}, weight: 100}, {destination: {host: b}}, {destination: {host: c}, weight: 5}]",
                "http.route: weights must sum to 100 when several destinations are listed and any sets a weight",
            ),
            (
                "tcp:\n- route: [{destination: {host: a}, weight: 50}, {destination: {host: b}, weight: 50}]",
                "tcp:\n- route: [{destination: {host: a}, weight: 50}, {destination: {host: b}, weight: 40}]",
                "tcp.route: weights must sum to 100 when several destinations are listed and any sets a weight",
            ),
            (
                "tls:\n- match: [{sniHosts: [a.example.com]}]\n  route: [{destination: {host: a}, weight: 30}, {destination: {host: b}, weight: 70}]",
                "tls:\n- match: [{sniHosts: [a.example.com]}]\n  route: [{destination: {host: a}, weight: 30}, {destination: {host: b}, weight: 30}]",
                "tls.route: weights must sum to 100 when several destinations are listed and any sets a weight",
            ),
            (
                "http:\n- redirect: {uri: /b}",
                "http:\n- redirect: {uri: /b}\n  rewrite: {uri: /c}",
                "http: rewrite cannot be combined with redirect",
            ),
            (
                "http:\n- route: [{destination: {host: a}}]\n  mirror: {host: m}",
                "http:\n- route: [{destination: {host: a}}]\n  mirror: {host: m}\n  mirrors: [{destination: {host: n}}]",
                "http: set mirror or mirrors, not both",
            ),
            (
                "http:\n- route: [{destination: {host: a}}]\n  mirrorPercentage: {value: 5.0}",
                "http:\n- route: [{destination: {host: a}}]\n  mirrorPercentage: {value: 5.0}\n  mirrorPercent: 5",
                "http: set mirrorPercentage or the deprecated mirrorPercent, not both",
            ),
            (
                "http:\n- redirect: {port: 8443}",
                "http:\n- redirect: {port: 8443, derivePort: FROM_REQUEST_PORT}",
                "redirect: set port or derivePort, not both",
            ),
            (
                "http:\n- directResponse: {status: 200, body: {string: ok}}",
                "http:\n- directResponse: {status: 200, body: {string: ok, bytes: b2s=}}",
                "directResponse.body: set string or bytes, not both",
            ),
            (
                "http:\n- route: [{destination: {host: a}}]\n  rewrite: {uriRegexRewrite: {match: ^/a, rewrite: /b}}",
                "http:\n- route: [{destination: {host: a}}]\n  rewrite: {uri: /, uriRegexRewrite: {match: ^/a, rewrite: /b}}",
                "rewrite: set uri or uriRegexRewrite, not both",
            ),
            (
                "http:\n- route: [{destination: {host: a}}]\n  fault: {abort: {httpStatus: 503}}",
                "http:\n- route: [{destination: {host: a}}]\n  fault: {}",
                "fault: set delay, abort or both",
            ),
            (
                "http:\n- route: [{destination: {host: a}}]\n  fault: {delay: {fixedDelay: 1s}}",
                "http:\n- route: [{destination: {host: a}}]\n  fault: {delay: {percentage: {value: 1.0}}}",
                "fault.delay: set exactly one of fixedDelay or exponentialDelay",
            ),
            (
                "http:\n- route: [{destination: {host: a}}]\n  fault: {abort: {grpcStatus: UNAVAILABLE}}",
                "http:\n- route: [{destination: {host: a}}]\n  fault: {abort: {grpcStatus: UNAVAILABLE, httpStatus: 503}}",
                "fault.abort: set exactly one of httpStatus, grpcStatus or http2Error",
            ),
            (
                "http:\n- route: [{destination: {host: a}}]\n  timeout: 1ms",
                "http:\n- route: [{destination: {host: a}}]\n  timeout: 0s",
                "http.timeout must be at least 1ms",
            ),
            (
                "http:\n- route: [{destination: {host: a}}]\n  retries: {attempts: 2, perTryTimeout: 500ms, backoff: 25ms}",
                "http:\n- route: [{destination: {host: a}}]\n  retries: {attempts: 2, perTryTimeout: 500us}",
                "retries.perTryTimeout must be at least 1ms",
            ),
            (
                "http:\n- route: [{destination: {host: a}}]\n  retries: {backoff: 1s}",
                "http:\n- route: [{destination: {host: a}}]\n  retries: {backoff: 0s}",
                "retries.backoff must be at least 1ms",
            ),
            (
                "http:\n- route: [{destination: {host: a}}]\n  corsPolicy: {maxAge: 1h}",
                "http:\n- route: [{destination: {host: a}}]\n  corsPolicy: {maxAge: 0s}",
                "corsPolicy.maxAge must be at least 1ms",
            ),
            (
                "http:\n- route: [{destination: {host: a}}]\n  fault: {delay: {exponentialDelay: 10ms}}",
                "http:\n- route: [{destination: {host: a}}]\n  fault: {delay: {fixedDelay: 0.5ms}}",
                "fault.delay.fixedDelay must be at least 1ms",
            ),
            (
                "http:\n- route: [{destination: {host: a}}]\n  fault: {delay: {exponentialDelay: 10ms}}",
                "http:\n- route: [{destination: {host: a}}]\n  fault: {delay: {exponentialDelay: 0ms}}",
                "fault.delay.exponentialDelay must be at least 1ms",
            ),
        ];
        for (valid, invalid, message) in cases {
            let ok = vs(&format!("hosts: [a]\n{valid}"));
            assert_eq!(
                cel_messages(ok.validate_cel()),
                Vec::<String>::new(),
                "valid case: {valid}"
            );
            let bad = vs(&format!("hosts: [a]\n{invalid}"));
            assert_rejected(bad.validate_cel(), message);
        }
    }

    #[test]
    fn rejections_name_the_route() {
        let bad = vs(
            "hosts: [a]\nhttp:\n- route: [{destination: {host: a}}]\n- redirect: {uri: /b}\n  directResponse: {status: 200}",
        );
        let errors = bad.validate_cel().expect_err("second route breaks a rule");
        assert_eq!(errors[0].field_path, "spec.http[1]");
    }
}
