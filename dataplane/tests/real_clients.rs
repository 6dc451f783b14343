//! Real HTTP clients against the proxy pair: `curl` (HTTP/1.1 and
//! `--http2-prior-knowledge`; a small GET, a 16 MiB download and an 8 MiB
//! upload echoed back) and `h2load` (HTTP/2 and `--h1`, many streams over
//! several connections) run once against the echo server directly and once
//! through client sidecar → mTLS → server sidecar (static configuration,
//! as in `mesh.rs`), and must behave the same: same statuses, same bodies
//! (checked byte for byte against what was sent or generated), same
//! negotiated HTTP version, and every h2load request succeeded with none
//! failed or errored.
//!
//! `curl` and `h2load` (Debian `curl`, `nghttp2-client`) are installed by
//! `make cluster-deps` (e2e/cluster/install-deps.sh), which `make
//! test-unit` runs first. Without `h2load` the h2load part is skipped with a
//! note on stderr; without `curl` the test fails.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{Mesh, MeshOptions};
use tokio::process::Command;

const DOWNLOAD: usize = 16 * 1024 * 1024;
const UPLOAD: usize = 8 * 1024 * 1024 + 13;

/// A scratch directory removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "weft-{name}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What curl saw of one exchange.
#[derive(Debug, PartialEq, Eq)]
struct CurlResult {
    status: u16,
    /// `%{http_version}`: `1.1` or `2`.
    version: String,
    body: Vec<u8>,
}

fn check(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `curl <args> <url>`, writing the body to a file.
async fn curl(scratch: &Scratch, url: &str, args: &[&str]) -> CurlResult {
    let body_file = scratch.path("body");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60", "-o"])
        .arg(&body_file)
        .args(["-w", "%{http_code} %{http_version}"])
        .args(args)
        .arg(url)
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("running curl ({e}): install it with `make cluster-deps` (Debian package curl)")
        });
    check(&format!("curl {args:?} {url}"), &out);
    let written = String::from_utf8_lossy(&out.stdout).into_owned();
    let (status, version) = written
        .split_once(' ')
        .unwrap_or_else(|| panic!("curl -w output: {written:?}"));
    let body = std::fs::read(&body_file).unwrap_or_default();
    let _ = std::fs::remove_file(&body_file);
    CurlResult {
        status: status.parse().unwrap(),
        version: version.to_owned(),
        body,
    }
}

/// The curl exchanges of one run against `base` (`http://ip:port`).
async fn curl_runs(scratch: &Scratch, base: &str, upload: &Path) -> Vec<(String, CurlResult)> {
    let upload_arg = format!("@{}", upload.display());
    let mut results = Vec::new();
    for (mode, flag) in [("h1", "--http1.1"), ("h2", "--http2-prior-knowledge")] {
        let get = curl(scratch, &format!("{base}/hello?x=1"), &[flag]).await;
        let download = curl(scratch, &format!("{base}/bytes/{DOWNLOAD}"), &[flag]).await;
        let upload = curl(
            scratch,
            &format!("{base}/stream"),
            &[
                flag,
                "-H",
                "content-type: application/octet-stream",
                "--data-binary",
                &upload_arg,
            ],
        )
        .await;
        results.push((format!("{mode} GET"), get));
        results.push((format!("{mode} download"), download));
        results.push((format!("{mode} upload"), upload));
    }
    results
}

/// The parts of the echo's JSON report that do not depend on the path
/// taken (the proxy adds headers and may speak another version upstream).
fn report_essentials(body: &[u8]) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("echo report ({e}): {}", String::from_utf8_lossy(body)));
    (
        v["method"].as_str().unwrap_or_default().to_owned(),
        v["path"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_through_the_proxy_pair_behaves_as_against_the_echo_server() {
    let mesh = Mesh::start(MeshOptions::default()).await;
    let scratch = Scratch::new("curl");
    let upload = scratch.path("upload");
    let sent = common::echo::pattern(UPLOAD)
        .into_iter()
        .rev()
        .collect::<Vec<u8>>();
    std::fs::write(&upload, &sent).unwrap();

    let direct = curl_runs(&scratch, &format!("http://{}", mesh.http_app), &upload).await;
    let proxied = curl_runs(&scratch, &format!("http://{}", mesh.outbound), &upload).await;

    for ((what, d), (_, p)) in direct.iter().zip(&proxied) {
        assert_eq!(d.status, 200, "{what} direct");
        assert_eq!(p.status, d.status, "{what}: proxied status");
        assert_eq!(p.version, d.version, "{what}: negotiated HTTP version");
        if what.ends_with("GET") {
            assert_eq!(
                report_essentials(&p.body),
                report_essentials(&d.body),
                "{what}"
            );
            assert_eq!(report_essentials(&d.body).1, "/hello");
        } else {
            let want = if what.ends_with("download") {
                common::echo::pattern(DOWNLOAD)
            } else {
                sent.clone()
            };
            assert_eq!(d.body.len(), want.len(), "{what} direct: body length");
            assert!(d.body == want, "{what} direct: body differs");
            assert_eq!(p.body.len(), want.len(), "{what} proxied: body length");
            assert!(p.body == want, "{what} proxied: body differs");
        }
    }
    assert_eq!(direct[0].1.version, "1.1");
    assert_eq!(direct[3].1.version, "2");
}

/// h2load's summary counts.
#[derive(Debug, PartialEq, Eq)]
struct H2loadCounts {
    total: u64,
    succeeded: u64,
    failed: u64,
    errored: u64,
    timeout: u64,
    status_2xx: u64,
}

/// Parses `requests: N total, N started, N done, N succeeded, N failed,
/// N errored, N timeout` and `status codes: N 2xx, …`.
fn parse_h2load(out: &str) -> Option<H2loadCounts> {
    let field = |line: &str, name: &str| -> Option<u64> {
        line.split(',')
            .map(str::trim)
            .find_map(|part| part.strip_suffix(name)?.trim().parse().ok())
    };
    let requests = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("requests:"))?;
    let statuses = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("status codes:"))?;
    Some(H2loadCounts {
        total: field(requests, "total")?,
        succeeded: field(requests, "succeeded")?,
        failed: field(requests, "failed")?,
        errored: field(requests, "errored")?,
        timeout: field(requests, "timeout")?,
        status_2xx: field(statuses, "2xx")?,
    })
}

#[test]
fn h2load_summary_is_parsed() {
    let out = "finished in 1.2s, 1000.00 req/s, 1MB/s\n\
               requests: 2000 total, 2000 started, 1990 done, 1985 succeeded, 15 failed, 10 errored, 5 timeout\n\
               status codes: 1985 2xx, 0 3xx, 0 4xx, 0 5xx\n";
    assert_eq!(
        parse_h2load(out),
        Some(H2loadCounts {
            total: 2000,
            succeeded: 1985,
            failed: 15,
            errored: 10,
            timeout: 5,
            status_2xx: 1985,
        })
    );
    assert_eq!(parse_h2load("no summary"), None);
}

async fn h2load(url: &str, args: &[&str]) -> H2loadCounts {
    let out = Command::new("h2load")
        .args(args)
        .arg(url)
        .output()
        .await
        .unwrap();
    check(&format!("h2load {args:?} {url}"), &out);
    let text = String::from_utf8_lossy(&out.stdout);
    parse_h2load(&text).unwrap_or_else(|| panic!("h2load printed no summary:\n{text}"))
}

fn h2load_installed() -> bool {
    match std::process::Command::new("h2load")
        .arg("--version")
        .output()
    {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => panic!("running h2load --version: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2load_through_the_proxy_pair_behaves_as_against_the_echo_server() {
    if !h2load_installed() {
        eprintln!(
            "SKIPPED h2load_through_the_proxy_pair: h2load is not installed \
             (Debian package nghttp2-client; `make cluster-deps` installs it)"
        );
        return;
    }
    let mesh = Mesh::start(MeshOptions::default()).await;
    let scratch = Scratch::new("h2load");
    let data = scratch.path("post");
    std::fs::write(&data, common::echo::pattern(256 * 1024)).unwrap();
    let data_arg = data.display().to_string();

    const N: u64 = 2000;
    let runs: [(&str, Vec<&str>); 3] = [
        ("h2 GET", vec!["-n", "2000", "-c", "4", "-m", "16"]),
        ("h1 GET", vec!["--h1", "-n", "2000", "-c", "4"]),
        (
            "h2 POST 256 KiB",
            vec!["-n", "200", "-c", "2", "-m", "8", "-d", &data_arg],
        ),
    ];
    let targets: [(&str, SocketAddr); 2] = [("direct", mesh.http_app), ("proxied", mesh.outbound)];
    for (what, args) in &runs {
        let path = if what.contains("POST") {
            "/stream"
        } else {
            "/hello"
        };
        let mut seen = Vec::new();
        for (target, addr) in targets {
            let counts = h2load(&format!("http://{addr}{path}"), args).await;
            let n = if what.contains("POST") { 200 } else { N };
            assert_eq!(
                (counts.total, counts.succeeded, counts.status_2xx),
                (n, n, n),
                "{what} {target}: {counts:?}"
            );
            assert_eq!(
                (counts.failed, counts.errored, counts.timeout),
                (0, 0, 0),
                "{what} {target}: {counts:?}"
            );
            seen.push(counts);
        }
        assert_eq!(seen[0], seen[1], "{what}: direct and proxied");
    }
}
