//! weftd on the host with the cluster's kubeconfig: CA from a real
//! `cacerts` Secret, tokens from the real TokenRequest API, reviewed by the
//! real TokenReview API.
//!
//! `WEFT_E2E_CLUSTER_A=<x> cargo test -p weftd --test ca_cluster -- --ignored`

// weft_e2e::Error carries kube::Error for readable failures; built once per
// failing test.
#![allow(clippy::result_large_err)]

use std::time::SystemTime;

use clap::Parser;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{ObjectMeta, PostParams};
use rcgen::{CertificateParams, KeyPair, SanType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::{Code, Request};
use weft_e2e::{Cluster, TestNamespace, ensure};
use weftd::ca::CaFiles;
use weftd::ca::pb::CreateCertificateRequest;
use weftd::ca::pb::certificate_service_client::CertificateServiceClient;
use weftd::config::Config;
use weftd::run::{self, RunError};
use x509_parser::prelude::{FromDer, X509Certificate};

const AUDIENCE: &str = "istio-ca";

fn config(cluster: &Cluster, namespace: &str, secret: &str) -> Config {
    let kubeconfig = cluster.kubeconfig().display().to_string();
    Config::try_parse_from([
        "weftd",
        "--revision",
        "it",
        "--namespace",
        namespace,
        "--ca-secret",
        secret,
        "--kubeconfig",
        &kubeconfig,
        "--listen-address",
        "127.0.0.1",
        "--grpc-tls-port",
        "0",
        "--monitoring-port",
        "0",
        "--webhook-port",
        "0",
        "--token-audience",
        AUDIENCE,
    ])
    .expect("flags parse")
}

async fn token(ns: &TestNamespace, sa: &str, audience: &str) -> Result<String, weft_e2e::Error> {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![audience.to_owned()],
            expiration_seconds: Some(600),
            ..Default::default()
        },
        ..Default::default()
    };
    let created = ns
        .api::<ServiceAccount>()
        .create_token_request(sa, &PostParams::default(), &request)
        .await?;
    Ok(created.status.map(|s| s.token).unwrap_or_default())
}

fn csr(key: &KeyPair, uri: &str) -> String {
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::URI(uri.try_into().expect("ia5"))];
    params
        .serialize_request(key)
        .and_then(|c| c.pem())
        .expect("csr")
}

fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut req = Request::new(message);
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii token"),
    );
    req
}

#[tokio::test]
#[ignore = "needs the local cluster: run via make test-e2e"]
async fn issues_certificates_for_real_service_account_tokens() -> Result<(), weft_e2e::Error> {
    weft_e2e::init_tracing();
    let cluster = Cluster::a().await?;
    let ns = TestNamespace::create(&cluster, "weftd-ca").await?;
    let namespace = ns.name().to_owned();

    // A missing CA Secret stops weftd with an actionable message.
    match run::start(&config(&cluster, &namespace, "no-such-cacerts")).await {
        Err(RunError::CaSecretMissing { .. }) => {}
        other => {
            return Err(weft_e2e::Error::Assert(format!(
                "expected CaSecretMissing, got {other:?}"
            )));
        }
    }

    // The CA Secret, in Istio's cacerts layout.
    let day = std::time::Duration::from_secs(24 * 3600);
    let files =
        CaFiles::generate("cluster.local", 3650 * day, 365 * day, SystemTime::now()).expect("CA");
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("cacerts".into()),
            ..Default::default()
        },
        data: Some(files.to_secret_data()),
        ..Default::default()
    };
    ns.api::<Secret>()
        .create(&PostParams::default(), &secret)
        .await?;
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("workload".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    ns.api::<ServiceAccount>()
        .create(&PostParams::default(), &sa)
        .await?;

    let running = run::start(&config(&cluster, &namespace, "cacerts"))
        .await
        .map_err(|e| weft_e2e::Error::Assert(format!("weftd did not start: {e}")))?;
    let root = running.authority.trust_bundle_pem();
    let der = |p: &str| ::pem::parse(p).map(|p| p.contents().to_vec()).ok();
    ensure(der(&root) == der(&files.root_cert), || {
        "trust bundle is the Secret's root".into()
    })?;

    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&root))
        .domain_name(format!("weftd-it.{namespace}.svc"));
    let channel = Channel::from_shared(format!("https://{}", running.grpc_tls_addr))
        .expect("uri")
        .tls_config(tls)
        .map(|e| e.connect_lazy())
        .map_err(|e| weft_e2e::Error::Assert(format!("TLS client: {e}")))?;
    let mut client = CertificateServiceClient::new(channel);

    // A real projected-style token with the mesh audience → certificate.
    let want = format!("spiffe://cluster.local/ns/{namespace}/sa/workload");
    let key = KeyPair::generate().expect("key");
    let good = token(&ns, "workload", AUDIENCE).await?;
    let resp = client
        .create_certificate(with_token(
            CreateCertificateRequest {
                csr_pem: csr(&key, &want),
                validity_seconds: 3600,
            },
            &good,
        ))
        .await
        .map_err(|s| weft_e2e::Error::Assert(format!("CSR refused: {s:?}")))?
        .into_inner();
    let leaf = ::pem::parse(&resp.cert_chain_pem[0]).expect("leaf PEM");
    let (_, leaf) = X509Certificate::from_der(leaf.contents()).expect("leaf parses");
    let san = leaf
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|s| format!("{:?}", s.value.general_names))
        .unwrap_or_default();
    ensure(san.contains(&want), || {
        format!("leaf SAN {san} should be {want}")
    })?;
    ensure(resp.trust_bundle_pem == root, || "trust bundle".into())?;

    // The same token asking for another identity → PermissionDenied.
    let status = client
        .create_certificate(with_token(
            CreateCertificateRequest {
                csr_pem: csr(
                    &key,
                    &format!("spiffe://cluster.local/ns/{namespace}/sa/default"),
                ),
                validity_seconds: 0,
            },
            &good,
        ))
        .await
        .expect_err("other identity refused");
    ensure(status.code() == Code::PermissionDenied, || {
        format!("{status:?}")
    })?;

    // A token for another audience → Unauthenticated, with the API server's reason.
    let wrong = token(&ns, "workload", "not-the-mesh").await?;
    let status = client
        .create_certificate(with_token(
            CreateCertificateRequest {
                csr_pem: csr(&key, &want),
                validity_seconds: 0,
            },
            &wrong,
        ))
        .await
        .expect_err("wrong audience refused");
    ensure(status.code() == Code::Unauthenticated, || {
        format!("{status:?}")
    })?;
    tracing::info!(message = status.message(), "wrong-audience refusal");

    let snap = running.ca_metrics.snapshot();
    ensure(snap.signed == 1 && snap.refused_total() == 2, || {
        format!("metrics {snap:?}")
    })?;

    // xDS on the same port: with the issued certificate the stream is
    // accepted and the proxy registered under its certified identity.
    let channel = |identity: Option<Identity>| {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&root))
            .domain_name(format!("weftd-it.{namespace}.svc"));
        if let Some(identity) = identity {
            tls = tls.identity(identity);
        }
        Channel::from_shared(format!("https://{}", running.grpc_tls_addr))
            .expect("uri")
            .tls_config(tls)
            .map(|e| e.connect_lazy())
    };
    let ads_request = DiscoveryRequest {
        node: Some(Node {
            id: format!("sidecar~10.0.0.1~workload-0.{namespace}~{namespace}.svc.cluster.local"),
            ..Default::default()
        }),
        type_url: weftd::resources::type_url::CLUSTER.to_owned(),
        ..Default::default()
    };
    let identity = Identity::from_pem(resp.cert_chain_pem.concat(), key.serialize_pem());
    let mut ads = AggregatedDiscoveryServiceClient::new(
        channel(Some(identity))
            .map_err(|e| weft_e2e::Error::Assert(format!("mTLS client: {e}")))?,
    );
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(ads_request.clone()).await.expect("queue request");
    let _stream = ads
        .stream_aggregated_resources(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|s| weft_e2e::Error::Assert(format!("ADS over mTLS refused: {s:?}")))?;
    let registered = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            if let Some(p) = running.registry.proxies().first() {
                return p.identity.clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .map_err(|_| weft_e2e::Error::Assert("proxy never registered".into()))?;
    ensure(registered == want, || {
        format!("registered proxy {registered} should carry the certified identity {want}")
    })?;

    // Without a client certificate the ADS stream is refused.
    let mut anonymous = AggregatedDiscoveryServiceClient::new(
        channel(None).map_err(|e| weft_e2e::Error::Assert(format!("TLS client: {e}")))?,
    );
    let refused = async {
        let mut stream = anonymous
            .stream_aggregated_resources(tokio_stream::iter(vec![ads_request.clone()]))
            .await?
            .into_inner();
        stream.message().await
    }
    .await;
    match refused {
        Err(status)
            if matches!(
                status.code(),
                Code::Unauthenticated | Code::PermissionDenied
            ) && status.message().contains("client certificate") => {}
        other => return Err(weft_e2e::Error::Assert(format!("anonymous ADS: {other:?}"))),
    }

    // 15014: the CA counters are exported.
    let io = |e: std::io::Error| weft_e2e::Error::Assert(format!("monitoring port: {e}"));
    let mut conn = tokio::net::TcpStream::connect(running.monitoring_addr)
        .await
        .map_err(io)?;
    conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: weftd\r\n\r\n")
        .await
        .map_err(io)?;
    let mut body = String::new();
    conn.read_to_string(&mut body).await.map_err(io)?;
    ensure(body.contains("weftd_ca_csr_signed_total 1"), || {
        format!("/metrics: {body}")
    })?;

    // 15017 serves TLS with a certificate from the mesh CA.
    let webhook_tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&root))
        .domain_name(format!("weftd-it.{namespace}.svc"));
    Channel::from_shared(format!("https://{}", running.webhook_addr))
        .expect("uri")
        .tls_config(webhook_tls)
        .map_err(|e| weft_e2e::Error::Assert(format!("webhook TLS config: {e}")))?
        .connect()
        .await
        .map_err(|e| weft_e2e::Error::Assert(format!("webhook TLS handshake: {e}")))?;

    running
        .shutdown()
        .await
        .map_err(|e| weft_e2e::Error::Assert(format!("shutdown: {e}")))?;
    ns.cleanup().await?;
    Ok(())
}
