//! Runs the three echo servers (HTTP, gRPC, TCP) together.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::report::Identity;

/// Errors of the combined server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("binding {what} port {addr}: {source} (is another process using it?)")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Http(#[from] crate::http::HttpError),
    #[error(transparent)]
    Grpc(#[from] crate::grpc::GrpcError),
    #[error(transparent)]
    Tcp(#[from] crate::tcp::TcpError),
    #[error("a server task stopped unexpectedly: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Where to listen; port 0 picks a free port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub ip: IpAddr,
    pub http: u16,
    pub grpc: u16,
    pub tcp: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Self {
            ip: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            http: 8080,
            grpc: 9090,
            tcp: 9000,
        }
    }
}

/// The three listeners, bound, with their actual addresses.
#[derive(Debug)]
pub struct EchoServer {
    http: TcpListener,
    grpc: TcpListener,
    tcp: TcpListener,
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    pub tcp_addr: SocketAddr,
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ServerError> {
    let listener = match TcpListener::bind(addr).await {
        // No IPv6 in this network namespace: fall back to IPv4 any.
        Err(e) if addr.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED) => {
            let v4 = SocketAddr::from(([0, 0, 0, 0], addr.port()));
            TcpListener::bind(v4).await.map_err(|_| ServerError::Bind {
                what,
                addr,
                source: e,
            })?
        }
        other => other.map_err(|source| ServerError::Bind { what, addr, source })?,
    };
    Ok(listener)
}

impl EchoServer {
    /// Binds all three ports.
    pub async fn bind(ports: Ports) -> Result<Self, ServerError> {
        let http = bind("HTTP", SocketAddr::new(ports.ip, ports.http)).await?;
        let grpc = bind("gRPC", SocketAddr::new(ports.ip, ports.grpc)).await?;
        let tcp = bind("TCP", SocketAddr::new(ports.ip, ports.tcp)).await?;
        let addr = |l: &TcpListener, what| {
            l.local_addr().map_err(|source| ServerError::Bind {
                what,
                addr: SocketAddr::new(ports.ip, 0),
                source,
            })
        };
        Ok(Self {
            http_addr: addr(&http, "HTTP")?,
            grpc_addr: addr(&grpc, "gRPC")?,
            tcp_addr: addr(&tcp, "TCP")?,
            http,
            grpc,
            tcp,
        })
    }

    /// Serves until one server fails (they do not stop on their own).
    pub async fn run(self, identity: Identity) -> Result<(), ServerError> {
        let identity = Arc::new(identity);
        let mut set: JoinSet<Result<(), ServerError>> = JoinSet::new();
        let id = identity.clone();
        set.spawn(async move { Ok(crate::http::serve(self.http, id).await?) });
        let id = identity.clone();
        set.spawn(async move { Ok(crate::grpc::serve(self.grpc, id).await?) });
        set.spawn(async move { Ok(crate::tcp::serve(self.tcp).await?) });
        match set.join_next().await {
            Some(result) => result?,
            None => Ok(()),
        }
    }
}
