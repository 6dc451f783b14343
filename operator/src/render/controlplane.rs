//! weftd for one revision: ServiceAccount, least-privilege RBAC (what
//! weftd watches and writes, nothing more), the mesh ConfigMap, the
//! Deployment, its PodDisruptionBudget and the Service in front of it.

use std::collections::BTreeMap;
use weft_api::proxy_bootstrap::{field_env, value_env};

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMap, Container, ContainerPort, HTTPGetAction, PodAffinityTerm,
    PodAntiAffinity, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile,
    SecurityContext, Service, ServiceAccount, ServicePort, ServiceSpec, TCPSocketAction,
    WeightedPodAffinityTerm,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::{Images, Manifest, Owner, RenderError};
use crate::contract::{
    self, MONITORING_PORT, READY_PATH, TOKEN_AUDIENCE, WEBHOOK_PORT, WEFTD_UID, XDS_PLAINTEXT_PORT,
    XDS_TLS_PORT,
};
use crate::labels::{self, COMPONENT_LABEL, INJECT_LABEL, ISTIO_REV_LABEL, NAME_LABEL};
use crate::resolve::{self, MeshSettings};

/// Pod-template annotation: which CA material weftd runs with.
pub const CA_FINGERPRINT_ANNOTATION: &str = "weft.dev/ca-fingerprint";
/// weftd's container name.
pub const WEFTD_CONTAINER: &str = "weftd";
/// Longest workload certificate weftd grants unless the spec asks for more.
const MAX_WORKLOAD_TTL_SECS: u64 = 168 * 3600;

/// What every weftd pod and its Service select on.
pub fn selector(revision: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_LABEL.to_owned(), "weftd".to_owned()),
        (labels::REVISION_LABEL.to_owned(), revision.to_owned()),
    ])
}

/// SHA-256 (first 16 hex digits) of the CA material weftd loads.
pub fn ca_fingerprint(ca_cert: &[u8], root_cert: &[u8]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(ca_cert);
    ctx.update(root_cert);
    ctx.finish().as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Name of the cluster-scoped RBAC objects of a revision.
pub fn cluster_role_name(mesh: &MeshSettings) -> String {
    format!("weftd-{}-{}", mesh.revision, mesh.namespace)
}

/// Name of the mesh ConfigMap of a revision.
pub fn mesh_config_map_name(revision: &str) -> String {
    format!("weft-mesh-{revision}")
}

fn meta(mesh: &MeshSettings, owner: &Owner, name: &str, namespaced: bool) -> ObjectMeta {
    let mut labels = labels::revision_labels(&mesh.installation, &mesh.revision);
    labels.insert(NAME_LABEL.to_owned(), "weftd".to_owned());
    labels.insert(COMPONENT_LABEL.to_owned(), "control-plane".to_owned());
    labels.insert(ISTIO_REV_LABEL.to_owned(), mesh.revision.clone());
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespaced.then(|| mesh.namespace.clone()),
        labels: Some(labels),
        owner_references: Some(vec![owner.reference()]),
        ..Default::default()
    }
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    let strings = |v: &[&str]| Some(v.iter().map(|s| (*s).to_owned()).collect());
    PolicyRule {
        api_groups: strings(groups),
        resources: strings(resources),
        verbs: verbs.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    }
}

const READ: [&str; 3] = ["get", "list", "watch"];

/// What weftd reads and writes: its index watches (core, discovery, Istio
/// and Gateway API kinds, Secrets for gateway credentials and its CA),
/// TokenReviews for the CA, Events, and what the Gateway API controller
/// provisions and reports.
pub fn weftd_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            &[""],
            &[
                "pods",
                "services",
                "namespaces",
                "serviceaccounts",
                "nodes",
                "secrets",
            ],
            &READ,
        ),
        rule(&["discovery.k8s.io"], &["endpointslices"], &READ),
        rule(
            &["networking.istio.io"],
            &[
                "virtualservices",
                "destinationrules",
                "gateways",
                "serviceentries",
                "sidecars",
            ],
            &READ,
        ),
        rule(
            &["security.istio.io"],
            &[
                "peerauthentications",
                "authorizationpolicies",
                "requestauthentications",
            ],
            &READ,
        ),
        rule(
            &["gateway.networking.k8s.io"],
            &[
                "gatewayclasses",
                "gateways",
                "httproutes",
                "grpcroutes",
                "referencegrants",
            ],
            &READ,
        ),
        rule(
            &["gateway.networking.k8s.io"],
            &["gatewayclasses"],
            &["create", "patch", "update"],
        ),
        rule(
            &["gateway.networking.k8s.io"],
            &[
                "gatewayclasses/status",
                "gateways/status",
                "httproutes/status",
            ],
            &["get", "patch", "update"],
        ),
        // Gateway API provisioning: a Deployment, Service and ServiceAccount per Gateway.
        rule(
            &["apps"],
            &["deployments"],
            &[
                "get", "list", "watch", "create", "patch", "update", "delete",
            ],
        ),
        rule(
            &[""],
            &["services", "serviceaccounts"],
            &["create", "patch", "update", "delete"],
        ),
        rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
        rule(&["events.k8s.io"], &["events"], &["create", "patch"]),
    ]
}

/// weftd's command line (see `controlplane/src/config.rs`).
pub fn weftd_args(mesh: &MeshSettings, images: &Images) -> Vec<String> {
    let max_ttl = mesh
        .ca
        .workload_ttl
        .max(std::time::Duration::from_secs(MAX_WORKLOAD_TTL_SECS));
    [
        ("--revision", mesh.revision.clone()),
        ("--namespace", mesh.namespace.clone()),
        // The mesh namespace is the root namespace: its policies apply
        // mesh-wide (`meshConfig.rootNamespace`, as in Istio).
        ("--root-namespace", mesh.namespace.clone()),
        ("--trust-domain", mesh.trust_domain.clone()),
        ("--ca-source", "secret".to_owned()),
        ("--ca-secret", mesh.ca.secret_name.clone()),
        ("--token-audience", TOKEN_AUDIENCE.to_owned()),
        (
            "--workload-cert-ttl",
            resolve::weftd_duration(mesh.ca.workload_ttl),
        ),
        ("--max-workload-cert-ttl", resolve::weftd_duration(max_ttl)),
        ("--grpc-tls-port", XDS_TLS_PORT.to_string()),
        ("--monitoring-port", MONITORING_PORT.to_string()),
        ("--webhook-port", WEBHOOK_PORT.to_string()),
        ("--proxy-image", images.proxy.clone()),
        ("--log-format", "json".to_owned()),
    ]
    .into_iter()
    .map(|(flag, value)| format!("{flag}={value}"))
    .collect()
}

/// The objects of weftd for `mesh.revision`.
pub fn render(
    mesh: &MeshSettings,
    images: &Images,
    owner: &Owner,
    ca_fingerprint: &str,
) -> Result<Vec<Manifest>, RenderError> {
    let name = contract::weftd_name(&mesh.revision);
    let cluster_name = cluster_role_name(mesh);
    let mut out = Vec::new();

    out.push(Manifest::new(&ServiceAccount {
        metadata: meta(mesh, owner, &name, true),
        ..Default::default()
    })?);
    out.push(Manifest::new(&ClusterRole {
        metadata: meta(mesh, owner, &cluster_name, false),
        rules: Some(weftd_rules()),
        ..Default::default()
    })?);
    out.push(Manifest::new(&ClusterRoleBinding {
        metadata: meta(mesh, owner, &cluster_name, false),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "ClusterRole".to_owned(),
            name: cluster_name.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: name.clone(),
            namespace: Some(mesh.namespace.clone()),
            ..Default::default()
        }]),
    })?);

    let mesh_doc = json!({
        "revision": mesh.revision,
        "version": mesh.version,
        "trustDomain": mesh.trust_domain,
        "rootNamespace": mesh.namespace,
        "discoveryAddress": contract::xds_address(&mesh.revision, &mesh.namespace),
        "caSecret": mesh.ca.secret_name,
        "workloadCertTTL": resolve::weftd_duration(mesh.ca.workload_ttl),
        "tokenAudience": TOKEN_AUDIENCE,
        "rootCertConfigMap": contract::ROOT_CERT_CONFIG_MAP,
        "proxyImage": images.proxy,
    });
    out.push(Manifest::new(&ConfigMap {
        metadata: meta(mesh, owner, &mesh_config_map_name(&mesh.revision), true),
        data: Some(BTreeMap::from([(
            "mesh".to_owned(),
            serde_yaml_ng::to_string(&mesh_doc).unwrap_or_default(),
        )])),
        ..Default::default()
    })?);

    let port = |name: &str, port: i32| ServicePort {
        name: Some(name.to_owned()),
        port,
        target_port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".to_owned()),
        ..Default::default()
    };
    out.push(Manifest::new(&Service {
        metadata: meta(mesh, owner, &name, true),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(selector(&mesh.revision)),
            ports: Some(vec![
                port("grpc-xds", XDS_PLAINTEXT_PORT),
                port("tls-xds", XDS_TLS_PORT),
                port("http-monitoring", MONITORING_PORT),
                port("https-webhook", WEBHOOK_PORT),
            ]),
            ..Default::default()
        }),
        ..Default::default()
    })?);

    out.push(Manifest::new(&deployment(
        mesh,
        images,
        owner,
        &name,
        ca_fingerprint,
    ))?);

    out.push(Manifest::new(&PodDisruptionBudget {
        metadata: meta(mesh, owner, &name, true),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector(&mesh.revision)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    })?);
    Ok(out)
}

fn deployment(
    mesh: &MeshSettings,
    images: &Images,
    owner: &Owner,
    name: &str,
    ca_fingerprint: &str,
) -> Deployment {
    let mut pod_labels = selector(&mesh.revision);
    pod_labels.insert(ISTIO_REV_LABEL.to_owned(), mesh.revision.clone());
    pod_labels.insert(
        labels::INSTALLATION_LABEL.to_owned(),
        mesh.installation.clone(),
    );
    pod_labels.insert(INJECT_LABEL.to_owned(), "false".to_owned());

    let mut env = vec![
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
        value_env("RUST_LOG", resolve::rust_log(mesh.weftd_log_level)),
    ];
    for extra in &mesh.weftd_env {
        env.retain(|e| e.name != extra.name);
        env.push(extra.clone());
    }
    let container_port = |name: &str, port: i32| ContainerPort {
        name: Some(name.to_owned()),
        container_port: port,
        protocol: Some("TCP".to_owned()),
        ..Default::default()
    };
    let container = Container {
        name: WEFTD_CONTAINER.to_owned(),
        image: Some(images.weftd.clone()),
        image_pull_policy: Some(images.pull_policy.clone()),
        args: Some(weftd_args(mesh, images)),
        env: Some(env),
        ports: Some(vec![
            container_port("tls-xds", XDS_TLS_PORT),
            container_port("http-monitoring", MONITORING_PORT),
            container_port("https-webhook", WEBHOOK_PORT),
        ]),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some(READY_PATH.to_owned()),
                port: IntOrString::Int(MONITORING_PORT),
                ..Default::default()
            }),
            period_seconds: Some(3),
            failure_threshold: Some(3),
            ..Default::default()
        }),
        // Alive while the monitoring port accepts: /ready is false until
        // the index synced, which must not restart the pod.
        liveness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(MONITORING_PORT),
                ..Default::default()
            }),
            initial_delay_seconds: Some(10),
            period_seconds: Some(10),
            failure_threshold: Some(6),
            ..Default::default()
        }),
        resources: Some(mesh.weftd_resources.clone()),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Default::default()
            }),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    Deployment {
        metadata: meta(mesh, owner, name, true),
        spec: Some(DeploymentSpec {
            replicas: Some(mesh.weftd_replicas),
            selector: LabelSelector {
                match_labels: Some(selector(&mesh.revision)),
                ..Default::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(BTreeMap::from([(
                        CA_FINGERPRINT_ANNOTATION.to_owned(),
                        ca_fingerprint.to_owned(),
                    )])),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(name.to_owned()),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(WEFTD_UID),
                        run_as_group: Some(WEFTD_UID),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".to_owned(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    affinity: Some(Affinity {
                        pod_anti_affinity: Some(PodAntiAffinity {
                            preferred_during_scheduling_ignored_during_execution: Some(vec![
                                WeightedPodAffinityTerm {
                                    weight: 100,
                                    pod_affinity_term: PodAffinityTerm {
                                        label_selector: Some(LabelSelector {
                                            match_labels: Some(selector(&mesh.revision)),
                                            ..Default::default()
                                        }),
                                        topology_key: "kubernetes.io/hostname".to_owned(),
                                        ..Default::default()
                                    },
                                },
                            ]),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    termination_grace_period_seconds: Some(30),
                    containers: vec![container],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}
