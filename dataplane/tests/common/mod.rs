//! Shared harness: two sidecars on loopback (client-side A with an
//! outbound listener on a service VIP, server-side B with an inbound
//! listener bound on the endpoint address), echo servers and clients.
#![allow(dead_code)]

pub mod certs;
pub mod cluster;
pub mod echo;
pub mod envoy;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use weft_proxy::config::{ConfigHandle, Resources};
use weft_proxy::proxy::{OriginalDstMode, ProxySettings, Workload};
use weft_proxy::run::{AdminAddrs, Running, SidecarOptions, start_sidecar};
use weft_proxy::tls::{IdentityStore, WorkloadIdentity};
use weft_proxy::workers::Workers;

pub const TD: &str = "cluster.local";
pub const FQDN: &str = "echo.test.svc.cluster.local";
pub const SERVER_ID: &str = "spiffe://cluster.local/ns/test/sa/echo";
pub const CLIENT_ID: &str = "spiffe://cluster.local/ns/test/sa/client";
/// The service VIP (ClusterIP) the client calls.
pub const VIP: &str = "127.0.0.3";
/// The server pod's IP (its inbound listener is bound there).
pub const POD_IP: &str = "127.0.0.2";

pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "weft_proxy=debug".into()),
        )
        .with_test_writer()
        .try_init();
}

pub fn settings(name: &str) -> ProxySettings {
    ProxySettings {
        workload: Workload {
            name: name.into(),
            namespace: "test".into(),
        },
        sniff_timeout: Duration::from_millis(300),
        original_dst: OriginalDstMode::LocalAddr,
        workers: Workers::default(),
    }
}

/// Starts a sidecar with no configuration yet.
pub async fn sidecar(
    identity: WorkloadIdentity,
    outbound: Vec<SocketAddr>,
    inbound: Vec<SocketAddr>,
    name: &str,
    workers: Workers,
) -> Running {
    let store = Arc::new(IdentityStore::new(identity).unwrap());
    start_sidecar(
        ConfigHandle::default(),
        store,
        SidecarOptions {
            outbound,
            inbound,
            admin: AdminAddrs::ephemeral(),
            settings: ProxySettings {
                workers,
                ..settings(name)
            },
            app_probes: Default::default(),
            drain_deadline: Duration::from_secs(5),
        },
    )
    .await
    .unwrap()
}

/// The two-proxy mesh of one test.
pub struct Mesh {
    pub ca: certs::Ca,
    pub client: Running,
    pub server: Running,
    /// The outbound listener the client application connects to (VIP).
    pub outbound: SocketAddr,
    pub http_app: SocketAddr,
    pub tcp_app: SocketAddr,
    /// VIP ports of the HTTP and TCP services.
    pub tcp_vip: SocketAddr,
}

pub struct MeshOptions {
    pub mode: envoy::Mtls,
    /// The SPIFFE IDs the client expects of the server.
    pub expected_ids: Vec<String>,
    /// Server identity CA (defaults to the mesh CA).
    pub foreign_server: bool,
    pub http2_app: bool,
    /// Worker threads of each proxy (0: the test's runtime).
    pub workers: usize,
}

impl Default for MeshOptions {
    fn default() -> Self {
        Self {
            mode: envoy::Mtls::Strict,
            expected_ids: vec![SERVER_ID.into()],
            foreign_server: false,
            http2_app: false,
            workers: 0,
        }
    }
}

impl Mesh {
    pub async fn start(opts: MeshOptions) -> Self {
        init_logs();
        let ca = certs::Ca::new("mesh-root");
        let workers = || match opts.workers {
            0 => Workers::default(),
            n => Workers::start(n).unwrap(),
        };
        let http_app = echo::http().await;
        let tcp_app = echo::tcp().await;
        let server_identity = if opts.foreign_server {
            let other = certs::Ca::new("other-root");
            other.workload("evil.example", "test", "echo", &[&other, &ca])
        } else {
            ca.workload(TD, "test", "echo", &[&ca])
        };
        let server = sidecar(
            server_identity,
            vec![],
            vec![
                SocketAddr::new(POD_IP.parse().unwrap(), http_app.port()),
                SocketAddr::new(POD_IP.parse().unwrap(), tcp_app.port()),
            ],
            "echo",
            workers(),
        )
        .await;
        let client = sidecar(
            ca.workload(TD, "test", "client", &[&ca]),
            vec![
                SocketAddr::new(VIP.parse().unwrap(), 0),
                SocketAddr::new(VIP.parse().unwrap(), 0),
            ],
            vec![],
            "client",
            workers(),
        )
        .await;
        let outbound = client.outbound[0];
        let tcp_vip = client.outbound[1];

        let mut sr = Resources::default();
        envoy::inbound(
            &mut sr,
            "127.0.0.1",
            &[
                envoy::WorkloadPort {
                    port: http_app.port(),
                    http: true,
                    http2: opts.http2_app,
                    mode: opts.mode,
                },
                envoy::WorkloadPort {
                    port: tcp_app.port(),
                    http: false,
                    http2: false,
                    mode: opts.mode,
                },
            ],
        );
        server.proxy.config.update(sr).unwrap();

        let mut cr = Resources::default();
        envoy::outbound(
            &mut cr,
            &[
                envoy::Service {
                    fqdn: FQDN.into(),
                    vip: VIP.into(),
                    port: outbound.port(),
                    http: true,
                    http2: false,
                    endpoints: vec![(POD_IP.into(), http_app.port())],
                    ids: opts.expected_ids.clone(),
                    meshed: true,
                },
                envoy::Service {
                    fqdn: "tcp-echo.test.svc.cluster.local".into(),
                    vip: VIP.into(),
                    port: tcp_vip.port(),
                    http: false,
                    http2: false,
                    endpoints: vec![(POD_IP.into(), tcp_app.port())],
                    ids: opts.expected_ids,
                    meshed: true,
                },
            ],
        );
        client.proxy.config.update(cr).unwrap();
        Self {
            ca,
            client,
            server,
            outbound,
            http_app,
            tcp_app,
            tcp_vip,
        }
    }

    /// The server's inbound address for the HTTP app (what a plaintext
    /// non-mesh client would reach).
    pub fn server_http_inbound(&self) -> SocketAddr {
        SocketAddr::new(POD_IP.parse().unwrap(), self.http_app.port())
    }

    pub fn authority(&self) -> String {
        format!("{FQDN}:{}", self.outbound.port())
    }
}

/// An HTTP/1.1 connection to `addr`.
pub async fn h1(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    let s = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

/// GETs `path` over HTTP/1.1; returns status, headers and body text.
pub async fn get(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    authority: &str,
    path: &str,
) -> (http::StatusCode, http::HeaderMap, String) {
    let req = Request::get(path)
        .header("host", authority)
        .body(Empty::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// An HTTP/2 (prior knowledge) connection to `addr`.
pub async fn h2<B>(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<B>
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let s = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(s))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

pub fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}
