//! HTTP proxying: route a request by authority and path to a cluster,
//! balance over its endpoints, forward it with streaming bodies (hyper
//! applies backpressure; nothing is buffered) over a pooled upstream
//! connection, and pass upgrades (WebSocket, CONNECT, h2c) through. Local
//! answers (no route, no healthy upstream, …) carry `x-weft-reason`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::{self, Authority, PathAndQuery, Scheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;

use super::headers::{self, X_WEFT_REASON};
use super::lb::{self, InFlight};
use super::upstream::{Sender, UpstreamError};
use super::{Direction, Downstream, Proxy};
use crate::config::model::{
    Discovery, Forward, PathMatch, Redirect, RequestFacts, RouteAction, RouteSource, RouteTable,
    UpstreamTls,
};
use crate::config::service_of;
use crate::metrics::SeriesKey;

pub type RespBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// A response the proxy makes itself.
pub fn local(status: StatusCode, reason: &'static str, body: String) -> Response<RespBody> {
    let mut resp = Response::new(
        Full::new(Bytes::from(body + "\n"))
            .map_err(|never: Infallible| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp.headers_mut()
        .insert(X_WEFT_REASON, HeaderValue::from_static(reason));
    resp
}

/// The `destination_service` of a request's metrics: the cluster's service
/// (shared, computed once per cluster) or else the request's host.
enum Service {
    Cluster(Arc<str>),
    Host(Option<Authority>),
}

impl Service {
    fn as_str(&self) -> &str {
        match self {
            Service::Cluster(s) => s,
            Service::Host(a) => host_only(a.as_ref().map_or("", Authority::as_str)),
        }
    }
}

/// What the metrics of one request need at its end.
struct Record {
    proxy: Arc<Proxy>,
    down: Arc<Downstream>,
    service: Service,
    upstream_peer: Option<Arc<str>>,
    protocol: &'static str,
    status: u16,
    start: Instant,
}

impl Drop for Record {
    fn drop(&mut self) {
        let ms = self.start.elapsed().as_secs_f64() * 1000.0;
        let key = SeriesKey {
            service: self.service.as_str(),
            upstream_peer: self.upstream_peer.as_deref(),
            status: self.status,
            protocol: self.protocol,
        };
        self.proxy.metrics.record_request(
            &self.down.series,
            key,
            || self.proxy.peers(&self.down, key.service, key.upstream_peer),
            ms,
        );
    }
}

/// The upstream response body, keeping the request counted (least
/// request, metrics) until it is fully sent or dropped.
struct Tracked<B> {
    inner: B,
    _in_flight: Option<InFlight>,
    _record: Option<Record>,
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn with_record(resp: Response<RespBody>, record: Record) -> Response<RespBody> {
    let mut record = record;
    record.status = resp.status().as_u16();
    resp.map(|b| {
        Tracked {
            inner: b,
            _in_flight: None,
            _record: Some(record),
        }
        .boxed_unsync()
    })
}

/// The request's authority: the URI's (HTTP/2 `:authority`, absolute form)
/// or else the Host header. `Err` when a Host header is not an authority.
fn authority_of<B>(req: &Request<B>) -> Result<Option<Authority>, ()> {
    if let Some(a) = req.uri().authority() {
        return Ok(Some(a.clone()));
    }
    match req.headers().get(header::HOST) {
        Some(h) => Authority::try_from(h.as_bytes()).map(Some).map_err(|_| ()),
        None => Ok(None),
    }
}

fn host_only(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.split(']').next().map_or(authority, |h| &h[1..]);
    }
    authority.rsplit_once(':').map_or(authority, |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            authority
        }
    })
}

/// Handles one request on a downstream connection.
pub async fn handle(
    proxy: Arc<Proxy>,
    down: Arc<Downstream>,
    routes: RouteSource,
    mut req: Request<Incoming>,
) -> Result<Response<RespBody>, Infallible> {
    let start = Instant::now();
    let snapshot = proxy.config.current();
    let protocol = if req
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
    {
        "grpc"
    } else {
        "http"
    };
    let record = |service: Service, upstream_peer: Option<Arc<str>>| Record {
        proxy: proxy.clone(),
        down: down.clone(),
        service,
        upstream_peer,
        protocol,
        status: 0,
        start,
    };
    let Ok(authority) = authority_of(&req) else {
        let resp = local(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the Host header is not a valid authority".into(),
        );
        return Ok(with_record(resp, record(Service::Host(None), None)));
    };
    let host = || Service::Host(authority.clone());
    let authority_str = authority.as_ref().map_or("", Authority::as_str);
    let table: Option<Arc<RouteTable>> = match &routes {
        RouteSource::Rds(name) => snapshot.routes.get(name).cloned(),
        RouteSource::Inline(t) => Some(t.clone()),
    };
    let Some(table) = table else {
        let resp = local(
            StatusCode::NOT_FOUND,
            "route_not_found",
            match &routes {
                RouteSource::Rds(name) => format!("route configuration {name:?} not received yet"),
                RouteSource::Inline(t) => format!("route configuration {:?} unavailable", t.name),
            },
        );
        return Ok(with_record(resp, record(host(), None)));
    };
    // CONNECT's authority-form target has no path: route it as "/".
    let path_and_query = req
        .uri()
        .path_and_query()
        .filter(|pq| !pq.path().is_empty())
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let (path, query) = (path_and_query.path(), path_and_query.query());
    let scheme = if down.tls { "https" } else { "http" };
    let selected = table
        .route(&RequestFacts {
            authority: authority_str,
            path,
            query,
            method: req.method().as_str(),
            scheme,
            headers: req.headers(),
        })
        .map(|(_, r)| r);
    let Some(route) = selected else {
        let resp = local(
            StatusCode::NOT_FOUND,
            "route_not_found",
            format!("no route for host {authority_str:?} path {path:?}"),
        );
        return Ok(with_record(resp, record(host(), None)));
    };
    let fwd = match &route.action {
        RouteAction::Direct { status, body } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut resp = Response::new(
                Full::new(Bytes::from(body.clone().unwrap_or_default()))
                    .map_err(|never: Infallible| match never {})
                    .boxed_unsync(),
            );
            *resp.status_mut() = status;
            return Ok(with_record(resp, record(host(), None)));
        }
        RouteAction::Redirect(r) => {
            let resp = redirect(r, scheme, authority_str, path, query);
            return Ok(with_record(resp, record(host(), None)));
        }
        RouteAction::Forward(f) => f,
    };
    let cluster_name = pick_cluster(fwd);
    let Some(cluster) = snapshot.clusters.get(cluster_name).cloned() else {
        let resp = local(
            StatusCode::SERVICE_UNAVAILABLE,
            "cluster_not_found",
            format!("cluster {cluster_name:?} is not configured"),
        );
        let service = service_of(cluster_name).map_or_else(host, |s| Service::Cluster(s.into()));
        return Ok(with_record(resp, record(service, None)));
    };
    let service = || match &cluster.service {
        Some(s) => Service::Cluster(s.clone()),
        None => host(),
    };

    // Request rewriting, once for all attempts.
    let upgrade = headers::is_upgrade(req.headers()) || req.method() == Method::CONNECT;
    let upstream_authority = fwd.host_rewrite.clone().or_else(|| authority.clone());
    let upstream_path = match rewrite_path(
        &route.matcher.path,
        fwd.prefix_rewrite.as_deref(),
        &path_and_query,
    ) {
        Ok(pq) => pq,
        Err(e) => {
            let resp = local(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("the rewritten path is invalid: {e}"),
            );
            return Ok(with_record(resp, record(service(), None)));
        }
    };
    {
        let h = req.headers_mut();
        headers::strip_hop_by_hop(h, upgrade);
        headers::ensure_request_id(h);
        if let Some(rewritten) = &fwd.host_rewrite
            && h.contains_key(header::HOST)
            && let Ok(v) = HeaderValue::from_str(rewritten.as_str())
        {
            h.insert(header::HOST, v);
        }
        match down.direction {
            Direction::Gateway => {
                headers::forwarded(h, down.peer.ip(), scheme);
                headers::set_client_cert(h, None, None);
            }
            Direction::Inbound => {
                headers::forwarded(h, down.peer.ip(), scheme);
                let own = proxy.identity.current();
                headers::set_client_cert(h, Some(&own.id_text), down.peer_id.as_deref());
            }
            Direction::Outbound => headers::set_client_cert(h, None, None),
        }
    }

    let retry_connect = fwd.retry.as_ref().is_some_and(|r| {
        r.retry_on
            .iter()
            .any(|o| o == "connect-failure" || o == "reset" || o == "5xx" || o == "gateway-error")
    });
    let attempts = 1 + if retry_connect {
        fwd.retry.as_ref().map_or(0, |r| r.num_retries.min(5))
    } else {
        0
    };
    let mut last_error: Option<UpstreamError> = None;
    for _ in 0..attempts {
        let (addr, tls) = match &cluster.discovery {
            Discovery::OriginalDst => (down.original_dst, UpstreamTls::Plaintext),
            _ => {
                let Some(ep) = lb::pick(&cluster, |a| proxy.outstanding.get(a), lb::random) else {
                    let resp = local(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "no_healthy_upstream",
                        format!("no healthy upstream for cluster {cluster_name:?}"),
                    );
                    return Ok(with_record(resp, record(service(), None)));
                };
                (ep.address, cluster.tls_for(ep).clone())
            }
        };
        if addr == down.local && down.direction != Direction::Gateway {
            let resp = local(
                StatusCode::BAD_GATEWAY,
                "proxy_loop",
                format!("refusing to send a request to the proxy's own listener {addr}"),
            );
            return Ok(with_record(resp, record(service(), None)));
        }
        let connected = if upgrade {
            Box::pin(
                proxy
                    .pools
                    .http1(addr, cluster.bind_source, &tls, cluster.connect_timeout),
            )
            .await
            .map(|(s, p)| (Sender::H1(s), p.map(Arc::from), false))
        } else {
            proxy
                .pools
                .sender(
                    addr,
                    cluster.bind_source,
                    &tls,
                    cluster.http2,
                    cluster.connect_timeout,
                )
                .await
                .map(|(s, p)| (s, p, true))
        };
        let (sender, upstream_peer, pooled) = match connected {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(cluster = %cluster_name, %addr, error = %e, "upstream connect failed");
                last_error = Some(e);
                continue;
            }
        };
        let rec = record(service(), upstream_peer);
        let in_flight = InFlight::start(proxy.outstanding.counter(addr));
        let target = Target {
            addr,
            source: cluster.bind_source,
            tls,
            connect_timeout: cluster.connect_timeout,
            pooled,
        };
        return Ok(send(
            &proxy,
            req,
            sender,
            target,
            upstream_authority,
            upstream_path,
            fwd.timeout,
            upgrade,
            in_flight,
            rec,
        )
        .await);
    }
    let e = last_error.map_or_else(|| "no attempt made".to_owned(), |e| e.to_string());
    let label = "upstream_connect_failure";
    let resp = local(
        StatusCode::SERVICE_UNAVAILABLE,
        label,
        format!("upstream connect error for cluster {cluster_name:?}: {e}"),
    );
    Ok(with_record(resp, record(service(), None)))
}

fn pick_cluster(f: &Forward) -> &str {
    if let [(only, _)] = f.clusters.as_slice() {
        return only;
    }
    let total: u64 = f.clusters.iter().map(|(_, w)| u64::from(*w)).sum();
    let mut n = lb::random() % total.max(1);
    for (name, w) in &f.clusters {
        if n < u64::from(*w) {
            return name;
        }
        n -= u64::from(*w);
    }
    f.clusters.first().map_or("", |(n, _)| n.as_str())
}

/// Envoy's prefix_rewrite: the matched prefix (or exact path) is replaced
/// and the query kept. Without a rewrite the received path is used as is.
pub fn rewrite_path(
    m: &PathMatch,
    rewrite: Option<&str>,
    received: &PathAndQuery,
) -> Result<PathAndQuery, http::uri::InvalidUri> {
    let Some(rewrite) = rewrite else {
        return Ok(received.clone());
    };
    let path = received.path();
    let rest = match m {
        PathMatch::Prefix(p) | PathMatch::SeparatedPrefix(p) => path.get(p.len()..).unwrap_or(""),
        PathMatch::Exact(_) | PathMatch::Regex(_) => "",
    };
    let mut joined = if rewrite.ends_with('/') && rest.starts_with('/') {
        format!("{rewrite}{}", &rest[1..])
    } else {
        format!("{rewrite}{rest}")
    };
    if joined.is_empty() {
        joined.push('/');
    }
    if let Some(q) = received.query() {
        joined.push('?');
        joined.push_str(q);
    }
    PathAndQuery::try_from(joined)
}

fn redirect(
    r: &Redirect,
    scheme: &str,
    authority: &str,
    path: &str,
    query: Option<&str>,
) -> Response<RespBody> {
    let scheme = r.scheme.as_deref().unwrap_or(scheme);
    let host = r.host.as_deref().unwrap_or_else(|| host_only(authority));
    let port = match r.port {
        Some(p) => format!(":{p}"),
        None => authority
            .strip_prefix(host_only(authority))
            .filter(|_| r.host.is_none())
            .unwrap_or("")
            .to_owned(),
    };
    let path = r.path.as_deref().unwrap_or(path);
    let q = query.map(|q| format!("?{q}")).unwrap_or_default();
    let location = format!("{scheme}://{host}{port}{path}{q}");
    let mut resp = local(
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::MOVED_PERMANENTLY),
        "redirect",
        String::new(),
    );
    resp.headers_mut().remove(X_WEFT_REASON);
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

#[allow(clippy::too_many_arguments)]
async fn send(
    proxy: &Arc<Proxy>,
    mut req: Request<Incoming>,
    sender: Sender,
    target: Target,
    authority: Option<Authority>,
    path_and_query: PathAndQuery,
    timeout: Option<std::time::Duration>,
    upgrade: bool,
    in_flight: InFlight,
    record: Record,
) -> Response<RespBody> {
    let Target {
        addr,
        source,
        tls,
        connect_timeout,
        pooled,
    } = target;
    let down_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let is_connect = req.method() == Method::CONNECT;
    let (mut parts, body) = req.into_parts();
    let result = match sender {
        Sender::H2(mut s) => {
            let Some(authority) = authority else {
                return with_record(
                    local(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        "the request has no authority (Host header)".into(),
                    ),
                    record,
                );
            };
            let mut uri = uri::Parts::default();
            uri.scheme = Some(Scheme::HTTP);
            uri.authority = Some(authority);
            uri.path_and_query = Some(path_and_query);
            parts.uri = match Uri::from_parts(uri) {
                Ok(u) => u,
                Err(e) => {
                    return with_record(
                        local(
                            StatusCode::BAD_REQUEST,
                            "bad_request",
                            format!("invalid authority or path: {e}"),
                        ),
                        record,
                    );
                }
            };
            parts.version = Version::HTTP_2;
            parts.headers.remove(header::HOST);
            let req = Request::from_parts(parts, body);
            match unsent(within(timeout, s.try_send_request(req)).await) {
                Ok(resp) => Ok(resp),
                // The shared connection closed (GOAWAY) before the request
                // was written: send it on a new one.
                Err(Unsent::NotSent(req, e)) => {
                    let fresh = proxy
                        .pools
                        .sender(addr, source, &tls, true, connect_timeout);
                    match Box::pin(fresh).await {
                        Ok((Sender::H2(mut fresh), _)) => {
                            answered(within(timeout, fresh.send_request(*req)).await)
                        }
                        _ => Err(SendError::Hyper(e)),
                    }
                }
                Err(Unsent::Failed(e)) => Err(SendError::Hyper(e)),
                Err(Unsent::Timeout) => Err(SendError::Timeout),
            }
        }
        Sender::H1(mut s) => {
            if !is_connect {
                parts.uri = Uri::from(path_and_query);
            }
            parts.version = Version::HTTP_11;
            if !parts.headers.contains_key(header::HOST)
                && let Some(a) = &authority
                && let Ok(v) = HeaderValue::from_str(a.as_str())
            {
                parts.headers.insert(header::HOST, v);
            }
            let req = Request::from_parts(parts, body);
            let result = match unsent(within(timeout, s.try_send_request(req)).await) {
                // A pooled connection the upstream closed while idle: the
                // request was not sent, so it goes on a fresh connection.
                Err(Unsent::NotSent(req, e)) if pooled => {
                    let fresh = proxy.pools.http1(addr, source, &tls, connect_timeout);
                    match Box::pin(fresh).await {
                        Ok((fresh, _)) => {
                            s = fresh;
                            answered(within(timeout, s.send_request(*req)).await)
                        }
                        Err(_) => Err(SendError::Hyper(e)),
                    }
                }
                Err(Unsent::NotSent(_, e) | Unsent::Failed(e)) => Err(SendError::Hyper(e)),
                Err(Unsent::Timeout) => Err(SendError::Timeout),
                Ok(resp) => Ok(resp),
            };
            if pooled && !upgrade {
                proxy.pools.release(addr, s);
            }
            result
        }
    };
    let mut resp = match result {
        Ok(r) => r,
        Err(SendError::Timeout) => {
            return with_record(
                local(
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream_timeout",
                    "upstream request timeout".into(),
                ),
                record,
            );
        }
        Err(SendError::Hyper(e)) => {
            return with_record(
                local(
                    StatusCode::BAD_GATEWAY,
                    "upstream_reset",
                    format!("upstream {addr} reset the request: {e}"),
                ),
                record,
            );
        }
    };
    let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS
        || (is_connect && resp.status().is_success());
    if let (true, Some(down_upgrade)) = (switching, down_upgrade) {
        let up_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            match tokio::try_join!(down_upgrade, up_upgrade) {
                Ok((down, up)) => {
                    let mut down = TokioIo::new(down);
                    let mut up = TokioIo::new(up);
                    if let Err(e) = tokio::io::copy_bidirectional(&mut down, &mut up).await {
                        tracing::debug!(error = %e, "upgraded connection ended");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "upgrade failed"),
            }
        });
    } else {
        headers::strip_hop_by_hop(resp.headers_mut(), false);
    }
    let mut record = record;
    record.status = resp.status().as_u16();
    resp.map(|b| {
        Tracked {
            inner: b,
            _in_flight: Some(in_flight),
            _record: Some(record),
        }
        .boxed_unsync()
    })
}

/// Where one attempt goes.
struct Target {
    addr: SocketAddr,
    source: Option<std::net::IpAddr>,
    tls: UpstreamTls,
    connect_timeout: std::time::Duration,
    /// The sender came from (and returns to) the pool.
    pooled: bool,
}

enum Unsent {
    Timeout,
    /// Not written to the connection: safe to send elsewhere.
    NotSent(Box<Request<Incoming>>, hyper::Error),
    Failed(hyper::Error),
}

/// The outcome of `try_send_request` within the timeout (`None`: it
/// elapsed), keeping a request that was not written (safe to send
/// elsewhere).
fn unsent(
    r: Option<Result<Response<Incoming>, hyper::client::conn::TrySendError<Request<Incoming>>>>,
) -> Result<Response<Incoming>, Unsent> {
    let Some(r) = r else {
        return Err(Unsent::Timeout);
    };
    r.map_err(|mut e| match e.take_message() {
        Some(req) => Unsent::NotSent(Box::new(req), e.into_error()),
        None => Unsent::Failed(e.into_error()),
    })
}

enum SendError {
    Timeout,
    Hyper(hyper::Error),
}

/// The outcome of `send_request` within the timeout (`None`: it elapsed).
fn answered(r: Option<hyper::Result<Response<Incoming>>>) -> Result<Response<Incoming>, SendError> {
    r.map_or(Err(SendError::Timeout), |r| r.map_err(SendError::Hyper))
}

/// `fut` bounded by the route's timeout when it has one (`None`: it
/// elapsed). Not an `async fn`, which would hold `fut` twice in every
/// request's future.
fn within<F: std::future::Future>(
    timeout: Option<std::time::Duration>,
    fut: F,
) -> impl std::future::Future<Output = Option<F::Output>> {
    use futures::FutureExt;
    match timeout {
        Some(t) => tokio::time::timeout(t, fut).map(Result::ok).left_future(),
        None => fut.map(Some).right_future(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_rewrite_replaces_the_matched_prefix() {
        let rw = |m: &PathMatch, rewrite, path: &'static str| {
            rewrite_path(m, rewrite, &PathAndQuery::from_static(path)).unwrap()
        };
        let p = PathMatch::Prefix("/v1".into());
        assert_eq!(rw(&p, Some("/api"), "/v1/users"), "/api/users");
        assert_eq!(rw(&p, Some("/"), "/v1/users"), "/users");
        assert_eq!(rw(&p, None, "/v1/users"), "/v1/users");
        assert_eq!(
            rw(&p, Some("/api"), "/v1/users?page=2"),
            "/api/users?page=2"
        );
        let e = PathMatch::Exact("/old".into());
        assert_eq!(rw(&e, Some("/new"), "/old"), "/new");
    }

    #[test]
    fn host_names() {
        assert_eq!(host_only("a.b:8080"), "a.b");
        assert_eq!(host_only("[::1]:80"), "::1");
        assert_eq!(host_only("a.b"), "a.b");
    }
}
