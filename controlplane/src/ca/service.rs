//! `weft.ca.v1.CertificateService` over gRPC: token → identity → CSR check →
//! signature, each refusal mapped to a gRPC status whose message says what
//! to fix, and counted.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::SanType;
use tonic::{Code, Request, Response, Status};

use super::authority::{Authority, AuthorityError};
use super::csr::{CsrError, check_csr};
use super::metrics::CaMetrics;
use super::token::{TokenError, TokenReviewer, authenticate, bearer_token};
use crate::identity::SpiffeId;

/// Generated protobuf and tonic code of `api/proto/weft/ca/v1/ca.proto`.
#[allow(missing_debug_implementations, clippy::all)]
pub mod pb {
    tonic::include_proto!("weft.ca.v1");
}

use pb::certificate_service_server::{CertificateService, CertificateServiceServer};
use pb::{CreateCertificateRequest, CreateCertificateResponse};

/// Default workload certificate lifetime.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);
/// Default cap on a requested lifetime.
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// What the CA signs, for whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaPolicy {
    /// `spiffe://<trust_domain>/ns/<ns>/sa/<sa>`.
    pub trust_domain: String,
    /// Audience the projected token must be for.
    pub audience: String,
    /// Lifetime when the request asks for none.
    pub default_ttl: Duration,
    /// Longer requests are cut to this.
    pub max_ttl: Duration,
}

impl CaPolicy {
    /// The lifetime to issue for `requested_seconds` (0: the default).
    pub fn ttl(&self, requested_seconds: i64) -> Result<Duration, CaError> {
        match requested_seconds {
            0 => Ok(self.default_ttl.min(self.max_ttl)),
            s if s < 0 => Err(CaError::Validity(s)),
            s => Ok(Duration::from_secs(s.unsigned_abs()).min(self.max_ttl)),
        }
    }
}

/// Why a request was not signed.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Csr(#[from] CsrError),
    #[error("validity_seconds is {0}: ask for a positive lifetime, or 0 for the CA's default")]
    Validity(i64),
    #[error("signing failed: {0}")]
    Authority(#[from] AuthorityError),
    #[error("the SPIFFE ID {0} cannot be put in a certificate: {1}")]
    San(String, String),
}

impl CaError {
    /// Stable short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Token(e) => e.label(),
            Self::Csr(e) => e.label(),
            Self::Validity(_) => "validity",
            Self::Authority(_) | Self::San(..) => "signing_failed",
        }
    }

    /// The gRPC status a client sees.
    pub fn code(&self) -> Code {
        match self {
            Self::Token(TokenError::Review(_)) => Code::Unavailable,
            Self::Token(_) => Code::Unauthenticated,
            Self::Csr(CsrError::WrongIdentity { .. }) => Code::PermissionDenied,
            Self::Csr(_) | Self::Validity(_) => Code::InvalidArgument,
            Self::Authority(_) | Self::San(..) => Code::Internal,
        }
    }
}

impl From<CaError> for Status {
    fn from(e: CaError) -> Self {
        Status::new(e.code(), e.to_string())
    }
}

/// The certificate service. `R` reviews tokens (the API server in
/// production, a fake in tests).
#[derive(Debug)]
pub struct CertificateServer<R> {
    authority: Arc<Authority>,
    reviewer: R,
    policy: CaPolicy,
    metrics: Arc<CaMetrics>,
}

impl<R: TokenReviewer> CertificateServer<R> {
    pub fn new(
        authority: Arc<Authority>,
        reviewer: R,
        policy: CaPolicy,
        metrics: Arc<CaMetrics>,
    ) -> Self {
        Self {
            authority,
            reviewer,
            policy,
            metrics,
        }
    }

    /// The tonic service to add to a server.
    pub fn into_service(self) -> CertificateServiceServer<Self> {
        CertificateServiceServer::new(self)
    }

    /// Authenticates, checks and signs one request.
    pub async fn sign(
        &self,
        authorization: Option<&str>,
        request: &CreateCertificateRequest,
    ) -> Result<(SpiffeId, CreateCertificateResponse), CaError> {
        let audience = &self.policy.audience;
        let token = bearer_token(authorization, audience)?;
        let status = self.reviewer.review(token, audience).await?;
        let sa = authenticate(&status, audience)?;
        let id = SpiffeId::new(&self.policy.trust_domain, &sa.namespace, &sa.name);
        let csr = check_csr(&request.csr_pem, &id)?;
        let ttl = self.policy.ttl(request.validity_seconds)?;
        let uri = id
            .to_string()
            .try_into()
            .map_err(|e: rcgen::Error| CaError::San(id.to_string(), e.to_string()))?;
        let issued = self.authority.issue(
            &csr.public_key,
            vec![SanType::URI(uri)],
            ttl,
            SystemTime::now(),
        )?;
        tracing::info!(
            identity = %id,
            pod = sa.pod.as_deref().unwrap_or(""),
            not_after = issued.not_after,
            "signed workload certificate"
        );
        Ok((
            id,
            CreateCertificateResponse {
                cert_chain_pem: issued.chain_pem,
                trust_bundle_pem: self.authority.trust_bundle_pem(),
            },
        ))
    }
}

#[tonic::async_trait]
impl<R: TokenReviewer> CertificateService for CertificateServer<R> {
    async fn create_certificate(
        &self,
        request: Request<CreateCertificateRequest>,
    ) -> Result<Response<CreateCertificateResponse>, Status> {
        let authorization = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let peer = request.remote_addr();
        match self.sign(authorization.as_deref(), request.get_ref()).await {
            Ok((_, response)) => {
                self.metrics.record_signed();
                Ok(Response::new(response))
            }
            Err(e) => {
                self.metrics.record_refused(e.label());
                tracing::warn!(reason = e.label(), peer = ?peer, error = %e, "refused certificate request");
                Err(e.into())
            }
        }
    }
}

#[cfg(test)]
mod tests;
