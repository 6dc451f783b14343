//! A gateway of `spec.gateways`: ServiceAccount, Deployment running
//! `weft-proxy gateway`, Service of the requested type and a
//! PodDisruptionBudget. The proxy's bootstrap is the one weftd's injector
//! and Gateway API controller give proxies (see [`crate::contract`]):
//! where weftd is, which gateway this is, a projected token for the CA, a
//! writable data directory and the mesh root from `weft-ca-root-cert`.

use std::collections::BTreeMap;
use weft_api::proxy_bootstrap::{
    GatewayBootstrap, gateway_pod_security_context, gateway_security_context,
};

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, HTTPGetAction, PodSpec, PodTemplateSpec, Probe, Service,
    ServiceAccount, ServicePort, ServiceSpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use weft_api::weft::{GatewayKind, ServiceType};

use super::manifest::merged;
use super::{Images, Manifest, Owner, RenderError};
use crate::contract::{
    self, PROXY_HEALTH_PORT, PROXY_READY_PATH, ROOT_CERT_CONFIG_MAP, TOKEN_AUDIENCE,
};
use crate::labels::{
    self, COMPONENT_LABEL, GATEWAY_LABEL, INJECT_LABEL, ISTIO_REV_LABEL, NAME_LABEL,
};
use crate::resolve::{GatewaySettings, MeshSettings};

/// What a gateway's pods and Service select on (immutable once created).
pub fn selector(gateway: &GatewaySettings) -> BTreeMap<String, String> {
    BTreeMap::from([(GATEWAY_LABEL.to_owned(), gateway.name.clone())])
}

fn kind_name(kind: GatewayKind) -> &'static str {
    match kind {
        GatewayKind::Ingress => "ingress-gateway",
        GatewayKind::Egress => "egress-gateway",
        GatewayKind::Eastwest => "eastwest-gateway",
    }
}

fn service_type(t: ServiceType) -> &'static str {
    match t {
        ServiceType::ClusterIP => "ClusterIP",
        ServiceType::NodePort => "NodePort",
        ServiceType::LoadBalancer => "LoadBalancer",
    }
}

/// Labels on every object of the gateway: the user's first, Weft's on top.
fn object_labels(mesh: &MeshSettings, gateway: &GatewaySettings) -> BTreeMap<String, String> {
    let mut weft = labels::installation_labels(&mesh.installation);
    weft.insert(NAME_LABEL.to_owned(), gateway.name.clone());
    weft.insert(
        COMPONENT_LABEL.to_owned(),
        kind_name(gateway.kind).to_owned(),
    );
    weft.insert(ISTIO_REV_LABEL.to_owned(), mesh.revision.clone());
    weft.extend(selector(gateway));
    merged(&gateway.labels, &weft)
}

/// The gateway's objects.
pub fn render_one(
    mesh: &MeshSettings,
    gateway: &GatewaySettings,
    images: &Images,
    owner: &Owner,
) -> Result<Vec<Manifest>, RenderError> {
    let labels = object_labels(mesh, gateway);
    let meta = ObjectMeta {
        name: Some(gateway.name.clone()),
        namespace: Some(gateway.namespace.clone()),
        labels: Some(labels.clone()),
        owner_references: Some(vec![owner.reference()]),
        ..Default::default()
    };
    let mut pod_labels = labels.clone();
    // The gateway is a proxy itself: never inject a sidecar into it.
    pod_labels.insert(INJECT_LABEL.to_owned(), "false".to_owned());

    let xds_address = contract::xds_address(&mesh.revision, &mesh.namespace);
    let bootstrap = GatewayBootstrap {
        xds_address: &xds_address,
        gateway: &gateway.name,
        namespace: &gateway.namespace,
        trust_domain: &mesh.trust_domain,
        revision: &mesh.revision,
        token_audience: TOKEN_AUDIENCE,
        root_cert_config_map: Some(ROOT_CERT_CONFIG_MAP),
    };
    let mut container_ports: Vec<ContainerPort> = Vec::new();
    for (name, _, target, _) in &gateway.ports {
        if !container_ports.iter().any(|p| p.container_port == *target) {
            container_ports.push(ContainerPort {
                name: Some(name.clone()).filter(|n| n.len() <= 15),
                container_port: *target,
                protocol: Some("TCP".to_owned()),
                ..Default::default()
            });
        }
    }
    if !container_ports
        .iter()
        .any(|p| p.container_port == PROXY_HEALTH_PORT)
    {
        container_ports.push(ContainerPort {
            name: Some("status-port".to_owned()),
            container_port: PROXY_HEALTH_PORT,
            protocol: Some("TCP".to_owned()),
            ..Default::default()
        });
    }
    let container = Container {
        name: "weft-proxy".to_owned(),
        image: Some(images.proxy.clone()),
        image_pull_policy: Some(images.pull_policy.clone()),
        args: Some(
            contract::PROXY_GATEWAY_ARGS
                .iter()
                .map(|a| (*a).to_owned())
                .collect(),
        ),
        env: Some(bootstrap.env()),
        volume_mounts: Some(bootstrap.mounts()),
        ports: Some(container_ports),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some(PROXY_READY_PATH.to_owned()),
                port: IntOrString::Int(PROXY_HEALTH_PORT),
                ..Default::default()
            }),
            period_seconds: Some(2),
            failure_threshold: Some(30),
            ..Default::default()
        }),
        resources: Some(gateway.resources.clone()),
        security_context: Some(gateway_security_context()),
        ..Default::default()
    };

    let service_ports: Vec<ServicePort> = gateway
        .ports
        .iter()
        .map(|(name, port, target, node_port)| ServicePort {
            name: Some(name.clone()),
            port: *port,
            target_port: Some(IntOrString::Int(*target)),
            node_port: node_port.filter(|_| gateway.service_type != ServiceType::ClusterIP),
            protocol: Some("TCP".to_owned()),
            ..Default::default()
        })
        .collect();

    Ok(vec![
        Manifest::new(&ServiceAccount {
            metadata: meta.clone(),
            ..Default::default()
        })?,
        Manifest::new(&Service {
            metadata: meta.clone(),
            spec: Some(ServiceSpec {
                type_: Some(service_type(gateway.service_type).to_owned()),
                selector: Some(selector(gateway)),
                ports: Some(service_ports),
                ..Default::default()
            }),
            ..Default::default()
        })?,
        Manifest::new(&Deployment {
            metadata: meta.clone(),
            spec: Some(DeploymentSpec {
                replicas: Some(gateway.replicas),
                selector: LabelSelector {
                    match_labels: Some(selector(gateway)),
                    ..Default::default()
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(pod_labels),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        service_account_name: Some(gateway.name.clone()),
                        security_context: Some(gateway_pod_security_context()),
                        containers: vec![container],
                        volumes: Some(bootstrap.volumes()),
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            ..Default::default()
        })?,
        Manifest::new(&PodDisruptionBudget {
            metadata: meta,
            spec: Some(PodDisruptionBudgetSpec {
                max_unavailable: Some(IntOrString::Int(1)),
                selector: Some(LabelSelector {
                    match_labels: Some(selector(gateway)),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        })?,
    ])
}
