//! Whether this weftd injects a sidecar into a pod, following Istio's
//! rules so namespaces and pods labelled for Istio behave the same:
//!
//! | namespace | pod | injected by |
//! | --- | --- | --- |
//! | `istio-injection=enabled` | any | the `default` tag's revision |
//! | `istio-injection=<other>` | any | nobody |
//! | `istio.io/rev=<rev or tag>` | any | that revision |
//! | unlabelled | label `istio.io/rev=<rev or tag>` | that revision |
//! | unlabelled | label `sidecar.istio.io/inject=true` | the `default` tag's revision |
//!
//! In every case `sidecar.istio.io/inject=false` (label, or the older
//! annotation) opts the pod out, and pods with `hostNetwork`, pods already
//! injected and pods of Kubernetes' own namespaces are skipped.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{Namespace, Pod};

use super::settings::{DEFAULT_TAG, INIT_CONTAINER, InjectSettings, PROXY_CONTAINER};

pub use weft_api::injection::{IGNORED_NAMESPACES, INJECT_LABEL, INJECTION_LABEL, REVISION_LABEL};
/// Annotation recording what was injected; its presence means "injected".
pub const STATUS_ANNOTATION: &str = "sidecar.istio.io/status";

/// The outcome for one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Inject; `selected_by` says which label chose this revision.
    Inject { selected_by: Selection },
    /// Leave the pod alone.
    Skip(SkipReason),
}

/// Which label selected this weftd's revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Namespace `istio-injection=enabled`, served by the `default` tag.
    NamespaceInjectionEnabled,
    /// Namespace `istio.io/rev=<name>`.
    NamespaceRevision(String),
    /// Pod `istio.io/rev=<name>` in an unlabelled namespace.
    PodRevision(String),
    /// Pod `sidecar.istio.io/inject=true` in an unlabelled namespace.
    PodOptIn,
}

/// Why a pod is left alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// The pod shares the node's network namespace: iptables would capture
    /// the node's traffic.
    HostNetwork,
    /// A sidecar is already there (status annotation or container).
    AlreadyInjected,
    /// `sidecar.istio.io/inject=false` on the pod.
    PodOptedOut,
    /// `istio-injection` on the namespace is set to something other than `enabled`.
    NamespaceDisabled,
    /// One of Kubernetes' own namespaces.
    SystemNamespace,
    /// Nothing selects injection for this pod.
    NotSelected,
    /// Injection is requested from another revision or tag.
    OtherRevision(String),
}

impl SkipReason {
    /// A stable short label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::HostNetwork => "HostNetwork",
            Self::AlreadyInjected => "AlreadyInjected",
            Self::PodOptedOut => "PodOptedOut",
            Self::NamespaceDisabled => "NamespaceDisabled",
            Self::SystemNamespace => "SystemNamespace",
            Self::NotSelected => "NotSelected",
            Self::OtherRevision(_) => "OtherRevision",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OtherRevision(rev) => write!(f, "injection requested from revision {rev:?}"),
            other => f.write_str(other.label()),
        }
    }
}

/// Istio's reading of a boolean label: `true`, `yes`, `y`, `on`, `1`
/// (any case) are true; anything else is false.
pub fn truthy(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "true" | "yes" | "y" | "on" | "1"
    )
}

fn get<'a>(map: Option<&'a BTreeMap<String, String>>, key: &str) -> Option<&'a str> {
    map.and_then(|m| m.get(key)).map(String::as_str)
}

/// Decides whether this weftd (`settings`) injects `pod`, created in `namespace`.
pub fn decide(pod: &Pod, namespace: &Namespace, settings: &InjectSettings) -> Decision {
    let pod_labels = pod.metadata.labels.as_ref();
    let pod_annotations = pod.metadata.annotations.as_ref();
    let ns_labels = namespace.metadata.labels.as_ref();
    let ns_name = namespace.metadata.name.as_deref().unwrap_or_default();

    if IGNORED_NAMESPACES.contains(&ns_name) {
        return Decision::Skip(SkipReason::SystemNamespace);
    }
    if pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
    {
        return Decision::Skip(SkipReason::HostNetwork);
    }
    if is_injected(pod) {
        return Decision::Skip(SkipReason::AlreadyInjected);
    }
    // The label wins over the (older) annotation, as in Istio.
    let pod_inject = get(pod_labels, INJECT_LABEL).or(get(pod_annotations, INJECT_LABEL));
    if pod_inject.is_some_and(|v| !truthy(v)) {
        return Decision::Skip(SkipReason::PodOptedOut);
    }

    let (requested, selection) = match (
        get(ns_labels, INJECTION_LABEL),
        get(ns_labels, REVISION_LABEL),
    ) {
        (Some("enabled"), _) => (DEFAULT_TAG, Selection::NamespaceInjectionEnabled),
        (Some(_), _) => return Decision::Skip(SkipReason::NamespaceDisabled),
        (None, Some(rev)) => (rev, Selection::NamespaceRevision(rev.to_owned())),
        (None, None) => match get(pod_labels, REVISION_LABEL) {
            Some(rev) => (rev, Selection::PodRevision(rev.to_owned())),
            // Only the label opts in: the API server calls the webhook by
            // label (objectSelector), it cannot see annotations.
            None if get(pod_labels, INJECT_LABEL).is_some_and(truthy) => {
                (DEFAULT_TAG, Selection::PodOptIn)
            }
            None => return Decision::Skip(SkipReason::NotSelected),
        },
    };
    if settings.answers_to(requested) {
        Decision::Inject {
            selected_by: selection,
        }
    } else {
        Decision::Skip(SkipReason::OtherRevision(requested.to_owned()))
    }
}

/// Whether the pod already carries a sidecar (ours, or one recorded by the
/// status annotation Istio and Weft both write).
pub fn is_injected(pod: &Pod) -> bool {
    let annotated = pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(STATUS_ANNOTATION));
    let spec = pod.spec.as_ref();
    let has_container = spec
        .into_iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .any(|c| c.name == PROXY_CONTAINER || c.name == INIT_CONTAINER);
    annotated || has_container
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use kube::api::ObjectMeta;

    fn map(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
        (!pairs.is_empty()).then(|| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        })
    }

    fn ns(name: &str, labels: &[(&str, &str)]) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                labels: map(labels),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn pod(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".to_owned()),
                labels: map(labels),
                annotations: map(annotations),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".to_owned(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn settings(revision: &str, tags: &[&str]) -> InjectSettings {
        let mut s = InjectSettings::new(revision, "weft-system", "proxy:dev");
        s.tags = tags.iter().map(|t| (*t).to_owned()).collect();
        s
    }

    use Decision::{Inject, Skip};
    use Selection::*;
    use SkipReason::*;

    #[test]
    fn decision_table() {
        let enabled: &[(&str, &str)] = &[("istio-injection", "enabled")];
        let none: &[(&str, &str)] = &[];
        let cases: Vec<(&str, Namespace, Pod, InjectSettings, Decision)> = vec![
            (
                "namespace enabled, default tag here",
                ns("a", enabled),
                pod(none, none),
                settings("1-2", &["default"]),
                Inject {
                    selected_by: NamespaceInjectionEnabled,
                },
            ),
            (
                "revision named default answers enabled",
                ns("a", enabled),
                pod(none, none),
                settings("default", &[]),
                Inject {
                    selected_by: NamespaceInjectionEnabled,
                },
            ),
            (
                "namespace enabled, default tag elsewhere",
                ns("a", enabled),
                pod(none, none),
                settings("1-2", &["stable"]),
                Skip(OtherRevision("default".into())),
            ),
            (
                "namespace enabled wins over the pod's revision label",
                ns("a", enabled),
                pod(&[("istio.io/rev", "1-3")], none),
                settings("1-2", &["default"]),
                Inject {
                    selected_by: NamespaceInjectionEnabled,
                },
            ),
            (
                "namespace enabled wins over the namespace's revision label",
                ns(
                    "a",
                    &[("istio-injection", "enabled"), ("istio.io/rev", "1-3")],
                ),
                pod(none, none),
                settings("1-2", &["default"]),
                Inject {
                    selected_by: NamespaceInjectionEnabled,
                },
            ),
            (
                "namespace disabled beats a pod opt-in",
                ns("a", &[("istio-injection", "disabled")]),
                pod(&[("sidecar.istio.io/inject", "true")], none),
                settings("1-2", &["default"]),
                Skip(NamespaceDisabled),
            ),
            (
                "namespace revision label, this revision",
                ns("a", &[("istio.io/rev", "1-2")]),
                pod(none, none),
                settings("1-2", &[]),
                Inject {
                    selected_by: NamespaceRevision("1-2".into()),
                },
            ),
            (
                "namespace revision label through a tag",
                ns("a", &[("istio.io/rev", "stable")]),
                pod(none, none),
                settings("1-2", &["stable"]),
                Inject {
                    selected_by: NamespaceRevision("stable".into()),
                },
            ),
            (
                "namespace revision label, other revision",
                ns("a", &[("istio.io/rev", "1-3")]),
                pod(none, none),
                settings("1-2", &["default"]),
                Skip(OtherRevision("1-3".into())),
            ),
            (
                "unlabelled namespace",
                ns("a", none),
                pod(none, none),
                settings("1-2", &["default"]),
                Skip(NotSelected),
            ),
            (
                "unlabelled namespace, pod revision label",
                ns("a", none),
                pod(&[("istio.io/rev", "1-2")], none),
                settings("1-2", &[]),
                Inject {
                    selected_by: PodRevision("1-2".into()),
                },
            ),
            (
                "unlabelled namespace, pod opts in, default here",
                ns("a", none),
                pod(&[("sidecar.istio.io/inject", "true")], none),
                settings("1-2", &["default"]),
                Inject {
                    selected_by: PodOptIn,
                },
            ),
            (
                "unlabelled namespace, pod opts in, default elsewhere",
                ns("a", none),
                pod(&[("sidecar.istio.io/inject", "true")], none),
                settings("1-2", &[]),
                Skip(OtherRevision("default".into())),
            ),
            (
                "unlabelled namespace, annotation alone does not opt in",
                ns("a", none),
                pod(none, &[("sidecar.istio.io/inject", "true")]),
                settings("1-2", &["default"]),
                Skip(NotSelected),
            ),
            (
                "pod label opts out",
                ns("a", enabled),
                pod(&[("sidecar.istio.io/inject", "false")], none),
                settings("1-2", &["default"]),
                Skip(PodOptedOut),
            ),
            (
                "pod annotation opts out",
                ns("a", enabled),
                pod(none, &[("sidecar.istio.io/inject", "false")]),
                settings("1-2", &["default"]),
                Skip(PodOptedOut),
            ),
            (
                "pod label true beats annotation false",
                ns("a", enabled),
                pod(
                    &[("sidecar.istio.io/inject", "true")],
                    &[("sidecar.istio.io/inject", "false")],
                ),
                settings("1-2", &["default"]),
                Inject {
                    selected_by: NamespaceInjectionEnabled,
                },
            ),
            (
                "Kubernetes' own namespace",
                ns("kube-system", enabled),
                pod(none, none),
                settings("1-2", &["default"]),
                Skip(SystemNamespace),
            ),
            (
                "already injected",
                ns("a", enabled),
                pod(none, &[("sidecar.istio.io/status", "{}")]),
                settings("1-2", &["default"]),
                Skip(AlreadyInjected),
            ),
        ];
        for (name, namespace, pod, settings, want) in cases {
            assert_eq!(decide(&pod, &namespace, &settings), want, "{name}");
        }
    }

    #[test]
    fn host_network_and_existing_sidecar_are_skipped() {
        let namespace = ns("a", &[("istio-injection", "enabled")]);
        let s = settings("1-2", &["default"]);
        let mut p = pod(&[], &[]);
        if let Some(spec) = p.spec.as_mut() {
            spec.host_network = Some(true);
        }
        assert_eq!(decide(&p, &namespace, &s), Skip(HostNetwork));

        let mut p = pod(&[], &[]);
        if let Some(spec) = p.spec.as_mut() {
            spec.init_containers = Some(vec![Container {
                name: PROXY_CONTAINER.to_owned(),
                ..Default::default()
            }]);
        }
        assert_eq!(decide(&p, &namespace, &s), Skip(AlreadyInjected));
    }

    #[test]
    fn truthy_follows_istio() {
        for v in ["true", "TRUE", "yes", "y", "on", "1"] {
            assert!(truthy(v), "{v}");
        }
        for v in ["false", "no", "0", "", "enabled"] {
            assert!(!truthy(v), "{v}");
        }
    }
}
