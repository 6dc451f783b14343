//! Pure rendering: a Weft Gateway → the Deployment, Service and
//! ServiceAccount of its proxy, and Weft's GatewayClasses. No client here;
//! the controller applies what these return.

use std::collections::BTreeMap;
use weft_api::proxy_bootstrap::{
    GatewayBootstrap, gateway_pod_security_context, gateway_security_context,
};

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, HTTPGetAction, PodSpec, PodTemplateSpec, Probe, Service,
    ServiceAccount, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use weft_api::gateway::gatewayclasses::{GatewayClass, GatewayClassSpec};
use weft_api::gateway::gateways::Gateway;

use super::settings::{ClassSetting, GatewaySettings};

pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";
pub const GATEWAY_CLASS_LABEL: &str = "gateway.networking.k8s.io/gateway-class-name";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
pub const MANAGED_BY: &str = "weftd";
/// Istio's annotation choosing the gateway Service's type.
pub const SERVICE_TYPE_ANNOTATION: &str = "networking.istio.io/service-type";
pub use weft_api::proxy_bootstrap::PROXY_UID;

/// Env vars the proxy reads in gateway mode.
pub const ENV_XDS_ADDRESS: &str = "WEFT_XDS_ADDRESS";
pub const ENV_GATEWAY_NAME: &str = "WEFT_GATEWAY_NAME";
pub const ENV_GATEWAY_NAMESPACE: &str = "WEFT_GATEWAY_NAMESPACE";

/// Why a Gateway cannot be rendered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    #[error("gateway has no {0}: was it read from the API server?")]
    MissingMetadata(&'static str),
}

/// The three objects that run one gateway.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewayObjects {
    pub service_account: ServiceAccount,
    pub deployment: Deployment,
    pub service: Service,
}

/// `<gateway>-<class>` (Istio's naming, so `kubectl get deploy
/// payments-gateway-istio` keeps working), cut to a DNS label: names longer
/// than 63 characters keep a prefix and get a hash of the full name.
pub fn object_name(gateway: &str, class: &str) -> String {
    let full = format!("{gateway}-{class}");
    if full.len() <= 63 {
        return full;
    }
    let hash = fnv1a(full.as_bytes());
    let prefix = full[..54].trim_end_matches('-');
    format!("{prefix}-{:08x}", hash as u32)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Labels on everything rendered for `gateway`: the user's
/// `spec.infrastructure.labels` first, Weft's on top.
pub fn labels(gateway: &Gateway, name: &str) -> BTreeMap<String, String> {
    let mut labels = gateway
        .spec
        .infrastructure
        .as_ref()
        .and_then(|i| i.labels.clone())
        .unwrap_or_default();
    labels.extend(selector_labels(gateway));
    labels.insert(
        GATEWAY_CLASS_LABEL.to_owned(),
        gateway.spec.gateway_class_name.clone(),
    );
    labels.insert(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned());
    labels.insert(PART_OF_LABEL.to_owned(), "weft".to_owned());
    labels.insert(NAME_LABEL.to_owned(), name.to_owned());
    labels
}

/// What the Deployment and Service select on (stable: a selector is immutable).
pub fn selector_labels(gateway: &Gateway) -> BTreeMap<String, String> {
    BTreeMap::from([(
        GATEWAY_NAME_LABEL.to_owned(),
        gateway.metadata.name.clone().unwrap_or_default(),
    )])
}

fn annotations(gateway: &Gateway) -> Option<BTreeMap<String, String>> {
    gateway
        .spec
        .infrastructure
        .as_ref()
        .and_then(|i| i.annotations.clone())
        .filter(|a| !a.is_empty())
}

/// The Service type: `networking.istio.io/service-type` on the Gateway or in
/// its `spec.infrastructure.annotations` (the latter wins), else the default.
pub fn service_type(gateway: &Gateway, settings: &GatewaySettings) -> String {
    let from_infra = annotations(gateway).and_then(|a| a.get(SERVICE_TYPE_ANNOTATION).cloned());
    let from_meta = gateway
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SERVICE_TYPE_ANNOTATION).cloned());
    from_infra
        .or(from_meta)
        .unwrap_or_else(|| settings.default_service_type.clone())
}

/// The listeners' distinct ports, in spec order, each with the protocol of
/// the first listener using it.
pub fn listener_ports(gateway: &Gateway) -> Vec<(i32, String)> {
    let mut ports: Vec<(i32, String)> = Vec::new();
    for l in &gateway.spec.listeners {
        if !ports.iter().any(|(p, _)| *p == l.port) {
            ports.push((l.port, l.protocol.clone()));
        }
    }
    ports
}

fn owner_reference(gateway: &Gateway) -> Result<OwnerReference, RenderError> {
    Ok(OwnerReference {
        api_version: "gateway.networking.k8s.io/v1".to_owned(),
        kind: "Gateway".to_owned(),
        name: gateway
            .metadata
            .name
            .clone()
            .ok_or(RenderError::MissingMetadata("name"))?,
        uid: gateway
            .metadata
            .uid
            .clone()
            .ok_or(RenderError::MissingMetadata("uid"))?,
        controller: Some(true),
        block_owner_deletion: None,
    })
}

/// Renders the ServiceAccount, Deployment and Service of `gateway`.
pub fn render(
    gateway: &Gateway,
    settings: &GatewaySettings,
) -> Result<GatewayObjects, RenderError> {
    let gw_name = gateway
        .metadata
        .name
        .clone()
        .ok_or(RenderError::MissingMetadata("name"))?;
    let namespace = gateway
        .metadata
        .namespace
        .clone()
        .ok_or(RenderError::MissingMetadata("namespace"))?;
    let name = object_name(&gw_name, &gateway.spec.gateway_class_name);
    let labels = labels(gateway, &name);
    let meta = ObjectMeta {
        name: Some(name.clone()),
        namespace: Some(namespace.clone()),
        labels: Some(labels.clone()),
        annotations: annotations(gateway),
        owner_references: Some(vec![owner_reference(gateway)?]),
        ..Default::default()
    };
    let ports = listener_ports(gateway);

    let service_account = ServiceAccount {
        metadata: meta.clone(),
        ..Default::default()
    };

    let service = Service {
        metadata: meta.clone(),
        spec: Some(ServiceSpec {
            type_: Some(service_type(gateway, settings)),
            selector: Some(selector_labels(gateway)),
            ports: Some(
                ports
                    .iter()
                    .map(|(port, protocol)| ServicePort {
                        name: Some(format!("{}-{port}", protocol.to_ascii_lowercase())),
                        port: *port,
                        target_port: Some(IntOrString::Int(*port)),
                        protocol: Some("TCP".to_owned()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    };

    let readiness = &settings.proxy.readiness;
    let mut container_ports: Vec<ContainerPort> = ports
        .iter()
        .map(|(port, _)| ContainerPort {
            container_port: *port,
            protocol: Some("TCP".to_owned()),
            ..Default::default()
        })
        .collect();
    if !ports.iter().any(|(p, _)| *p == readiness.port) {
        container_ports.push(ContainerPort {
            name: Some("status-port".to_owned()),
            container_port: readiness.port,
            protocol: Some("TCP".to_owned()),
            ..Default::default()
        });
    }
    let mut pod_labels = labels.clone();
    // The gateway is a proxy itself: never inject a sidecar into it.
    pod_labels.insert("sidecar.istio.io/inject".to_owned(), "false".to_owned());

    let bootstrap = GatewayBootstrap {
        xds_address: &settings.xds_address,
        gateway: &gw_name,
        namespace: &namespace,
        trust_domain: &settings.trust_domain,
        revision: &settings.revision,
        token_audience: &settings.token_audience,
        root_cert_config_map: settings.root_cert_config_map.as_deref(),
    };
    let container = Container {
        name: "weft-proxy".to_owned(),
        image: Some(settings.proxy.image.clone()),
        image_pull_policy: Some(settings.proxy.image_pull_policy.clone()),
        args: Some(settings.proxy.args.clone()),
        env: Some(bootstrap.env()),
        volume_mounts: Some(bootstrap.mounts()),
        ports: Some(container_ports),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some(readiness.path.clone()),
                port: IntOrString::Int(readiness.port),
                ..Default::default()
            }),
            period_seconds: Some(2),
            failure_threshold: Some(30),
            ..Default::default()
        }),
        security_context: Some(gateway_security_context()),
        ..Default::default()
    };

    let deployment = Deployment {
        metadata: meta,
        spec: Some(DeploymentSpec {
            // No `replicas`: left to `kubectl scale` or an autoscaler
            // (the API server defaults it to 1).
            selector: LabelSelector {
                match_labels: Some(selector_labels(gateway)),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: annotations(gateway),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(name),
                    security_context: Some(gateway_pod_security_context()),
                    containers: vec![container],
                    volumes: Some(bootstrap.volumes()),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    };

    Ok(GatewayObjects {
        service_account,
        deployment,
        service,
    })
}

/// A GatewayClass Weft serves, as Weft creates it.
pub fn render_class(class: &ClassSetting) -> GatewayClass {
    GatewayClass {
        metadata: ObjectMeta {
            name: Some(class.name.clone()),
            labels: Some(BTreeMap::from([
                (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
                (PART_OF_LABEL.to_owned(), "weft".to_owned()),
            ])),
            ..Default::default()
        },
        spec: GatewayClassSpec {
            controller_name: class.controller_name.clone(),
            description: Some(format!(
                "Gateways of class {} run Weft's proxy (weft-proxy), provisioned by weftd",
                class.name
            )),
            parameters_ref: None,
        },
        status: None,
    }
}
