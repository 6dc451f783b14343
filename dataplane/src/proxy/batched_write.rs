//! Write batching for multiplexed HTTP/2 connections.
//!
//! The h2 codec writes each DATA payload above a threshold as a separate
//! write after the frame head, and over TLS every write becomes its own
//! TLS record and `writev`. Many streams answering at once then cost a
//! record and a syscall each. [`BatchedWrite`] keeps what is written until
//! the codec flushes (it flushes once it has nothing more to send), so the
//! frames of one flush leave as one TLS write. It also reports non-vectored
//! writes, which makes h2 copy payloads up to 1 KiB into its own frame
//! buffer instead of ending the batch at each one.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes kept before they are handed on without waiting for a flush.
const LIMIT: usize = 64 * 1024;
/// Buffer capacity kept between flushes; a larger one (after a burst of
/// big frames) is released so an idle connection holds little memory.
const KEEP: usize = 16 * 1024;

/// An I/O stream whose writes are held until flushed (or [`LIMIT`]).
pub struct BatchedWrite<T> {
    inner: T,
    buf: Vec<u8>,
    /// How much of `buf` the inner stream has taken.
    written: usize,
}

impl<T> BatchedWrite<T> {
    pub fn new(inner: T) -> Self {
        BatchedWrite {
            inner,
            buf: Vec::new(),
            written: 0,
        }
    }
}

impl<T: AsyncWrite + Unpin> BatchedWrite<T> {
    /// Hands every held byte to the inner stream.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.buf.clear();
        self.written = 0;
        if self.buf.capacity() > KEEP {
            self.buf.shrink_to(KEEP);
        }
        Poll::Ready(Ok(()))
    }

    /// Makes room for `len` more bytes, draining first when they would
    /// take the held bytes past [`LIMIT`].
    fn poll_room(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<()>> {
        if !self.buf.is_empty() && self.buf.len() + len > LIMIT {
            ready!(self.poll_drain(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for BatchedWrite<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for BatchedWrite<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(data)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let len = bufs.iter().map(|b| b.len()).sum();
        ready!(this.poll_room(cx, len))?;
        if this.buf.is_empty() && len >= LIMIT {
            // Large enough to be its own batch: no copy.
            return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        }
        for b in bufs {
            this.buf.extend_from_slice(b);
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::AsyncWriteExt;

    /// Records each write it is given, taking at most `max` bytes of it.
    #[derive(Clone, Default)]
    struct Recorder {
        writes: Arc<Mutex<Vec<Vec<u8>>>>,
        max: Option<usize>,
        flushes: Arc<Mutex<usize>>,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = self.max.map_or(data.len(), |m| m.min(data.len()));
            self.writes.lock().unwrap().push(data[..n].to_vec());
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            *self.flushes.lock().unwrap() += 1;
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn writes(r: &Recorder) -> Vec<Vec<u8>> {
        r.writes.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn writes_until_a_flush_leave_as_one() {
        let rec = Recorder::default();
        let mut w = BatchedWrite::new(rec.clone());
        w.write_all(b"head").await.unwrap();
        w.write_all(b"payload").await.unwrap();
        let n = w
            .write_vectored(&[IoSlice::new(b"a"), IoSlice::new(b"b")])
            .await
            .unwrap();
        assert_eq!(n, 2, "a vectored write is taken whole");
        assert!(writes(&rec).is_empty(), "nothing is written before a flush");
        w.flush().await.unwrap();
        assert_eq!(writes(&rec), vec![b"headpayloadab".to_vec()]);
        assert_eq!(*rec.flushes.lock().unwrap(), 1);
        w.write_all(b"next").await.unwrap();
        w.shutdown().await.unwrap();
        assert_eq!(
            writes(&rec)[1],
            b"next".to_vec(),
            "shutdown writes what is held"
        );
    }

    #[tokio::test]
    async fn partial_inner_writes_continue_where_they_stopped() {
        let rec = Recorder {
            max: Some(3),
            ..Default::default()
        };
        let mut w = BatchedWrite::new(rec.clone());
        w.write_all(b"abcdefgh").await.unwrap();
        w.flush().await.unwrap();
        assert_eq!(writes(&rec).concat(), b"abcdefgh".to_vec());
        assert_eq!(writes(&rec).len(), 3);
    }

    #[tokio::test]
    async fn held_bytes_are_handed_on_past_the_limit() {
        let rec = Recorder::default();
        let mut w = BatchedWrite::new(rec.clone());
        let chunk = vec![7u8; LIMIT / 2 + 1];
        w.write_all(&chunk).await.unwrap();
        assert!(writes(&rec).is_empty());
        // The second chunk would pass the limit: the first leaves first.
        w.write_all(&chunk).await.unwrap();
        assert_eq!(writes(&rec).len(), 1);
        assert_eq!(writes(&rec)[0].len(), chunk.len());
        // A write of the limit or more with nothing held is not copied.
        w.flush().await.unwrap();
        let big = vec![1u8; LIMIT];
        w.write_all(&big).await.unwrap();
        assert_eq!(writes(&rec).last().map(Vec::len), Some(LIMIT));
        assert!(
            w.buf.capacity() <= KEEP,
            "a drained buffer keeps at most KEEP"
        );
    }

    #[test]
    fn reports_non_vectored_writes() {
        assert!(!BatchedWrite::new(Recorder::default()).is_write_vectored());
    }
}
