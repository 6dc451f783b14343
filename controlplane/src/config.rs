//! weftd's command line: every flag has an environment fallback, so the
//! operator's Deployment can set them as env vars.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
pub use weft_api::logging::LogFormat;

/// weftd: Weft's per-revision control plane.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(name = "weftd", version, about)]
pub struct Config {
    /// Control-plane revision this weftd serves (`istio.io/rev`).
    #[arg(long, env = "WEFT_REVISION", default_value = "default")]
    pub revision: String,

    /// Namespace weftd runs in; the CA Secret lives here.
    #[arg(long, env = "POD_NAMESPACE", default_value = "istio-system")]
    pub namespace: String,

    /// Trust domain of workload identities: spiffe://<trust-domain>/ns/<ns>/sa/<sa>.
    #[arg(long, env = "WEFT_TRUST_DOMAIN", default_value = "cluster.local")]
    pub trust_domain: String,

    /// DNS suffix of the cluster's Services.
    #[arg(long, env = "WEFT_CLUSTER_DOMAIN", default_value = "cluster.local")]
    pub cluster_domain: String,

    /// Namespace whose policies (PeerAuthentication, Sidecar, ...) apply
    /// mesh-wide: Istio's `meshConfig.rootNamespace`, `istio-system` by
    /// default so Istio YAML applies unchanged.
    #[arg(long, env = "WEFT_ROOT_NAMESPACE", default_value = "istio-system")]
    pub root_namespace: String,

    /// Where the mesh CA comes from: a Secret in Istio's `cacerts` layout
    /// (`--ca-secret` in `--namespace`), a directory with the same files
    /// (`--ca-dir`), or generated in memory (a standalone dev run only:
    /// workloads' certificates do not survive a restart).
    #[arg(long, env = "WEFT_CA_SOURCE", value_enum, default_value_t = CaSource::Secret)]
    pub ca_source: CaSource,

    /// Name of the CA Secret (`ca-cert.pem`, `ca-key.pem`, `root-cert.pem`, `cert-chain.pem`).
    #[arg(long, env = "WEFT_CA_SECRET", default_value = "cacerts")]
    pub ca_secret: String,

    /// Directory holding the CA files, with `--ca-source dir`.
    #[arg(long, env = "WEFT_CA_DIR", required_if_eq("ca_source", "dir"))]
    pub ca_dir: Option<PathBuf>,

    /// Audience the proxies' projected service-account tokens must carry.
    #[arg(long, env = "WEFT_TOKEN_AUDIENCE", default_value = "weft-ca")]
    pub token_audience: String,

    /// Lifetime of a workload certificate when the proxy asks for none.
    #[arg(long, env = "WEFT_WORKLOAD_CERT_TTL", default_value = "24h", value_parser = parse_duration)]
    pub workload_cert_ttl: Duration,

    /// Longest workload certificate lifetime granted.
    #[arg(long, env = "WEFT_MAX_WORKLOAD_CERT_TTL", default_value = "168h", value_parser = parse_duration)]
    pub max_workload_cert_ttl: Duration,

    /// Address the listeners bind to.
    #[arg(long, env = "WEFT_LISTEN_ADDRESS", default_value = "0.0.0.0")]
    pub listen_address: IpAddr,

    /// xDS and CA over TLS (Istio's 15012).
    #[arg(long, env = "WEFT_GRPC_TLS_PORT", default_value_t = 15012)]
    pub grpc_tls_port: u16,

    /// Plaintext xDS (Istio's 15010); off unless set. No client identity:
    /// use only where the network is trusted.
    #[arg(long, env = "WEFT_PLAINTEXT_XDS_PORT")]
    pub plaintext_xds_port: Option<u16>,

    /// Monitoring and debug HTTP (`/metrics`, `/ready`, `/debug/*`).
    #[arg(long, env = "WEFT_MONITORING_PORT", default_value_t = 15014)]
    pub monitoring_port: u16,

    /// Admission webhooks (sidecar injection, validation) over TLS.
    #[arg(long, env = "WEFT_WEBHOOK_PORT", default_value_t = 15017)]
    pub webhook_port: u16,

    /// Image of weft-proxy, injected as sidecar and run by gateways.
    #[arg(
        long,
        env = "WEFT_PROXY_IMAGE",
        default_value = "weft.local/weft-proxy:dev"
    )]
    pub proxy_image: String,

    /// Run the Gateway API controller (provision gateways, write status).
    #[arg(long, env = "WEFT_GATEWAY_CONTROLLER", default_value_t = true, action = clap::ArgAction::Set)]
    pub gateway_controller: bool,

    /// Kubeconfig to use (a host run); without it weftd uses the in-cluster
    /// service account in a pod, else the usual kubeconfig search.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Log format: `json` in a pod, `text` on a terminal (`auto` picks).
    #[arg(long, env = "WEFT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
}

/// Where the mesh CA comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CaSource {
    Secret,
    Dir,
    Generated,
}

/// Parses `90s`, `30m`, `24h`, `1h30m`, `1d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut any = false;
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => {
                return Err(format!(
                    "{s:?}: unknown unit {c:?}; write e.g. 90s, 30m, 24h, 1h30m"
                ));
            }
        };
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("{s:?}: a number must precede {c:?}"))?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("{s:?} is too long"))?;
        digits.clear();
        any = true;
    }
    if !digits.is_empty() || !any {
        return Err(format!("{s:?}: a duration needs a unit, e.g. 24h"));
    }
    if total == 0 {
        return Err(format!("{s:?}: a duration must be positive"));
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (s, secs) in [
            ("90s", 90),
            ("30m", 1800),
            ("24h", 86400),
            ("1h30m", 5400),
            ("1d", 86400),
        ] {
            assert_eq!(parse_duration(s), Ok(Duration::from_secs(secs)), "{s}");
        }
        for bad in ["", "24", "h", "1x", "0s", "-1h"] {
            assert!(parse_duration(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn defaults() {
        let c = Config::try_parse_from(["weftd"]).expect("defaults parse");
        assert_eq!(c.grpc_tls_port, 15012);
        assert_eq!(c.monitoring_port, 15014);
        assert_eq!(c.webhook_port, 15017);
        assert_eq!(c.plaintext_xds_port, None);
        assert_eq!(c.workload_cert_ttl, Duration::from_secs(86400));
        assert_eq!(c.ca_source, CaSource::Secret);
        assert_eq!(c.ca_secret, "cacerts");
        assert_eq!(c.token_audience, "weft-ca");
        assert!(c.gateway_controller);
    }

    #[test]
    fn flags() {
        let c = Config::try_parse_from([
            "weftd",
            "--revision",
            "1-24",
            "--ca-source",
            "generated",
            "--plaintext-xds-port",
            "15010",
            "--workload-cert-ttl",
            "1h",
            "--log-format",
            "json",
        ])
        .expect("parses");
        assert_eq!(c.revision, "1-24");
        assert_eq!(c.ca_source, CaSource::Generated);
        assert_eq!(c.plaintext_xds_port, Some(15010));
        assert!(c.log_format.json(false));
        assert!(
            Config::try_parse_from(["weftd", "--ca-source", "dir"]).is_err(),
            "dir needs --ca-dir"
        );
    }
}
