//! The [`ConfigSource`] of a running weftd: the Kubernetes index's latest
//! snapshot, translated per proxy by [`crate::translate::for_proxy`].

use std::sync::Arc;

use tokio::sync::watch;

use super::source::ConfigSource;
use crate::identity::ProxyIdentity;
use crate::index::Snapshot;
use crate::resources::Resources;
use crate::translate::{self, MeshSettings};

/// Index snapshots in, per-proxy resources out.
#[derive(Debug)]
pub struct IndexSource {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    settings: MeshSettings,
    changes: watch::Receiver<u64>,
}

impl IndexSource {
    /// Follows `snapshots` (from `Index::subscribe`). Starts a task that
    /// forwards each snapshot's generation (call inside a Tokio runtime);
    /// it ends when the index is dropped.
    pub fn new(snapshots: watch::Receiver<Arc<Snapshot>>, settings: MeshSettings) -> Self {
        let (tx, changes) = watch::channel(snapshots.borrow().generation);
        let mut follow = snapshots.clone();
        tokio::spawn(async move {
            while follow.changed().await.is_ok() {
                let generation = follow.borrow_and_update().generation;
                if tx.send(generation).is_err() {
                    return;
                }
            }
        });
        Self {
            snapshots,
            settings,
            changes,
        }
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshots.borrow().clone()
    }
}

impl ConfigSource for IndexSource {
    fn resources(&self, proxy: &ProxyIdentity) -> Arc<Resources> {
        Arc::new(translate::for_proxy(
            &self.snapshot(),
            proxy,
            &self.settings,
        ))
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// The pod's labels and IPs from the index, looked up only in the
    /// authenticated namespace and service account. A client without a pod
    /// in the index (a proxyless client on a developer's host) keeps what
    /// the stream established.
    fn identify(&self, proxy: ProxyIdentity) -> ProxyIdentity {
        let found = self.snapshot().proxy_identity(
            &proxy.id,
            &proxy.node_id,
            Some(proxy.kind.clone()),
            &proxy.revision,
        );
        if found.pod.is_some() { found } else { proxy }
    }
}
