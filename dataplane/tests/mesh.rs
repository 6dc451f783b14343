//! Two sidecars on loopback with static configuration in weftd's shapes:
//! HTTP/1.1, HTTP/2, streaming with trailers, TCP and WebSocket through
//! outbound → mTLS → inbound; PeerAuthentication modes; identity checks;
//! certificate rotation under load; drain; NACK of bad configuration.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::envoy::{self, Mtls};
use common::{CLIENT_ID, FQDN, Mesh, MeshOptions, SERVER_ID, get, h1, json};
use futures::{SinkExt, StreamExt};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weft_proxy::config::type_url;

async fn metrics(addr: std::net::SocketAddr) -> String {
    let mut s = h1(addr).await;
    get(&mut s, "admin", "/stats/prometheus").await.2
}

#[tokio::test]
async fn http1_crosses_both_proxies_over_mtls_and_the_server_sees_the_caller() {
    let mesh = Mesh::start(MeshOptions::default()).await;
    let mut s = h1(mesh.outbound).await;
    for _ in 0..3 {
        let (status, _, body) = get(&mut s, &mesh.authority(), "/hello?x=1").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let report = json(&body);
        assert_eq!(report["path"], "/hello");
        assert_eq!(report["version"], "HTTP/1.1");
        let xfcc = report["headers"]["x-forwarded-client-cert"]
            .as_str()
            .unwrap();
        assert_eq!(xfcc, format!("By={SERVER_ID};URI={CLIENT_ID}"));
        assert_eq!(
            report["headers"]["x-request-id"].as_str().unwrap().len(),
            36
        );
        assert_eq!(report["headers"]["host"], mesh.authority());
    }
    // A caller's request id is kept.
    let req = Request::get("/")
        .header("host", mesh.authority())
        .header("x-request-id", "abc-123")
        .body(Empty::new())
        .unwrap();
    let resp = s.send_request(req).await.unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let report = json(std::str::from_utf8(&body).unwrap());
    assert_eq!(report["headers"]["x-request-id"], "abc-123");

    let client_metrics = metrics(mesh.client.admin.metrics).await;
    assert!(
        client_metrics
            .lines()
            .any(|l| l.starts_with("istio_requests_total{")
                && l.contains("reporter=\"source\"")
                && l.contains(&format!("destination_principal=\"{SERVER_ID}\""))
                && l.contains("connection_security_policy=\"mutual_tls\"")
                && l.contains("response_code=\"200\"")
                && l.contains(&format!("destination_service=\"{FQDN}\""))),
        "{client_metrics}"
    );
    let server_metrics = metrics(mesh.server.admin.metrics).await;
    assert!(
        server_metrics
            .lines()
            .any(|l| l.starts_with("istio_requests_total{")
                && l.contains("reporter=\"destination\"")
                && l.contains(&format!("source_principal=\"{CLIENT_ID}\""))
                && l.contains("source_workload_namespace=\"test\"")),
        "{server_metrics}"
    );
    assert!(server_metrics.contains("istio_request_duration_milliseconds_bucket"));

    let mut admin = h1(mesh.client.admin.admin).await;
    let (status, _, certs) = get(&mut admin, "admin", "/certs").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&certs)["workload"]["spiffe_id"], CLIENT_ID);
    let (_, _, dump) = get(&mut admin, "admin", "/config_dump").await;
    let dump = json(&dump);
    assert!(
        dump["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "virtualOutbound"),
        "{dump}"
    );
    let (status, _, _) = get(&mut admin, "admin", "/ready").await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "client has no inbound listener"
    );
    let mut health = h1(mesh.server.admin.health).await;
    let (status, _, body) = get(&mut health, "health", "/healthz/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
}

#[tokio::test]
async fn per_core_workers_spread_connections_and_keep_their_own_pools() {
    let mesh = Mesh::start(MeshOptions {
        workers: 2,
        ..Default::default()
    })
    .await;
    // Sixteen connections: the kernel spreads them over both workers'
    // sockets (all on one would have odds of 2 in 65,536).
    let calls = (0..16).map(|_| {
        let (outbound, authority) = (mesh.outbound, mesh.authority());
        tokio::spawn(async move {
            let mut s = h1(outbound).await;
            for _ in 0..3 {
                let (status, _, body) = get(&mut s, &authority, "/w").await;
                assert_eq!(status, StatusCode::OK, "{body}");
                let xfcc = json(&body)["headers"]["x-forwarded-client-cert"].clone();
                assert_eq!(xfcc, format!("By={SERVER_ID};URI={CLIENT_ID}"));
            }
        })
    });
    for call in futures::future::join_all(calls).await {
        call.unwrap();
    }
    // Each worker opened its own HTTP/2 connection to the server.
    assert_eq!(mesh.client.proxy.pools.sizes().0, 2);
    let mut s = TcpStream::connect(mesh.tcp_vip).await.unwrap();
    s.write_all(b"tcp on a worker").await.unwrap();
    let mut buf = [0u8; 15];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"tcp on a worker");
    drop(s);
    assert_eq!(mesh.client.shutdown().await, 0);
    assert_eq!(mesh.server.shutdown().await, 0);
}

#[tokio::test]
async fn http2_prior_knowledge_and_streaming_with_trailers() {
    let mesh = Mesh::start(MeshOptions {
        http2_app: true,
        ..Default::default()
    })
    .await;
    // Plain HTTP/2 request.
    let mut s = common::h2::<Empty<Bytes>>(mesh.outbound).await;
    let uri = format!("http://{}/h2", mesh.authority());
    let resp = s
        .send_request(Request::get(&uri).body(Empty::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let report = json(std::str::from_utf8(&body).unwrap());
    assert_eq!(report["version"], "HTTP/2.0", "the app cluster is HTTP/2");
    assert!(report["headers"]["x-forwarded-client-cert"].is_string());

    // Streaming: each message comes back before the next is sent; request
    // trailers come back as response trailers (gRPC's grpc-status path).
    let (tx, rx) = futures::channel::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
    let mut s = common::h2(mesh.outbound).await;
    let req = Request::post(format!("http://{}/stream", mesh.authority()))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(StreamBody::new(rx))
        .unwrap();
    let mut tx = tx;
    let send = tokio::spawn(async move { s.send_request(req).await });
    tx.send(Ok(Frame::data(Bytes::from_static(b"one"))))
        .await
        .unwrap();
    let resp = send.await.unwrap().unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("first message echoed before the request ended: bodies stream")
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), Bytes::from_static(b"one"));
    tx.send(Ok(Frame::data(Bytes::from_static(b"two"))))
        .await
        .unwrap();
    let second = body.frame().await.unwrap().unwrap();
    assert_eq!(second.into_data().unwrap(), Bytes::from_static(b"two"));
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    tx.send(Ok(Frame::trailers(trailers))).await.unwrap();
    drop(tx);
    let mut got_trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        if let Ok(t) = frame.into_trailers() {
            got_trailers = Some(t);
        }
    }
    assert_eq!(
        got_trailers.expect("trailers")["grpc-status"],
        "0",
        "trailers cross both proxies"
    );
    let client_metrics = metrics(mesh.client.admin.metrics).await;
    assert!(
        client_metrics.contains("request_protocol=\"grpc\""),
        "{client_metrics}"
    );
}

#[tokio::test]
async fn tcp_is_tunnelled_over_mtls() {
    let mesh = Mesh::start(MeshOptions::default()).await;
    let mut s = TcpStream::connect(mesh.tcp_vip).await.unwrap();
    s.write_all(b"ping over the mesh").await.unwrap();
    let mut buf = [0u8; 18];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping over the mesh");
    drop(s);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let m = metrics(mesh.server.admin.metrics).await;
    assert!(
        m.lines()
            .any(|l| l.starts_with("istio_tcp_connections_opened_total{")
                && l.contains(&format!("source_principal=\"{CLIENT_ID}\""))),
        "{m}"
    );
    assert!(
        m.lines()
            .any(|l| l.starts_with("istio_tcp_received_bytes_total{") && l.ends_with(" 18")),
        "{m}"
    );
}

#[tokio::test]
async fn websocket_upgrades_pass_through() {
    let mesh = Mesh::start(MeshOptions::default()).await;
    let stream = TcpStream::connect(mesh.outbound).await.unwrap();
    let url = format!("ws://{}/ws", mesh.authority());
    let (mut ws, resp) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    for text in ["hello", "mesh"] {
        ws.send(tokio_tungstenite::tungstenite::Message::text(text))
            .await
            .unwrap();
        let echoed = ws.next().await.unwrap().unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }
}

#[tokio::test]
async fn strict_refuses_plaintext_permissive_accepts_it() {
    let strict = Mesh::start(MeshOptions::default()).await;
    let s = TcpStream::connect(strict.server_http_inbound())
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get("/")
        .header("host", "echo")
        .body(Empty::<Bytes>::new())
        .unwrap();
    assert!(
        sender.send_request(req).await.is_err(),
        "a plaintext client must not reach a STRICT workload"
    );

    let permissive = Mesh::start(MeshOptions {
        mode: Mtls::Permissive,
        ..Default::default()
    })
    .await;
    let mut s = h1(permissive.server_http_inbound()).await;
    let (status, _, body) = get(&mut s, "echo", "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        json(&body)["headers"]
            .get("x-forwarded-client-cert")
            .is_none(),
        "plaintext callers carry no identity"
    );
    // Mesh traffic still uses mTLS under PERMISSIVE.
    let mut s = h1(permissive.outbound).await;
    let (status, _, body) = get(&mut s, &permissive.authority(), "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(json(&body)["headers"]["x-forwarded-client-cert"].is_string());

    let disabled = Mesh::start(MeshOptions {
        mode: Mtls::Disable,
        ..Default::default()
    })
    .await;
    let mut s = h1(disabled.server_http_inbound()).await;
    assert_eq!(get(&mut s, "echo", "/").await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_server_from_another_trust_domain_or_identity_is_refused() {
    let foreign = Mesh::start(MeshOptions {
        foreign_server: true,
        ..Default::default()
    })
    .await;
    let mut s = h1(foreign.outbound).await;
    let (status, headers, body) = get(&mut s, &foreign.authority(), "/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(headers["x-weft-reason"], "upstream_connect_failure");
    assert!(body.contains("mTLS handshake"), "{body}");

    let wrong_id = Mesh::start(MeshOptions {
        expected_ids: vec!["spiffe://cluster.local/ns/test/sa/someone-else".into()],
        ..Default::default()
    })
    .await;
    let mut s = h1(wrong_id.outbound).await;
    let (status, _, body) = get(&mut s, &wrong_id.authority(), "/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("not one expected"), "{body}");
}

#[tokio::test]
async fn a_client_certificate_from_another_root_is_refused() {
    let mesh = Mesh::start(MeshOptions::default()).await;
    let other = common::certs::Ca::new("other-root");
    // Same trust domain name, different root: the chain does not verify.
    let intruder = weft_proxy::tls::IdentityStore::new(other.workload(
        common::TD,
        "test",
        "client",
        &[&other, &mesh.ca],
    ))
    .unwrap();
    assert_refused(&mesh, &intruder).await;
    // Same root, another trust domain: refused by the trust domain check.
    let other_domain = weft_proxy::tls::IdentityStore::new(mesh.ca.workload(
        "other.domain",
        "test",
        "client",
        &[&mesh.ca],
    ))
    .unwrap();
    assert_refused(&mesh, &other_domain).await;
    // A mesh member gets through the same way (the check can pass).
    let member = weft_proxy::tls::IdentityStore::new(mesh.ca.workload(
        common::TD,
        "test",
        "client",
        &[&mesh.ca],
    ))
    .unwrap();
    let n = call_inbound(&mesh, &member).await.unwrap();
    assert!(n > 0);
}

async fn call_inbound(
    mesh: &Mesh,
    who: &weft_proxy::tls::IdentityStore,
) -> Result<usize, std::io::Error> {
    let config = who
        .current()
        .client_config(
            std::sync::Arc::from(vec![SERVER_ID.to_owned()]),
            b"http/1.1",
        )
        .unwrap();
    let tcp = TcpStream::connect(mesh.server_http_inbound())
        .await
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(config);
    let mut tls = connector
        .connect(weft_proxy::tls::mesh_server_name("echo"), tcp)
        .await?;
    tls.write_all(b"GET / HTTP/1.1\r\nhost: echo\r\n\r\n")
        .await?;
    let mut buf = [0u8; 64];
    tls.read(&mut buf).await
}

async fn assert_refused(mesh: &Mesh, who: &weft_proxy::tls::IdentityStore) {
    let result = call_inbound(mesh, who).await;
    assert!(
        !matches!(result, Ok(n) if n > 0),
        "a foreign client certificate must be refused: {result:?}"
    );
}

#[tokio::test]
async fn rotating_certificates_drops_no_request() {
    let mesh = Mesh::start(MeshOptions::default()).await;
    let authority = mesh.authority();
    let outbound = mesh.outbound;
    let load = tokio::spawn(async move {
        let mut ok = 0;
        let mut s = h1(outbound).await;
        for i in 0..150 {
            // Every 30 requests a new downstream connection.
            if i % 30 == 0 {
                s = h1(outbound).await;
            }
            let (status, _, body) = get(&mut s, &authority, "/rotate").await;
            assert_eq!(status, StatusCode::OK, "request {i}: {body}");
            ok += 1;
        }
        ok
    });
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        mesh.client
            .proxy
            .identity
            .replace(mesh.ca.workload(common::TD, "test", "client", &[&mesh.ca]))
            .unwrap();
        mesh.server
            .proxy
            .identity
            .replace(mesh.ca.workload(common::TD, "test", "echo", &[&mesh.ca]))
            .unwrap();
    }
    assert_eq!(load.await.unwrap(), 150);
    assert_eq!(mesh.client.proxy.identity.current().generation, 6);
    // New connections use the newest certificate.
    let mut s = h1(mesh.outbound).await;
    assert_eq!(get(&mut s, &mesh.authority(), "/").await.0, StatusCode::OK);
}

#[tokio::test]
async fn drain_finishes_in_flight_requests_and_stops_accepting() {
    let mesh = Mesh::start(MeshOptions::default()).await;
    let authority = mesh.authority();
    let outbound = mesh.outbound;
    let mut s = h1(outbound).await;
    let in_flight = tokio::spawn(async move { get(&mut s, &authority, "/slow").await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let started = std::time::Instant::now();
    let left = mesh.client.shutdown().await;
    assert_eq!(left, 0, "every connection closed within the deadline");
    let (status, _, body) = in_flight.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(started.elapsed() < Duration::from_secs(4));
    // No longer accepting: the connection is refused or closed unanswered.
    let refused = match TcpStream::connect(outbound).await {
        Err(_) => true,
        Ok(mut c) => {
            let _ = c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await;
            let mut buf = [0u8; 16];
            matches!(
                tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf)).await,
                Ok(Ok(0)) | Ok(Err(_)) | Err(_)
            )
        }
    };
    assert!(refused);
}

#[tokio::test]
async fn no_healthy_endpoint_is_a_clear_503() {
    let mesh = Mesh::start(MeshOptions::default()).await;
    let cluster = envoy::outbound_name(mesh.outbound.port(), FQDN);
    let cla = envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment {
        cluster_name: cluster.clone(),
        ..Default::default()
    };
    mesh.client
        .proxy
        .config
        .apply(
            type_url::ENDPOINT,
            vec![(cluster.clone(), envoy::any(&cla))],
            &[],
        )
        .unwrap();
    let mut s = h1(mesh.outbound).await;
    let (status, headers, body) = get(&mut s, &mesh.authority(), "/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["x-weft-reason"], "no_healthy_upstream");
    assert!(body.contains(&cluster), "{body}");
}

#[tokio::test]
async fn a_bad_update_is_refused_naming_the_field_and_the_last_good_config_stays() {
    let mesh = Mesh::start(MeshOptions::default()).await;
    let config = &mesh.client.proxy.config;
    let mut bad = envoy_types::pb::envoy::config::listener::v3::Listener {
        name: "virtualOutbound".into(),
        address: Some(envoy::addr("0.0.0.0", 15001)),
        ..Default::default()
    };
    bad.filter_chains.push(
        envoy_types::pb::envoy::config::listener::v3::FilterChain {
            filters: vec![envoy_types::pb::envoy::config::listener::v3::Filter {
                name: "envoy.filters.network.redis_proxy".into(),
                config_type: Some(
                    envoy_types::pb::envoy::config::listener::v3::filter::ConfigType::TypedConfig(
                        envoy_types::pb::google::protobuf::Any {
                            type_url: "type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy".into(),
                            value: vec![],
                        },
                    ),
                ),
            }],
            ..Default::default()
        },
    );
    let before = config.current();
    let err = config
        .apply(
            type_url::LISTENER,
            vec![("virtualOutbound".into(), envoy::any(&bad))],
            &[],
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("Listener \"virtualOutbound\": filter_chains[0].filters[0].typed_config"),
        "{err}"
    );
    assert!(err.contains("redis_proxy"), "{err}");
    assert!(std::sync::Arc::ptr_eq(&before, &config.current()));
    assert_eq!(config.last_error().as_deref(), Some(err.as_str()));
    let mut s = h1(mesh.outbound).await;
    assert_eq!(get(&mut s, &mesh.authority(), "/").await.0, StatusCode::OK);
}

#[tokio::test]
async fn rewritten_app_probes_are_served_on_the_status_port() {
    common::init_logs();
    let ca = common::certs::Ca::new("mesh-root");
    let app = common::echo::http().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let probes = weft_proxy::admin::probes::parse(&format!(
        r#"{{"/app-health/app/readyz":{{"httpGet":{{"path":"/ready","port":{}}}}},
            "/app-health/app/livez":{{"httpGet":{{"path":"/live","port":{}}},"timeoutSeconds":1}}}}"#,
        app.port(),
        closed.port()
    ))
    .unwrap();
    let running = weft_proxy::run::start_sidecar(
        weft_proxy::config::ConfigHandle::default(),
        std::sync::Arc::new(
            weft_proxy::tls::IdentityStore::new(ca.workload(common::TD, "test", "app", &[&ca]))
                .unwrap(),
        ),
        weft_proxy::run::SidecarOptions {
            outbound: vec![],
            inbound: vec![],
            admin: weft_proxy::run::AdminAddrs::ephemeral(),
            settings: common::settings("app"),
            app_probes: probes,
            drain_deadline: Duration::from_secs(1),
        },
    )
    .await
    .unwrap();
    let mut s = h1(running.admin.status).await;
    assert_eq!(
        get(&mut s, "status", "/app-health/app/readyz").await.0,
        StatusCode::OK
    );
    assert_eq!(
        get(&mut s, "status", "/app-health/app/livez").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        get(&mut s, "status", "/app-health/other/readyz").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn grpc_bidirectional_streaming_with_tonic() {
    use envoy_types::pb::google::protobuf::StringValue;
    let mesh = Mesh::start(MeshOptions {
        http2_app: true,
        ..Default::default()
    })
    .await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", mesh.outbound))
        .unwrap()
        .origin(format!("http://{}", mesh.authority()).parse().unwrap())
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let (mut tx, rx) = futures::channel::mpsc::channel::<StringValue>(1);
    tx.send(StringValue {
        value: "one".into(),
    })
    .await
    .unwrap();
    let resp = grpc
        .streaming(
            tonic::Request::new(rx),
            http::uri::PathAndQuery::from_static(common::echo::GRPC_BIDI),
            tonic_prost::ProstCodec::<StringValue, StringValue>::default(),
        )
        .await
        .unwrap();
    let mut replies = resp.into_inner();
    let first = tokio::time::timeout(Duration::from_secs(5), replies.message())
        .await
        .expect("the first reply arrives while the call is open")
        .unwrap()
        .unwrap();
    assert_eq!(first.value, "echo:one");
    tx.send(StringValue {
        value: "two".into(),
    })
    .await
    .unwrap();
    assert_eq!(replies.message().await.unwrap().unwrap().value, "echo:two");
    drop(tx);
    assert!(
        replies.message().await.unwrap().is_none(),
        "clean end (grpc-status 0 trailer)"
    );
    let m = metrics(mesh.server.admin.metrics).await;
    assert!(
        m.lines().any(|l| l.starts_with("istio_requests_total{")
            && l.contains("request_protocol=\"grpc\"")
            && l.contains(&format!("source_principal=\"{CLIENT_ID}\""))),
        "{m}"
    );
}

#[tokio::test]
async fn connect_tunnels_and_h2c_upgrade_requests_pass() {
    let mesh = Mesh::start(MeshOptions::default()).await;
    let mut s = TcpStream::connect(mesh.outbound).await.unwrap();
    let authority = mesh.authority();
    s.write_all(format!("CONNECT {authority} HTTP/1.1\r\nhost: {authority}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    s.write_all(b"tunnelled bytes").await.unwrap();
    let mut buf = [0u8; 15];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"tunnelled bytes");

    // An h2c upgrade the application declines is answered over HTTP/1.1.
    let mut c = h1(mesh.outbound).await;
    let req = Request::get("/h2c")
        .header("host", mesh.authority())
        .header("connection", "Upgrade, HTTP2-Settings")
        .header("upgrade", "h2c")
        .header("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA")
        .body(Empty::new())
        .unwrap();
    let resp = c.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let report = json(std::str::from_utf8(&body).unwrap());
    assert_eq!(report["headers"]["upgrade"], "h2c");
    assert!(report["headers"]["http2-settings"].is_string());
}

#[tokio::test]
async fn connect_failures_are_retried_on_another_endpoint() {
    use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
    use envoy_types::pb::envoy::config::route::v3::{RetryPolicy, RouteConfiguration, route};
    use envoy_types::pb::google::protobuf::UInt32Value;
    use prost::Message;

    let mesh = Mesh::start(MeshOptions::default()).await;
    let config = &mesh.client.proxy.config;
    let cluster = envoy::outbound_name(mesh.outbound.port(), FQDN);
    let resources = config.resources();
    // A second endpoint nobody listens on (plaintext: not meshed).
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut cla = ClusterLoadAssignment::decode(
        resources
            .get(type_url::ENDPOINT, &cluster)
            .unwrap()
            .value
            .as_slice(),
    )
    .unwrap();
    let mut extra = cla.endpoints[0].lb_endpoints[0].clone();
    extra.metadata = None;
    if let Some(
        envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier::Endpoint(ep),
    ) = &mut extra.host_identifier
    {
        ep.address = Some(envoy::addr("127.0.0.1", dead.port()));
    }
    cla.endpoints[0].lb_endpoints.push(extra);
    config
        .apply(
            type_url::ENDPOINT,
            vec![(cluster.clone(), envoy::any(&cla))],
            &[],
        )
        .unwrap();

    // Without retries, round robin sends every other request to the dead one.
    let mut s = h1(mesh.outbound).await;
    let mut failures = 0;
    for _ in 0..10 {
        let (status, headers, _) = get(&mut s, &mesh.authority(), "/").await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(headers["x-weft-reason"], "upstream_connect_failure");
            failures += 1;
        }
    }
    assert_eq!(
        failures, 5,
        "round robin alternates between the two endpoints"
    );

    let route_name = mesh.outbound.port().to_string();
    let mut rc = RouteConfiguration::decode(
        resources
            .get(type_url::ROUTE, &route_name)
            .unwrap()
            .value
            .as_slice(),
    )
    .unwrap();
    if let Some(route::Action::Route(ra)) = &mut rc.virtual_hosts[0].routes[0].action {
        ra.retry_policy = Some(RetryPolicy {
            retry_on: "connect-failure,refused-stream".into(),
            num_retries: Some(UInt32Value { value: 2 }),
            ..Default::default()
        });
    }
    config
        .apply(type_url::ROUTE, vec![(route_name, envoy::any(&rc))], &[])
        .unwrap();
    for _ in 0..10 {
        let (status, _, body) = get(&mut s, &mesh.authority(), "/").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}
