//! In-process figures for one proxy pair: client → outbound proxy → mTLS
//! (HTTP/2 multiplexed) → inbound proxy → echo server, against the echo
//! server called directly, in the same run. Closed-loop load (each
//! connection sends its next request when the previous answer arrived),
//! so it shows added latency and throughput, not coordinated-omission
//! corrected tails; the fixed-rate comparison with nginx belongs to
//! `make bench-proxy`. Prints, never fails on timing.
//!
//! `cargo bench -p weft-proxy --bench proxy_pair`; sizes from
//! BENCH_SECONDS (default 5) and BENCH_CONNECTIONS (default 16).

#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Figures {
    requests: usize,
    elapsed: Duration,
    micros: Vec<u64>,
}

impl Figures {
    fn pct(&self, p: f64) -> f64 {
        let i = ((self.micros.len() as f64 - 1.0) * p).round() as usize;
        self.micros.get(i).copied().unwrap_or(0) as f64 / 1000.0
    }
}

async fn http1(addr: SocketAddr, authority: String, conns: u64, secs: u64) -> Figures {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let authority = authority.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = common::h1(addr).await;
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let req = Request::get("/bench")
                    .header("host", &authority)
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                let resp = s.send_request(req).await.unwrap();
                assert!(resp.status().is_success());
                resp.into_body().collect().await.unwrap();
                lat.push(t.elapsed().as_micros() as u64);
            }
            lat
        }));
    }
    let mut micros = Vec::new();
    for t in tasks {
        micros.extend(t.await.unwrap());
    }
    micros.sort_unstable();
    Figures {
        requests: micros.len(),
        elapsed: start.elapsed(),
        micros,
    }
}

async fn http2(addr: SocketAddr, authority: String, streams: u64, secs: u64) -> Figures {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let sender = common::h2::<Empty<Bytes>>(addr).await;
    let mut tasks = Vec::new();
    for _ in 0..streams {
        let mut s = sender.clone();
        let uri = format!("http://{authority}/bench");
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let resp = s
                    .send_request(Request::get(&uri).body(Empty::new()).unwrap())
                    .await
                    .unwrap();
                assert!(resp.status().is_success());
                resp.into_body().collect().await.unwrap();
                lat.push(t.elapsed().as_micros() as u64);
            }
            lat
        }));
    }
    let mut micros = Vec::new();
    for t in tasks {
        micros.extend(t.await.unwrap());
    }
    micros.sort_unstable();
    Figures {
        requests: micros.len(),
        elapsed: start.elapsed(),
        micros,
    }
}

fn row(name: &str, f: &Figures, base: Option<&Figures>) {
    let rps = f.requests as f64 / f.elapsed.as_secs_f64();
    let added = |p: f64| {
        base.map_or(String::from("-"), |b| {
            format!("{:+.3}", f.pct(p) - b.pct(p))
        })
    };
    println!(
        "{name:<28} {rps:>10.0} {:>8.3} {:>8.3} {:>8.3} {:>8.3}   p50 {:>7} p99 {:>7}",
        f.pct(0.5),
        f.pct(0.9),
        f.pct(0.99),
        f.pct(0.999),
        added(0.5),
        added(0.99),
    );
}

fn main() {
    let secs = env("BENCH_SECONDS", 5);
    let conns = env("BENCH_CONNECTIONS", 16);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Quiet logs (the harness would otherwise log at debug).
        let _ = tracing_subscriber::fmt()
            .with_env_filter("warn")
            .try_init();
        let mesh = common::Mesh::start(common::MeshOptions::default()).await;
        let direct = mesh.http_app;
        let authority = mesh.authority();
        println!(
            "closed loop, {conns} HTTP/1.1 connections or HTTP/2 streams, {secs}s each; latency in ms"
        );
        println!(
            "{:<28} {:>10} {:>8} {:>8} {:>8} {:>8}   added over direct",
            "target", "req/s", "p50", "p90", "p99", "p99.9"
        );
        let d1 = http1(direct, authority.clone(), conns, secs).await;
        row("HTTP/1.1 direct", &d1, None);
        let p1 = http1(mesh.outbound, authority.clone(), conns, secs).await;
        row("HTTP/1.1 via proxy pair", &p1, Some(&d1));
        let d2 = http2(direct, authority.clone(), conns, secs).await;
        row("HTTP/2 direct", &d2, None);
        let p2 = http2(mesh.outbound, authority.clone(), conns, secs).await;
        row("HTTP/2 via proxy pair", &p2, Some(&d2));
        println!(
            "(client, both proxies and the echo server share this process and runtime: \
             figures compare, they do not measure one proxy's cost per core)"
        );
    });
}
