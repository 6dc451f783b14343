//! weft-echo: the workload Weft's end-to-end tests deploy.
//!
//! * `serve` (the default): HTTP/1.1 + h2c echo on 8080, gRPC
//!   `weft.echo.v1.Echo/Echo` on 9090, TCP echo on 9000.
//! * `client`, `grpc-client`, `tcp-client`: one JSON line per answer on
//!   stdout, non-zero exit on the first failure.
//! * `load`: an open-loop fixed-rate HTTP load generator (wrk2-style,
//!   latency from each request's due time), for `make bench-proxy`.
//! * `relay`: a plain one-thread TCP relay, the floor of `make bench-proxy`.
//! * `webhook`: an HTTPS validating admission webhook denying objects that
//!   carry a label.
//!
//! Identity comes from the downward API: see [`report::Identity`].

pub mod cli;
pub mod client;
pub mod grpc;
pub mod http;
pub mod load;
pub mod relay;
pub mod report;
pub mod server;
pub mod tcp;
pub mod webhook;

pub use client::{
    ClientError, GrpcClientOptions, HttpAnswer, HttpClientOptions, TcpClientOptions, TcpReport,
};
pub use grpc::GrpcReport;
pub use report::{EchoReport, Identity};
pub use server::{EchoServer, Ports};

/// Sets up `tracing` on stderr: JSON when stderr is not a terminal (in a
/// pod), human-readable otherwise. `RUST_LOG` overrides `default_filter`.
pub fn init_logging(default_filter: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if std::io::stderr().is_terminal() {
        builder.try_init()
    } else {
        builder.json().with_current_span(false).try_init()
    };
    // Already initialised (e.g. in tests): keep the existing subscriber.
    drop(result);
}
