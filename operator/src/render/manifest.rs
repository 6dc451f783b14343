//! One rendered object, kind-agnostic: what the applier applies and the
//! golden tests print.

use std::collections::BTreeMap;
use std::fmt;

use kube::api::DynamicObject;
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Resource, ResourceExt};
use serde::Serialize;

use crate::labels::DESIRED_HASH_ANNOTATION;

/// Why an object could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("rendering {kind} {name}: {source}")]
    Serialize {
        kind: String,
        name: String,
        #[source]
        source: serde_json::Error,
    },
}

/// An object to apply, with what the API needs to address it.
#[derive(Clone, PartialEq)]
pub struct Manifest {
    pub resource: ApiResource,
    pub namespaced: bool,
    pub object: DynamicObject,
}

impl fmt::Debug for Manifest {
    // Secrets' data must never be printed: show the address only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Manifest({})", self.id())
    }
}

impl Manifest {
    /// From a typed object.
    pub fn new<K>(object: &K) -> Result<Self, RenderError>
    where
        K: Resource<DynamicType = ()> + Serialize,
    {
        let resource = ApiResource::erase::<K>(&());
        let namespaced = object.meta().namespace.is_some();
        let fail = |source| RenderError::Serialize {
            kind: resource.kind.clone(),
            name: object.meta().name.clone().unwrap_or_default(),
            source,
        };
        let mut value = serde_json::to_value(object).map_err(fail)?;
        if let Some(map) = value.as_object_mut() {
            map.insert("apiVersion".into(), resource.api_version.clone().into());
            map.insert("kind".into(), resource.kind.clone().into());
        }
        let mut object: DynamicObject = serde_json::from_value(value).map_err(fail)?;
        let hash = desired_hash(&object);
        object
            .annotations_mut()
            .insert(DESIRED_HASH_ANNOTATION.to_owned(), hash);
        Ok(Self {
            resource,
            namespaced,
            object,
        })
    }

    pub fn gvk(&self) -> GroupVersionKind {
        GroupVersionKind::gvk(
            &self.resource.group,
            &self.resource.version,
            &self.resource.kind,
        )
    }

    pub fn name(&self) -> String {
        self.object.name_any()
    }

    pub fn namespace(&self) -> Option<String> {
        self.object.namespace()
    }

    /// `Kind namespace/name`, for logs and Events.
    pub fn id(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{} {ns}/{}", self.resource.kind, self.name()),
            None => format!("{} {}", self.resource.kind, self.name()),
        }
    }

    /// The hash annotation the object carries.
    pub fn hash(&self) -> Option<&str> {
        self.object
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DESIRED_HASH_ANNOTATION))
            .map(String::as_str)
    }

    /// Sort key: apply order (namespaces and RBAC before what uses them,
    /// webhook registrations last, so they point at a running weftd).
    pub fn order(&self) -> (usize, String, String) {
        let rank = KIND_ORDER
            .iter()
            .position(|k| *k == self.resource.kind)
            .unwrap_or(KIND_ORDER.len());
        (rank, self.namespace().unwrap_or_default(), self.name())
    }
}

/// The kinds the operator manages, in apply order. Uninstall walks it
/// backwards after the webhook registrations.
pub const KIND_ORDER: [&str; 15] = [
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Secret",
    "ConfigMap",
    "MeshRevision",
    "Service",
    "Deployment",
    "PodDisruptionBudget",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "Lease",
];

/// SHA-256 (first 16 hex digits) of the object's canonical JSON, without
/// the hash annotation itself.
fn desired_hash(object: &DynamicObject) -> String {
    let mut copy = object.clone();
    if let Some(a) = copy.metadata.annotations.as_mut() {
        a.remove(DESIRED_HASH_ANNOTATION);
    }
    // serde_json maps are ordered (BTreeMap) here: the text is canonical.
    let text = serde_json::to_string(&copy).unwrap_or_default();
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Sorts manifests into apply order.
pub fn sort(manifests: &mut [Manifest]) {
    manifests.sort_by_key(Manifest::order);
}

/// Renders manifests as one YAML stream, Secret data and CA bundles
/// replaced by placeholders (for golden files a reviewer reads).
pub fn to_review_yaml(manifests: &[Manifest]) -> String {
    let mut out = String::new();
    for m in manifests {
        let mut value = serde_json::to_value(&m.object).unwrap_or_default();
        redact(&mut value);
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&value).unwrap_or_default());
    }
    out
}

fn redact(value: &mut serde_json::Value) {
    use serde_json::Value;
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let Some(map) = value.as_object_mut() else {
        return;
    };
    if kind == "Secret"
        && let Some(Value::Object(data)) = map.get_mut("data")
    {
        for v in data.values_mut() {
            *v = Value::String("<redacted>".into());
        }
    }
    if kind == "ConfigMap"
        && let Some(Value::Object(data)) = map.get_mut("data")
        && let Some(v) = data.get_mut(crate::contract::ROOT_CERT)
    {
        *v = Value::String("<mesh root certificate>".into());
    }
    if let Some(Value::Object(meta)) = map.get_mut("metadata")
        && let Some(Value::Object(a)) = meta.get_mut("annotations")
        && a.contains_key(DESIRED_HASH_ANNOTATION)
    {
        a.insert(
            DESIRED_HASH_ANNOTATION.into(),
            Value::String("<hash>".into()),
        );
    }
    if let Some(Value::Array(hooks)) = map.get_mut("webhooks") {
        for hook in hooks {
            if let Some(Value::Object(cc)) = hook.get_mut("clientConfig")
                && cc.contains_key("caBundle")
            {
                cc.insert(
                    "caBundle".into(),
                    Value::String("<mesh root certificate>".into()),
                );
            }
        }
    }
}

/// Labels merged: `base` first, `over` on top.
pub fn merged(
    base: &BTreeMap<String, String>,
    over: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = base.clone();
    out.extend(over.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}
