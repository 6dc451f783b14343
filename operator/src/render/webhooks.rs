//! The admission webhook registrations of a revision, pointing at weftd's
//! Service on 15017 with the mesh root as `caBundle` (weftd's serving
//! certificate is issued by the mesh CA). Selectors follow Istio's so
//! namespaces labelled for Istio reach the right revision:
//!
//! | webhook | namespace | pod |
//! | --- | --- | --- |
//! | `rev.namespace.sidecar-injector.weft.dev` | `istio.io/rev=<rev>`, no `istio-injection` | `sidecar.istio.io/inject!=false` |
//! | `rev.object.sidecar-injector.weft.dev` | neither label | `istio.io/rev=<rev>`, not opted out |
//! | `namespace.sidecar-injector.weft.dev` (default revision) | `istio-injection=enabled` | not opted out |
//! | `object.sidecar-injector.weft.dev` (default revision) | neither label | `sidecar.istio.io/inject=true`, no `istio.io/rev` |
//!
//! Validation covers the Istio API groups weftd validates. Weft's own
//! resources are validated by their CRD schemas and CEL rules, never by a
//! webhook served by the control plane the operator manages: a broken
//! weftd must not be able to block fixing the MeshInstallation.

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ServiceReference,
    ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};

use super::{Manifest, Owner, RenderError};
use crate::contract::{self, IGNORED_NAMESPACES, INJECT_PATH, VALIDATE_PATH, WEBHOOK_PORT};
use crate::labels::{self, INJECT_LABEL, INJECTION_LABEL, ISTIO_REV_LABEL};
use crate::resolve::MeshSettings;

/// `weft-sidecar-injector-<revision>` (weftd's naming).
pub fn mutating_name(revision: &str) -> String {
    format!("weft-sidecar-injector-{revision}")
}

/// `weft-validator-<revision>-<namespace>` (weftd's naming).
pub fn validating_name(revision: &str, namespace: &str) -> String {
    format!("weft-validator-{revision}-{namespace}")
}

fn client(mesh: &MeshSettings, path: &str, ca_bundle: &str) -> WebhookClientConfig {
    WebhookClientConfig {
        service: Some(ServiceReference {
            namespace: mesh.namespace.clone(),
            name: contract::weftd_name(&mesh.revision),
            path: Some(path.to_owned()),
            port: Some(WEBHOOK_PORT),
        }),
        ca_bundle: Some(ByteString(ca_bundle.as_bytes().to_vec())),
        url: None,
    }
}

fn requirement(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
    LabelSelectorRequirement {
        key: key.to_owned(),
        operator: operator.to_owned(),
        values: (!values.is_empty()).then(|| values.iter().map(|v| (*v).to_owned()).collect()),
    }
}

fn selector(requirements: Vec<LabelSelectorRequirement>) -> Option<LabelSelector> {
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
        failure_policy: Some("Fail".to_owned()),
        match_policy: Some("Equivalent".to_owned()),
        namespace_selector: selector(namespace),
        object_selector: selector(object),
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

fn meta(mesh: &MeshSettings, owner: &Owner, name: String) -> ObjectMeta {
    let mut labels = labels::revision_labels(&mesh.installation, &mesh.revision);
    labels.insert(ISTIO_REV_LABEL.to_owned(), mesh.revision.clone());
    ObjectMeta {
        name: Some(name),
        labels: Some(labels),
        owner_references: Some(vec![owner.reference()]),
        ..Default::default()
    }
}

/// The injector registration; `default` adds Istio's default-revision selectors.
pub fn mutating(
    mesh: &MeshSettings,
    default: bool,
    ca_bundle: &str,
    owner: &Owner,
) -> MutatingWebhookConfiguration {
    let rev = mesh.revision.as_str();
    let cc = client(mesh, INJECT_PATH, ca_bundle);
    let not_opted_out = || requirement(INJECT_LABEL, "NotIn", &["false"]);
    let mut webhooks = vec![
        injector(
            "rev.namespace.sidecar-injector.weft.dev",
            vec![
                requirement(ISTIO_REV_LABEL, "In", &[rev]),
                requirement(INJECTION_LABEL, "DoesNotExist", &[]),
            ],
            vec![not_opted_out()],
            cc.clone(),
        ),
        injector(
            "rev.object.sidecar-injector.weft.dev",
            vec![
                requirement(ISTIO_REV_LABEL, "DoesNotExist", &[]),
                requirement(INJECTION_LABEL, "DoesNotExist", &[]),
            ],
            vec![not_opted_out(), requirement(ISTIO_REV_LABEL, "In", &[rev])],
            cc.clone(),
        ),
    ];
    if default {
        webhooks.push(injector(
            "namespace.sidecar-injector.weft.dev",
            vec![requirement(INJECTION_LABEL, "In", &["enabled"])],
            vec![not_opted_out()],
            cc.clone(),
        ));
        webhooks.push(injector(
            "object.sidecar-injector.weft.dev",
            vec![
                requirement(INJECTION_LABEL, "DoesNotExist", &[]),
                requirement(ISTIO_REV_LABEL, "DoesNotExist", &[]),
            ],
            vec![
                requirement(INJECT_LABEL, "In", &["true"]),
                requirement(ISTIO_REV_LABEL, "DoesNotExist", &[]),
            ],
            cc,
        ));
    }
    MutatingWebhookConfiguration {
        metadata: meta(mesh, owner, mutating_name(rev)),
        webhooks: Some(webhooks),
    }
}

/// The validator registration: every Istio object for the default
/// revision, else only objects labelled `istio.io/rev=<revision>`.
pub fn validating(
    mesh: &MeshSettings,
    default: bool,
    ca_bundle: &str,
    owner: &Owner,
) -> ValidatingWebhookConfiguration {
    let rules = contract::VALIDATED_GROUPS
        .iter()
        .map(|group| RuleWithOperations {
            api_groups: Some(vec![(*group).to_owned()]),
            api_versions: Some(
                contract::VALIDATED_VERSIONS
                    .iter()
                    .map(|v| (*v).to_owned())
                    .collect(),
            ),
            operations: Some(vec!["CREATE".to_owned(), "UPDATE".to_owned()]),
            resources: Some(vec!["*".to_owned()]),
            scope: Some("*".to_owned()),
        })
        .collect();
    let object_selector = (!default).then(|| LabelSelector {
        match_expressions: Some(vec![requirement(ISTIO_REV_LABEL, "In", &[&mesh.revision])]),
        match_labels: None,
    });
    ValidatingWebhookConfiguration {
        metadata: meta(
            mesh,
            owner,
            validating_name(&mesh.revision, &mesh.namespace),
        ),
        webhooks: Some(vec![ValidatingWebhook {
            name: "rev.validation.weft.dev".to_owned(),
            admission_review_versions: vec!["v1".to_owned()],
            client_config: client(mesh, VALIDATE_PATH, ca_bundle),
            failure_policy: Some("Fail".to_owned()),
            match_policy: Some("Equivalent".to_owned()),
            namespace_selector: None,
            object_selector,
            rules: Some(rules),
            side_effects: "None".to_owned(),
            timeout_seconds: Some(10),
            match_conditions: None,
        }]),
    }
}

/// Both registrations as manifests.
pub fn render(
    mesh: &MeshSettings,
    default: bool,
    ca_bundle: &str,
    owner: &Owner,
) -> Result<Vec<Manifest>, RenderError> {
    Ok(vec![
        Manifest::new(&validating(mesh, default, ca_bundle, owner))?,
        Manifest::new(&mutating(mesh, default, ca_bundle, owner))?,
    ])
}
