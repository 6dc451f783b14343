//! The `weft-proxy sidecar` binary in static mode: bootstrap and PEM files
//! from disk, ready on the admin port, traffic through the inbound
//! listener, clean exit after SIGTERM.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use http::StatusCode;
use rustls::pki_types::pem::PemObject;
use serde_json::json;

fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn pem_of(der: &[u8], label: &str) -> String {
    pem::encode(&pem::Pem::new(label, der.to_vec()))
}

#[tokio::test]
async fn static_sidecar_serves_and_drains_on_sigterm() {
    let ca = common::certs::Ca::new("mesh-root");
    let id = ca.workload(common::TD, "test", "app", &[&ca]);
    let dir = std::env::temp_dir().join(format!("weft-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let chain = dir.join("chain.pem");
    let key = dir.join("key.pem");
    let roots = dir.join("roots.pem");
    std::fs::write(&chain, pem_of(&id.chain[0], "CERTIFICATE")).unwrap();
    std::fs::write(&key, pem_of(id.key.secret_der(), "PRIVATE KEY")).unwrap();
    std::fs::write(&roots, &ca.pem).unwrap();
    // The written PEM reads back.
    assert_eq!(
        rustls::pki_types::CertificateDer::pem_file_iter(&chain)
            .unwrap()
            .count(),
        1
    );

    let app = common::echo::http().await;
    let port = app.port();
    let cluster = format!("inbound|{port}||");
    let router = json!({"name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}});
    let bootstrap = json!({"resources": [
        {
            "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
            "name": "virtualInbound",
            "address": {"socket_address": {"address": "0.0.0.0", "port_value": 15006}},
            "filter_chains": [{
                "filter_chain_match": {"destination_port": port},
                "filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "inbound",
                        "route_config": {"name": cluster, "virtual_hosts": [{
                            "name": "inbound", "domains": ["*"],
                            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster}}]
                        }]},
                        "http_filters": [router]
                    }
                }]
            }]
        },
        {
            "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
            "name": "virtualOutbound",
            "address": {"socket_address": {"address": "0.0.0.0", "port_value": 15001}},
            "use_original_dst": true,
            "default_filter_chain": {"filters": [{
                "name": "envoy.filters.network.tcp_proxy",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                    "stat_prefix": "PassthroughCluster", "cluster": "PassthroughCluster"
                }
            }]}
        },
        {
            "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            "name": "PassthroughCluster", "type": "ORIGINAL_DST", "lb_policy": "CLUSTER_PROVIDED"
        },
        {
            "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            "name": cluster, "type": "STATIC",
            "load_assignment": {"cluster_name": cluster, "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}
            ]}]}
        }
    ]});
    let bootstrap_path = dir.join("bootstrap.json");
    std::fs::write(&bootstrap_path, bootstrap.to_string()).unwrap();

    let inbound = SocketAddr::from(([127, 0, 0, 6], port));
    let outbound = SocketAddr::from(([127, 0, 0, 5], free_port("127.0.0.5")));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port("127.0.0.1")));
    let lo = |p: u16| format!("127.0.0.1:{p}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_weft-proxy"))
        .arg("sidecar")
        .arg("--bootstrap")
        .arg(&bootstrap_path)
        .arg("--cert-chain")
        .arg(&chain)
        .arg("--key")
        .arg(&key)
        .arg("--roots")
        .arg(&roots)
        .args(["--outbound-addr", &outbound.to_string()])
        .args(["--inbound-addr", &inbound.to_string()])
        .arg("--original-dst-from-local-addr")
        .args(["--admin-addr", &admin.to_string()])
        .args(["--metrics-addr", &lo(free_port("127.0.0.1"))])
        .args(["--health-addr", &lo(free_port("127.0.0.1"))])
        .args(["--status-addr", &lo(free_port("127.0.0.1"))])
        .args(["--drain-seconds", "2"])
        .env("POD_NAME", "app-5d9c7b-x2x9z")
        .env("POD_NAMESPACE", "test")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(s) = tokio::net::TcpStream::connect(admin).await {
            drop(s);
            let mut c = common::h1(admin).await;
            if common::get(&mut c, "admin", "/ready").await.0 == StatusCode::OK {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the sidecar never became ready");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sidecar exited early"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut c = common::h1(inbound).await;
    let (status, _, body) = common::get(&mut c, "anything", "/from-cli").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(common::json(&body)["path"], "/from-cli");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
    std::fs::remove_dir_all(dir).unwrap();
}
