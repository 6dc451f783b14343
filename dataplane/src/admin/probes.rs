//! Application probes the injector rewrote to
//! `15020/app-health/<container>/<livez|readyz|startupz>`: the proxy calls
//! the application's original HTTP GET from inside the pod (plain text, so
//! STRICT mTLS does not refuse the kubelet) and answers with its outcome.
//! The originals come from `WEFT_APP_PROBES`: JSON keyed by rewritten path,
//! each `{"httpGet": {path, port, host?, scheme?, httpHeaders?}, "timeoutSeconds"?}`.

use std::collections::BTreeMap;
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

/// Runs a probe: 200 when the application answers 2xx/3xx, else 503 with
/// the reason.
pub async fn run(probe: &AppProbe) -> (StatusCode, String) {
    let get = &probe.http_get;
    if get
        .scheme
        .as_deref()
        .is_some_and(|s| !s.eq_ignore_ascii_case("http"))
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "only HTTP application probes are supported".into(),
        );
    }
    let host = get.host.clone().unwrap_or_else(|| "127.0.0.1".into());
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1));
    let path = get.path.clone().unwrap_or_else(|| "/".into());
    let attempt = async {
        let stream = tokio::net::TcpStream::connect((host.as_str(), get.port))
            .await
            .map_err(|e| format!("connect {host}:{}: {e}", get.port))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut req =
            Request::get(&path).header(http::header::HOST, format!("{host}:{}", get.port));
        for h in &get.http_headers {
            req = req.header(h.name.as_str(), h.value.as_str());
        }
        let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let _ = resp.into_body().collect().await;
        Ok::<StatusCode, String>(status)
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
}
