//! Entry points: start a sidecar or a gateway on a [`ConfigHandle`] and an
//! [`IdentityStore`] (static files here; the weftd-connected mode feeds
//! the same two), serve until SIGTERM, drain.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::{self, Admin, Endpoints, probes::AppProbes};
use crate::config::{ConfigHandle, bootstrap};
use crate::drain::Drain;
use crate::metrics::Metrics;
use crate::proxy::server::{Role, accept_loop};
use crate::proxy::{Proxy, ProxySettings};
use crate::tls::{IdentityStore, WorkloadIdentity};
use crate::workers::{WorkersError, bind_each};

pub const OUTBOUND_PORT: u16 = 15001;
pub const INBOUND_PORT: u16 = 15006;
pub const ADMIN_PORT: u16 = 15000;
pub const STATUS_PORT: u16 = 15020;
pub const HEALTH_PORT: u16 = 15021;
pub const METRICS_PORT: u16 = 15090;

/// Why the proxy cannot start or run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "cannot listen on {addr}: {source} (is another proxy running, or the port privileged?)"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("workload identity: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Listen(#[from] WorkersError),
    #[error(transparent)]
    Probes(#[from] admin::probes::ProbeError),
}

/// Addresses of the admin ports.
#[derive(Clone, Debug)]
pub struct AdminAddrs {
    pub admin: SocketAddr,
    pub metrics: SocketAddr,
    pub health: SocketAddr,
    pub status: SocketAddr,
}

impl Default for AdminAddrs {
    fn default() -> Self {
        let any = |p| SocketAddr::from(([0, 0, 0, 0], p));
        Self {
            // Admin exposes configuration: loopback only.
            admin: SocketAddr::from(([127, 0, 0, 1], ADMIN_PORT)),
            metrics: any(METRICS_PORT),
            health: any(HEALTH_PORT),
            status: any(STATUS_PORT),
        }
    }
}

impl AdminAddrs {
    /// Ephemeral loopback ports (tests).
    pub fn ephemeral() -> Self {
        let lo = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            admin: lo,
            metrics: lo,
            health: lo,
            status: lo,
        }
    }
}

/// Sidecar settings.
#[derive(Clone, Debug)]
pub struct SidecarOptions {
    /// Outbound capture listeners (default `0.0.0.0:15001`).
    pub outbound: Vec<SocketAddr>,
    /// Inbound capture listeners (default `0.0.0.0:15006`).
    pub inbound: Vec<SocketAddr>,
    pub admin: AdminAddrs,
    pub settings: ProxySettings,
    pub app_probes: AppProbes,
    pub drain_deadline: Duration,
}

impl Default for SidecarOptions {
    fn default() -> Self {
        Self {
            outbound: vec![SocketAddr::from(([0, 0, 0, 0], OUTBOUND_PORT))],
            inbound: vec![SocketAddr::from(([0, 0, 0, 0], INBOUND_PORT))],
            admin: AdminAddrs::default(),
            settings: ProxySettings::default(),
            app_probes: AppProbes::new(),
            drain_deadline: Duration::from_secs(5),
        }
    }
}

/// Gateway settings.
#[derive(Clone, Debug)]
pub struct GatewayOptions {
    pub admin: AdminAddrs,
    pub settings: ProxySettings,
    pub drain_deadline: Duration,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            admin: AdminAddrs::default(),
            settings: ProxySettings::default(),
            drain_deadline: Duration::from_secs(5),
        }
    }
}

/// Static mode inputs: a bootstrap file and PEM identity files.
#[derive(Clone, Debug)]
pub struct StaticFiles {
    pub bootstrap: PathBuf,
    pub cert_chain: PathBuf,
    pub key: PathBuf,
    pub roots: PathBuf,
}

fn read(path: &PathBuf) -> Result<Vec<u8>, RunError> {
    std::fs::read(path).map_err(|source| RunError::Read {
        path: path.clone(),
        source,
    })
}

/// Loads the static bootstrap and identity.
pub fn load_static(files: &StaticFiles) -> Result<(ConfigHandle, Arc<IdentityStore>), RunError> {
    let resources = bootstrap::load_file(&files.bootstrap)?;
    let config = ConfigHandle::default();
    config.update(resources)?;
    config.mark_synced();
    let identity = WorkloadIdentity::from_pem(
        &read(&files.cert_chain)?,
        &read(&files.key)?,
        &read(&files.roots)?,
    )?;
    Ok((config, Arc::new(IdentityStore::new(identity)?)))
}

/// A started proxy.
#[derive(Debug)]
pub struct Running {
    pub proxy: Arc<Proxy>,
    pub outbound: Vec<SocketAddr>,
    pub inbound: Vec<SocketAddr>,
    pub admin: AdminAddrs,
    /// Gateway listeners bound now, by name.
    pub gateway_listeners: Arc<Mutex<BTreeMap<String, SocketAddr>>>,
    drain_deadline: Duration,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish within the drain
    /// deadline, closes idle upstream connections; returns how many
    /// connections were still open at the deadline.
    pub async fn shutdown(&self) -> usize {
        tracing::info!(deadline = ?self.drain_deadline, "draining");
        let drain = self.proxy.drain.drain(self.drain_deadline);
        self.proxy.pools.close_idle();
        let left = drain.await;
        self.proxy.pools.close_idle();
        left
    }

    /// Bound address of a gateway listener.
    pub fn gateway_listener(&self, name: &str) -> Option<SocketAddr> {
        match self.gateway_listeners.lock() {
            Ok(m) => m.get(name).copied(),
            Err(p) => p.into_inner().get(name).copied(),
        }
    }
}

/// Binds `addr` once per worker and starts an accept loop on each;
/// returns the bound address.
fn listen(
    proxy: &Arc<Proxy>,
    addr: SocketAddr,
    role: &Role,
    stop: Option<watch::Receiver<bool>>,
) -> Result<SocketAddr, WorkersError> {
    let workers = &proxy.settings.workers;
    let mut sockets = bind_each(addr, workers.count()).map(Vec::into_iter)?;
    let local = sockets
        .as_slice()
        .first()
        .and_then(|s| s.local_addr().ok())
        .unwrap_or(addr);
    workers.spawn_each(|_| {
        let socket = sockets.next();
        let (proxy, role, stop) = (proxy.clone(), role.clone(), stop.clone());
        async move {
            let Some(socket) = socket else { return };
            match TcpListener::from_std(socket) {
                Ok(listener) => accept_loop(proxy, listener, role, stop).await,
                Err(e) => tracing::error!(%local, error = %e, "cannot register listener"),
            }
        }
    });
    Ok(local)
}

async fn start_admin(admin: Arc<Admin>, addrs: &AdminAddrs) -> Result<AdminAddrs, RunError> {
    let mut bound = addrs.clone();
    for (addr, which, slot) in [
        (addrs.admin, Endpoints::Admin, &mut bound.admin),
        (addrs.metrics, Endpoints::Metrics, &mut bound.metrics),
        (addrs.health, Endpoints::Health, &mut bound.health),
        (addrs.status, Endpoints::Status, &mut bound.status),
    ] {
        let socket = bind_each(addr, 1)?
            .pop()
            .ok_or_else(|| std::io::Error::other("no socket"))
            .and_then(TcpListener::from_std)
            .map_err(|source| RunError::Bind { addr, source })?;
        *slot = socket
            .local_addr()
            .map_err(|source| RunError::Bind { addr, source })?;
        tokio::spawn(admin::serve(admin.clone(), socket, which));
    }
    Ok(bound)
}

/// Keeps the trust bundle in step with the `ROOTCA` secret, and drops
/// pooled connections made with a replaced identity (in-flight requests
/// on them finish).
fn watch_identity(proxy: &Arc<Proxy>) {
    let mut config = proxy.config.subscribe();
    let mut ids = proxy.identity.subscribe();
    let proxy = proxy.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = config.changed() => {
                    if changed.is_err() { break; }
                    let snapshot = config.borrow_and_update().clone();
                    if let Some(pem) = snapshot.trust_bundle_pem() {
                        use rustls::pki_types::pem::PemObject;
                        let roots: Result<Vec<_>, _> =
                            rustls::pki_types::CertificateDer::pem_slice_iter(pem).collect();
                        match roots {
                            Ok(roots) if !roots.is_empty() => {
                                if let Err(e) = proxy.identity.replace_roots(roots) {
                                    tracing::warn!(error = %e, "ROOTCA trust bundle not applied");
                                }
                            }
                            _ => tracing::warn!("ROOTCA secret holds no PEM certificate"),
                        }
                    }
                }
                changed = ids.changed() => {
                    if changed.is_err() { break; }
                    ids.borrow_and_update();
                    proxy.pools.close_idle();
                }
            }
        }
    });
}

/// Starts a sidecar: capture listeners and admin ports.
pub async fn start_sidecar(
    config: ConfigHandle,
    identity: Arc<IdentityStore>,
    opts: SidecarOptions,
) -> Result<Running, RunError> {
    let proxy = Proxy::new(
        config,
        identity,
        Arc::new(Metrics::default()),
        Drain::default(),
        opts.settings.clone(),
    );
    let mut outbound = Vec::new();
    let mut inbound = Vec::new();
    for (addrs, role, out) in [
        (&opts.outbound, Role::Outbound, &mut outbound),
        (&opts.inbound, Role::Inbound, &mut inbound),
    ] {
        for addr in addrs {
            out.push(listen(&proxy, *addr, &role, None)?);
        }
    }
    let admin = Arc::new(Admin {
        proxy: proxy.clone(),
        probes: opts.app_probes.clone(),
        required_listeners: vec!["virtualOutbound".into(), "virtualInbound".into()],
    });
    let admin_addrs = start_admin(admin, &opts.admin).await?;
    watch_identity(&proxy);
    tracing::info!(?outbound, ?inbound, "sidecar started");
    Ok(Running {
        proxy,
        outbound,
        inbound,
        admin: admin_addrs,
        gateway_listeners: Arc::default(),
        drain_deadline: opts.drain_deadline,
    })
}

/// Starts a gateway: one listener per Listener resource (bound and
/// unbound as configuration changes) and the admin ports.
pub async fn start_gateway(
    config: ConfigHandle,
    identity: Arc<IdentityStore>,
    opts: GatewayOptions,
) -> Result<Running, RunError> {
    let proxy = Proxy::new(
        config,
        identity,
        Arc::new(Metrics::default()),
        Drain::default(),
        opts.settings.clone(),
    );
    let bound: Arc<Mutex<BTreeMap<String, SocketAddr>>> = Arc::default();
    let mut manager = ListenerManager::default();
    manager.sync(&proxy, &bound);
    {
        let proxy = proxy.clone();
        let bound = bound.clone();
        let mut rx = proxy.config.subscribe();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                rx.borrow_and_update();
                manager.sync(&proxy, &bound);
            }
        });
    }
    let admin = Arc::new(Admin {
        proxy: proxy.clone(),
        probes: AppProbes::new(),
        required_listeners: Vec::new(),
    });
    let admin_addrs = start_admin(admin, &opts.admin).await?;
    watch_identity(&proxy);
    Ok(Running {
        proxy,
        outbound: Vec::new(),
        inbound: Vec::new(),
        admin: admin_addrs,
        gateway_listeners: bound,
        drain_deadline: opts.drain_deadline,
    })
}

/// Gateway listeners currently bound: name → (configured address, stop).
#[derive(Debug, Default)]
struct ListenerManager {
    active: BTreeMap<String, (SocketAddr, watch::Sender<bool>)>,
}

impl ListenerManager {
    fn sync(&mut self, proxy: &Arc<Proxy>, bound: &Mutex<BTreeMap<String, SocketAddr>>) {
        let snapshot = proxy.config.current();
        let gone: Vec<String> = self
            .active
            .iter()
            .filter(|(name, (addr, _))| {
                snapshot
                    .listeners
                    .get(*name)
                    .is_none_or(|l| l.address != *addr)
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in gone {
            if let Some((_, stop)) = self.active.remove(&name) {
                stop.send_replace(true);
                tracing::info!(listener = %name, "gateway listener removed");
            }
            lock(bound).remove(&name);
        }
        for (name, l) in &snapshot.listeners {
            if self.active.contains_key(name) {
                continue;
            }
            let (tx, rx) = watch::channel(false);
            match listen(proxy, l.address, &Role::Gateway(name.clone()), Some(rx)) {
                Ok(local) => {
                    self.active.insert(name.clone(), (l.address, tx));
                    lock(bound).insert(name.clone(), local);
                    tracing::info!(listener = %name, %local, "gateway listener bound");
                }
                Err(e) => {
                    tracing::warn!(listener = %name, error = %e, "gateway listener not bound")
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Static sidecar: runs until SIGTERM, then drains.
pub async fn sidecar(files: StaticFiles, opts: SidecarOptions) -> Result<(), RunError> {
    let (config, identity) = load_static(&files)?;
    let running = start_sidecar(config, identity, opts).await?;
    shutdown_signal().await;
    let left = running.shutdown().await;
    tracing::info!(left, "drained");
    Ok(())
}

/// Static gateway: runs until SIGTERM, then drains.
pub async fn gateway(files: StaticFiles, opts: GatewayOptions) -> Result<(), RunError> {
    let (config, identity) = load_static(&files)?;
    let running = start_gateway(config, identity, opts).await?;
    shutdown_signal().await;
    let left = running.shutdown().await;
    tracing::info!(left, "drained");
    Ok(())
}
