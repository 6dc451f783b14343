//! What every weft-proxy pod needs to reach weftd, whoever renders the pod:
//! weftd's injector (sidecars), weftd's Gateway API controller and the
//! operator (gateways). The projected service-account token the mesh CA
//! authenticates, the writable in-memory data directory, where they are
//! mounted, and the small `EnvVar` builders the renderers share.

use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, EmptyDirVolumeSource, EnvVar, EnvVarSource, KeyToPath,
    ObjectFieldSelector, PodSecurityContext, ProjectedVolumeSource, SecurityContext,
    ServiceAccountTokenProjection, Sysctl, Volume, VolumeMount, VolumeProjection,
};

use crate::cacerts::ROOT_CERT;

/// The uid and gid the proxy runs as (Istio's convention, kept for
/// NetworkPolicies and PodSecurity rules written for Istio); the sidecar's
/// own traffic is never captured by it.
pub const PROXY_UID: i64 = 1337;

/// Volume holding the projected service-account token for the mesh CA.
pub const TOKEN_VOLUME: &str = "weft-token";
/// Where the token volume is mounted in the proxy.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/tokens";
/// File name of the token inside [`TOKEN_MOUNT_PATH`].
pub const TOKEN_FILE: &str = "weft-token";
/// Lifetime requested for the projected token (kubelet rotates it).
pub const TOKEN_EXPIRATION_SECONDS: i64 = 43_200;
/// Volume holding the mesh root certificate (from a ConfigMap).
pub const ROOT_CERT_VOLUME: &str = "weft-ca-root-cert";
/// Where the root certificate volume is mounted in the proxy.
pub const ROOT_CERT_MOUNT_PATH: &str = "/var/run/secrets/weft";
/// Scratch volume for the proxy (its root filesystem is read-only).
pub const DATA_VOLUME: &str = "weft-data";
/// Where the scratch volume is mounted.
pub const DATA_MOUNT_PATH: &str = "/var/lib/weft";

/// The proxy container's security context in gateway mode: that uid, no
/// capabilities, no privilege escalation, read-only root filesystem.
pub fn gateway_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            ..Default::default()
        }),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        run_as_user: Some(PROXY_UID),
        run_as_group: Some(PROXY_UID),
        ..Default::default()
    }
}

/// The token volume (audience `audience`) and the in-memory data volume.
pub fn bootstrap_volumes(audience: &str) -> Vec<Volume> {
    vec![
        Volume {
            name: TOKEN_VOLUME.to_owned(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(vec![VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        audience: Some(audience.to_owned()),
                        expiration_seconds: Some(TOKEN_EXPIRATION_SECONDS),
                        path: TOKEN_FILE.to_owned(),
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: DATA_VOLUME.to_owned(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        },
    ]
}

/// What a gateway proxy is told about weftd and itself (the operator's
/// MeshInstallation gateways and weftd's Gateway API gateways alike).
#[derive(Clone, Copy, Debug)]
pub struct GatewayBootstrap<'a> {
    /// weftd's xDS and CA address (`host:port`).
    pub xds_address: &'a str,
    pub gateway: &'a str,
    pub namespace: &'a str,
    pub trust_domain: &'a str,
    pub revision: &'a str,
    /// Audience of the projected token the mesh CA checks.
    pub token_audience: &'a str,
    /// The ConfigMap holding the mesh root (key `root-cert.pem`), mounted
    /// when given.
    pub root_cert_config_map: Option<&'a str>,
}

impl GatewayBootstrap<'_> {
    /// The proxy container's environment.
    pub fn env(&self) -> Vec<EnvVar> {
        let mut env = vec![
            value_env("WEFT_XDS_ADDRESS", self.xds_address),
            value_env("WEFT_GATEWAY_NAME", self.gateway),
            value_env("WEFT_GATEWAY_NAMESPACE", self.namespace),
            value_env("WEFT_TRUST_DOMAIN", self.trust_domain),
            value_env("WEFT_REVISION", self.revision),
            value_env(
                "WEFT_TOKEN_PATH",
                format!("{TOKEN_MOUNT_PATH}/{TOKEN_FILE}"),
            ),
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
            field_env("INSTANCE_IP", "status.podIP"),
            field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"),
            field_env("NODE_NAME", "spec.nodeName"),
        ];
        if self.root_cert_config_map.is_some() {
            env.push(value_env(
                "WEFT_ROOT_CERT_PATH",
                format!("{ROOT_CERT_MOUNT_PATH}/{ROOT_CERT}"),
            ));
        }
        env
    }

    /// The proxy container's mounts: token, data directory, root.
    pub fn mounts(&self) -> Vec<VolumeMount> {
        let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
            name: name.to_owned(),
            mount_path: path.to_owned(),
            read_only: read_only.then_some(true),
            ..Default::default()
        };
        let mut mounts = vec![
            mount(TOKEN_VOLUME, TOKEN_MOUNT_PATH, true),
            mount(DATA_VOLUME, DATA_MOUNT_PATH, false),
        ];
        if self.root_cert_config_map.is_some() {
            mounts.push(mount(ROOT_CERT_VOLUME, ROOT_CERT_MOUNT_PATH, true));
        }
        mounts
    }

    /// The pod's volumes for [`Self::mounts`]. The root's ConfigMap is
    /// optional: the pod starts even before the bundle reaches its
    /// namespace.
    pub fn volumes(&self) -> Vec<Volume> {
        let mut volumes = bootstrap_volumes(self.token_audience);
        if let Some(config_map) = self.root_cert_config_map {
            volumes.push(root_cert_volume(config_map, true));
        }
        volumes
    }
}

/// The volume of the mesh root (`root-cert.pem` of the ConfigMap
/// `config_map`); `optional`: the pod starts without it.
pub fn root_cert_volume(config_map: &str, optional: bool) -> Volume {
    Volume {
        name: ROOT_CERT_VOLUME.to_owned(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map.to_owned(),
            items: Some(vec![KeyToPath {
                key: ROOT_CERT.to_owned(),
                path: ROOT_CERT.to_owned(),
                ..Default::default()
            }]),
            optional: optional.then_some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A gateway pod's security context: listeners on ports below 1024 (80,
/// 443) without root or NET_BIND_SERVICE, through a namespaced, safe
/// sysctl.
pub fn gateway_pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        sysctls: Some(vec![Sysctl {
            name: "net.ipv4.ip_unprivileged_port_start".to_owned(),
            value: "0".to_owned(),
        }]),
        ..Default::default()
    }
}

/// An environment variable with a literal value.
pub fn value_env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        ..Default::default()
    }
}

/// An environment variable from a field of the pod (`metadata.name`, …).
pub fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}
