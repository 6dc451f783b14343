//! weftd on the host side of a local cluster's veth, for the cluster
//! tests (`cluster_mesh`, `cluster_gateway`): weftd assembled from its
//! parts (index watches → `IndexSource` → delta xDS, the CA with the real
//! TokenReview, the injection webhook, optionally the Gateway API
//! controller), exposed to pods as `weftd-<rev>.<ns>.svc` through a
//! selector-less Service, and the webhook registration scoped to the
//! run's namespace.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Pod, Service};
use kube::api::{DeleteParams, PostParams};
use serde_json::json;
use weft_e2e::{Cluster, TestNamespace};
use weftd::inject::InjectSettings;

pub const TIMEOUT: Duration = Duration::from_secs(120);

pub fn proxy_image() -> String {
    std::env::var("WEFT_WEFT_PROXY_IMAGE").unwrap_or_else(|_| "weft.local/weft-proxy:dev".into())
}

/// The host side of the cluster's veth: the node is 10.100.<n>.2, the host .1.
pub async fn host_ip(cluster: &Cluster) -> IpAddr {
    let node: std::net::Ipv4Addr = cluster
        .node_ip()
        .await
        .expect("node IP")
        .parse()
        .expect("IPv4 node IP");
    let [a, b, c, _] = node.octets();
    IpAddr::from([a, b, c, 1])
}

pub fn object<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("valid object")
}

/// weftd assembled from its parts (index watches → translation → xDS, and
/// the CA with the real TokenReview) on the host side of the veth.
pub struct MeshWeftd {
    pub revision: String,
    pub grpc: SocketAddr,
    pub webhook: SocketAddr,
    pub authority: std::sync::Arc<weftd::ca::Authority>,
    pub registry: weftd::xds::ProxyRegistry,
    namespace: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    watches: Vec<tokio::task::JoinHandle<()>>,
}

impl MeshWeftd {
    pub async fn start(ns: &TestNamespace, host: IpAddr, revision: &str) -> Self {
        use std::sync::{Arc, Mutex};
        use weftd::ca::{Authority, CaMetrics, CaPolicy, CertificateServer, KubeTokenReviewer};
        use weftd::tls::{self, ServingCert};
        use weftd::translate::MeshSettings;
        use weftd::xds::{Authentication, ProxyRegistry, XdsConfig, XdsServer};

        let client = ns.client();
        let authority = Arc::new(
            Authority::generate("cluster.local", std::time::SystemTime::now()).expect("CA"),
        );
        let index = Arc::new(Mutex::new(weftd::index::Index::new()));
        let snapshots = index.lock().expect("index").subscribe();
        let watches = weftd::index::watch::spawn(
            client.clone(),
            index.clone(),
            kube::runtime::events::Reporter {
                controller: "weftd-e2e".into(),
                instance: None,
            },
        );
        let source = Arc::new(weftd::xds::IndexSource::new(
            snapshots,
            MeshSettings {
                trust_bundle_pem: authority.trust_bundle_pem(),
                ..MeshSettings::default()
            },
        ));
        let registry = ProxyRegistry::default();
        let xds = XdsServer::new(
            source,
            XdsConfig::default(),
            registry.clone(),
            weftd::metrics::Metrics::new(),
        );
        let names = tls::serving_names(revision, ns.name(), "cluster.local");
        let serving = Arc::new(ServingCert::issue(&authority, &names).expect("serving cert"));
        let config = tls::server_config(authority.roots_der(), serving.clone()).expect("tls");
        let ca = CertificateServer::new(
            authority.clone(),
            KubeTokenReviewer::new(client.clone()),
            CaPolicy {
                trust_domain: "cluster.local".into(),
                audience: "weft-ca".into(),
                default_ttl: Duration::from_secs(24 * 3600),
                max_ttl: Duration::from_secs(24 * 3600),
            },
            Arc::new(CaMetrics::default()),
        )
        .into_service();
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(host, 0))
            .await
            .expect("bind on the host side of the veth");
        let grpc = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(ca)
                .add_service(xds.service(Authentication::ClientCertificate))
                .serve_with_incoming_shutdown(tls::incoming(listener, config), async {
                    let _ = stopped.await;
                }),
        );

        // The injection webhook, with the settings weftd injects with;
        // `default` is among its tags so `istio-injection=enabled` selects it.
        let mut settings = InjectSettings::new(revision, ns.name(), &proxy_image());
        settings.tags = vec!["default".into()];
        settings.image_pull_policy = Some("Never".into());
        let (settings_tx, settings_rx) = tokio::sync::watch::channel(settings);
        let webhooks = weftd::webhook::WebhookServer::new(
            settings_rx,
            Arc::new(client),
            tls::webhook_server_config(serving).expect("webhook tls"),
        );
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(host, 0))
            .await
            .expect("bind the webhook");
        let webhook = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _keep = settings_tx;
            let _ = webhooks.serve(listener, std::future::pending::<()>()).await;
        });
        Self {
            revision: revision.to_owned(),
            namespace: ns.name().to_owned(),
            grpc,
            webhook,
            authority,
            registry,
            stop: Some(stop),
            watches,
        }
    }

    /// Runs weftd's Gateway API controller as weftd wires it, provisioning
    /// gateway Deployments that run the real weft-proxy image and reach this
    /// weftd at `weftd-<rev>.<ns>.svc:15012`; ClusterIP Services (the
    /// cluster has no load balancer). Stopped when `self` is dropped.
    pub fn start_gateway_controller(&mut self, client: kube::Client) {
        use weftd::gateway::{GatewaySettings, ProxyTemplate};
        let settings = GatewaySettings {
            proxy: ProxyTemplate {
                image: proxy_image(),
                image_pull_policy: "Never".into(),
                ..ProxyTemplate::default()
            },
            xds_address: weftd::inject::settings::xds_address(&self.revision, &self.namespace),
            revision: self.revision.clone(),
            default_service_type: "ClusterIP".into(),
            ..GatewaySettings::default()
        };
        self.watches.push(tokio::spawn(async move {
            if let Err(error) = weftd::gateway::run(client, settings).await {
                panic!("gateway controller ended: {error}");
            }
        }));
    }
}

impl Drop for MeshWeftd {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        for w in &self.watches {
            w.abort();
        }
    }
}

/// The Service + Endpoints that make `weftd-<rev>.<ns>.svc` reach weftd
/// on the host (15012: xDS + CA, 15017: webhooks), and the mesh root
/// ConfigMap the injector mounts.
pub async fn expose_weftd(ns: &TestNamespace, host: IpAddr, weftd: &MeshWeftd, root_pem: String) {
    let pp = PostParams::default();
    let name = format!("weftd-{}", weftd.revision);
    ns.api::<Service>()
        .create(
            &pp,
            &object(json!({
                "metadata": {"name": name},
                "spec": {"ports": [
                    {"name": "grpc-xds-tls", "port": 15012, "targetPort": weftd.grpc.port()},
                    {"name": "https-webhook", "port": 15017, "targetPort": weftd.webhook.port()}
                ]}
            })),
        )
        .await
        .expect("Service");
    ns.api::<Endpoints>()
        .create(
            &pp,
            &object(json!({
                "metadata": {"name": name},
                "subsets": [{"addresses": [{"ip": host.to_string()}],
                             "ports": [
                                {"name": "grpc-xds-tls", "port": weftd.grpc.port()},
                                {"name": "https-webhook", "port": weftd.webhook.port()}
                             ]}]
            })),
        )
        .await
        .expect("Endpoints");
    ns.api::<ConfigMap>()
        .create(
            &pp,
            &object(json!({
                "metadata": {"name": "weft-ca-root-cert"},
                "data": {"root-cert.pem": root_pem}
            })),
        )
        .await
        .expect("root ConfigMap");
}

/// `pod` as weftd's injector rewrites it.
pub fn inject(pod: Pod, ns: &TestNamespace) -> Pod {
    let mut settings = InjectSettings::new("default", ns.name(), &proxy_image());
    settings.image_pull_policy = Some("Never".into());
    weftd::inject::inject(&pod, &settings)
        .expect("injected")
        .pod
}

/// Label scoping this run's webhook to this run's namespace, so other
/// namespaces of a shared cluster never reach it.
pub const RUN_LABEL: &str = "weft.dev/e2e-proxy-run";

/// Deletes the webhook registration when the test ends (also on failure).
pub struct WebhookGuard {
    api: kube::Api<k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration>,
    name: String,
}

impl WebhookGuard {
    /// Deletes the registration and waits for it.
    pub async fn remove(mut self) {
        let name = std::mem::take(&mut self.name);
        self.api
            .delete(&name, &DeleteParams::default())
            .await
            .expect("delete the MutatingWebhookConfiguration");
    }
}

/// Best effort when a test fails before [`WebhookGuard::remove`]; the
/// registration only selects this run's (deleted) namespace anyway.
impl Drop for WebhookGuard {
    fn drop(&mut self) {
        let (api, name) = (self.api.clone(), self.name.clone());
        if name.is_empty() {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = api.delete(&name, &DeleteParams::default()).await;
            });
        }
    }
}

/// weftd's injector registration as weftd renders it (revision + the
/// `default` tag, so `istio-injection=enabled` selects it), scoped to this
/// run's namespace.
pub async fn register_injector(ns: &TestNamespace, weftd: &MeshWeftd) -> WebhookGuard {
    use weftd::webhook::config::{Endpoint, mutating_webhook_configuration};
    let endpoint = Endpoint::Service {
        namespace: ns.name().to_owned(),
        name: format!("weftd-{}", weftd.revision),
    };
    let mut config = mutating_webhook_configuration(
        &weftd.revision,
        &weftd.revision,
        true,
        &endpoint,
        weftd.authority.trust_bundle_pem().as_bytes(),
    );
    for w in config.webhooks.iter_mut().flatten() {
        w.namespace_selector
            .get_or_insert_with(Default::default)
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(RUN_LABEL.to_owned(), ns.name().to_owned());
    }
    let api = kube::Api::all(ns.client());
    let created = api
        .create(&PostParams::default(), &config)
        .await
        .expect("MutatingWebhookConfiguration");
    WebhookGuard {
        api,
        name: created.metadata.name.unwrap_or_default(),
    }
}

/// Adds `labels` (and the run label) to the test namespace.
pub async fn label_namespace(ns: &TestNamespace, labels: serde_json::Value) {
    let mut labels = labels;
    if let Some(map) = labels.as_object_mut() {
        map.insert(RUN_LABEL.to_owned(), json!(ns.name()));
    }
    kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(ns.client())
        .patch(
            ns.name(),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"labels": labels}})),
        )
        .await
        .expect("label the namespace");
}

/// Names of a pod's init containers (the injected ones come first).
pub fn init_names(pod: &Pod) -> Vec<String> {
    pod.spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .map(|c| c.name.clone())
        .collect()
}

/// GET `path` on `addr` (HTTP/1.0, from the host).
pub async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}

/// Weft's CRDs (PeerAuthentication and the rest the index watches).
pub async fn install_crds(cluster: &Cluster) {
    let crds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/crd");
    let kubectl = cluster.kubectl();
    kubectl
        .run(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=weft-e2e",
            "-k",
            &crds.to_string_lossy(),
        ])
        .await
        .expect("CRDs applied");
    kubectl
        .run(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd",
            "-l",
            "app.kubernetes.io/part-of=weft",
        ])
        .await
        .expect("CRDs established");
}
