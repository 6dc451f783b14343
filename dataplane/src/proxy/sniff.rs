//! Protocol detection on the first bytes of a connection: TLS, HTTP/2
//! prior knowledge, HTTP/1.x, else opaque TCP; bounded by a timeout (a
//! server-first protocol sends nothing, so silence means opaque TCP). The
//! bytes read are replayed to whoever handles the connection.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// What the first bytes say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detected {
    Tls,
    Http1,
    Http2,
    Tcp,
}

/// The HTTP/2 connection preface.
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const METHODS: [&str; 9] = [
    "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
];

/// Classifies `buf`; `None` when more bytes are needed to decide.
pub fn detect(buf: &[u8]) -> Option<Detected> {
    if buf.is_empty() {
        return None;
    }
    // TLS handshake record: content type 22, version 3.x.
    if buf[0] == 0x16 {
        return match buf.get(1) {
            None => None,
            Some(3) => Some(Detected::Tls),
            Some(_) => Some(Detected::Tcp),
        };
    }
    let n = buf.len().min(H2_PREFACE.len());
    if buf[..n] == H2_PREFACE[..n] {
        return if n == H2_PREFACE.len() {
            Some(Detected::Http2)
        } else {
            None
        };
    }
    // HTTP/1.x: a known method, a space, then "HTTP/1." on the first line.
    let mut maybe_method = false;
    for m in METHODS {
        let m = m.as_bytes();
        let k = buf.len().min(m.len());
        if buf[..k] == m[..k] {
            if buf.len() <= m.len() {
                maybe_method = true;
                continue;
            }
            if buf[m.len()] != b' ' {
                continue;
            }
            let line_end = buf.windows(2).position(|w| w == b"\r\n");
            return match line_end {
                Some(end) => {
                    let line = &buf[..end];
                    Some(if line.windows(7).any(|w| w == b"HTTP/1.") {
                        Detected::Http1
                    } else {
                        Detected::Tcp
                    })
                }
                // Request lines longer than this are not HTTP we route.
                None if buf.len() >= 8192 => Some(Detected::Tcp),
                None => None,
            };
        }
    }
    if maybe_method {
        None
    } else {
        Some(Detected::Tcp)
    }
}

/// Reads from `io` until [`detect`] decides, `timeout` passes (opaque
/// TCP) or the peer closes. Returns the decision and the bytes read.
pub async fn sniff<T: AsyncRead + Unpin>(
    io: &mut T,
    timeout: Duration,
) -> io::Result<(Detected, Vec<u8>)> {
    let mut buf = Vec::with_capacity(512);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(d) = detect(&buf) {
            return Ok((d, buf));
        }
        let mut chunk = [0u8; 1024];
        match tokio::time::timeout_at(deadline, io.read(&mut chunk)).await {
            Err(_) => return Ok((Detected::Tcp, buf)),
            Ok(Ok(0)) => return Ok((Detected::Tcp, buf)),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => return Err(e),
        }
    }
}

/// A stream that first yields `prefix`, then reads from the inner stream.
#[derive(Debug)]
pub struct Prefixed<T> {
    prefix: Vec<u8>,
    pos: usize,
    inner: T,
}

impl<T> Prefixed<T> {
    pub fn new(prefix: Vec<u8>, inner: T) -> Self {
        Self {
            prefix,
            pos: 0,
            inner,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pos < self.prefix.len() {
            let rest = &self.prefix[self.pos..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            self.pos += n;
            if self.pos == self.prefix.len() {
                self.prefix = Vec::new();
                self.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_protocols_from_first_bytes() {
        let cases: &[(&[u8], Option<Detected>)] = &[
            (b"", None),
            (&[0x16], None),
            (&[0x16, 3, 1, 0, 200], Some(Detected::Tls)),
            (&[0x16, 9], Some(Detected::Tcp)),
            (b"PRI * HTTP/2.0\r\n", None),
            (H2_PREFACE, Some(Detected::Http2)),
            (b"GE", None),
            (b"GET / HTTP/1.1\r\nHost: a\r\n", Some(Detected::Http1)),
            (b"POST /x HTTP/1.0\r\n", Some(Detected::Http1)),
            (b"GET /still-reading", None),
            (b"GET foo bar\r\n", Some(Detected::Tcp)),
            (b"GETX / HTTP/1.1\r\n", Some(Detected::Tcp)),
            (b"\x00\x00\x00\x01", Some(Detected::Tcp)),
            (b"SSH-2.0-OpenSSH\r\n", Some(Detected::Tcp)),
        ];
        for (bytes, want) in cases {
            assert_eq!(detect(bytes), *want, "{:?}", String::from_utf8_lossy(bytes));
        }
    }

    #[tokio::test]
    async fn silence_is_opaque_tcp_after_the_timeout() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let started = std::time::Instant::now();
        let (d, bytes) = sniff(&mut server, Duration::from_millis(50)).await.unwrap();
        assert_eq!(d, Detected::Tcp);
        assert!(bytes.is_empty());
        assert!(started.elapsed() >= Duration::from_millis(50));
        // Bytes are replayed.
        tokio::io::AsyncWriteExt::write_all(&mut client, b"GET / HTTP/1.1\r\n")
            .await
            .unwrap();
        let (d, bytes) = sniff(&mut server, Duration::from_secs(5)).await.unwrap();
        assert_eq!(d, Detected::Http1);
        let mut replay = Prefixed::new(bytes, server);
        let mut first = [0u8; 3];
        replay.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"GET");
    }
}
