//! The echo report: what the HTTP server answers, built from a request by
//! pure functions, plus the `?status=` / `?delay=` test controls.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Longest `?delay=` the server honours, so a typo cannot park a connection.
pub const MAX_DELAY: Duration = Duration::from_secs(300);

/// Errors in the test controls of a request or in a duration flag.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("invalid status {0:?}: use ?status=NNN with NNN between 100 and 999")]
    InvalidStatus(String),
    #[error("invalid duration {0:?}: use a number with a unit, e.g. 100ms, 2s or 1m")]
    InvalidDuration(String),
    #[error("delay {0:?} is longer than the maximum of {max}s", max = MAX_DELAY.as_secs())]
    DelayTooLong(String),
}

/// Who is answering: set in a pod through the downward API.
///
/// | env             | downward API field                       |
/// |-----------------|------------------------------------------|
/// | `POD_NAME`      | `metadata.name`                          |
/// | `POD_NAMESPACE` | `metadata.namespace`                     |
/// | `VERSION`       | `metadata.labels['version']`             |
/// | `HOSTNAME`      | set by the container runtime (pod name)  |
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub pod: String,
    pub namespace: String,
    pub version: String,
    pub hostname: String,
}

impl Identity {
    /// Reads `POD_NAME`, `POD_NAMESPACE`, `VERSION` and the hostname
    /// (`HOSTNAME`, else `/proc/sys/kernel/hostname`). Missing values are empty.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).unwrap_or_default();
        let hostname = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        Self {
            pod: var("POD_NAME"),
            namespace: var("POD_NAMESPACE"),
            version: var("VERSION"),
            hostname,
        }
    }
}

/// The JSON body of every non-health HTTP answer (one line per response on
/// the client's stdout).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EchoReport {
    pub pod: String,
    pub namespace: String,
    pub version: String,
    pub hostname: String,
    /// `HTTP/1.0`, `HTTP/1.1` or `HTTP/2.0`.
    pub protocol: String,
    pub method: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The `:authority` (HTTP/2) or `Host` header (HTTP/1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// Lower-case header names; repeated headers joined with `", "`.
    pub headers: BTreeMap<String, String>,
    /// The peer address the server saw (`ip:port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// Status the server answered with.
    pub status: u16,
    /// Bytes of request body received.
    #[serde(default)]
    pub body_bytes: usize,
}

/// Test controls taken from the query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Controls {
    pub status: u16,
    pub delay: Duration,
}

impl Default for Controls {
    fn default() -> Self {
        Self {
            status: 200,
            delay: Duration::ZERO,
        }
    }
}

/// Parses `status=NNN` and `delay=<duration>` from a query string; other
/// parameters are ignored.
pub fn parse_controls(query: Option<&str>) -> Result<Controls, ControlError> {
    let mut controls = Controls::default();
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "status" => {
                controls.status = value
                    .parse::<u16>()
                    .ok()
                    .filter(|s| (100..=999).contains(s))
                    .ok_or_else(|| ControlError::InvalidStatus(value.to_owned()))?;
            }
            "delay" => {
                let delay = parse_duration(value)?;
                if delay > MAX_DELAY {
                    return Err(ControlError::DelayTooLong(value.to_owned()));
                }
                controls.delay = delay;
            }
            _ => {}
        }
    }
    Ok(controls)
}

/// Parses `250ms`, `2s`, `1m`, `1h` (a non-negative integer and a unit).
pub fn parse_duration(text: &str) -> Result<Duration, ControlError> {
    let err = || ControlError::InvalidDuration(text.to_owned());
    let digits = text.chars().take_while(char::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let n: u64 = number.parse().map_err(|_| err())?;
    let millis = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    }
    .ok_or_else(err)?;
    Ok(Duration::from_millis(millis))
}

/// `[::ffff:10.0.0.1]:80` (IPv4 seen by a dual-stack listener) → `10.0.0.1:80`.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Protocol name as HTTP spells it.
pub fn protocol_name(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_11 => "HTTP/1.1",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "unknown",
    }
}

/// Builds the report for a request head. Pure: the identity, peer and the
/// status to answer with are passed in.
pub fn build_report(
    identity: &Identity,
    head: &http::request::Parts,
    peer: Option<SocketAddr>,
    status: u16,
    body_bytes: usize,
) -> EchoReport {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in &head.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let authority = head
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| headers.get("host").cloned());
    EchoReport {
        pod: identity.pod.clone(),
        namespace: identity.namespace.clone(),
        version: identity.version.clone(),
        hostname: identity.hostname.clone(),
        protocol: protocol_name(head.version).to_owned(),
        method: head.method.as_str().to_owned(),
        path: head.uri.path().to_owned(),
        query: head.uri.query().map(str::to_owned),
        authority,
        headers,
        client: peer.map(|p| p.to_string()),
        status,
        body_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            pod: "echo-1".into(),
            namespace: "ns".into(),
            version: "v1".into(),
            hostname: "echo-1".into(),
        }
    }

    #[test]
    fn report_reflects_the_request() {
        let (head, ()) = http::Request::builder()
            .method("POST")
            .uri("/a/b?x=1&status=201")
            .version(http::Version::HTTP_11)
            .header("Host", "echo.ns.svc:8080")
            .header("x-test", "one")
            .header("x-test", "two")
            .body(())
            .expect("valid request")
            .into_parts();
        let peer: SocketAddr = "10.0.0.7:41234".parse().expect("valid addr");
        let report = build_report(&identity(), &head, Some(peer), 201, 3);
        assert_eq!(report.pod, "echo-1");
        assert_eq!(report.namespace, "ns");
        assert_eq!(report.version, "v1");
        assert_eq!(report.protocol, "HTTP/1.1");
        assert_eq!(report.method, "POST");
        assert_eq!(report.path, "/a/b");
        assert_eq!(report.query.as_deref(), Some("x=1&status=201"));
        assert_eq!(report.authority.as_deref(), Some("echo.ns.svc:8080"));
        assert_eq!(
            report.headers.get("x-test").map(String::as_str),
            Some("one, two")
        );
        assert_eq!(report.client.as_deref(), Some("10.0.0.7:41234"));
        assert_eq!(report.status, 201);
        assert_eq!(report.body_bytes, 3);
    }

    #[test]
    fn http2_authority_comes_from_the_uri() {
        let (head, ()) = http::Request::builder()
            .uri("http://echo:8080/")
            .version(http::Version::HTTP_2)
            .body(())
            .expect("valid request")
            .into_parts();
        let report = build_report(&identity(), &head, None, 200, 0);
        assert_eq!(report.protocol, "HTTP/2.0");
        assert_eq!(report.authority.as_deref(), Some("echo:8080"));
        assert_eq!(report.client, None);
    }

    #[test]
    fn report_round_trips_through_json() {
        let (head, ()) = http::Request::builder()
            .uri("/")
            .body(())
            .expect("valid request")
            .into_parts();
        let report = build_report(&identity(), &head, None, 200, 0);
        let line = serde_json::to_string(&report).expect("serializable");
        assert!(!line.contains('\n'));
        let back: EchoReport = serde_json::from_str(&line).expect("parses back");
        assert_eq!(back, report);
    }

    #[test]
    fn controls_table() {
        let ms = Duration::from_millis;
        let cases: &[(Option<&str>, Result<Controls, ControlError>)] = &[
            (None, Ok(Controls::default())),
            (Some(""), Ok(Controls::default())),
            (Some("a=b&c"), Ok(Controls::default())),
            (
                Some("status=503"),
                Ok(Controls {
                    status: 503,
                    delay: Duration::ZERO,
                }),
            ),
            (
                Some("delay=100ms&status=204"),
                Ok(Controls {
                    status: 204,
                    delay: ms(100),
                }),
            ),
            (
                Some("delay=2s"),
                Ok(Controls {
                    status: 200,
                    delay: ms(2000),
                }),
            ),
            (
                Some("status=abc"),
                Err(ControlError::InvalidStatus("abc".into())),
            ),
            (
                Some("status=42"),
                Err(ControlError::InvalidStatus("42".into())),
            ),
            (
                Some("delay=5"),
                Err(ControlError::InvalidDuration("5".into())),
            ),
            (
                Some("delay=ms"),
                Err(ControlError::InvalidDuration("ms".into())),
            ),
            (
                Some("delay=10m"),
                Err(ControlError::DelayTooLong("10m".into())),
            ),
        ];
        for (query, want) in cases {
            assert_eq!(&parse_controls(*query), want, "query {query:?}");
        }
    }

    #[test]
    fn mapped_ipv4_peers_are_shown_as_ipv4() {
        let mapped: SocketAddr = "[::ffff:10.112.0.19]:34688".parse().expect("valid");
        assert_eq!(canonical(mapped).to_string(), "10.112.0.19:34688");
        let v6: SocketAddr = "[fd00::1]:80".parse().expect("valid");
        assert_eq!(canonical(v6), v6);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0ms"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
    }
}
