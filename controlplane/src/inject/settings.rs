//! What an injected sidecar is made of: the settings this weftd revision
//! injects with (from the MeshRevision / flags), independent of any pod.

use std::collections::BTreeMap;

/// Port the sidecar captures outbound traffic on.
pub const OUTBOUND_PORT: u16 = 15001;
/// Port the sidecar captures inbound traffic on.
pub const INBOUND_PORT: u16 = 15006;
/// HBONE tunnel port (never captured).
pub const TUNNEL_PORT: u16 = 15008;
/// Merged metrics and application-probe port (`/app-health/...`).
pub const STATUS_PORT: u16 = 15020;
/// Health port of the proxy (`/healthz/ready`).
pub const HEALTH_PORT: u16 = 15021;
/// Proxy's own metrics.
pub const PROXY_METRICS_PORT: u16 = 15090;
pub use weft_api::proxy_bootstrap::PROXY_UID;

/// Name of the sidecar container (a native sidecar: an init container with
/// `restartPolicy: Always`).
pub const PROXY_CONTAINER: &str = "weft-proxy";
/// Name of the init container that programs iptables.
pub const INIT_CONTAINER: &str = "weft-init";
pub use weft_api::proxy_bootstrap::{
    DATA_MOUNT_PATH, DATA_VOLUME, ROOT_CERT_MOUNT_PATH, ROOT_CERT_VOLUME, TOKEN_EXPIRATION_SECONDS,
    TOKEN_FILE, TOKEN_MOUNT_PATH, TOKEN_VOLUME,
};
/// Key (file) of the root certificate in the ConfigMap.
pub const ROOT_CERT_KEY: &str = "root-cert.pem";

/// How this weftd injects sidecars. Built by the caller (flags,
/// MeshRevision); the tags list changes when a `MeshRevisionTag` moves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectSettings {
    /// This weftd's revision, e.g. `1-2` (or `default`).
    pub revision: String,
    /// Revision tags (e.g. `default`, `stable`) that currently resolve to
    /// [`Self::revision`]. `default` also serves `istio-injection=enabled`.
    pub tags: Vec<String>,
    /// Image of weft-proxy, e.g. `weft.local/weft-proxy:dev`.
    pub proxy_image: String,
    /// `imagePullPolicy` of the injected containers (None: Kubernetes' default).
    pub image_pull_policy: Option<String>,
    /// Resource requests of the proxy (e.g. `cpu: 100m`, `memory: 128Mi`).
    pub requests: BTreeMap<String, String>,
    /// Resource limits of the proxy.
    pub limits: BTreeMap<String, String>,
    /// Worker threads of the proxy (0: one per CPU it may use).
    pub concurrency: u32,
    /// Start the application only once the proxy is ready (a startup probe
    /// on the native sidecar makes the kubelet wait for it).
    pub hold_application_until_proxy_starts: bool,
    /// Proxy log level (`error`, `warn`, `info`, `debug`, `trace`).
    pub log_level: String,
    /// Address of the control plane, `weftd-<rev>.<ns>.svc:15012`.
    pub xds_address: String,
    /// SPIFFE trust domain, e.g. `cluster.local`.
    pub trust_domain: String,
    /// Audience of the projected token the CA accepts.
    pub token_audience: String,
    /// ConfigMap (in the pod's namespace) holding the mesh root certificate
    /// under [`ROOT_CERT_KEY`]; None to not mount one.
    pub root_cert_config_map: Option<String>,
}

impl InjectSettings {
    /// Settings with Weft's defaults for `revision`, served from namespace
    /// `control_plane_namespace`.
    pub fn new(revision: &str, control_plane_namespace: &str, proxy_image: &str) -> Self {
        Self {
            revision: revision.to_owned(),
            tags: Vec::new(),
            proxy_image: proxy_image.to_owned(),
            image_pull_policy: None,
            requests: BTreeMap::from([
                ("cpu".to_owned(), "100m".to_owned()),
                ("memory".to_owned(), "128Mi".to_owned()),
            ]),
            limits: BTreeMap::from([
                ("cpu".to_owned(), "2".to_owned()),
                ("memory".to_owned(), "1Gi".to_owned()),
            ]),
            concurrency: 2,
            hold_application_until_proxy_starts: true,
            log_level: "info".to_owned(),
            xds_address: xds_address(revision, control_plane_namespace),
            trust_domain: "cluster.local".to_owned(),
            token_audience: "weft-ca".to_owned(),
            root_cert_config_map: Some(ROOT_CERT_VOLUME.to_owned()),
        }
    }

    /// Whether revision or tag `name` designates this weftd.
    pub fn answers_to(&self, name: &str) -> bool {
        name == self.revision || self.tags.iter().any(|t| t == name)
    }

    /// Whether this weftd is the mesh's default revision (serves
    /// `istio-injection=enabled` and pods opting in without a revision).
    pub fn is_default(&self) -> bool {
        self.answers_to(DEFAULT_TAG)
    }
}

/// The tag that `istio-injection=enabled` resolves through.
pub const DEFAULT_TAG: &str = "default";

/// `weftd-<rev>.<ns>.svc:15012`, where proxies reach the control plane.
pub fn xds_address(revision: &str, namespace: &str) -> String {
    format!("weftd-{revision}.{namespace}.svc:15012")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_and_tags_designate_this_weftd() {
        let mut s = InjectSettings::new("1-2", "weft-system", "img");
        assert_eq!(s.xds_address, "weftd-1-2.weft-system.svc:15012");
        assert!(s.answers_to("1-2"));
        assert!(!s.answers_to("stable"));
        assert!(!s.is_default());
        s.tags = vec!["stable".into(), "default".into()];
        assert!(s.answers_to("stable"));
        assert!(s.is_default());
        assert!(InjectSettings::new("default", "ns", "img").is_default());
    }
}
