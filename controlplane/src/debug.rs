//! weftd's monitoring and debug endpoint (HTTP on 15014):
//!
//! - `/debug/proxies`: every connected proxy (JSON): identity, since when,
//!   per type the last sent and acknowledged version and nonce, last NACK.
//! - `/debug/config_dump?proxy=<node id>`: what that proxy was last sent,
//!   per type (JSON; Secret contents are never shown).
//! - `/metrics`: Prometheus/OpenMetrics text of [`Metrics`].
//! - `/ready`: 200 once [`Readiness::set_ready`] was called, 503 before.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use prost::Message;
use serde_json::json;
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use crate::metrics::Metrics;
use crate::resources::{Resource, type_url};
use crate::xds::ProxyRegistry;

/// Errors of the debug server.
#[derive(Debug, thiserror::Error)]
pub enum DebugError {
    #[error("debug listener: {0}: is another process using port 15014?")]
    Listen(#[source] std::io::Error),
}

/// Whether weftd is ready to serve (its caches synced): `/ready`.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set_ready(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// What the debug endpoint serves.
#[derive(Clone, Debug)]
pub struct DebugState {
    pub registry: ProxyRegistry,
    pub metrics: Metrics,
    pub readiness: Readiness,
}

type Body = Full<Bytes>;

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

fn json_reply(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let body = serde_json::to_vec_pretty(value)
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}").into_bytes());
    reply(status, "application/json", body)
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    json_reply(status, &json!({ "error": message }))
}

/// `%XX` and `+` decoding of one query value.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| percent_decode(v))
}

/// A resource for humans: the decoded message in Rust debug notation.
/// Secrets hold private keys and are never rendered.
fn render(r: &Resource) -> serde_json::Value {
    let value = &r.body.value[..];
    let config = match r.body.type_url.as_str() {
        type_url::LISTENER => Listener::decode(value).map(|m| format!("{m:#?}")),
        type_url::ROUTE => RouteConfiguration::decode(value).map(|m| format!("{m:#?}")),
        type_url::CLUSTER => Cluster::decode(value).map(|m| format!("{m:#?}")),
        type_url::ENDPOINT => ClusterLoadAssignment::decode(value).map(|m| format!("{m:#?}")),
        type_url::SECRET => Ok("[secret content not shown]".to_owned()),
        _ => Ok(format!("[{} bytes of an unknown type]", value.len())),
    }
    .unwrap_or_else(|e| format!("[does not decode as {}: {e}]", r.body.type_url));
    json!({
        "name": r.name,
        "version": r.version,
        "bytes": value.len(),
        "config": config,
    })
}

/// Answers one request (pure over the state: tested without a socket).
pub fn handle(
    state: &DebugState,
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> Response<Body> {
    if method != Method::GET {
        return error(StatusCode::METHOD_NOT_ALLOWED, "only GET is served here");
    }
    match path {
        "/ready" => {
            if state.readiness.is_ready() {
                reply(StatusCode::OK, "text/plain", "ready\n")
            } else {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "not ready: caches not synced yet\n",
                )
            }
        }
        "/metrics" => match state.metrics.encode() {
            Ok(text) => reply(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                text,
            ),
            Err(e) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("encoding metrics: {e}"),
            ),
        },
        "/debug/proxies" => match serde_json::to_value(state.registry.proxies()) {
            Ok(v) => json_reply(StatusCode::OK, &v),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        },
        "/debug/config_dump" => {
            let Some(node) = query_param(query, "proxy") else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "missing ?proxy=<node id>: see /debug/proxies for the connected node IDs",
                );
            };
            let Some((status, by_type)) = state.registry.last_sent(&node) else {
                return error(
                    StatusCode::NOT_FOUND,
                    &format!("no connected proxy with node id {node:?}: see /debug/proxies"),
                );
            };
            let resources: serde_json::Map<String, serde_json::Value> = by_type
                .iter()
                .map(|(t, rs)| (t.clone(), rs.iter().map(render).collect()))
                .collect();
            json_reply(
                StatusCode::OK,
                &json!({ "proxy": status, "resources": resources }),
            )
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "not found: try /debug/proxies, /debug/config_dump?proxy=<node id>, /metrics, /ready",
        ),
    }
}

/// Serves the debug endpoint on `listener` until `shutdown` completes.
pub async fn serve(
    state: DebugState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DebugError> {
    let addr = listener.local_addr().map_err(DebugError::Listen)?;
    info!(%addr, "serving debug and metrics");
    let state = Arc::new(state);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "debug listener: accept failed");
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let resp = handle(&state, req.method(), req.uri().path(), req.uri().query());
                async move { Ok::<_, Infallible>(resp) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                debug!(%peer, error = %e, "debug connection ended");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use http_body_util::BodyExt;

    use super::*;
    use crate::identity::{ProxyIdentity, ProxyKind, SpiffeId};
    use crate::resources::Resources;

    fn state() -> DebugState {
        DebugState {
            registry: ProxyRegistry::default(),
            metrics: Metrics::new(),
            readiness: Readiness::default(),
        }
    }

    async fn body(r: Response<Body>) -> String {
        let b = r.into_body().collect().await.expect("full body").to_bytes();
        String::from_utf8_lossy(&b).into_owned()
    }

    #[test]
    fn query_decoding() {
        assert_eq!(
            query_param(Some("a=1&proxy=sidecar%7E10.0.0.1%7Ep.ns"), "proxy").as_deref(),
            Some("sidecar~10.0.0.1~p.ns")
        );
        assert_eq!(
            query_param(Some("proxy=a+b%"), "proxy").as_deref(),
            Some("a b%")
        );
        assert_eq!(query_param(None, "proxy"), None);
    }

    #[tokio::test]
    async fn routes() {
        let s = state();
        let get = Method::GET;
        assert_eq!(
            handle(&s, &get, "/ready", None).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        s.readiness.set_ready();
        assert_eq!(handle(&s, &get, "/ready", None).status(), StatusCode::OK);
        assert_eq!(
            handle(&s, &Method::POST, "/ready", None).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            handle(&s, &get, "/nope", None).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            handle(&s, &get, "/debug/config_dump", None).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            handle(&s, &get, "/debug/config_dump", Some("proxy=x")).status(),
            StatusCode::NOT_FOUND
        );

        let proxy = ProxyIdentity {
            node_id: "n~1".to_owned(),
            id: SpiffeId::new("td", "shop", "echo"),
            kind: ProxyKind::Sidecar,
            pod: Some("echo-1".to_owned()),
            labels: BTreeMap::new(),
            revision: "r".to_owned(),
            ips: vec![],
        };
        let reg = s.registry.register(1, &proxy, "delta");
        let mut snap = Resources::default();
        snap.insert(Resource::from_message(
            "outbound|9090||echo.shop.svc.cluster.local",
            type_url::CLUSTER,
            &Cluster {
                name: "outbound|9090||echo.shop.svc.cluster.local".to_owned(),
                ..Default::default()
            },
        ));
        snap.insert(Resource::new(
            "gw-cert",
            type_url::SECRET,
            b"PRIVATE KEY BYTES".to_vec(),
        ));
        let snap = Arc::new(snap);
        let all = crate::xds::subscription::Subscription::first(&[]);
        reg.subscribed(type_url::CLUSTER, &all);
        reg.subscribed(type_url::SECRET, &all);
        reg.sent(type_url::CLUSTER, "1", "1", &snap);
        reg.sent(type_url::SECRET, "1", "2", &snap);

        let proxies = body(handle(&s, &get, "/debug/proxies", None)).await;
        let v: serde_json::Value = serde_json::from_str(&proxies).expect("json");
        assert_eq!(v[0]["identity"], "spiffe://td/ns/shop/sa/echo");
        assert_eq!(v[0]["types"][type_url::CLUSTER]["last_sent_nonce"], "1");

        let dump = body(handle(&s, &get, "/debug/config_dump", Some("proxy=n%7E1"))).await;
        let v: serde_json::Value = serde_json::from_str(&dump).expect("json");
        let cluster = &v["resources"][type_url::CLUSTER][0];
        assert_eq!(
            cluster["name"],
            "outbound|9090||echo.shop.svc.cluster.local"
        );
        assert!(
            cluster["config"]
                .as_str()
                .is_some_and(|c| c.contains("Cluster {"))
        );
        assert!(
            !dump.contains("PRIVATE KEY BYTES"),
            "secrets are never shown"
        );

        s.metrics.push(type_url::CLUSTER, None);
        let metrics = body(handle(&s, &get, "/metrics", None)).await;
        assert!(
            metrics.contains("weftd_xds_pushes_total{type=\"Cluster\"} 1"),
            "{metrics}"
        );
    }
}
