//! Accepting connections: find the original destination, sniff the
//! transport when a chain depends on it, pick the filter chain, terminate
//! TLS (mesh mTLS or gateway certificates chosen by SNI), then hand the
//! stream to HTTP or TCP proxying. Stops accepting when draining; HTTP
//! connections then finish in-flight requests and close.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::LazyConfigAcceptor;

use super::batched_write::BatchedWrite;
use super::sniff::{self, Detected, Prefixed};
use super::upstream::Io;
use super::{Direction, Downstream, Proxy, original_dst, tcp};
use crate::config::Snapshot;
use crate::config::model::{
    ConnectionFacts, DownstreamTls, FilterChain, Listener, NetworkFilter, RouteSource, Transport,
};
use crate::tls::{ALPN_H2, ALPN_HTTP1, spiffe};

/// Which listener of the snapshot an accept loop serves.
#[derive(Clone, Debug)]
pub enum Role {
    /// The sidecar's outbound capture listener (`virtualOutbound`).
    Outbound,
    /// The sidecar's inbound capture listener (`virtualInbound`).
    Inbound,
    /// A gateway listener, by name.
    Gateway(String),
}

impl Role {
    fn direction(&self) -> Direction {
        match self {
            Self::Outbound => Direction::Outbound,
            Self::Inbound => Direction::Inbound,
            Self::Gateway(_) => Direction::Gateway,
        }
    }

    fn listener(&self, snapshot: &Snapshot) -> Option<Arc<Listener>> {
        let by_name = |name: &str| snapshot.listeners.get(name).cloned();
        match self {
            Self::Outbound => by_name("virtualOutbound").or_else(|| {
                snapshot
                    .listener_on_port(crate::run::OUTBOUND_PORT)
                    .cloned()
            }),
            Self::Inbound => by_name("virtualInbound")
                .or_else(|| snapshot.listener_on_port(crate::run::INBOUND_PORT).cloned()),
            Self::Gateway(name) => by_name(name),
        }
    }
}

/// Accepts until draining starts (or `stop` turns true).
pub async fn accept_loop(
    proxy: Arc<Proxy>,
    listener: TcpListener,
    role: Role,
    stop: Option<tokio::sync::watch::Receiver<bool>>,
) {
    let stopped = async move {
        match stop {
            Some(mut stop) => {
                let _ = stop.wait_for(|s| *s).await.is_ok();
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = proxy.drain.signaled() => break,
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let proxy = proxy.clone();
                    let role = role.clone();
                    tokio::spawn(async move {
                        let _guard = proxy.drain.connection();
                        serve_connection(proxy, role, stream, peer).await;
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// Envoy's chain selection, plus one rule that makes PeerAuthentication
/// hold: a port whose chains all require a transport (STRICT: `tls`
/// only) refuses other transports instead of falling to the default
/// (passthrough) chain.
fn select<'a>(listener: &'a Listener, facts: &ConnectionFacts<'_>) -> Option<&'a FilterChain> {
    let chosen = listener.select_chain(facts)?;
    let is_default = listener
        .default_chain
        .as_ref()
        .is_some_and(|d| std::ptr::eq(d, chosen));
    let port_governed = listener.chains.iter().any(|c| {
        c.matcher.destination_port == Some(facts.destination.port())
            && c.matcher.transport.is_some()
    });
    if is_default && port_governed {
        None
    } else {
        Some(chosen)
    }
}

async fn serve_connection(proxy: Arc<Proxy>, role: Role, mut stream: TcpStream, peer: SocketAddr) {
    let snapshot = proxy.config.current();
    let Some(listener) = role.listener(&snapshot) else {
        tracing::info!(
            ?role,
            "connection closed: the listener is not configured yet"
        );
        return;
    };
    let local = match stream.local_addr() {
        Ok(a) => super::canonical(a),
        Err(_) => return,
    };
    let dest = if listener.use_original_dst || matches!(role, Role::Inbound) {
        match original_dst(&stream, proxy.settings.original_dst) {
            Ok(d) => d,
            Err(e) => {
                tracing::info!(error = %e, "connection closed: no original destination");
                return;
            }
        }
    } else {
        local
    };
    let peer = super::canonical(peer);
    let chains_for_port = || {
        listener
            .chains
            .iter()
            .filter(|c| c.matcher.destination_port.is_none_or(|p| p == dest.port()))
    };
    let needs_transport = chains_for_port().any(|c| {
        c.matcher.transport.is_some() || !c.matcher.server_names.is_empty() || c.tls.is_some()
    });
    let (transport, prefix) = if needs_transport {
        match sniff::sniff(&mut stream, proxy.settings.sniff_timeout).await {
            Ok((Detected::Tls, bytes)) => (Transport::Tls, bytes),
            Ok((_, bytes)) => (Transport::RawBuffer, bytes),
            Err(_) => return,
        }
    } else {
        (Transport::RawBuffer, Vec::new())
    };
    let io = Prefixed::new(prefix, stream);
    let mut down = Downstream {
        direction: role.direction(),
        peer,
        local,
        original_dst: dest,
        peer_id: None,
        tls: false,
        series: Default::default(),
    };
    let uses_sni = transport == Transport::Tls
        && chains_for_port().any(|c| !c.matcher.server_names.is_empty());
    if uses_sni {
        // Gateway: read the ClientHello, pick the chain by SNI, terminate.
        let start = match LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "TLS ClientHello unreadable");
                return;
            }
        };
        let sni = start.client_hello().server_name().map(str::to_owned);
        let facts = ConnectionFacts {
            destination: dest,
            transport,
            server_name: sni.as_deref(),
        };
        let Some(chain) = select(&listener, &facts) else {
            tracing::info!(?sni, "TLS connection refused: no filter chain matches");
            return;
        };
        let Some(config) = server_config(&proxy, &snapshot, chain) else {
            tracing::info!(chain = %chain.name, "TLS connection refused: the chain's certificates are not available");
            return;
        };
        let tls = match start.into_stream(config).await {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                return;
            }
        };
        down.tls = true;
        down.peer_id = spiffe::peer_id(tls.get_ref().1);
        let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        let chain = chain.clone();
        dispatch(proxy, down, snapshot, &chain, Box::new(tls), alpn).await;
        return;
    }
    let facts = ConnectionFacts {
        destination: dest,
        transport,
        server_name: None,
    };
    let Some(chain) = select(&listener, &facts).cloned() else {
        tracing::info!(%dest, ?transport, "connection refused: no filter chain matches (e.g. plaintext to a STRICT mTLS port)");
        return;
    };
    match (&chain.tls, transport) {
        (Some(_), Transport::Tls) => {
            let Some(config) = server_config(&proxy, &snapshot, &chain) else {
                tracing::info!(chain = %chain.name, "TLS connection refused: certificates not available");
                return;
            };
            let tls = match tokio_rustls::TlsAcceptor::from(config).accept(io).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::info!(%peer, error = %e, "mTLS handshake refused");
                    return;
                }
            };
            down.tls = true;
            down.peer_id = spiffe::peer_id(tls.get_ref().1);
            let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            dispatch(proxy, down, snapshot, &chain, Box::new(tls), alpn).await;
        }
        (Some(_), Transport::RawBuffer) => {
            tracing::info!(%peer, chain = %chain.name, "plaintext connection refused: the chain requires TLS");
        }
        (None, _) => dispatch(proxy, down, snapshot, &chain, Box::new(io), None).await,
    }
}

fn server_config(
    proxy: &Proxy,
    snapshot: &Snapshot,
    chain: &FilterChain,
) -> Option<Arc<rustls::ServerConfig>> {
    match &chain.tls {
        Some(DownstreamTls::Mesh) => Some(proxy.identity.current().server_config()),
        Some(DownstreamTls::Terminate { secrets }) => snapshot.terminations.get(secrets).cloned(),
        None => None,
    }
}

async fn dispatch(
    proxy: Arc<Proxy>,
    down: Downstream,
    snapshot: Arc<Snapshot>,
    chain: &FilterChain,
    io: Box<dyn Io>,
    alpn: Option<Vec<u8>>,
) {
    match &chain.filter {
        NetworkFilter::TcpProxy { cluster, .. } => {
            tcp::proxy(proxy, down, snapshot, cluster, io).await;
        }
        NetworkFilter::Http { routes, .. } => {
            serve_http(proxy, Arc::new(down), routes.clone(), io, alpn).await;
        }
    }
}

/// Serves HTTP/1.1 (keep-alive, upgrades) or HTTP/2 on `io`.
pub async fn serve_http(
    proxy: Arc<Proxy>,
    down: Arc<Downstream>,
    routes: RouteSource,
    mut io: Box<dyn Io>,
    alpn: Option<Vec<u8>>,
) {
    let svc = {
        let proxy = proxy.clone();
        service_fn(move |req| super::http::handle(proxy.clone(), down.clone(), routes.clone(), req))
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    match alpn.as_deref() {
        Some(a) if a == ALPN_H2 => {
            builder = builder.http2_only();
            io = Box::new(BatchedWrite::new(io));
        }
        Some(a) if a == ALPN_HTTP1 => builder = builder.http1_only(),
        _ => {}
    }
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(std::time::Duration::from_secs(60));
    builder
        .http2()
        .timer(TokioTimer::new())
        .initial_stream_window_size(1 << 20)
        .initial_connection_window_size(4 << 20)
        .adaptive_window(true);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "downstream HTTP connection ended");
            }
        }
        _ = proxy.drain.signaled() => {
            conn.as_mut().graceful_shutdown();
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "downstream HTTP connection ended while draining");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{ChainMatch, NetworkFilter};

    fn chain(name: &str, port: Option<u16>, transport: Option<Transport>) -> FilterChain {
        FilterChain {
            name: name.into(),
            matcher: ChainMatch {
                destination_port: port,
                transport,
                ..Default::default()
            },
            tls: None,
            filter: NetworkFilter::TcpProxy {
                stat_prefix: name.into(),
                cluster: name.into(),
            },
        }
    }

    #[test]
    fn strict_ports_do_not_fall_back_to_the_passthrough_chain() {
        let listener = Listener {
            name: "virtualInbound".into(),
            address: "0.0.0.0:15006".parse().unwrap(),
            use_original_dst: false,
            chains: vec![
                chain("strict", Some(8080), Some(Transport::Tls)),
                chain("permissive-tls", Some(9090), Some(Transport::Tls)),
                chain("permissive-plain", Some(9090), Some(Transport::RawBuffer)),
                chain("disable", Some(7070), None),
            ],
            default_chain: Some(chain("passthrough", None, None)),
        };
        let pick = |port: u16, transport| {
            select(
                &listener,
                &ConnectionFacts {
                    destination: SocketAddr::from(([10, 0, 0, 1], port)),
                    transport,
                    server_name: None,
                },
            )
            .map(|c| c.name.clone())
        };
        assert_eq!(pick(8080, Transport::Tls).as_deref(), Some("strict"));
        assert_eq!(
            pick(8080, Transport::RawBuffer),
            None,
            "STRICT refuses plaintext"
        );
        assert_eq!(
            pick(9090, Transport::RawBuffer).as_deref(),
            Some("permissive-plain")
        );
        assert_eq!(pick(7070, Transport::Tls).as_deref(), Some("disable"));
        assert_eq!(
            pick(5000, Transport::RawBuffer).as_deref(),
            Some("passthrough"),
            "undeclared ports still pass through"
        );
    }
}
