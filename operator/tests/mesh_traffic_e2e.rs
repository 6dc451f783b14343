//! End to end: the mesh the operator installs carries traffic. The
//! operator is installed from `config/default`, a MeshInstallation with an
//! ingress gateway (NodePort Service 80 → 8080, pods labelled
//! `istio: ingressgateway`) becomes Ready, and then
//!
//! - two echo workloads in a namespace labelled `istio-injection=enabled`
//!   get weft-proxy injected by the operator's weftd;
//! - an injected client calls the echo Service over mTLS: the callee sees
//!   the caller's SPIFFE ID in `x-forwarded-client-cert`, and its
//!   `istio_requests_total` carries both principals;
//! - a request from the host (outside the cluster) to the gateway's
//!   NodePort enters through the operator's gateway, routed by an Istio
//!   `Gateway` + `VirtualService`, and reaches the echo Service with the
//!   gateway's SPIFFE ID in XFCC.
//!
//! `make cluster-up CLUSTER=f && make images CLUSTERS=f`, then
//! `WEFT_E2E_CLUSTER_A=f cargo test -p weft-operator --test mesh_traffic_e2e -- --ignored --nocapture`

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service, ServiceAccount};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams,
};
use kube::{Api, Client};
use serde_json::{Value, json};
use weft_api::weft::MeshInstallation;
use weft_e2e::wait::poll_until;
use weft_e2e::{Cluster, Error, TestNamespace, ensure};

mod common;
use common::{install_operator, kubectl, remove_operator};

const MI: &str = "default";
const MESH_NS: &str = "weft-system";
const GATEWAY: &str = "ingress";
const TIMEOUT: Duration = Duration::from_secs(180);

fn assert_err(message: impl Into<String>) -> Error {
    Error::Assert(message.into())
}

fn object<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, Error> {
    serde_json::from_value(value).map_err(|e| assert_err(e.to_string()))
}

/// The MeshInstallation of this test: defaults plus one NodePort ingress
/// gateway whose pods carry Istio's `istio: ingressgateway` label.
fn installation() -> Result<MeshInstallation, Error> {
    object(json!({
        "apiVersion": "weft.dev/v1alpha1",
        "kind": "MeshInstallation",
        "metadata": {"name": MI},
        "spec": {
            "version": "1.0.0",
            "gateways": [{
                "name": GATEWAY,
                "kind": "ingress",
                "labels": {"istio": "ingressgateway"},
                "service": {"type": "NodePort", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
            }]
        }
    }))
}

fn ready(mi: &MeshInstallation) -> bool {
    mi.status.as_ref().is_some_and(|s| {
        s.observed_generation == mi.metadata.generation
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Istio `Gateway` (port 80, any host) selecting the operator's ingress
/// pods and a `VirtualService` bound to it sending everything to `service`.
async fn route_through_gateway(ns: &TestNamespace, service: &str) -> Result<(), Error> {
    let api = |kind: &str| -> Api<DynamicObject> {
        let gvk = GroupVersionKind::gvk("networking.istio.io", "v1", kind);
        Api::namespaced_with(ns.client(), ns.name(), &ApiResource::from_gvk(&gvk))
    };
    let gateway: DynamicObject = object(json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "public"},
        "spec": {
            "selector": {"istio": "ingressgateway"},
            "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]
        }
    }))?;
    api("Gateway")
        .create(&PostParams::default(), &gateway)
        .await?;
    let vs: DynamicObject = object(json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "public"},
        "spec": {
            "hosts": ["*"],
            "gateways": ["public"],
            "http": [{"route": [{"destination": {
                "host": format!("{service}.{}.svc.cluster.local", ns.name()),
                "port": {"number": weft_e2e::echo::HTTP_PORT}
            }}]}]
        }
    }))?;
    api("VirtualService")
        .create(&PostParams::default(), &vs)
        .await?;
    Ok(())
}

/// GET `path` on `addr` from the host (HTTP/1.0); the status line and the
/// body.
async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(String, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
        .await??;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: echo.example.com\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out)).await??;
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head.lines().next().unwrap_or_default().to_owned();
    Ok((status, body.to_owned()))
}

fn header(report: &Value, name: &str) -> String {
    report["headers"][name]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn diagnostics(cluster: &Cluster, ns: &str) {
    for args in [
        vec!["get", "mi", MI, "-o", "yaml"],
        vec!["get", "pods", "-A", "-o", "wide"],
        vec![
            "-n",
            MESH_NS,
            "logs",
            &format!("deployment/{GATEWAY}"),
            "--tail=40",
        ],
        vec![
            "-n",
            MESH_NS,
            "logs",
            "deployment/weftd-default",
            "--tail=40",
        ],
        vec![
            "-n",
            ns,
            "logs",
            "-l",
            "app=echo-b",
            "-c",
            "weft-proxy",
            "--tail=30",
        ],
    ] {
        match kubectl(cluster, &args).await {
            Ok(out) => eprintln!("$ kubectl {}\n{out}", args.join(" ")),
            Err(e) => eprintln!("$ kubectl {}: {e}", args.join(" ")),
        }
    }
}

#[tokio::test]
#[ignore = "needs the local cluster with the weft-operator, weftd, weft-proxy and echo images: run via make test-e2e"]
async fn injected_apps_talk_over_mtls_and_ingress_enters_through_the_gateway() -> Result<(), Error>
{
    weft_e2e::init_tracing();
    let cluster = Cluster::a().await?;
    let client = cluster.client.clone();
    install_operator(&cluster, &[]).await?;
    let ns = TestNamespace::create(&cluster, "op-traffic").await?;
    let result = traffic(&cluster, &client, &ns).await;
    if result.is_err() {
        diagnostics(&cluster, ns.name()).await;
    }
    // Uninstall the mesh (webhooks first), then the operator.
    let mis: Api<MeshInstallation> = Api::all(client.clone());
    let _ = mis.delete(MI, &DeleteParams::default()).await;
    poll_until(
        "the MeshInstallation is gone",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || async { Ok::<_, kube::Error>(mis.get_opt(MI).await?.is_none().then_some(())) },
    )
    .await?;
    ns.cleanup().await?;
    remove_operator(&cluster).await?;
    result
}

async fn traffic(cluster: &Cluster, client: &Client, ns: &TestNamespace) -> Result<(), Error> {
    // 1. The mesh with an ingress gateway.
    let mis: Api<MeshInstallation> = Api::all(client.clone());
    let started = Instant::now();
    mis.create(&PostParams::default(), &installation()?).await?;
    poll_until(
        "MeshInstallation Ready",
        Duration::from_secs(240),
        Duration::from_millis(500),
        || async { Ok::<_, kube::Error>(ready(&mis.get(MI).await?).then_some(())) },
    )
    .await?;
    eprintln!(
        "FIGURE apply-to-Ready (with an ingress gateway): {:.1}s",
        started.elapsed().as_secs_f64()
    );
    // 2. Two echo services in an injected namespace.
    Api::<Namespace>::all(client.clone())
        .patch(
            ns.name(),
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"istio-injection": "enabled"}}})),
        )
        .await?;
    for name in ["echo-a", "echo-b"] {
        ns.api::<ServiceAccount>()
            .create(
                &PostParams::default(),
                &object(json!({"metadata": {"name": name}}))?,
            )
            .await?;
        let mut d = weft_e2e::echo::deployment(name, "v1", 1);
        if let Some(spec) = d.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
            spec.service_account_name = Some(name.to_owned());
        }
        weft_e2e::echo::deploy_objects(ns, &d, &weft_e2e::echo::service(name)).await?;
    }
    let pods = ns.api::<Pod>().list(&ListParams::default()).await?.items;
    for p in &pods {
        let injected = p.spec.as_ref().is_some_and(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(&s.containers)
                .any(|c| c.name == "weft-proxy")
        });
        ensure(injected, || {
            format!("pod {:?} has no weft-proxy sidecar", p.metadata.name)
        })?;
    }

    // 3. echo-a's pod calls echo-b over mTLS: the client runs inside the
    //    injected echo-a pod (its app container), through its sidecar.
    let caller_pod = pods
        .iter()
        .find(|p| {
            p.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.get("app").map(String::as_str) == Some("echo-a"))
        })
        .and_then(|p| p.metadata.name.clone())
        .ok_or_else(|| assert_err("no echo-a pod"))?;
    let url = format!("http://echo-b.{}.svc.cluster.local:8080/mesh", ns.name());
    let out = kubectl(
        cluster,
        &[
            "-n",
            ns.name(),
            "exec",
            &caller_pod,
            "-c",
            "echo",
            "--",
            "/weft-echo",
            "client",
            "--url",
            &url,
            "--retry-for",
            "30s",
        ],
    )
    .await?;
    let report: Value = weft_e2e::pods::json_lines::<Value>(&out)
        .into_iter()
        .next()
        .ok_or_else(|| assert_err(format!("no report from echo-a's client: {out}")))?;
    let caller_id = format!("spiffe://cluster.local/ns/{}/sa/echo-a", ns.name());
    let callee_id = format!("spiffe://cluster.local/ns/{}/sa/echo-b", ns.name());
    let xfcc = header(&report, "x-forwarded-client-cert");
    eprintln!("echo-a -> echo-b: XFCC {xfcc}");
    ensure(xfcc.contains(&caller_id), || {
        format!("echo-b did not see echo-a's SPIFFE ID: {report}")
    })?;

    // The callee's metrics carry both principals.
    let callee_ip = ns
        .api::<Pod>()
        .list(&ListParams::default().labels("app=echo-b"))
        .await?
        .items
        .first()
        .and_then(|p| p.status.as_ref()?.pod_ip.clone())
        .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
        .ok_or_else(|| assert_err("no echo-b pod IP"))?;
    let (_, metrics) = http_get(SocketAddr::new(callee_ip, 15090), "/stats/prometheus")
        .await
        .map_err(|e| assert_err(format!("echo-b's metrics: {e}")))?;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("istio_requests_total{") && l.contains(&caller_id))
        .ok_or_else(|| assert_err(format!("no istio_requests_total from echo-a:\n{metrics}")))?;
    ensure(
        line.contains(&format!("destination_principal=\"{callee_id}\"")),
        || line.to_owned(),
    )?;

    // 4. From the host through the gateway's NodePort to echo-b. The
    //    gateway proxy is ready once it has a listener: after the Gateway.
    let routed = Instant::now();
    route_through_gateway(ns, "echo-b").await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), MESH_NS);
    poll_until(
        "the ingress gateway Deployment is Available",
        TIMEOUT,
        Duration::from_millis(500),
        || async {
            let d = deployments.get_opt(GATEWAY).await?;
            Ok::<_, kube::Error>(
                d.filter(weft_e2e::wait::is_deployment_available)
                    .map(|_| ()),
            )
        },
    )
    .await?;
    eprintln!(
        "FIGURE Gateway+VirtualService to gateway Available: {:.1}s",
        routed.elapsed().as_secs_f64()
    );

    let svc = Api::<Service>::namespaced(client.clone(), MESH_NS)
        .get(GATEWAY)
        .await?;
    let node_port = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|ps| ps.iter().find(|p| p.port == 80))
        .and_then(|p| p.node_port)
        .ok_or_else(|| assert_err("the gateway Service has no NodePort for 80"))?;
    let node_ip: std::net::IpAddr = cluster
        .node_ip()
        .await?
        .parse()
        .map_err(|e| assert_err(format!("node IP: {e}")))?;
    let addr = SocketAddr::new(node_ip, u16::try_from(node_port).unwrap_or_default());
    let last = std::sync::Mutex::new(String::new());
    let found = poll_until(
        "a request to the gateway's NodePort reaches echo-b",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            let got = http_get(addr, "/through-the-gateway").await;
            let report = match &got {
                Ok((status, body)) if status.contains(" 200 ") => {
                    serde_json::from_str::<Value>(body.trim()).ok()
                }
                _ => None,
            };
            if let Ok(mut l) = last.lock() {
                *l = format!("{got:?}");
            }
            Ok::<_, std::convert::Infallible>(report)
        },
    )
    .await;
    let report = found.map_err(|e| {
        let last = last.lock().map(|l| l.clone()).unwrap_or_default();
        assert_err(format!("{e}; last answer: {last}"))
    })?;
    eprintln!(
        "FIGURE Gateway+VirtualService to first routed request: {:.1}s",
        routed.elapsed().as_secs_f64()
    );
    let gateway_id = format!("spiffe://cluster.local/ns/{MESH_NS}/sa/{GATEWAY}");
    let xfcc = header(&report, "x-forwarded-client-cert");
    eprintln!("host -> {addr} (gateway) -> echo-b: XFCC {xfcc}");
    ensure(
        report["pod"]
            .as_str()
            .is_some_and(|p| p.starts_with("echo-b")),
        || format!("the answer did not come from echo-b: {report}"),
    )?;
    ensure(xfcc.contains(&gateway_id), || {
        format!("echo-b did not see the gateway's SPIFFE ID {gateway_id}: {report}")
    })?;
    Ok(())
}
