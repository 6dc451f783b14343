//! Is weftd's webhook answering? The operator calls it the way the API
//! server does: TLS to the weftd Service on 15017, the server certificate
//! verified against the mesh root (the webhooks' `caBundle`) under the
//! Service's DNS name, and an AdmissionReview for `/validate` whose
//! response must echo the request's uid. No API write is involved.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};

use crate::contract::{VALIDATE_PATH, WEBHOOK_PORT};

/// How long one probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the webhook did not answer. The `Display` goes into conditions.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("the mesh root in the CA Secret is not usable to verify weftd: {0}")]
    Roots(String),
    #[error("connecting to {addr}: {detail}; is weftd running and its Service selecting it?")]
    Connect { addr: String, detail: String },
    #[error("TLS with {host}: {detail}; does weftd serve a certificate from the mesh CA?")]
    Tls { host: String, detail: String },
    #[error("HTTP to {host}{path}: {detail}")]
    Http {
        host: String,
        path: &'static str,
        detail: String,
    },
    #[error("{host}{path} answered {status}: {body}")]
    Status {
        host: String,
        path: &'static str,
        status: u16,
        body: String,
    },
    #[error("{host}{path} answered without the AdmissionReview uid")]
    NoUid { host: String, path: &'static str },
    #[error("no answer from {0} within 5s")]
    Timeout(String),
}

/// A minimal valid object for `/validate`.
fn review(uid: &str) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "networking.istio.io", "version": "v1", "kind": "VirtualService"},
            "resource": {"group": "networking.istio.io", "version": "v1", "resource": "virtualservices"},
            "name": "weft-operator-probe",
            "namespace": "default",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:weft-operator:weft-operator"},
            "object": {
                "apiVersion": "networking.istio.io/v1",
                "kind": "VirtualService",
                "metadata": {"name": "weft-operator-probe", "namespace": "default"},
                "spec": {"hosts": ["probe"], "http": [{"route": [{"destination": {"host": "probe"}}]}]}
            },
            "dryRun": true
        }
    })
}

fn client_config(roots_pem: &str) -> Result<Arc<rustls::ClientConfig>, ProbeError> {
    let mut store = rustls::RootCertStore::empty();
    let blocks = pem::parse_many(roots_pem).map_err(|e| ProbeError::Roots(e.to_string()))?;
    for b in blocks.into_iter().filter(|b| b.tag() == "CERTIFICATE") {
        store
            .add(CertificateDer::from(b.into_contents()))
            .map_err(|e| ProbeError::Roots(e.to_string()))?;
    }
    if store.is_empty() {
        return Err(ProbeError::Roots(
            "no CERTIFICATE in root-cert.pem".to_owned(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ProbeError::Roots(e.to_string()))?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Probes weftd's webhook at `ip` (the Service's ClusterIP), verifying the
/// certificate for `host` (`weftd-<rev>.<ns>.svc`) against `roots_pem`.
pub async fn probe(ip: &str, host: &str, roots_pem: &str) -> Result<(), ProbeError> {
    match tokio::time::timeout(PROBE_TIMEOUT, probe_inner(ip, host, roots_pem)).await {
        Ok(result) => result,
        Err(_) => Err(ProbeError::Timeout(format!("{host} ({ip}:{WEBHOOK_PORT})"))),
    }
}

async fn probe_inner(ip: &str, host: &str, roots_pem: &str) -> Result<(), ProbeError> {
    let config = client_config(roots_pem)?;
    let addr = format!("{ip}:{WEBHOOK_PORT}");
    let tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|e| ProbeError::Connect {
            addr: addr.clone(),
            detail: e.to_string(),
        })?;
    let name = ServerName::try_from(host.to_owned()).map_err(|e| ProbeError::Tls {
        host: host.to_owned(),
        detail: e.to_string(),
    })?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| ProbeError::Tls {
            host: host.to_owned(),
            detail: e.to_string(),
        })?;
    let http_err = |detail: String| ProbeError::Http {
        host: host.to_owned(),
        path: VALIDATE_PATH,
        detail,
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| http_err(e.to_string()))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let uid = format!("weft-operator-probe-{}", std::process::id());
    let body = serde_json::to_vec(&review(&uid)).unwrap_or_default();
    let request = http::Request::post(VALIDATE_PATH)
        .header(http::header::HOST, host)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| http_err(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| http_err(e.to_string()))?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| http_err(e.to_string()))?
        .to_bytes();
    driver.abort();
    if status != 200 {
        return Err(ProbeError::Status {
            host: host.to_owned(),
            path: VALIDATE_PATH,
            status,
            body: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
        });
    }
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if answer["response"]["uid"] == uid.as_str() {
        Ok(())
    } else {
        Err(ProbeError::NoUid {
            host: host.to_owned(),
            path: VALIDATE_PATH,
        })
    }
}
