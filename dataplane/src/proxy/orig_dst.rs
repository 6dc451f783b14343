//! The destination a redirected connection was meant for: `SO_ORIGINAL_DST`
//! (iptables REDIRECT) through socket2, or the local address for listeners
//! bound directly on the destination (loopback tests, no iptables).

use std::net::SocketAddr;

use tokio::net::TcpStream;

/// How a capture listener learns the original destination.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OriginalDstMode {
    /// `SO_ORIGINAL_DST`, falling back to the local address when the
    /// connection was not redirected.
    #[default]
    SocketOption,
    /// The listener is bound on the destination itself.
    LocalAddr,
}

pub fn original_dst(stream: &TcpStream, mode: OriginalDstMode) -> std::io::Result<SocketAddr> {
    let local = stream.local_addr()?;
    if mode == OriginalDstMode::LocalAddr {
        return Ok(local);
    }
    let sock = socket2::SockRef::from(stream);
    let orig = if local.is_ipv4() {
        sock.original_dst_v4()
    } else {
        sock.original_dst_v6()
    };
    match orig.ok().and_then(|a| a.as_socket()) {
        Some(addr) => Ok(canonical(addr)),
        None => Ok(local),
    }
}

/// IPv4-mapped IPv6 addresses as IPv4.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => addr,
        },
        v4 => v4,
    }
}
