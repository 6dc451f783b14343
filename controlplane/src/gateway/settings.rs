//! What the gateway controller is configured with: which GatewayClasses are
//! Weft's, and how a gateway's proxy Deployment looks.

use std::collections::BTreeSet;

use crate::inject::settings::ROOT_CERT_VOLUME;

/// Controller name of Weft's own class (`gatewayClassName: weft`).
pub const WEFT_CONTROLLER: &str = "weft.dev/gateway-controller";
/// Controller name of Istio's class; Weft serves it too so Gateway API YAML
/// written for Istio (`gatewayClassName: istio`) works unchanged.
pub const ISTIO_CONTROLLER: &str = "istio.io/gateway-controller";
/// The proxy image the gateway Deployments run.
pub const DEFAULT_PROXY_IMAGE: &str = "weft.local/weft-proxy:dev";
/// The proxy's health port (Istio's convention, see ARCHITECTURE.md).
pub const HEALTH_PORT: i32 = 15021;

/// A GatewayClass Weft serves (and, with [`GatewaySettings::manage_classes`],
/// creates).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassSetting {
    pub name: String,
    pub controller_name: String,
}

/// How the gateway's proxy pod is told it is ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readiness {
    pub port: i32,
    pub path: String,
}

/// The container every gateway Deployment runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyTemplate {
    pub image: String,
    pub image_pull_policy: String,
    pub args: Vec<String>,
    pub readiness: Readiness,
}

impl Default for ProxyTemplate {
    fn default() -> Self {
        Self {
            image: DEFAULT_PROXY_IMAGE.to_owned(),
            image_pull_policy: "IfNotPresent".to_owned(),
            args: vec!["gateway".to_owned()],
            readiness: Readiness {
                port: HEALTH_PORT,
                path: "/healthz/ready".to_owned(),
            },
        }
    }
}

/// Everything the gateway controller needs to know beyond the cluster state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewaySettings {
    /// Weft's classes (mesh config); by default `weft` and `istio`.
    pub classes: Vec<ClassSetting>,
    /// Create the GatewayClass objects of [`Self::classes`] (as Istio does for
    /// `istio`), so a Gateway works without a hand-written class.
    pub manage_classes: bool,
    /// The proxy container of every gateway Deployment.
    pub proxy: ProxyTemplate,
    /// Where the gateway proxies reach weftd (xDS and CA), e.g.
    /// `weftd.weft-system.svc:15012`.
    pub xds_address: String,
    /// SPIFFE trust domain of the mesh (the proxy checks weftd's identity
    /// against it).
    pub trust_domain: String,
    /// Control-plane revision serving these gateways.
    pub revision: String,
    /// Audience of the projected token the mesh CA accepts.
    pub token_audience: String,
    /// ConfigMap (in the gateway's namespace) with the mesh root certificate
    /// under `root-cert.pem`; mounted optionally, so a missing ConfigMap does
    /// not keep the pod from starting (the proxy reports it instead).
    pub root_cert_config_map: Option<String>,
    /// Service type when neither the Gateway's annotation
    /// `networking.istio.io/service-type` nor its `spec.infrastructure`
    /// annotations say otherwise.
    pub default_service_type: String,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            classes: vec![
                ClassSetting {
                    name: "weft".to_owned(),
                    controller_name: WEFT_CONTROLLER.to_owned(),
                },
                ClassSetting {
                    name: "istio".to_owned(),
                    controller_name: ISTIO_CONTROLLER.to_owned(),
                },
            ],
            manage_classes: true,
            proxy: ProxyTemplate::default(),
            xds_address: "weftd.weft-system.svc:15012".to_owned(),
            trust_domain: "cluster.local".to_owned(),
            revision: "default".to_owned(),
            token_audience: "weft-ca".to_owned(),
            root_cert_config_map: Some(ROOT_CERT_VOLUME.to_owned()),
            default_service_type: "LoadBalancer".to_owned(),
        }
    }
}

impl GatewaySettings {
    /// The controller names Weft answers for: a GatewayClass with one of
    /// them is Weft's, and so is every Gateway of that class.
    pub fn controller_names(&self) -> BTreeSet<&str> {
        self.classes
            .iter()
            .map(|c| c.controller_name.as_str())
            .chain([WEFT_CONTROLLER])
            .collect()
    }

    pub fn is_our_controller(&self, controller_name: &str) -> bool {
        self.controller_names().contains(controller_name)
    }
}
