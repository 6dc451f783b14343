//! One certificate request to weftd over TLS (glue around [`super::cert`]).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use super::CaError;
use super::cert::{WorkloadCert, key_and_csr, spiffe_id};
use super::pb::CreateCertificateRequest;
use super::pb::certificate_service_client::CertificateServiceClient;

/// How long connecting to weftd (TCP + TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where weftd is and who this proxy is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaClientConfig {
    /// `host:port` of weftd's TLS port, e.g. `weftd-default.weft-system.svc:15012`.
    pub address: String,
    /// Name weftd's serving certificate is checked against; the host of
    /// `address` when `None`.
    pub server_name: Option<String>,
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

/// The host of `host:port` (brackets of an IPv6 literal removed).
pub fn host_of(address: &str) -> Result<String, CaError> {
    let err = |detail: &str| CaError::Address {
        address: address.to_owned(),
        detail: detail.to_owned(),
    };
    let (host, port) = address.rsplit_once(':').ok_or_else(|| err("no :port"))?;
    port.parse::<u16>()
        .map_err(|_| err("the port is not a number"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(err("no host"));
    }
    Ok(host.to_owned())
}

/// A TLS channel to `address`, verifying the server against `roots_pem`
/// as `server_name`, presenting `identity` (chain PEM, key PEM) when given.
pub async fn tls_channel(
    address: &str,
    server_name: &str,
    roots_pem: &str,
    identity: Option<(String, String)>,
) -> Result<Channel, CaError> {
    let connect = |detail: String| CaError::Connect {
        address: address.to_owned(),
        detail,
    };
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(roots_pem))
        .domain_name(server_name);
    if let Some((chain, key)) = identity {
        tls = tls.identity(tonic::transport::Identity::from_pem(chain, key));
    }
    Endpoint::from_shared(format!("https://{address}"))
        .map_err(|e| CaError::Address {
            address: address.to_owned(),
            detail: e.to_string(),
        })?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .tls_config(tls)
        .map_err(|e| connect(error_chain(&e)))?
        .connect()
        .await
        .map_err(|e| connect(error_chain(&e)))
}

/// An error and its sources, one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
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
        let server_name = match &c.server_name {
            Some(name) => name.clone(),
            None => host_of(&c.address)?,
        };
        let id = c.spiffe_id();
        let request = key_and_csr(&id)?;
        let channel = tls_channel(&c.address, &server_name, &roots_pem, None).await?;
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
                    CaError::Connect {
                        address: c.address.clone(),
                        detail: status.message().to_owned(),
                    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_addresses() {
        assert_eq!(
            host_of("weftd-1-2.weft-system.svc:15012").expect("host"),
            "weftd-1-2.weft-system.svc"
        );
        assert_eq!(host_of("[::1]:15012").expect("v6"), "::1");
        for bad in ["weftd", "weftd:http", ":15012"] {
            assert!(host_of(bad).is_err(), "{bad}");
        }
    }
}
