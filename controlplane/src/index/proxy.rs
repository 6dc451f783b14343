//! Who a connected proxy is, as far as the index knows: its pod (found by
//! the identity from its certificate plus the IP or pod name in its node
//! ID), the pod's labels and revision.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::Snapshot;
use crate::identity::{ProxyIdentity, ProxyKind, SpiffeId};

/// Label tying an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label (on pods or namespaces) naming the control-plane revision.
pub const REVISION_LABEL: &str = "istio.io/rev";

/// The Service an EndpointSlice belongs to (its `kubernetes.io/service-name`).
pub fn service_of_slice(meta: &ObjectMeta) -> Option<String> {
    meta.labels.as_ref()?.get(SERVICE_NAME_LABEL).cloned()
}

/// What an xDS node ID says. Istio's shape is
/// `<type>~<ip>~<pod>.<namespace>~<namespace>.svc.<domain>` with type
/// `sidecar` or `router`; any other string is taken as a pod name or an IP.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeId {
    pub kind: Option<ProxyKind>,
    pub ip: Option<String>,
    pub pod: Option<String>,
}

impl NodeId {
    pub fn parse(node_id: &str) -> Self {
        let parts: Vec<&str> = node_id.split('~').collect();
        if let [kind, ip, pod_ns, _domain] = parts.as_slice() {
            let kind = match *kind {
                "sidecar" => Some(ProxyKind::Sidecar),
                "router" => Some(ProxyKind::Gateway),
                "proxyless" => Some(ProxyKind::Proxyless),
                _ => None,
            };
            let pod = pod_ns.split_once('.').map_or(*pod_ns, |(pod, _)| pod);
            return Self {
                kind,
                ip: Some((*ip).to_owned()).filter(|s| !s.is_empty()),
                pod: Some(pod.to_owned()).filter(|s| !s.is_empty()),
            };
        }
        if node_id.parse::<std::net::IpAddr>().is_ok() {
            return Self {
                ip: Some(node_id.to_owned()),
                ..Self::default()
            };
        }
        Self {
            pod: Some(node_id.to_owned()).filter(|s| !s.is_empty()),
            ..Self::default()
        }
    }
}

fn pod_ips(pod: &Pod) -> Vec<String> {
    let Some(status) = &pod.status else {
        return Vec::new();
    };
    let mut ips: Vec<String> = status
        .pod_ips
        .iter()
        .flatten()
        .map(|p| p.ip.clone())
        .collect();
    if ips.is_empty() {
        ips.extend(status.pod_ip.clone());
    }
    ips
}

fn service_account(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.service_account_name.as_deref())
        .unwrap_or("default")
}

impl Snapshot {
    /// The identity of a proxy whose certificate says `id` and whose node ID
    /// is `node_id`. The pod is looked up only in the certificate's namespace
    /// and must run as the certificate's service account, so a proxy cannot
    /// borrow another workload's labels by naming its pod. `kind` defaults
    /// to what the node ID says, else sidecar; `default_revision` applies
    /// when neither the pod nor its namespace carries `istio.io/rev`.
    pub fn proxy_identity(
        &self,
        id: &SpiffeId,
        node_id: &str,
        kind: Option<ProxyKind>,
        default_revision: &str,
    ) -> ProxyIdentity {
        let node = NodeId::parse(node_id);
        let of_identity = |pod: &&Arc<Pod>| service_account(pod) == id.service_account;
        // By name: one lookup (every push asks again); by IP: a scan of the
        // namespace, for a node ID without the pod's name.
        let pod = node
            .pod
            .as_deref()
            .and_then(|name| self.pods.get(&super::ObjectKey::new(&id.namespace, name)))
            .filter(of_identity)
            .or_else(|| {
                let ip = node.ip.as_ref()?;
                Self::in_namespace(&self.pods, &id.namespace)
                    .map(|(_, pod)| pod)
                    .filter(of_identity)
                    .find(|pod| pod_ips(pod).contains(ip))
            });
        let labels: BTreeMap<String, String> = pod
            .and_then(|p| p.metadata.labels.clone())
            .unwrap_or_default();
        let ns_revision = self
            .namespaces
            .get(&super::ObjectKey::new("", &id.namespace))
            .and_then(|ns| ns.metadata.labels.as_ref()?.get(REVISION_LABEL).cloned());
        let revision = labels
            .get(REVISION_LABEL)
            .cloned()
            .or(ns_revision)
            .unwrap_or_else(|| default_revision.to_owned());
        ProxyIdentity {
            node_id: node_id.to_owned(),
            id: id.clone(),
            kind: kind.or(node.kind).unwrap_or(ProxyKind::Sidecar),
            pod: pod.and_then(|p| p.metadata.name.clone()),
            labels,
            revision,
            // From the pod only: what the node ID claims is not trusted.
            ips: pod.map(|p| pod_ips(p)).unwrap_or_default(),
        }
    }
}
