//! The operator's command line; every flag has an environment fallback.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
pub use weft_api::logging::LogFormat;

/// weft-operator: runs Weft meshes from MeshInstallations.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(name = "weft-operator", version, about)]
pub struct Config {
    /// Image of the control plane (weftd).
    #[arg(long, env = "WEFT_WEFTD_IMAGE", default_value = "weft.local/weftd:dev")]
    pub weftd_image: String,

    /// Image of the proxy (weft-proxy) for gateways and sidecars.
    #[arg(
        long,
        env = "WEFT_PROXY_IMAGE",
        default_value = "weft.local/weft-proxy:dev"
    )]
    pub proxy_image: String,

    /// imagePullPolicy of the Deployments the operator renders.
    #[arg(long, env = "WEFT_IMAGE_PULL_POLICY", default_value = "IfNotPresent")]
    pub image_pull_policy: String,

    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "WEFT_METRICS_ADDRESS", default_value = "0.0.0.0:8080")]
    pub metrics_address: SocketAddr,

    /// Take part in leader election (one active replica).
    #[arg(long, env = "WEFT_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,

    /// Namespace of the leader Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "weft-operator")]
    pub lease_namespace: String,

    /// Name of the leader Lease.
    #[arg(long, env = "WEFT_LEASE_NAME", default_value = "weft-operator")]
    pub lease_name: String,

    /// This replica's identity in the Lease (the pod name in a cluster).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// How long a Lease not renewed stays held (failover time).
    #[arg(long, env = "WEFT_LEASE_DURATION", default_value = "10s", value_parser = parse_seconds)]
    pub lease_duration: Duration,

    /// How often the leader renews (and a standby retries).
    #[arg(long, env = "WEFT_LEASE_RENEW", default_value = "2s", value_parser = parse_seconds)]
    pub lease_renew: Duration,

    /// Reconcile every installation this often even without events (drift
    /// no watch reported). Writes happen only when something differs.
    #[arg(long, env = "WEFT_RESYNC", default_value = "5m", value_parser = parse_seconds)]
    pub resync: Duration,

    /// Check that weftd's webhook answers (needs a route to Service IPs).
    #[arg(long, env = "WEFT_PROBE_WEBHOOKS", default_value_t = true, action = clap::ArgAction::Set)]
    pub probe_webhooks: bool,

    /// Kubeconfig (a host run); in a pod the service account is used.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Log format: `json` in a pod, `text` on a terminal (`auto` picks).
    #[arg(long, env = "WEFT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
}

/// `10s`, `2m`: whole seconds or minutes.
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?}: write e.g. 10s or 2m"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        _ => return Err(format!("{s:?}: the unit must be s or m")),
    };
    if secs == 0 {
        return Err(format!("{s:?} must be positive"));
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_durations() {
        let c = Config::try_parse_from(["weft-operator"]).expect("defaults parse");
        assert_eq!(c.weftd_image, "weft.local/weftd:dev");
        assert!(c.leader_elect);
        assert!(c.lease_duration > c.lease_renew);
        assert_eq!(parse_seconds("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_seconds("0s").is_err());
        assert!(parse_seconds("5h").is_err());
    }
}
