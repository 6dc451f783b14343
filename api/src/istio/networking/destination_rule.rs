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
    printcolumn = r#"{"name":"Host","type":"string","jsonPath":".spec.host","description":"Service host the policies apply to"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
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
    #[schemars(length(max = 32))]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::istio::networking::test_support::*;

    /// The DestinationRule of the reference users come from.
    const REFERENCE: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: payments-api
  namespace: payments
spec:
  host: payments-api.payments.svc.cluster.local
  trafficPolicy:
    connectionPool:
      tcp:
        maxConnections: 100
      http:
        http1MaxPendingRequests: 50
        http2MaxRequests: 1000
        maxRequestsPerConnection: 10
    outlierDetection:        # Circuit breaking
      consecutive5xxErrors: 5
      interval: 30s
      baseEjectionTime: 30s
      maxEjectionPercent: 50
  subsets:
    - name: v1
      labels:
        version: v1
    - name: v2
      labels:
        version: v2
"#;

    fn dr(spec: &str) -> DestinationRule {
        parse(&with_spec("DestinationRule", spec))
    }

    #[test]
    fn reference_destination_rule_parses_and_validates() {
        let dr: DestinationRule = assert_round_trip(REFERENCE);
        assert_eq!(dr.spec.host, "payments-api.payments.svc.cluster.local");
        let policy = dr.spec.traffic_policy.as_ref().expect("trafficPolicy");
        let pool = policy.connection_pool.as_ref().expect("connectionPool");
        assert_eq!(pool.tcp.as_ref().and_then(|t| t.max_connections), Some(100));
        let http = pool.http.as_ref().expect("http pool");
        assert_eq!(http.http1_max_pending_requests, Some(50));
        assert_eq!(http.http2_max_requests, Some(1000));
        assert_eq!(http.max_requests_per_connection, Some(10));
        let outlier = policy.outlier_detection.as_ref().expect("outlierDetection");
        assert_eq!(outlier.consecutive_5xx_errors, Some(5));
        assert_eq!(outlier.interval, Some(Duration::from("30s")));
        assert_eq!(outlier.base_ejection_time, Some(Duration::from("30s")));
        assert_eq!(outlier.max_ejection_percent, Some(50));
        let names: Vec<_> = dr.spec.subsets.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["v1", "v2"]);
        dr.validate_cel()
            .expect("reference object passes the CEL rules");
    }

    #[test]
    fn full_sample_round_trips_and_validates() {
        let text = repo_file("config/samples/istio/networking/destinationrule-full.yaml");
        let dr: DestinationRule = assert_round_trip(&text);
        assert_eq!(dr.spec.subsets.len(), 3);
        let policy = dr.spec.traffic_policy.as_ref().expect("trafficPolicy");
        assert_eq!(policy.port_level_settings.len(), 1);
        assert_eq!(
            policy.proxy_protocol.as_ref().and_then(|p| p.version),
            Some(ProxyProtocolVersion::V2)
        );
        dr.validate_cel().expect("sample passes the CEL rules");
    }

    #[test]
    fn cel_rules_accept_valid_and_reject_invalid() {
        // (valid spec, invalid spec, message of the rule the invalid one breaks)
        let cases: &[(&str, &str, &str)] = &[
            (
                "subsets: [{name: v1}, {name: v2}]",
                "subsets: [{name: v1}, {name: v2}, {name: v1}]",
                "subsets: names must be unique",
            ),
            (
                "trafficPolicy: {portLevelSettings: [{port: {number: 80}}, {port: {number: 443}}]}",
                "trafficPolicy: {portLevelSettings: [{port: {number: 80}}, {port: {number: 80}}]}",
                "trafficPolicy.portLevelSettings: port numbers must be unique",
            ),
            (
                "trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}",
                "trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN, consistentHash: {useSourceIp: true}}}",
                "loadBalancer: set simple or consistentHash, not both",
            ),
            (
                "trafficPolicy: {loadBalancer: {warmup: {duration: 30s}}}",
                "trafficPolicy: {loadBalancer: {warmup: {duration: 30s}, warmupDurationSecs: 30s}}",
                "loadBalancer: set warmup or the deprecated warmupDurationSecs, not both",
            ),
            (
                "trafficPolicy: {loadBalancer: {warmupDurationSecs: 30s}}",
                "trafficPolicy: {loadBalancer: {warmupDurationSecs: 0s}}",
                "loadBalancer.warmupDurationSecs must be at least 1ms",
            ),
            (
                "trafficPolicy: {loadBalancer: {warmup: {duration: 1ms}}}",
                "trafficPolicy: {loadBalancer: {warmup: {duration: 0s}}}",
                "warmup.duration must be at least 1ms",
            ),
            (
                "trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}",
                "trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user, useSourceIp: true}}}",
                "consistentHash: set only one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName",
            ),
            (
                "trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 65537}}}}",
                "trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, maglev: {}, ringHash: {}}}}",
                "consistentHash: set ringHash or maglev, not both",
            ),
            (
                "trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, minimumRingSize: 1024}}}",
                "trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, minimumRingSize: 1024, ringHash: {}}}}",
                "consistentHash: the deprecated minimumRingSize cannot be combined with ringHash or maglev",
            ),
            (
                "trafficPolicy: {loadBalancer: {localityLbSetting: {failover: [{from: a, to: b}]}}}",
                "trafficPolicy: {loadBalancer: {localityLbSetting: {failover: [{from: a, to: b}], distribute: [{from: a/*, to: {b/*: 100}}]}}}",
                "localityLbSetting: set distribute or failover, not both",
            ),
            (
                "trafficPolicy: {tls: {mode: MUTUAL, credentialName: client-cert}}",
                "trafficPolicy: {tls: {mode: MUTUAL, clientCertificate: /etc/certs/cert.pem}}",
                "tls.mode MUTUAL needs credentialName, or clientCertificate and privateKey",
            ),
            (
                "trafficPolicy: {connectionPool: {tcp: {connectTimeout: 10ms, maxConnectionDuration: 1h, idleTimeout: 1h}}}",
                "trafficPolicy: {connectionPool: {tcp: {connectTimeout: 0s}}}",
                "connectTimeout must be at least 1ms",
            ),
            (
                "trafficPolicy: {connectionPool: {tcp: {maxConnectionDuration: 1h}}}",
                "trafficPolicy: {connectionPool: {tcp: {maxConnectionDuration: 0.1ms}}}",
                "maxConnectionDuration must be at least 1ms",
            ),
            (
                "trafficPolicy: {connectionPool: {tcp: {idleTimeout: 1h}}}",
                "trafficPolicy: {connectionPool: {tcp: {idleTimeout: 0s}}}",
                "tcp.idleTimeout must be at least 1ms",
            ),
            (
                "trafficPolicy: {connectionPool: {tcp: {tcpKeepalive: {time: 10s, interval: 5s}}}}",
                "trafficPolicy: {connectionPool: {tcp: {tcpKeepalive: {time: 0s}}}}",
                "tcpKeepalive.time must be at least 1ms",
            ),
            (
                "trafficPolicy: {connectionPool: {tcp: {tcpKeepalive: {interval: 5s}}}}",
                "trafficPolicy: {connectionPool: {tcp: {tcpKeepalive: {interval: 0s}}}}",
                "tcpKeepalive.interval must be at least 1ms",
            ),
            (
                "trafficPolicy: {connectionPool: {http: {idleTimeout: 5m}}}",
                "trafficPolicy: {connectionPool: {http: {idleTimeout: 0s}}}",
                "http.idleTimeout must be at least 1ms",
            ),
            (
                "trafficPolicy: {outlierDetection: {interval: 10s}}",
                "trafficPolicy: {outlierDetection: {interval: 0s}}",
                "outlierDetection.interval must be at least 1ms",
            ),
            (
                "trafficPolicy: {outlierDetection: {baseEjectionTime: 30s}}",
                "trafficPolicy: {outlierDetection: {baseEjectionTime: 0s}}",
                "outlierDetection.baseEjectionTime must be at least 1ms",
            ),
            (
                "trafficPolicy: {retryBudget: {budgetInterval: 10s}}",
                "trafficPolicy: {retryBudget: {budgetInterval: 0s}}",
                "retryBudget.budgetInterval must be at least 1ms",
            ),
            (
                "subsets: [{name: v1, trafficPolicy: {tls: {mode: SIMPLE}}}]",
                "subsets: [{name: v1, trafficPolicy: {tls: {mode: MUTUAL}}}]",
                "tls.mode MUTUAL needs credentialName, or clientCertificate and privateKey",
            ),
        ];
        for (valid, invalid, message) in cases {
            let ok = dr(&format!("host: reviews\n{valid}"));
            assert_eq!(
                cel_messages(ok.validate_cel()),
                Vec::<String>::new(),
                "valid case: {valid}"
            );
            let bad = dr(&format!("host: reviews\n{invalid}"));
            assert_rejected(bad.validate_cel(), message);
        }
    }
}
