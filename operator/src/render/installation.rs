//! What a MeshInstallation owns: the mesh namespace (and gateway
//! namespaces) when the operator may create them, the CA Secret, the
//! trust-bundle ConfigMap in every namespace, the MeshRevision it runs,
//! and its gateways.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use weft_api::weft::MeshRevision;

use super::{Images, Manifest, Owner, RenderError, gateways, manifest};
use crate::ca::CaFiles;
use crate::contract::{CA_SECRET, IGNORED_NAMESPACES, ROOT_CERT, ROOT_CERT_CONFIG_MAP};
use crate::labels::{self, COMPONENT_LABEL};
use crate::resolve::{self, MeshSettings};

/// What the installation renderer reads from the cluster.
#[derive(Clone, Debug)]
pub struct InstallationInput<'a> {
    pub mesh: &'a MeshSettings,
    pub spec: &'a weft_api::weft::MeshInstallationSpec,
    pub images: &'a Images,
    pub owner: &'a Owner,
    /// Material for the CA Secret the operator writes; `None` when weftd
    /// reads the user's plugged-in Secret where it is.
    pub ca_secret: Option<&'a CaFiles>,
    /// The root certificate(s), PEM.
    pub trust_bundle: &'a str,
    /// Namespaces that exist and are not terminating.
    pub namespaces: &'a BTreeSet<String>,
    /// Namespaces the operator may create or keep: absent, or made by it.
    /// A namespace the user created is used, never adopted.
    pub ownable_namespaces: &'a BTreeSet<String>,
}

fn meta(
    mesh: &MeshSettings,
    owner: &Owner,
    name: &str,
    namespace: Option<&str>,
    component: &str,
) -> ObjectMeta {
    let mut labels = labels::installation_labels(&mesh.installation);
    labels.insert(COMPONENT_LABEL.to_owned(), component.to_owned());
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(labels),
        owner_references: Some(vec![owner.reference()]),
        ..Default::default()
    }
}

/// Namespaces the installation runs things in: the mesh namespace, then
/// each gateway's.
pub fn used_namespaces(mesh: &MeshSettings) -> BTreeSet<String> {
    std::iter::once(mesh.namespace.clone())
        .chain(mesh.gateways.iter().map(|g| g.namespace.clone()))
        .collect()
}

/// The installation-scoped objects.
pub fn render(input: &InstallationInput<'_>) -> Result<Vec<Manifest>, RenderError> {
    let (mesh, owner) = (input.mesh, input.owner);
    let mut out = Vec::new();
    let used = used_namespaces(mesh);
    for ns in used
        .iter()
        .filter(|ns| input.ownable_namespaces.contains(*ns))
    {
        out.push(Manifest::new(&Namespace {
            metadata: meta(mesh, owner, ns, None, "namespace"),
            ..Default::default()
        })?);
    }

    if let Some(files) = input.ca_secret {
        out.push(Manifest::new(&Secret {
            metadata: meta(mesh, owner, CA_SECRET, Some(&mesh.namespace), "ca"),
            type_: Some("Opaque".to_owned()),
            data: Some(files.to_secret_data()),
            ..Default::default()
        })?);
    }

    let bundle_namespaces: BTreeSet<&String> = input
        .namespaces
        .iter()
        .chain(used.iter())
        .filter(|ns| !IGNORED_NAMESPACES.contains(&ns.as_str()))
        .collect();
    for ns in bundle_namespaces {
        out.push(Manifest::new(&ConfigMap {
            metadata: meta(mesh, owner, ROOT_CERT_CONFIG_MAP, Some(ns), "trust-bundle"),
            data: Some(BTreeMap::from([(
                ROOT_CERT.to_owned(),
                input.trust_bundle.to_owned(),
            )])),
            ..Default::default()
        })?);
    }

    let mut revision = MeshRevision::new(
        &mesh.revision,
        resolve::revision_spec(&mesh.installation, input.spec),
    );
    revision.metadata = meta(mesh, owner, &mesh.revision, None, "revision");
    out.push(Manifest::new(&revision)?);

    for gateway in &mesh.gateways {
        out.extend(gateways::render_one(mesh, gateway, input.images, owner)?);
    }
    manifest::sort(&mut out);
    Ok(out)
}
