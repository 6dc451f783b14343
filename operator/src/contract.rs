//! What the operator and the other components agree on without sharing
//! code (the operator depends on neither weftd nor weft-proxy): weftd's
//! ports, paths and CA Secret layout, and the proxy's bootstrap contract
//! in gateway mode. The values mirror `controlplane/src/config.rs`,
//! `controlplane/src/inject/settings.rs`, `controlplane/src/gateway/` and
//! `controlplane/src/ca/authority.rs`; the end-to-end tests check them
//! against a running weftd.

/// Plaintext xDS (off in weftd unless `--plaintext-xds-port`).
pub const XDS_PLAINTEXT_PORT: i32 = 15010;
/// xDS and the mesh CA over TLS.
pub const XDS_TLS_PORT: i32 = 15012;
/// Monitoring: `/metrics`, `/ready`, `/debug/*`.
pub const MONITORING_PORT: i32 = 15014;
/// Admission webhooks over TLS (`/inject`, `/validate`).
pub const WEBHOOK_PORT: i32 = 15017;
/// weftd's readiness path on [`MONITORING_PORT`] (200 once its index synced).
pub const READY_PATH: &str = "/ready";
pub use weft_api::injection::{IGNORED_NAMESPACES, INJECT_PATH};
/// weftd's validation webhook path.
pub use weft_api::validator::VALIDATE_PATH;
/// The uid weftd's image runs as.
pub const WEFTD_UID: i64 = 65532;

/// CA Secret keys (Istio's `cacerts` layout), as weftd's `--ca-source secret` reads them.
pub use weft_api::cacerts::{CA_CERT, CA_KEY, ROOT_CERT};
/// Name of the CA Secret in the mesh namespace.
pub const CA_SECRET: &str = "cacerts";
/// The trust-bundle ConfigMap in every namespace (key [`ROOT_CERT`]).
pub const ROOT_CERT_CONFIG_MAP: &str = "weft-ca-root-cert";
/// Audience of the projected token the mesh CA accepts.
pub const TOKEN_AUDIENCE: &str = "weft-ca";

/// The proxy in gateway mode: `weft-proxy gateway`.
pub const PROXY_GATEWAY_ARGS: [&str; 1] = ["gateway"];
/// The proxy's health port and readiness path.
pub const PROXY_HEALTH_PORT: i32 = 15021;
pub const PROXY_READY_PATH: &str = "/healthz/ready";
pub use weft_api::proxy_bootstrap::PROXY_UID;

/// `weftd-<revision>`: the Deployment, Service and ServiceAccount of a revision.
pub fn weftd_name(revision: &str) -> String {
    format!("weftd-{revision}")
}

/// `weftd-<rev>.<ns>.svc:15012`, where proxies reach the control plane.
pub fn xds_address(revision: &str, namespace: &str) -> String {
    format!("{}.{namespace}.svc:{XDS_TLS_PORT}", weftd_name(revision))
}

/// The DNS name weftd's serving certificate carries for the webhook Service.
pub fn webhook_host(revision: &str, namespace: &str) -> String {
    format!("{}.{namespace}.svc", weftd_name(revision))
}
