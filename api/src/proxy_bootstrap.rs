//! What every weft-proxy pod needs to reach weftd, whoever renders the pod:
//! weftd's injector (sidecars), weftd's Gateway API controller and the
//! operator (gateways). The projected service-account token the mesh CA
//! authenticates, the writable in-memory data directory, where they are
//! mounted, and the small `EnvVar` builders the renderers share.

use k8s_openapi::api::core::v1::{
    EmptyDirVolumeSource, EnvVar, EnvVarSource, ObjectFieldSelector, ProjectedVolumeSource,
    ServiceAccountTokenProjection, Volume, VolumeProjection,
};

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
