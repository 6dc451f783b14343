//! The HTTP echo server: HTTP/1.1 and HTTP/2 (prior knowledge, h2c) on one
//! port, answering every path with an [`EchoReport`] except `/healthz`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::report::{Identity, build_report, parse_controls};

/// Largest request body the echo server reads.
pub const MAX_BODY: usize = 1 << 20;

/// Errors of the HTTP server.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("accepting an HTTP connection failed: {0}")]
    Accept(#[source] std::io::Error),
}

/// Serves HTTP/1.1 and h2c on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, identity: Arc<Identity>) -> Result<(), HttpError> {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "HTTP echo (HTTP/1.1 + h2c) listening");
    }
    loop {
        let (stream, peer) = listener.accept().await.map_err(HttpError::Accept)?;
        // HTTP/2 answers go out as separate HEADERS and DATA writes: without
        // TCP_NODELAY, Nagle holds the DATA until the client's delayed ACK.
        let _ = stream.set_nodelay(true);
        let peer = crate::report::canonical(peer);
        let identity = identity.clone();
        tokio::spawn(
            async move {
                let service = service_fn(move |req| handle(req, identity.clone(), Some(peer)));
                if let Err(error) = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    debug!(%error, "HTTP connection ended with an error");
                }
            }
            .instrument(info_span!("http_conn", %peer)),
        );
    }
}

/// Answers one request: `/healthz` with `ok`, anything else with the JSON
/// report, after `?delay=` and with `?status=`.
pub async fn handle(
    req: Request<Incoming>,
    identity: Arc<Identity>,
    peer: Option<SocketAddr>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (head, body) = req.into_parts();
    if head.uri.path() == "/healthz" {
        return Ok(text(StatusCode::OK, "ok\n"));
    }
    let body_bytes = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes().len(),
        Err(error) => {
            warn!(%error, "could not read the request body");
            return Ok(text(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("could not read the request body (limit {MAX_BODY} bytes): {error}\n"),
            ));
        }
    };
    let controls = match parse_controls(head.uri.query()) {
        Ok(c) => c,
        Err(error) => return Ok(text(StatusCode::BAD_REQUEST, &format!("{error}\n"))),
    };
    if !controls.delay.is_zero() {
        tokio::time::sleep(controls.delay).await;
    }
    let report = build_report(&identity, &head, peer, controls.status, body_bytes);
    info!(
        method = %report.method,
        path = %report.path,
        protocol = %report.protocol,
        status = report.status,
        client = report.client.as_deref().unwrap_or(""),
        "echo"
    );
    let status = StatusCode::from_u16(controls.status).unwrap_or(StatusCode::OK);
    let mut body = serde_json::to_vec(&report).unwrap_or_default();
    body.push(b'\n');
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
