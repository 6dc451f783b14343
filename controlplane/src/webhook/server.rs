//! The admission webhook server on 15017 (TLS): `POST /inject` (mutating,
//! pods) and `POST /validate` (validating, Istio networking and security
//! objects), `GET /ready`. HTTP/1.1 and HTTP/2, as the API server offers.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use weft_api::validate::Schemas;

use super::WebhookError;
use super::admission;
use crate::inject::InjectSettings;

/// Port of the webhooks (Istio's).
pub const WEBHOOK_PORT: u16 = 15017;
/// Largest AdmissionReview accepted (the API server's own limit is 3 MiB
/// of object plus the review around it).
pub const MAX_BODY_BYTES: usize = 8 << 20;
/// Time a client gets to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Future returned by a [`NamespaceSource`].
pub type NamespaceFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Namespace, WebhookError>> + Send + 'a>>;

/// Where the webhook reads a pod's Namespace (its labels decide injection).
pub trait NamespaceSource: Send + Sync + 'static {
    fn namespace<'a>(&'a self, name: &'a str) -> NamespaceFuture<'a>;
}

/// Asks the API server (one GET per injected pod).
impl NamespaceSource for kube::Client {
    fn namespace<'a>(&'a self, name: &'a str) -> NamespaceFuture<'a> {
        Box::pin(async move {
            kube::Api::<Namespace>::all(self.clone())
                .get(name)
                .await
                .map_err(|source| WebhookError::Namespace {
                    name: name.to_owned(),
                    source: Box::new(source),
                })
        })
    }
}

/// Reads a reflector's store (the index's Namespace watch).
impl NamespaceSource for Store<Namespace> {
    fn namespace<'a>(&'a self, name: &'a str) -> NamespaceFuture<'a> {
        let found = self.get(&ObjectRef::new(name)).map(|ns| (*ns).clone());
        Box::pin(
            async move { found.ok_or_else(|| WebhookError::NamespaceUnknown(name.to_owned())) },
        )
    }
}

/// The webhook server: settings (live, a `MeshRevisionTag` move updates
/// them), a namespace source, the CRD schemas and the TLS config.
pub struct WebhookServer {
    settings: watch::Receiver<InjectSettings>,
    namespaces: Arc<dyn NamespaceSource>,
    schemas: Arc<Schemas>,
    tls: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for WebhookServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookServer")
            .field("settings", &*self.settings.borrow())
            .finish_non_exhaustive()
    }
}

struct Shared {
    settings: watch::Receiver<InjectSettings>,
    namespaces: Arc<dyn NamespaceSource>,
    schemas: Arc<Schemas>,
}

impl WebhookServer {
    /// A server with `tls` as its serving config (its ALPN list should offer
    /// `h2` and `http/1.1`; see [`super::certs::server_config`]).
    pub fn new(
        settings: watch::Receiver<InjectSettings>,
        namespaces: Arc<dyn NamespaceSource>,
        tls: Arc<rustls::ServerConfig>,
    ) -> Self {
        Self {
            settings,
            namespaces,
            schemas: Arc::new(Schemas::default()),
            tls,
        }
    }

    /// Binds `addr` (e.g. `0.0.0.0:15017`) and serves until `shutdown`.
    pub async fn bind_and_serve(
        self,
        addr: SocketAddr,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), WebhookError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| WebhookError::Bind { addr, source })?;
        self.serve(listener, shutdown).await
    }

    /// Serves connections from `listener` until `shutdown` completes;
    /// connections already accepted finish on their own.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), WebhookError> {
        let acceptor = TlsAcceptor::from(self.tls);
        let shared = Arc::new(Shared {
            settings: self.settings,
            namespaces: self.namespaces,
            schemas: self.schemas,
        });
        let addr = listener.local_addr().ok();
        tracing::info!(?addr, "admission webhooks listening");
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                () = &mut shutdown => return Ok(()),
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Per-connection errors (e.g. EMFILE) must not end the server.
                        tracing::warn!(error = %e, "accepting a webhook connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let acceptor = acceptor.clone();
            let shared = shared.clone();
            tokio::spawn(async move {
                let tls =
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "webhook TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "webhook TLS handshake timed out");
                            return;
                        }
                    };
                let service = service_fn(move |req| handle(shared.clone(), req));
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                if let Err(e) = builder.serve_connection(TokioIo::new(tls), service).await {
                    tracing::debug!(%peer, error = %e, "webhook connection ended with an error");
                }
            });
        }
    }
}

fn reply(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = http::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, value);
    }
    response
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    match (request.method(), path.as_str()) {
        (&Method::GET, "/ready") => {
            return Ok(reply(StatusCode::OK, "text/plain", b"ok\n".to_vec()));
        }
        (&Method::POST, "/inject" | "/validate") => {}
        _ => {
            return Ok(reply(
                StatusCode::NOT_FOUND,
                "text/plain",
                b"weftd webhooks: POST /inject or /validate\n".to_vec(),
            ));
        }
    }
    let body = match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            let message = format!(
                "weftd could not read the request body (limit {MAX_BODY_BYTES} bytes): {e}\n"
            );
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                "text/plain",
                message.into_bytes(),
            ));
        }
    };
    let response = match admission::parse(&body) {
        Err(invalid) => *invalid,
        Ok(request) if path == "/validate" => admission::validate(&request, &shared.schemas),
        Ok(request) => {
            let settings = shared.settings.borrow().clone();
            let ns_name = request.namespace.clone().unwrap_or_default();
            match shared.namespaces.namespace(&ns_name).await {
                Ok(namespace) => admission::inject(&request, &namespace, &settings),
                Err(e) => {
                    tracing::warn!(namespace = %ns_name, error = %e, "cannot read the pod's namespace");
                    kube::core::admission::AdmissionResponse::from(&request).deny(format!(
                        "weftd (revision {}) cannot decide injection: {e}",
                        settings.revision
                    ))
                }
            }
        }
    };
    Ok(reply(
        StatusCode::OK,
        "application/json",
        admission::to_body(response),
    ))
}
