//! Wiring: from a [`Config`] to running servers. Builds the Kubernetes
//! client (kubeconfig on a host, in-cluster in a pod), loads the mesh CA,
//! issues weftd's serving certificate, starts the index watches and the
//! listeners; stops them gracefully on SIGTERM / Ctrl-C.
//!
//! | port | what | module |
//! | --- | --- | --- |
//! | 15012 | xDS (ADS, proxies identified by their mesh client certificate) and `weft.ca.v1.CertificateService`, over TLS | [`crate::xds`], [`crate::ca`], [`crate::tls`] |
//! | 15010 | plaintext xDS, off unless `--plaintext-xds-port` | [`crate::xds`] |
//! | 15014 | `/metrics`, `/ready`, `/debug/*` | [`crate::debug`] |
//! | 15017 | admission webhooks (sidecar injection, validation), TLS with a certificate from the mesh CA | [`crate::webhook`] |
//!
//! Plus the index watches ([`crate::index::watch`]) and the Gateway API
//! controller ([`crate::gateway`]). The xDS configuration comes from
//! [`config_source`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::events::Reporter;
use kube::{Api, Client};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::ca::{
    Authority, AuthorityError, CaFiles, CaMetrics, CaPolicy, CertificateServer, KubeTokenReviewer,
};
use crate::config::{CaSource, Config};
use crate::debug::{self, DebugError, DebugState, Readiness};
use crate::gateway::{self, GatewaySettings, ProxyTemplate};
use crate::index::watch::SharedIndex;
use crate::index::{self, Index, Kind};
use crate::inject::InjectSettings;
use crate::metrics::Metrics;
use crate::tls::{self, ServingCert, TlsError};
use crate::translate::MeshSettings;
use crate::webhook::{WebhookError, WebhookServer};
use crate::xds::{Authentication, ConfigSource, IndexSource, ProxyRegistry, XdsConfig, XdsServer};

/// Kinds whose initial list must be loaded before weftd reports ready.
const READY_KINDS: [Kind; 5] = [
    Kind::Namespace,
    Kind::Service,
    Kind::EndpointSlice,
    Kind::Pod,
    Kind::ServiceAccount,
];

/// How long in-flight requests get to finish after SIGTERM.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why weftd could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Client(#[from] weft_api::client::ClientError),
    #[error(
        "the CA Secret {namespace}/{name} does not exist: create it in Istio's cacerts layout (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem), or run with --ca-source generated for a dev run"
    )]
    CaSecretMissing { namespace: String, name: String },
    #[error(
        "reading the CA Secret {namespace}/{name}: {source}; may weftd get Secrets in {namespace}?"
    )]
    CaSecret {
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error(transparent)]
    Authority(#[from] AuthorityError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("binding {addr}: {source}; is another process using the port?")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the gRPC server on {addr} failed: {source}")]
    Serve {
        addr: SocketAddr,
        #[source]
        source: tonic::transport::Error,
    },
    #[error(transparent)]
    Debug(#[from] DebugError),
    #[error(transparent)]
    Xds(#[from] crate::xds::XdsError),
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    #[error("the Gateway API controller stopped: {0}")]
    Gateway(#[from] gateway::Error),
    #[error("waiting for SIGTERM: {0}")]
    Signal(#[source] std::io::Error),
    #[error("a weftd task panicked: {0}")]
    Task(String),
}

/// Loads (or generates) the mesh CA as `--ca-source` says.
pub async fn load_authority(config: &Config, client: &Client) -> Result<Authority, RunError> {
    let now = SystemTime::now();
    match config.ca_source {
        CaSource::Generated => {
            tracing::warn!(
                "using a generated in-memory mesh CA: workload certificates will not verify after a restart (dev runs only)"
            );
            Ok(Authority::generate(&config.trust_domain, now)?)
        }
        CaSource::Dir => {
            let dir = config.ca_dir.clone().unwrap_or_default();
            let files = crate::ca::read_dir(&dir)?;
            Ok(Authority::load(&dir.display().to_string(), &files, now)?)
        }
        CaSource::Secret => {
            let (namespace, name) = (config.namespace.clone(), config.ca_secret.clone());
            let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
            let secret = api
                .get_opt(&name)
                .await
                .map_err(|source| RunError::CaSecret {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    source: Box::new(source),
                })?
                .ok_or_else(|| RunError::CaSecretMissing {
                    namespace: namespace.clone(),
                    name: name.clone(),
                })?;
            let origin = format!("Secret {namespace}/{name}");
            let files = CaFiles::from_secret(&origin, &secret).map_err(AuthorityError::from)?;
            Ok(Authority::load(&origin, &files, now)?)
        }
    }
}

/// What xDS serves: the index's latest snapshot, translated per proxy.
pub fn config_source(
    index: &SharedIndex,
    config: &Config,
    trust_bundle_pem: String,
) -> Arc<dyn ConfigSource> {
    let snapshots = index
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .subscribe();
    Arc::new(IndexSource::new(
        snapshots,
        mesh_settings(config, trust_bundle_pem),
    ))
}

/// The mesh-wide settings translation needs, from weftd's flags.
pub fn mesh_settings(config: &Config, trust_bundle_pem: String) -> MeshSettings {
    MeshSettings {
        trust_domain: config.trust_domain.clone(),
        domain_suffix: config.cluster_domain.clone(),
        root_namespace: config.root_namespace.clone(),
        trust_bundle_pem,
        ..MeshSettings::default()
    }
}

/// weftd, started. Dropping it does not stop the tasks: call
/// [`Running::shutdown`].
#[derive(Debug)]
pub struct Running {
    /// Where 15012 (xDS + CA over TLS) actually listens.
    pub grpc_tls_addr: SocketAddr,
    /// Where 15014 (debug, metrics, readiness) listens.
    pub monitoring_addr: SocketAddr,
    /// Where the admission webhooks (15017) listen.
    pub webhook_addr: SocketAddr,
    /// Where plaintext xDS listens, when enabled.
    pub plaintext_xds_addr: Option<SocketAddr>,
    pub authority: Arc<Authority>,
    pub ca_metrics: Arc<CaMetrics>,
    pub metrics: Metrics,
    pub readiness: Readiness,
    pub registry: ProxyRegistry,
    pub xds: XdsServer,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<Result<(), RunError>>,
    /// Index watches: they run until aborted.
    watches: Vec<JoinHandle<()>>,
}

impl Running {
    /// Waits until a task fails (servers end only on shutdown; helper
    /// tasks such as readiness end early with `Ok` and are skipped), or
    /// until every task has ended.
    pub async fn wait_any(&mut self) -> Result<(), RunError> {
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(RunError::Task(e.to_string())),
            }
        }
        Ok(())
    }

    /// Stops accepting, ends xDS streams, lets in-flight requests finish
    /// (bounded), stops the watches, and returns the first error any task
    /// reported.
    pub async fn shutdown(mut self) -> Result<(), RunError> {
        let _ = self.shutdown.send(true);
        self.xds.close_streams();
        for watch in &self.watches {
            watch.abort();
        }
        let mut first_error = Ok(());
        let drain = async {
            while let Some(joined) = self.tasks.join_next().await {
                let result = joined
                    .map_err(|e| RunError::Task(e.to_string()))
                    .and_then(|r| r);
                if let (Err(e), true) = (result, first_error.is_ok()) {
                    first_error = Err(e);
                }
            }
        };
        if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
            tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; closing them");
            self.tasks.shutdown().await;
        }
        first_error
    }
}

async fn bind(config: &Config, port: u16) -> Result<(TcpListener, SocketAddr), RunError> {
    let addr = SocketAddr::new(config.listen_address, port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| RunError::Bind { addr, source })?;
    Ok((listener, bound))
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Builds everything and starts the servers; returns once they listen.
pub async fn start(config: &Config) -> Result<Running, RunError> {
    let client = weft_api::client::kube_client(config.kubeconfig.as_deref()).await?;
    let authority = Arc::new(load_authority(config, &client).await?);
    let metrics = Metrics::new();
    let ca_metrics = Arc::new(CaMetrics::exporting_to(metrics.clone()));
    let readiness = Readiness::default();
    let registry = ProxyRegistry::default();
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();

    // The index: one watch per kind, and readiness once the core kinds synced.
    let shared_index: SharedIndex = Arc::new(Mutex::new(Index::new()));
    let reporter = Reporter {
        controller: format!("weftd-{}", config.revision),
        instance: std::env::var("POD_NAME").ok(),
    };
    let mut snapshots = shared_index
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .subscribe();
    let watches = index::watch::spawn(client.clone(), shared_index.clone(), reporter);
    {
        let (readiness, stop) = (readiness.clone(), stopped(shutdown_rx.clone()));
        tasks.spawn(async move {
            tokio::select! {
                _ = stop => {}
                synced = snapshots.wait_for(|s| s.is_synced(&READY_KINDS)) => {
                    if synced.is_ok() {
                        readiness.set_ready();
                        tracing::info!("index synced: ready");
                    }
                }
            }
            Ok(())
        });
    }

    // weftd's own serving certificate, from the mesh CA, kept renewed.
    let names = tls::serving_names(&config.revision, &config.namespace, &config.cluster_domain);
    let serving = Arc::new(ServingCert::issue(&authority, &names)?);
    {
        let (serving, authority, rx) = (serving.clone(), authority.clone(), shutdown_rx.clone());
        let names = names.clone();
        tasks.spawn(async move {
            serving.keep_renewed(authority, names, rx).await;
            Ok(())
        });
    }

    // xDS, shared by 15012 and 15010.
    let xds = XdsServer::new(
        config_source(&shared_index, config, authority.trust_bundle_pem()),
        XdsConfig {
            trust_domain: config.trust_domain.clone(),
            revision: config.revision.clone(),
            ..XdsConfig::default()
        },
        registry.clone(),
        metrics.clone(),
    );

    // 15012: xDS + CA over TLS.
    let tls_config = tls::server_config(authority.roots_der(), serving.clone())?;
    let (listener, grpc_tls_addr) = bind(config, config.grpc_tls_port).await?;
    let ca_service = CertificateServer::new(
        authority.clone(),
        KubeTokenReviewer::new(client.clone()),
        CaPolicy {
            trust_domain: config.trust_domain.clone(),
            audience: config.token_audience.clone(),
            default_ttl: config.workload_cert_ttl,
            max_ttl: config.max_workload_cert_ttl,
        },
        ca_metrics.clone(),
    )
    .into_service();
    let router = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(ca_service)
        .add_service(xds.service(Authentication::ClientCertificate));
    let incoming = tls::incoming(listener, tls_config);
    let stop = stopped(shutdown_rx.clone());
    tasks.spawn(async move {
        router
            .serve_with_incoming_shutdown(incoming, stop)
            .await
            .map_err(|source| RunError::Serve {
                addr: grpc_tls_addr,
                source,
            })
    });
    tracing::info!(
        addr = %grpc_tls_addr,
        revision = %config.revision,
        trust_domain = %config.trust_domain,
        audience = %config.token_audience,
        "serving xDS and the mesh CA over TLS"
    );

    // 15010: plaintext xDS, only when asked for.
    let mut plaintext_xds_addr = None;
    if let Some(port) = config.plaintext_xds_port {
        let (listener, addr) = bind(config, port).await?;
        plaintext_xds_addr = Some(addr);
        let (xds, stop) = (xds.clone(), stopped(shutdown_rx.clone()));
        tasks.spawn(async move { Ok(xds.serve_plaintext(listener, stop).await?) });
    }

    // 15014: debug, metrics, readiness.
    let (listener, monitoring_addr) = bind(config, config.monitoring_port).await?;
    let state = DebugState {
        registry: registry.clone(),
        metrics: metrics.clone(),
        readiness: readiness.clone(),
    };
    let stop = stopped(shutdown_rx.clone());
    tasks.spawn(async move { Ok(debug::serve(state, listener, stop).await?) });

    // 15017: sidecar injection and validation webhooks.
    let xds_address = format!(
        "weftd-{}.{}.svc:{}",
        config.revision, config.namespace, config.grpc_tls_port
    );
    let mut inject = InjectSettings::new(&config.revision, &config.namespace, &config.proxy_image);
    inject.xds_address = xds_address.clone();
    inject.trust_domain = config.trust_domain.clone();
    inject.token_audience = config.token_audience.clone();
    let (inject_tx, inject_rx) = watch::channel(inject);
    let (listener, webhook_addr) = bind(config, config.webhook_port).await?;
    let webhooks = WebhookServer::new(
        inject_rx,
        Arc::new(client.clone()),
        tls::webhook_server_config(serving.clone())?,
    );
    let stop = stopped(shutdown_rx.clone());
    tasks.spawn(async move {
        // Keeps the settings channel open for as long as the server runs
        // (revision tags will be sent through it).
        let _inject_tx = inject_tx;
        Ok(webhooks.serve(listener, stop).await?)
    });

    // The Gateway API controller.
    if config.gateway_controller {
        let settings = GatewaySettings {
            proxy: ProxyTemplate {
                image: config.proxy_image.clone(),
                ..ProxyTemplate::default()
            },
            xds_address,
            trust_domain: config.trust_domain.clone(),
            revision: config.revision.clone(),
            token_audience: config.token_audience.clone(),
            ..GatewaySettings::default()
        };
        let (client, stop) = (client.clone(), stopped(shutdown_rx.clone()));
        tasks.spawn(async move {
            tokio::select! {
                _ = stop => Ok(()),
                result = gateway::run(client, settings) => Ok(result?),
            }
        });
    }

    Ok(Running {
        grpc_tls_addr,
        monitoring_addr,
        webhook_addr,
        plaintext_xds_addr,
        authority,
        ca_metrics,
        metrics,
        readiness,
        registry,
        xds,
        shutdown,
        tasks,
        watches,
    })
}

/// Runs weftd until SIGTERM or Ctrl-C, then drains.
pub async fn run(config: Config) -> Result<(), RunError> {
    let mut running = start(&config).await?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(RunError::Signal)?;
    tokio::select! {
        _ = sigterm.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: shutting down"),
        result = running.wait_any() => {
            // A server stopped on its own: stop the rest and report why.
            let _ = running.shutdown().await;
            return result;
        }
    }
    running.shutdown().await
}
