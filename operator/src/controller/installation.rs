//! The MeshInstallation reconciler: resolve the spec, settle the CA
//! material, render and apply the installation scope (namespace, CA
//! Secret, trust bundles, the MeshRevision, gateways), prune what is no
//! longer desired, and report. Bad input (an invalid spec or CA) stops
//! before anything is applied or pruned: what runs keeps running.
//! Deletion runs [`cleanup`] behind the `weft.dev/cleanup` finalizer.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::core::ApiResource;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Resource, ResourceExt};
use weft_api::weft::{
    CaStatus, MeshInstallation, MeshInstallationStatus, MeshRevision, RevisionCounts,
};

use super::context::{Context, ReconcileError, SOON, selector_string};
use crate::ca::{self, CaError, CaFiles, CaSummary};
use crate::contract::{self, CA_SECRET};
use crate::labels::{self, FIELD_MANAGER, FINALIZER, INSTALLATION_LABEL, MANAGED_BY_LABEL};
use crate::render::installation::{self as render_installation, InstallationInput};
use crate::render::{Owner, controlplane, gateways};
use crate::resolve::{self, CaSource, MeshSettings};
use crate::status::{self, Cond, InstallationObservation};

const CONTROLLER: &str = "meshinstallation";

/// The kinds the installation scope renders (and prunes).
fn installation_kinds() -> Vec<ApiResource> {
    vec![
        ApiResource::erase::<Namespace>(&()),
        ApiResource::erase::<ServiceAccount>(&()),
        ApiResource::erase::<Secret>(&()),
        ApiResource::erase::<ConfigMap>(&()),
        ApiResource::erase::<MeshRevision>(&()),
        ApiResource::erase::<Service>(&()),
        ApiResource::erase::<Deployment>(&()),
        ApiResource::erase::<PodDisruptionBudget>(&()),
    ]
}

/// Every kind the operator creates, in uninstall order (after the webhooks).
fn uninstall_kinds() -> Vec<ApiResource> {
    vec![
        ApiResource::erase::<MeshRevision>(&()),
        ApiResource::erase::<Deployment>(&()),
        ApiResource::erase::<PodDisruptionBudget>(&()),
        ApiResource::erase::<Service>(&()),
        ApiResource::erase::<ConfigMap>(&()),
        ApiResource::erase::<Secret>(&()),
        ApiResource::erase::<ClusterRoleBinding>(&()),
        ApiResource::erase::<ClusterRole>(&()),
        ApiResource::erase::<ServiceAccount>(&()),
        ApiResource::erase::<Namespace>(&()),
    ]
}

/// The plugged-in CA Secret an installation reads, as (namespace, name).
pub fn plugged_in_secret(mi: &MeshInstallation) -> Option<(String, String)> {
    let name = mi.metadata.name.clone()?;
    match resolve::resolve(&name, &mi.spec).ok()?.ca.source {
        CaSource::PluggedIn { namespace, name } => Some((namespace, name)),
        CaSource::SelfSigned => None,
    }
}

pub async fn reconcile(
    mi: Arc<MeshInstallation>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let started = std::time::Instant::now();
    let name = mi.name_any();
    let api: Api<MeshInstallation> = Api::all(ctx.client.clone());
    let result = finalizer(&api, FINALIZER, mi, |event| async {
        match event {
            FinalizerEvent::Apply(mi) => apply(&mi, &ctx).await,
            FinalizerEvent::Cleanup(mi) => cleanup(&mi, &ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => ReconcileError::Finalizer(format!("MeshInstallation {name}"), other.to_string()),
    });
    ctx.metrics.reconciled(
        CONTROLLER,
        started.elapsed(),
        result.as_ref().err().map(ReconcileError::label),
    );
    result
}

pub fn error_policy(
    mi: Arc<MeshInstallation>,
    error: &ReconcileError,
    _ctx: Arc<Context>,
) -> Action {
    tracing::warn!(installation = %mi.name_any(), error = %error, "reconcile failed; retrying");
    Action::requeue(std::time::Duration::from_secs(10))
}

fn owner(mi: &MeshInstallation) -> Result<Owner, ReconcileError> {
    Ok(Owner {
        api_version: MeshInstallation::api_version(&()).into_owned(),
        kind: MeshInstallation::kind(&()).into_owned(),
        name: mi
            .metadata
            .name
            .clone()
            .ok_or_else(|| ReconcileError::Metadata("MeshInstallation".into()))?,
        uid: mi
            .metadata
            .uid
            .clone()
            .ok_or_else(|| ReconcileError::Metadata("MeshInstallation".into()))?,
    })
}

/// The CA material to write (None: weftd reads the user's Secret in
/// place), the trust bundle and what status may say about it.
struct SettledCa {
    write: Option<CaFiles>,
    bundle: String,
    summary: CaSummary,
}

async fn settle_ca(
    mesh: &MeshSettings,
    ctx: &Context,
) -> Result<Result<SettledCa, (String, String)>, ReconcileError> {
    let now = SystemTime::now();
    match &mesh.ca.source {
        CaSource::SelfSigned => {
            let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &mesh.namespace);
            let existing = api
                .get_opt(CA_SECRET)
                .await
                .map_err(ReconcileError::read(format!(
                    "Secret {}/{CA_SECRET}",
                    mesh.namespace
                )))?;
            let files = match existing {
                Some(secret) if !labels::is_managed(secret.metadata.labels.as_ref()) => {
                    return Ok(Err((
                        "CASecretConflict".to_owned(),
                        format!(
                            "{}/{CA_SECRET} exists and was not made by Weft: set spec.certificates.ca.type PluggedIn to use it, or delete it to have Weft generate a CA",
                            mesh.namespace
                        ),
                    )));
                }
                Some(secret) => match CaFiles::from_secret(CA_SECRET, &secret) {
                    Ok(files) => files,
                    Err(e) => {
                        return Ok(Err((
                            "GeneratedCASecretInvalid".to_owned(),
                            format!("{e}; delete the Secret to have Weft generate a new CA"),
                        )));
                    }
                },
                None => match CaFiles::generate(
                    &mesh.trust_domain,
                    mesh.ca.root_ttl,
                    mesh.ca.intermediate_ttl,
                    now,
                ) {
                    Ok(files) => files,
                    Err(e) => {
                        return Ok(Err((
                            "CAGenerationFailed".to_owned(),
                            format!("generating the mesh CA failed: {e}"),
                        )));
                    }
                },
            };
            Ok(match ca::check(&files, CA_SECRET, now) {
                Ok(summary) => Ok(SettledCa {
                    bundle: files.root_cert.clone(),
                    write: Some(files),
                    summary,
                }),
                Err(e) => Err((
                    "GeneratedCASecretInvalid".to_owned(),
                    format!("{e}; delete the Secret to have Weft generate a new CA"),
                )),
            })
        }
        CaSource::PluggedIn { namespace, name } => {
            let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
            let Some(secret) = api
                .get_opt(name)
                .await
                .map_err(ReconcileError::read(format!("Secret {namespace}/{name}")))?
            else {
                return Ok(Err((
                    "PluggedInCASecretMissing".to_owned(),
                    CaError::SecretMissing {
                        secret: format!("{namespace}/{name}"),
                    }
                    .to_string(),
                )));
            };
            let checked = CaFiles::from_secret(name, &secret)
                .map_err(CaError::from)
                .and_then(|files| {
                    let summary = ca::check(&files, name, now)?;
                    Ok((files, summary))
                });
            Ok(match checked {
                Ok((files, summary)) => Ok(SettledCa {
                    bundle: files.root_cert.clone(),
                    write: (!mesh.ca.uses_user_secret_in_place(&mesh.namespace)).then_some(files),
                    summary,
                }),
                Err(e) => Err(("PluggedInCASecretInvalid".to_owned(), e.to_string())),
            })
        }
    }
}

/// Namespaces that exist (not terminating), and those of `used` the
/// operator may create or keep (absent, or made by it for this installation).
async fn namespaces(
    mesh: &MeshSettings,
    ctx: &Context,
) -> Result<(BTreeSet<String>, BTreeSet<String>), ReconcileError> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let all = api
        .list(&ListParams::default())
        .await
        .map_err(ReconcileError::read("namespaces"))?
        .items;
    let live: BTreeSet<String> = all
        .iter()
        .filter(|ns| ns.metadata.deletion_timestamp.is_none())
        .map(ResourceExt::name_any)
        .collect();
    let ownable = render_installation::used_namespaces(mesh)
        .into_iter()
        .filter(|name| match all.iter().find(|ns| ns.name_any() == *name) {
            None => true,
            Some(ns) => {
                let l = ns.metadata.labels.clone().unwrap_or_default();
                l.get(MANAGED_BY_LABEL).map(String::as_str) == Some(FIELD_MANAGER)
                    && l.get(INSTALLATION_LABEL) == Some(&mesh.installation)
            }
        })
        .collect();
    Ok((live, ownable))
}

async fn apply(mi: &MeshInstallation, ctx: &Context) -> Result<Action, ReconcileError> {
    let name = mi.name_any();
    let current_status = mi.status.clone();

    let mesh = match resolve::resolve(&name, &mi.spec) {
        Ok(mesh) => mesh,
        Err(e) => {
            let revision = current_status
                .as_ref()
                .and_then(|s| s.active_revision.clone())
                .unwrap_or_default();
            let obs = InstallationObservation {
                revision,
                spec_error: Some((e.reason().to_owned(), e.to_string())),
                ca_error: None,
                apply_error: None,
                revision_ready: None,
                weftd: None,
                gateways: vec![],
            };
            report(mi, ctx, &obs, None, None, true).await?;
            return Ok(Action::await_change());
        }
    };

    let ca = settle_ca(&mesh, ctx).await?;
    let ca = match ca {
        Ok(ca) => ca,
        Err((reason, message)) => {
            let obs = observe(&mesh, ctx, None, Some((reason, message))).await?;
            report(mi, ctx, &obs, None, None, true).await?;
            return Ok(Action::requeue(std::time::Duration::from_secs(60)));
        }
    };

    let (live, ownable) = namespaces(&mesh, ctx).await?;
    let owner = owner(mi)?;
    let manifests = render_installation::render(&InstallationInput {
        mesh: &mesh,
        spec: &mi.spec,
        images: &ctx.images,
        owner: &owner,
        ca_secret: ca.write.as_ref(),
        trust_bundle: &ca.bundle,
        namespaces: &live,
        ownable_namespaces: &ownable,
    })?;
    let applied = async {
        let mut changes = ctx.applier.apply(&manifests).await?;
        changes.extend(
            ctx.applier
                .prune(
                    &manifests,
                    &installation_kinds(),
                    &labels::installation_scope_selector(&name),
                )
                .await?,
        );
        Ok::<_, crate::apply::ApplyError>(changes)
    }
    .await;
    let (changes, apply_error) = match applied {
        Ok(changes) => (Some(changes), None),
        Err(e) if e.is_invalid() => (None, Some(("ApplyRejected".to_owned(), e.to_string()))),
        Err(e) => return Err(e.into()),
    };
    let obs = observe(&mesh, ctx, apply_error, None).await?;
    let settled = report(mi, ctx, &obs, Some(&ca.summary), changes.as_ref(), false).await?;
    Ok(if settled {
        Action::requeue(ctx.resync)
    } else {
        Action::requeue(SOON)
    })
}

async fn observe(
    mesh: &MeshSettings,
    ctx: &Context,
    apply_error: Option<(String, String)>,
    ca_error: Option<(String, String)>,
) -> Result<InstallationObservation, ReconcileError> {
    let revisions: Api<MeshRevision> = Api::all(ctx.client.clone());
    let revision = revisions
        .get_opt(&mesh.revision)
        .await
        .map_err(ReconcileError::read(format!(
            "MeshRevision {}",
            mesh.revision
        )))?;
    let revision_ready = revision
        .and_then(|r| r.status)
        .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"))
        .map(|c| (c.status == "True", c.reason, c.message));
    let weftd_name = contract::weftd_name(&mesh.revision);
    let weftd = ctx
        .rollout(
            &mesh.namespace,
            &weftd_name,
            &selector_string(&controlplane::selector(&mesh.revision)),
        )
        .await?;
    let mut gateway_rollouts = Vec::new();
    for g in &mesh.gateways {
        let mut r = ctx
            .rollout(
                &g.namespace,
                &g.name,
                &selector_string(&gateways::selector(g)),
            )
            .await?;
        r.name = format!("{}/{}", g.namespace, g.name);
        gateway_rollouts.push(r);
    }
    Ok(InstallationObservation {
        revision: mesh.revision.clone(),
        spec_error: None,
        ca_error,
        apply_error,
        revision_ready,
        weftd: Some(weftd),
        gateways: gateway_rollouts,
    })
}

/// Writes status (when it changed) and Events; returns whether the
/// installation is settled (Ready, nothing rolling out).
async fn report(
    mi: &MeshInstallation,
    ctx: &Context,
    obs: &InstallationObservation,
    ca: Option<&CaSummary>,
    changes: Option<&crate::apply::Changes>,
    keep_ca_status: bool,
) -> Result<bool, ReconcileError> {
    let name = mi.name_any();
    let generation = mi.metadata.generation.unwrap_or(0);
    let current = mi.status.clone();
    let (mut conds, state) = status::installation_conditions(obs);
    let existing = current
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    if obs.spec_error.is_some() {
        // Nothing was observed for a spec that cannot be carried out: what
        // runs is as it was, and so is what status said about it.
        status::keep_observed(&mut conds, &existing);
    }
    let now = Time(Timestamp::now());
    let ready = conds
        .iter()
        .any(|c| c.type_ == weft_api::weft::ConditionType::Ready && c.status);
    let ca_status = match ca {
        Some(summary) => Some(CaStatus {
            root_fingerprint: Some(summary.root_fingerprint.clone()),
            not_after: Some(summary.root_not_after.clone()),
            rotation_phase: Some(weft_api::weft::RotationPhase::Idle),
        }),
        None if keep_ca_status => current.as_ref().and_then(|s| s.ca.clone()),
        None => None,
    };
    let new_status = MeshInstallationStatus {
        conditions: status::merge(&existing, &conds, generation, &now),
        observed_generation: Some(generation),
        state: Some(state),
        active_revision: (!obs.revision.is_empty()).then(|| obs.revision.clone()),
        revisions: Some(RevisionCounts {
            total: i32::from(obs.weftd.is_some()),
            ready: i32::from(ready),
            in_use: current
                .as_ref()
                .and_then(|s| s.revisions.as_ref())
                .map(|r| r.in_use)
                .unwrap_or(0),
        }),
        ca: ca_status,
    };
    let api: Api<MeshInstallation> = Api::all(ctx.client.clone());
    ctx.patch_status(&api, &name, current.as_ref(), &new_status)
        .await?;

    if let Some(changes) = changes.filter(|c| !c.is_empty()) {
        ctx.event(mi, false, "Applied", "Apply", changes.summary())
            .await;
    }
    // One Warning per newly failing condition (not on every resync).
    for c in conds.iter().filter(|c| is_problem(c)) {
        let was = existing.iter().find(|e| e.type_ == c.type_.as_str());
        let new = was.is_none_or(|w| {
            w.reason != c.reason || w.status != if c.status { "True" } else { "False" }
        });
        if new {
            ctx.event(mi, true, &c.reason, "Reconcile", c.message.clone())
                .await;
        }
    }
    let progressing = conds
        .iter()
        .any(|c| c.type_ == weft_api::weft::ConditionType::Progressing && c.status);
    Ok(ready && !progressing)
}

fn is_problem(c: &Cond) -> bool {
    use weft_api::weft::ConditionType::*;
    match c.type_ {
        Reconciled => !c.status,
        Degraded => c.status,
        _ => false,
    }
}

/// Uninstall: webhook registrations first (and gone), so no pod creation
/// fails on a webhook whose weftd is going away; then everything else the
/// operator made for this installation. Namespaces the user made, and
/// their contents, are left alone (they never carry Weft's labels).
async fn cleanup(mi: &MeshInstallation, ctx: &Context) -> Result<Action, ReconcileError> {
    let name = mi.name_any();
    let selector = labels::installation_selector(&name);
    let hooks = [
        ApiResource::erase::<MutatingWebhookConfiguration>(&()),
        ApiResource::erase::<ValidatingWebhookConfiguration>(&()),
    ];
    let mut deleted = Vec::new();
    for resource in &hooks {
        for object in ctx.applier.list(resource, &selector).await? {
            if ctx.applier.delete(resource, &object).await? {
                deleted.push(format!("{} {}", resource.kind, object.name_any()));
            }
        }
    }
    for resource in &hooks {
        let left = ctx.applier.list(resource, &selector).await?;
        if !left.is_empty() {
            return Err(ReconcileError::StillThere(format!(
                "{} {}",
                left.len(),
                resource.kind
            )));
        }
    }
    for resource in uninstall_kinds() {
        for object in ctx.applier.list(&resource, &selector).await? {
            if ctx.applier.delete(&resource, &object).await? {
                deleted.push(match object.namespace() {
                    Some(ns) => format!("{} {ns}/{}", resource.kind, object.name_any()),
                    None => format!("{} {}", resource.kind, object.name_any()),
                });
            }
        }
    }
    tracing::info!(installation = %name, deleted = deleted.len(), "uninstalled");
    ctx.event(
        mi,
        false,
        "Uninstalled",
        "Delete",
        format!(
            "deleted {}",
            if deleted.is_empty() {
                "nothing".to_owned()
            } else {
                deleted.join(", ")
            }
        ),
    )
    .await;
    Ok(Action::await_change())
}
