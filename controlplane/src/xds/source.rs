//! Where the xDS server gets configuration from: a [`ConfigSource`] answers
//! "what does this proxy get?" and announces that the answer may have
//! changed. The server does not know how the answer is built (index and
//! translation, a hand-built mesh in tests, a synthetic mesh in benches).

use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use crate::identity::ProxyIdentity;
use crate::resources::Resources;

/// Configuration for proxies, as the xDS server sees it.
pub trait ConfigSource: Send + Sync + 'static {
    /// Every resource `proxy` should hold now. Sources may share one
    /// [`Resources`] between proxies that get the same configuration.
    fn resources(&self, proxy: &ProxyIdentity) -> Arc<Resources>;

    /// Bumped whenever [`ConfigSource::resources`] may answer differently
    /// (the value itself means nothing; the xDS server debounces bursts).
    fn changes(&self) -> watch::Receiver<u64>;

    /// Completes an authenticated proxy's identity from what the source
    /// knows (its pod's labels, IPs, revision). The namespace and service
    /// account it was given are authenticated and must be kept. By
    /// default the identity is kept as the stream established it.
    fn identify(&self, proxy: ProxyIdentity) -> ProxyIdentity {
        proxy
    }

    /// A stream of `proxy` ended: whatever the source kept for it may go.
    fn disconnected(&self, _proxy: &ProxyIdentity) {}
}

/// A source holding one [`Resources`] for every proxy, replaced by
/// [`StaticSource::set`]: for tests, benches and standalone dev runs.
#[derive(Debug)]
pub struct StaticSource {
    current: RwLock<Arc<Resources>>,
    changes: watch::Sender<u64>,
}

impl StaticSource {
    pub fn new(initial: Resources) -> Self {
        Self {
            current: RwLock::new(Arc::new(initial)),
            changes: watch::Sender::new(0),
        }
    }

    /// Replaces what every proxy gets and announces the change.
    pub fn set(&self, next: Resources) {
        let next = Arc::new(next);
        match self.current.write() {
            Ok(mut guard) => *guard = next,
            // A writer panicked mid-swap: the Arc swap cannot leave a torn
            // value, so take the lock back and carry on.
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        self.changes.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// What every proxy gets now.
    pub fn current(&self) -> Arc<Resources> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl ConfigSource for StaticSource {
    fn resources(&self, _proxy: &ProxyIdentity) -> Arc<Resources> {
        self.current()
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

/// Lets an `Arc<S>` be handed to the server while the caller keeps a handle.
impl<S: ConfigSource> ConfigSource for Arc<S> {
    fn resources(&self, proxy: &ProxyIdentity) -> Arc<Resources> {
        (**self).resources(proxy)
    }

    fn changes(&self) -> watch::Receiver<u64> {
        (**self).changes()
    }

    fn identify(&self, proxy: ProxyIdentity) -> ProxyIdentity {
        (**self).identify(proxy)
    }

    fn disconnected(&self, proxy: &ProxyIdentity) {
        (**self).disconnected(proxy)
    }
}
