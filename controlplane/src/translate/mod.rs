//! Translation: pure functions from an index [`Snapshot`] and one proxy's
//! identity to the standard Envoy v3 resources it should hold
//! ([`Resources`]): listeners, routes, clusters, endpoints and secrets.
//! Each proxy receives only what concerns it: sidecars the services they
//! may see (exportTo, Sidecar egress hosts), gateways only their own
//! listeners and routes and the backends those routes use, proxyless gRPC
//! clients one API listener per service port.

mod clusters;
pub mod dump;
mod envoy;
mod gateway;
mod model;
mod proxyless;
mod routes;
mod sidecar;

use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, Secret, secret,
};

pub use clusters::{TLS_MODE_LABEL, outbound_name};
pub use envoy::{ROOT_CA, WORKLOAD_CERT};
pub use gateway::GATEWAY_NAME_LABEL;
pub use model::Protocol;
pub use sidecar::{INBOUND_PORT, OUTBOUND_PORT};

use crate::identity::{ProxyIdentity, ProxyKind};
use crate::index::Snapshot;
use crate::resources::{Resource, Resources, type_url};

/// Where a sidecar sends traffic for destinations the mesh does not know.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutboundPolicy {
    /// Pass it through to the original destination (Istio's default).
    #[default]
    AllowAny,
    /// Refuse it.
    RegistryOnly,
}

/// Mesh-wide settings translation needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshSettings {
    /// SPIFFE trust domain, e.g. `cluster.local`.
    pub trust_domain: String,
    /// DNS suffix of services, e.g. `cluster.local`.
    pub domain_suffix: String,
    /// Namespace whose policies apply mesh-wide (Istio's `istio-system`).
    pub root_namespace: String,
    /// GatewayClass names whose Gateways this control plane programs.
    pub gateway_class_names: Vec<String>,
    pub outbound_policy: OutboundPolicy,
    /// The mesh's trust bundle (PEM), served as the `ROOTCA` secret.
    pub trust_bundle_pem: String,
}

impl Default for MeshSettings {
    fn default() -> Self {
        Self {
            trust_domain: "cluster.local".into(),
            domain_suffix: "cluster.local".into(),
            root_namespace: "istio-system".into(),
            gateway_class_names: vec!["weft".into(), "istio".into()],
            outbound_policy: OutboundPolicy::AllowAny,
            trust_bundle_pem: String::new(),
        }
    }
}

impl MeshSettings {
    /// `<name>.<namespace>.svc.<domain suffix>`.
    pub fn fqdn(&self, namespace: &str, name: &str) -> String {
        format!("{name}.{namespace}.svc.{}", self.domain_suffix)
    }
}

/// Everything one proxy should hold, given the mesh as `snapshot` says.
pub fn for_proxy(snapshot: &Snapshot, proxy: &ProxyIdentity, settings: &MeshSettings) -> Resources {
    let mut out = Resources::default();
    match proxy.kind {
        ProxyKind::Sidecar => {
            let mesh = model::Mesh::new(snapshot, settings, Some(proxy));
            sidecar::translate(&mesh, proxy, &mut out);
        }
        ProxyKind::Proxyless => {
            let mesh = model::Mesh::new(snapshot, settings, Some(proxy));
            proxyless::translate(&mesh, proxy, &mut out);
        }
        ProxyKind::Gateway => {
            let mesh = model::Mesh::new(snapshot, settings, None);
            gateway::translate(&mesh, proxy, &mut out);
        }
    }
    if proxy.kind != ProxyKind::Proxyless {
        out.insert(trust_bundle(settings));
    }
    out
}

/// The Clusters and ClusterLoadAssignments of `services` for a sidecar,
/// exactly as [`for_proxy`] makes them: what an endpoint or pod change
/// touches, so a sidecar's previous translation can be patched instead of
/// redone. `None` for gateways and proxyless clients (translated whole).
/// Services no longer present or not visible to the proxy yield nothing.
pub fn sidecar_services(
    snapshot: &Snapshot,
    proxy: &ProxyIdentity,
    settings: &MeshSettings,
    services: &std::collections::BTreeSet<crate::index::ObjectKey>,
) -> Option<Resources> {
    if proxy.kind != ProxyKind::Sidecar {
        return None;
    }
    let mesh = model::Mesh::with_services(snapshot, settings, Some(proxy), services);
    let mut out = Resources::default();
    sidecar::add_service_clusters(&mesh, proxy, &mut out);
    Some(out)
}

/// The `ROOTCA` secret: the validation context peers are checked against.
fn trust_bundle(settings: &MeshSettings) -> Resource {
    let secret = Secret {
        name: ROOT_CA.into(),
        r#type: Some(secret::Type::ValidationContext(
            CertificateValidationContext {
                trusted_ca: Some(envoy::inline_bytes(settings.trust_bundle_pem.as_bytes())),
                ..Default::default()
            },
        )),
    };
    Resource::from_message(ROOT_CA, type_url::SECRET, &secret)
}
