//! Connections to endpoints: plain TCP or mesh mTLS (TLS 1.3, peer
//! verified against the trust bundle and the destination's SPIFFE IDs),
//! and the HTTP connection pools: one multiplexed HTTP/2 connection per
//! (endpoint, identity generation, expected peer IDs) for proxy-to-proxy
//! and h2c upstreams, a keep-alive pool of HTTP/1.1 connections for plain
//! upstreams. Upgrades get a dedicated HTTP/1.1 connection.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;

use super::batched_write::BatchedWrite;
use crate::config::model::UpstreamTls;
use crate::tls::{ALPN_H2, ALPN_HTTP1, IdentityStore, mesh_server_name, spiffe};
use crate::workers::Workers;

/// Byte streams of either kind.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Why an upstream could not be used.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("connect to {addr} failed: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("connect to {addr} timed out after {timeout:?}")]
    ConnectTimeout { addr: SocketAddr, timeout: Duration },
    #[error("mTLS handshake with {addr} failed: {source}")]
    Tls {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("mesh identity unavailable: {0}")]
    Identity(#[from] crate::tls::TlsError),
    #[error("HTTP handshake with {addr} failed: {source}")]
    Handshake {
        addr: SocketAddr,
        source: hyper::Error,
    },
}

impl UpstreamError {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Connect { .. } => "upstream_connect_failure",
            Self::ConnectTimeout { .. } => "upstream_connect_timeout",
            Self::Tls { .. } => "upstream_tls_failure",
            Self::Identity(_) => "no_identity",
            Self::Handshake { .. } => "upstream_protocol_error",
        }
    }
}

/// An upstream connection and what it verified.
pub struct Connected {
    pub io: Box<dyn Io>,
    /// The peer's SPIFFE ID (mesh mTLS only).
    pub peer_id: Option<String>,
}

impl std::fmt::Debug for Connected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connected")
            .field("peer_id", &self.peer_id)
            .finish()
    }
}

/// Connects to `addr`, from `source` when given (a cluster's
/// `upstream_bind_config`: inbound clusters dial the application from
/// 127.0.0.6, which the pod's iptables rules let through instead of
/// capturing the proxy's own connection again).
pub async fn connect_tcp(
    addr: SocketAddr,
    source: Option<IpAddr>,
    timeout: Duration,
) -> Result<TcpStream, UpstreamError> {
    let dial = async {
        match source {
            None => TcpStream::connect(addr).await,
            Some(ip) => {
                let socket = if ip.is_ipv4() {
                    TcpSocket::new_v4()?
                } else {
                    TcpSocket::new_v6()?
                };
                socket.bind(SocketAddr::new(ip, 0))?;
                socket.connect(addr).await
            }
        }
    };
    let stream = tokio::time::timeout(timeout, dial)
        .await
        .map_err(|_| UpstreamError::ConnectTimeout { addr, timeout })?
        .map_err(|source| UpstreamError::Connect { addr, source })?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Connects to `addr` with `tls`, offering `alpn` for mesh mTLS.
pub async fn connect(
    identity: &IdentityStore,
    addr: SocketAddr,
    source: Option<IpAddr>,
    tls: &UpstreamTls,
    alpn: &[u8],
    timeout: Duration,
) -> Result<Connected, UpstreamError> {
    let tcp = connect_tcp(addr, source, timeout).await?;
    match tls {
        UpstreamTls::Plaintext => Ok(Connected {
            io: Box::new(tcp),
            peer_id: None,
        }),
        UpstreamTls::Mesh { sni, sans } => {
            let config = identity.current().client_config(sans.clone(), alpn)?;
            let stream = tokio::time::timeout(
                timeout,
                TlsConnector::from(config).connect(mesh_server_name(sni), tcp),
            )
            .await
            .map_err(|_| UpstreamError::ConnectTimeout { addr, timeout })?
            .map_err(|source| UpstreamError::Tls { addr, source })?;
            let peer_id = spiffe::peer_id(stream.get_ref().1);
            Ok(Connected {
                io: Box::new(stream),
                peer_id,
            })
        }
    }
}

#[derive(Clone, Debug)]
struct H2Key {
    addr: SocketAddr,
    /// Identity generation and expected peer IDs for mesh mTLS.
    mesh: Option<(u64, Arc<[String]>)>,
}

// Looked up on every request: the expected peer IDs are compared by
// pointer first (they are the cluster's, shared by its requests) and
// left out of the hash (one endpoint rarely has two sets of them).
impl PartialEq for H2Key {
    fn eq(&self, other: &Self) -> bool {
        self.addr == other.addr
            && match (&self.mesh, &other.mesh) {
                (None, None) => true,
                (Some((g, a)), Some((h, b))) => g == h && (Arc::ptr_eq(a, b) || a == b),
                _ => false,
            }
    }
}

impl Eq for H2Key {}

impl std::hash::Hash for H2Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.addr.hash(state);
        self.mesh
            .as_ref()
            .map(|(generation, _)| *generation)
            .hash(state);
    }
}

#[derive(Clone, Debug)]
struct H2Conn {
    sender: http2::SendRequest<Incoming>,
    peer_id: Option<Arc<str>>,
}

/// A sender for one request and the peer it reaches.
#[derive(Debug)]
pub enum Sender {
    H2(http2::SendRequest<Incoming>),
    H1(http1::SendRequest<Incoming>),
}

/// One worker's connections: used only from that worker's thread, so
/// its locks are never contended.
#[derive(Debug, Default)]
struct Shard {
    h2: Mutex<HashMap<H2Key, H2Conn>>,
    h1: Mutex<HashMap<SocketAddr, Vec<http1::SendRequest<Incoming>>>>,
}

/// Upstream HTTP connection pools, one shard per worker
/// ([`crate::workers`]): a connection's I/O task runs on the worker that
/// opened it, and only that worker's requests use it.
#[derive(Debug)]
pub struct Pools {
    identity: Arc<IdentityStore>,
    shards: Box<[Shard]>,
    max_idle_per_endpoint: usize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Pools {
    /// Pools with `shards` shards (one per worker).
    pub fn new(identity: Arc<IdentityStore>, shards: usize) -> Self {
        Self {
            identity,
            shards: (0..shards.max(1)).map(|_| Shard::default()).collect(),
            max_idle_per_endpoint: 64,
        }
    }

    pub fn identity(&self) -> &Arc<IdentityStore> {
        &self.identity
    }

    /// The calling worker's shard.
    fn shard(&self) -> &Shard {
        &self.shards[Workers::current() % self.shards.len()]
    }

    /// A sender to `addr`: HTTP/2 (multiplexed, shared) when `http2` or
    /// mesh mTLS, else a pooled HTTP/1.1 connection.
    pub async fn sender(
        self: &Arc<Self>,
        addr: SocketAddr,
        source: Option<IpAddr>,
        tls: &UpstreamTls,
        http2: bool,
        timeout: Duration,
    ) -> Result<(Sender, Option<Arc<str>>), UpstreamError> {
        let mesh = match tls {
            UpstreamTls::Mesh { sans, .. } => Some((self.identity.generation(), sans.clone())),
            UpstreamTls::Plaintext if http2 => None,
            UpstreamTls::Plaintext => return self.pooled_http1(addr, source, tls, timeout).await,
        };
        let key = H2Key { addr, mesh };
        if let Some(c) = lock(&self.shard().h2).get(&key)
            && !c.sender.is_closed()
        {
            return Ok((Sender::H2(c.sender.clone()), c.peer_id.clone()));
        }
        // Boxed: the connect and handshake futures are large and rarely
        // needed; inline they would grow every request's future (moved
        // several times per request) by kilobytes.
        Box::pin(self.open_h2(key, addr, source, tls, timeout)).await
    }

    /// A new multiplexed HTTP/2 connection, shared from now on by the
    /// calling worker's requests to `key`.
    async fn open_h2(
        &self,
        key: H2Key,
        addr: SocketAddr,
        source: Option<IpAddr>,
        tls: &UpstreamTls,
        timeout: Duration,
    ) -> Result<(Sender, Option<Arc<str>>), UpstreamError> {
        let connected = connect(&self.identity, addr, source, tls, ALPN_H2, timeout).await?;
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .initial_stream_window_size(1 << 20)
            .initial_connection_window_size(4 << 20)
            .adaptive_window(true)
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(false)
            .timer(hyper_util::rt::TokioTimer::new());
        let (sender, conn) = builder
            .handshake(TokioIo::new(BatchedWrite::new(connected.io)))
            .await
            .map_err(|source| UpstreamError::Handshake { addr, source })?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%addr, error = %e, "upstream HTTP/2 connection ended");
            }
        });
        let peer_id: Option<Arc<str>> = connected.peer_id.map(Arc::from);
        let c = H2Conn {
            sender: sender.clone(),
            peer_id: peer_id.clone(),
        };
        let generation = self.identity.generation();
        let mut h2 = lock(&self.shard().h2);
        // Connections made with a replaced identity take no new
        // requests; their in-flight streams finish.
        h2.retain(|k, c| {
            !c.sender.is_closed() && k.mesh.as_ref().is_none_or(|(g, _)| *g == generation)
        });
        h2.insert(key, c);
        Ok((Sender::H2(sender), peer_id))
    }

    /// An idle pooled HTTP/1.1 connection to `addr`, or a new one.
    async fn pooled_http1(
        &self,
        addr: SocketAddr,
        source: Option<IpAddr>,
        tls: &UpstreamTls,
        timeout: Duration,
    ) -> Result<(Sender, Option<Arc<str>>), UpstreamError> {
        loop {
            let idle = lock(&self.shard().h1).get_mut(&addr).and_then(Vec::pop);
            match idle {
                Some(s) if s.is_ready() => return Ok((Sender::H1(s), None)),
                Some(_) => continue,
                None => break,
            }
        }
        let (s, _) = Box::pin(self.http1(addr, source, tls, timeout)).await?;
        Ok((Sender::H1(s), None))
    }

    /// A fresh HTTP/1.1 connection (upgrades are never pooled).
    pub async fn http1(
        &self,
        addr: SocketAddr,
        source: Option<IpAddr>,
        tls: &UpstreamTls,
        timeout: Duration,
    ) -> Result<(http1::SendRequest<Incoming>, Option<String>), UpstreamError> {
        let connected = connect(&self.identity, addr, source, tls, ALPN_HTTP1, timeout).await?;
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(connected.io))
            .await
            .map_err(|source| UpstreamError::Handshake { addr, source })?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(%addr, error = %e, "upstream HTTP/1.1 connection ended");
            }
        });
        Ok((sender, connected.peer_id))
    }

    /// Returns an HTTP/1.1 connection to the pool once its response is
    /// fully read.
    pub fn release(self: &Arc<Self>, addr: SocketAddr, mut sender: http1::SendRequest<Incoming>) {
        let pools = self.clone();
        tokio::spawn(async move {
            if sender.ready().await.is_ok() {
                let mut h1 = lock(&pools.shard().h1);
                let idle = h1.entry(addr).or_default();
                if idle.len() < pools.max_idle_per_endpoint {
                    idle.push(sender);
                }
            }
        });
    }

    /// Drops every idle connection (drain, identity change).
    pub fn close_idle(&self) {
        for shard in &self.shards {
            lock(&shard.h1).clear();
            lock(&shard.h2).clear();
        }
    }

    /// (HTTP/2 connections, idle HTTP/1.1 connections).
    pub fn sizes(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(h2, h1), shard| {
            (
                h2 + lock(&shard.h2).len(),
                h1 + lock(&shard.h1).values().map(Vec::len).sum::<usize>(),
            )
        })
    }
}
