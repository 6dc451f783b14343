//! The webhook registrations, rendered as plain objects (the operator
//! applies them): which pods reach `/inject` and which Istio objects reach
//! `/validate`. The injector selectors are Istio's and defined once, in
//! [`weft_api::injection`].

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ServiceReference, ValidatingWebhookConfiguration,
    WebhookClientConfig,
};
use kube::api::ObjectMeta;
use weft_api::injection::{INJECT_PATH, injector_webhooks};
use weft_api::validator::{VALIDATE_PATH, validator_webhook};

use super::server::WEBHOOK_PORT;

/// Where the API server reaches weftd's webhooks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// The Service in front of weftd (`weftd-<rev>` in the control-plane namespace), port 15017.
    Service { namespace: String, name: String },
    /// A URL base such as `https://10.100.5.1:15017` (weftd outside the cluster).
    Url(String),
}

impl Endpoint {
    fn client_config(&self, path: &str, ca_bundle: &[u8]) -> WebhookClientConfig {
        let ca_bundle = Some(ByteString(ca_bundle.to_vec()));
        match self {
            Self::Service { namespace, name } => WebhookClientConfig {
                service: Some(ServiceReference {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    path: Some(path.to_owned()),
                    port: Some(i32::from(WEBHOOK_PORT)),
                }),
                ca_bundle,
                url: None,
            },
            Self::Url(base) => WebhookClientConfig {
                url: Some(format!("{}{path}", base.trim_end_matches('/'))),
                ca_bundle,
                service: None,
            },
        }
    }
}

/// Labels on every webhook configuration of `revision`.
pub fn labels(revision: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "weftd".to_owned(),
        ),
        ("app.kubernetes.io/part-of".to_owned(), "weft".to_owned()),
        ("weft.dev/revision".to_owned(), revision.to_owned()),
    ])
}

/// The injector registration for `selector_name` (the revision itself, or
/// a tag pointing at it), served by `revision`'s weftd. With `default`,
/// it also takes `istio-injection=enabled` namespaces and pods opting in
/// without a revision. Named `weft-sidecar-injector-<selector_name>`.
pub fn mutating_webhook_configuration(
    selector_name: &str,
    revision: &str,
    default: bool,
    endpoint: &Endpoint,
    ca_bundle: &[u8],
) -> MutatingWebhookConfiguration {
    let client = endpoint.client_config(INJECT_PATH, ca_bundle);
    let webhooks = injector_webhooks(selector_name, default, &client);
    MutatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(format!("weft-sidecar-injector-{selector_name}")),
            labels: Some(labels(revision)),
            ..Default::default()
        },
        webhooks: Some(webhooks),
    }
}

/// The validator registration of `revision`, named
/// `weft-validator-<revision>-<control_plane_namespace>`. The default
/// revision validates every Istio object; another revision only objects
/// labelled `istio.io/rev=<revision>`.
pub fn validating_webhook_configuration(
    revision: &str,
    control_plane_namespace: &str,
    default: bool,
    endpoint: &Endpoint,
    ca_bundle: &[u8],
) -> ValidatingWebhookConfiguration {
    ValidatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(format!(
                "weft-validator-{revision}-{control_plane_namespace}"
            )),
            labels: Some(labels(revision)),
            ..Default::default()
        },
        webhooks: Some(vec![validator_webhook(
            revision,
            default,
            endpoint.client_config(VALIDATE_PATH, ca_bundle),
        )]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use weft_api::injection::INJECT_LABEL;

    fn golden(name: &str, value: &impl serde::Serialize) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/webhook/testdata")
            .join(name);
        let got = serde_json::to_string_pretty(value).expect("serializes") + "\n";
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &got).expect("writing golden file");
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            got, want,
            "{path:?} differs; run UPDATE_GOLDEN=1 and review"
        );
    }

    fn service() -> Endpoint {
        Endpoint::Service {
            namespace: "weft-system".into(),
            name: "weftd-1-2".into(),
        }
    }

    #[test]
    fn injector_default_revision_matches_golden() {
        golden(
            "mutating-default.json",
            &mutating_webhook_configuration("1-2", "1-2", true, &service(), b"CA"),
        );
    }

    #[test]
    fn injector_for_a_tag_matches_golden() {
        let url = Endpoint::Url("https://10.100.5.1:15017/".into());
        golden(
            "mutating-tag.json",
            &mutating_webhook_configuration("stable", "1-2", false, &url, b"CA"),
        );
    }

    #[test]
    fn validator_matches_golden() {
        golden(
            "validating.json",
            &validating_webhook_configuration("1-2", "weft-system", false, &service(), b"CA"),
        );
    }

    #[test]
    fn every_injector_fails_closed_and_has_no_side_effects() {
        let config = mutating_webhook_configuration("1-2", "1-2", true, &service(), b"CA");
        let webhooks = config.webhooks.unwrap_or_default();
        assert_eq!(webhooks.len(), 4);
        for w in webhooks {
            assert_eq!(w.failure_policy.as_deref(), Some("Fail"), "{}", w.name);
            assert_eq!(w.side_effects, "None");
            let object = w
                .object_selector
                .and_then(|s| s.match_expressions)
                .unwrap_or_default();
            assert!(object.iter().any(|r| r.key == INJECT_LABEL), "{}", w.name);
        }
        let v = validating_webhook_configuration("1-2", "weft-system", true, &service(), b"CA");
        let rules = v.webhooks.unwrap_or_default()[0]
            .rules
            .clone()
            .unwrap_or_default();
        assert!(
            rules[0]
                .api_versions
                .as_ref()
                .is_some_and(|v| v.contains(&"v1beta1".to_owned()))
        );
    }
}
