//! The thin edge that makes the cluster match rendered manifests:
//! compare, then server-side apply (field manager `weft-operator`, forced)
//! only what differs; prune objects carrying Weft's labels that are no
//! longer desired. Nothing is written when nothing changed: an object is
//! left alone when it carries the rendering's hash and every rendered
//! field already has the rendered value.

use std::collections::BTreeSet;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::ApiResource;
use kube::{Client, ResourceExt};
use serde_json::Value;

use crate::labels::{DESIRED_HASH_ANNOTATION, FIELD_MANAGER};
use crate::metrics::Metrics;
use crate::render::Manifest;

/// Why applying or pruning failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("reading {id}: {source}; may the operator get {kind}s?")]
    Get {
        id: String,
        kind: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("applying {id}: {source}")]
    Apply {
        id: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("listing {kind}s with {selector}: {source}")]
    List {
        kind: String,
        selector: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("deleting {id}: {source}")]
    Delete {
        id: String,
        #[source]
        source: Box<kube::Error>,
    },
}

impl ApplyError {
    /// Stable short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Get { .. } => "Get",
            Self::Apply { .. } => "Apply",
            Self::List { .. } => "List",
            Self::Delete { .. } => "Delete",
        }
    }

    /// Whether the API server refused the object itself (a 4xx other than
    /// conflicts): retrying the same input will not help.
    pub fn is_invalid(&self) -> bool {
        match self {
            Self::Apply { source, .. } => matches!(
                source.as_ref(),
                kube::Error::Api(s) if s.code == 422 || s.code == 400
            ),
            _ => false,
        }
    }
}

/// What one apply pass changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub deleted: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.created.is_empty() && self.updated.is_empty() && self.deleted.is_empty()
    }

    pub fn extend(&mut self, other: Changes) {
        self.created.extend(other.created);
        self.updated.extend(other.updated);
        self.deleted.extend(other.deleted);
    }

    /// One line for an Event: `created Deployment weft-system/weftd-default, …`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        for (verb, ids) in [
            ("created", &self.created),
            ("updated", &self.updated),
            ("deleted", &self.deleted),
        ] {
            if !ids.is_empty() {
                parts.push(format!("{verb} {}", ids.join(", ")));
            }
        }
        parts.join("; ")
    }
}

/// Whether every field of `desired` has the same value in `current`
/// (fields the API server added are ignored). Lists must match in length
/// and element by element.
pub fn is_subset(desired: &Value, current: &Value) -> bool {
    match (desired, current) {
        (Value::Object(d), Value::Object(c)) => d.iter().all(|(k, dv)| match c.get(k) {
            Some(cv) => is_subset(dv, cv),
            None => is_empty(dv),
        }),
        (Value::Array(d), Value::Array(c)) => {
            d.len() == c.len() && d.iter().zip(c).all(|(dv, cv)| is_subset(dv, cv))
        }
        (Value::Array(d), Value::Null) => d.is_empty(),
        _ => desired == current,
    }
}

/// `null`, `{}` and `[]` are what the API server drops.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.values().all(is_empty),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Whether `current` must be re-applied to match `desired`.
pub fn needs_apply(desired: &Manifest, current: &DynamicObject) -> bool {
    let current_hash = current
        .annotations()
        .get(DESIRED_HASH_ANNOTATION)
        .map(String::as_str);
    if current_hash != desired.hash() {
        return true;
    }
    let mut d = serde_json::to_value(&desired.object).unwrap_or_default();
    let c = serde_json::to_value(current).unwrap_or_default();
    // Server-populated metadata is not ours to compare.
    if let Some(meta) = d.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    !is_subset(&d, &c)
}

/// Applies manifests and prunes with one Kubernetes client.
#[derive(Clone)]
pub struct Applier {
    client: Client,
    metrics: Metrics,
}

impl std::fmt::Debug for Applier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier").finish_non_exhaustive()
    }
}

impl Applier {
    pub fn new(client: Client, metrics: Metrics) -> Self {
        Self { client, metrics }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    fn api(&self, resource: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, resource),
            None => Api::all_with(self.client.clone(), resource),
        }
    }

    /// Reads the current object of `m`, if any.
    pub async fn current(&self, m: &Manifest) -> Result<Option<DynamicObject>, ApplyError> {
        self.api(&m.resource, m.namespace().as_deref())
            .get_opt(&m.name())
            .await
            .map_err(|source| ApplyError::Get {
                id: m.id(),
                kind: m.resource.kind.clone(),
                source: Box::new(source),
            })
    }

    /// Makes each manifest's object match, writing only what differs.
    pub async fn apply(&self, manifests: &[Manifest]) -> Result<Changes, ApplyError> {
        let mut changes = Changes::default();
        for m in manifests {
            let current = self.current(m).await?;
            match &current {
                Some(c) if !needs_apply(m, c) => continue,
                _ => {}
            }
            let api = self.api(&m.resource, m.namespace().as_deref());
            let params = PatchParams::apply(FIELD_MANAGER).force();
            self.metrics.write("apply", &m.resource.kind);
            api.patch(&m.name(), &params, &Patch::Apply(&m.object))
                .await
                .map_err(|source| ApplyError::Apply {
                    id: m.id(),
                    source: Box::new(source),
                })?;
            tracing::info!(object = %m.id(), created = current.is_none(), "applied");
            if current.is_none() {
                changes.created.push(m.id());
            } else {
                changes.updated.push(m.id());
            }
        }
        Ok(changes)
    }

    /// Lists the objects of `resource` matching `selector`, cluster-wide.
    pub async fn list(
        &self,
        resource: &ApiResource,
        selector: &str,
    ) -> Result<Vec<DynamicObject>, ApplyError> {
        self.api(resource, None)
            .list(&ListParams::default().labels(selector))
            .await
            .map(|l| l.items)
            .map_err(|source| ApplyError::List {
                kind: resource.kind.clone(),
                selector: selector.to_owned(),
                source: Box::new(source),
            })
    }

    /// Deletes one object (background propagation); gone already is fine.
    pub async fn delete(
        &self,
        resource: &ApiResource,
        object: &DynamicObject,
    ) -> Result<bool, ApplyError> {
        let ns = object.namespace();
        let id = match &ns {
            Some(ns) => format!("{} {ns}/{}", resource.kind, object.name_any()),
            None => format!("{} {}", resource.kind, object.name_any()),
        };
        if object.metadata.deletion_timestamp.is_some() {
            return Ok(false);
        }
        self.metrics.write("delete", &resource.kind);
        match self
            .api(resource, ns.as_deref())
            .delete(&object.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) => {
                tracing::info!(object = %id, "deleted");
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(source) => Err(ApplyError::Delete {
                id,
                source: Box::new(source),
            }),
        }
    }

    /// Deletes every object of `kinds` matching `selector` that is not in
    /// `desired`.
    pub async fn prune(
        &self,
        desired: &[Manifest],
        kinds: &[ApiResource],
        selector: &str,
    ) -> Result<Changes, ApplyError> {
        let keep: BTreeSet<(String, Option<String>, String)> = desired
            .iter()
            .map(|m| (m.resource.kind.clone(), m.namespace(), m.name()))
            .collect();
        let mut changes = Changes::default();
        for resource in kinds {
            for object in self.list(resource, selector).await? {
                let key = (resource.kind.clone(), object.namespace(), object.name_any());
                if keep.contains(&key) {
                    continue;
                }
                if self.delete(resource, &object).await? {
                    changes.deleted.push(match &key.1 {
                        Some(ns) => format!("{} {ns}/{}", key.0, key.2),
                        None => format!("{} {}", key.0, key.2),
                    });
                }
            }
        }
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_defaults_do_not_count_as_differences() {
        let desired = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}});
        let current = json!({"spec": {"replicas": 2, "progressDeadlineSeconds": 600,
            "template": {"spec": {"containers": [{"name": "a", "image": "x", "imagePullPolicy": "IfNotPresent"}], "dnsPolicy": "ClusterFirst"}}}});
        assert!(is_subset(&desired, &current));
    }

    #[test]
    fn a_changed_value_or_list_length_is_a_difference() {
        let desired = json!({"spec": {"replicas": 3}});
        assert!(!is_subset(&desired, &json!({"spec": {"replicas": 2}})));
        let desired = json!({"ports": [{"port": 1}, {"port": 2}]});
        assert!(!is_subset(&desired, &json!({"ports": [{"port": 1}]})));
        assert!(!is_subset(&json!({"a": "x"}), &json!({})));
    }

    #[test]
    fn empty_values_the_server_drops_match_absence() {
        assert!(is_subset(&json!({"a": {}, "b": [], "c": null}), &json!({})));
    }

    #[test]
    fn summary_names_every_change() {
        let c = Changes {
            created: vec!["Deployment ns/a".into()],
            updated: vec![],
            deleted: vec!["Service ns/b".into()],
        };
        assert_eq!(c.summary(), "created Deployment ns/a; deleted Service ns/b");
    }
}
