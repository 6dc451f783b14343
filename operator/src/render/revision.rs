//! What a MeshRevision owns: weftd and its webhook registrations.

use super::{Images, Manifest, Owner, RenderError, controlplane, manifest, webhooks};
use crate::resolve::MeshSettings;

/// What the revision renderer reads from the cluster.
#[derive(Clone, Debug)]
pub struct RevisionInput<'a> {
    pub mesh: &'a MeshSettings,
    pub images: &'a Images,
    pub owner: &'a Owner,
    /// Whether this is the installation's active (default) revision: its
    /// injector also takes `istio-injection=enabled`.
    pub default: bool,
    /// The mesh root(s), PEM: the webhooks' `caBundle`.
    pub ca_bundle: &'a str,
    /// Fingerprint of the CA material weftd loads (a pod-template
    /// annotation: weftd reads its CA at start, so new material rolls it).
    pub ca_fingerprint: &'a str,
    /// Register the webhooks: once weftd has been available (so no pod
    /// creation fails on a webhook nobody serves yet), and from then on.
    pub webhooks: bool,
}

/// The revision-scoped objects.
pub fn render(input: &RevisionInput<'_>) -> Result<Vec<Manifest>, RenderError> {
    let mut out =
        controlplane::render(input.mesh, input.images, input.owner, input.ca_fingerprint)?;
    if input.webhooks {
        out.extend(webhooks::render(
            input.mesh,
            input.default,
            input.ca_bundle,
            input.owner,
        )?);
    }
    manifest::sort(&mut out);
    Ok(out)
}
