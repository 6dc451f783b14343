//! Starts the echo servers on 127.0.0.1:0 and talks to them with the
//! crate's own clients: HTTP/1.1, h2c, gRPC, TCP, and the HTTPS webhook.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use weft_echo::webhook::{self, DenyRule};
use weft_echo::{
    ClientError, EchoReport, EchoServer, GrpcClientOptions, HttpClientOptions, Identity, Ports,
    TcpClientOptions,
};

fn identity() -> Identity {
    Identity {
        pod: "echo-abc".into(),
        namespace: "test-ns".into(),
        version: "v1".into(),
        hostname: "echo-abc".into(),
    }
}

struct Addrs {
    http_addr: std::net::SocketAddr,
    grpc_addr: std::net::SocketAddr,
    tcp_addr: std::net::SocketAddr,
}

async fn start() -> (Addrs, tokio::task::JoinHandle<()>) {
    let ports = Ports {
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        http: 0,
        grpc: 0,
        tcp: 0,
    };
    let server = EchoServer::bind(ports).await.expect("binds free ports");
    let addrs = Addrs {
        http_addr: server.http_addr,
        grpc_addr: server.grpc_addr,
        tcp_addr: server.tcp_addr,
    };
    let handle = tokio::spawn(async move {
        let _ = server.run(identity()).await;
    });
    (addrs, handle)
}

fn http_opts(url: String, http2: bool) -> HttpClientOptions {
    HttpClientOptions {
        url,
        http2,
        count: 2,
        headers: vec!["x-weft-test: yes".into()],
        expect_status: 200,
        timeout: Duration::from_secs(5),
        retry_for: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn http1_h2c_grpc_and_tcp() {
    let (server, handle) = start().await;

    for (http2, protocol) in [(false, "HTTP/1.1"), (true, "HTTP/2.0")] {
        let url = format!("http://{}/hello?x=1", server.http_addr);
        let mut out = Vec::new();
        let answers = weft_echo::client::http_client(&http_opts(url, http2), &mut out)
            .await
            .expect("echo answers");
        assert_eq!(answers.len(), 2);
        let text = String::from_utf8(out).expect("utf-8 output");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "one line per response: {text}");
        let report: EchoReport = serde_json::from_str(lines[0]).expect("a report per line");
        assert_eq!(report.protocol, protocol);
        assert_eq!(report.pod, "echo-abc");
        assert_eq!(report.namespace, "test-ns");
        assert_eq!(report.version, "v1");
        assert_eq!(report.method, "GET");
        assert_eq!(report.path, "/hello");
        assert_eq!(report.query.as_deref(), Some("x=1"));
        assert_eq!(
            report.headers.get("x-weft-test").map(String::as_str),
            Some("yes")
        );
        let client = report.client.expect("peer address reported");
        assert!(client.starts_with("127.0.0.1:"), "client {client}");
    }

    // ?status= and --expect-status
    let mut opts = http_opts(format!("http://{}/?status=503", server.http_addr), false);
    opts.count = 1;
    let err = weft_echo::client::http_client(&opts, &mut Vec::new())
        .await
        .expect_err("503 is not the expected 200");
    assert!(
        matches!(err, ClientError::UnexpectedStatus { got: 503, .. }),
        "{err}"
    );
    opts.expect_status = 503;
    weft_echo::client::http_client(&opts, &mut Vec::new())
        .await
        .expect("503 expected");

    // ?delay= waits (measured, not slept on)
    opts.url = format!("http://{}/?delay=200ms", server.http_addr);
    opts.expect_status = 200;
    let started = std::time::Instant::now();
    weft_echo::client::http_client(&opts, &mut Vec::new())
        .await
        .expect("delayed answer");
    assert!(started.elapsed() >= Duration::from_millis(200));

    // bad controls are a 400
    opts.url = format!("http://{}/?status=abc", server.http_addr);
    opts.expect_status = 400;
    weft_echo::client::http_client(&opts, &mut Vec::new())
        .await
        .expect("400 for a bad status");

    // /healthz
    opts.url = format!("http://{}/healthz", server.http_addr);
    opts.expect_status = 200;
    let answers = weft_echo::client::http_client(&opts, &mut Vec::new())
        .await
        .expect("healthz");
    assert_eq!(answers[0].body, "ok");

    // gRPC
    let mut out = Vec::new();
    let reports = weft_echo::client::grpc_client(
        &GrpcClientOptions {
            addr: format!("http://{}", server.grpc_addr),
            message: "ping".into(),
            count: 2,
            timeout: Duration::from_secs(5),
            retry_for: Duration::from_secs(5),
        },
        &mut out,
    )
    .await
    .expect("gRPC echo answers");
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0].message, "ping");
    assert_eq!(reports[0].pod, "echo-abc");
    assert!(reports[0].peer.starts_with("127.0.0.1:"));
    assert_eq!(String::from_utf8(out).expect("utf-8").lines().count(), 2);

    // TCP
    let reports = weft_echo::client::tcp_client(
        &TcpClientOptions {
            addr: server.tcp_addr.to_string(),
            message: "hello tcp".into(),
            count: 1,
            timeout: Duration::from_secs(5),
            retry_for: Duration::ZERO,
            connect_only: false,
        },
        &mut Vec::new(),
    )
    .await
    .expect("TCP echo");
    assert_eq!(reports[0].received, "hello tcp");

    handle.abort();
}

#[tokio::test]
async fn webhook_allows_and_denies_over_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let key = rcgen::KeyPair::generate().expect("key generation");
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    let cert = params.self_signed(&key).expect("self-signed cert");
    let dir = std::env::temp_dir().join(format!("weft-echo-webhook-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (cert_path, key_path) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");

    let tls = webhook::load_tls(&cert_path, &key_path).expect("loads the TLS identity");
    let rule = DenyRule::parse("weft.dev/deny", Some("no entry".into())).expect("rule");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handle = tokio::spawn(webhook::serve(listener, tls, rule));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).expect("root");
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));

    for (labels, allowed) in [
        (serde_json::json!({"weft.dev/deny": "yes"}), false),
        (serde_json::json!({"app": "x"}), true),
    ] {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let tls = connector.connect(name, tcp).await.expect("TLS handshake");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .expect("HTTP handshake");
        tokio::spawn(conn);
        let body = serde_json::json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {"uid": "u-1", "object": {"metadata": {"name": "c", "labels": labels}}}
        });
        let request = http::Request::post("/validate")
            .header("content-type", "application/json")
            .header("host", "localhost")
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("request");
        let response = sender.send_request(request).await.expect("response");
        assert_eq!(response.status(), 200);
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let answer: serde_json::Value = serde_json::from_slice(&bytes).expect("json answer");
        assert_eq!(answer["response"]["uid"], "u-1");
        assert_eq!(answer["response"]["allowed"], allowed);
        if !allowed {
            assert_eq!(answer["response"]["status"]["message"], "no entry");
        }
    }
    handle.abort();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn load_sends_every_due_request_at_its_rate_over_both_protocols() {
    let (server, handle) = start().await;
    for http2 in [false, true] {
        let opts = weft_echo::load::LoadOptions {
            url: format!("http://{}/bench", server.http_addr),
            http2,
            rate: 400,
            connections: 4,
            streams: 2,
            duration: Duration::from_millis(500),
            warmup: Duration::from_millis(250),
            timeout: Duration::from_secs(5),
        };
        let mut out = Vec::new();
        let summary = weft_echo::load::load(&opts, &mut out)
            .await
            .expect("load runs");
        // 400 req/s for 0.5 s: 200 requests due in the measured window,
        // every one answered 200.
        assert_eq!(
            (summary.requests, summary.errors),
            (200, 0),
            "http2={http2}"
        );
        assert!(summary.latency_ms.p50 > 0.0);
        assert!(summary.latency_ms.max >= summary.latency_from_send_ms.max);
        let printed: serde_json::Value =
            serde_json::from_slice(&out).expect("one JSON line on stdout");
        assert_eq!(printed["requests"], 200);
        assert_eq!(printed["target_rps"], 400);
    }
    handle.abort();
}

#[tokio::test]
async fn load_names_a_target_that_does_not_answer() {
    // A port nothing listens on: bound, then released.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let addr = free.local_addr().expect("has an address");
    drop(free);
    let opts = weft_echo::load::LoadOptions {
        url: format!("http://{addr}/"),
        http2: false,
        rate: 10,
        connections: 1,
        streams: 1,
        duration: Duration::from_secs(1),
        warmup: Duration::ZERO,
        timeout: Duration::from_secs(1),
    };
    let error = weft_echo::load::load(&opts, &mut Vec::new())
        .await
        .expect_err("nothing answers");
    assert!(
        error.to_string().contains(&addr.to_string()),
        "error names the address: {error}"
    );
    let zero_rate = weft_echo::load::LoadOptions { rate: 0, ..opts };
    assert!(matches!(
        weft_echo::load::load(&zero_rate, &mut Vec::new()).await,
        Err(weft_echo::load::LoadError::InvalidLoad(_))
    ));
}
