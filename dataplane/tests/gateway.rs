//! Gateway mode: HTTPS termination with an SDS certificate chosen by SNI
//! (rotated live), routing `/v1` to a mesh service over mTLS with the
//! gateway's own identity; other paths 404.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::envoy::{self, Mtls};
use common::{POD_IP, SERVER_ID, TD, json};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use weft_proxy::config::{ConfigHandle, Resources, type_url};
use weft_proxy::proxy::ProxySettings;
use weft_proxy::run::{AdminAddrs, GatewayOptions, start_gateway};
use weft_proxy::tls::IdentityStore;
use weft_proxy::workers::Workers;

const HOST: &str = "payments.example.com";
const GATEWAY_ID: &str = "spiffe://cluster.local/ns/test/sa/gateway";

async fn https_get(
    addr: SocketAddr,
    root: &CertificateDer<'static>,
    path: &str,
) -> (StatusCode, String, CertificateDer<'static>) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(HOST).unwrap(), tcp)
        .await
        .unwrap();
    let served = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", HOST)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned(), served)
}

#[tokio::test]
async fn https_to_the_gateway_reaches_the_mesh_over_mtls() {
    common::init_logs();
    let mesh_ca = common::certs::Ca::new("mesh-root");
    let public_ca = common::certs::Ca::new("public-root");
    let app = common::echo::http().await;
    let server = common::sidecar(
        mesh_ca.workload(TD, "test", "echo", &[&mesh_ca]),
        vec![],
        vec![SocketAddr::new(POD_IP.parse().unwrap(), app.port())],
        "echo",
        Workers::default(),
    )
    .await;
    let mut sr = Resources::default();
    envoy::inbound(
        &mut sr,
        "127.0.0.1",
        &[envoy::WorkloadPort {
            port: app.port(),
            http: true,
            http2: false,
            mode: Mtls::Strict,
        }],
    );
    server.proxy.config.update(sr).unwrap();

    let fqdn = "payments-api.test.svc.cluster.local";
    let svc_port = 8080;
    let cluster = envoy::outbound_name(svc_port, fqdn);
    let gw_port = app.port();
    let gw_ip = "127.0.0.4";
    let mut r = Resources::default();
    envoy::gateway(&mut r, gw_ip, gw_port, HOST, "test/payments-cert", &cluster);
    envoy::service_cluster(
        &mut r,
        &envoy::Service {
            fqdn: fqdn.into(),
            vip: "10.96.0.10".into(),
            port: svc_port,
            http: true,
            http2: false,
            endpoints: vec![(POD_IP.into(), app.port())],
            ids: vec![SERVER_ID.into()],
            meshed: true,
        },
    );
    let (chain, key) = public_ca.server_pem(&[HOST]);
    envoy::tls_secret(&mut r, "test/payments-cert", &chain, &key);
    let config = ConfigHandle::default();
    config.update(r).unwrap();
    let gateway = start_gateway(
        config,
        Arc::new(IdentityStore::new(mesh_ca.workload(TD, "test", "gateway", &[&mesh_ca])).unwrap()),
        GatewayOptions {
            admin: AdminAddrs::ephemeral(),
            // Per-core workers: each binds the listener (SO_REUSEPORT).
            settings: ProxySettings {
                workers: Workers::start(2).unwrap(),
                ..common::settings("gateway")
            },
            drain_deadline: Duration::from_secs(2),
        },
    )
    .await
    .unwrap();
    let addr = gateway
        .gateway_listener(&format!("0.0.0.0_{gw_port}"))
        .expect("gateway listener bound");

    let (status, body, served) = https_get(addr, &public_ca.cert, "/v1/pay").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let report = json(&body);
    assert_eq!(report["path"], "/v1/pay");
    assert_eq!(
        report["headers"]["x-forwarded-client-cert"],
        format!("By={SERVER_ID};URI={GATEWAY_ID}"),
        "the gateway calls the mesh with its own identity"
    );
    assert_eq!(report["headers"]["x-forwarded-proto"], "https");
    assert!(report["headers"]["x-forwarded-for"].is_string());

    // Prefix and host rewrite: the mesh service sees the new path (query
    // kept) and authority.
    let (status, body, _) = https_get(addr, &public_ca.cert, "/legacy/pay?id=7").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let report = json(&body);
    assert_eq!(report["path"], "/v1/pay");
    assert_eq!(report["query"], "id=7", "{body}");
    assert_eq!(report["headers"]["host"], "payments.internal");

    let (status, _, _) = https_get(addr, &public_ca.cert, "/v2/pay").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = https_get(addr, &public_ca.cert, "/v1x").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "prefixes match whole segments"
    );

    // Rotate the certificate: new handshakes get the new one.
    let (chain2, key2) = public_ca.server_pem(&[HOST]);
    let mut secret = Resources::default();
    envoy::tls_secret(&mut secret, "test/payments-cert", &chain2, &key2);
    let (name, any) = secret
        .of_type(type_url::SECRET)
        .next()
        .map(|(n, a)| (n.to_owned(), a.clone()))
        .unwrap();
    gateway
        .proxy
        .config
        .apply(type_url::SECRET, vec![(name, any)], &[])
        .unwrap();
    let (status, _, served2) = https_get(addr, &public_ca.cert, "/v1/again").await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(served, served2, "the rotated certificate is served");
}

#[tokio::test]
async fn a_gateway_without_routes_is_ready_once_configured() {
    common::init_logs();
    let mesh_ca = common::certs::Ca::new("mesh-root");
    let config = ConfigHandle::default();
    let gateway = start_gateway(
        config.clone(),
        Arc::new(IdentityStore::new(mesh_ca.workload(TD, "test", "gateway", &[&mesh_ca])).unwrap()),
        GatewayOptions {
            admin: AdminAddrs::ephemeral(),
            settings: common::settings("gateway"),
            drain_deadline: Duration::from_secs(2),
        },
    )
    .await
    .unwrap();
    let mut admin = common::h1(gateway.admin.admin).await;
    let (status, _, body) = common::get(&mut admin, "admin", "/ready").await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "nothing arrived yet: {body}"
    );

    // weftd's whole first answer for a Gateway with no listeners: clusters only.
    let mut r = Resources::default();
    envoy::service_cluster(
        &mut r,
        &envoy::Service {
            fqdn: "payments-api.test.svc.cluster.local".into(),
            vip: "10.96.0.10".into(),
            port: 8080,
            http: true,
            http2: false,
            endpoints: vec![],
            ids: vec![SERVER_ID.into()],
            meshed: true,
        },
    );
    config.update(r).unwrap();
    let (status, _, _) = common::get(&mut admin, "admin", "/ready").await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "a partial configuration is not ready"
    );
    config.mark_synced();
    let (status, _, body) = common::get(&mut admin, "admin", "/ready").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(gateway.gateway_listeners.lock().unwrap().is_empty());
}
