//! A validating admission webhook for tests: serves `AdmissionReview`
//! (admission.k8s.io/v1) over HTTPS and denies objects carrying a label.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{Instrument, debug, info, info_span, warn};

/// Largest AdmissionReview accepted (the API server caps objects at ~3 MiB).
pub const MAX_REVIEW: usize = 8 << 20;

/// Errors of the webhook.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("invalid --deny-label {0:?}: use KEY or KEY=VALUE")]
    InvalidRule(String),
    #[error("reading the serving certificate {path}: {source}: mount the TLS Secret there")]
    Cert {
        path: String,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("no certificate found in {0}: expected a PEM 'CERTIFICATE' block")]
    NoCert(String),
    #[error("reading the private key {path}: {source}: mount the TLS Secret there")]
    Key {
        path: String,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("the certificate and key do not form a usable TLS identity: {0}")]
    Tls(#[from] rustls::Error),
    #[error("accepting a webhook connection failed: {0}")]
    Accept(#[source] std::io::Error),
    #[error("the body is not an AdmissionReview: {0}")]
    BadReview(#[from] serde_json::Error),
    #[error("the AdmissionReview has no request")]
    NoRequest,
}

/// Which objects to deny, and with what message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyRule {
    pub key: String,
    /// `None`: any value denies.
    pub value: Option<String>,
    pub message: String,
}

impl DenyRule {
    /// Parses `KEY` or `KEY=VALUE`; `message` defaults to a sentence naming the label.
    pub fn parse(spec: &str, message: Option<String>) -> Result<Self, WebhookError> {
        let (key, value) = match spec.split_once('=') {
            Some((k, v)) => (k, Some(v.to_owned())),
            None => (spec, None),
        };
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(WebhookError::InvalidRule(spec.to_owned()));
        }
        let message =
            message.unwrap_or_else(|| format!("denied by weft-echo webhook: label {spec} is set"));
        Ok(Self {
            key: key.to_owned(),
            value,
            message,
        })
    }

    /// Whether an object with these labels is denied.
    pub fn denies(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        let Some(found) = labels.and_then(|l| l.get(&self.key)) else {
            return false;
        };
        match &self.value {
            None => true,
            Some(want) => found.as_str() == Some(want.as_str()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReviewIn {
    #[serde(default)]
    api_version: Option<String>,
    request: Option<RequestIn>,
}

#[derive(Debug, Deserialize)]
struct RequestIn {
    uid: String,
    #[serde(default)]
    object: Option<Value>,
}

/// Answers an AdmissionReview body. Pure.
pub fn review(body: &[u8], rule: &DenyRule) -> Result<Value, WebhookError> {
    let input: ReviewIn = serde_json::from_slice(body)?;
    let request = input.request.ok_or(WebhookError::NoRequest)?;
    let labels = request
        .object
        .as_ref()
        .and_then(|o| o.pointer("/metadata/labels"))
        .and_then(Value::as_object);
    let denied = rule.denies(labels);
    let mut response = json!({ "uid": request.uid, "allowed": !denied });
    if denied {
        response["status"] = json!({
            "code": 403,
            "reason": "Forbidden",
            "message": rule.message,
        });
    }
    Ok(json!({
        "apiVersion": input.api_version.unwrap_or_else(|| "admission.k8s.io/v1".to_owned()),
        "kind": "AdmissionReview",
        "response": response,
    }))
}

/// Loads a PEM certificate chain and private key into a rustls server config
/// offering h2 and http/1.1.
pub fn load_tls(cert: &Path, key: &Path) -> Result<ServerConfig, WebhookError> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|source| WebhookError::Cert {
            path: cert.display().to_string(),
            source,
        })?;
    if certs.is_empty() {
        return Err(WebhookError::NoCert(cert.display().to_string()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|source| WebhookError::Key {
        path: key.display().to_string(),
        source,
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves the webhook over TLS on `listener` until dropped. Every POST is
/// treated as an AdmissionReview; `GET /healthz` answers `ok`.
pub async fn serve(
    listener: TcpListener,
    tls: ServerConfig,
    rule: DenyRule,
) -> Result<(), WebhookError> {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, label = %rule.key, "admission webhook (HTTPS) listening");
    }
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let rule = Arc::new(rule);
    loop {
        let (stream, peer) = listener.accept().await.map_err(WebhookError::Accept)?;
        let acceptor = acceptor.clone();
        let rule = rule.clone();
        tokio::spawn(
            async move {
                let stream = match acceptor.accept(stream).await {
                    Ok(s) => s,
                    Err(error) => {
                        warn!(%error, "TLS handshake failed");
                        return;
                    }
                };
                let service = service_fn(move |req| handle(req, rule.clone()));
                if let Err(error) = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    debug!(%error, "webhook connection ended with an error");
                }
            }
            .instrument(info_span!("webhook_conn", %peer)),
        );
    }
}

async fn handle(
    req: Request<Incoming>,
    rule: Arc<DenyRule>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (head, body) = req.into_parts();
    if head.method != Method::POST {
        let status = if head.uri.path() == "/healthz" {
            StatusCode::OK
        } else {
            StatusCode::METHOD_NOT_ALLOWED
        };
        return Ok(respond(status, "text/plain", Bytes::from_static(b"ok\n")));
    }
    let body = match Limited::new(body, MAX_REVIEW).collect().await {
        Ok(b) => b.to_bytes(),
        Err(error) => {
            warn!(%error, "could not read the AdmissionReview");
            return Ok(respond(
                StatusCode::BAD_REQUEST,
                "text/plain",
                Bytes::from(format!("could not read the body: {error}\n")),
            ));
        }
    };
    match review(&body, &rule) {
        Ok(answer) => {
            let allowed = answer.pointer("/response/allowed").and_then(Value::as_bool);
            info!(?allowed, path = %head.uri.path(), "admission review");
            let bytes = serde_json::to_vec(&answer).unwrap_or_default();
            Ok(respond(
                StatusCode::OK,
                "application/json",
                Bytes::from(bytes),
            ))
        }
        Err(error) => {
            warn!(%error, "bad admission review");
            Ok(respond(
                StatusCode::BAD_REQUEST,
                "text/plain",
                Bytes::from(format!("{error}\n")),
            ))
        }
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review_of(labels: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "operation": "CREATE",
                "object": {"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "x", "labels": labels}}
            }
        }))
        .expect("json")
    }

    #[test]
    fn rule_parsing() {
        let r = DenyRule::parse("weft.dev/deny", None).expect("valid");
        assert_eq!(r.key, "weft.dev/deny");
        assert_eq!(r.value, None);
        assert!(r.message.contains("weft.dev/deny"));
        let r = DenyRule::parse("a=b", Some("no".into())).expect("valid");
        assert_eq!(
            (r.key.as_str(), r.value.as_deref(), r.message.as_str()),
            ("a", Some("b"), "no")
        );
        assert!(DenyRule::parse("", None).is_err());
        assert!(DenyRule::parse("=x", None).is_err());
    }

    #[test]
    fn denies_labelled_objects_only() {
        let rule = DenyRule::parse("weft.dev/deny=true", Some("go away".into())).expect("valid");
        let cases = [
            (json!({"weft.dev/deny": "true"}), false),
            (json!({"weft.dev/deny": "false"}), true),
            (json!({"other": "true"}), true),
            (Value::Null, true),
        ];
        for (labels, allowed) in cases {
            let answer = review(&review_of(labels.clone()), &rule).expect("valid review");
            assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
            assert_eq!(answer["kind"], "AdmissionReview");
            assert_eq!(
                answer["response"]["uid"],
                "705ab4f5-6393-11e8-b7cc-42010a800002"
            );
            assert_eq!(answer["response"]["allowed"], allowed, "labels {labels}");
            if !allowed {
                assert_eq!(answer["response"]["status"]["message"], "go away");
                assert_eq!(answer["response"]["status"]["code"], 403);
            }
        }
    }

    #[test]
    fn rejects_non_reviews() {
        let rule = DenyRule::parse("x", None).expect("valid");
        assert!(matches!(
            review(b"nope", &rule),
            Err(WebhookError::BadReview(_))
        ));
        assert!(matches!(review(b"{}", &rule), Err(WebhookError::NoRequest)));
    }
}
