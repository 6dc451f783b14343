use std::collections::BTreeMap;

use k8s_openapi::api::authentication::v1::{TokenReviewStatus, UserInfo};
use rcgen::{CertificateParams, KeyPair};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::*;
use crate::ca::token::TokenError;

/// Plays the API server: knows tokens by value, with their service
/// account, audiences and whether they expired.
struct FakeApiServer {
    tokens: BTreeMap<&'static str, (&'static str, Vec<&'static str>, bool)>,
    down: bool,
}

impl TokenReviewer for FakeApiServer {
    async fn review(&self, token: &str, audience: &str) -> Result<TokenReviewStatus, TokenError> {
        if self.down {
            return Err(TokenError::Review("connection refused".into()));
        }
        let refused = |error: &str| TokenReviewStatus {
            authenticated: Some(false),
            error: Some(error.to_owned()),
            ..Default::default()
        };
        Ok(match self.tokens.get(token) {
            None => refused("invalid bearer token"),
            Some((_, _, true)) => refused("service account token has expired"),
            Some((_, auds, _)) if !auds.contains(&audience) => {
                refused("token audiences is invalid for the target audiences")
            }
            Some((user, _, _)) => TokenReviewStatus {
                authenticated: Some(true),
                audiences: Some(vec![audience.to_owned()]),
                user: Some(UserInfo {
                    username: Some((*user).to_owned()),
                    ..Default::default()
                }),
                error: None,
            },
        })
    }
}

fn server(down: bool) -> (CertificateServer<FakeApiServer>, Arc<CaMetrics>) {
    let authority = Arc::new(Authority::generate("cluster.local", SystemTime::now()).expect("CA"));
    let metrics = Arc::new(CaMetrics::default());
    let api = FakeApiServer {
        tokens: BTreeMap::from([
            (
                "orders-token",
                (
                    "system:serviceaccount:orders:orders-svc",
                    vec!["istio-ca"],
                    false,
                ),
            ),
            (
                "api-token",
                (
                    "system:serviceaccount:orders:orders-svc",
                    vec!["https://kubernetes.default.svc"],
                    false,
                ),
            ),
            (
                "old-token",
                (
                    "system:serviceaccount:orders:orders-svc",
                    vec!["istio-ca"],
                    true,
                ),
            ),
            ("alice-token", ("alice", vec!["istio-ca"], false)),
        ]),
        down,
    };
    let policy = CaPolicy {
        trust_domain: "cluster.local".into(),
        audience: "istio-ca".into(),
        default_ttl: DEFAULT_TTL,
        max_ttl: DEFAULT_MAX_TTL,
    };
    (
        CertificateServer::new(authority, api, policy, metrics.clone()),
        metrics,
    )
}

fn csr(uri: &str) -> String {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::URI(uri.try_into().expect("ia5"))];
    params
        .serialize_request(&key)
        .and_then(|c| c.pem())
        .expect("csr")
}

fn request(
    token: Option<&str>,
    csr_pem: String,
    validity_seconds: i64,
) -> Request<CreateCertificateRequest> {
    let mut req = Request::new(CreateCertificateRequest {
        csr_pem,
        validity_seconds,
    });
    if let Some(token) = token {
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("ascii"),
        );
    }
    req
}

const ORDERS: &str = "spiffe://cluster.local/ns/orders/sa/orders-svc";

fn leaf_ttl(resp: &CreateCertificateResponse) -> i64 {
    let pem = ::pem::parse(&resp.cert_chain_pem[0]).expect("pem");
    let (_, leaf) = X509Certificate::from_der(pem.contents()).expect("leaf");
    leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp() - 60
}

#[tokio::test]
async fn signs_the_tokens_own_identity() {
    let (server, metrics) = server(false);
    let resp = server
        .create_certificate(request(Some("orders-token"), csr(ORDERS), 0))
        .await
        .expect("signed")
        .into_inner();
    assert_eq!(resp.cert_chain_pem.len(), 2);
    assert!(resp.trust_bundle_pem.contains("BEGIN CERTIFICATE"));
    assert_eq!(leaf_ttl(&resp), DEFAULT_TTL.as_secs() as i64, "24h default");
    assert_eq!(metrics.snapshot().signed, 1);
    assert_eq!(metrics.snapshot().refused_total(), 0);
}

#[tokio::test]
async fn lifetimes_are_capped() {
    let (server, _) = server(false);
    let resp = server
        .create_certificate(request(Some("orders-token"), csr(ORDERS), 3600))
        .await
        .expect("signed")
        .into_inner();
    assert_eq!(leaf_ttl(&resp), 3600);
    let resp = server
        .create_certificate(request(Some("orders-token"), csr(ORDERS), 365 * 86400))
        .await
        .expect("signed")
        .into_inner();
    assert_eq!(leaf_ttl(&resp), DEFAULT_MAX_TTL.as_secs() as i64);
}

#[tokio::test]
async fn refusals_map_to_grpc_statuses_and_are_counted() {
    let cases = [
        (
            "token for sa A asking for sa B",
            Some("orders-token"),
            csr("spiffe://cluster.local/ns/orders/sa/payments"),
            0,
            false,
            Code::PermissionDenied,
            "csr_identity",
        ),
        (
            "wrong trust domain",
            Some("orders-token"),
            csr("spiffe://other.domain/ns/orders/sa/orders-svc"),
            0,
            false,
            Code::PermissionDenied,
            "csr_identity",
        ),
        (
            "wrong audience",
            Some("api-token"),
            csr(ORDERS),
            0,
            false,
            Code::Unauthenticated,
            "token_unauthenticated",
        ),
        (
            "expired token",
            Some("old-token"),
            csr(ORDERS),
            0,
            false,
            Code::Unauthenticated,
            "token_unauthenticated",
        ),
        (
            "unknown token",
            Some("forged"),
            csr(ORDERS),
            0,
            false,
            Code::Unauthenticated,
            "token_unauthenticated",
        ),
        (
            "a user's token",
            Some("alice-token"),
            csr(ORDERS),
            0,
            false,
            Code::Unauthenticated,
            "token_not_service_account",
        ),
        (
            "no token",
            None,
            csr(ORDERS),
            0,
            false,
            Code::Unauthenticated,
            "token_missing",
        ),
        (
            "API server down",
            Some("orders-token"),
            csr(ORDERS),
            0,
            true,
            Code::Unavailable,
            "token_review_failed",
        ),
        (
            "garbage CSR",
            Some("orders-token"),
            "junk".to_owned(),
            0,
            false,
            Code::InvalidArgument,
            "csr_malformed",
        ),
        (
            "negative validity",
            Some("orders-token"),
            csr(ORDERS),
            -5,
            false,
            Code::InvalidArgument,
            "validity",
        ),
    ];
    for (name, token, csr_pem, validity, down, code, label) in cases {
        let (server, metrics) = server(down);
        let status = server
            .create_certificate(request(token, csr_pem, validity))
            .await
            .expect_err(name);
        assert_eq!(status.code(), code, "{name}: {}", status.message());
        assert!(!status.message().is_empty(), "{name}: says why");
        let snap = metrics.snapshot();
        assert_eq!(snap.signed, 0, "{name}");
        assert_eq!(snap.refused.get(label), Some(&1), "{name}: {snap:?}");
    }
}

#[test]
fn ttl_policy() {
    let policy = CaPolicy {
        trust_domain: "td".into(),
        audience: "a".into(),
        default_ttl: Duration::from_secs(100),
        max_ttl: Duration::from_secs(50),
    };
    assert_eq!(
        policy.ttl(0).expect("default"),
        Duration::from_secs(50),
        "default capped too"
    );
    assert_eq!(policy.ttl(10).expect("short"), Duration::from_secs(10));
    assert_eq!(policy.ttl(1000).expect("long"), Duration::from_secs(50));
    assert!(policy.ttl(-1).is_err());
}
