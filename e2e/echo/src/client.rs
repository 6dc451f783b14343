//! The client modes: `client` (HTTP/1.1 or h2c), `grpc-client` and
//! `tcp-client`. Each prints one JSON line per answer on `out` and fails
//! (non-zero exit in `main`) on the first unexpected answer.

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::grpc::GrpcReport;
use crate::grpc::proto::EchoRequest;
use crate::grpc::proto::echo_client::EchoClient;

/// Largest response body the client reads.
pub const MAX_RESPONSE: usize = 4 << 20;

/// Pause between attempts while `--retry-for` lasts.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Errors of the client modes.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid URL {0:?}: use e.g. http://echo.ns.svc.cluster.local:8080/")]
    InvalidUrl(String),
    #[error("invalid header {0:?}: use NAME:VALUE")]
    InvalidHeader(String),
    #[error("request to {url} failed: {detail} (is the server up and its name resolvable?)")]
    Request { url: String, detail: String },
    #[error("no answer from {target} within {timeout:?}")]
    Timeout { target: String, timeout: Duration },
    #[error("{url} answered {got}, expected {want}: {body}")]
    UnexpectedStatus {
        url: String,
        got: u16,
        want: u16,
        body: String,
    },
    #[error("reading the response of {url}: {detail}")]
    Body { url: String, detail: String },
    #[error("invalid gRPC address {addr:?}: {detail} (use e.g. http://echo.ns.svc:9090)")]
    GrpcAddr { addr: String, detail: String },
    #[error("connecting to gRPC server {addr}: {detail} (is the server up?)")]
    GrpcConnect { addr: String, detail: String },
    #[error("gRPC call to {addr} failed: {status}")]
    GrpcCall {
        addr: String,
        status: Box<tonic::Status>,
    },
    #[error("TCP {addr}: {source} (is the server up and reachable?)")]
    Tcp {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("TCP {addr} echoed {got:?}, expected {want:?}")]
    TcpMismatch {
        addr: String,
        got: String,
        want: String,
    },
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
}

/// Renders an error with its sources, for errors whose top line is vague.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Parses `NAME:VALUE` (spaces around VALUE trimmed).
pub fn parse_header(spec: &str) -> Result<(HeaderName, HeaderValue), ClientError> {
    let err = || ClientError::InvalidHeader(spec.to_owned());
    let (name, value) = spec.split_once(':').ok_or_else(err)?;
    let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| err())?;
    let value = HeaderValue::from_str(value.trim()).map_err(|_| err())?;
    Ok((name, value))
}

/// Options of `weft-echo client`.
#[derive(Debug, Clone)]
pub struct HttpClientOptions {
    pub url: String,
    /// HTTP/2 with prior knowledge (h2c) instead of HTTP/1.1.
    pub http2: bool,
    pub count: u32,
    pub headers: Vec<String>,
    /// Status every answer must have.
    pub expect_status: u16,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Keep retrying failed connections (not wrong statuses) this long.
    pub retry_for: Duration,
}

/// One HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    pub body: String,
}

/// Sends `count` GET requests; prints each body as one line on `out`.
pub async fn http_client(
    opts: &HttpClientOptions,
    out: &mut (dyn Write + Send),
) -> Result<Vec<HttpAnswer>, ClientError> {
    let uri: Uri = opts
        .url
        .parse()
        .map_err(|_| ClientError::InvalidUrl(opts.url.clone()))?;
    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
        return Err(ClientError::InvalidUrl(opts.url.clone()));
    }
    let headers = opts
        .headers
        .iter()
        .map(|h| parse_header(h))
        .collect::<Result<Vec<_>, _>>()?;
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(opts.timeout));
    let client: Client<HttpConnector, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(opts.http2)
        .build(connector);
    let version = if opts.http2 {
        http::Version::HTTP_2
    } else {
        http::Version::HTTP_11
    };
    let deadline = Instant::now() + opts.retry_for;
    let mut answers = Vec::new();
    for i in 0..opts.count {
        let answer = loop {
            let mut builder = Request::get(uri.clone()).version(version);
            for (name, value) in &headers {
                builder = builder.header(name, value);
            }
            let request = builder
                .body(Empty::new())
                .map_err(|_| ClientError::InvalidUrl(opts.url.clone()))?;
            match tokio::time::timeout(opts.timeout, client.request(request)).await {
                Err(_) => {
                    break Err(ClientError::Timeout {
                        target: opts.url.clone(),
                        timeout: opts.timeout,
                    });
                }
                Ok(Err(error)) if Instant::now() < deadline => {
                    debug!(error = %error_chain(&error), "request failed, retrying");
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Ok(Err(error)) => {
                    break Err(ClientError::Request {
                        url: opts.url.clone(),
                        detail: error_chain(&error),
                    });
                }
                Ok(Ok(response)) => {
                    let status = response.status().as_u16();
                    let body = tokio::time::timeout(
                        opts.timeout,
                        Limited::new(response.into_body(), MAX_RESPONSE).collect(),
                    )
                    .await
                    .map_err(|_| ClientError::Timeout {
                        target: opts.url.clone(),
                        timeout: opts.timeout,
                    })?
                    .map_err(|e| ClientError::Body {
                        url: opts.url.clone(),
                        detail: e.to_string(),
                    })?
                    .to_bytes();
                    let body = String::from_utf8_lossy(&body).trim_end().replace('\n', " ");
                    break Ok(HttpAnswer { status, body });
                }
            }
        }?;
        writeln!(out, "{}", answer.body)?;
        out.flush()?;
        if answer.status != opts.expect_status {
            warn!(request = i, status = answer.status, "unexpected status");
            return Err(ClientError::UnexpectedStatus {
                url: opts.url.clone(),
                got: answer.status,
                want: opts.expect_status,
                body: answer.body,
            });
        }
        answers.push(answer);
    }
    Ok(answers)
}

/// Options of `weft-echo grpc-client`.
#[derive(Debug, Clone)]
pub struct GrpcClientOptions {
    /// `http://host:port`.
    pub addr: String,
    pub message: String,
    pub count: u32,
    pub timeout: Duration,
    pub retry_for: Duration,
}

/// Calls `weft.echo.v1.Echo/Echo` `count` times; prints each answer as a
/// [`GrpcReport`] JSON line.
pub async fn grpc_client(
    opts: &GrpcClientOptions,
    out: &mut (dyn Write + Send),
) -> Result<Vec<GrpcReport>, ClientError> {
    let endpoint = tonic::transport::Endpoint::from_shared(opts.addr.clone())
        .map_err(|e| ClientError::GrpcAddr {
            addr: opts.addr.clone(),
            detail: e.to_string(),
        })?
        .connect_timeout(opts.timeout)
        .timeout(opts.timeout);
    let deadline = Instant::now() + opts.retry_for;
    let channel = loop {
        match endpoint.connect().await {
            Ok(channel) => break channel,
            Err(error) if Instant::now() < deadline => {
                debug!(error = %error_chain(&error), "gRPC connect failed, retrying");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(error) => {
                return Err(ClientError::GrpcConnect {
                    addr: opts.addr.clone(),
                    detail: error_chain(&error),
                });
            }
        }
    };
    let mut client = EchoClient::new(channel);
    let mut reports = Vec::new();
    for _ in 0..opts.count {
        let response = client
            .echo(EchoRequest {
                message: opts.message.clone(),
            })
            .await
            .map_err(|status| ClientError::GrpcCall {
                addr: opts.addr.clone(),
                status: Box::new(status),
            })?;
        let report = GrpcReport::from(response.into_inner());
        writeln!(
            out,
            "{}",
            serde_json::to_string(&report).unwrap_or_default()
        )?;
        out.flush()?;
        reports.push(report);
    }
    Ok(reports)
}

/// Options of `weft-echo tcp-client`.
#[derive(Debug, Clone)]
pub struct TcpClientOptions {
    /// `host:port`.
    pub addr: String,
    pub message: String,
    pub count: u32,
    pub timeout: Duration,
    pub retry_for: Duration,
    /// Only check that a connection is accepted (for ports that do not echo).
    pub connect_only: bool,
}

/// What `weft-echo tcp-client` prints per connection (one JSON line).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpReport {
    pub addr: String,
    /// The address connected to after name resolution.
    pub peer: String,
    pub sent: String,
    pub received: String,
}

/// Opens `count` connections, sends the message, half-closes and expects the
/// same bytes back.
pub async fn tcp_client(
    opts: &TcpClientOptions,
    out: &mut (dyn Write + Send),
) -> Result<Vec<TcpReport>, ClientError> {
    let io = |source| ClientError::Tcp {
        addr: opts.addr.clone(),
        source,
    };
    let timeout = |_| ClientError::Timeout {
        target: opts.addr.clone(),
        timeout: opts.timeout,
    };
    let deadline = Instant::now() + opts.retry_for;
    let mut reports = Vec::new();
    for _ in 0..opts.count {
        let mut stream = loop {
            match tokio::time::timeout(opts.timeout, TcpStream::connect(&opts.addr)).await {
                Ok(Ok(s)) => break s,
                Ok(Err(_)) | Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Ok(Err(e)) => return Err(io(e)),
                Err(e) => return Err(timeout(e)),
            }
        };
        let peer = stream
            .peer_addr()
            .map(|p| p.to_string())
            .unwrap_or_default();
        let mut report = TcpReport {
            addr: opts.addr.clone(),
            peer,
            sent: String::new(),
            received: String::new(),
        };
        if !opts.connect_only {
            stream
                .write_all(opts.message.as_bytes())
                .await
                .map_err(io)?;
            stream.shutdown().await.map_err(io)?;
            let mut received = Vec::new();
            tokio::time::timeout(
                opts.timeout,
                (&mut stream)
                    .take(MAX_RESPONSE as u64)
                    .read_to_end(&mut received),
            )
            .await
            .map_err(timeout)?
            .map_err(io)?;
            report.sent = opts.message.clone();
            report.received = String::from_utf8_lossy(&received).into_owned();
        }
        writeln!(
            out,
            "{}",
            serde_json::to_string(&report).unwrap_or_default()
        )?;
        out.flush()?;
        if report.sent != report.received {
            return Err(ClientError::TcpMismatch {
                addr: opts.addr.clone(),
                got: report.received,
                want: report.sent,
            });
        }
        reports.push(report);
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse() {
        let (n, v) = parse_header("X-Test: a b").expect("valid");
        assert_eq!(n.as_str(), "x-test");
        assert_eq!(v.to_str().ok(), Some("a b"));
        assert!(parse_header("nocolon").is_err());
        assert!(parse_header("bad name:x").is_err());
    }

    #[tokio::test]
    async fn rejects_non_http_urls() {
        let opts = HttpClientOptions {
            url: "https://x/".into(),
            http2: false,
            count: 1,
            headers: vec![],
            expect_status: 200,
            timeout: Duration::from_secs(1),
            retry_for: Duration::ZERO,
        };
        let mut out = Vec::new();
        assert!(matches!(
            http_client(&opts, &mut out).await,
            Err(ClientError::InvalidUrl(_))
        ));
    }
}
