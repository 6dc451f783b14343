//! What every weft-proxy pod needs to reach weftd, whoever renders the pod:
//! weftd's injector (sidecars), weftd's Gateway API controller and the
//! operator (gateways). The projected service-account token the mesh CA
//! authenticates, the writable in-memory data directory, where they are
//! mounted, and the small `EnvVar` builders the renderers share.

use k8s_openapi::api::core::v1::{
    Capabilities, EmptyDirVolumeSource, EnvVar, EnvVarSource, ObjectFieldSelector,
    ProjectedVolumeSource, SecurityContext, ServiceAccountTokenProjection, Volume,
    VolumeProjection,
};

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
