//! Application probes the injector rewrote to
//! `15020/app-health/<container>/<livez|readyz|startupz>`: the proxy calls
//! the application's original HTTP GET from inside the pod (plain text, so
//! STRICT mTLS does not refuse the kubelet) and answers with its outcome.
//! The originals come from `WEFT_APP_PROBES`: JSON keyed by rewritten path,
//! each `{"httpGet": {path, port, host?, scheme?, httpHeaders?}, "timeoutSeconds"?}`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    pub name: String,
    pub value: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpGet {
    #[serde(default)]
    pub path: Option<String>,
    pub port: u16,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub scheme: Option<String>,
    #[serde(default)]
    pub http_headers: Vec<Header>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AppProbe {
    pub http_get: HttpGet,
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

/// The probes by rewritten path.
pub type AppProbes = BTreeMap<String, AppProbe>;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("WEFT_APP_PROBES is not valid probe JSON: {0}")]
    Parse(#[from] serde_json::Error),
}

pub fn parse(json: &str) -> Result<AppProbes, ProbeError> {
    if json.trim().is_empty() {
        return Ok(AppProbes::new());
    }
    Ok(serde_json::from_str(json)?)
}

/// Like the kubelet, HTTPS probes do not verify the application's
/// certificate (it is the pod's own process, reached on its own address);
/// handshake signatures are still checked.
#[derive(Debug)]
struct AnyCertificate(rustls::crypto::WebPkiSupportedAlgorithms);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}

fn probe_tls() -> Result<tokio_rustls::TlsConnector, String> {
    let provider = rustls::crypto::ring::default_provider();
    let algs = provider.signature_verification_algorithms;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(algs)))
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

async fn get_status<T>(io: T, host: &str, get: &HttpGet, path: &str) -> Result<StatusCode, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut req = Request::get(path).header(http::header::HOST, format!("{host}:{}", get.port));
    for h in &get.http_headers {
        req = req.header(h.name.as_str(), h.value.as_str());
    }
    let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let _ = resp.into_body().collect().await;
    Ok(status)
}

/// Runs a probe: 200 when the application answers 2xx/3xx, else 503 with
/// the reason.
pub async fn run(probe: &AppProbe) -> (StatusCode, String) {
    let get = &probe.http_get;
    let https = match get
        .scheme
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("HTTP") => false,
        Some("HTTPS") => true,
        Some(other) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("unknown probe scheme {other}"),
            );
        }
    };
    let host = get.host.clone().unwrap_or_else(|| "127.0.0.1".into());
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1));
    let path = get.path.clone().unwrap_or_else(|| "/".into());
    let attempt = async {
        let stream = tokio::net::TcpStream::connect((host.as_str(), get.port))
            .await
            .map_err(|e| format!("connect {host}:{}: {e}", get.port))?;
        if https {
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| format!("probe host {host}: {e}"))?;
            let tls = probe_tls()?
                .connect(name, stream)
                .await
                .map_err(|e| format!("TLS to {host}:{}: {e}", get.port))?;
            get_status(tls, &host, get, &path).await
        } else {
            get_status(stream, &host, get, &path).await
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(s)) if s.is_success() || s.is_redirection() => (StatusCode::OK, format!("{s}")),
        Ok(Ok(s)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("application answered {s}"),
        ),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, e),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no answer within {timeout:?}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_injector_format() {
        let json = r#"{"/app-health/app/readyz":{"httpGet":{"path":"/ready","port":8080,
            "httpHeaders":[{"name":"x-probe","value":"1"}]},"timeoutSeconds":2}}"#;
        let p = parse(json).unwrap();
        let probe = &p["/app-health/app/readyz"];
        assert_eq!(probe.http_get.port, 8080);
        assert_eq!(probe.http_get.path.as_deref(), Some("/ready"));
        assert_eq!(probe.http_get.http_headers[0].name, "x-probe");
        assert_eq!(probe.timeout_seconds, Some(2));
        assert!(parse("").unwrap().is_empty());
        assert!(parse("{").is_err());
    }

    #[tokio::test]
    async fn https_probes_do_not_verify_the_application_certificate() {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into()),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(s).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(
                        |req: Request<hyper::body::Incoming>| async move {
                            let status = if req.uri().path() == "/ok" { 200 } else { 500 };
                            http::Response::builder()
                                .status(status)
                                .body(Empty::<Bytes>::new())
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        let probe = |path: &str| AppProbe {
            http_get: HttpGet {
                path: Some(path.into()),
                port,
                host: Some("localhost".into()),
                scheme: Some("HTTPS".into()),
                http_headers: vec![],
            },
            timeout_seconds: Some(2),
        };
        assert_eq!(run(&probe("/ok")).await.0, StatusCode::OK);
        let (status, reason) = run(&probe("/fail")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(reason.contains("500"), "{reason}");
    }
}
