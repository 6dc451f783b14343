//! Per-core workers: one single-threaded Tokio runtime per thread, each
//! accepting on its own socket of a listener (`SO_REUSEPORT`) and keeping
//! its own upstream pools, so a connection is served from accept to
//! upstream and back on one thread, without cross-thread wake-ups or
//! contended locks. Control work (xDS, CA, admin) stays on the main
//! runtime.
//!
//! [`Workers::default`] has no threads of its own: listeners then run on
//! the caller's runtime (tests, embedding).

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::runtime::Handle;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// The worker runtimes, by index.
#[derive(Clone, Default)]
pub struct Workers {
    handles: Arc<[Handle]>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("threads", &self.handles.len())
            .finish()
    }
}

/// Why a listener's sockets could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum WorkersError {
    #[error("cannot start worker thread {index}: {source}")]
    Thread {
        index: usize,
        source: std::io::Error,
    },
    #[error(
        "cannot listen on {addr}: {source} (is another program using the port, or is it privileged?)"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl Workers {
    /// Starts `threads` worker threads (at least one), each running a
    /// single-threaded runtime until the process exits.
    pub fn start(threads: usize) -> Result<Self, WorkersError> {
        let mut handles = Vec::with_capacity(threads.max(1));
        for index in 0..threads.max(1) {
            let (tx, rx) = std::sync::mpsc::channel();
            let thread = std::thread::Builder::new()
                .name(format!("weft-worker-{index}"))
                .spawn(move || {
                    INDEX.set(index);
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(r) => r,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = tx.send(Ok(runtime.handle().clone()));
                    runtime.block_on(std::future::pending::<()>());
                })
                .map_err(|source| WorkersError::Thread { index, source })?;
            let handle = rx
                .recv()
                .map_err(|_| std::io::Error::other("worker thread exited"))
                .and_then(|r| r)
                .map_err(|source| WorkersError::Thread { index, source })?;
            drop(thread);
            handles.push(handle);
        }
        Ok(Self {
            handles: handles.into(),
        })
    }

    /// How many sockets and pools a listener and the proxy keep: one per
    /// worker, or one on the caller's runtime.
    pub fn count(&self) -> usize {
        self.handles.len().max(1)
    }

    /// The worker the calling thread is (0 off worker threads).
    pub fn current() -> usize {
        INDEX.get()
    }

    /// Runs `task(i)` on every worker `i` (on the caller's runtime when
    /// there are no worker threads).
    pub fn spawn_each<F, Fut>(&self, mut task: F)
    where
        F: FnMut(usize) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        if self.handles.is_empty() {
            tokio::spawn(task(0));
        } else {
            for (i, h) in self.handles.iter().enumerate() {
                h.spawn(task(i));
            }
        }
    }
}

/// One listening socket per worker on `addr`, sharing the port with
/// `SO_REUSEPORT` (the kernel spreads new connections over them). A port
/// of 0 is resolved by the first socket and reused by the others.
pub fn bind_each(
    addr: SocketAddr,
    count: usize,
) -> Result<Vec<std::net::TcpListener>, WorkersError> {
    let err = |source| WorkersError::Bind { addr, source };
    let mut sockets = Vec::with_capacity(count.max(1));
    let mut at = addr;
    for _ in 0..count.max(1) {
        let socket =
            Socket::new(Domain::for_address(at), Type::STREAM, Some(Protocol::TCP)).map_err(err)?;
        socket.set_reuse_address(true).map_err(err)?;
        if count > 1 {
            socket.set_reuse_port(true).map_err(err)?;
        }
        socket.set_nonblocking(true).map_err(err)?;
        socket.bind(&at.into()).map_err(err)?;
        socket.listen(1024).map_err(err)?;
        let listener: std::net::TcpListener = socket.into();
        at = listener.local_addr().map_err(err)?;
        sockets.push(listener);
    }
    Ok(sockets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_worker_gets_a_socket_on_one_port() {
        let sockets = bind_each(SocketAddr::from(([127, 0, 0, 1], 0)), 3).unwrap();
        assert_eq!(sockets.len(), 3);
        let port = sockets[0].local_addr().unwrap().port();
        assert_ne!(port, 0);
        assert!(
            sockets
                .iter()
                .all(|s| s.local_addr().unwrap().port() == port)
        );
    }

    #[test]
    fn a_busy_port_is_a_bind_error_naming_it() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let e = bind_each(addr, 2).unwrap_err();
        assert!(e.to_string().contains(&addr.to_string()), "{e}");
    }

    #[test]
    fn tasks_run_on_their_own_worker_thread() {
        let workers = Workers::start(2).unwrap();
        assert_eq!(workers.count(), 2);
        let (tx, rx) = std::sync::mpsc::channel();
        workers.spawn_each(|i| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((
                    i,
                    Workers::current(),
                    std::thread::current().name().map(String::from),
                ));
            }
        });
        let mut seen: Vec<_> = (0..2).map(|_| rx.recv().unwrap()).collect();
        seen.sort();
        assert_eq!(
            seen,
            vec![
                (0, 0, Some("weft-worker-0".into())),
                (1, 1, Some("weft-worker-1".into()))
            ]
        );
    }
}
