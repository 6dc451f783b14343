//! Command-line interface (parsed in main.rs, run here).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tracing::{error, info};

use crate::client::{self, GrpcClientOptions, HttpClientOptions, TcpClientOptions};
use crate::load::{self, LoadOptions};
use crate::relay;
use crate::report::{Identity, parse_duration};
use crate::server::{EchoServer, Ports};
use crate::webhook::{self, DenyRule};

#[derive(Debug, Parser)]
#[command(name = "weft-echo", version, about = "Weft's end-to-end test workload")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// HTTP/1.1 + h2c, gRPC and TCP echo servers (the default).
    Serve(ServeArgs),
    /// HTTP client: GET the URL COUNT times, print each body as a line.
    Client(HttpClientArgs),
    /// gRPC client for weft.echo.v1.Echo/Echo.
    GrpcClient(GrpcClientArgs),
    /// TCP echo client (or a connect-only reachability check).
    TcpClient(TcpClientArgs),
    /// HTTPS validating admission webhook that denies objects with a label.
    Webhook(WebhookArgs),
    /// Fixed-rate HTTP load (wrk2-style): prints latency percentiles
    /// measured from each request's due time as one JSON line.
    Load(LoadArgs),
    /// Plain TCP relay on one thread (the floor of `make bench-proxy`).
    Relay(RelayArgs),
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| e.to_string())
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (:: falls back to 0.0.0.0 without IPv6).
    #[arg(long, env = "LISTEN_IP", default_value = "::")]
    pub ip: IpAddr,
    #[arg(long, env = "HTTP_PORT", default_value_t = 8080)]
    pub http_port: u16,
    #[arg(long, env = "GRPC_PORT", default_value_t = 9090)]
    pub grpc_port: u16,
    #[arg(long, env = "TCP_PORT", default_value_t = 9000)]
    pub tcp_port: u16,
}

impl Default for ServeArgs {
    fn default() -> Self {
        let p = Ports::default();
        Self {
            ip: p.ip,
            http_port: p.http,
            grpc_port: p.grpc,
            tcp_port: p.tcp,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct HttpClientArgs {
    /// e.g. http://echo.ns.svc.cluster.local:8080/
    #[arg(long)]
    pub url: String,
    /// HTTP/2 with prior knowledge (h2c).
    #[arg(long)]
    pub http2: bool,
    #[arg(long, default_value_t = 1)]
    pub count: u32,
    /// Extra request header NAME:VALUE (repeatable).
    #[arg(long = "header")]
    pub headers: Vec<String>,
    #[arg(long, default_value_t = 200)]
    pub expect_status: u16,
    /// Per-request timeout (e.g. 5s).
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub timeout: Duration,
    /// Retry failed connections for this long (e.g. 30s) before giving up.
    #[arg(long, default_value = "0s", value_parser = duration)]
    pub retry_for: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct GrpcClientArgs {
    /// e.g. http://echo.ns.svc.cluster.local:9090
    #[arg(long)]
    pub addr: String,
    #[arg(long, default_value = "hello")]
    pub message: String,
    #[arg(long, default_value_t = 1)]
    pub count: u32,
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub timeout: Duration,
    #[arg(long, default_value = "0s", value_parser = duration)]
    pub retry_for: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct TcpClientArgs {
    /// HOST:PORT
    #[arg(long)]
    pub addr: String,
    #[arg(long, default_value = "hello")]
    pub message: String,
    #[arg(long, default_value_t = 1)]
    pub count: u32,
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub timeout: Duration,
    #[arg(long, default_value = "0s", value_parser = duration)]
    pub retry_for: Duration,
    /// Only check that the connection is accepted.
    #[arg(long)]
    pub connect_only: bool,
}

#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// e.g. http://127.0.0.1:8080/bench
    #[arg(long)]
    pub url: String,
    /// HTTP/2 with prior knowledge (h2c).
    #[arg(long)]
    pub http2: bool,
    /// Requests per second over all connections.
    #[arg(long)]
    pub rate: u32,
    #[arg(long, default_value_t = 10)]
    pub connections: u32,
    /// Streams in flight at most per HTTP/2 connection.
    #[arg(long, default_value_t = 8)]
    pub streams: u32,
    /// Measured time (e.g. 10s).
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub duration: Duration,
    /// Load sent before the measured time, not counted.
    #[arg(long, default_value = "1s", value_parser = duration)]
    pub warmup: Duration,
    /// Answers later than this after the last request was due are errors.
    #[arg(long, default_value = "5s", value_parser = duration)]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct RelayArgs {
    /// LISTEN=UPSTREAM socket addresses, e.g. 127.0.0.7:28080=127.0.0.1:28080
    /// (repeatable).
    #[arg(long = "route", required = true, value_parser = relay_route)]
    pub routes: Vec<(SocketAddr, SocketAddr)>,
}

fn relay_route(text: &str) -> Result<(SocketAddr, SocketAddr), String> {
    let (listen, upstream) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected LISTEN=UPSTREAM"))?;
    let addr = |part: &str| {
        part.parse::<SocketAddr>()
            .map_err(|e| format!("{part:?} in {text:?} is not an IP:PORT socket address: {e}"))
    };
    Ok((addr(listen)?, addr(upstream)?))
}

#[derive(Debug, Clone, Args)]
pub struct WebhookArgs {
    #[arg(long, env = "LISTEN_IP", default_value = "::")]
    pub ip: IpAddr,
    #[arg(long, env = "WEBHOOK_PORT", default_value_t = 8443)]
    pub port: u16,
    /// PEM certificate chain (e.g. tls.crt of a kubernetes.io/tls Secret).
    #[arg(long, default_value = "/etc/webhook/tls/tls.crt")]
    pub cert: PathBuf,
    /// PEM private key.
    #[arg(long, default_value = "/etc/webhook/tls/tls.key")]
    pub key: PathBuf,
    /// Deny objects with this label: KEY or KEY=VALUE.
    #[arg(long)]
    pub deny_label: String,
    /// Message returned with a denial.
    #[arg(long)]
    pub message: Option<String>,
}

/// Runs the parsed command; logs the error and returns failure on error.
pub async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(a) => serve(a).await,
        Command::Client(a) => {
            let opts = HttpClientOptions {
                url: a.url,
                http2: a.http2,
                count: a.count,
                headers: a.headers,
                expect_status: a.expect_status,
                timeout: a.timeout,
                retry_for: a.retry_for,
            };
            client::http_client(&opts, &mut std::io::stdout())
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
        Command::GrpcClient(a) => {
            let opts = GrpcClientOptions {
                addr: a.addr,
                message: a.message,
                count: a.count,
                timeout: a.timeout,
                retry_for: a.retry_for,
            };
            client::grpc_client(&opts, &mut std::io::stdout())
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
        Command::TcpClient(a) => {
            let opts = TcpClientOptions {
                addr: a.addr,
                message: a.message,
                count: a.count,
                timeout: a.timeout,
                retry_for: a.retry_for,
                connect_only: a.connect_only,
            };
            client::tcp_client(&opts, &mut std::io::stdout())
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
        Command::Webhook(a) => run_webhook(a).await,
        Command::Load(a) => {
            let opts = LoadOptions {
                url: a.url,
                http2: a.http2,
                rate: a.rate,
                connections: a.connections,
                streams: a.streams,
                duration: a.duration,
                warmup: a.warmup,
                timeout: a.timeout,
            };
            load::load(&opts, &mut std::io::stdout())
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
        Command::Relay(a) => run_relay(a).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            error!(error = %message, "weft-echo failed");
            eprintln!("weft-echo: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(a: ServeArgs) -> Result<(), String> {
    let identity = Identity::from_env();
    info!(?identity, "starting weft-echo");
    let server = EchoServer::bind(Ports {
        ip: a.ip,
        http: a.http_port,
        grpc: a.grpc_port,
        tcp: a.tcp_port,
    })
    .await
    .map_err(|e| e.to_string())?;
    tokio::select! {
        result = server.run(identity) => result.map_err(|e| e.to_string()),
        () = shutdown_signal() => {
            info!("signal received, exiting");
            Ok(())
        }
    }
}

async fn run_relay(a: RelayArgs) -> Result<(), String> {
    let mut relays = tokio::task::JoinSet::new();
    for (listen, upstream) in a.routes {
        let listener = relay::bind(listen).await.map_err(|e| e.to_string())?;
        relays.spawn(relay::serve(listener, upstream));
    }
    tokio::select! {
        Some(ended) = relays.join_next() => match ended {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(e) => Err(format!("a relay task failed: {e}")),
        },
        () = shutdown_signal() => Ok(()),
    }
}

async fn run_webhook(a: WebhookArgs) -> Result<(), String> {
    let rule = DenyRule::parse(&a.deny_label, a.message).map_err(|e| e.to_string())?;
    let tls = webhook::load_tls(&a.cert, &a.key).map_err(|e| e.to_string())?;
    let addr = std::net::SocketAddr::new(a.ip, a.port);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(_) if a.ip.is_unspecified() => tokio::net::TcpListener::bind(("0.0.0.0", a.port))
            .await
            .map_err(|e| format!("binding webhook port {}: {e}", a.port))?,
        Err(e) => return Err(format!("binding webhook port {addr}: {e}")),
    };
    tokio::select! {
        result = webhook::serve(listener, tls, rule) => result.map_err(|e| e.to_string()),
        () = shutdown_signal() => Ok(()),
    }
}

/// SIGTERM (pod deletion) or Ctrl-C.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relay_route_is_two_socket_addresses() {
        let (listen, upstream) =
            relay_route("127.0.0.7:28080=127.0.0.1:28081").expect("test setup");
        assert_eq!(listen, "127.0.0.7:28080".parse().expect("test setup"));
        assert_eq!(upstream, "127.0.0.1:28081".parse().expect("test setup"));
    }

    #[test]
    fn a_bad_relay_route_says_what_is_wrong() {
        assert!(
            relay_route("127.0.0.7:28080")
                .expect_err("must fail")
                .contains("LISTEN=UPSTREAM")
        );
        let err = relay_route("127.0.0.7:28080=echo:80").expect_err("must fail");
        assert!(err.contains("\"echo:80\""), "{err}");
    }
}
