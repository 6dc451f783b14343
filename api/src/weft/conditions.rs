//! Condition types and the states Weft reports on its resources. Types and
//! reasons are PascalCase and stable: tools and alerts match on them.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The condition types Weft sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConditionType {
    /// The last reconcile applied the desired state without error.
    Reconciled,
    /// Everything the resource asks for is running and healthy.
    Ready,
    /// A change (install, upgrade, rotation, migration) is under way.
    Progressing,
    /// Something that was working is not, or the spec cannot be carried out.
    Degraded,
    /// A revision or tag is referenced by workloads or namespaces.
    InUse,
}

impl ConditionType {
    /// The condition's `type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reconciled => "Reconciled",
            Self::Ready => "Ready",
            Self::Progressing => "Progressing",
            Self::Degraded => "Degraded",
            Self::InUse => "InUse",
        }
    }
}

impl fmt::Display for ConditionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The one-word summary shown in `kubectl get`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum State {
    /// Accepted, nothing running yet.
    Pending,
    /// Being installed or changed.
    Reconciling,
    /// Installed and healthy.
    Ready,
    /// Running, but something is unhealthy.
    Degraded,
    /// The spec cannot be carried out; see the conditions.
    Error,
}
