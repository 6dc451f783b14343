//! The in-memory index of everything weftd reads from Kubernetes: a plain
//! struct with `apply`/`delete`/`reset` per kind, no client in it. Every
//! change publishes a new immutable [`Snapshot`] through
//! `tokio::sync::watch`, with a generation number and a log of which objects
//! changed, so the xDS server can debounce bursts and recompute only what a
//! change touches. [`watch`] feeds it from the API server.

mod credentials;
mod proxy;
pub mod watch;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use tokio::sync::watch as tokio_watch;
use weft_api::gateway::{gatewayclasses, gateways, grpcroutes, httproutes, referencegrants};
use weft_api::istio::{networking, security};

pub use credentials::TlsCredential;
pub use proxy::{NodeId, SERVICE_NAME_LABEL, service_of_slice};

/// Namespace and name of an object; the namespace is empty for
/// cluster-scoped kinds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of a Kubernetes object.
    pub fn of<K: kube::Resource>(obj: &K) -> Self {
        Self::new(obj.namespace().unwrap_or_default(), obj.name_any())
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// Every kind the index holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Service,
    EndpointSlice,
    Pod,
    Namespace,
    ServiceAccount,
    Node,
    /// TLS Secrets, only those a gateway references.
    Secret,
    VirtualService,
    DestinationRule,
    /// Istio `networking.istio.io` Gateway.
    IstioGateway,
    ServiceEntry,
    Sidecar,
    PeerAuthentication,
    AuthorizationPolicy,
    RequestAuthentication,
    GatewayClass,
    /// Gateway API `gateway.networking.k8s.io` Gateway.
    Gateway,
    HttpRoute,
    GrpcRoute,
    ReferenceGrant,
}

/// One object that was added, changed or removed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Change {
    pub kind: Kind,
    pub key: ObjectKey,
}

/// Objects of one kind by key; values are shared between snapshots.
pub type Store<T> = BTreeMap<ObjectKey, Arc<T>>;

/// How many changes a snapshot remembers for [`Snapshot::changes_since`].
const CHANGE_LOG_LEN: usize = 1024;

/// An immutable view of the index. Cloning is cheap: each kind's map is
/// behind an `Arc` and only the maps of changed kinds are copied on write.
#[derive(Clone, Default)]
pub struct Snapshot {
    /// Increases by one with every published change.
    pub generation: u64,
    pub services: Arc<Store<Service>>,
    pub endpoint_slices: Arc<Store<EndpointSlice>>,
    pub pods: Arc<Store<Pod>>,
    pub namespaces: Arc<Store<Namespace>>,
    pub service_accounts: Arc<Store<ServiceAccount>>,
    pub nodes: Arc<Store<Node>>,
    /// TLS credentials referenced by a Gateway API or Istio gateway, by the
    /// Secret's key. Unreferenced Secrets are never published.
    pub secrets: Arc<Store<TlsCredential>>,
    pub virtual_services: Arc<Store<networking::VirtualService>>,
    pub destination_rules: Arc<Store<networking::DestinationRule>>,
    pub istio_gateways: Arc<Store<networking::Gateway>>,
    pub service_entries: Arc<Store<networking::ServiceEntry>>,
    pub sidecars: Arc<Store<networking::Sidecar>>,
    pub peer_authentications: Arc<Store<security::PeerAuthentication>>,
    pub authorization_policies: Arc<Store<security::AuthorizationPolicy>>,
    pub request_authentications: Arc<Store<security::RequestAuthentication>>,
    pub gateway_classes: Arc<Store<gatewayclasses::GatewayClass>>,
    pub gateways: Arc<Store<gateways::Gateway>>,
    pub http_routes: Arc<Store<httproutes::HttpRoute>>,
    pub grpc_routes: Arc<Store<grpcroutes::GrpcRoute>>,
    pub reference_grants: Arc<Store<referencegrants::ReferenceGrant>>,
    /// EndpointSlices by the Service they belong to (label
    /// `kubernetes.io/service-name`).
    pub slices_by_service: Arc<BTreeMap<ObjectKey, BTreeSet<ObjectKey>>>,
    /// Kinds whose initial list has been loaded at least once.
    pub synced: BTreeSet<Kind>,
    log: Arc<VecDeque<(u64, Change)>>,
}

impl fmt::Debug for Snapshot {
    // Counts only: a snapshot holds private keys, which never reach logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("generation", &self.generation)
            .field("services", &self.services.len())
            .field("endpoint_slices", &self.endpoint_slices.len())
            .field("pods", &self.pods.len())
            .field("secrets", &self.secrets.len())
            .field("synced", &self.synced)
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    /// The objects changed after generation `since` up to this snapshot, or
    /// `None` when the log no longer reaches back that far (recompute all).
    pub fn changes_since(&self, since: u64) -> Option<BTreeSet<Change>> {
        if since >= self.generation {
            return Some(BTreeSet::new());
        }
        let oldest = self.log.front().map_or(self.generation + 1, |(g, _)| *g);
        if since + 1 < oldest {
            return None;
        }
        Some(
            self.log
                .iter()
                .filter(|(g, _)| *g > since)
                .map(|(_, c)| c.clone())
                .collect(),
        )
    }

    /// Whether the initial list of every kind in `kinds` has been loaded.
    pub fn is_synced(&self, kinds: &[Kind]) -> bool {
        kinds.iter().all(|k| self.synced.contains(k))
    }

    /// The EndpointSlices of a Service.
    pub fn slices_of(&self, service: &ObjectKey) -> impl Iterator<Item = &Arc<EndpointSlice>> {
        self.slices_by_service
            .get(service)
            .into_iter()
            .flatten()
            .filter_map(|k| self.endpoint_slices.get(k))
    }

    /// Objects of one namespace in a store.
    pub fn in_namespace<'a, T>(
        store: &'a Store<T>,
        namespace: &str,
    ) -> impl Iterator<Item = (&'a ObjectKey, &'a Arc<T>)> + use<'a, T> {
        let start = ObjectKey::new(namespace, "");
        let namespace = namespace.to_owned();
        store
            .range(start..)
            .take_while(move |(k, _)| k.namespace == namespace)
    }
}

/// A kind the index stores: where it lives in a snapshot and how it is
/// trimmed before storing.
pub trait Indexed: kube::Resource + Clone + Send + Sync + 'static {
    const KIND: Kind;
    fn store(snapshot: &mut Snapshot) -> &mut Arc<Store<Self>>;
    /// Whether storing `self` over `old` would change nothing.
    fn same(&self, old: &Self) -> bool;
    /// Drops what translation never reads (managed fields, node status) so
    /// that the index stays small and status-only updates are no change.
    fn trim(&mut self) {
        self.meta_mut().managed_fields = None;
        self.meta_mut().resource_version = None;
    }
}

macro_rules! indexed {
    ($ty:ty, $kind:ident, $field:ident) => {
        impl Indexed for $ty {
            const KIND: Kind = Kind::$kind;
            fn store(snapshot: &mut Snapshot) -> &mut Arc<Store<Self>> {
                &mut snapshot.$field
            }
            fn same(&self, old: &Self) -> bool {
                self == old
            }
        }
    };
    // Istio kinds: the generated kind type has no `PartialEq`, its parts do.
    (istio $ty:ty, $kind:ident, $field:ident) => {
        impl Indexed for $ty {
            const KIND: Kind = Kind::$kind;
            fn store(snapshot: &mut Snapshot) -> &mut Arc<Store<Self>> {
                &mut snapshot.$field
            }
            fn same(&self, old: &Self) -> bool {
                self.metadata == old.metadata && self.spec == old.spec
            }
        }
    };
}

indexed!(Service, Service, services);
indexed!(EndpointSlice, EndpointSlice, endpoint_slices);
indexed!(Namespace, Namespace, namespaces);
indexed!(ServiceAccount, ServiceAccount, service_accounts);
indexed!(istio networking::VirtualService, VirtualService, virtual_services);
indexed!(istio networking::DestinationRule, DestinationRule, destination_rules);
indexed!(istio networking::ServiceEntry, ServiceEntry, service_entries);
indexed!(istio networking::Sidecar, Sidecar, sidecars);
indexed!(istio security::PeerAuthentication, PeerAuthentication, peer_authentications);
indexed!(istio security::AuthorizationPolicy, AuthorizationPolicy, authorization_policies);
indexed!(istio security::RequestAuthentication, RequestAuthentication, request_authentications);
indexed!(gatewayclasses::GatewayClass, GatewayClass, gateway_classes);
indexed!(httproutes::HttpRoute, HttpRoute, http_routes);
indexed!(grpcroutes::GrpcRoute, GrpcRoute, grpc_routes);
indexed!(
    referencegrants::ReferenceGrant,
    ReferenceGrant,
    reference_grants
);

impl Indexed for Pod {
    const KIND: Kind = Kind::Pod;
    fn store(snapshot: &mut Snapshot) -> &mut Arc<Store<Self>> {
        &mut snapshot.pods
    }
    fn same(&self, old: &Self) -> bool {
        self == old
    }
    fn trim(&mut self) {
        use kube::Resource;
        self.meta_mut().managed_fields = None;
        self.meta_mut().resource_version = None;
        // Keep what identity and inbound listeners read: IPs and phase.
        if let Some(status) = &mut self.status {
            *status = k8s_openapi::api::core::v1::PodStatus {
                phase: status.phase.take(),
                pod_ip: status.pod_ip.take(),
                pod_ips: status.pod_ips.take(),
                ..Default::default()
            };
        }
    }
}

impl Indexed for Node {
    const KIND: Kind = Kind::Node;
    fn store(snapshot: &mut Snapshot) -> &mut Arc<Store<Self>> {
        &mut snapshot.nodes
    }
    fn same(&self, old: &Self) -> bool {
        self == old
    }
    fn trim(&mut self) {
        use kube::Resource;
        self.meta_mut().managed_fields = None;
        self.meta_mut().resource_version = None;
        // Only the topology labels matter; status changes every few seconds.
        self.status = None;
        self.spec = None;
    }
}

indexed!(istio networking::Gateway, IstioGateway, istio_gateways);
indexed!(gateways::Gateway, Gateway, gateways);

/// The index: the current state plus the sender that publishes it.
#[derive(Debug)]
pub struct Index {
    state: Snapshot,
    /// Every TLS Secret seen, published only while a gateway references it.
    tls_pool: BTreeMap<ObjectKey, Arc<TlsCredential>>,
    pending: Vec<Change>,
    tx: tokio_watch::Sender<Arc<Snapshot>>,
}

impl Default for Index {
    fn default() -> Self {
        Self::new()
    }
}

impl Index {
    pub fn new() -> Self {
        let (tx, _) = tokio_watch::channel(Arc::new(Snapshot::default()));
        Self {
            state: Snapshot::default(),
            tls_pool: BTreeMap::new(),
            pending: Vec::new(),
            tx,
        }
    }

    /// A receiver of every published snapshot (the latest one first).
    pub fn subscribe(&self) -> tokio_watch::Receiver<Arc<Snapshot>> {
        self.tx.subscribe()
    }

    /// The latest published snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.tx.borrow().clone()
    }

    /// Adds or replaces one object; publishes when it differs from what the
    /// index holds.
    pub fn apply<K: Indexed>(&mut self, obj: K) {
        self.put(obj);
        self.publish();
    }

    /// Removes one object; publishes when it was present.
    pub fn delete<K: Indexed>(&mut self, key: &ObjectKey) {
        self.remove::<K>(key);
        self.publish();
    }

    /// Replaces every object of kind `K` (after a (re)list) and marks the
    /// kind synced; publishes once.
    pub fn reset<K: Indexed>(&mut self, objs: Vec<K>) {
        let keep: BTreeSet<ObjectKey> = objs.iter().map(ObjectKey::of).collect();
        let gone: Vec<ObjectKey> = K::store(&mut self.state)
            .keys()
            .filter(|k| !keep.contains(*k))
            .cloned()
            .collect();
        for key in &gone {
            self.remove::<K>(key);
        }
        for obj in objs {
            self.put(obj);
        }
        if self.state.synced.insert(K::KIND) && self.pending.is_empty() {
            // Nothing changed, but readiness did: publish so waiters see it.
            self.state.generation += 1;
            self.tx.send_replace(Arc::new(self.state.clone()));
            return;
        }
        self.publish();
    }

    /// Adds or replaces a TLS Secret (only `kubernetes.io/tls`-shaped data
    /// is kept); it is published only while a gateway references it.
    pub fn apply_secret(&mut self, secret: &Secret) {
        let key = ObjectKey::of(secret);
        match TlsCredential::from_secret(secret) {
            Some(cred) => {
                self.tls_pool.insert(key, Arc::new(cred));
            }
            None => {
                self.tls_pool.remove(&key);
            }
        }
        self.refresh_secrets();
        self.publish();
    }

    /// Removes a Secret.
    pub fn delete_secret(&mut self, key: &ObjectKey) {
        self.tls_pool.remove(key);
        self.refresh_secrets();
        self.publish();
    }

    /// Replaces every Secret after a (re)list.
    pub fn reset_secrets(&mut self, secrets: &[Secret]) {
        self.tls_pool = secrets
            .iter()
            .filter_map(|s| Some((ObjectKey::of(s), Arc::new(TlsCredential::from_secret(s)?))))
            .collect();
        self.refresh_secrets();
        self.state.synced.insert(Kind::Secret);
        self.state.generation += 1;
        self.flush_log();
        self.tx.send_replace(Arc::new(self.state.clone()));
    }

    fn put<K: Indexed>(&mut self, mut obj: K) {
        obj.trim();
        let key = ObjectKey::of(&obj);
        let store = K::store(&mut self.state);
        if store.get(&key).is_some_and(|old| obj.same(old)) {
            return;
        }
        if K::KIND == Kind::EndpointSlice {
            let service = proxy::service_of_slice(obj.meta());
            self.unlink_slice(&key);
            if let Some(service) = service {
                Arc::make_mut(&mut self.state.slices_by_service)
                    .entry(ObjectKey::new(&key.namespace, service))
                    .or_default()
                    .insert(key.clone());
            }
        }
        Arc::make_mut(K::store(&mut self.state)).insert(key.clone(), Arc::new(obj));
        self.pending.push(Change { kind: K::KIND, key });
        if matches!(K::KIND, Kind::Gateway | Kind::IstioGateway) {
            self.refresh_secrets();
        }
    }

    fn remove<K: Indexed>(&mut self, key: &ObjectKey) {
        if !K::store(&mut self.state).contains_key(key) {
            return;
        }
        Arc::make_mut(K::store(&mut self.state)).remove(key);
        if K::KIND == Kind::EndpointSlice {
            self.unlink_slice(key);
        }
        self.pending.push(Change {
            kind: K::KIND,
            key: key.clone(),
        });
        if matches!(K::KIND, Kind::Gateway | Kind::IstioGateway) {
            self.refresh_secrets();
        }
    }

    fn unlink_slice(&mut self, slice: &ObjectKey) {
        let owners: Vec<ObjectKey> = self
            .state
            .slices_by_service
            .iter()
            .filter(|(svc, slices)| svc.namespace == slice.namespace && slices.contains(slice))
            .map(|(svc, _)| svc.clone())
            .collect();
        if owners.is_empty() {
            return;
        }
        let map = Arc::make_mut(&mut self.state.slices_by_service);
        for svc in owners {
            if let Some(set) = map.get_mut(&svc) {
                set.remove(slice);
                if set.is_empty() {
                    map.remove(&svc);
                }
            }
        }
    }

    /// Publishes exactly the referenced TLS credentials, recording changes.
    fn refresh_secrets(&mut self) {
        let wanted = credentials::referenced_secrets(&self.state);
        let next: Store<TlsCredential> = wanted
            .iter()
            .filter_map(|k| Some((k.clone(), self.tls_pool.get(k)?.clone())))
            .collect();
        let old = &self.state.secrets;
        let mut changed: Vec<ObjectKey> = next
            .iter()
            .filter(|(k, v)| old.get(*k).is_none_or(|o| o != *v))
            .map(|(k, _)| k.clone())
            .collect();
        changed.extend(old.keys().filter(|k| !next.contains_key(*k)).cloned());
        if changed.is_empty() {
            return;
        }
        self.state.secrets = Arc::new(next);
        self.pending.extend(changed.into_iter().map(|key| Change {
            kind: Kind::Secret,
            key,
        }));
    }

    fn flush_log(&mut self) {
        let generation = self.state.generation;
        let log = Arc::make_mut(&mut self.state.log);
        for change in self.pending.drain(..) {
            log.push_back((generation, change));
        }
        while log.len() > CHANGE_LOG_LEN {
            log.pop_front();
        }
    }

    fn publish(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        self.state.generation += 1;
        self.flush_log();
        self.tx.send_replace(Arc::new(self.state.clone()));
    }
}

#[cfg(test)]
mod tests;
