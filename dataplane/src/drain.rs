//! Graceful drain: a signal every accept loop and connection watches, and
//! a count of connections still open. On SIGTERM listeners stop
//! accepting, HTTP connections finish their in-flight requests and close,
//! and [`Drain::drain`] waits for them up to a deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};

#[derive(Debug)]
struct Inner {
    signal: watch::Sender<bool>,
    active: AtomicUsize,
    idle: Notify,
}

/// Shared drain state.
#[derive(Clone, Debug)]
pub struct Drain(Arc<Inner>);

impl Default for Drain {
    fn default() -> Self {
        Self(Arc::new(Inner {
            signal: watch::Sender::new(false),
            active: AtomicUsize::new(0),
            idle: Notify::new(),
        }))
    }
}

/// Held by each open connection.
#[derive(Debug)]
pub struct ConnectionGuard(Arc<Inner>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Drain {
    /// Registers an open connection.
    pub fn connection(&self) -> ConnectionGuard {
        self.0.active.fetch_add(1, Ordering::AcqRel);
        ConnectionGuard(self.0.clone())
    }

    pub fn is_draining(&self) -> bool {
        *self.0.signal.borrow()
    }

    /// Resolves when draining starts.
    pub async fn signaled(&self) {
        let mut rx = self.0.signal.subscribe();
        // The sender lives in self: wait_for only fails if it is dropped.
        let _ = rx.wait_for(|d| *d).await;
    }

    pub fn active(&self) -> usize {
        self.0.active.load(Ordering::Acquire)
    }

    /// Starts draining and waits until every connection closed or the
    /// deadline passed; returns how many were still open.
    pub async fn drain(&self, deadline: Duration) -> usize {
        self.0.signal.send_replace(true);
        let wait = async {
            loop {
                let notified = self.0.idle.notified();
                if self.active() == 0 {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(deadline, wait).await;
        self.active()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drain_waits_for_connections_then_returns() {
        let d = Drain::default();
        let guard = d.connection();
        let d2 = d.clone();
        let closer = tokio::spawn(async move {
            d2.signaled().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(guard);
        });
        assert_eq!(d.drain(Duration::from_secs(5)).await, 0);
        closer.await.unwrap();
        let _stuck = d.connection();
        assert_eq!(d.drain(Duration::from_millis(20)).await, 1);
    }
}
