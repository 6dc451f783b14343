//! The [`ConfigSource`] of a running weftd: the Kubernetes index's latest
//! snapshot, translated per proxy by [`crate::translate::for_proxy`].
//!
//! Translating a whole mesh for every proxy on every change would make an
//! endpoint change cost (proxies × mesh size). So each proxy's last
//! translation is kept with the snapshot it came from; when the index
//! changed only in EndpointSlices and Pods since then, only the services
//! those touch are re-translated ([`crate::translate::sidecar_services`])
//! and patched into a copy of the previous result. Anything else (a
//! Service, a policy, the proxy's own identity) re-translates whole.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use super::source::ConfigSource;
use crate::identity::ProxyIdentity;
use crate::index::{Kind, ObjectKey, Snapshot, service_of_slice};
use crate::resources::{Interner, Resources, type_url};
use crate::translate::{self, MeshSettings};

/// Index snapshots in, per-proxy resources out.
#[derive(Debug)]
pub struct IndexSource {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    settings: MeshSettings,
    changes: watch::Receiver<u64>,
    /// Each connected proxy's last translation, by node ID.
    translated: Mutex<HashMap<String, Translated>>,
    /// Equal resources of different proxies are one copy.
    interner: Mutex<Interner>,
}

#[derive(Debug, Clone)]
struct Translated {
    proxy: ProxyIdentity,
    snapshot: Arc<Snapshot>,
    resources: Arc<Resources>,
}

impl IndexSource {
    /// Follows `snapshots` (from `Index::subscribe`). Starts a task that
    /// forwards each snapshot's generation (call inside a Tokio runtime);
    /// it ends when the index is dropped.
    pub fn new(snapshots: watch::Receiver<Arc<Snapshot>>, settings: MeshSettings) -> Self {
        let (tx, changes) = watch::channel(snapshots.borrow().generation);
        let mut follow = snapshots.clone();
        tokio::spawn(async move {
            while follow.changed().await.is_ok() {
                let generation = follow.borrow_and_update().generation;
                if tx.send(generation).is_err() {
                    return;
                }
            }
        });
        Self {
            snapshots,
            settings,
            changes,
            translated: Mutex::default(),
            interner: Mutex::default(),
        }
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshots.borrow().clone()
    }

    fn translated(&self) -> std::sync::MutexGuard<'_, HashMap<String, Translated>> {
        self.translated
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn share(&self, resources: &mut Resources) {
        resources.share(&mut self.interner.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// `previous` brought up to `snapshot` by re-translating only the
    /// services whose endpoints changed, when that is all that changed.
    fn patched(&self, previous: &Translated, snapshot: &Snapshot) -> Option<Resources> {
        let services = endpoint_changes(&previous.snapshot, snapshot)?;
        let mut fresh =
            translate::sidecar_services(snapshot, &previous.proxy, &self.settings, &services)?;
        self.share(&mut fresh);
        let mut next = (*previous.resources).clone();
        for t in [type_url::CLUSTER, type_url::ENDPOINT] {
            next.extend_from(&fresh, t);
        }
        Some(next)
    }
}

/// The services whose endpoints the changes from `old` to `new` touch, or
/// `None` when something else changed too (or the change log does not
/// reach back to `old`).
fn endpoint_changes(old: &Snapshot, new: &Snapshot) -> Option<BTreeSet<ObjectKey>> {
    let mut services = BTreeSet::new();
    for change in new.changes_since(old.generation)? {
        match change.kind {
            Kind::EndpointSlice => {
                let slice = new
                    .endpoint_slices
                    .get(&change.key)
                    .or_else(|| old.endpoint_slices.get(&change.key))?;
                let service = service_of_slice(&slice.metadata)?;
                services.insert(ObjectKey::new(&change.key.namespace, service));
            }
            Kind::Pod => {
                // Endpoints carry their pod's labels and service account:
                // every service with an endpoint on this pod.
                for snap in [old, new] {
                    let on_pod =
                        Snapshot::in_namespace(&snap.endpoint_slices, &change.key.namespace)
                            .filter(|(_, slice)| {
                                slice.endpoints.iter().any(|e| {
                                    e.target_ref.as_ref().is_some_and(|r| {
                                        r.kind.as_deref() == Some("Pod")
                                            && r.name.as_deref() == Some(change.key.name.as_str())
                                    })
                                })
                            })
                            .filter_map(|(_, slice)| service_of_slice(&slice.metadata));
                    services.extend(on_pod.map(|s| ObjectKey::new(&change.key.namespace, s)));
                }
            }
            _ => return None,
        }
    }
    Some(services)
}

impl ConfigSource for IndexSource {
    fn resources(&self, proxy: &ProxyIdentity) -> Arc<Resources> {
        let snapshot = self.snapshot();
        let previous = self
            .translated()
            .get(&proxy.node_id)
            .filter(|t| t.proxy == *proxy)
            .cloned();
        let resources = match previous {
            Some(p) if p.snapshot.generation == snapshot.generation => return p.resources,
            Some(p) => self.patched(&p, &snapshot),
            None => None,
        }
        .unwrap_or_else(|| {
            let mut whole = translate::for_proxy(&snapshot, proxy, &self.settings);
            self.share(&mut whole);
            whole
        });
        let resources = Arc::new(resources);
        self.translated().insert(
            proxy.node_id.clone(),
            Translated {
                proxy: proxy.clone(),
                snapshot,
                resources: resources.clone(),
            },
        );
        resources
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// The pod's labels and IPs from the index, looked up only in the
    /// authenticated namespace and service account. A client without a pod
    /// in the index (a proxyless client on a developer's host) keeps what
    /// the stream established.
    fn identify(&self, proxy: ProxyIdentity) -> ProxyIdentity {
        let found = self.snapshot().proxy_identity(
            &proxy.id,
            &proxy.node_id,
            Some(proxy.kind.clone()),
            &proxy.revision,
        );
        if found.pod.is_some() { found } else { proxy }
    }

    fn disconnected(&self, proxy: &ProxyIdentity) {
        self.translated().remove(&proxy.node_id);
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Pod, Service};
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use serde_json::json;
    use weft_api::istio::networking::DestinationRule;

    use super::*;
    use crate::identity::{ProxyKind, SpiffeId};
    use crate::index::Index;

    fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).expect("test object parses")
    }

    fn service(name: &str) -> Service {
        obj(json!({"metadata": {"namespace": "shop", "name": name},
            "spec": {"clusterIP": "10.96.0.10", "selector": {"app": name},
                     "ports": [{"name": "http", "port": 80}]}}))
    }

    fn slice(svc: &str, pods: &[(&str, &str)]) -> EndpointSlice {
        let endpoints: Vec<_> = pods
            .iter()
            .map(|(pod, ip)| {
                json!({"addresses": [ip], "conditions": {"ready": true},
                "targetRef": {"kind": "Pod", "namespace": "shop", "name": pod}})
            })
            .collect();
        obj(
            json!({"metadata": {"namespace": "shop", "name": format!("{svc}-1"),
                "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": endpoints}),
        )
    }

    fn pod(name: &str, app: &str, version: &str, sa: &str, ip: &str) -> Pod {
        obj(json!({"metadata": {"namespace": "shop", "name": name,
                "labels": {"app": app, "version": version}},
            "spec": {"serviceAccountName": sa, "containers": []},
            "status": {"podIP": ip, "podIPs": [{"ip": ip}]}}))
    }

    fn subsets() -> DestinationRule {
        obj(json!({"metadata": {"namespace": "shop", "name": "cart"},
            "spec": {"host": "cart", "subsets": [
                {"name": "v1", "labels": {"version": "v1"}},
                {"name": "v2", "labels": {"version": "v2"}}]}}))
    }

    fn client() -> ProxyIdentity {
        ProxyIdentity {
            node_id: "sidecar~10.1.0.9~web-0.shop~shop.svc.cluster.local".into(),
            id: SpiffeId::new("cluster.local", "shop", "web"),
            kind: ProxyKind::Sidecar,
            pod: Some("web-0".into()),
            labels: [("app".to_owned(), "web".to_owned())].into(),
            revision: "default".into(),
            ips: vec!["10.1.0.9".into()],
        }
    }

    /// What a fresh, whole translation of the index's current state gives.
    fn whole(index: &Index, proxy: &ProxyIdentity) -> Resources {
        translate::for_proxy(&index.snapshot(), proxy, &MeshSettings::default())
    }

    #[tokio::test]
    async fn patched_translations_equal_whole_ones() {
        let mut index = Index::new();
        index.apply(service("cart"));
        index.apply(service("web"));
        index.apply(subsets());
        index.apply(pod("cart-0", "cart", "v1", "cart", "10.1.0.1"));
        index.apply(pod("web-0", "web", "v1", "web", "10.1.0.9"));
        index.apply(slice("cart", &[("cart-0", "10.1.0.1")]));
        index.apply(slice("web", &[("web-0", "10.1.0.9")]));
        let source = IndexSource::new(index.subscribe(), MeshSettings::default());
        let proxy = client();
        let first = source.resources(&proxy);
        assert_eq!(*first, whole(&index, &proxy));

        // Each step changes the index; the source's (possibly patched)
        // answer must equal a whole translation of the new state.
        type Step = (&'static str, Box<dyn Fn(&mut Index)>);
        let steps: Vec<Step> = vec![
            (
                "a second endpoint (new pod, new service account)",
                Box::new(|i: &mut Index| {
                    i.apply(pod("cart-1", "cart", "v2", "cart-v2", "10.1.0.2"));
                    i.apply(slice(
                        "cart",
                        &[("cart-0", "10.1.0.1"), ("cart-1", "10.1.0.2")],
                    ));
                }),
            ),
            (
                "a pod's labels move it to another subset",
                Box::new(|i: &mut Index| {
                    i.apply(pod("cart-0", "cart", "v2", "cart", "10.1.0.1"));
                }),
            ),
            (
                "an endpoint goes away",
                Box::new(|i: &mut Index| {
                    i.apply(slice("cart", &[("cart-1", "10.1.0.2")]));
                }),
            ),
            (
                "the slice is deleted",
                Box::new(|i: &mut Index| {
                    i.delete::<EndpointSlice>(&ObjectKey::new("shop", "cart-1"));
                }),
            ),
            (
                "a Service changes (whole translation)",
                Box::new(|i: &mut Index| {
                    i.apply(service("orders"));
                }),
            ),
        ];
        for (what, step) in steps {
            step(&mut index);
            let got = source.resources(&proxy);
            assert_eq!(*got, whole(&index, &proxy), "after: {what}");
        }
    }

    #[test]
    fn only_endpoint_and_pod_changes_are_patched() {
        let mut index = Index::new();
        index.apply(service("cart"));
        index.apply(slice("cart", &[("cart-0", "10.1.0.1")]));
        let old = index.snapshot();
        index.apply(pod("cart-0", "cart", "v1", "cart", "10.1.0.1"));
        index.apply(slice(
            "cart",
            &[("cart-0", "10.1.0.1"), ("cart-1", "10.1.0.2")],
        ));
        let touched = endpoint_changes(&old, &index.snapshot());
        assert_eq!(touched, Some([ObjectKey::new("shop", "cart")].into()));
        index.apply(service("web"));
        assert_eq!(endpoint_changes(&old, &index.snapshot()), None);
    }
}
