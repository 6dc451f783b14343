//! In-test echo servers: HTTP (h1 + h2c; reports method, path, query, version and
//! headers as JSON; `/stream` echoes the request body frame by frame with
//! its trailers; `/slow` answers after a delay; `/ws` is a WebSocket echo;
//! `/bytes/<n>` answers [`pattern`]`(n)`) and TCP echo.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use envoy_types::pb::google::protobuf::StringValue;
use futures::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = UnsyncBoxBody<Bytes, BoxError>;

/// The gRPC method the echo serves (bidirectional streaming).
pub const GRPC_BIDI: &str = "/weft.test.Echo/Bidi";

/// Bidirectional streaming gRPC echo: each message comes back prefixed.
#[derive(Clone, Debug)]
struct Bidi;

impl tonic::server::StreamingService<StringValue> for Bidi {
    type Response = StringValue;
    type ResponseStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<StringValue, tonic::Status>> + Send>>;
    type Future = std::future::Ready<Result<tonic::Response<Self::ResponseStream>, tonic::Status>>;

    fn call(&mut self, req: tonic::Request<tonic::Streaming<StringValue>>) -> Self::Future {
        let stream = req.into_inner().map(|m| {
            m.map(|v| StringValue {
                value: format!("echo:{}", v.value),
            })
        });
        std::future::ready(Ok(tonic::Response::new(Box::pin(stream))))
    }
}

fn full(s: String) -> Body {
    Full::new(Bytes::from(s))
        .map_err(|never: Infallible| -> BoxError { match never {} })
        .boxed_unsync()
}

async fn handle(
    mut req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response<Body>, Infallible> {
    if req.method() == http::Method::CONNECT {
        // A TCP echo behind CONNECT.
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let Ok(upgraded) = upgrade.await else { return };
            let mut io = TokioIo::new(upgraded);
            let mut buf = vec![0u8; 4096];
            loop {
                match tokio::io::AsyncReadExt::read(&mut io, &mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if tokio::io::AsyncWriteExt::write_all(&mut io, &buf[..n])
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        });
        return Ok(Response::new(full(String::new())));
    }
    match req.uri().path() {
        GRPC_BIDI => {
            let resp = tonic::server::Grpc::new(tonic_prost::ProstCodec::default())
                .streaming(Bidi, req)
                .await;
            Ok(resp.map(|b| b.map_err(|s| -> BoxError { Box::new(s) }).boxed_unsync()))
        }
        "/stream" => {
            let mut resp = Response::new(
                req.into_body()
                    .map_err(|e| -> BoxError { Box::new(e) })
                    .boxed_unsync(),
            );
            resp.headers_mut()
                .insert("content-type", "application/grpc".parse().unwrap());
            Ok(resp)
        }
        "/ws" => {
            let key = req
                .headers()
                .get("sec-websocket-key")
                .map(|k| derive_accept_key(k.as_bytes()))
                .unwrap_or_default();
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(upgraded) = upgrade.await else { return };
                let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    None,
                )
                .await;
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() || msg.is_binary() {
                        if ws.send(msg).await.is_err() {
                            break;
                        }
                    } else if msg.is_close() {
                        break;
                    }
                }
            });
            let resp = Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-accept", key)
                .body(full(String::new()))
                .unwrap();
            Ok(resp)
        }
        path if path.starts_with("/bytes/") => {
            let Ok(n) = path["/bytes/".len()..].parse::<usize>() else {
                let mut resp = Response::new(full("bad length".into()));
                *resp.status_mut() = StatusCode::BAD_REQUEST;
                return Ok(resp);
            };
            Ok(Response::new(
                Full::new(Bytes::from(pattern(n)))
                    .map_err(|never: Infallible| -> BoxError { match never {} })
                    .boxed_unsync(),
            ))
        }
        path => {
            if path == "/slow" {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let headers: serde_json::Map<String, serde_json::Value> = req
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        serde_json::Value::String(v.to_str().unwrap_or("").to_owned()),
                    )
                })
                .collect();
            let body = serde_json::json!({
                "method": req.method().as_str(),
                "path": req.uri().path(),
                "query": req.uri().query(),
                "version": format!("{:?}", req.version()),
                "headers": headers,
                "peer": peer.to_string(),
            });
            Ok(Response::new(full(body.to_string())))
        }
    }
}

/// `n` bytes of a pattern that repeats every 251 bytes (a prime, so it
/// never lines up with frame or buffer sizes): a misplaced chunk shows.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// Starts the HTTP echo on `127.0.0.1:0`; returns its address.
pub async fn http() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, peer)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(
                        TokioIo::new(s),
                        service_fn(move |r| handle(r, peer)),
                    )
                    .await;
            });
        }
    });
    addr
}

/// Starts a TCP echo on `127.0.0.1:0`.
pub async fn tcp() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}
