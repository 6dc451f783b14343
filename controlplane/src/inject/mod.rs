//! Sidecar injection, the pure core of the mutating webhook: [`decide`]
//! whether this revision injects a pod, then [`inject`] builds the
//! injected pod and the JSON patch the API server applies. No client, no
//! socket: the webhook server (`crate::webhook`) feeds it the pod from the
//! AdmissionReview and the pod's Namespace.

pub mod decision;
pub mod patch;
pub mod probes;
pub mod settings;
pub mod traffic;

#[cfg(test)]
mod golden;

use k8s_openapi::api::core::v1::{Namespace, Pod};

pub use decision::{Decision, Selection, SkipReason, decide};
pub use patch::{Injected, inject};
pub use settings::InjectSettings;

/// Why a pod selected for injection could not be injected. The webhook
/// refuses the pod with this message: a pod the user asked to be in the
/// mesh never starts without its sidecar.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error("annotation {annotation}={value:?} is invalid: {reason}; fix or remove the annotation")]
    BadAnnotation {
        annotation: String,
        value: String,
        reason: String,
    },
    #[error("the pod has no spec: nothing to inject into")]
    NoSpec,
    #[error("serializing the injected pod failed: {0}")]
    Serialize(#[source] serde_json::Error),
}

impl InjectError {
    /// A stable short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::BadAnnotation { .. } => "BadAnnotation",
            Self::NoSpec => "NoSpec",
            Self::Serialize(_) => "Serialize",
        }
    }
}

/// What the webhook does with one pod.
#[derive(Clone, Debug)]
pub enum Outcome {
    Inject {
        selected_by: Selection,
        injected: Box<Injected>,
    },
    Skip(SkipReason),
}

/// Decides and, when selected, injects.
pub fn admit(
    pod: &Pod,
    namespace: &Namespace,
    settings: &InjectSettings,
) -> Result<Outcome, InjectError> {
    match decide(pod, namespace, settings) {
        Decision::Skip(reason) => Ok(Outcome::Skip(reason)),
        Decision::Inject { selected_by } => Ok(Outcome::Inject {
            selected_by,
            injected: Box::new(inject(pod, settings)?),
        }),
    }
}
