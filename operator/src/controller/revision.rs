//! The MeshRevision reconciler: render and apply weftd for the revision
//! (ServiceAccount, RBAC, mesh ConfigMap, Deployment, PDB, Service), then
//! — once weftd has been available — its webhook registrations with the
//! mesh root as `caBundle`; prune the rest; probe the webhook; report
//! Reconciled / Ready / InUse.

use std::sync::Arc;

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
use kube::{Resource, ResourceExt};
use weft_api::weft::conditions::State;
use weft_api::weft::{
    ConditionType, MeshInstallation, MeshInstallationSpec, MeshRevision, MeshRevisionStatus,
};

use super::context::{Context, ReconcileError, SOON, selector_string};
use crate::contract::{self, ROOT_CERT};
use crate::labels::{self, INJECTION_LABEL, ISTIO_REV_LABEL};
use crate::probe;
use crate::render::revision::{self as render_revision, RevisionInput};
use crate::render::{Owner, controlplane, webhooks};
use crate::resolve::{self, MeshSettings};
use crate::status::{self, RevisionObservation, WebhookProbe};

const CONTROLLER: &str = "meshrevision";

fn revision_kinds() -> Vec<ApiResource> {
    vec![
        ApiResource::erase::<ServiceAccount>(&()),
        ApiResource::erase::<ClusterRole>(&()),
        ApiResource::erase::<ClusterRoleBinding>(&()),
        ApiResource::erase::<ConfigMap>(&()),
        ApiResource::erase::<Service>(&()),
        ApiResource::erase::<Deployment>(&()),
        ApiResource::erase::<PodDisruptionBudget>(&()),
        ApiResource::erase::<ValidatingWebhookConfiguration>(&()),
        ApiResource::erase::<MutatingWebhookConfiguration>(&()),
    ]
}

/// The settings of a revision, from its own spec (the unit of a control plane).
pub fn revision_settings(rev: &MeshRevision) -> Result<MeshSettings, resolve::SpecError> {
    let spec = MeshInstallationSpec {
        version: rev.spec.version.clone(),
        control_plane: rev.spec.control_plane.clone(),
        dataplane: rev.spec.dataplane.clone(),
        mesh_config: rev.spec.mesh_config.clone(),
        certificates: rev.spec.certificates.clone(),
        multi_cluster: rev.spec.multi_cluster.clone(),
        ..Default::default()
    };
    let mut mesh = resolve::resolve(&rev.spec.installation, &spec)?;
    mesh.revision = rev.name_any();
    Ok(mesh)
}

pub async fn reconcile(
    rev: Arc<MeshRevision>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let started = std::time::Instant::now();
    let result = reconcile_inner(&rev, &ctx).await;
    ctx.metrics.reconciled(
        CONTROLLER,
        started.elapsed(),
        result.as_ref().err().map(ReconcileError::label),
    );
    result
}

pub fn error_policy(rev: Arc<MeshRevision>, error: &ReconcileError, _ctx: Arc<Context>) -> Action {
    tracing::warn!(revision = %rev.name_any(), error = %error, "reconcile failed; retrying");
    Action::requeue(std::time::Duration::from_secs(10))
}

async fn reconcile_inner(rev: &MeshRevision, ctx: &Context) -> Result<Action, ReconcileError> {
    if rev.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = rev.name_any();
    let installations: Api<MeshInstallation> = Api::all(ctx.client.clone());
    let parent = installations
        .get_opt(&rev.spec.installation)
        .await
        .map_err(ReconcileError::read(format!(
            "MeshInstallation {}",
            rev.spec.installation
        )))?;
    let Some(parent) = parent.filter(|p| p.metadata.deletion_timestamp.is_none()) else {
        // Being uninstalled (or orphaned): the installation's cleanup and
        // garbage collection remove what this revision made.
        return Ok(Action::await_change());
    };
    let mesh = match revision_settings(rev) {
        Ok(mesh) => mesh,
        Err(e) => {
            let weftd = status::Rollout::default();
            let obs = RevisionObservation {
                revision: name.clone(),
                failure: Some((e.reason().to_owned(), e.to_string())),
                weftd,
                webhook: WebhookProbe::NotRegistered,
                namespaces_in_use: 0,
            };
            report(rev, ctx, &obs).await?;
            return Ok(Action::await_change());
        }
    };
    let default = resolve::revision_name(&parent.spec).is_ok_and(|active| active == name);

    // The mesh root, from the CA Secret weftd loads (the installation writes it).
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &mesh.namespace);
    let ca_data = secrets
        .get_opt(&mesh.ca.secret_name)
        .await
        .map_err(ReconcileError::read(format!(
            "Secret {}/{}",
            mesh.namespace, mesh.ca.secret_name
        )))?
        .and_then(|s| s.data)
        .unwrap_or_default();
    let get = |key: &str| ca_data.get(key).map(|b| b.0.clone()).unwrap_or_default();
    let fingerprint = controlplane::ca_fingerprint(&get(contract::CA_CERT), &get(ROOT_CERT));
    let bundle = Some(String::from_utf8_lossy(&get(ROOT_CERT)).into_owned())
        .filter(|pem| pem.contains("BEGIN CERTIFICATE"));
    let Some(bundle) = bundle else {
        let weftd = current_rollout(&mesh, ctx).await?;
        let obs = RevisionObservation {
            revision: name.clone(),
            failure: Some((
                "CANotReady".to_owned(),
                format!(
                    "waiting for {}/{} with root-cert.pem (the MeshInstallation's status says why it is missing)",
                    mesh.namespace, mesh.ca.secret_name
                ),
            )),
            weftd,
            webhook: WebhookProbe::NotRegistered,
            namespaces_in_use: 0,
        };
        report(rev, ctx, &obs).await?;
        return Ok(Action::requeue(SOON));
    };

    let before = current_rollout(&mesh, ctx).await?;
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(ctx.client.clone());
    let registered = mutating
        .get_opt(&webhooks::mutating_name(&name))
        .await
        .map_err(ReconcileError::read("MutatingWebhookConfiguration"))?
        .is_some();
    let register = registered || before.available > 0;
    let owner = Owner {
        api_version: MeshRevision::api_version(&()).into_owned(),
        kind: MeshRevision::kind(&()).into_owned(),
        name: name.clone(),
        uid: rev
            .metadata
            .uid
            .clone()
            .ok_or_else(|| ReconcileError::Metadata("MeshRevision".into()))?,
    };
    let manifests = render_revision::render(&RevisionInput {
        mesh: &mesh,
        images: &ctx.images,
        owner: &owner,
        default,
        ca_bundle: &bundle,
        ca_fingerprint: &fingerprint,
        webhooks: register,
    })?;
    let applied = async {
        let mut changes = ctx.applier.apply(&manifests).await?;
        changes.extend(
            ctx.applier
                .prune(
                    &manifests,
                    &revision_kinds(),
                    &labels::revision_selector(&mesh.installation, &name),
                )
                .await?,
        );
        Ok::<_, crate::apply::ApplyError>(changes)
    }
    .await;
    let (changes, failure) = match applied {
        Ok(changes) => (Some(changes), None),
        Err(e) if e.is_invalid() => (None, Some(("ApplyRejected".to_owned(), e.to_string()))),
        Err(e) => return Err(e.into()),
    };

    let weftd = current_rollout(&mesh, ctx).await?;
    let webhook = if !register {
        WebhookProbe::NotRegistered
    } else if !ctx.probe_webhooks {
        WebhookProbe::Answering
    } else {
        probe_webhook(&mesh, ctx, &bundle).await
    };
    let namespaces_in_use = namespaces_in_use(&name, default, ctx).await?;
    let obs = RevisionObservation {
        revision: name.clone(),
        failure,
        weftd,
        webhook,
        namespaces_in_use,
    };
    let ready = report(rev, ctx, &obs).await?;
    if let Some(changes) = changes.filter(|c| !c.is_empty()) {
        ctx.event(rev, false, "Applied", "Apply", changes.summary())
            .await;
    }
    Ok(if ready && !register_pending(register, &obs) {
        Action::requeue(ctx.resync)
    } else {
        Action::requeue(SOON)
    })
}

fn register_pending(register: bool, obs: &RevisionObservation) -> bool {
    !register || obs.webhook != WebhookProbe::Answering
}

async fn current_rollout(
    mesh: &MeshSettings,
    ctx: &Context,
) -> Result<status::Rollout, ReconcileError> {
    ctx.rollout(
        &mesh.namespace,
        &contract::weftd_name(&mesh.revision),
        &selector_string(&controlplane::selector(&mesh.revision)),
    )
    .await
}

async fn probe_webhook(mesh: &MeshSettings, ctx: &Context, bundle: &str) -> WebhookProbe {
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &mesh.namespace);
    let name = contract::weftd_name(&mesh.revision);
    let ip = match services.get_opt(&name).await {
        Ok(Some(s)) => s.spec.and_then(|s| s.cluster_ip).filter(|ip| ip != "None"),
        Ok(None) => None,
        Err(e) => return WebhookProbe::NotAnswering(format!("reading Service {name}: {e}")),
    };
    let Some(ip) = ip else {
        return WebhookProbe::NotAnswering(format!(
            "Service {}/{name} has no cluster IP",
            mesh.namespace
        ));
    };
    match probe::probe(
        &ip,
        &contract::webhook_host(&mesh.revision, &mesh.namespace),
        bundle,
    )
    .await
    {
        Ok(()) => WebhookProbe::Answering,
        Err(e) => WebhookProbe::NotAnswering(e.to_string()),
    }
}

/// Namespaces whose labels select this revision.
async fn namespaces_in_use(
    revision: &str,
    default: bool,
    ctx: &Context,
) -> Result<i32, ReconcileError> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let mut count = api
        .list_metadata(&ListParams::default().labels(&format!("{ISTIO_REV_LABEL}={revision}")))
        .await
        .map_err(ReconcileError::read("namespaces"))?
        .items
        .len();
    if default {
        count += api
            .list_metadata(&ListParams::default().labels(&format!("{INJECTION_LABEL}=enabled")))
            .await
            .map_err(ReconcileError::read("namespaces"))?
            .items
            .len();
    }
    Ok(i32::try_from(count).unwrap_or(i32::MAX))
}

/// Writes the status when it changed; returns whether the revision is Ready.
async fn report(
    rev: &MeshRevision,
    ctx: &Context,
    obs: &RevisionObservation,
) -> Result<bool, ReconcileError> {
    let generation = rev.metadata.generation.unwrap_or(0);
    let conds = status::revision_conditions(obs);
    let existing = rev
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let ready = conds
        .iter()
        .any(|c| c.type_ == ConditionType::Ready && c.status);
    let state = if obs.failure.is_some() {
        State::Error
    } else if ready {
        State::Ready
    } else {
        State::Reconciling
    };
    let new_status = MeshRevisionStatus {
        conditions: status::merge(&existing, &conds, generation, &Time(Timestamp::now())),
        observed_generation: Some(generation),
        state: Some(state),
        namespaces_in_use: Some(obs.namespaces_in_use),
        workloads_in_use: rev.status.as_ref().and_then(|s| s.workloads_in_use),
    };
    let api: Api<MeshRevision> = Api::all(ctx.client.clone());
    ctx.patch_status(&api, &rev.name_any(), rev.status.as_ref(), &new_status)
        .await?;
    if let Some((reason, message)) = &obs.failure {
        let was = existing
            .iter()
            .find(|c| c.type_ == "Reconciled")
            .map(|c| c.reason.as_str());
        if was != Some(reason.as_str()) {
            ctx.event(rev, true, reason, "Reconcile", message.clone())
                .await;
        }
    }
    Ok(ready)
}
