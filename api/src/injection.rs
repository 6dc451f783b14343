//! Which pods reach the sidecar injector: Istio's labels and the admission
//! webhooks that select on them. weftd decides per pod with these labels;
//! the operator (and weftd run on a host, for tests) registers the webhooks.
//! One definition, so the two never disagree about which pods are sent.
//!
//! | webhook | namespace | pod |
//! | --- | --- | --- |
//! | `rev.namespace.sidecar-injector.weft.dev` | `istio.io/rev=<name>`, no `istio-injection` | `sidecar.istio.io/inject!=false` |
//! | `rev.object.sidecar-injector.weft.dev` | neither label | `istio.io/rev=<name>`, `sidecar.istio.io/inject!=false` |
//! | `namespace.sidecar-injector.weft.dev` (default only) | `istio-injection=enabled` | `sidecar.istio.io/inject!=false` |
//! | `object.sidecar-injector.weft.dev` (default only) | neither label | `sidecar.istio.io/inject=true`, no `istio.io/rev` |
//!
//! Every namespace selector also leaves out [`IGNORED_NAMESPACES`].

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, RuleWithOperations, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

/// Namespace label selecting the default revision (`enabled`).
pub const INJECTION_LABEL: &str = "istio-injection";
/// Namespace or pod label selecting a revision or tag.
pub const REVISION_LABEL: &str = "istio.io/rev";
/// Pod label (or annotation) opting in (`true`) or out (`false`).
pub const INJECT_LABEL: &str = "sidecar.istio.io/inject";
/// Namespaces never injected: Kubernetes' own.
pub const IGNORED_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];
/// weftd's injection webhook path.
pub const INJECT_PATH: &str = "/inject";

/// A label selector requirement; no values for `Exists`/`DoesNotExist`.
pub fn requirement(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
    LabelSelectorRequirement {
        key: key.to_owned(),
        operator: operator.to_owned(),
        values: (!values.is_empty()).then(|| values.iter().map(|v| (*v).to_owned()).collect()),
    }
}

/// A selector of expressions only.
pub fn selector(requirements: Vec<LabelSelectorRequirement>) -> Option<LabelSelector> {
    Some(LabelSelector {
        match_expressions: Some(requirements),
        match_labels: None,
    })
}

fn injector(
    name: &str,
    mut namespace: Vec<LabelSelectorRequirement>,
    object: Vec<LabelSelectorRequirement>,
    client: WebhookClientConfig,
) -> MutatingWebhook {
    namespace.push(requirement(
        "kubernetes.io/metadata.name",
        "NotIn",
        &IGNORED_NAMESPACES,
    ));
    MutatingWebhook {
        name: name.to_owned(),
        admission_review_versions: vec!["v1".to_owned()],
        client_config: client,
        // A pod that should get a sidecar is never created without one.
        failure_policy: Some("Fail".to_owned()),
        match_policy: Some("Equivalent".to_owned()),
        namespace_selector: selector(namespace),
        object_selector: selector(object),
        // Injection is idempotent (an injected pod is skipped), so being
        // called again after later webhooks is harmless.
        reinvocation_policy: Some("IfNeeded".to_owned()),
        rules: Some(vec![RuleWithOperations {
            api_groups: Some(vec![String::new()]),
            api_versions: Some(vec!["v1".to_owned()]),
            operations: Some(vec!["CREATE".to_owned()]),
            resources: Some(vec!["pods".to_owned()]),
            scope: Some("Namespaced".to_owned()),
        }]),
        side_effects: "None".to_owned(),
        timeout_seconds: Some(10),
        match_conditions: None,
    }
}

/// The injector webhooks for `selector_name` (a revision, or a tag
/// pointing at one), all calling `client`. With `default`, also Istio's
/// default-revision selectors (`istio-injection=enabled` namespaces, pods
/// opting in without a revision).
pub fn injector_webhooks(
    selector_name: &str,
    default: bool,
    client: &WebhookClientConfig,
) -> Vec<MutatingWebhook> {
    let not_opted_out = || requirement(INJECT_LABEL, "NotIn", &["false"]);
    let mut webhooks = vec![
        injector(
            "rev.namespace.sidecar-injector.weft.dev",
            vec![
                requirement(REVISION_LABEL, "In", &[selector_name]),
                requirement(INJECTION_LABEL, "DoesNotExist", &[]),
            ],
            vec![not_opted_out()],
            client.clone(),
        ),
        injector(
            "rev.object.sidecar-injector.weft.dev",
            vec![
                requirement(REVISION_LABEL, "DoesNotExist", &[]),
                requirement(INJECTION_LABEL, "DoesNotExist", &[]),
            ],
            vec![
                not_opted_out(),
                requirement(REVISION_LABEL, "In", &[selector_name]),
            ],
            client.clone(),
        ),
    ];
    if default {
        webhooks.push(injector(
            "namespace.sidecar-injector.weft.dev",
            vec![requirement(INJECTION_LABEL, "In", &["enabled"])],
            vec![not_opted_out()],
            client.clone(),
        ));
        webhooks.push(injector(
            "object.sidecar-injector.weft.dev",
            vec![
                requirement(INJECTION_LABEL, "DoesNotExist", &[]),
                requirement(REVISION_LABEL, "DoesNotExist", &[]),
            ],
            vec![
                requirement(INJECT_LABEL, "In", &["true"]),
                requirement(REVISION_LABEL, "DoesNotExist", &[]),
            ],
            client.clone(),
        ));
    }
    webhooks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(s: &Option<LabelSelector>, key: &str) -> Vec<(String, Vec<String>)> {
        s.as_ref()
            .and_then(|s| s.match_expressions.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.key == key)
            .map(|r| (r.operator, r.values.unwrap_or_default()))
            .collect()
    }

    #[test]
    fn revision_webhooks_always_default_ones_only_for_the_default() {
        let client = WebhookClientConfig::default();
        let names = |d| {
            injector_webhooks("canary", d, &client)
                .into_iter()
                .map(|w| w.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(false),
            [
                "rev.namespace.sidecar-injector.weft.dev",
                "rev.object.sidecar-injector.weft.dev"
            ]
        );
        assert_eq!(names(true).len(), 4);
        for w in injector_webhooks("canary", true, &client) {
            assert_eq!(w.failure_policy.as_deref(), Some("Fail"), "{}", w.name);
            assert_eq!(
                values(&w.namespace_selector, "kubernetes.io/metadata.name"),
                [(
                    "NotIn".to_owned(),
                    IGNORED_NAMESPACES.map(str::to_owned).to_vec()
                )],
                "{}",
                w.name
            );
            assert!(
                !values(&w.object_selector, INJECT_LABEL).is_empty(),
                "{}: every webhook honours the pod's opt-out or opt-in",
                w.name
            );
        }
        let rev_ns = &injector_webhooks("canary", false, &client)[0];
        assert_eq!(
            values(&rev_ns.namespace_selector, REVISION_LABEL),
            [("In".to_owned(), vec!["canary".to_owned()])]
        );
    }
}
