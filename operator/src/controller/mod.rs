//! The reconcilers (kube-runtime): [`installation`] for MeshInstallation
//! and [`revision`] for MeshRevision. Both are idempotent, never branch on
//! why they were called, write only what differs, and report through
//! status conditions and Events.

pub mod context;
pub mod installation;
pub mod revision;

pub use context::{Context, ReconcileError};

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use kube::Api;
use kube::runtime::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::Config as WatcherConfig;
use weft_api::weft::{MeshInstallation, MeshRevision};

use crate::labels::{FIELD_MANAGER, MANAGED_BY_LABEL};

/// Maps a namespaced object to its cluster-scoped owners of kind `O`.
/// (`Controller::owns` would look the owner up in the child's namespace,
/// where a cluster-scoped MeshInstallation or MeshRevision never is.)
fn owners<K, O>(object: K) -> Vec<ObjectRef<O>>
where
    K: kube::Resource,
    O: kube::Resource<DynamicType = ()>,
{
    let kind = O::kind(&());
    object
        .meta()
        .owner_references
        .iter()
        .flatten()
        .filter(|o| o.kind == kind)
        .map(|o| ObjectRef::new(&o.name))
        .collect()
}

/// Runs both controllers until `shutdown` resolves; then lets running
/// reconciles finish.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let managed = WatcherConfig::default().labels(&format!("{MANAGED_BY_LABEL}={FIELD_MANAGER}"));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let installations = Controller::new(
        Api::<MeshInstallation>::all(client.clone()),
        WatcherConfig::default(),
    );
    let store = installations.store();
    let ns_store = store.clone();
    let secret_store = store.clone();
    let installations = installations
        .owns(
            Api::<MeshRevision>::all(client.clone()),
            WatcherConfig::default(),
        )
        .watches(
            Api::<Deployment>::all(client.clone()),
            managed.clone(),
            owners::<Deployment, MeshInstallation>,
        )
        .watches(
            Api::<Service>::all(client.clone()),
            managed.clone(),
            owners::<Service, MeshInstallation>,
        )
        .watches(
            Api::<ConfigMap>::all(client.clone()),
            managed.clone(),
            owners::<ConfigMap, MeshInstallation>,
        )
        .watches(
            Api::<Secret>::all(client.clone()),
            managed.clone(),
            owners::<Secret, MeshInstallation>,
        )
        // A new namespace needs its trust bundle; a namespace made ours may be deleted.
        .watches(
            Api::<Namespace>::all(client.clone()),
            WatcherConfig::default(),
            move |_ns| {
                ns_store
                    .state()
                    .iter()
                    .map(|mi| ObjectRef::from_obj(mi.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        // A plugged-in CA Secret changed.
        .watches(
            Api::<Secret>::all(client.clone()),
            WatcherConfig::default().fields("type=Opaque"),
            move |secret| {
                let key = (
                    secret.metadata.namespace.clone().unwrap_or_default(),
                    secret.metadata.name.clone().unwrap_or_default(),
                );
                secret_store
                    .state()
                    .iter()
                    .filter(|mi| installation::plugged_in_secret(mi).is_some_and(|s| s == key))
                    .map(|mi| ObjectRef::from_obj(mi.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(stopped(stop_rx.clone()))
        .run(
            installation::reconcile,
            installation::error_policy,
            ctx.clone(),
        )
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "meshinstallation controller");
            }
        });

    let revisions = Controller::new(
        Api::<MeshRevision>::all(client.clone()),
        WatcherConfig::default(),
    );
    let rev_store = revisions.store();
    let revisions = revisions
        .watches(
            Api::<Deployment>::all(client.clone()),
            managed.clone(),
            owners::<Deployment, MeshRevision>,
        )
        .watches(
            Api::<Service>::all(client.clone()),
            managed.clone(),
            owners::<Service, MeshRevision>,
        )
        .owns(
            Api::<MutatingWebhookConfiguration>::all(client.clone()),
            managed.clone(),
        )
        .owns(
            Api::<ValidatingWebhookConfiguration>::all(client.clone()),
            managed.clone(),
        )
        // Namespace labels decide InUse.
        .watches(
            Api::<Namespace>::all(client.clone()),
            WatcherConfig::default(),
            move |_ns| {
                rev_store
                    .state()
                    .iter()
                    .map(|r| ObjectRef::from_obj(r.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(stopped(stop_rx))
        .run(revision::reconcile, revision::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "meshrevision controller");
            }
        });

    let _ = store;
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    futures::join!(installations, revisions);
}
