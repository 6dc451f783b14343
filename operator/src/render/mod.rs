//! Pure rendering: resolved settings ([`crate::resolve::MeshSettings`]) and
//! the inputs read from the cluster (CA material, namespaces) → the objects
//! that should exist. Two scopes, one per controller:
//!
//! - [`installation`]: what a `MeshInstallation` owns — the mesh namespace,
//!   the CA Secret, the trust-bundle ConfigMap in every namespace, the
//!   `MeshRevision`, and the gateways of `spec.gateways`.
//! - [`revision`]: what a `MeshRevision` owns — weftd's ServiceAccount,
//!   RBAC, mesh ConfigMap, Deployment, PodDisruptionBudget and Service, and
//!   the injection and validation webhook registrations.
//!
//! No client, no clock, no randomness: golden tests pin the output.

pub mod controlplane;
pub mod gateways;
pub mod installation;
pub mod manifest;
pub mod revision;
pub mod webhooks;

pub use manifest::{Manifest, RenderError};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// The object everything rendered is owned by (garbage collection).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
}

impl Owner {
    pub fn reference(&self) -> OwnerReference {
        OwnerReference {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }
}

/// Images the rendered Deployments run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Images {
    pub weftd: String,
    pub proxy: String,
    pub pull_policy: String,
}

impl Default for Images {
    fn default() -> Self {
        Self {
            weftd: "weft.local/weftd:dev".to_owned(),
            proxy: "weft.local/weft-proxy:dev".to_owned(),
            pull_policy: "IfNotPresent".to_owned(),
        }
    }
}
