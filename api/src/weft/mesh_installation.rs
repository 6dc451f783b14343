//! `MeshInstallation`: the one object a platform team writes. The operator
//! turns it into revisions, a control plane, gateways, CA material and
//! remote-cluster access, and reports back in its status.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::conditions::State;
use crate::istio::common::Duration;

/// Trust domain of workload identities when the spec names none.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
/// Namespace the control plane runs in and mesh-wide policy lives in.
pub const DEFAULT_ROOT_NAMESPACE: &str = "weft-system";
/// Grace period before an unused revision is deleted.
pub const DEFAULT_GRACE_PERIOD_SECONDS: i64 = 30;
/// Gateway classes Weft serves, so YAML written for Istio works unchanged.
pub const DEFAULT_GATEWAY_CLASSES: [&str; 2] = ["weft", "istio"];
/// Lifetime of a workload certificate.
pub const DEFAULT_WORKLOAD_CERT_TTL: &str = "24h";
/// Lifetime of a self-signed root.
pub const DEFAULT_ROOT_CERT_TTL: &str = "87600h";
/// Lifetime of the signing intermediate.
pub const DEFAULT_INTERMEDIATE_CERT_TTL: &str = "8760h";

/// Desired state of a Weft mesh in this cluster.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "weft.dev",
    version = "v1alpha1",
    kind = "MeshInstallation",
    status = "MeshInstallationStatus",
    shortname = "mi",
    category = "weft",
    cel,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".spec.version"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.activeRevision"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.state"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct MeshInstallationSpec {
    /// Weft version to run, e.g. `1.0.0`. Changing it upgrades the mesh
    /// according to `updateStrategy`.
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^v?[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$")
    )]
    pub version: String,

    /// How a version change rolls out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<UpdateStrategy>,

    /// Starting point for defaults: `default`, `minimal` (control plane only),
    /// `demo` (verbose logs, access logging on), `ambient`, `remote`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,

    /// Settings of the control plane (`weftd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<ControlPlane>,

    /// Gateways the operator runs (ingress, egress, east-west).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = kube::core::Rule::new("self.all(g, self.exists_one(h, h.name == g.name))").message("spec.gateways[].name must be unique within a MeshInstallation"))]
    pub gateways: Vec<GatewaySpec>,

    /// Settings of the data plane (the proxies next to workloads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataplane: Option<Dataplane>,

    /// Mesh-wide configuration: identity, telemetry, outbound policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_config: Option<MeshConfig>,

    /// Where the mesh CA comes from, certificate lifetimes and rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<Certificates>,

    /// Federation with other clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_cluster: Option<MultiCluster>,
}

/// How the mesh moves from one version to the next.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.workloadMigration) || !has(self.workloadMigration.enabled) || !self.workloadMigration.enabled || (has(self.type) && self.type == 'RevisionBased')").message("spec.updateStrategy.workloadMigration.enabled requires spec.updateStrategy.type RevisionBased"))]
pub struct UpdateStrategy {
    /// `InPlace` replaces the control plane; `RevisionBased` runs the new
    /// version beside the old one and moves workloads over.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "InPlace"))]
    pub type_: Option<UpdateStrategyType>,

    /// Seconds an unused revision is kept before it is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0), extend("default" = DEFAULT_GRACE_PERIOD_SECONDS))]
    pub inactive_revision_deletion_grace_period_seconds: Option<i64>,

    /// Automatic, health-gated migration of workloads to the new revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_migration: Option<WorkloadMigration>,
}

/// How the control plane is replaced on upgrade.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum UpdateStrategyType {
    /// Upgrade the running revision in place.
    #[default]
    InPlace,
    /// Run a revision per version and move workloads between them.
    RevisionBased,
}

/// Moves workloads to a new revision in batches, checking health between
/// batches and rolling back when a batch does not become healthy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadMigration {
    /// Migrate workloads automatically when the active revision changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,

    /// Most workloads restarted at once: a count or a percentage (`25%`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "25%"))]
    pub max_unavailable: Option<IntOrString>,

    /// What counts as a healthy batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<MigrationHealthCheck>,

    /// Move a failed batch back to the previous revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub rollback_on_failure: Option<bool>,
}

/// The health gate between migration batches.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationHealthCheck {
    /// How long a batch may take to become Ready before it counts as failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1), extend("default" = 300))]
    pub timeout_seconds: Option<i64>,

    /// How long a batch must stay Ready before the next one starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0), extend("default" = 10))]
    pub stable_seconds: Option<i64>,

    /// Failed batches tolerated before the migration stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0), extend("default" = 0))]
    pub failure_threshold: Option<i32>,
}

/// Named sets of defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Control plane and sidecar injection.
    #[default]
    Default,
    /// Control plane only, no gateways.
    Minimal,
    /// Verbose logs and access logging, for trying things out.
    Demo,
    /// Per-node proxies instead of sidecars.
    Ambient,
    /// A remote cluster configured by a primary's control plane.
    Remote,
}

/// Log verbosity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warn,
    /// Normal operation.
    #[default]
    Info,
    /// Detail for debugging.
    Debug,
    /// Everything.
    Trace,
}

/// Settings of the `weftd` Deployment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlane {
    /// Number of `weftd` replicas (leader election above one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10), extend("default" = 1))]
    pub replicas: Option<i32>,

    /// CPU and memory requests and limits of `weftd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Log verbosity of `weftd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<LogLevel>,

    /// Extra environment variables for `weftd`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
}

/// A gateway the operator runs.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.kind != 'eastwest' || !has(self.service) || !has(self.service.ports) || self.service.ports.exists(p, p.port == 15443)").message("spec.gateways[].service.ports: an eastwest gateway must expose port 15443"))]
pub struct GatewaySpec {
    /// Name of the gateway's Deployment and Service.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = kube::core::Rule::new(super::names::DNS_LABEL_CEL).message("spec.gateways[].name must be a DNS label: lower-case letters, digits and '-', at most 63 characters"))]
    pub name: String,

    /// Namespace the gateway runs in (default: the root namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,

    /// What the gateway is for.
    pub kind: GatewayKind,

    /// The gateway's Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<GatewayService>,

    /// Number of gateway replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100), extend("default" = 1))]
    pub replicas: Option<i32>,

    /// Extra labels on the gateway's pods (Istio `Gateway` selectors match them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,

    /// CPU and memory of the gateway proxies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// The role of a gateway.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GatewayKind {
    /// Traffic entering the mesh.
    #[default]
    Ingress,
    /// Traffic leaving the mesh.
    Egress,
    /// Traffic between clusters on different networks (port 15443).
    Eastwest,
}

/// The Service in front of a gateway.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayService {
    /// Kubernetes Service type.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "LoadBalancer"))]
    pub type_: Option<ServiceType>,

    /// Ports the Service exposes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub ports: Vec<GatewayPort>,
}

/// Kubernetes Service types a gateway can use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ServiceType {
    /// Reachable inside the cluster only.
    ClusterIP,
    /// Also on a port of every node.
    NodePort,
    /// Also through the cloud's load balancer.
    #[default]
    LoadBalancer,
}

/// One port of a gateway Service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayPort {
    /// Port name; its prefix (`http`, `https`, `tls`, `tcp`, `grpc`) declares the protocol.
    pub name: String,
    /// Port the Service listens on.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Port the gateway proxy listens on (default: `port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub target_port: Option<i32>,
    /// Node port, for `NodePort` and `LoadBalancer` Services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 30000, max = 32767))]
    pub node_port: Option<i32>,
}

/// Settings of the proxies next to workloads.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dataplane {
    /// `sidecar`: a proxy in every pod; `ambient`: a proxy per node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "sidecar"))]
    pub mode: Option<DataplaneMode>,

    /// CPU and memory of each proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Worker threads per proxy (0: one per CPU of the limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 64), extend("default" = 2))]
    pub concurrency: Option<i32>,

    /// Start the application only once its proxy is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub hold_application_until_proxy_starts: Option<bool>,

    /// Log verbosity of the proxies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<LogLevel>,
}

/// How workloads join the data plane.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DataplaneMode {
    /// A proxy container in every pod.
    #[default]
    Sidecar,
    /// One proxy per node.
    Ambient,
}

/// Mesh-wide configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeshConfig {
    /// Trust domain of workload identities: `spiffe://<trustDomain>/ns/<ns>/sa/<sa>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"), extend("default" = DEFAULT_TRUST_DOMAIN))]
    pub trust_domain: Option<String>,

    /// Namespace of the control plane, whose policies apply mesh-wide
    /// (Istio's root namespace). Set `istio-system` to keep Istio's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), extend("default" = DEFAULT_ROOT_NAMESPACE))]
    pub root_namespace: Option<String>,

    /// Access logs of the proxies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_logging: Option<AccessLogging>,

    /// Distributed tracing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<Tracing>,

    /// What happens to traffic for hosts the mesh does not know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "ALLOW_ANY"))]
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,

    /// GatewayClass names whose Gateways Weft programs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub gateway_class_names: Vec<String>,
}

/// Access logging of every request and connection.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessLogging {
    /// Write access logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Line format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "JSON"))]
    pub encoding: Option<AccessLogEncoding>,
}

/// Format of access log lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum AccessLogEncoding {
    /// Human-readable text.
    #[serde(rename = "TEXT")]
    Text,
    /// One JSON object per line.
    #[default]
    #[serde(rename = "JSON")]
    Json,
}

/// Tracing of requests through the mesh.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tracing {
    /// Percentage of requests traced, 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 100.0), extend("default" = 1.0))]
    pub sampling: Option<f64>,
    /// OTLP/gRPC collector address, `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253), regex(pattern = r"^[^\s:/]+:[0-9]{1,5}$"))]
    pub otlp_endpoint: Option<String>,
}

/// Istio's outbound traffic policy modes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[allow(non_camel_case_types)]
pub enum OutboundTrafficPolicy {
    /// Unknown hosts are passed through.
    #[default]
    ALLOW_ANY,
    /// Only hosts in the service registry (Services, ServiceEntries) are reachable.
    REGISTRY_ONLY,
}

/// The mesh CA and certificate lifetimes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Certificates {
    /// Where the signing CA comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<CertificateAuthority>,

    /// Lifetime of a self-signed root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = DEFAULT_ROOT_CERT_TTL))]
    #[serde(rename = "rootCertTTL")]
    pub root_cert_ttl: Option<Duration>,

    /// Lifetime of the signing intermediate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = DEFAULT_INTERMEDIATE_CERT_TTL))]
    #[serde(rename = "intermediateCertTTL")]
    pub intermediate_cert_ttl: Option<Duration>,

    /// Lifetime of a workload certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = DEFAULT_WORKLOAD_CERT_TTL))]
    #[serde(rename = "workloadCertTTL")]
    pub workload_cert_ttl: Option<Duration>,

    /// When certificates are renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
}

/// The source of the signing CA.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.type != 'PluggedIn' || has(self.secretRef)").message("spec.certificates.ca.secretRef is required when spec.certificates.ca.type is PluggedIn: name the Secret holding ca-cert.pem, ca-key.pem, root-cert.pem and cert-chain.pem"))]
#[x_kube(validation = kube::core::Rule::new("self.type != 'SelfSigned' || !has(self.secretRef)").message("spec.certificates.ca.secretRef must not be set when spec.certificates.ca.type is SelfSigned"))]
pub struct CertificateAuthority {
    /// `SelfSigned`: the operator makes and rotates a root; `PluggedIn`: a
    /// Secret in Istio's `cacerts` layout provides it.
    #[serde(rename = "type")]
    pub type_: CaType,

    /// The Secret holding `ca-cert.pem`, `ca-key.pem`, `root-cert.pem` and `cert-chain.pem`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
}

/// Kinds of mesh CA.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CaType {
    /// Generated and rotated by the operator.
    #[default]
    SelfSigned,
    /// Provided by the platform team in a Secret.
    PluggedIn,
}

/// A Secret by name, in the root namespace unless another is given.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    /// Secret name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Secret namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub namespace: Option<String>,
    /// Key inside the Secret, where one is needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub key: Option<String>,
}

/// When certificates are renewed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    /// Percentage of a workload certificate's lifetime after which it is renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 90), extend("default" = 50))]
    pub workload_renew_percent: Option<i32>,
    /// Renew the intermediate when it has less than this left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "720h"))]
    pub intermediate_renew_before: Option<Duration>,
    /// Start a root rotation when the root has less than this left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "8760h"))]
    pub root_renew_before: Option<Duration>,
}

/// Federation with other clusters.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.remotes) || size(self.remotes) == 0 || has(self.clusterName)").message("spec.multiCluster.clusterName is required when spec.multiCluster.remotes are listed"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.clusterName) || !has(self.remotes) || self.remotes.all(r, r.name != self.clusterName)").message("spec.multiCluster.remotes[].name must differ from spec.multiCluster.clusterName"))]
pub struct MultiCluster {
    /// Mesh identifier shared by every cluster of the mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub mesh_id: Option<String>,

    /// This cluster's name, unique in the mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = kube::core::Rule::new(super::names::DNS_LABEL_CEL).message("spec.multiCluster.clusterName must be a DNS label"))]
    pub cluster_name: Option<String>,

    /// Network this cluster's pods are on; clusters on other networks are
    /// reached through their east-west gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub network: Option<String>,

    /// `primary` runs a control plane; `remote` is configured by a primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "primary"))]
    pub role: Option<ClusterRole>,

    /// Clusters whose services and endpoints this control plane discovers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = kube::core::Rule::new("self.all(r, self.exists_one(s, s.name == r.name))").message("spec.multiCluster.remotes[].name must be unique"))]
    pub remotes: Vec<RemoteCluster>,
}

/// The role of a cluster in the mesh.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClusterRole {
    /// Runs its own control plane.
    #[default]
    Primary,
    /// Configured by a primary's control plane.
    Remote,
}

/// Another cluster of the mesh.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemoteCluster {
    /// The remote cluster's name (its `clusterName`).
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Secret holding a kubeconfig for the remote's API server.
    pub kubeconfig_secret_ref: SecretReference,
    /// The remote's network, if it differs from this cluster's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub network: Option<String>,
}

/// What the operator observed and did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeshInstallationStatus {
    /// Reconciled, Ready, Progressing, Degraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// One-word summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<State>,
    /// Revision new workloads join.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_revision: Option<String>,
    /// How many revisions exist, are ready and are in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revisions: Option<RevisionCounts>,
    /// State of the mesh CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<CaStatus>,
}

/// Counts of this installation's revisions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionCounts {
    /// Revisions that exist.
    pub total: i32,
    /// Revisions whose control plane is Ready.
    pub ready: i32,
    /// Revisions that workloads or namespaces use.
    pub in_use: i32,
}

/// State of the mesh CA, with nothing secret in it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaStatus {
    /// SHA-256 fingerprint of the current root certificate, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_fingerprint: Option<String>,
    /// When the current root expires (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    /// Where a root rotation stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_phase: Option<RotationPhase>,
}

/// Phases of a zero-downtime root rotation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RotationPhase {
    /// No rotation under way.
    #[default]
    Idle,
    /// The new root is added to every trust bundle beside the old one.
    Distributing,
    /// Workload certificates are reissued from the new root.
    Reissuing,
    /// The old root is removed from trust bundles.
    Retiring,
}
