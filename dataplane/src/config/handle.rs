//! [`ConfigHandle`]: the current [`Snapshot`] behind a `tokio::sync::watch`.
//! Every connection takes one `Arc<Snapshot>` when it starts and routes
//! with it until it ends; updates swap the pointer atomically. An update
//! that does not build is refused (the caller NACKs it) and the last good
//! snapshot stays.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::{Any, ConfigError, Resources, Snapshot};

#[derive(Debug, Default)]
struct State {
    /// The resources of the current (last good) snapshot.
    resources: Resources,
    last_error: Option<String>,
    version: u64,
    /// The whole first configuration arrived (every xDS type answered, or
    /// the static bootstrap loaded): an empty set of listeners is then the
    /// configuration, not its absence.
    synced: bool,
}

/// Shared handle to the live configuration.
#[derive(Clone, Debug)]
pub struct ConfigHandle {
    tx: Arc<watch::Sender<Arc<Snapshot>>>,
    state: Arc<Mutex<State>>,
}

impl Default for ConfigHandle {
    fn default() -> Self {
        Self::new(Snapshot::default())
    }
}

impl ConfigHandle {
    pub fn new(initial: Snapshot) -> Self {
        let resources = initial.resources.clone();
        Self {
            tx: Arc::new(watch::Sender::new(Arc::new(initial))),
            state: Arc::new(Mutex::new(State {
                resources,
                last_error: None,
                version: 0,
                synced: false,
            })),
        }
    }

    /// The snapshot new connections and requests use.
    pub fn current(&self) -> Arc<Snapshot> {
        self.tx.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.tx.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Builds `resources` and swaps them in; on error the last good
    /// snapshot stays and the error is returned (and kept for the admin
    /// endpoint).
    pub fn update(&self, resources: Resources) -> Result<Arc<Snapshot>, ConfigError> {
        let mut state = self.lock();
        match Snapshot::build(&resources) {
            Ok(snapshot) => {
                let snapshot = Arc::new(snapshot);
                state.resources = resources;
                state.last_error = None;
                state.version += 1;
                self.tx.send_replace(snapshot.clone());
                Ok(snapshot)
            }
            Err(e) => {
                tracing::warn!(error = %e, "configuration update rejected; keeping the last good configuration");
                state.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Applies a delta of one type to the last good resources and swaps
    /// the result in; a delta that does not build is not applied.
    pub fn apply(
        &self,
        type_url: &str,
        added: Vec<(String, Any)>,
        removed: &[String],
    ) -> Result<Arc<Snapshot>, ConfigError> {
        let mut next = self.resources();
        next.apply(type_url, added, removed);
        self.update(next)
    }

    /// Replaces every resource of one type (state of the world).
    pub fn replace(
        &self,
        type_url: &str,
        resources: Vec<(String, Any)>,
    ) -> Result<Arc<Snapshot>, ConfigError> {
        let mut next = self.resources();
        next.replace(type_url, resources);
        self.update(next)
    }

    /// The resources of the current snapshot.
    pub fn resources(&self) -> Resources {
        self.lock().resources.clone()
    }

    /// The last rejected update's error, until a good update arrives.
    pub fn last_error(&self) -> Option<String> {
        self.lock().last_error.clone()
    }

    /// How many updates were accepted.
    pub fn version(&self) -> u64 {
        self.lock().version
    }

    /// Records that the first whole configuration arrived.
    pub fn mark_synced(&self) {
        self.lock().synced = true;
    }

    /// Whether the first whole configuration arrived.
    pub fn synced(&self) -> bool {
        self.lock().synced
    }
}
