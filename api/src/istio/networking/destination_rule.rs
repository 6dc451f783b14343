//! `DestinationRule`: policies for traffic to a service once routing chose it:
//! load balancing, connection limits, outlier detection, TLS, subsets.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::connection_pool::ConnectionPoolSettings;
use super::tls::ClientTlsSettings;
use super::{MAX_ITERATED_ITEMS, min_1ms};
use crate::istio::common::{Duration, IstioStatus, PortSelector, WorkloadSelector};

/// Traffic policies for one service host and its named subsets.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "networking.istio.io",
    version = "v1",
    kind = "DestinationRule",
    namespaced,
    status = "IstioStatus",
    shortname = "dr",
    category = "istio-io",
    category = "networking-istio-io",
    cel,
    doc = "Policies for traffic to a service: load balancing, connection pool, outlier detection, TLS and subsets.",
    printcolumn(
        name = "Host",
        type_ = "string",
        description = "The name of a service from the service registry",
        json_path = ".spec.host"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "!has(self.subsets) || self.subsets.all(s, self.subsets.exists_one(t, t.name == s.name))"
).message("subsets: names must be unique"))]
pub struct DestinationRuleSpec {
    /// Service the policies apply to: a short name (resolved in the rule's
    /// namespace), a FQDN, or a ServiceEntry host; wildcards allowed.
    #[schemars(length(max = 253))]
    pub host: String,
    /// Policies for all traffic to the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
    /// Named groups of the host's endpoints, selected by label, each
    /// optionally with its own policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ITERATED_ITEMS))]
    pub subsets: Vec<Subset>,
    /// Namespaces the rule is visible in: `.` for its own, `*` for all
    /// (default), or namespace names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    /// Workloads in the rule's namespace the rule applies to (as callers);
    /// all of them when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
}

/// Policies for traffic to a host, optionally overridden per port.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "!has(self.portLevelSettings) || self.portLevelSettings.all(p, !has(p.port) || !has(p.port.number) || self.portLevelSettings.exists_one(q, has(q.port) && has(q.port.number) && q.port.number == p.port.number))"
).message("trafficPolicy.portLevelSettings: port numbers must be unique"))]
pub struct TrafficPolicy {
    /// Load-balancing algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Connection and request limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Ejection of unhealthy endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// TLS towards the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTlsSettings>,
    /// Overrides for single ports; a port-level policy replaces the
    /// top-level one field group by field group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub port_level_settings: Vec<PortTrafficPolicy>,
    /// Tunnel the connection (HTTP CONNECT) through the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelSettings>,
    /// Send a PROXY protocol header to the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<ProxyProtocol>,
    /// Limit on concurrent retries relative to active requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<RetryBudget>,
}

/// Policies for one port of the host.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortTrafficPolicy {
    /// The port these settings apply to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
    /// Load-balancing algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Connection and request limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Ejection of unhealthy endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// TLS towards the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTlsSettings>,
}

/// A named group of a service's endpoints.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subset {
    /// Name routes refer to; unique within the rule.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Labels an endpoint must carry to belong to the subset.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Policies for this subset, overriding the rule's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
}

/// Simple load-balancing algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SimpleLb {
    /// The proxy's default (currently LEAST_REQUEST).
    #[serde(rename = "UNSPECIFIED")]
    Unspecified,
    /// Deprecated alias of LEAST_REQUEST.
    #[serde(rename = "LEAST_CONN")]
    LeastConn,
    /// Pick an endpoint at random.
    #[serde(rename = "RANDOM")]
    Random,
    /// Forward to the address the caller asked for, without load balancing.
    #[serde(rename = "PASSTHROUGH")]
    Passthrough,
    /// Take endpoints in turn.
    #[serde(rename = "ROUND_ROBIN")]
    RoundRobin,
    /// Pick the less loaded of two random endpoints.
    #[serde(rename = "LEAST_REQUEST")]
    LeastRequest,
}

/// How requests are spread over endpoints.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.simple) && has(self.consistentHash))")
    .message("loadBalancer: set simple or consistentHash, not both"))]
#[x_kube(validation = Rule::new("!(has(self.warmupDurationSecs) && has(self.warmup))")
    .message("loadBalancer: set warmup or the deprecated warmupDurationSecs, not both"))]
pub struct LoadBalancerSettings {
    /// A simple algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simple: Option<SimpleLb>,
    /// Hash-based affinity: requests with the same key go to the same endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent_hash: Option<ConsistentHashLb>,
    /// Locality-aware weighting and failover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality_lb_setting: Option<LocalityLbSetting>,
    /// Deprecated: slow-start window for new endpoints; use `warmup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = min_1ms("loadBalancer.warmupDurationSecs must be at least 1ms"))]
    pub warmup_duration_secs: Option<Duration>,
    /// Slow start: new endpoints get a growing share of traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<WarmupConfiguration>,
}

/// Slow-start settings for new endpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WarmupConfiguration {
    /// How long an endpoint is warmed up.
    #[x_kube(validation = min_1ms("warmup.duration must be at least 1ms"))]
    pub duration: Duration,
    /// Share of its full traffic (percent) an endpoint starts with; 10 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub minimum_percent: Option<f64>,
    /// How fast traffic grows: 1.0 linear, above 1.0 slower at first; 1.0 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1.0))]
    pub aggression: Option<f64>,
}

/// Hash-based load balancing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "(has(self.httpHeaderName) ? 1 : 0) + (has(self.httpCookie) ? 1 : 0) + (has(self.useSourceIp) ? 1 : 0) + (has(self.httpQueryParameterName) ? 1 : 0) <= 1"
).message("consistentHash: set only one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName"))]
#[x_kube(validation = Rule::new("!(has(self.ringHash) && has(self.maglev))")
    .message("consistentHash: set ringHash or maglev, not both"))]
#[x_kube(validation = Rule::new("!(has(self.minimumRingSize) && (has(self.ringHash) || has(self.maglev)))")
    .message("consistentHash: the deprecated minimumRingSize cannot be combined with ringHash or maglev"))]
pub struct ConsistentHashLb {
    /// Hash on this request header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_header_name: Option<String>,
    /// Hash on this cookie, which the proxy creates when it is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_cookie: Option<HttpCookie>,
    /// Hash on the caller's IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_source_ip: Option<bool>,
    /// Hash on this query parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_query_parameter_name: Option<String>,
    /// Ring-hash algorithm (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring_hash: Option<RingHash>,
    /// Maglev algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maglev: Option<MagLev>,
    /// Deprecated: ring size for ring hash; use `ringHash.minimumRingSize`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_ring_size: Option<u64>,
}

/// Ring-hash parameters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RingHash {
    /// Minimum number of virtual nodes on the ring; 1024 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_ring_size: Option<u64>,
}

/// Maglev parameters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MagLev {
    /// Lookup table size, a prime number; 65537 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_size: Option<u64>,
}

/// The cookie a hash is computed from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpCookie {
    /// Cookie name.
    pub name: String,
    /// Path set on a generated cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Lifetime of a generated cookie; `0s` makes it a session cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Duration>,
    /// Further attributes set on a generated cookie.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<CookieAttribute>,
}

/// One cookie attribute, e.g. `SameSite=Strict` or `Secure`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CookieAttribute {
    /// Attribute name.
    pub name: String,
    /// Attribute value; empty for flags such as `Secure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Locality-aware load balancing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.distribute) && has(self.failover))")
    .message("localityLbSetting: set distribute or failover, not both"))]
pub struct LocalityLbSetting {
    /// Explicit traffic shares from each caller locality to target localities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distribute: Vec<LocalityDistribute>,
    /// Region to fail over to when a region has no healthy endpoints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover: Vec<LocalityFailover>,
    /// Ordered endpoint labels that decide failover priority (endpoints
    /// sharing more leading labels with the caller come first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover_priority: Vec<String>,
    /// Turn locality load balancing on or off for this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Traffic shares from one caller locality.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalityDistribute {
    /// Caller locality, `region/zone/subzone`; `*` wildcards allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Target localities and their traffic shares, summing to 100.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub to: BTreeMap<String, u32>,
}

/// Failover from one region to another.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalityFailover {
    /// Region whose traffic fails over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Region that takes the traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// Ejection of endpoints that keep failing (circuit breaking).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutlierDetection {
    /// Count local-origin failures (connect errors, timeouts) apart from
    /// upstream errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_external_local_origin_errors: Option<bool>,
    /// Consecutive local-origin failures before ejection (with
    /// `splitExternalLocalOriginErrors`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_local_origin_failures: Option<u32>,
    /// Consecutive 502, 503 and 504 responses (and connect failures) before ejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_gateway_errors: Option<u32>,
    /// Consecutive 5xx responses (and connect failures) before ejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_5xx_errors: Option<u32>,
    /// Time between ejection sweeps; 10s when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = min_1ms("outlierDetection.interval must be at least 1ms"))]
    pub interval: Option<Duration>,
    /// Minimum ejection time, multiplied by the number of ejections; 30s when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = min_1ms("outlierDetection.baseEjectionTime must be at least 1ms"))]
    pub base_ejection_time: Option<Duration>,
    /// Most endpoints (percent) ejected at once; 10 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub max_ejection_percent: Option<i32>,
    /// Outlier detection pauses while fewer endpoints (percent) than this are healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub min_health_percent: Option<i32>,
    /// Deprecated: use `consecutiveGatewayErrors` or `consecutive5xxErrors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_errors: Option<i32>,
}

/// Tunnelling of the upstream connection.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TunnelSettings {
    /// Tunnel protocol: `CONNECT` (HTTP/1.1) or `POST` (HTTP/2); `CONNECT` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Host the tunnel leads to.
    pub target_host: String,
    /// Port the tunnel leads to.
    #[schemars(range(min = 1, max = 65535))]
    pub target_port: u32,
}

/// PROXY protocol versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ProxyProtocolVersion {
    /// Text header.
    V1,
    /// Binary header.
    V2,
}

/// A PROXY protocol header sent to the upstream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProxyProtocol {
    /// Header version; V1 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<ProxyProtocolVersion>,
}

/// Limit on concurrent retries as a share of active requests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryBudget {
    /// Concurrent retries allowed, as a percentage of active and pending requests; 20 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub percent: Option<f64>,
    /// Retries always allowed regardless of the percentage; 3 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_retry_concurrency: Option<u32>,
    /// Window over which requests are counted for the budget; only in-flight
    /// requests count when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = min_1ms("retryBudget.budgetInterval must be at least 1ms"))]
    pub budget_interval: Option<Duration>,
}
