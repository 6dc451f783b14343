//! The CA over real TLS on loopback: a proxy without a certificate gets
//! one from a real CSR, then connects with it over mTLS and the server
//! sees its SPIFFE ID; without a mesh certificate it is refused.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use k8s_openapi::api::authentication::v1::{TokenReviewStatus, UserInfo};
use rcgen::{CertificateParams, KeyPair, SanType};
use tokio::net::TcpListener;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::{Code, Request, Response, Status};
use weftd::ca::pb::certificate_service_client::CertificateServiceClient;
use weftd::ca::pb::certificate_service_server::{CertificateService, CertificateServiceServer};
use weftd::ca::pb::{CreateCertificateRequest, CreateCertificateResponse};
use weftd::ca::token::TokenError;
use weftd::ca::{Authority, CaMetrics, CaPolicy, CertificateServer, TokenReviewer};
use weftd::tls::{self, ServingCert};

const SERVER_NAME: &str = "weftd-test.istio-system.svc";

/// Accepts one token, for `orders/orders-svc`, audience `istio-ca`.
struct OneToken;

impl TokenReviewer for OneToken {
    async fn review(&self, token: &str, audience: &str) -> Result<TokenReviewStatus, TokenError> {
        let ok = token == "orders-token" && audience == "istio-ca";
        Ok(TokenReviewStatus {
            authenticated: Some(ok),
            audiences: ok.then(|| vec![audience.to_owned()]),
            user: ok.then(|| UserInfo {
                username: Some("system:serviceaccount:orders:orders-svc".to_owned()),
                ..Default::default()
            }),
            error: (!ok).then(|| "invalid bearer token".to_owned()),
        })
    }
}

/// Stands in for xDS: answers with the caller's verified SPIFFE ID, or
/// refuses like the xDS server must when there is none.
struct WhoAmI;

#[tonic::async_trait]
impl CertificateService for WhoAmI {
    async fn create_certificate(
        &self,
        request: Request<CreateCertificateRequest>,
    ) -> Result<Response<CreateCertificateResponse>, Status> {
        let id = weftd::xds::peer::peer_identity(request.extensions())
            .map_err(|e| Status::unauthenticated(e.to_string()))?;
        Ok(Response::new(CreateCertificateResponse {
            cert_chain_pem: vec![id.to_string()],
            trust_bundle_pem: String::new(),
        }))
    }
}

async fn serve<S>(service: S, config: Arc<rustls::ServerConfig>) -> SocketAddr
where
    S: CertificateService,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let incoming = tls::incoming(listener, config);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(CertificateServiceServer::new(service))
            .serve_with_incoming(incoming),
    );
    addr
}

async fn client(
    addr: SocketAddr,
    root_pem: &str,
    identity: Option<Identity>,
) -> Result<CertificateServiceClient<Channel>, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(root_pem))
        .domain_name(SERVER_NAME);
    if let Some(identity) = identity {
        tls = tls.identity(identity);
    }
    let channel = Channel::from_shared(format!("https://{addr}"))
        .expect("uri")
        .tls_config(tls)?
        .connect()
        .await?;
    Ok(CertificateServiceClient::new(channel))
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
        format!("Bearer {token}").parse().expect("ascii"),
    );
    req
}

#[tokio::test]
async fn csr_over_tls_then_mtls_identity() {
    let authority = Arc::new(Authority::generate("cluster.local", SystemTime::now()).expect("CA"));
    let names = vec![SERVER_NAME.to_owned()];
    let serving = Arc::new(ServingCert::issue(&authority, &names).expect("serving cert"));
    let config = tls::server_config(authority.roots_der(), serving).expect("tls config");
    let metrics = Arc::new(CaMetrics::default());
    let ca = CertificateServer::new(
        authority.clone(),
        OneToken,
        CaPolicy {
            trust_domain: "cluster.local".into(),
            audience: "istio-ca".into(),
            default_ttl: std::time::Duration::from_secs(86400),
            max_ttl: std::time::Duration::from_secs(86400),
        },
        metrics.clone(),
    );
    let ca_addr = serve(ca, config.clone()).await;
    let whoami_addr = serve(WhoAmI, config).await;
    let root = authority.trust_bundle_pem();

    // 1. No client certificate yet: TLS works, the CA signs a real CSR.
    let key = KeyPair::generate().expect("key");
    let mut ca_client = client(ca_addr, &root, None)
        .await
        .expect("TLS without client cert");
    let want = "spiffe://cluster.local/ns/orders/sa/orders-svc";
    let resp = ca_client
        .create_certificate(with_token(
            CreateCertificateRequest {
                csr_pem: csr(&key, want),
                validity_seconds: 0,
            },
            "orders-token",
        ))
        .await
        .expect("signed")
        .into_inner();
    assert_eq!(resp.trust_bundle_pem, root);
    assert_eq!(metrics.snapshot().signed, 1);

    // A token for orders-svc asking for another identity is refused.
    let status = ca_client
        .create_certificate(with_token(
            CreateCertificateRequest {
                csr_pem: csr(&key, "spiffe://cluster.local/ns/orders/sa/admin"),
                validity_seconds: 0,
            },
            "orders-token",
        ))
        .await
        .expect_err("refused");
    assert_eq!(
        status.code(),
        Code::PermissionDenied,
        "{}",
        status.message()
    );

    // 2. mTLS with the issued certificate: the server sees the identity.
    let identity = Identity::from_pem(resp.cert_chain_pem.concat(), key.serialize_pem());
    let mut mtls = client(whoami_addr, &root, Some(identity))
        .await
        .expect("mTLS");
    let seen = mtls
        .create_certificate(Request::new(CreateCertificateRequest::default()))
        .await
        .expect("identified")
        .into_inner();
    assert_eq!(seen.cert_chain_pem, vec![want.to_owned()]);

    // 3. Without a client certificate the stream is refused.
    let mut anonymous = client(whoami_addr, &root, None).await.expect("TLS");
    let status = anonymous
        .create_certificate(Request::new(CreateCertificateRequest::default()))
        .await
        .expect_err("no identity");
    assert_eq!(status.code(), Code::Unauthenticated, "{}", status.message());

    // 4. A certificate from another CA does not get through the handshake.
    let stranger_ca = Authority::generate("cluster.local", SystemTime::now()).expect("CA");
    let stranger_key = KeyPair::generate().expect("key");
    let stranger = stranger_ca
        .issue(
            &stranger_key,
            vec![SanType::URI(want.try_into().expect("ia5"))],
            std::time::Duration::from_secs(3600),
            SystemTime::now(),
        )
        .expect("issued");
    let forged = Identity::from_pem(stranger.chain_pem.concat(), stranger_key.serialize_pem());
    let refused = match client(whoami_addr, &root, Some(forged)).await {
        Err(_) => true,
        Ok(mut c) => c
            .create_certificate(Request::new(CreateCertificateRequest::default()))
            .await
            .is_err(),
    };
    assert!(
        refused,
        "a certificate from another CA must not be accepted"
    );
}
