//! What the reconcilers share: the client, the applier, images, metrics,
//! the Event recorder; and helpers both use.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::apply::{Applier, ApplyError};
use crate::labels::FIELD_MANAGER;
use crate::metrics::Metrics;
use crate::render::{Images, RenderError};
use crate::status::Rollout;

/// How soon to look again while something is still starting.
pub const SOON: Duration = Duration::from_secs(5);

/// Why a reconcile failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("reading {what}: {source}")]
    Read {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("writing the status of {what}: {source}")]
    Status {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("the finalizer of {0} could not be handled: {1}")]
    Finalizer(String, String),
    #[error("{0} is missing metadata (name or uid): was it read from the API server?")]
    Metadata(String),
    #[error("uninstall: {0} still exist; retrying")]
    StillThere(String),
}

impl ReconcileError {
    /// Stable short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Apply(e) => e.label(),
            Self::Render(_) => "Render",
            Self::Read { .. } => "Read",
            Self::Status { .. } => "Status",
            Self::Finalizer(..) => "Finalizer",
            Self::Metadata(_) => "Metadata",
            Self::StillThere(_) => "StillThere",
        }
    }

    pub fn read(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let what = what.into();
        move |source| Self::Read {
            what,
            source: Box::new(source),
        }
    }
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub applier: Applier,
    pub metrics: Metrics,
    pub images: Images,
    pub recorder: Recorder,
    /// Reconcile this often when all is well (catches unreported drift).
    pub resync: Duration,
    /// Probe weftd's webhook (off in tests that run without cluster networking).
    pub probe_webhooks: bool,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("images", &self.images)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// Publishes an Event about `object` (failures are logged, not fatal).
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let mut note = note;
        if note.len() > 1000 {
            let mut end = 1000;
            while !note.is_char_boundary(end) {
                end -= 1;
            }
            note.truncate(end);
            note.push('…');
        }
        self.metrics.write("event", "Event");
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_owned(),
            note: Some(note),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &object.object_ref(&())).await {
            tracing::warn!(error = %e, "could not record an Event: may the operator create events.k8s.io Events?");
        }
    }

    /// Writes `status` when it differs from `current`.
    pub async fn patch_status<K, S>(
        &self,
        api: &Api<K>,
        name: &str,
        current: Option<&S>,
        status: &S,
    ) -> Result<bool, ReconcileError>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
        S: Serialize + PartialEq,
    {
        if current == Some(status) {
            return Ok(false);
        }
        self.metrics.write("status", K::kind(&()).as_ref());
        api.patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Merge(serde_json::json!({ "status": status })),
        )
        .await
        .map_err(|source| ReconcileError::Status {
            what: format!("{} {name}", K::kind(&())),
            source: Box::new(source),
        })?;
        Ok(true)
    }

    /// How the Deployment `namespace/name` is rolling out (pods selected by `selector`).
    pub async fn rollout(
        &self,
        namespace: &str,
        name: &str,
        selector: &str,
    ) -> Result<Rollout, ReconcileError> {
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        let deployment = deployments
            .get_opt(name)
            .await
            .map_err(ReconcileError::read(format!(
                "Deployment {namespace}/{name}"
            )))?;
        let pods = if deployment.is_some() {
            let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
            api.list(&ListParams::default().labels(selector))
                .await
                .map_err(ReconcileError::read(format!("pods of {namespace}/{name}")))?
                .items
        } else {
            Vec::new()
        };
        Ok(Rollout::observe(name, deployment.as_ref(), &pods))
    }
}

/// `k=v,k=v` from a label map.
pub fn selector_string(labels: &std::collections::BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}
