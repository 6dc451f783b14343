//! The echo workload (weft-echo) on a cluster: Deployment and Service
//! manifests (pure), deploy-and-wait, one-shot client pods, and the
//! admission-webhook variant.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    RuleWithOperations, ServiceReference, ValidatingWebhook, ValidatingWebhookConfiguration,
    WebhookClientConfig,
};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, HTTPGetAction, PodSpec, PodTemplateSpec, Probe, SecretVolumeSource,
    Service, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use weft_api::proxy_bootstrap::field_env;
use weft_echo::{EchoReport, GrpcReport};

use crate::namespace::TestNamespace;
use crate::pods::{PodError, PodRun, RUN_TIMEOUT, one_shot_pod, run_pod};
use crate::wait::{WORKLOAD_TIMEOUT, WaitError, deployment_available, wait_for_object};

pub const DEFAULT_IMAGE: &str = "weft.local/echo:dev";
pub const HTTP_PORT: i32 = 8080;
pub const GRPC_PORT: i32 = 9090;
pub const TCP_PORT: i32 = 9000;
pub const WEBHOOK_PORT: i32 = 8443;

/// Errors deploying the echo workload.
#[derive(Debug, thiserror::Error)]
pub enum EchoError {
    #[error("creating {kind} {ns}/{name}: {source}")]
    Create {
        kind: &'static str,
        ns: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Wait(#[from] WaitError),
    #[error(transparent)]
    Pod(#[from] PodError),
}

/// The echo image: `$WEFT_ECHO_IMAGE`, else `weft.local/echo:dev` (what
/// `make images` builds and loads).
pub fn image() -> String {
    std::env::var("WEFT_ECHO_IMAGE")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_IMAGE.to_owned())
}

fn labels(name: &str, version: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app".to_owned(), name.to_owned()),
        ("version".to_owned(), version.to_owned()),
    ])
}

fn port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: port,
        protocol: Some("TCP".to_owned()),
        ..Default::default()
    }
}

/// The echo container: downward-API identity (POD_NAME, POD_NAMESPACE,
/// VERSION from the `version` label), three ports, readiness on /healthz.
pub fn echo_container(args: Vec<String>) -> Container {
    Container {
        name: "echo".to_owned(),
        image: Some(image()),
        image_pull_policy: Some("Never".to_owned()),
        args: Some(args),
        env: Some(vec![
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
            field_env("VERSION", "metadata.labels['version']"),
        ]),
        ports: Some(vec![
            port("http", HTTP_PORT),
            port("grpc", GRPC_PORT),
            port("tcp", TCP_PORT),
        ]),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/healthz".to_owned()),
                port: IntOrString::Int(HTTP_PORT),
                ..Default::default()
            }),
            period_seconds: Some(2),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Deployment `name` of the echo server, labelled `app=<name>, version=<version>`.
pub fn deployment(name: &str, version: &str, replicas: i32) -> Deployment {
    let labels = labels(name, version);
    Deployment {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels.clone()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    termination_grace_period_seconds: Some(1),
                    automount_service_account_token: Some(false),
                    containers: vec![echo_container(vec!["serve".to_owned()])],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn service_port(name: &str, port: i32, app_protocol: &str) -> ServicePort {
    ServicePort {
        name: Some(name.to_owned()),
        port,
        target_port: Some(IntOrString::String(name.to_owned())),
        protocol: Some("TCP".to_owned()),
        app_protocol: Some(app_protocol.to_owned()),
        ..Default::default()
    }
}

/// ClusterIP Service `name` selecting `app=<name>` on http 8080, grpc 9090, tcp 9000.
pub fn service(name: &str) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([("app".to_owned(), name.to_owned())])),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([("app".to_owned(), name.to_owned())])),
            ports: Some(vec![
                service_port("http", HTTP_PORT, "http"),
                service_port("grpc", GRPC_PORT, "grpc"),
                service_port("tcp", TCP_PORT, "tcp"),
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Creates `obj` in `ns`.
pub async fn create<K>(ns: &TestNamespace, obj: &K) -> Result<K, EchoError>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = ns.api();
    api.create(&PostParams::default(), obj)
        .await
        .map_err(|source| EchoError::Create {
            kind: std::any::type_name::<K>()
                .rsplit("::")
                .next()
                .unwrap_or("object"),
            ns: ns.name().to_owned(),
            name: obj.meta().name.clone().unwrap_or_default(),
            source,
        })
}

/// Creates Deployment and Service `name` and waits until it is Available.
pub async fn deploy(
    ns: &TestNamespace,
    name: &str,
    version: &str,
) -> Result<Deployment, EchoError> {
    deploy_objects(ns, &deployment(name, version, 1), &service(name)).await
}

/// Creates the given Deployment and Service and waits for Available.
pub async fn deploy_objects(
    ns: &TestNamespace,
    deployment: &Deployment,
    service: &Service,
) -> Result<Deployment, EchoError> {
    create(ns, service).await?;
    let created = create(ns, deployment).await?;
    let name = created.meta().name.clone().unwrap_or_default();
    let what = format!("deployment {}/{name} to be Available", ns.name());
    Ok(wait_for_object(
        &ns.api(),
        &name,
        &what,
        WORKLOAD_TIMEOUT,
        deployment_available(),
    )
    .await?)
}

/// Runs `weft-echo <args…>` as a one-shot pod in `ns` and returns how it ended
/// (not checked: call [`PodRun::assert_success`]).
pub async fn run_client(
    ns: &TestNamespace,
    pod_name: &str,
    args: &[&str],
) -> Result<PodRun, EchoError> {
    run_client_with_timeout(ns, pod_name, args, RUN_TIMEOUT).await
}

/// [`run_client`] with an explicit timeout.
pub async fn run_client_with_timeout(
    ns: &TestNamespace,
    pod_name: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<PodRun, EchoError> {
    Ok(run_pod(ns, one_shot_pod(pod_name, &image(), args), timeout).await?)
}

/// HTTP reports printed by `weft-echo client`.
pub fn http_reports(run: &PodRun) -> Vec<EchoReport> {
    run.json_lines()
}

/// gRPC reports printed by `weft-echo grpc-client`.
pub fn grpc_reports(run: &PodRun) -> Vec<GrpcReport> {
    run.json_lines()
}

/// Deployment `name` running `weft-echo webhook` with the serving cert from
/// Secret `secret`, denying objects labelled `deny_label`.
pub fn webhook_deployment(name: &str, secret: &str, deny_label: &str, message: &str) -> Deployment {
    let mut d = deployment(name, "v1", 1);
    if let Some(pod) = d.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
        let mut c = echo_container(vec![
            "webhook".to_owned(),
            format!("--port={WEBHOOK_PORT}"),
            "--cert=/etc/webhook/tls/tls.crt".to_owned(),
            "--key=/etc/webhook/tls/tls.key".to_owned(),
            format!("--deny-label={deny_label}"),
            format!("--message={message}"),
        ]);
        c.name = "webhook".to_owned();
        c.ports = Some(vec![port("https", WEBHOOK_PORT)]);
        c.readiness_probe = Some(Probe {
            tcp_socket: Some(k8s_openapi::api::core::v1::TCPSocketAction {
                port: IntOrString::Int(WEBHOOK_PORT),
                ..Default::default()
            }),
            period_seconds: Some(2),
            ..Default::default()
        });
        c.volume_mounts = Some(vec![VolumeMount {
            name: "tls".to_owned(),
            mount_path: "/etc/webhook/tls".to_owned(),
            read_only: Some(true),
            ..Default::default()
        }]);
        pod.containers = vec![c];
        pod.volumes = Some(vec![Volume {
            name: "tls".to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        }]);
    }
    d
}

/// Service `name` on 443 → the webhook's 8443.
pub fn webhook_service(name: &str) -> Service {
    let mut s = service(name);
    if let Some(spec) = s.spec.as_mut() {
        spec.ports = Some(vec![ServicePort {
            name: Some("https".to_owned()),
            port: 443,
            target_port: Some(IntOrString::Int(WEBHOOK_PORT)),
            protocol: Some("TCP".to_owned()),
            ..Default::default()
        }]);
    }
    s
}

/// A ValidatingWebhookConfiguration sending CREATE/UPDATE of ConfigMaps in
/// namespace `ns` (only) to Service `service`, failing closed.
pub fn validating_webhook(
    config_name: &str,
    ns: &str,
    service: &str,
    ca_pem: &str,
) -> ValidatingWebhookConfiguration {
    ValidatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(config_name.to_owned()),
            labels: Some(BTreeMap::from([(
                crate::namespace::E2E_LABEL.to_owned(),
                "true".to_owned(),
            )])),
            ..Default::default()
        },
        webhooks: Some(vec![ValidatingWebhook {
            name: format!("deny-label.{ns}.e2e.weft.dev"),
            admission_review_versions: vec!["v1".to_owned()],
            side_effects: "None".to_owned(),
            failure_policy: Some("Fail".to_owned()),
            timeout_seconds: Some(10),
            client_config: WebhookClientConfig {
                ca_bundle: Some(ByteString(ca_pem.as_bytes().to_vec())),
                service: Some(ServiceReference {
                    name: service.to_owned(),
                    namespace: ns.to_owned(),
                    path: Some("/validate".to_owned()),
                    port: Some(443),
                }),
                url: None,
            },
            namespace_selector: Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "kubernetes.io/metadata.name".to_owned(),
                    operator: "In".to_owned(),
                    values: Some(vec![ns.to_owned()]),
                }]),
                ..Default::default()
            }),
            rules: Some(vec![RuleWithOperations {
                api_groups: Some(vec![String::new()]),
                api_versions: Some(vec!["v1".to_owned()]),
                operations: Some(vec!["CREATE".to_owned(), "UPDATE".to_owned()]),
                resources: Some(vec!["configmaps".to_owned()]),
                scope: Some("Namespaced".to_owned()),
            }]),
            ..Default::default()
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_and_service_match() {
        let d = deployment("echo", "v2", 2);
        let spec = d.spec.expect("spec");
        assert_eq!(spec.replicas, Some(2));
        let selector = spec.selector.match_labels.expect("labels");
        let pod_labels = spec
            .template
            .metadata
            .and_then(|m| m.labels)
            .expect("pod labels");
        assert!(selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)));
        assert_eq!(pod_labels.get("version").map(String::as_str), Some("v2"));
        let c = &spec.template.spec.expect("pod spec").containers[0];
        let env: Vec<_> = c.env.iter().flatten().map(|e| e.name.as_str()).collect();
        assert_eq!(env, ["POD_NAME", "POD_NAMESPACE", "VERSION"]);
        let s = service("echo").spec.expect("svc spec");
        let svc_selector = s.selector.expect("selector");
        assert!(
            svc_selector
                .iter()
                .all(|(k, v)| pod_labels.get(k) == Some(v))
        );
        let names: Vec<_> = s
            .ports
            .iter()
            .flatten()
            .filter_map(|p| p.name.as_deref())
            .collect();
        let container_ports: Vec<_> = c
            .ports
            .iter()
            .flatten()
            .filter_map(|p| p.name.as_deref())
            .collect();
        assert_eq!(names, container_ports);
    }

    #[test]
    fn webhook_objects() {
        let d = webhook_deployment("hook", "hook-tls", "weft.dev/deny", "nope");
        let pod = d.spec.and_then(|s| s.template.spec).expect("pod spec");
        let args = pod.containers[0].args.clone().unwrap_or_default();
        assert_eq!(args[0], "webhook");
        assert!(args.contains(&"--deny-label=weft.dev/deny".to_owned()));
        let v = validating_webhook("cfg", "ns1", "hook", "PEM");
        let hook = &v.webhooks.expect("webhooks")[0];
        assert_eq!(
            hook.client_config
                .service
                .as_ref()
                .map(|s| s.namespace.as_str()),
            Some("ns1")
        );
        assert_eq!(hook.failure_policy.as_deref(), Some("Fail"));
    }
}
