//! `MeshRevision`: one running control-plane revision. The operator creates
//! one per version (RevisionBased) or keeps one (InPlace) and owns it; users
//! read it to see what runs and who uses it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::conditions::State;
use super::mesh_installation::{Certificates, ControlPlane, Dataplane, MeshConfig, MultiCluster};

/// A control-plane revision, resolved from its MeshInstallation.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "weft.dev",
    version = "v1alpha1",
    kind = "MeshRevision",
    status = "MeshRevisionStatus",
    shortname = "mrev",
    category = "weft",
    cel,
    validation = kube::core::Rule::new("size(self.metadata.name) <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("metadata.name: a revision name must be a DNS label (lower-case letters, digits and '-', at most 63 characters) because it becomes part of object names and the istio.io/rev label"),
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".spec.version"}"#,
    printcolumn = r#"{"name":"Installation","type":"string","jsonPath":".spec.installation"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"In Use","type":"string","jsonPath":".status.conditions[?(@.type==\"InUse\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct MeshRevisionSpec {
    /// The MeshInstallation this revision belongs to.
    #[schemars(length(min = 1, max = 253))]
    pub installation: String,

    /// Weft version this revision runs.
    #[schemars(length(min = 1, max = 64))]
    pub version: String,

    /// Control-plane settings, as resolved from the installation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<ControlPlane>,

    /// Data-plane settings for workloads of this revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataplane: Option<Dataplane>,

    /// Mesh configuration served by this revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_config: Option<MeshConfig>,

    /// CA settings this revision signs with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<Certificates>,

    /// Multi-cluster settings of this revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_cluster: Option<MultiCluster>,
}

/// What runs for a revision and who uses it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeshRevisionStatus {
    /// Reconciled, Ready, InUse.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// One-word summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<State>,
    /// Namespaces whose labels select this revision, directly or through a tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces_in_use: Option<i32>,
    /// Pods whose proxies are connected to this revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workloads_in_use: Option<i32>,
}
