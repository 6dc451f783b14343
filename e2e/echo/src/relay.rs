//! A plain TCP relay: every connection accepted is joined byte for byte to
//! a new connection to one upstream address. No parsing, no TLS, one
//! thread. `make bench-proxy` runs a pair of them as its floor: the
//! latency that two extra hops through user space add on the machine,
//! whatever the proxy does with the bytes.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info};

/// Errors of the relay.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("binding the relay's listener on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("accepting a connection failed: {0}")]
    Accept(#[source] std::io::Error),
}

/// Binds the relay's listener.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, RelayError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| RelayError::Bind { addr, source })
}

/// Relays every connection accepted on `listener` to `upstream` until
/// dropped. A connection whose upstream cannot be reached is closed.
pub async fn serve(listener: TcpListener, upstream: SocketAddr) -> Result<(), RelayError> {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, %upstream, "TCP relay listening");
    }
    loop {
        let (downstream, peer) = listener.accept().await.map_err(RelayError::Accept)?;
        tokio::spawn(async move {
            if let Err(error) = relay_connection(downstream, upstream).await {
                debug!(%peer, %error, "relayed connection ended with an error");
            }
        });
    }
}

async fn relay_connection(mut downstream: TcpStream, upstream: SocketAddr) -> std::io::Result<()> {
    let mut up = TcpStream::connect(upstream).await?;
    // Requests and answers are small: each write goes out at once.
    downstream.set_nodelay(true)?;
    up.set_nodelay(true)?;
    tokio::io::copy_bidirectional(&mut downstream, &mut up).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A relay on a free loopback port to `upstream`; its address.
    async fn start_relay(upstream: SocketAddr) -> SocketAddr {
        let any = "127.0.0.1:0".parse().expect("a socket address");
        let relay = bind(any).await.expect("a free loopback port");
        let addr = relay.local_addr().expect("a bound listener");
        tokio::spawn(serve(relay, upstream));
        addr
    }

    #[tokio::test]
    async fn bytes_go_through_both_ways_and_eof_is_passed_on() {
        let echo = TcpListener::bind("127.0.0.1:0").await.expect("echo port");
        let echo_addr = echo.local_addr().expect("echo address");
        tokio::spawn(crate::tcp::serve(echo));
        let relay = start_relay(echo_addr).await;

        let mut client = TcpStream::connect(relay).await.expect("relay accepts");
        let sent = b"ping through the relay";
        client.write_all(sent).await.expect("relay reads");
        client.shutdown().await.expect("half-close");
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.expect("relay answers");
        assert_eq!(back, sent);
    }

    #[tokio::test]
    async fn an_unreachable_upstream_closes_the_connection() {
        // A port that was free a moment ago: nothing listens there.
        let gone = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let gone_addr = gone.local_addr().expect("its address");
        drop(gone);
        let relay = start_relay(gone_addr).await;

        let mut client = TcpStream::connect(relay).await.expect("relay accepts");
        let mut back = Vec::new();
        let read = client.read_to_end(&mut back).await;
        assert!(read.is_err() || back.is_empty(), "got {back:?}");
    }

    #[tokio::test]
    async fn a_busy_address_is_a_bind_error_naming_it() {
        let taken = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = taken.local_addr().expect("its address");
        let err = bind(addr).await.expect_err("the port is taken");
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }
}
