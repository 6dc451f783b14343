//! The proxy fed by weftd (`weft_proxy::connected`), against weftd's real
//! CA and xDS servers over TLS on loopback: the certificate comes first and
//! lands in the data path's IdentityStore; xDS updates land in the
//! ConfigHandle; a resource the data path cannot compile is NACKed with
//! its field and the last good snapshot stays; a renewed certificate
//! replaces the identity live.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use k8s_openapi::api::authentication::v1::{TokenReviewStatus, UserInfo};
use tokio::net::TcpListener;
use weft_proxy::connected::{self, WeftdSettings};
use weft_proxy::control_channel::WeftdAddress;
use weft_proxy::xds_client::{NodeInfo, ProxyMode};
use weftd::ca::token::TokenError;
use weftd::ca::{Authority, CaMetrics, CaPolicy, CertificateServer, TokenReviewer};
use weftd::metrics::Metrics;
use weftd::resources::{Resource, Resources, type_url};
use weftd::tls::{self, ServingCert};
use weftd::xds::{
    Authentication, DebounceConfig, ProxyRegistry, StaticSource, XdsConfig, XdsServer,
};

const SERVER_NAME: &str = "weftd-default.weft-system.svc";
const ID: &str = "spiffe://cluster.local/ns/shop/sa/echo";
const WAIT: Duration = Duration::from_secs(15);

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

fn cluster(name: &str, kind: cluster::DiscoveryType) -> Resource {
    Resource::from_message(
        name,
        type_url::CLUSTER,
        &Cluster {
            name: name.to_owned(),
            cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(kind as i32)),
            ..Default::default()
        },
    )
}

fn mesh(items: &[(&str, cluster::DiscoveryType)]) -> Resources {
    let mut r = Resources::default();
    for (name, kind) in items {
        r.insert(cluster(name, *kind));
    }
    r
}

async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn certificate_first_then_config_nack_keeps_last_good() {
    // weftd: CA (4 s certificates, so a renewal happens within the test)
    // and xDS over one TLS port.
    let authority = Arc::new(Authority::generate("cluster.local", SystemTime::now()).expect("CA"));
    let serving =
        Arc::new(ServingCert::issue(&authority, &[SERVER_NAME.to_owned()]).expect("serving cert"));
    let tls_config = tls::server_config(authority.roots_der(), serving).expect("tls");
    let ca = CertificateServer::new(
        authority.clone(),
        Tokens,
        CaPolicy {
            trust_domain: "cluster.local".into(),
            audience: "weft-ca".into(),
            default_ttl: Duration::from_secs(4),
            max_ttl: Duration::from_secs(4),
        },
        Arc::new(CaMetrics::default()),
    )
    .into_service();
    let source = Arc::new(StaticSource::new(mesh(&[(
        "outbound|8080||echo.shop.svc.cluster.local",
        cluster::DiscoveryType::Eds,
    )])));
    let registry = ProxyRegistry::default();
    let xds = XdsServer::new(
        source.clone(),
        XdsConfig {
            debounce: DebounceConfig {
                quiet: Duration::from_millis(10),
                max_delay: Duration::from_millis(100),
                ..DebounceConfig::default()
            },
            ..XdsConfig::default()
        },
        registry.clone(),
        Metrics::new(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ca)
            .add_service(xds.service(Authentication::ClientCertificate))
            .serve_with_incoming(tls::incoming(listener, tls_config)),
    );

    let dir: PathBuf = std::env::temp_dir().join(format!("weft-connected-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("root-cert.pem"), authority.trust_bundle_pem()).expect("root");
    std::fs::write(dir.join("token"), "shop-token").expect("token");
    let settings = WeftdSettings {
        weftd: WeftdAddress {
            address: addr.to_string(),
            server_name: Some(SERVER_NAME.to_owned()),
        },
        trust_domain: "cluster.local".into(),
        token_path: dir.join("token"),
        root_cert_path: dir.join("root-cert.pem"),
        node: NodeInfo {
            mode: ProxyMode::Sidecar,
            pod: "echo-1".into(),
            namespace: "shop".into(),
            service_account: "echo".into(),
            ips: vec!["10.0.0.7".into()],
            revision: None,
            cluster_domain: "cluster.local".into(),
        },
    };

    // 1. The identity is in the store when connect returns.
    let c = connected::connect(&settings).await.expect("connected");
    let first = c.identity.current();
    assert_eq!(first.id_text, ID);
    assert_eq!(first.roots, authority.roots_der());

    // 2. weftd's configuration reaches the ConfigHandle.
    until("the cluster is in the snapshot", || {
        c.config
            .current()
            .clusters
            .contains_key("outbound|8080||echo.shop.svc.cluster.local")
    })
    .await;

    // weftd answers every subscribed type, the empty ones too, so the
    // proxy is synced (ready) without waiting for its initial-fetch timeout.
    until("every type answered", || c.xds.borrow().synced).await;
    until("the handle is synced", || c.config.synced()).await;
    let answered = registry
        .proxies()
        .into_iter()
        .find(|p| p.identity == ID)
        .map(|p| {
            p.types
                .iter()
                .filter(|(_, t)| t.last_sent_version.is_some())
                .count()
        });
    assert_eq!(
        answered,
        Some(5),
        "CDS, EDS, LDS, RDS and SDS each answered"
    );

    // 3. A cluster the data path cannot compile: NACKed with the field,
    //    the last good snapshot stays.
    source.set(mesh(&[
        (
            "outbound|8080||echo.shop.svc.cluster.local",
            cluster::DiscoveryType::Eds,
        ),
        ("dns-cluster", cluster::DiscoveryType::LogicalDns),
    ]));
    until("weftd saw the NACK naming the field", || {
        registry.proxies().iter().any(|p| {
            p.identity == ID
                && p.types
                    .get(type_url::CLUSTER)
                    .and_then(|t| t.last_nack.as_ref())
                    .is_some_and(|n| n.message.contains("cluster_discovery_type"))
        })
    })
    .await;
    let snapshot = c.config.current();
    assert!(!snapshot.clusters.contains_key("dns-cluster"));
    assert!(
        snapshot
            .clusters
            .contains_key("outbound|8080||echo.shop.svc.cluster.local")
    );
    assert_eq!(c.xds.borrow().nacks, 1);

    // 4. The 4 s certificate is renewed at half-life and replaces the
    //    identity live.
    let mut generations = c.identity.subscribe();
    tokio::time::timeout(WAIT, generations.changed())
        .await
        .expect("renewed within the wait")
        .expect("store alive");
    let renewed = c.identity.current();
    assert_eq!(renewed.id_text, ID);
    assert_ne!(renewed.chain, first.chain, "a new certificate is in use");
    std::fs::remove_dir_all(&dir).ok();
}
