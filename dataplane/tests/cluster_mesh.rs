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
//! Traffic between two injected pods over mTLS (principals in
//! `istio_requests_total`, `/certs`, STRICT/PERMISSIVE) needs weftd to
//! serve translated listeners, which main's weftd does not yet
//! (`controlplane/pending-translate/`): with an empty configuration the
//! sidecar is connected but not ready, so the application container is
//! held by the startup probe, as it should be.
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
    let mut settings = InjectSettings::new("default", ns.name(), &proxy_image());
    settings.image_pull_policy = Some("Never".into());
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
    let injected = weftd::inject::inject(&pod, &settings)
        .expect("injected")
        .pod;
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
