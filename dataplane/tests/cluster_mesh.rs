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

#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::cluster::{
    MeshWeftd, TIMEOUT, expose_weftd, host_ip, http_get, init_names, inject, install_crds,
    label_namespace, object, register_injector,
};
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Pod, Service, ServiceAccount};
use kube::api::{DeleteParams, PostParams};
use serde_json::json;
use weft_e2e::wait::poll_until;
use weft_e2e::{Cluster, TestNamespace};
use weftd::config::{CaSource, Config};

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
