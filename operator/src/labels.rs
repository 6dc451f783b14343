//! The labels and names Weft's operator puts on what it creates. Every
//! object carries `app.kubernetes.io/managed-by=weft-operator`,
//! `app.kubernetes.io/part-of=weft` and `weft.dev/installation=<name>`;
//! objects of one revision also carry `weft.dev/revision=<revision>`.
//! Pruning and uninstall find objects by these labels, never by name alone.

use std::collections::BTreeMap;

/// Field manager of every server-side apply, and the `managed-by` value.
pub const FIELD_MANAGER: &str = "weft-operator";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
pub const PART_OF: &str = "weft";
/// The MeshInstallation an object was made for.
pub const INSTALLATION_LABEL: &str = "weft.dev/installation";
/// The revision an object belongs to (only on revision-scoped objects).
pub const REVISION_LABEL: &str = "weft.dev/revision";
/// The gateway (of `spec.gateways`) an object runs.
pub const GATEWAY_LABEL: &str = "weft.dev/gateway";
/// Istio's revision label: namespaces and pods select a control plane with it.
pub use weft_api::injection::REVISION_LABEL as ISTIO_REV_LABEL;
/// Istio's per-pod switch and namespace label (`enabled`: the default revision).
pub use weft_api::injection::{INJECT_LABEL, INJECTION_LABEL};
/// Hash of the object as the operator rendered it: a change of the
/// rendering (including a removed field) changes it.
pub const DESIRED_HASH_ANNOTATION: &str = "weft.dev/desired-hash";
/// Finalizer on a MeshInstallation: cluster-scoped objects are removed in
/// order (webhooks first) before it goes.
pub const FINALIZER: &str = "weft.dev/cleanup";

/// Labels on everything made for installation `installation`.
pub fn installation_labels(installation: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_owned(), FIELD_MANAGER.to_owned()),
        (PART_OF_LABEL.to_owned(), PART_OF.to_owned()),
        (INSTALLATION_LABEL.to_owned(), installation.to_owned()),
    ])
}

/// Labels on everything made for one revision of `installation`.
pub fn revision_labels(installation: &str, revision: &str) -> BTreeMap<String, String> {
    let mut labels = installation_labels(installation);
    labels.insert(REVISION_LABEL.to_owned(), revision.to_owned());
    labels
}

/// Selector of everything made for `installation` (both scopes).
pub fn installation_selector(installation: &str) -> String {
    format!("{MANAGED_BY_LABEL}={FIELD_MANAGER},{INSTALLATION_LABEL}={installation}")
}

/// Selector of the installation-scoped objects (no revision label).
pub fn installation_scope_selector(installation: &str) -> String {
    format!("{},!{REVISION_LABEL}", installation_selector(installation))
}

/// Selector of one revision's objects.
pub fn revision_selector(installation: &str, revision: &str) -> String {
    format!(
        "{},{REVISION_LABEL}={revision}",
        installation_selector(installation)
    )
}

/// Whether `labels` say the operator made the object.
pub fn is_managed(labels: Option<&BTreeMap<String, String>>) -> bool {
    labels
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .is_some_and(|v| v == FIELD_MANAGER)
}
