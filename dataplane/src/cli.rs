//! Command-line flags (clap, with env fallbacks) and their translation
//! into run options. `main.rs` only parses and dispatches.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::connected::WeftdSettings;
use crate::control_channel::WeftdAddress;
use crate::proxy::{OriginalDstMode, ProxySettings, Workload};
use crate::run::{AdminAddrs, GatewayOptions, RunError, SidecarOptions, StaticFiles};
use crate::workers::{Workers, WorkersError};
use crate::xds_client::{NodeInfo, ProxyMode};

#[derive(Debug, Parser)]
#[command(
    name = "weft-proxy",
    version,
    about = "Weft's sidecar and gateway proxy"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run as a pod's sidecar (outbound 15001, inbound 15006).
    Sidecar(SidecarArgs),
    /// Run as an ingress/egress gateway (listeners from configuration).
    Gateway(GatewayArgs),
    /// Program the pod's traffic capture (iptables); run by the injected init container.
    Init(crate::init::InitArgs),
}

/// Static configuration and identity files (without them, the proxy
/// connects to weftd: see [`WeftdArgs`]).
#[derive(Debug, Args)]
pub struct StaticArgs {
    /// Envoy v3 resources (JSON or YAML, `resources: [{"@type": …}]`).
    #[arg(long, env = "WEFT_BOOTSTRAP", requires_all = ["cert_chain", "key"])]
    pub bootstrap: Option<PathBuf>,
    /// Workload certificate chain (PEM, leaf first).
    #[arg(long, env = "WEFT_CERT_CHAIN")]
    pub cert_chain: Option<PathBuf>,
    /// Workload private key (PEM).
    #[arg(long, env = "WEFT_KEY")]
    pub key: Option<PathBuf>,
    /// Trust bundle (PEM): the mesh root, also what weftd's certificate
    /// is verified against.
    #[arg(long, env = "WEFT_ROOT_CERT_PATH")]
    pub roots: Option<PathBuf>,
}

/// weftd, and who this proxy is (the injector sets these as env).
#[derive(Debug, Args)]
pub struct WeftdArgs {
    /// weftd's xDS + CA TLS address, e.g. `weftd-default.weft-system.svc:15012`.
    #[arg(long, env = "WEFT_XDS_ADDRESS")]
    pub xds_address: Option<String>,
    /// Name weftd's certificate is checked against (default: the host of the address).
    #[arg(long, env = "WEFT_XDS_SERVER_NAME")]
    pub xds_server_name: Option<String>,
    #[arg(long, env = "WEFT_TRUST_DOMAIN", default_value = "cluster.local")]
    pub trust_domain: String,
    /// The projected service-account token the mesh CA authenticates.
    #[arg(
        long,
        env = "WEFT_TOKEN_PATH",
        default_value = "/var/run/secrets/tokens/weft-token"
    )]
    pub token_path: PathBuf,
    #[arg(long, env = "SERVICE_ACCOUNT", default_value = "default")]
    pub service_account: String,
    /// The pod's IP(s), comma-separated.
    #[arg(long, env = "INSTANCE_IP", default_value = "")]
    pub instance_ip: String,
    #[arg(long, env = "WEFT_REVISION")]
    pub revision: Option<String>,
    #[arg(long, env = "WEFT_CLUSTER_DOMAIN", default_value = "cluster.local")]
    pub cluster_domain: String,
}

/// Flags shared by both modes.
#[derive(Debug, Args)]
pub struct CommonArgs {
    #[arg(long, default_value = "127.0.0.1:15000")]
    pub admin_addr: SocketAddr,
    #[arg(long, default_value = "0.0.0.0:15090")]
    pub metrics_addr: SocketAddr,
    #[arg(long, default_value = "0.0.0.0:15021")]
    pub health_addr: SocketAddr,
    #[arg(long, default_value = "0.0.0.0:15020")]
    pub status_addr: SocketAddr,
    /// Seconds in-flight requests get to finish after SIGTERM.
    #[arg(long, default_value_t = 5)]
    pub drain_seconds: u64,
    /// Milliseconds to wait for a connection's first bytes.
    #[arg(long, default_value_t = 5000)]
    pub sniff_timeout_ms: u64,
    /// Traffic worker threads (0: one per CPU). Each runs its own
    /// single-threaded runtime with its own listening sockets and
    /// upstream pools; a connection stays on one thread.
    #[arg(long, env = "WEFT_CONCURRENCY", default_value_t = 0)]
    pub concurrency: usize,
    #[arg(long, env = "POD_NAME", default_value = "unknown")]
    pub pod_name: String,
    #[arg(long, env = "POD_NAMESPACE", default_value = "unknown")]
    pub pod_namespace: String,
}

#[derive(Debug, Args)]
pub struct SidecarArgs {
    #[command(flatten)]
    pub files: StaticArgs,
    #[command(flatten)]
    pub weftd: WeftdArgs,
    #[command(flatten)]
    pub common: CommonArgs,
    #[arg(long, default_value = "0.0.0.0:15001")]
    pub outbound_addr: Vec<SocketAddr>,
    #[arg(long, default_value = "0.0.0.0:15006")]
    pub inbound_addr: Vec<SocketAddr>,
    /// Take the original destination from the listening address instead
    /// of SO_ORIGINAL_DST (no iptables: listeners bound on the
    /// destinations themselves).
    #[arg(long)]
    pub original_dst_from_local_addr: bool,
    /// The injector's rewritten probes (JSON).
    #[arg(long, env = "WEFT_APP_PROBES", default_value = "")]
    pub app_probes: String,
}

#[derive(Debug, Args)]
pub struct GatewayArgs {
    #[command(flatten)]
    pub files: StaticArgs,
    #[command(flatten)]
    pub weftd: WeftdArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Where the proxy's configuration and identity come from.
#[derive(Debug)]
pub enum Source {
    Static(StaticFiles),
    Weftd(Box<WeftdSettings>),
}

/// Why the flags do not say where configuration comes from.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "no configuration source: pass --bootstrap (with --cert-chain, --key, --roots) for static files, or set WEFT_XDS_ADDRESS (with WEFT_ROOT_CERT_PATH and POD_NAMESPACE) to connect to weftd"
    )]
    Missing,
    #[error("--{0} is required with --bootstrap")]
    StaticFlag(&'static str),
    #[error("{0} is required to connect to weftd")]
    WeftdSetting(&'static str),
}

impl Cli {
    /// The `--concurrency` of the chosen mode.
    pub fn concurrency(&self) -> usize {
        match &self.command {
            Command::Sidecar(a) => a.common.concurrency,
            Command::Gateway(a) => a.common.concurrency,
            // iptables set-up: nothing to run concurrently
            Command::Init(_) => 1,
        }
    }
}

/// The control runtime (xDS, CA, admin, drain): one thread. Traffic runs
/// on [`workers`].
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Starts the traffic workers: `concurrency` threads, or one per CPU when 0.
pub fn workers(concurrency: usize) -> Result<Workers, WorkersError> {
    let threads = match concurrency {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    Workers::start(threads)
}

impl StaticArgs {
    /// Static files, when `--bootstrap` is given.
    pub fn files(&self) -> Result<Option<StaticFiles>, SourceError> {
        let Some(bootstrap) = self.bootstrap.clone() else {
            return Ok(None);
        };
        let need = |v: &Option<PathBuf>, flag| v.clone().ok_or(SourceError::StaticFlag(flag));
        Ok(Some(StaticFiles {
            bootstrap,
            cert_chain: need(&self.cert_chain, "cert-chain")?,
            key: need(&self.key, "key")?,
            roots: need(&self.roots, "roots")?,
        }))
    }
}

/// Static files when `--bootstrap` is given, else weftd when
/// `WEFT_XDS_ADDRESS` is set.
pub fn source(
    files: &StaticArgs,
    weftd: &WeftdArgs,
    common: &CommonArgs,
    mode: ProxyMode,
) -> Result<Source, SourceError> {
    if let Some(files) = files.files()? {
        return Ok(Source::Static(files));
    }
    let Some(address) = weftd.xds_address.clone() else {
        return Err(SourceError::Missing);
    };
    let root_cert_path = files
        .roots
        .clone()
        .ok_or(SourceError::WeftdSetting("WEFT_ROOT_CERT_PATH (--roots)"))?;
    if common.pod_namespace == "unknown" {
        return Err(SourceError::WeftdSetting("POD_NAMESPACE"));
    }
    Ok(Source::Weftd(Box::new(WeftdSettings {
        weftd: WeftdAddress {
            address,
            server_name: weftd.xds_server_name.clone(),
        },
        trust_domain: weftd.trust_domain.clone(),
        token_path: weftd.token_path.clone(),
        root_cert_path,
        node: NodeInfo {
            mode,
            pod: common.pod_name.clone(),
            namespace: common.pod_namespace.clone(),
            service_account: weftd.service_account.clone(),
            ips: weftd
                .instance_ip
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            revision: weftd.revision.clone(),
            cluster_domain: weftd.cluster_domain.clone(),
        },
    })))
}

impl CommonArgs {
    fn admin(&self) -> AdminAddrs {
        AdminAddrs {
            admin: self.admin_addr,
            metrics: self.metrics_addr,
            health: self.health_addr,
            status: self.status_addr,
        }
    }

    fn settings(&self, original_dst: OriginalDstMode) -> ProxySettings {
        ProxySettings {
            workload: Workload {
                name: workload_name(&self.pod_name),
                namespace: self.pod_namespace.clone(),
            },
            sniff_timeout: Duration::from_millis(self.sniff_timeout_ms),
            original_dst,
            // Started by `main` (threads are not made while parsing flags).
            workers: Default::default(),
        }
    }
}

/// A Deployment's pod `web-5d9c7b-x2x9z` belongs to workload `web`.
pub fn workload_name(pod: &str) -> String {
    let parts: Vec<&str> = pod.split('-').collect();
    if parts.len() >= 3 {
        parts[..parts.len() - 2].join("-")
    } else {
        pod.to_owned()
    }
}

impl SidecarArgs {
    pub fn options(&self) -> Result<SidecarOptions, RunError> {
        Ok(SidecarOptions {
            outbound: self.outbound_addr.clone(),
            inbound: self.inbound_addr.clone(),
            admin: self.common.admin(),
            settings: self.common.settings(if self.original_dst_from_local_addr {
                OriginalDstMode::LocalAddr
            } else {
                OriginalDstMode::SocketOption
            }),
            app_probes: crate::admin::probes::parse(&self.app_probes)?,
            drain_deadline: Duration::from_secs(self.common.drain_seconds),
        })
    }
}

impl GatewayArgs {
    pub fn options(&self) -> GatewayOptions {
        GatewayOptions {
            admin: self.common.admin(),
            settings: self.common.settings(OriginalDstMode::LocalAddr),
            drain_deadline: Duration::from_secs(self.common.drain_seconds),
        }
    }
}

/// Logs to stderr: JSON when not on a terminal (in a pod).
pub fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEFT_LOG_LEVEL")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if std::io::stderr().is_terminal() {
        builder.try_init()
    } else {
        builder.json().try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_flag_sizes_the_workers() {
        let cli = Cli::parse_from([
            "weft-proxy",
            "sidecar",
            "--bootstrap=b",
            "--cert-chain=c",
            "--key=k",
            "--roots=r",
            "--concurrency=3",
        ]);
        assert_eq!(cli.concurrency(), 3);
        assert_eq!(workers(3).unwrap().count(), 3);
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(workers(0).unwrap().count(), cpus);
        assert_eq!(runtime().unwrap().metrics().num_workers(), 1);
    }

    #[test]
    fn workload_from_pod_name() {
        assert_eq!(workload_name("web-5d9c7b-x2x9z"), "web");
        assert_eq!(workload_name("my-api-5d9c7b-x2x9z"), "my-api");
        assert_eq!(workload_name("solo"), "solo");
    }
}
