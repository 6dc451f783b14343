//! The admission webhook registrations of a revision, pointing at weftd's
//! Service on 15017 with the mesh root as `caBundle` (weftd's serving
//! certificate is issued by the mesh CA). The injector selectors are
//! Istio's, defined once in [`weft_api::injection`], so namespaces labelled
//! for Istio reach the right revision.
//!
//! Validation covers the Istio API groups weftd validates. Weft's own
//! resources are validated by their CRD schemas and CEL rules, never by a
//! webhook served by the control plane the operator manages: a broken
//! weftd must not be able to block fixing the MeshInstallation.

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ServiceReference, ValidatingWebhookConfiguration,
    WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use weft_api::injection::{INJECT_PATH, injector_webhooks};
use weft_api::validator::validator_webhook;

use super::{Manifest, Owner, RenderError};
use crate::contract::{self, VALIDATE_PATH, WEBHOOK_PORT};
use crate::labels::{self, ISTIO_REV_LABEL};
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
    let cc = client(mesh, INJECT_PATH, ca_bundle);
    let webhooks = injector_webhooks(&mesh.revision, default, &cc);
    MutatingWebhookConfiguration {
        metadata: meta(mesh, owner, mutating_name(&mesh.revision)),
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
    let cc = client(mesh, VALIDATE_PATH, ca_bundle);
    ValidatingWebhookConfiguration {
        metadata: meta(
            mesh,
            owner,
            validating_name(&mesh.revision, &mesh.namespace),
        ),
        webhooks: Some(vec![validator_webhook(&mesh.revision, default, cc)]),
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
