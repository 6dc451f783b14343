//! One certificate request to weftd over TLS (glue around [`super::cert`]).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::CaError;
use super::cert::{WorkloadCert, key_and_csr, spiffe_id};
use super::pb::CreateCertificateRequest;
use super::pb::certificate_service_client::CertificateServiceClient;
use crate::control_channel::{ChannelError, WeftdAddress};

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where weftd is and who this proxy is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaClientConfig {
    /// weftd's TLS port, e.g. `weftd-default.weft-system.svc:15012`.
    pub weftd: WeftdAddress,
    /// PEM file with the mesh root(s) that weftd's serving certificate chains to.
    pub root_cert_path: PathBuf,
    /// The projected service-account token (audience: the mesh CA's).
    pub token_path: PathBuf,
    pub trust_domain: String,
    pub namespace: String,
    pub service_account: String,
    /// Lifetime to ask for (`None`: the CA's default).
    pub validity: Option<Duration>,
}

impl CaClientConfig {
    /// The SPIFFE ID this proxy asks for.
    pub fn spiffe_id(&self) -> String {
        spiffe_id(&self.trust_domain, &self.namespace, &self.service_account)
    }
}

/// Requests workload certificates from weftd.
#[derive(Clone, Debug)]
pub struct CaClient {
    config: CaClientConfig,
}

impl CaClient {
    pub fn new(config: CaClientConfig) -> Self {
        Self { config }
    }

    pub fn config(&self) -> &CaClientConfig {
        &self.config
    }

    /// One request: fresh key, CSR, token and root read now.
    pub async fn fetch(&self) -> Result<WorkloadCert, CaError> {
        let c = &self.config;
        let roots_pem = tokio::fs::read_to_string(&c.root_cert_path)
            .await
            .map_err(|e| CaError::RootCert {
                path: c.root_cert_path.display().to_string(),
                detail: e.to_string(),
            })?;
        let token = tokio::fs::read_to_string(&c.token_path)
            .await
            .map_err(|e| CaError::Token {
                path: c.token_path.display().to_string(),
                detail: e.to_string(),
            })?;
        let token = token.trim();
        if token.is_empty() {
            return Err(CaError::Token {
                path: c.token_path.display().to_string(),
                detail: "the file is empty".into(),
            });
        }
        let id = c.spiffe_id();
        let request = key_and_csr(&id)?;
        let channel = c
            .weftd
            .connect(&roots_pem, None, Some(REQUEST_TIMEOUT))
            .await?;
        let mut grpc = tonic::Request::new(CreateCertificateRequest {
            csr_pem: request.csr_pem.clone(),
            validity_seconds: c
                .validity
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                .unwrap_or(0),
        });
        let bearer = format!("Bearer {token}")
            .parse()
            .map_err(|_| CaError::Token {
                path: c.token_path.display().to_string(),
                detail: "the token is not a valid header value".into(),
            })?;
        grpc.metadata_mut().insert("authorization", bearer);
        let response = CertificateServiceClient::new(channel)
            .create_certificate(grpc)
            .await
            .map_err(|status| match status.code() {
                tonic::Code::Unavailable | tonic::Code::Unknown
                    if status.message().contains("transport") =>
                {
                    CaError::Channel(ChannelError::Connect {
                        address: c.weftd.address.clone(),
                        detail: status.message().to_owned(),
                    })
                }
                code => CaError::Refused {
                    code,
                    message: status.message().to_owned(),
                },
            })?
            .into_inner();
        WorkloadCert::from_response(
            &id,
            &request.key,
            &response.cert_chain_pem,
            &response.trust_bundle_pem,
            SystemTime::now(),
        )
    }
}
