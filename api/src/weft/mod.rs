//! `weft.dev/v1alpha1`: the lifecycle API a platform team writes
//! ([`MeshInstallation`], [`MeshRevisionTag`]) and the operator-owned
//! [`MeshRevision`] it drives.

pub mod conditions;
pub mod mesh_installation;
pub mod mesh_revision;
pub mod mesh_revision_tag;
pub mod names;

pub use conditions::ConditionType;
pub use mesh_installation::*;
pub use mesh_revision::*;
pub use mesh_revision_tag::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// API group of Weft's own resources.
pub const GROUP: &str = "weft.dev";
/// The version every Weft resource is served at.
pub const VERSION: &str = "v1alpha1";

/// The CRDs of `weft.dev`.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        MeshInstallation::crd(),
        MeshRevision::crd(),
        MeshRevisionTag::crd(),
    ]
}
