//! The glue: watches feed stores, every change (coalesced) runs one pure
//! [`plan`] pass, and the pass's writes are carried out — objects with
//! server-side apply (field manager `weftd`, forced), statuses with
//! `patch_status` guarded by resourceVersion and only when they differ.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::Notify;
use weft_api::gateway::gatewayclasses::GatewayClass;
use weft_api::gateway::gateways::Gateway;
use weft_api::gateway::httproutes::HttpRoute;
use weft_api::gateway::referencegrants::ReferenceGrant;

use super::plan::{ManagedKind, ManagedRef, Plan, StatusWrite, plan};
use super::render::{GATEWAY_NAME_LABEL, MANAGED_BY, MANAGED_BY_LABEL};
use super::settings::GatewaySettings;
use super::world::{DeploymentFacts, ServiceFacts, World, key};

/// Field manager of every write.
pub const FIELD_MANAGER: &str = "weftd";
/// Coalesce bursts of watch events into one pass.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// Re-run a pass this often even without events (statuses depend on time
/// only through transitions, so this normally writes nothing).
const RESYNC: Duration = Duration::from_secs(300);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Errors of the gateway controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the {0} watch ended unexpectedly: weftd must restart to keep gateways in sync")]
    WatchEnded(&'static str),
    #[error(
        "applying {kind} {namespace}/{name}: {source}; does weftd's ServiceAccount have RBAC to patch {kind}s?"
    )]
    Apply {
        kind: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("deleting {kind} {namespace}/{name}: {source}")]
    Delete {
        kind: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("writing the status of {kind} {name}: {source}")]
    Status {
        kind: &'static str,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("encoding {kind} {name} as JSON: {source}")]
    Encode {
        kind: &'static str,
        name: String,
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// A stable short label for metrics and Events.
    pub fn label(&self) -> &'static str {
        match self {
            Self::WatchEnded(_) => "watch_ended",
            Self::Apply { .. } => "apply",
            Self::Delete { .. } => "delete",
            Self::Status { .. } => "status",
            Self::Encode { .. } => "encode",
        }
    }
}

/// Watches a resource into a store; every event wakes the pass loop.
/// `PartialObjectMeta<K>` watches metadata only (Secrets: their data never
/// reaches the gateway controller).
fn reflect<K>(
    name: &'static str,
    api: Api<K>,
    config: watcher::Config,
    notify: Arc<Notify>,
    tasks: &mut tokio::task::JoinSet<&'static str>,
) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config).default_backoff());
    tasks.spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => notify.notify_one(),
                Err(e) => tracing::warn!(watch = name, error = %e, "watch error, retrying"),
            }
        }
        name
    });
    store
}

struct Stores {
    classes: Store<DeserializeGuard<GatewayClass>>,
    gateways: Store<DeserializeGuard<Gateway>>,
    routes: Store<DeserializeGuard<HttpRoute>>,
    grants: Store<DeserializeGuard<ReferenceGrant>>,
    namespaces: Store<PartialObjectMeta<Namespace>>,
    services: Store<Service>,
    secrets: Store<PartialObjectMeta<Secret>>,
    deployments: Store<Deployment>,
    service_accounts: Store<PartialObjectMeta<ServiceAccount>>,
}

/// Takes the valid objects of a guarded store; invalid ones are logged once
/// per resourceVersion and skipped, so one bad object stalls nothing.
fn valid<K: Resource<DynamicType = ()> + Clone>(
    store: &Store<DeserializeGuard<K>>,
    kind: &'static str,
    reported: &mut HashMap<(String, String), String>,
) -> Vec<K> {
    let mut out = Vec::new();
    for obj in store.state() {
        match &obj.0 {
            Ok(k) => out.push(k.clone()),
            Err(invalid) => {
                let meta = &invalid.metadata;
                let id = (
                    kind.to_owned(),
                    format!(
                        "{}/{}",
                        meta.namespace.as_deref().unwrap_or_default(),
                        meta.name.as_deref().unwrap_or_default()
                    ),
                );
                let rv = meta.resource_version.clone().unwrap_or_default();
                if reported.get(&id) != Some(&rv) {
                    tracing::warn!(kind, object = %id.1, error = %invalid.error, "skipping an object weftd cannot read: fix or delete it");
                    reported.insert(id, rv);
                }
            }
        }
    }
    out
}

fn managed_labels(labels: &std::collections::BTreeMap<String, String>) -> bool {
    labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
        && labels.contains_key(GATEWAY_NAME_LABEL)
}

impl Stores {
    fn world(&self, reported: &mut HashMap<(String, String), String>) -> (World, Vec<ManagedRef>) {
        let mut world = World {
            classes: valid(&self.classes, "GatewayClass", reported)
                .into_iter()
                .map(|c| (c.name_any(), c))
                .collect(),
            gateways: valid(&self.gateways, "Gateway", reported),
            routes: valid(&self.routes, "HTTPRoute", reported),
            grants: valid(&self.grants, "ReferenceGrant", reported),
            ..Default::default()
        };
        for ns in self.namespaces.state() {
            world.namespaces.insert(ns.name_any(), ns.labels().clone());
        }
        for s in self.secrets.state() {
            world
                .secrets
                .insert(key(&s.namespace().unwrap_or_default(), &s.name_any()));
        }
        for svc in self.services.state() {
            let spec = svc.spec.clone().unwrap_or_default();
            let ingress = svc
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|i| match (&i.ip, &i.hostname) {
                    (Some(ip), _) => Some(("IPAddress".to_owned(), ip.clone())),
                    (None, Some(h)) => Some(("Hostname".to_owned(), h.clone())),
                    _ => None,
                })
                .collect();
            let facts = ServiceFacts {
                ports: spec.ports.iter().flatten().map(|p| p.port).collect(),
                cluster_ip: spec.cluster_ip.clone(),
                ingress,
            };
            world.services.insert(
                key(&svc.namespace().unwrap_or_default(), &svc.name_any()),
                facts,
            );
        }
        let mut managed = Vec::new();
        for d in self.deployments.state() {
            let k = key(&d.namespace().unwrap_or_default(), &d.name_any());
            let available = d
                .status
                .as_ref()
                .and_then(|s| s.available_replicas)
                .unwrap_or(0);
            world.deployments.insert(
                k.clone(),
                DeploymentFacts {
                    available_replicas: available,
                },
            );
            if managed_labels(d.labels()) {
                managed.push(ManagedRef {
                    kind: ManagedKind::Deployment,
                    namespace: k.0,
                    name: k.1,
                });
            }
        }
        for svc in self
            .services
            .state()
            .iter()
            .filter(|s| managed_labels(s.labels()))
        {
            managed.push(ManagedRef {
                kind: ManagedKind::Service,
                namespace: svc.namespace().unwrap_or_default(),
                name: svc.name_any(),
            });
        }
        for sa in self
            .service_accounts
            .state()
            .iter()
            .filter(|s| managed_labels(s.labels()))
        {
            managed.push(ManagedRef {
                kind: ManagedKind::ServiceAccount,
                namespace: sa.namespace().unwrap_or_default(),
                name: sa.name_any(),
            });
        }
        managed.sort();
        (world, managed)
    }

    fn exists(&self, kind: ManagedKind, namespace: &str, name: &str) -> bool {
        match kind {
            ManagedKind::Deployment => self
                .deployments
                .get(&reflector::ObjectRef::new(name).within(namespace))
                .is_some(),
            ManagedKind::Service => self
                .services
                .get(&reflector::ObjectRef::new(name).within(namespace))
                .is_some(),
            ManagedKind::ServiceAccount => self
                .service_accounts
                .get(&reflector::ObjectRef::new(name).within(namespace))
                .is_some(),
        }
    }
}

/// Runs the gateway controller until `stop` resolves (then `Ok`), or until a
/// watch ends (an error). For weftd's wiring: `run_until(client, settings,
/// stopped(shutdown_rx))` as one more task.
pub async fn run_until(
    client: Client,
    settings: GatewaySettings,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    tokio::select! {
        result = run(client, settings) => result,
        () = stop => {
            tracing::info!("gateway controller stopped");
            Ok(())
        }
    }
}

/// Runs the gateway controller until a watch ends (which the watchers'
/// backoff makes a bug, not an operational event). Per-object failures are
/// logged and retried with a bounded backoff; they never end `run`.
pub async fn run(client: Client, settings: GatewaySettings) -> Result<(), Error> {
    let notify = Arc::new(Notify::new());
    let mut tasks = tokio::task::JoinSet::new();
    let selector = format!("{MANAGED_BY_LABEL}={MANAGED_BY},{GATEWAY_NAME_LABEL}");
    let all = watcher::Config::default;
    let owned = || watcher::Config::default().labels(&selector);
    let stores = Stores {
        classes: reflect(
            "gatewayclasses",
            Api::all(client.clone()),
            all(),
            notify.clone(),
            &mut tasks,
        ),
        gateways: reflect(
            "gateways",
            Api::all(client.clone()),
            all(),
            notify.clone(),
            &mut tasks,
        ),
        routes: reflect(
            "httproutes",
            Api::all(client.clone()),
            all(),
            notify.clone(),
            &mut tasks,
        ),
        grants: reflect(
            "referencegrants",
            Api::all(client.clone()),
            all(),
            notify.clone(),
            &mut tasks,
        ),
        namespaces: reflect(
            "namespaces",
            Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
            all(),
            notify.clone(),
            &mut tasks,
        ),
        services: reflect(
            "services",
            Api::all(client.clone()),
            all(),
            notify.clone(),
            &mut tasks,
        ),
        secrets: reflect(
            "secrets",
            Api::<PartialObjectMeta<Secret>>::all(client.clone()),
            all(),
            notify.clone(),
            &mut tasks,
        ),
        deployments: reflect(
            "deployments",
            Api::all(client.clone()),
            owned(),
            notify.clone(),
            &mut tasks,
        ),
        service_accounts: reflect(
            "serviceaccounts",
            Api::<PartialObjectMeta<ServiceAccount>>::all(client.clone()),
            owned(),
            notify.clone(),
            &mut tasks,
        ),
    };
    let mut runner = Runner {
        client,
        settings,
        applied: HashMap::new(),
        reported: HashMap::new(),
    };
    let passes = async {
        wait_ready(&stores).await;
        tracing::info!("gateway controller: caches synced");
        let mut backoff = Duration::ZERO;
        loop {
            let failures = runner.pass(&stores).await;
            backoff = if failures == 0 {
                Duration::ZERO
            } else {
                (backoff * 2).clamp(Duration::from_secs(1), MAX_BACKOFF)
            };
            let wait = if failures == 0 { RESYNC } else { backoff };
            tokio::select! {
                () = notify.notified() => tokio::time::sleep(DEBOUNCE).await,
                () = tokio::time::sleep(wait) => {}
            }
        }
    };
    tokio::select! {
        ended = tasks.join_next() => {
            let name = match ended {
                Some(Ok(name)) => name,
                _ => "unknown",
            };
            Err(Error::WatchEnded(name))
        }
        never = passes => never,
    }
}

async fn wait_ready(stores: &Stores) {
    // A dropped writer means its task ended; the select in `run` reports it.
    let _ = futures::join!(
        stores.classes.wait_until_ready(),
        stores.gateways.wait_until_ready(),
        stores.routes.wait_until_ready(),
        stores.grants.wait_until_ready(),
        stores.namespaces.wait_until_ready(),
        stores.services.wait_until_ready(),
        stores.secrets.wait_until_ready(),
        stores.deployments.wait_until_ready(),
        stores.service_accounts.wait_until_ready(),
    );
}

struct Runner {
    client: Client,
    settings: GatewaySettings,
    /// What was last applied per object, to skip re-applying unchanged
    /// objects that still exist.
    applied: HashMap<(&'static str, String, String), serde_json::Value>,
    reported: HashMap<(String, String), String>,
}

/// Now, to the second (what the API server stores), so a freshly written
/// transition time compares equal after the round trip.
fn now() -> Time {
    let secs = k8s_openapi::jiff::Timestamp::now().as_second();
    Time(
        k8s_openapi::jiff::Timestamp::from_second(secs)
            .unwrap_or_else(|_| k8s_openapi::jiff::Timestamp::now()),
    )
}

impl Runner {
    /// One pass; returns the number of failed writes.
    async fn pass(&mut self, stores: &Stores) -> usize {
        let (world, managed) = stores.world(&mut self.reported);
        let plan = plan(&world, &managed, &self.settings, &now());
        let results = self.execute(plan, stores).await;
        let failures = results.iter().filter(|r| r.is_err()).count();
        for e in results.into_iter().filter_map(Result::err) {
            tracing::warn!(error = %e, label = e.label(), "gateway controller write failed; will retry");
        }
        failures
    }

    async fn execute(&mut self, plan: Plan, stores: &Stores) -> Vec<Result<(), Error>> {
        let mut results = Vec::new();
        for e in &plan.errors {
            tracing::warn!(error = %e, "cannot render gateway");
        }
        for class in &plan.classes {
            let name = class.name_any();
            results.push(self.apply_cluster(&name, class).await);
        }
        for objects in &plan.objects {
            results.push(
                self.apply(
                    ManagedKind::ServiceAccount,
                    &objects.service_account,
                    stores,
                )
                .await,
            );
            results.push(
                self.apply(ManagedKind::Deployment, &objects.deployment, stores)
                    .await,
            );
            results.push(
                self.apply(ManagedKind::Service, &objects.service, stores)
                    .await,
            );
        }
        for m in &plan.prune {
            results.push(self.delete(m).await);
        }
        for w in plan.class_statuses {
            let api: Api<GatewayClass> = Api::all(self.client.clone());
            results.push(
                patch_status(
                    &api,
                    "GatewayClass",
                    &w,
                    json!({"conditions": w.status.conditions}),
                )
                .await,
            );
        }
        for w in plan.gateway_statuses {
            let api: Api<Gateway> = Api::namespaced(
                self.client.clone(),
                w.namespace.as_deref().unwrap_or_default(),
            );
            // Explicit nulls: a merge patch must clear what is no longer true.
            let body = json!({
                "addresses": w.status.addresses,
                "conditions": w.status.conditions,
                "listeners": w.status.listeners,
            });
            results.push(patch_status(&api, "Gateway", &w, body).await);
        }
        for w in plan.route_statuses {
            let api: Api<HttpRoute> = Api::namespaced(
                self.client.clone(),
                w.namespace.as_deref().unwrap_or_default(),
            );
            results.push(
                patch_status(&api, "HTTPRoute", &w, json!({"parents": w.status.parents})).await,
            );
        }
        results
    }

    async fn apply_cluster(&mut self, name: &str, class: &GatewayClass) -> Result<(), Error> {
        let value = encode("GatewayClass", name, class)?;
        let id = ("GatewayClass", String::new(), name.to_owned());
        if self.applied.get(&id) == Some(&value) {
            return Ok(());
        }
        let api: Api<GatewayClass> = Api::all(self.client.clone());
        api.patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&value),
        )
        .await
        .map_err(|source| Error::Apply {
            kind: "GatewayClass",
            namespace: String::new(),
            name: name.to_owned(),
            source: Box::new(source),
        })?;
        tracing::info!(gatewayclass = name, "applied");
        self.applied.insert(id, value);
        Ok(())
    }

    async fn apply<K>(&mut self, kind: ManagedKind, obj: &K, stores: &Stores) -> Result<(), Error>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Serialize
            + Clone
            + DeserializeOwned
            + Debug,
        K::DynamicType: Default,
    {
        let kind_name = kind_name(kind);
        let namespace = obj.namespace().unwrap_or_default();
        let name = obj.name_any();
        let mut value = encode(kind_name, &name, obj)?;
        // SSA needs apiVersion and kind in the body.
        if let Some(map) = value.as_object_mut() {
            map.insert(
                "apiVersion".to_owned(),
                json!(K::api_version(&Default::default())),
            );
            map.insert("kind".to_owned(), json!(K::kind(&Default::default())));
        }
        let id = (kind_name, namespace.clone(), name.clone());
        if self.applied.get(&id) == Some(&value) && stores.exists(kind, &namespace, &name) {
            return Ok(());
        }
        let api: Api<K> = Api::namespaced(self.client.clone(), &namespace);
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&value),
        )
        .await
        .map_err(|source| Error::Apply {
            kind: kind_name,
            namespace: namespace.clone(),
            name: name.clone(),
            source: Box::new(source),
        })?;
        tracing::info!(kind = kind_name, namespace = %namespace, name = %name, "applied");
        self.applied.insert(id, value);
        Ok(())
    }

    async fn delete(&mut self, m: &ManagedRef) -> Result<(), Error> {
        let kind = kind_name(m.kind);
        let result = match m.kind {
            ManagedKind::Deployment => delete_one::<Deployment>(&self.client, m).await,
            ManagedKind::Service => delete_one::<Service>(&self.client, m).await,
            ManagedKind::ServiceAccount => delete_one::<ServiceAccount>(&self.client, m).await,
        };
        self.applied
            .remove(&(kind, m.namespace.clone(), m.name.clone()));
        match result {
            Ok(()) => {
                tracing::info!(kind, namespace = %m.namespace, name = %m.name, "pruned: no Weft gateway wants it any more");
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(source) => Err(Error::Delete {
                kind,
                namespace: m.namespace.clone(),
                name: m.name.clone(),
                source: Box::new(source),
            }),
        }
    }
}

fn kind_name(kind: ManagedKind) -> &'static str {
    match kind {
        ManagedKind::Deployment => "Deployment",
        ManagedKind::Service => "Service",
        ManagedKind::ServiceAccount => "ServiceAccount",
    }
}

async fn delete_one<K>(client: &Client, m: &ManagedRef) -> Result<(), kube::Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), &m.namespace);
    api.delete(&m.name, &DeleteParams::background())
        .await
        .map(|_| ())
}

fn encode<T: Serialize>(
    kind: &'static str,
    name: &str,
    obj: &T,
) -> Result<serde_json::Value, Error> {
    serde_json::to_value(obj).map_err(|source| Error::Encode {
        kind,
        name: name.to_owned(),
        source,
    })
}

async fn patch_status<K, S>(
    api: &Api<K>,
    kind: &'static str,
    w: &StatusWrite<S>,
    status: serde_json::Value,
) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    // The resourceVersion makes this a read-modify-write: if the object
    // changed since our store saw it, the API server refuses (409) and the
    // next pass recomputes from the newer copy.
    let body = json!({
        "metadata": {"resourceVersion": w.resource_version},
        "status": status,
    });
    api.patch_status(&w.name, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .map_err(|source| Error::Status {
            kind,
            name: format!("{}/{}", w.namespace.as_deref().unwrap_or_default(), w.name),
            source: Box::new(source),
        })?;
    tracing::info!(kind, namespace = w.namespace.as_deref().unwrap_or_default(), name = %w.name, "status written");
    Ok(())
}
