//! Admin endpoints, each on its own port:
//! * 15000 (loopback only): `/ready`, `/config_dump`, `/certs`,
//!   `/stats/prometheus`;
//! * 15090: `/stats/prometheus` (Istio's metric names and labels);
//! * 15021: `/healthz/ready`;
//! * 15020: `/app-health/<container>/<probe>` (rewritten app probes) and
//!   `/stats/prometheus`.

pub mod dump;
pub mod probes;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::proxy::Proxy;

/// Which endpoints a port serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoints {
    Admin,
    Metrics,
    Health,
    Status,
}

/// Shared state of the admin endpoints.
#[derive(Debug)]
pub struct Admin {
    pub proxy: Arc<Proxy>,
    pub probes: probes::AppProbes,
    /// Listener names that must be configured before the proxy is ready.
    pub required_listeners: Vec<String>,
}

impl Admin {
    /// Ready when the first whole configuration arrived with the required
    /// listeners (a gateway requires none: one with no routes yet is
    /// ready and answers nothing) and the proxy is not draining.
    pub fn ready(&self) -> Result<(), String> {
        if self.proxy.drain.is_draining() {
            return Err("draining".into());
        }
        if !self.proxy.config.synced() {
            return Err("no configuration received yet".into());
        }
        let snapshot = self.proxy.config.current();
        for name in &self.required_listeners {
            if !snapshot.listeners.contains_key(name) {
                return Err(format!("listener {name} not configured yet"));
            }
        }
        Ok(())
    }
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.into())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json(value: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(
        serde_json::to_string_pretty(value).unwrap_or_default(),
    )));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

async fn route(admin: &Admin, which: Endpoints, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let ready = || match admin.ready() {
        Ok(()) => text(StatusCode::OK, "LIVE\n"),
        Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
    };
    match (which, path) {
        (Endpoints::Admin, "/ready") | (Endpoints::Health, "/healthz/ready") => ready(),
        (Endpoints::Admin | Endpoints::Metrics | Endpoints::Status, "/stats/prometheus") => {
            let mut r = text(StatusCode::OK, admin.proxy.metrics.encode());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        (Endpoints::Admin, "/config_dump") => json(&dump::config_dump(&admin.proxy.config)),
        (Endpoints::Admin, "/certs") => json(&dump::certs(&admin.proxy)),
        (Endpoints::Status, p) if p.starts_with("/app-health/") => match admin.probes.get(p) {
            Some(probe) => {
                let (status, body) = probes::run(probe).await;
                text(status, body + "\n")
            }
            None => text(StatusCode::NOT_FOUND, format!("no application probe {p}\n")),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Serves `which` on `listener` until draining ends the process.
pub async fn serve(admin: Arc<Admin>, listener: TcpListener, which: Endpoints) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let admin = admin.clone();
                async move { Ok::<_, Infallible>(route(&admin, which, req).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
