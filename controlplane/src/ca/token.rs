//! Who is asking: the pod's projected service-account token, reviewed by the
//! API server (`authentication.k8s.io/v1` TokenReview) for the mesh's
//! audience. The review call sits behind [`TokenReviewer`] so the identity
//! rules in [`authenticate`] are tested without a cluster.

use std::future::Future;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use kube::api::PostParams;
use kube::{Api, Client};

/// Prefix of a service account's user name in a TokenReview.
const SA_USER_PREFIX: &str = "system:serviceaccount:";

/// Why a token does not authenticate a workload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error(
        "missing `authorization: Bearer <token>` metadata: send the pod's projected service-account token (audience {audience})"
    )]
    Missing { audience: String },
    #[error("the token was not accepted by the API server: {reason}")]
    Unauthenticated { reason: String },
    #[error(
        "the token is not valid for audience {want} (it is for {got:?}): project the service-account token with audience {want}"
    )]
    WrongAudience { want: String, got: Vec<String> },
    #[error(
        "the token belongs to {0:?}, not a service account: only workloads' service-account tokens get mesh certificates"
    )]
    NotServiceAccount(String),
    #[error(
        "reviewing the token with the API server failed: {0}; is weftd allowed to create tokenreviews (ClusterRole system:auth-delegator)?"
    )]
    Review(String),
}

impl TokenError {
    /// Stable short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Missing { .. } => "token_missing",
            Self::Unauthenticated { .. } => "token_unauthenticated",
            Self::WrongAudience { .. } => "token_audience",
            Self::NotServiceAccount(_) => "token_not_service_account",
            Self::Review(_) => "token_review_failed",
        }
    }
}

/// The service account a token authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    pub namespace: String,
    pub name: String,
    /// The pod the token is bound to, when the API server reports it.
    pub pod: Option<String>,
}

/// Asks the API server about a token.
pub trait TokenReviewer: Send + Sync + 'static {
    /// Reviews `token` for `audience`; `Err` only when the review itself
    /// could not be made (the verdict is in the status).
    fn review(
        &self,
        token: &str,
        audience: &str,
    ) -> impl Future<Output = Result<TokenReviewStatus, TokenError>> + Send;
}

/// [`TokenReviewer`] over the Kubernetes API.
#[derive(Clone)]
pub struct KubeTokenReviewer {
    client: Client,
}

impl std::fmt::Debug for KubeTokenReviewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeTokenReviewer").finish_non_exhaustive()
    }
}

impl KubeTokenReviewer {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

impl TokenReviewer for KubeTokenReviewer {
    async fn review(&self, token: &str, audience: &str) -> Result<TokenReviewStatus, TokenError> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: Some(vec![audience.to_owned()]),
            },
            ..Default::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let created = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| TokenError::Review(e.to_string()))?;
        created
            .status
            .ok_or_else(|| TokenError::Review("the TokenReview came back without a status".into()))
    }
}

/// The bearer token of an `authorization` metadata value.
pub fn bearer_token<'a>(
    authorization: Option<&'a str>,
    audience: &str,
) -> Result<&'a str, TokenError> {
    authorization
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(|| TokenError::Missing {
            audience: audience.to_owned(),
        })
}

/// The verdict on a TokenReview status: authenticated, for `audience`, and
/// a service account's token.
pub fn authenticate(
    status: &TokenReviewStatus,
    audience: &str,
) -> Result<ServiceAccount, TokenError> {
    if status.authenticated != Some(true) {
        let reason = status
            .error
            .clone()
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| "not authenticated".to_owned());
        return Err(TokenError::Unauthenticated { reason });
    }
    let audiences = status.audiences.clone().unwrap_or_default();
    if !audiences.iter().any(|a| a == audience) {
        return Err(TokenError::WrongAudience {
            want: audience.to_owned(),
            got: audiences,
        });
    }
    let user = status.user.as_ref();
    let username = user.and_then(|u| u.username.clone()).unwrap_or_default();
    let (namespace, name) = username
        .strip_prefix(SA_USER_PREFIX)
        .and_then(|rest| rest.split_once(':'))
        .filter(|(ns, sa)| !ns.is_empty() && !sa.is_empty() && !sa.contains(':'))
        .ok_or_else(|| TokenError::NotServiceAccount(username.clone()))?;
    let pod = user
        .and_then(|u| u.extra.as_ref())
        .and_then(|extra| extra.get("authentication.kubernetes.io/pod-name"))
        .and_then(|v| v.first().cloned());
    Ok(ServiceAccount {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        pod,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::authentication::v1::UserInfo;

    use super::*;

    fn status(
        authenticated: bool,
        audiences: &[&str],
        user: &str,
        error: Option<&str>,
    ) -> TokenReviewStatus {
        TokenReviewStatus {
            authenticated: Some(authenticated),
            audiences: Some(audiences.iter().map(|a| (*a).to_owned()).collect()),
            error: error.map(str::to_owned),
            user: Some(UserInfo {
                username: Some(user.to_owned()),
                extra: Some(BTreeMap::from([(
                    "authentication.kubernetes.io/pod-name".to_owned(),
                    vec!["orders-7d9f".to_owned()],
                )])),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn service_account_token_for_the_audience() {
        let sa = authenticate(
            &status(
                true,
                &["istio-ca"],
                "system:serviceaccount:orders:orders-svc",
                None,
            ),
            "istio-ca",
        )
        .expect("authenticated");
        assert_eq!(
            sa,
            ServiceAccount {
                namespace: "orders".into(),
                name: "orders-svc".into(),
                pod: Some("orders-7d9f".into()),
            }
        );
    }

    #[test]
    fn refusals() {
        let sa_user = "system:serviceaccount:orders:orders-svc";
        let cases = [
            (
                "expired",
                status(
                    false,
                    &[],
                    "",
                    Some("[invalid bearer token, service account token has expired]"),
                ),
                "token_unauthenticated",
            ),
            (
                "wrong audience (API server verdict)",
                status(
                    false,
                    &[],
                    "",
                    Some(
                        "[invalid bearer token, token audiences [\"api\"] is invalid for the target audiences [\"istio-ca\"]]",
                    ),
                ),
                "token_unauthenticated",
            ),
            (
                "wrong audience (status audiences)",
                status(true, &["https://kubernetes.default.svc"], sa_user, None),
                "token_audience",
            ),
            (
                "no audiences reported",
                status(true, &[], sa_user, None),
                "token_audience",
            ),
            (
                "unauthenticated without reason",
                TokenReviewStatus::default(),
                "token_unauthenticated",
            ),
            (
                "a user, not a service account",
                status(true, &["istio-ca"], "alice", None),
                "token_not_service_account",
            ),
            (
                "a node",
                status(true, &["istio-ca"], "system:node:n1", None),
                "token_not_service_account",
            ),
            (
                "malformed sa user",
                status(true, &["istio-ca"], "system:serviceaccount:orders", None),
                "token_not_service_account",
            ),
            (
                "empty sa name",
                status(true, &["istio-ca"], "system:serviceaccount:orders:", None),
                "token_not_service_account",
            ),
        ];
        for (name, st, label) in cases {
            let err = authenticate(&st, "istio-ca").expect_err(name);
            assert_eq!(err.label(), label, "{name}: {err}");
        }
    }

    #[test]
    fn expired_reason_reaches_the_caller() {
        let err = authenticate(
            &status(false, &[], "", Some("service account token has expired")),
            "istio-ca",
        )
        .expect_err("refused");
        assert!(err.to_string().contains("has expired"), "{err}");
    }

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer_token(Some("Bearer abc.def"), "a"), Ok("abc.def"));
        assert_eq!(bearer_token(Some("bearer  abc "), "a"), Ok("abc"));
        for bad in [
            None,
            Some(""),
            Some("Bearer "),
            Some("Basic abc"),
            Some("abc"),
        ] {
            let err = bearer_token(bad, "istio-ca").expect_err("missing");
            assert_eq!(err.label(), "token_missing");
            assert!(err.to_string().contains("istio-ca"));
        }
    }
}
