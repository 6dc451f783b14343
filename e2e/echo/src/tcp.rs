//! Plain TCP echo: the server writes back every byte it reads.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{Instrument, debug, info, info_span};

/// Errors of the TCP echo server.
#[derive(Debug, thiserror::Error)]
pub enum TcpError {
    #[error("accepting a TCP connection failed: {0}")]
    Accept(#[source] std::io::Error),
}

/// Echoes bytes on every connection accepted on `listener` until dropped.
pub async fn serve(listener: TcpListener) -> Result<(), TcpError> {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "TCP echo listening");
    }
    loop {
        let (stream, peer) = listener.accept().await.map_err(TcpError::Accept)?;
        let peer = crate::report::canonical(peer);
        tokio::spawn(
            async move {
                match echo_connection(stream).await {
                    Ok(n) => info!(bytes = n, "tcp echo done"),
                    Err(error) => debug!(%error, "tcp echo connection failed"),
                }
            }
            .instrument(info_span!("tcp_conn", %peer)),
        );
    }
}

async fn echo_connection(mut stream: TcpStream) -> std::io::Result<u64> {
    let (mut reader, mut writer) = stream.split();
    let mut total = 0u64;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            writer.shutdown().await?;
            return Ok(total);
        }
        writer.write_all(&buf[..n]).await?;
        total += n as u64;
    }
}
