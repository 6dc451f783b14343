//! `MeshRevisionTag`: a stable name (`default`, `stable`, `canary`) for a
//! revision. Namespaces label themselves `istio.io/rev=<tag>` and follow the
//! tag when it moves; the `default` tag also serves `istio-injection=enabled`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The tag that also answers `istio-injection=enabled` and `sidecar.istio.io/inject`.
pub const DEFAULT_TAG: &str = "default";

/// An alias for a revision.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "weft.dev",
    version = "v1alpha1",
    kind = "MeshRevisionTag",
    status = "MeshRevisionTagStatus",
    shortname = "mtag",
    category = "weft",
    cel,
    validation = kube::core::Rule::new("size(self.metadata.name) <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("metadata.name: a tag name must be a DNS label (lower-case letters, digits and '-', at most 63 characters) because namespaces select it with the istio.io/rev label"),
    printcolumn = r#"{"name":"Target Kind","type":"string","jsonPath":".spec.targetRef.kind"}"#,
    printcolumn = r#"{"name":"Target","type":"string","jsonPath":".spec.targetRef.name"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.revision"}"#,
    printcolumn = r#"{"name":"In Use","type":"string","jsonPath":".status.conditions[?(@.type==\"InUse\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct MeshRevisionTagSpec {
    /// What the tag points at.
    pub target_ref: TagTarget,
}

/// The object a tag resolves through.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagTarget {
    /// `MeshInstallation`: the tag floats with its active revision;
    /// `MeshRevision`: the tag is pinned to that revision.
    pub kind: TagTargetKind,
    /// Name of the MeshInstallation or MeshRevision.
    #[x_kube(validation = kube::core::Rule::new("size(self) <= 253 && self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')").message("spec.targetRef.name must be the name of a MeshInstallation or MeshRevision"))]
    pub name: String,
}

/// Kinds a tag can point at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TagTargetKind {
    /// Follow the installation's active revision.
    #[default]
    MeshInstallation,
    /// Stay on one revision.
    MeshRevision,
}

/// Where a tag points now.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeshRevisionTagStatus {
    /// Reconciled, InUse.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Revision the tag resolves to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}
