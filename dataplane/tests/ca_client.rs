//! The CA client against weftd's real certificate service over TLS on
//! loopback (weftd is a dev-dependency only): a certificate for the pod's
//! SPIFFE ID, the token re-read on each call, refusals surfaced, renewal
//! at half-life delivered on the channel.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::authentication::v1::{TokenReviewStatus, UserInfo};
use tokio::net::TcpListener;
use weft_proxy::ca_client::CaError;
use weft_proxy::ca_client::{CaClient, CaClientConfig, renewal};
use weft_proxy::control_channel::WeftdAddress;
use weftd::ca::token::TokenError;
use weftd::ca::{Authority, CaMetrics, CaPolicy, CertificateServer, TokenReviewer};
use weftd::tls::{self, ServingCert};

const SERVER_NAME: &str = "weftd-default.weft-system.svc";

/// Accepts `shop-token` as `shop/echo` for audience `weft-ca`.
struct Tokens;

impl TokenReviewer for Tokens {
    async fn review(&self, token: &str, audience: &str) -> Result<TokenReviewStatus, TokenError> {
        let ok = token == "shop-token" && audience == "weft-ca";
        Ok(TokenReviewStatus {
            authenticated: Some(ok),
            audiences: ok.then(|| vec![audience.to_owned()]),
            user: ok.then(|| UserInfo {
                username: Some("system:serviceaccount:shop:echo".to_owned()),
                ..Default::default()
            }),
            error: (!ok).then(|| "invalid bearer token".to_owned()),
        })
    }
}

struct Ca {
    addr: SocketAddr,
    authority: Arc<Authority>,
    metrics: Arc<CaMetrics>,
}

async fn start_ca() -> Ca {
    let authority = Arc::new(Authority::generate("cluster.local", SystemTime::now()).expect("CA"));
    let serving =
        Arc::new(ServingCert::issue(&authority, &[SERVER_NAME.to_owned()]).expect("serving cert"));
    let config = tls::server_config(authority.roots_der(), serving).expect("tls config");
    let metrics = Arc::new(CaMetrics::default());
    let service = CertificateServer::new(
        authority.clone(),
        Tokens,
        CaPolicy {
            trust_domain: "cluster.local".into(),
            audience: "weft-ca".into(),
            default_ttl: Duration::from_secs(86400),
            max_ttl: Duration::from_secs(86400),
        },
        metrics.clone(),
    )
    .into_service();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tls::incoming(listener, config)),
    );
    Ca {
        addr,
        authority,
        metrics,
    }
}

struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(name: &str, root_pem: &str, token: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("weft-ca-client-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("root-cert.pem"), root_pem).expect("root");
        std::fs::write(dir.join("token"), token).expect("token");
        Self { dir }
    }

    fn config(&self, addr: SocketAddr, validity: Option<Duration>) -> CaClientConfig {
        CaClientConfig {
            weftd: WeftdAddress {
                address: addr.to_string(),
                server_name: Some(SERVER_NAME.to_owned()),
            },
            root_cert_path: self.dir.join("root-cert.pem"),
            token_path: self.dir.join("token"),
            trust_domain: "cluster.local".into(),
            namespace: "shop".into(),
            service_account: "echo".into(),
            validity,
        }
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn certificate_for_the_pod_and_refusals() {
    let ca = start_ca().await;
    let files = Files::new("basic", &ca.authority.trust_bundle_pem(), "shop-token\n");
    let client = CaClient::new(files.config(ca.addr, None));
    let cert = client.fetch().await.expect("issued");
    assert_eq!(cert.spiffe_id, "spiffe://cluster.local/ns/shop/sa/echo");
    assert_eq!(cert.roots, ca.authority.roots_der());
    let life = cert
        .not_after
        .duration_since(cert.received)
        .expect("future");
    assert!(life > Duration::from_secs(86000), "{life:?}");
    assert_eq!(ca.metrics.snapshot().signed, 1);

    // The token is re-read: a rotated (here: wrong) token is used at once.
    std::fs::write(files.dir.join("token"), "stolen-token").expect("token");
    match client.fetch().await {
        Err(CaError::Refused { code, message }) => {
            assert_eq!(code, tonic::Code::Unauthenticated, "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }

    // A root that weftd's certificate does not chain to: no connection.
    let stranger = Authority::generate("cluster.local", SystemTime::now()).expect("CA");
    let other = Files::new("stranger", &stranger.trust_bundle_pem(), "shop-token");
    let err = CaClient::new(other.config(ca.addr, None))
        .fetch()
        .await
        .expect_err("untrusted server");
    assert!(matches!(err, CaError::Channel(_)), "{err}");

    // Missing files say which file and which variable.
    let mut missing = files.config(ca.addr, None);
    missing.token_path = files.dir.join("nope");
    let err = CaClient::new(missing).fetch().await.expect_err("no token");
    assert!(err.to_string().contains("WEFT_TOKEN_PATH"), "{err}");
}

#[tokio::test]
async fn renews_at_half_life_on_the_channel() {
    let ca = start_ca().await;
    let files = Files::new("renew", &ca.authority.trust_bundle_pem(), "shop-token");
    // 4 s certificates: renewed about every 2 s.
    let client = CaClient::new(files.config(ca.addr, Some(Duration::from_secs(4))));
    let mut rx = renewal::start(client).await;
    let first = rx.borrow_and_update().clone();
    let started = tokio::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(10), rx.changed())
        .await
        .expect("renewed within 10 s")
        .expect("sender alive");
    let second = rx.borrow_and_update().clone();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1000),
        "renewed at half-life, not at once: {took:?}"
    );
    assert_ne!(first.chain, second.chain, "a new certificate");
    assert_ne!(
        first.key.secret_der(),
        second.key.secret_der(),
        "a new key for each certificate"
    );
    assert!(second.not_after > first.not_after);
    assert_eq!(ca.metrics.snapshot().signed, 2);
}
