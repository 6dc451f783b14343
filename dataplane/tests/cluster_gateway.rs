//! Gateway mode in a real cluster: weftd (on the host side of the veth,
//! see `common::cluster`) runs its Gateway API controller, which
//! provisions the reference file's `payments-gateway` (class `istio`) as a
//! Deployment of the real weft-proxy image in gateway mode plus a
//! ClusterIP Service. The reference `payments-api` HTTPRoute sends
//! `api.payments.corp.com/v1…` to an injected echo backend; the listener
//! terminates TLS with a test certificate (the `payments-tls` Secret, made
//! here with rcgen) that weftd serves the gateway over SDS.
//!
//! From the host (outside the cluster) the test sends HTTPS with SNI
//! `api.payments.corp.com` to the gateway Service's ClusterIP:443,
//! verifying the served certificate against the test CA:
//!
//! - `/v1/charges` → 200 from the echo pod, whose XFCC carries the
//!   gateway's SPIFFE ID (`…/sa/payments-gateway-istio`): the gateway
//!   called the backend's sidecar over mTLS with its own identity;
//! - `/v2/charges` → 404 from the gateway (no route).
//!
//! `make cluster-up CLUSTER=c && make images CLUSTERS=c` (weft-proxy and echo), then
//! `WEFT_E2E_CLUSTER_A=c cargo test -p weft-proxy --test cluster_gateway -- --ignored`

#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::cluster::{
    MeshWeftd, TIMEOUT, expose_weftd, host_ip, install_crds, label_namespace, object,
    register_injector,
};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;
use weft_e2e::wait::{deployment_available, poll_until, wait_for_object};
use weft_e2e::{Cluster, TestNamespace};

const HOST: &str = "api.payments.corp.com";
/// `<gateway>-<class>`: the name weftd gives the gateway's objects.
const GATEWAY_OBJECTS: &str = "payments-gateway-istio";

/// A reference sample (config/samples/reference) moved into `namespace`.
fn reference(file: &str, namespace: &str) -> DynamicObject {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/samples/reference")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("reference sample");
    let mut value: serde_json::Value = serde_yaml_ng::from_str(&text).expect("YAML");
    value["metadata"]["namespace"] = json!(namespace);
    object(value)
}

async fn create_gateway_api(ns: &TestNamespace, kind: &str, obj: &DynamicObject) {
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", kind);
    let api: kube::Api<DynamicObject> =
        kube::Api::namespaced_with(ns.client(), ns.name(), &ApiResource::from_gvk(&gvk));
    api.create(&PostParams::default(), obj)
        .await
        .unwrap_or_else(|e| panic!("create {kind}: {e}"));
}

/// HTTPS GET `path` on `addr` with SNI and Host [`HOST`], trusting only
/// `ca`: (status, body).
async fn https_get(
    addr: SocketAddr,
    ca: &CertificateDer<'static>,
    path: &str,
) -> Result<(StatusCode, String), Box<dyn std::error::Error + Send + Sync>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone())?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(HOST)?, tcp)
        .await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", HOST)
        .body(Empty::<Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The gateway's and weftd's view, for failure messages.
async fn diagnostics(ns: &TestNamespace, weftd: &MeshWeftd) -> String {
    let k = ns.kubectl();
    let pods = k
        .run(&["get", "pods,svc", "-n", ns.name(), "-o", "wide"])
        .await
        .unwrap_or_default();
    let gateway = k
        .run(&[
            "logs",
            "-n",
            ns.name(),
            &format!("deploy/{GATEWAY_OBJECTS}"),
            "--tail=40",
        ])
        .await
        .unwrap_or_default();
    let backend = k
        .run(&[
            "logs",
            "-n",
            ns.name(),
            "-l",
            "app=payments-api",
            "-c",
            "weft-proxy",
            "--tail=20",
        ])
        .await
        .unwrap_or_default();
    format!(
        "{pods}\ngateway logs:\n{gateway}\nbackend sidecar logs:\n{backend}\nweftd proxies: {:#?}",
        weftd.registry.proxies()
    )
}

#[tokio::test]
#[ignore = "needs a local cluster (WEFT_E2E_CLUSTER_A) with the weft-proxy and echo images and Weft's CRDs"]
async fn https_from_outside_reaches_the_backend_over_mtls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster = Cluster::a().await.expect("cluster");
    let ns = TestNamespace::create(&cluster, "proxy-gw")
        .await
        .expect("namespace");
    let host = host_ip(&cluster).await;
    install_crds(&cluster).await;
    let revision = format!("pg-{}", ns.name().rsplit('-').next().unwrap_or("x"));
    let mut weftd = MeshWeftd::start(&ns, host, &revision).await;
    weftd.start_gateway_controller(ns.client());
    expose_weftd(&ns, host, &weftd, weftd.authority.trust_bundle_pem()).await;
    let webhook = register_injector(&ns, &weftd).await;
    label_namespace(&ns, json!({"istio-injection": "enabled"})).await;

    // The backend the reference HTTPRoute names: Service payments-api:8080,
    // an injected echo Deployment.
    if let Err(e) = weft_e2e::echo::deploy_objects(
        &ns,
        &weft_e2e::echo::deployment("payments-api", "v1", 1),
        &weft_e2e::echo::service("payments-api"),
    )
    .await
    {
        panic!("{e}\n{}", diagnostics(&ns, &weftd).await);
    }

    // The listener's certificate, from a test CA.
    let ca = common::certs::Ca::new("payments test CA");
    let (cert_pem, key_pem) = ca.server_pem(&[HOST]);
    let secret: Secret = object(json!({
        "metadata": {"name": "payments-tls"},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": cert_pem, "tls.key": key_pem}
    }));
    ns.api::<Secret>()
        .create(&PostParams::default(), &secret)
        .await
        .expect("TLS Secret");

    // The reference Gateway and HTTPRoute, in this run's namespace.
    create_gateway_api(
        &ns,
        "Gateway",
        &reference("gateway-gateway-payments-gateway.yaml", ns.name()),
    )
    .await;
    create_gateway_api(
        &ns,
        "HTTPRoute",
        &reference("gateway-httproute-payments-api.yaml", ns.name()),
    )
    .await;

    // weftd provisions the gateway; Available once its proxy is ready.
    let deployed = wait_for_object(
        &ns.api::<Deployment>(),
        GATEWAY_OBJECTS,
        "the gateway Deployment to be Available",
        weft_e2e::wait::WORKLOAD_TIMEOUT,
        deployment_available(),
    )
    .await;
    if let Err(e) = deployed {
        panic!("{e}\n{}", diagnostics(&ns, &weftd).await);
    }
    let image = ns
        .api::<Deployment>()
        .get(GATEWAY_OBJECTS)
        .await
        .expect("gateway Deployment")
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers.into_iter().next())
        .and_then(|c| c.image)
        .unwrap_or_default();
    assert_eq!(
        image,
        common::cluster::proxy_image(),
        "the real proxy image"
    );

    let service = ns
        .api::<Service>()
        .get(GATEWAY_OBJECTS)
        .await
        .expect("gateway Service");
    let cluster_ip: IpAddr = service
        .spec
        .and_then(|s| s.cluster_ip)
        .and_then(|ip| ip.parse().ok())
        .expect("gateway ClusterIP");
    let addr = SocketAddr::new(cluster_ip, 443);

    // /v1 reaches the backend (once the route reached the gateway).
    let (status, body) = match poll_until(
        "HTTPS /v1 through the gateway answers 200",
        TIMEOUT,
        Duration::from_secs(1),
        || async {
            let (status, body) = https_get(addr, &ca.cert, "/v1/charges").await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                (status == StatusCode::OK).then_some((status, body)),
            )
        },
    )
    .await
    {
        Ok(r) => r,
        Err(e) => panic!("{e}\n{}", diagnostics(&ns, &weftd).await),
    };
    assert_eq!(status, StatusCode::OK);
    let report: serde_json::Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("the echo server's JSON report ({e}): {body}"));
    assert_eq!(report["path"], "/v1/charges", "{report}");
    assert!(
        report["pod"]
            .as_str()
            .is_some_and(|p| p.starts_with("payments-api-")),
        "answered by the backend pod: {report}"
    );
    let gateway_id = format!(
        "spiffe://cluster.local/ns/{}/sa/{GATEWAY_OBJECTS}",
        ns.name()
    );
    let xfcc = report["headers"]["x-forwarded-client-cert"]
        .as_str()
        .unwrap_or_default();
    assert!(
        xfcc.contains(&format!("URI={gateway_id}")),
        "the backend's sidecar saw the gateway's SPIFFE ID over mTLS: {report}"
    );

    // A path outside /v1: no route, 404 from the gateway itself.
    let (status, body) = https_get(addr, &ca.cert, "/v2/charges")
        .await
        .expect("HTTPS /v2");
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        !body.contains("payments-api-"),
        "the backend never saw /v2: {body}"
    );

    webhook.remove().await;
    drop(weftd);
    ns.cleanup().await.expect("cleanup");
}
