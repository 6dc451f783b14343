//! weft-proxy's control path in a real cluster: weftd runs in this test
//! process on the host side of the cluster's veth (10.100.<n>.1) behind a
//! selector-less Service, a pod is injected by weftd's own injector
//! (`weftd::inject::inject`, the webhook's code), and the test checks that
//!
//! - `weft-proxy init` programmed the pod's iptables (the init container,
//!   running the from-scratch image's iptables bundle as root with
//!   NET_ADMIN/NET_RAW and a read-only root filesystem, exited 0);
//! - the sidecar got its workload certificate from weftd's CA (CSR +
//!   projected token, reviewed with the real TokenReview API);
//! - it opened a delta ADS stream over mTLS and weftd identified it by its
//!   certificate as `spiffe://cluster.local/ns/<ns>/sa/echo`, with the
//!   pod's node id, and ACKed what weftd sent.
//!
//! `two_injected_pods_talk_over_mtls` then runs the mesh end to end:
//! weftd assembled from its parts (index watches → `IndexSource` →
//! delta xDS, as `weftd::run` wires them), two injected
//! echo workloads with different service accounts: the callee sees the
//! caller's SPIFFE ID (XFCC), `istio_requests_total` on 15090 carries
//! both principals, `/certs` (admin, loopback: port-forward) shows the
//! callee's certificate, a pod outside the mesh gets through under
//! PERMISSIVE and is refused once a STRICT PeerAuthentication applies,
//! while mesh traffic still passes. Pods are injected by weftd's real
//! webhook: the registration weftd renders (scoped to the run's namespace)
//! calls weftd's webhook server through the same Service, and the
//! namespace is labelled `istio-injection=enabled`; the pods outside the
//! mesh opt out with `sidecar.istio.io/inject: "false"`.
//!
//! Inbound traffic reaches the application from 127.0.0.6 (weftd's
//! inbound clusters carry that `upstream_bind_config`, Istio's inbound
//! passthrough source, which the `WEFT_OUTPUT` chain leaves alone):
//! without it a connection from the proxy's uid to its own pod IP over
//! `lo` would be captured again.
//!
//! `make cluster-up CLUSTER=c && make images CLUSTERS=c` (weft-proxy and echo), then
//! `WEFT_E2E_CLUSTER_A=c cargo test -p weft-proxy --test cluster_mesh -- --ignored`

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Pod, Service, ServiceAccount};
use kube::api::{DeleteParams, PostParams};
use serde_json::json;
use weft_e2e::wait::poll_until;
use weft_e2e::{Cluster, TestNamespace};
use weftd::config::{CaSource, Config};
use weftd::inject::InjectSettings;

const TIMEOUT: Duration = Duration::from_secs(120);

fn proxy_image() -> String {
    std::env::var("WEFT_WEFT_PROXY_IMAGE").unwrap_or_else(|_| "weft.local/weft-proxy:dev".into())
}

/// The host side of the cluster's veth: the node is 10.100.<n>.2, the host .1.
async fn host_ip(cluster: &Cluster) -> IpAddr {
    let node: std::net::Ipv4Addr = cluster
        .node_ip()
        .await
        .expect("node IP")
        .parse()
        .expect("IPv4 node IP");
    let [a, b, c, _] = node.octets();
    IpAddr::from([a, b, c, 1])
}

fn object<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("valid object")
}

#[tokio::test]
#[ignore = "needs a local cluster (WEFT_E2E_CLUSTER_A) with the weft-proxy and echo images"]
async fn injected_pod_gets_capture_certificate_and_xds() {
    let cluster = Cluster::a().await.expect("cluster");
    let ns = TestNamespace::create(&cluster, "proxy-ctl")
        .await
        .expect("namespace");
    let host = host_ip(&cluster).await;

    // weftd on the host, reachable from pods as weftd-default.<ns>.svc.
    let config = Config {
        namespace: ns.name().to_owned(),
        kubeconfig: Some(cluster.kubeconfig().to_owned()),
        ca_source: CaSource::Generated,
        listen_address: host,
        gateway_controller: false,
        ..<Config as clap::Parser>::try_parse_from(["weftd"]).expect("defaults")
    };
    let running = weftd::run::start(&config).await.expect("weftd starts");
    let grpc: SocketAddr = running.grpc_tls_addr;

    let client = ns.client();
    let pp = PostParams::default();
    ns.api::<Service>()
        .create(
            &pp,
            &object(json!({
                "metadata": {"name": "weftd-default"},
                "spec": {"ports": [{"name": "grpc-xds-tls", "port": 15012, "targetPort": grpc.port()}]}
            })),
        )
        .await
        .expect("Service");
    ns.api::<Endpoints>()
        .create(
            &pp,
            &object(json!({
                "metadata": {"name": "weftd-default"},
                "subsets": [{"addresses": [{"ip": host.to_string()}],
                             "ports": [{"name": "grpc-xds-tls", "port": grpc.port()}]}]
            })),
        )
        .await
        .expect("Endpoints");
    ns.api::<ConfigMap>()
        .create(
            &pp,
            &object(json!({
                "metadata": {"name": "weft-ca-root-cert"},
                "data": {"root-cert.pem": running.authority.trust_bundle_pem()}
            })),
        )
        .await
        .expect("root ConfigMap");
    ns.api::<ServiceAccount>()
        .create(&pp, &object(json!({"metadata": {"name": "echo"}})))
        .await
        .expect("ServiceAccount");

    // The pod as weftd's injector rewrites it.
    let pod: Pod = object(json!({
        "metadata": {"name": "echo-meshed", "labels": {"app": "echo"}},
        "spec": {
            "serviceAccountName": "echo",
            "containers": [{
                "name": "app",
                "image": weft_e2e::echo::image(),
                "imagePullPolicy": "Never",
                "ports": [{"name": "http", "containerPort": 8080}]
            }]
        }
    }));
    let injected = inject(pod, &ns);
    let pods = ns.api::<Pod>();
    pods.create(&pp, &injected).await.expect("pod");

    // 1. init: the capture container ran to completion.
    let init = poll_until(
        "weft-init exits",
        TIMEOUT,
        Duration::from_millis(500),
        || {
            let pods = pods.clone();
            async move {
                let pod = pods.get("echo-meshed").await?;
                let state = pod
                    .status
                    .and_then(|s| s.init_container_statuses)
                    .and_then(|cs| cs.into_iter().find(|c| c.name == "weft-init"))
                    .and_then(|c| c.state)
                    .and_then(|s| s.terminated);
                Ok::<_, kube::Error>(state)
            }
        },
    )
    .await
    .expect("weft-init terminated");
    if init.exit_code != 0 {
        let logs = ns
            .kubectl()
            .logs(ns.name(), "echo-meshed", Some("weft-init"))
            .await
            .unwrap_or_default();
        panic!("weft-init failed ({}): {logs}", init.exit_code);
    }

    // 2 + 3. certificate, then the xDS stream identified by it.
    let want = format!("spiffe://cluster.local/ns/{}/sa/echo", ns.name());
    let registry = running.registry.clone();
    let proxy = poll_until(
        "weftd sees the proxy's stream",
        TIMEOUT,
        Duration::from_millis(500),
        || {
            let (registry, want) = (registry.clone(), want.clone());
            async move {
                Ok::<_, std::convert::Infallible>(
                    registry.proxies().into_iter().find(|p| p.identity == want),
                )
            }
        },
    )
    .await;
    let proxy = match proxy {
        Ok(p) => p,
        Err(e) => {
            let logs = ns
                .kubectl()
                .logs(ns.name(), "echo-meshed", Some("weft-proxy"))
                .await
                .unwrap_or_default();
            panic!("{e}\nweft-proxy logs:\n{logs}");
        }
    };
    assert_eq!(proxy.protocol, "delta");
    assert!(
        proxy.node_id.starts_with("sidecar~")
            && proxy
                .node_id
                .contains(&format!("~echo-meshed.{}~", ns.name())),
        "{}",
        proxy.node_id
    );
    assert!(running.ca_metrics.snapshot().signed >= 1);

    pods.delete("echo-meshed", &DeleteParams::default())
        .await
        .ok();
    drop(client);
    running.shutdown().await.ok();
    ns.cleanup().await.expect("cleanup");
}

/// weftd assembled from its parts (index watches → translation → xDS, and
/// the CA with the real TokenReview) on the host side of the veth.
struct MeshWeftd {
    revision: String,
    grpc: SocketAddr,
    webhook: SocketAddr,
    authority: std::sync::Arc<weftd::ca::Authority>,
    registry: weftd::xds::ProxyRegistry,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    watches: Vec<tokio::task::JoinHandle<()>>,
}

impl MeshWeftd {
    async fn start(ns: &TestNamespace, host: IpAddr, revision: &str) -> Self {
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
            grpc,
            webhook,
            authority,
            registry,
            stop: Some(stop),
            watches,
        }
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
async fn expose_weftd(ns: &TestNamespace, host: IpAddr, weftd: &MeshWeftd, root_pem: String) {
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
fn inject(pod: Pod, ns: &TestNamespace) -> Pod {
    let mut settings = InjectSettings::new("default", ns.name(), &proxy_image());
    settings.image_pull_policy = Some("Never".into());
    weftd::inject::inject(&pod, &settings)
        .expect("injected")
        .pod
}

/// Label scoping this run's webhook to this run's namespace, so other
/// namespaces of a shared cluster never reach it.
const RUN_LABEL: &str = "weft.dev/e2e-proxy-run";

/// Deletes the webhook registration when the test ends (also on failure).
struct WebhookGuard {
    api: kube::Api<k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration>,
    name: String,
}

impl WebhookGuard {
    /// Deletes the registration and waits for it.
    async fn remove(mut self) {
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
async fn register_injector(ns: &TestNamespace, weftd: &MeshWeftd) -> WebhookGuard {
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
async fn label_namespace(ns: &TestNamespace, labels: serde_json::Value) {
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
fn init_names(pod: &Pod) -> Vec<String> {
    pod.spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .map(|c| c.name.clone())
        .collect()
}

/// GET `path` on `addr` (HTTP/1.0, from the host).
async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}

#[tokio::test]
#[ignore = "needs a local cluster (WEFT_E2E_CLUSTER_A) with the weft-proxy and echo images and Weft's CRDs"]
async fn two_injected_pods_talk_over_mtls() {
    let cluster = Cluster::a().await.expect("cluster");
    let ns = TestNamespace::create(&cluster, "proxy-mesh")
        .await
        .expect("namespace");
    let host = host_ip(&cluster).await;
    install_crds(&cluster).await;
    let revision = format!("pm-{}", ns.name().rsplit('-').next().unwrap_or("x"));
    let weftd = MeshWeftd::start(&ns, host, &revision).await;
    expose_weftd(&ns, host, &weftd, weftd.authority.trust_bundle_pem()).await;
    let webhook = register_injector(&ns, &weftd).await;
    label_namespace(&ns, json!({"istio-injection": "enabled"})).await;

    // The callee: an injected echo Deployment; Available only once its
    // sidecar is ready (certificate + listeners from weftd).
    ns.api::<ServiceAccount>()
        .create(
            &PostParams::default(),
            &object(json!({"metadata": {"name": "echo-b"}})),
        )
        .await
        .expect("ServiceAccount");
    let mut callee = weft_e2e::echo::deployment("echo-b", "v1", 1);
    if let Some(spec) = callee.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
        spec.service_account_name = Some("echo-b".into());
    }
    if let Err(e) =
        weft_e2e::echo::deploy_objects(&ns, &callee, &weft_e2e::echo::service("echo-b")).await
    {
        let pods = ns
            .kubectl()
            .run(&["get", "pods", "-n", ns.name(), "-o", "wide"])
            .await
            .unwrap_or_default();
        let logs = ns
            .kubectl()
            .run(&[
                "logs",
                "-n",
                ns.name(),
                "-l",
                "app=echo-b",
                "-c",
                "weft-proxy",
                "--tail=40",
            ])
            .await
            .unwrap_or_default();
        panic!(
            "{e}\n{pods}\nweft-proxy logs:\n{logs}\nweftd proxies: {:#?}",
            weftd.registry.proxies()
        );
    }

    // The caller: a one-shot echo client, injected by the webhook.
    let url = format!("http://echo-b.{}.svc.cluster.local:8080/", ns.name());
    let caller = weft_e2e::pods::one_shot_pod(
        "caller",
        &weft_e2e::echo::image(),
        &["client", "--url", &url],
    );
    let run = weft_e2e::pods::run_pod(&ns, caller, TIMEOUT)
        .await
        .expect("caller ran");
    let reports = weft_e2e::echo::http_reports(&run);
    let Some(report) = reports.first() else {
        let callee_logs = ns
            .kubectl()
            .run(&[
                "logs",
                "-n",
                ns.name(),
                "-l",
                "app=echo-b",
                "-c",
                "weft-proxy",
                "--tail=30",
            ])
            .await
            .unwrap_or_default();
        let k = ns.kubectl();
        let pods = k
            .run(&["get", "pods", "-n", ns.name(), "-o", "wide"])
            .await
            .unwrap_or_default()
            + &k.run(&[
                "get",
                "pods",
                "-n",
                ns.name(),
                "-l",
                "app=echo-b",
                "-o",
                "jsonpath={.items[0].status.initContainerStatuses[1].lastState}",
            ])
            .await
            .unwrap_or_default();
        let previous = k
            .run(&[
                "logs",
                "-n",
                ns.name(),
                "-l",
                "app=echo-b",
                "-c",
                "weft-proxy",
                "--previous",
                "--tail=30",
            ])
            .await
            .unwrap_or_default();
        let caller_proxy = k
            .run(&[
                "logs",
                "-n",
                ns.name(),
                "caller",
                "-c",
                "weft-proxy",
                "--tail=30",
            ])
            .await
            .unwrap_or_default();
        panic!(
            "no report from the caller: {run:?}\n{pods}\ncallee's weft-proxy:\n{callee_logs}\nprevious:\n{previous}\ncaller's weft-proxy:\n{caller_proxy}"
        );
    };
    let xfcc = report
        .headers
        .get("x-forwarded-client-cert")
        .cloned()
        .unwrap_or_default();
    let caller_id = format!("spiffe://cluster.local/ns/{}/sa/default", ns.name());
    let callee_id = format!("spiffe://cluster.local/ns/{}/sa/echo-b", ns.name());
    assert!(
        xfcc.contains(&caller_id),
        "the callee saw the caller's SPIFFE ID in XFCC: {:?}",
        report.headers
    );

    // The callee's proxy metrics carry both principals.
    let pods: Vec<Pod> = ns
        .api::<Pod>()
        .list(&kube::api::ListParams::default().labels("app=echo-b"))
        .await
        .expect("pods")
        .items;
    assert_eq!(
        init_names(&pods[0])[..2],
        ["weft-init", "weft-proxy"],
        "the webhook injected the callee"
    );
    let ip: IpAddr = pods[0]
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .and_then(|ip| ip.parse().ok())
        .expect("callee pod IP");
    let metrics = http_get(SocketAddr::new(ip, 15090), "/stats/prometheus")
        .await
        .expect("metrics");
    let line = metrics
        .lines()
        .find(|l| l.starts_with("istio_requests_total{") && l.contains(&caller_id))
        .unwrap_or_else(|| {
            panic!("no istio_requests_total with the caller's principal:\n{metrics}")
        });
    assert!(
        line.contains(&format!("destination_principal=\"{callee_id}\"")),
        "{line}"
    );

    // /certs on the callee's admin port (loopback only: port-forward).
    let callee_pod = pods[0].metadata.name.clone().expect("pod name");
    let certs = admin_get(&cluster, &ns, &callee_pod, "/certs").await;
    assert!(
        certs.contains(&callee_id),
        "/certs shows the workload certificate: {certs}"
    );

    // A pod outside the mesh: PERMISSIVE (the default) lets it in …
    let plain = |name: &str| {
        let mut pod = weft_e2e::pods::one_shot_pod(
            name,
            &weft_e2e::echo::image(),
            &["client", "--url", &url],
        );
        pod.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert("sidecar.istio.io/inject".into(), "false".into());
        pod
    };
    let run = weft_e2e::pods::run_pod(&ns, plain("plain-permissive"), TIMEOUT)
        .await
        .expect("plain client ran");
    assert!(run.succeeded(), "PERMISSIVE accepts plaintext: {run:?}");
    let report = weft_e2e::echo::http_reports(&run)
        .into_iter()
        .next()
        .expect("a report");
    assert!(
        !report.headers.contains_key("x-forwarded-client-cert"),
        "no client certificate, no XFCC: {:?}",
        report.headers
    );

    // … STRICT refuses it (once the policy reached the callee's proxy),
    // while mesh traffic still flows.
    peer_authentication(&ns, "STRICT").await;
    let mut attempt = 0;
    let refused = loop {
        attempt += 1;
        let run = weft_e2e::pods::run_pod(&ns, plain(&format!("plain-strict-{attempt}")), TIMEOUT)
            .await
            .expect("plain client ran");
        if !run.succeeded() {
            break run;
        }
        assert!(attempt < 10, "STRICT never refused plaintext: {run:?}");
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    assert!(
        weft_e2e::echo::http_reports(&refused).is_empty(),
        "refused: no answer from the app: {refused:?}"
    );
    let caller = weft_e2e::pods::one_shot_pod(
        "caller-strict",
        &weft_e2e::echo::image(),
        &["client", "--url", &url],
    );
    let run = weft_e2e::pods::run_pod(&ns, caller, TIMEOUT)
        .await
        .expect("caller ran");
    assert!(run.succeeded(), "mesh traffic passes STRICT: {run:?}");

    webhook.remove().await;
    drop(weftd);
    ns.cleanup().await.expect("cleanup");
}

/// Weft's CRDs (PeerAuthentication and the rest the index watches).
async fn install_crds(cluster: &Cluster) {
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

/// A namespace-wide PeerAuthentication with `mode`.
async fn peer_authentication(ns: &TestNamespace, mode: &str) {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let gvk = GroupVersionKind::gvk("security.istio.io", "v1", "PeerAuthentication");
    let api: kube::Api<DynamicObject> =
        kube::Api::namespaced_with(ns.client(), ns.name(), &ApiResource::from_gvk(&gvk));
    let obj: DynamicObject = object(json!({
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "default"},
        "spec": {"mtls": {"mode": mode}}
    }));
    api.create(&PostParams::default(), &obj)
        .await
        .expect("PeerAuthentication");
}

/// GET `path` on the pod's loopback-only admin port (15000) through
/// `kubectl port-forward`.
async fn admin_get(cluster: &Cluster, ns: &TestNamespace, pod: &str, path: &str) -> String {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(weft_e2e::kubectl::find_kubectl())
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(["port-forward", "-n", ns.name(), pod, ":15000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl port-forward");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    // "Forwarding from 127.0.0.1:40123 -> 15000"
    let port: u16 = tokio::time::timeout(TIMEOUT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(p) = line
                .strip_prefix("Forwarding from 127.0.0.1:")
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|p| p.parse().ok())
            {
                return Some(p);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .expect("port-forward announced its port");
    let body = http_get(SocketAddr::from(([127, 0, 0, 1], port)), path)
        .await
        .expect("admin answered");
    let _ = child.kill().await;
    body
}
