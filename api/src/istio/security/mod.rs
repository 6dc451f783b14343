//! `security.istio.io`: PeerAuthentication, AuthorizationPolicy, RequestAuthentication.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// The CRDs of this group at version `v1` ([`crate::crd`] adds `v1beta1`).
pub fn crds() -> Vec<CustomResourceDefinition> {
    Vec::new()
}
