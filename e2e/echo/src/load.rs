//! `weft-echo load`: an open-loop HTTP load generator at a fixed rate,
//! in the manner of wrk2.
//!
//! * Request `i` is due `i / rate` seconds after the start and is sent on
//!   connection `i mod C`, so arrivals are spread evenly over time and
//!   over the connections (h2load's `--rps` fires every connection on the
//!   same tick: bursts of C requests).
//! * Latency is measured from when a request was due, not from when it
//!   was sent: a stall in the path (or in the generator) that holds back
//!   later requests counts in full for each of them. This is the
//!   coordinated-omission correction. The latency from the actual send is
//!   reported too, as is how late the generator sent.
//! * Due times are kept with a `timerfd` on `CLOCK_MONOTONIC` (absolute,
//!   nanoseconds): Tokio's timer wheel rounds to milliseconds, which would
//!   add up to a millisecond to every measured latency.
//!
//! One thread (the caller's current-thread runtime) drives every
//! connection, like `h2load -t 1`.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustix::time::{
    ClockId, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec,
};
use serde::Serialize;
use tokio::io::unix::AsyncFd;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::client::error_chain;

const NANOS: u64 = 1_000_000_000;

/// Errors of `weft-echo load`.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("invalid URL {0:?}: use e.g. http://127.0.0.1:8080/path")]
    InvalidUrl(String),
    #[error("invalid load: {0}")]
    InvalidLoad(&'static str),
    #[error("connecting to {addr}: {source} (is the server up?)")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP handshake with {addr}: {detail}")]
    Handshake { addr: String, detail: String },
    #[error("the pacing timer (timerfd): {0}")]
    Timer(#[source] std::io::Error),
    #[error("writing the summary: {0}")]
    Output(#[source] std::io::Error),
}

/// Options of `weft-echo load`.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub url: String,
    /// HTTP/2 with prior knowledge (h2c) instead of HTTP/1.1.
    pub http2: bool,
    /// Requests per second, over all connections.
    pub rate: u32,
    pub connections: u32,
    /// Streams in flight at most per HTTP/2 connection (HTTP/1.1: one).
    pub streams: u32,
    /// Measured time; requests due during `warmup` before it are sent but
    /// not counted.
    pub duration: Duration,
    pub warmup: Duration,
    /// Requests still unanswered this long after the last one was due are
    /// counted as errors.
    pub timeout: Duration,
}

/// When request `index` is due (nanoseconds after the start) and the
/// connection that sends it.
pub fn schedule(index: u64, rate: u32, connections: u32) -> (u64, usize) {
    let due = u64::try_from(u128::from(index) * u128::from(NANOS) / u128::from(rate.max(1)))
        .unwrap_or(u64::MAX);
    let connection = usize::try_from(index % u64::from(connections.max(1))).unwrap_or(0);
    (due, connection)
}

/// One request: instants in nanoseconds on `CLOCK_MONOTONIC`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub due: u64,
    pub sent: u64,
    pub done: u64,
    /// HTTP status; 0 when the request failed.
    pub status: u16,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    #[serde(rename = "p99.9")]
    pub p99_9: f64,
    pub max: f64,
}

/// What a run measured (printed as one JSON line).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub target_rps: u32,
    /// Answered (2xx) requests per second of measured time.
    pub rps: f64,
    pub requests: u64,
    /// Failed requests, non-2xx answers and requests never answered.
    pub errors: u64,
    /// From when each request was due (coordinated omission corrected).
    pub latency_ms: Percentiles,
    /// From when each request was actually sent.
    pub latency_from_send_ms: Percentiles,
    /// How late the generator sent (due → sent): when this is large the
    /// generator, not the path, was the bottleneck.
    pub send_lag_ms: Percentiles,
}

/// Nearest-rank percentile of an ascending slice, in ms (empty: 0).
fn percentile_ms(sorted_ns: &[u64], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return 0.0;
    }
    let len = sorted_ns.len();
    // Rank = ceil(p/100 * len), at least 1; computed in integers of
    // per-mille to stay exact for 99.9.
    let per_mille = (p * 10.0).round() as u64;
    let rank = (per_mille * len as u64).div_ceil(1000).max(1);
    let index = usize::try_from(rank - 1).unwrap_or(0).min(len - 1);
    sorted_ns[index] as f64 / 1e6
}

fn percentiles(mut ns: Vec<u64>) -> Percentiles {
    ns.sort_unstable();
    Percentiles {
        p50: percentile_ms(&ns, 50.0),
        p90: percentile_ms(&ns, 90.0),
        p99: percentile_ms(&ns, 99.0),
        p99_9: percentile_ms(&ns, 99.9),
        max: ns.last().map_or(0.0, |&v| v as f64 / 1e6),
    }
}

/// The figures of the requests due in the measured window
/// `[measure_from, measure_from + duration)`; `expected` is how many were
/// due in it (those without a sample were never answered).
pub fn summarize(
    samples: &[Sample],
    measure_from: u64,
    duration: Duration,
    target_rps: u32,
    expected: u64,
) -> Summary {
    let window = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    let measured: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.due >= measure_from && s.due - measure_from < window)
        .collect();
    let ok: Vec<&Sample> = measured
        .iter()
        .copied()
        .filter(|s| (200..300).contains(&s.status))
        .collect();
    let requests = ok.len() as u64;
    let errors = expected.saturating_sub(requests);
    let secs = duration.as_secs_f64();
    Summary {
        target_rps,
        rps: if secs > 0.0 {
            requests as f64 / secs
        } else {
            0.0
        },
        requests,
        errors,
        latency_ms: percentiles(ok.iter().map(|s| s.done.saturating_sub(s.due)).collect()),
        latency_from_send_ms: percentiles(
            ok.iter().map(|s| s.done.saturating_sub(s.sent)).collect(),
        ),
        send_lag_ms: percentiles(
            measured
                .iter()
                .map(|s| s.sent.saturating_sub(s.due))
                .collect(),
        ),
    }
}

/// Now on `CLOCK_MONOTONIC`, in nanoseconds.
pub fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(ClockId::Monotonic);
    u64::try_from(t.tv_sec).unwrap_or(0) * NANOS + u64::try_from(t.tv_nsec).unwrap_or(0)
}

/// A one-shot absolute timer on `CLOCK_MONOTONIC` with nanosecond
/// resolution, awaited through the runtime's reactor.
struct PaceTimer {
    fd: AsyncFd<OwnedFd>,
}

impl PaceTimer {
    fn new() -> std::io::Result<Self> {
        let fd = rustix::time::timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        // Deprecated because a registered descriptor could be closed or
        // replaced under the reactor; here the AsyncFd owns it (OwnedFd)
        // for as long as it is registered, which is the safe case.
        #[allow(deprecated)]
        let fd = AsyncFd::new(fd)?;
        Ok(Self { fd })
    }

    /// Returns at `deadline` (ns on `CLOCK_MONOTONIC`), at once if past.
    async fn wait_until(&self, deadline: u64) -> std::io::Result<()> {
        if now_ns() >= deadline {
            return Ok(());
        }
        let value = Timespec {
            tv_sec: i64::try_from(deadline / NANOS).unwrap_or(i64::MAX),
            tv_nsec: i64::try_from(deadline % NANOS).unwrap_or(0),
        };
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        rustix::time::timerfd_settime(
            self.fd.get_ref(),
            TimerfdTimerFlags::ABSTIME,
            &Itimerspec {
                it_interval: zero,
                it_value: value,
            },
        )?;
        loop {
            let mut ready = self.fd.readable().await?;
            let mut expirations = [0u8; 8];
            match rustix::io::read(self.fd.get_ref(), &mut expirations) {
                Ok(_) => return Ok(()),
                Err(rustix::io::Errno::AGAIN) => ready.clear_ready(),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The request every connection sends.
#[derive(Debug, Clone)]
struct Target {
    uri: Uri,
    addr: String,
    http2: bool,
    /// The `Host` header of HTTP/1.1 requests (HTTP/2 sends `:authority`
    /// from the URI), computed once rather than per request.
    host: Option<http::HeaderValue>,
}

impl Target {
    fn parse(url: &str, http2: bool) -> Result<Self, LoadError> {
        let invalid = || LoadError::InvalidUrl(url.to_owned());
        let uri: Uri = url.parse().map_err(|_| invalid())?;
        if uri.scheme_str() != Some("http") {
            return Err(invalid());
        }
        let authority = uri.authority().ok_or_else(invalid)?;
        let addr = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        let host = if http2 {
            None
        } else {
            Some(http::HeaderValue::from_str(authority.as_str()).map_err(|_| invalid())?)
        };
        Ok(Self {
            uri,
            addr,
            http2,
            host,
        })
    }

    fn request(&self) -> Request<Empty<Bytes>> {
        let version = if self.http2 {
            http::Version::HTTP_2
        } else {
            http::Version::HTTP_11
        };
        let mut request = Request::new(Empty::new());
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = version;
        if let Some(host) = &self.host {
            request
                .headers_mut()
                .insert(http::header::HOST, host.clone());
        }
        request
    }

    async fn tcp(&self) -> Result<TokioIo<TcpStream>, LoadError> {
        let stream = TcpStream::connect(&self.addr)
            .await
            .map_err(|source| LoadError::Connect {
                addr: self.addr.clone(),
                source,
            })?;
        stream
            .set_nodelay(true)
            .map_err(|source| LoadError::Connect {
                addr: self.addr.clone(),
                source,
            })?;
        Ok(TokioIo::new(stream))
    }

    fn handshake_error(&self, error: &hyper::Error) -> LoadError {
        LoadError::Handshake {
            addr: self.addr.clone(),
            detail: error_chain(error),
        }
    }

    async fn connect_h1(&self) -> Result<http1::SendRequest<Empty<Bytes>>, LoadError> {
        let (sender, connection) = http1::handshake(self.tcp().await?)
            .await
            .map_err(|e| self.handshake_error(&e))?;
        tokio::spawn(connection);
        Ok(sender)
    }

    async fn connect_h2(&self) -> Result<http2::SendRequest<Empty<Bytes>>, LoadError> {
        let (sender, connection) = http2::handshake(TokioExecutor::new(), self.tcp().await?)
            .await
            .map_err(|e| self.handshake_error(&e))?;
        tokio::spawn(connection);
        Ok(sender)
    }
}

/// Status of one answer whose body was read to the end (0: failed).
async fn status_of(response: Result<http::Response<hyper::body::Incoming>, hyper::Error>) -> u16 {
    match response {
        Ok(response) => {
            let status = response.status().as_u16();
            match response.into_body().collect().await {
                Ok(_) => status,
                Err(_) => 0,
            }
        }
        Err(_) => 0,
    }
}

/// An HTTP/1.1 connection: one request at a time, in due order; after a
/// failure the next request opens a new connection.
async fn run_h1(target: Target, mut due: mpsc::UnboundedReceiver<u64>) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut sender = target.connect_h1().await.ok();
    while let Some(due) = due.recv().await {
        if sender.as_ref().is_none_or(|s| s.is_closed()) {
            sender = target.connect_h1().await.ok();
        }
        let sent = now_ns();
        let status = match sender.as_mut() {
            Some(s) => match s.ready().await {
                Ok(()) => status_of(s.send_request(target.request()).await).await,
                Err(_) => 0,
            },
            None => 0,
        };
        if status == 0 {
            sender = None;
        }
        samples.push(Sample {
            due,
            sent,
            done: now_ns(),
            status,
        });
    }
    samples
}

/// An HTTP/2 connection: up to `streams` requests in flight; a request
/// due while all are busy waits for one (its wait counts: due → done).
async fn run_h2(
    target: Target,
    streams: usize,
    mut due: mpsc::UnboundedReceiver<u64>,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut sender = target.connect_h2().await.ok();
    let mut in_flight = FuturesUnordered::new();
    let mut open = true;
    loop {
        tokio::select! {
            next = due.recv(), if open && in_flight.len() < streams.max(1) => {
                let Some(due) = next else {
                    open = false;
                    continue;
                };
                if sender.as_ref().is_none_or(|s| s.is_closed()) {
                    sender = target.connect_h2().await.ok();
                }
                let request = sender.clone().map(|mut s| {
                    let request = target.request();
                    async move { s.send_request(request).await }
                });
                in_flight.push(async move {
                    let sent = now_ns();
                    let status = match request {
                        Some(request) => status_of(request.await).await,
                        None => 0,
                    };
                    Sample { due, sent, done: now_ns(), status }
                });
            }
            Some(sample) = in_flight.next(), if !in_flight.is_empty() => samples.push(sample),
            else => break,
        }
    }
    samples
}

/// Runs the load and prints its [`Summary`] as one JSON line on `out`.
pub async fn load(opts: &LoadOptions, out: &mut (dyn Write + Send)) -> Result<Summary, LoadError> {
    if opts.rate == 0 || opts.connections == 0 || opts.streams == 0 {
        return Err(LoadError::InvalidLoad(
            "--rate, --connections and --streams must be at least 1",
        ));
    }
    if opts.duration.is_zero() {
        return Err(LoadError::InvalidLoad("--duration must be more than 0"));
    }
    let target = Target::parse(&opts.url, opts.http2)?;
    // Fail early (with the reason) when the target does not answer.
    if opts.http2 {
        drop(target.connect_h2().await?);
    } else {
        drop(target.connect_h1().await?);
    }
    let timer = PaceTimer::new().map_err(LoadError::Timer)?;

    let streams = usize::try_from(opts.streams).unwrap_or(1);
    let mut senders = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..opts.connections {
        let (tx, rx) = mpsc::unbounded_channel();
        senders.push(tx);
        let target = target.clone();
        tasks.push(if opts.http2 {
            tokio::spawn(run_h2(target, streams, rx))
        } else {
            tokio::spawn(run_h1(target, rx))
        });
    }
    // Connections open before the first request is due.
    let start = now_ns() + 100_000_000;
    let warmup = u64::try_from(opts.warmup.as_nanos()).unwrap_or(u64::MAX);
    let total = warmup.saturating_add(u64::try_from(opts.duration.as_nanos()).unwrap_or(u64::MAX));
    let mut expected = 0u64;
    for index in 0.. {
        let (offset, connection) = schedule(index, opts.rate, opts.connections);
        if offset >= total {
            break;
        }
        let due = start + offset;
        timer.wait_until(due).await.map_err(LoadError::Timer)?;
        if offset >= warmup {
            expected += 1;
        }
        if let Some(tx) = senders.get(connection) {
            // A connection task only ends when its channel closes.
            let _ = tx.send(due);
        }
    }
    drop(senders);

    let mut samples = Vec::new();
    let grace = tokio::time::sleep(opts.timeout);
    tokio::pin!(grace);
    for task in tasks {
        tokio::select! {
            joined = task => samples.extend(joined.unwrap_or_default()),
            () = &mut grace => break,
        }
    }
    let summary = summarize(&samples, start + warmup, opts.duration, opts.rate, expected);
    let line = serde_json::to_string(&summary).map_err(|e| LoadError::Output(e.into()))?;
    writeln!(out, "{line}").map_err(LoadError::Output)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_spread_evenly_over_time_and_connections() {
        // 1,000 req/s over 10 connections: one request per millisecond,
        // each connection every 10 ms (not 10 at once every 10 ms).
        let plan: Vec<(u64, usize)> = (0..12).map(|i| schedule(i, 1000, 10)).collect();
        assert_eq!(plan[0], (0, 0));
        assert_eq!(plan[1], (1_000_000, 1));
        assert_eq!(plan[9], (9_000_000, 9));
        assert_eq!(plan[10], (10_000_000, 0));
        assert_eq!(plan[11], (11_000_000, 1));
        // Rates that do not divide a second stay exact over time.
        assert_eq!(schedule(3, 3, 1).0, NANOS);
        assert_eq!(schedule(7, 7_000, 4), (1_000_000, 3));
    }

    fn sample(due: u64, lag: u64, latency: u64, status: u16) -> Sample {
        Sample {
            due,
            sent: due + lag,
            done: due + lag + latency,
            status,
        }
    }

    #[test]
    fn latency_counts_from_when_a_request_was_due() {
        // The second request was held back 5 ms by the first one's stall:
        // from its send it took 1 ms, from its due time 6 ms.
        let samples = [
            sample(0, 0, 6_000_000, 200),
            sample(1_000_000, 5_000_000, 1_000_000, 200),
        ];
        let s = summarize(&samples, 0, Duration::from_secs(1), 2, 2);
        assert_eq!(s.requests, 2);
        assert_eq!(s.errors, 0);
        assert_eq!(s.latency_ms.max, 6.0);
        assert_eq!(s.latency_ms.p50, 6.0);
        assert_eq!(s.latency_from_send_ms.p50, 1.0);
        assert_eq!(s.send_lag_ms.max, 5.0);
        assert_eq!(s.rps, 2.0);
    }

    #[test]
    fn warm_up_is_not_counted_and_missing_answers_are_errors() {
        let samples = [
            sample(0, 0, 100, 200),           // warm-up
            sample(NANOS, 0, 2_000_000, 200), // measured
            sample(NANOS + 1, 0, 1_000, 503), // measured, not 2xx
            sample(NANOS + 2, 0, 1_000, 0),   // measured, failed
            sample(3 * NANOS, 0, 1_000, 200), // after the window
        ];
        // Five were due in the window; one never came back.
        let s = summarize(&samples, NANOS, Duration::from_secs(1), 5, 5);
        assert_eq!(s.requests, 1);
        assert_eq!(s.errors, 4);
        assert_eq!(s.latency_ms.p99_9, 2.0);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let ns: Vec<u64> = (1..=1000).map(|v| v * 1_000_000).collect();
        let p = percentiles(ns);
        assert_eq!(
            (p.p50, p.p90, p.p99, p.p99_9, p.max),
            (500.0, 900.0, 990.0, 999.0, 1000.0)
        );
        assert_eq!(percentiles(Vec::new()).p99, 0.0);
    }

    #[test]
    fn only_plain_http_urls_with_a_host() {
        assert!(Target::parse("http://127.0.0.1:8080/bench", false).is_ok());
        assert_eq!(
            Target::parse("http://echo/", true).map(|t| t.addr).ok(),
            Some("echo:80".to_owned())
        );
        assert!(matches!(
            Target::parse("https://127.0.0.1/", false),
            Err(LoadError::InvalidUrl(_))
        ));
        assert!(matches!(
            Target::parse("/bench", false),
            Err(LoadError::InvalidUrl(_))
        ));
    }
}
