//! The mesh as translation sees it: services with their FQDNs and port
//! protocols, which services and rules a proxy may see, and which
//! DestinationRule, VirtualService and PeerAuthentication apply.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use weft_api::istio::networking::{DestinationRule, Sidecar, VirtualService};
use weft_api::istio::security::peer_authentication::MtlsMode;

use super::MeshSettings;
use crate::identity::ProxyIdentity;
use crate::index::{ObjectKey, Snapshot};

/// How a port's traffic is handled, from `appProtocol` or the port name
/// prefix (Istio's convention: `http-web`, `grpc`, `tcp-db`…).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    Http,
    Http2,
    Grpc,
    Tls,
    Tcp,
}

impl Protocol {
    pub fn of_port(name: Option<&str>, app_protocol: Option<&str>) -> Self {
        let from = |p: &str| match p.to_ascii_lowercase().as_str() {
            "http" | "http1" => Some(Self::Http),
            "http2" | "h2c" | "kubernetes.io/h2c" => Some(Self::Http2),
            "grpc" | "grpc-web" => Some(Self::Grpc),
            "https" | "tls" => Some(Self::Tls),
            "tcp" | "mongo" | "mysql" | "redis" => Some(Self::Tcp),
            _ => None,
        };
        if let Some(p) = app_protocol.and_then(from) {
            return p;
        }
        name.and_then(|n| from(n.split('-').next().unwrap_or(n)))
            .unwrap_or(Self::Tcp)
    }

    /// Whether the proxy parses requests on this port (L7 routing).
    pub fn is_http(self) -> bool {
        matches!(self, Self::Http | Self::Http2 | Self::Grpc)
    }

    /// Whether the upstream speaks HTTP/2.
    pub fn is_http2(self) -> bool {
        matches!(self, Self::Http2 | Self::Grpc)
    }
}

/// One port of a service.
#[derive(Clone, Debug)]
pub struct Port {
    pub number: u32,
    pub name: Option<String>,
    pub protocol: Protocol,
    pub raw: ServicePort,
}

/// A Kubernetes Service as translation sees it.
#[derive(Clone, Debug)]
pub struct ServiceView {
    pub key: ObjectKey,
    pub fqdn: String,
    /// The ClusterIP, unless headless.
    pub cluster_ip: Option<String>,
    pub ports: Vec<Port>,
    pub svc: Arc<Service>,
}

impl ServiceView {
    pub fn new(key: &ObjectKey, svc: &Arc<Service>, settings: &MeshSettings) -> Self {
        let spec = svc.spec.clone().unwrap_or_default();
        let ports = spec
            .ports
            .iter()
            .flatten()
            .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
            .filter_map(|p| {
                Some(Port {
                    number: u32::try_from(p.port).ok()?,
                    name: p.name.clone(),
                    protocol: Protocol::of_port(p.name.as_deref(), p.app_protocol.as_deref()),
                    raw: p.clone(),
                })
            })
            .collect();
        Self {
            key: key.clone(),
            fqdn: settings.fqdn(&key.namespace, &key.name),
            cluster_ip: spec.cluster_ip.filter(|ip| !ip.is_empty() && ip != "None"),
            ports,
            svc: svc.clone(),
        }
    }

    pub fn port(&self, number: u32) -> Option<&Port> {
        self.ports.iter().find(|p| p.number == number)
    }

    /// Whether the service's selector picks a pod with these labels.
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        match self.svc.spec.as_ref().and_then(|s| s.selector.as_ref()) {
            Some(sel) if !sel.is_empty() => sel.iter().all(|(k, v)| labels.get(k) == Some(v)),
            _ => false,
        }
    }
}

/// Everything visible to one proxy, computed once per translation.
pub struct Mesh<'a> {
    pub snapshot: &'a Snapshot,
    pub settings: &'a MeshSettings,
    /// Services by FQDN.
    pub services: BTreeMap<String, ServiceView>,
}

/// Labels ⊆ `labels`.
pub fn matches_labels(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Whether `exports` (exportTo values: `*`, `.`, `~`, namespaces) let a
/// proxy in `viewer` see an object of `owner`. Empty means everywhere.
pub fn exported_to(exports: &[String], owner: &str, viewer: &str) -> bool {
    exports.is_empty()
        || exports
            .iter()
            .any(|e| e == "*" || (e == "." && owner == viewer) || e == viewer)
}

/// Whether an Istio host pattern (`*`, `*.suffix`, exact) matches a host.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_prefix('*') {
        Some(suffix) => host.ends_with(suffix),
        None => pattern == host,
    }
}

impl<'a> Mesh<'a> {
    /// The services a proxy in `viewer` namespace may see: Service
    /// `networking.istio.io/exportTo` annotations and the Sidecar's egress
    /// hosts narrow the set. `viewer` `None` means everything (gateways
    /// build their own set from their routes).
    pub fn new(
        snapshot: &'a Snapshot,
        settings: &'a MeshSettings,
        proxy: Option<&ProxyIdentity>,
    ) -> Self {
        Self::of(snapshot, settings, proxy, snapshot.services.iter())
    }

    /// Like [`Mesh::new`], limited to the services `keys` (those still in
    /// the snapshot and visible to the proxy): for re-translating only
    /// what an endpoint change touched.
    pub fn with_services(
        snapshot: &'a Snapshot,
        settings: &'a MeshSettings,
        proxy: Option<&ProxyIdentity>,
        keys: &BTreeSet<ObjectKey>,
    ) -> Self {
        let services = keys
            .iter()
            .filter_map(|k| snapshot.services.get_key_value(k));
        Self::of(snapshot, settings, proxy, services)
    }

    fn of<'s>(
        snapshot: &'a Snapshot,
        settings: &'a MeshSettings,
        proxy: Option<&ProxyIdentity>,
        services: impl Iterator<Item = (&'s ObjectKey, &'s Arc<Service>)>,
    ) -> Self {
        let sidecar = proxy.and_then(|p| sidecar_for(snapshot, settings, p));
        let services = services
            .map(|(key, svc)| ServiceView::new(key, svc, settings))
            .filter(|view| match proxy {
                None => true,
                Some(p) => {
                    let exports: Vec<String> = view
                        .svc
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get("networking.istio.io/exportTo"))
                        .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
                        .unwrap_or_default();
                    exported_to(&exports, &view.key.namespace, p.namespace())
                        && sidecar.is_none_or(|sc| {
                            egress_allows(sc, p.namespace(), &view.key.namespace, &view.fqdn)
                        })
                }
            })
            .map(|v| (v.fqdn.clone(), v))
            .collect();
        Self {
            snapshot,
            settings,
            services,
        }
    }

    /// Resolves a host written in an object of namespace `ns` (short name,
    /// `name.ns`, `name.ns.svc`, or FQDN) to a visible service.
    pub fn resolve(&self, host: &str, ns: &str) -> Option<&ServiceView> {
        let suffix = &self.settings.domain_suffix;
        let fqdn = match host.split('.').count() {
            1 => format!("{host}.{ns}.svc.{suffix}"),
            2 => format!("{host}.svc.{suffix}"),
            3 if host.ends_with(".svc") => format!("{host}.{suffix}"),
            _ => host.to_owned(),
        };
        self.services.get(&fqdn)
    }

    /// The DestinationRule for a service as seen from `viewer`: the
    /// viewer's namespace first, then the service's, then the root
    /// namespace (Istio's lookup order).
    pub fn destination_rule(
        &self,
        svc: &ServiceView,
        viewer: &str,
    ) -> Option<&'a Arc<DestinationRule>> {
        let root = self.settings.root_namespace.as_str();
        let mut order = vec![viewer, svc.key.namespace.as_str(), root];
        order.dedup();
        order.into_iter().find_map(|ns| {
            Snapshot::in_namespace(&self.snapshot.destination_rules, ns)
                .map(|(_, dr)| dr)
                .find(|dr| {
                    exported_to(&dr.spec.export_to, ns, viewer)
                        && self
                            .resolve(&dr.spec.host, ns)
                            .is_some_and(|s| s.fqdn == svc.fqdn)
                })
        })
    }

    /// The VirtualServices bound to the mesh (sidecars, proxyless) that a
    /// proxy in `viewer` sees, with the FQDNs of the services they route.
    pub fn mesh_virtual_services(
        &self,
        viewer: &str,
    ) -> Vec<(&'a Arc<VirtualService>, Vec<String>)> {
        self.snapshot
            .virtual_services
            .iter()
            .filter(|(k, vs)| {
                exported_to(&vs.spec.export_to, &k.namespace, viewer)
                    && (vs.spec.gateways.is_empty() || vs.spec.gateways.iter().any(|g| g == "mesh"))
            })
            .map(|(k, vs)| {
                let hosts = vs
                    .spec
                    .hosts
                    .iter()
                    .filter_map(|h| self.resolve(h, &k.namespace).map(|s| s.fqdn.clone()))
                    .collect();
                (vs, hosts)
            })
            .collect()
    }

    /// The pods backing a service's endpoints, by pod name.
    pub fn pod(&self, ns: &str, name: &str) -> Option<&'a Arc<Pod>> {
        self.snapshot.pods.get(&ObjectKey::new(ns, name))
    }
}

/// The Sidecar resource that applies to a proxy: one selecting its
/// workload, else its namespace's default, else the root namespace's.
fn sidecar_for<'a>(
    snapshot: &'a Snapshot,
    settings: &MeshSettings,
    proxy: &ProxyIdentity,
) -> Option<&'a Sidecar> {
    let in_ns = |ns: &str| Snapshot::in_namespace(&snapshot.sidecars, ns).map(|(_, s)| s.as_ref());
    let selected = in_ns(proxy.namespace()).find(|s| {
        s.spec
            .workload_selector
            .as_ref()
            .is_some_and(|sel| !sel.labels.is_empty() && matches_labels(&sel.labels, &proxy.labels))
    });
    let no_selector = |s: &&Sidecar| {
        s.spec
            .workload_selector
            .as_ref()
            .is_none_or(|sel| sel.labels.is_empty())
    };
    selected
        .or_else(|| in_ns(proxy.namespace()).find(no_selector))
        .or_else(|| in_ns(&settings.root_namespace).find(no_selector))
}

/// Whether a Sidecar's egress hosts (`ns/host`; ns `*`, `.`, `~` or a
/// name; host `*`, `*.suffix` or exact) include a service.
fn egress_allows(sidecar: &Sidecar, viewer: &str, svc_ns: &str, fqdn: &str) -> bool {
    if sidecar.spec.egress.is_empty() {
        return true;
    }
    sidecar.spec.egress.iter().flat_map(|e| &e.hosts).any(|h| {
        let Some((ns, host)) = h.split_once('/') else {
            return false;
        };
        let ns_ok = match ns {
            "*" => true,
            "." => svc_ns == viewer,
            "~" => false,
            other => other == svc_ns,
        };
        ns_ok && host_matches(host, fqdn)
    })
}

/// The mutual TLS mode of a workload port: a PeerAuthentication selecting
/// the workload (its port-level setting first), else the namespace's, else
/// the root namespace's; PERMISSIVE when none sets one.
pub fn mtls_mode(
    snapshot: &Snapshot,
    settings: &MeshSettings,
    proxy: &ProxyIdentity,
    port: u32,
) -> MtlsMode {
    let in_ns = |ns: &str| {
        Snapshot::in_namespace(&snapshot.peer_authentications, ns).map(|(_, p)| p.clone())
    };
    let is_mode = |m: Option<MtlsMode>| m.filter(|m| *m != MtlsMode::Unset);
    let workload = in_ns(proxy.namespace()).find(|pa| {
        pa.spec.selector.as_ref().is_some_and(|s| {
            !s.match_labels.is_empty() && matches_labels(&s.match_labels, &proxy.labels)
        })
    });
    let no_selector = |pa: &Arc<weft_api::istio::security::PeerAuthentication>| {
        pa.spec
            .selector
            .as_ref()
            .is_none_or(|s| s.match_labels.is_empty())
    };
    let namespace = in_ns(proxy.namespace()).find(no_selector);
    let root = in_ns(&settings.root_namespace).find(no_selector);
    workload
        .as_ref()
        .and_then(|pa| is_mode(pa.spec.port_level_mtls.get(&port).and_then(|m| m.mode)))
        .or_else(|| {
            workload
                .as_ref()
                .and_then(|pa| is_mode(pa.spec.mtls.as_ref()?.mode))
        })
        .or_else(|| {
            namespace
                .as_ref()
                .and_then(|pa| is_mode(pa.spec.mtls.as_ref()?.mode))
        })
        .or_else(|| {
            root.as_ref()
                .and_then(|pa| is_mode(pa.spec.mtls.as_ref()?.mode))
        })
        .unwrap_or(MtlsMode::Permissive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_protocols_follow_istio_naming() {
        let cases = [
            (Some("http"), None, Protocol::Http),
            (Some("http-web"), None, Protocol::Http),
            (Some("grpc"), None, Protocol::Grpc),
            (Some("http2-api"), None, Protocol::Http2),
            (Some("tcp-db"), None, Protocol::Tcp),
            (Some("https"), None, Protocol::Tls),
            (Some("web"), Some("http"), Protocol::Http),
            (Some("http"), Some("kubernetes.io/h2c"), Protocol::Http2),
            (Some("web"), None, Protocol::Tcp),
            (None, None, Protocol::Tcp),
        ];
        for (name, app, want) in cases {
            assert_eq!(Protocol::of_port(name, app), want, "{name:?} {app:?}");
        }
    }

    #[test]
    fn export_and_host_patterns() {
        let e = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(exported_to(&[], "a", "b"));
        assert!(exported_to(&e(&["*"]), "a", "b"));
        assert!(exported_to(&e(&["."]), "a", "a"));
        assert!(!exported_to(&e(&["."]), "a", "b"));
        assert!(exported_to(&e(&["b"]), "a", "b"));
        assert!(host_matches("*", "x.y"));
        assert!(host_matches("*.corp.com", "api.corp.com"));
        assert!(!host_matches("*.corp.com", "corp.org"));
        assert!(host_matches("a.b", "a.b"));
    }
}
