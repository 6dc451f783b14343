//! The injected pod and the JSON patch (RFC 6902) that turns the pod as
//! created into it: `weft-init` (iptables) and `weft-proxy` (a native
//! sidecar) at the front of the init containers, the token, root
//! certificate and scratch volumes, the mesh labels, the status annotation
//! and HTTP probes rewritten through the proxy.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, HTTPGetAction, Pod, Probe, ResourceRequirements,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use serde_json::{Value, json};

use weft_api::proxy_bootstrap::{bootstrap_volumes, field_env, root_cert_volume, value_env};

use super::InjectError;
use super::decision::STATUS_ANNOTATION;
use super::probes::{self, APP_PROBES_ENV};
use super::settings::*;
use super::traffic::TrafficCapture;

/// Label marking a pod whose proxy accepts mesh mTLS.
pub const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";
/// Label naming the pod's workload for telemetry.
pub const CANONICAL_NAME_LABEL: &str = "service.istio.io/canonical-name";
/// Label naming the workload's version for telemetry.
pub const CANONICAL_REVISION_LABEL: &str = "service.istio.io/canonical-revision";

/// The result of injecting one pod.
#[derive(Clone, Debug)]
pub struct Injected {
    /// The pod as it will be stored.
    pub pod: Pod,
    /// The JSON patch from the pod as created to [`Self::pod`].
    pub patch: json_patch::Patch,
}

/// What the status annotation records (Istio's layout, so tools that read
/// it keep working).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Status<'a> {
    init_containers: [&'a str; 2],
    containers: [&'a str; 0],
    volumes: Vec<&'a str>,
    image_pull_secrets: Option<()>,
    revision: &'a str,
}

/// Injects the sidecar described by `settings` into `pod`.
pub fn inject(pod: &Pod, settings: &InjectSettings) -> Result<Injected, InjectError> {
    let mut injected = pod.clone();
    let annotations = pod.metadata.annotations.as_ref();
    let capture = TrafficCapture::from_annotations(annotations)?;
    let spec = injected.spec.as_mut().ok_or(InjectError::NoSpec)?;

    let app_probes = if probes::enabled(annotations) {
        probes::rewrite(&mut spec.containers)
    } else {
        BTreeMap::new()
    };
    let app_probes = if app_probes.is_empty() {
        None
    } else {
        Some(serde_json::to_string(&app_probes).map_err(InjectError::Serialize)?)
    };

    let init_containers = spec.init_containers.get_or_insert_with(Vec::new);
    init_containers.insert(0, init_container(settings, &capture));
    init_containers.insert(1, proxy_container(settings, app_probes));

    let volumes = volumes(settings);
    let volume_names: Vec<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
    let status = serde_json::to_string(&Status {
        init_containers: [INIT_CONTAINER, PROXY_CONTAINER],
        containers: [],
        volumes: volume_names,
        image_pull_secrets: None,
        revision: &settings.revision,
    })
    .map_err(InjectError::Serialize)?;
    spec.volumes.get_or_insert_with(Vec::new).extend(volumes);

    let canonical_name = canonical_name(pod);
    let canonical_revision = canonical_revision(pod);
    let labels = injected.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(TLS_MODE_LABEL.to_owned(), "istio".to_owned());
    labels
        .entry(CANONICAL_NAME_LABEL.to_owned())
        .or_insert(canonical_name);
    labels
        .entry(CANONICAL_REVISION_LABEL.to_owned())
        .or_insert(canonical_revision);
    injected
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(STATUS_ANNOTATION.to_owned(), status);

    let patch = patch_between(pod, &injected)?;
    Ok(Injected {
        patch,
        pod: injected,
    })
}

/// One JSON-pointer token (RFC 6901 escaping).
fn token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn json<T: Serialize>(value: &T) -> Result<Value, InjectError> {
    serde_json::to_value(value).map_err(InjectError::Serialize)
}

/// Adds to `ops` the entries of `after` missing from (or different in)
/// `before`, under `path`; the whole map when `before` has none.
fn map_ops(
    ops: &mut Vec<Value>,
    path: &str,
    before: Option<&BTreeMap<String, String>>,
    after: Option<&BTreeMap<String, String>>,
) {
    let Some(after) = after else { return };
    match before {
        None => ops.push(json!({"op": "add", "path": path, "value": after})),
        Some(before) => {
            for (key, value) in after {
                if before.get(key) != Some(value) {
                    let path = format!("{path}/{}", token(key));
                    ops.push(json!({"op": "add", "path": path, "value": value}));
                }
            }
        }
    }
}

/// The targeted patch from `before` to `after` (which [`inject`] derived
/// from it): additions at the front of the init containers and the end of
/// the volumes, new labels and annotations, replaced probes. Paths touch
/// only what injection changed, so fields unknown to this build are kept.
fn patch_between(before: &Pod, after: &Pod) -> Result<json_patch::Patch, InjectError> {
    let mut ops = Vec::new();
    map_ops(
        &mut ops,
        "/metadata/labels",
        before.metadata.labels.as_ref(),
        after.metadata.labels.as_ref(),
    );
    map_ops(
        &mut ops,
        "/metadata/annotations",
        before.metadata.annotations.as_ref(),
        after.metadata.annotations.as_ref(),
    );
    let (Some(b), Some(a)) = (before.spec.as_ref(), after.spec.as_ref()) else {
        return Err(InjectError::NoSpec);
    };
    let added_inits = a.init_containers.as_deref().unwrap_or_default();
    match &b.init_containers {
        None => ops.push(
            json!({"op": "add", "path": "/spec/initContainers", "value": json(&added_inits)?}),
        ),
        Some(existing) => {
            let count = added_inits.len().saturating_sub(existing.len());
            for (i, container) in added_inits.iter().take(count).enumerate() {
                let path = format!("/spec/initContainers/{i}");
                ops.push(json!({"op": "add", "path": path, "value": json(container)?}));
            }
        }
    }
    for (i, (old, new)) in b.containers.iter().zip(&a.containers).enumerate() {
        let probes = [
            ("readinessProbe", &old.readiness_probe, &new.readiness_probe),
            ("livenessProbe", &old.liveness_probe, &new.liveness_probe),
            ("startupProbe", &old.startup_probe, &new.startup_probe),
        ];
        for (name, old, new) in probes {
            if old != new
                && let Some(new) = new
            {
                let path = format!("/spec/containers/{i}/{name}");
                ops.push(json!({"op": "replace", "path": path, "value": json(new)?}));
            }
        }
    }
    let volumes = a.volumes.as_deref().unwrap_or_default();
    match &b.volumes {
        None => ops.push(json!({"op": "add", "path": "/spec/volumes", "value": json(&volumes)?})),
        Some(existing) => {
            for volume in volumes.iter().skip(existing.len()) {
                ops.push(json!({"op": "add", "path": "/spec/volumes/-", "value": json(volume)?}));
            }
        }
    }
    serde_json::from_value(Value::Array(ops)).map_err(InjectError::Serialize)
}

fn quantities(map: &BTreeMap<String, String>) -> Option<BTreeMap<String, Quantity>> {
    (!map.is_empty()).then(|| {
        map.iter()
            .map(|(k, v)| (k.clone(), Quantity(v.clone())))
            .collect()
    })
}

fn resources(settings: &InjectSettings) -> Option<ResourceRequirements> {
    let r = ResourceRequirements {
        requests: quantities(&settings.requests),
        limits: quantities(&settings.limits),
        ..Default::default()
    };
    (r != ResourceRequirements::default()).then_some(r)
}

fn init_container(settings: &InjectSettings, capture: &TrafficCapture) -> Container {
    Container {
        name: INIT_CONTAINER.to_owned(),
        image: Some(settings.proxy_image.clone()),
        image_pull_policy: settings.image_pull_policy.clone(),
        args: Some(capture.init_args()),
        resources: resources(settings),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_user: Some(0),
            run_as_group: Some(0),
            run_as_non_root: Some(false),
            capabilities: Some(Capabilities {
                add: Some(vec!["NET_ADMIN".to_owned(), "NET_RAW".to_owned()]),
                drop: Some(vec!["ALL".to_owned()]),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn health_probe(period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/healthz/ready".to_owned()),
            port: IntOrString::Int(i32::from(HEALTH_PORT)),
            ..Default::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(3),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

fn proxy_container(settings: &InjectSettings, app_probes: Option<String>) -> Container {
    let mut env = vec![
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
        field_env("INSTANCE_IP", "status.podIP"),
        field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"),
        field_env("NODE_NAME", "spec.nodeName"),
        value_env("WEFT_XDS_ADDRESS", &settings.xds_address),
        value_env("WEFT_TRUST_DOMAIN", &settings.trust_domain),
        value_env("WEFT_REVISION", &settings.revision),
        value_env(
            "WEFT_TOKEN_PATH",
            format!("{TOKEN_MOUNT_PATH}/{TOKEN_FILE}"),
        ),
        value_env("WEFT_LOG_LEVEL", &settings.log_level),
        value_env("WEFT_CONCURRENCY", settings.concurrency.to_string()),
    ];
    let mut mounts = vec![
        VolumeMount {
            name: TOKEN_VOLUME.to_owned(),
            mount_path: TOKEN_MOUNT_PATH.to_owned(),
            read_only: Some(true),
            ..Default::default()
        },
        VolumeMount {
            name: DATA_VOLUME.to_owned(),
            mount_path: DATA_MOUNT_PATH.to_owned(),
            ..Default::default()
        },
    ];
    if settings.root_cert_config_map.is_some() {
        env.push(value_env(
            "WEFT_ROOT_CERT_PATH",
            format!("{ROOT_CERT_MOUNT_PATH}/{ROOT_CERT_KEY}"),
        ));
        mounts.push(VolumeMount {
            name: ROOT_CERT_VOLUME.to_owned(),
            mount_path: ROOT_CERT_MOUNT_PATH.to_owned(),
            read_only: Some(true),
            ..Default::default()
        });
    }
    if let Some(app_probes) = app_probes {
        env.push(value_env(APP_PROBES_ENV, app_probes));
    }
    Container {
        name: PROXY_CONTAINER.to_owned(),
        image: Some(settings.proxy_image.clone()),
        image_pull_policy: settings.image_pull_policy.clone(),
        args: Some(vec!["sidecar".to_owned()]),
        // A native sidecar: started before the app containers, stopped after them.
        restart_policy: Some("Always".to_owned()),
        env: Some(env),
        ports: Some(vec![ContainerPort {
            name: Some("http-envoy-prom".to_owned()),
            container_port: i32::from(PROXY_METRICS_PORT),
            protocol: Some("TCP".to_owned()),
            ..Default::default()
        }]),
        readiness_probe: Some(health_probe(15, 4)),
        // The kubelet starts the next containers once a native sidecar's
        // startup probe passes: this is what holds the application.
        startup_probe: settings
            .hold_application_until_proxy_starts
            .then(|| health_probe(1, 600)),
        resources: resources(settings),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_user: Some(PROXY_UID),
            run_as_group: Some(PROXY_UID),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        volume_mounts: Some(mounts),
        ..Default::default()
    }
}

fn volumes(settings: &InjectSettings) -> Vec<Volume> {
    let mut volumes = bootstrap_volumes(&settings.token_audience);
    if let Some(config_map) = &settings.root_cert_config_map {
        volumes.push(root_cert_volume(config_map, false));
    }
    volumes
}

/// The workload name for telemetry: the pod's own label if set, else the
/// usual app labels, else the name of the controller that made the pod.
pub fn canonical_name(pod: &Pod) -> String {
    let labels = pod.metadata.labels.as_ref();
    let label = |key: &str| labels.and_then(|l| l.get(key)).cloned();
    label(CANONICAL_NAME_LABEL)
        .or_else(|| label("app.kubernetes.io/name"))
        .or_else(|| label("app"))
        .unwrap_or_else(|| workload_name(pod))
}

/// The workload version for telemetry (`latest` when nothing says).
pub fn canonical_revision(pod: &Pod) -> String {
    let labels = pod.metadata.labels.as_ref();
    let label = |key: &str| labels.and_then(|l| l.get(key)).cloned();
    label(CANONICAL_REVISION_LABEL)
        .or_else(|| label("app.kubernetes.io/version"))
        .or_else(|| label("version"))
        .unwrap_or_else(|| "latest".to_owned())
}

/// The name of the pod's workload: a Deployment's pods are named
/// `<deployment>-<replicaset hash>-<random>`, other controllers' pods
/// `<controller>-<suffix>`.
fn workload_name(pod: &Pod) -> String {
    let owner_kind = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.kind.as_str());
    match pod.metadata.generate_name.as_deref() {
        Some(prefix) if !prefix.is_empty() => {
            let base = prefix.trim_end_matches('-');
            match (owner_kind, base.rsplit_once('-')) {
                (Some("ReplicaSet"), Some((deployment, _hash))) => deployment.to_owned(),
                _ => base.to_owned(),
            }
        }
        _ => pod.metadata.name.clone().unwrap_or_default(),
    }
}
