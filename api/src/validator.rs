//! Which Istio objects reach weftd's validating webhook: the API groups it
//! validates, at every version Weft serves them, and the registration the
//! operator (and weftd run on a host, for tests) applies. One definition,
//! so the two never disagree about what is validated.

use std::sync::OnceLock;

use k8s_openapi::api::admissionregistration::v1::{
    RuleWithOperations, ValidatingWebhook, WebhookClientConfig,
};

use crate::injection::{REVISION_LABEL, requirement, selector};

/// The Istio API groups weftd validates.
pub const VALIDATED_GROUPS: [&str; 2] = ["networking.istio.io", "security.istio.io"];
/// weftd's validation webhook path.
pub const VALIDATE_PATH: &str = "/validate";

/// The versions at which Weft's CRDs serve `group`, sorted.
fn served_versions(group: &str) -> Vec<String> {
    static SERVED: OnceLock<Vec<(String, String)>> = OnceLock::new();
    let served = SERVED.get_or_init(|| {
        crate::crd::all()
            .into_iter()
            .flat_map(|crd| {
                let group = crd.spec.group;
                crd.spec
                    .versions
                    .into_iter()
                    .filter(|v| v.served)
                    .map(move |v| (group.clone(), v.name))
            })
            .collect()
    });
    let mut versions: Vec<String> = served
        .iter()
        .filter(|(g, _)| g == group)
        .map(|(_, v)| v.clone())
        .collect();
    versions.sort();
    versions.dedup();
    versions
}

/// The validator webhook of `revision`, calling `client`: every Istio
/// object for the default revision, else only objects labelled
/// `istio.io/rev=<revision>`.
pub fn validator_webhook(
    revision: &str,
    default: bool,
    client: WebhookClientConfig,
) -> ValidatingWebhook {
    let rules = VALIDATED_GROUPS
        .iter()
        .map(|group| RuleWithOperations {
            api_groups: Some(vec![(*group).to_owned()]),
            api_versions: Some(served_versions(group)),
            operations: Some(vec!["CREATE".to_owned(), "UPDATE".to_owned()]),
            resources: Some(vec!["*".to_owned()]),
            scope: Some("*".to_owned()),
        })
        .collect();
    ValidatingWebhook {
        name: "rev.validation.weft.dev".to_owned(),
        admission_review_versions: vec!["v1".to_owned()],
        client_config: client,
        failure_policy: Some("Fail".to_owned()),
        match_policy: Some("Equivalent".to_owned()),
        namespace_selector: None,
        object_selector: (!default)
            .then(|| selector(vec![requirement(REVISION_LABEL, "In", &[revision])]))
            .flatten(),
        rules: Some(rules),
        side_effects: "None".to_owned(),
        timeout_seconds: Some(10),
        match_conditions: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_groups_at_their_served_versions() {
        for group in VALIDATED_GROUPS {
            assert_eq!(served_versions(group), ["v1", "v1beta1"], "{group}");
        }
        assert!(served_versions("example.com").is_empty());
    }

    #[test]
    fn only_the_default_revision_validates_unlabelled_objects() {
        let client = WebhookClientConfig::default();
        let default = validator_webhook("stable", true, client.clone());
        assert_eq!(default.object_selector, None);
        assert_eq!(default.rules.as_ref().map(Vec::len), Some(2));
        let canary = validator_webhook("canary", false, client);
        let expr = canary
            .object_selector
            .and_then(|s| s.match_expressions)
            .expect("selector");
        assert_eq!(expr[0].key, REVISION_LABEL);
        assert_eq!(expr[0].values.as_deref(), Some(&["canary".to_owned()][..]));
    }
}
