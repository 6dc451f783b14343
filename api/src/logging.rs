//! Log set-up shared by the operator and weftd (feature `logging`):
//! `--log-format` and a `tracing` subscriber on stdout.

/// Log output format (`--log-format`, `WEFT_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// JSON when running in a pod (`KUBERNETES_SERVICE_HOST` set), else text.
    Auto,
    Json,
    Text,
}

impl LogFormat {
    /// Whether to log JSON, given whether the process runs in a pod.
    pub fn json(self, in_pod: bool) -> bool {
        match self {
            Self::Auto => in_pod,
            Self::Json => true,
            Self::Text => false,
        }
    }
}

/// Sets up logging: `RUST_LOG` overrides `info` (with the chatty
/// Kubernetes client and HTTP/2 crates at `warn`). A subscriber already
/// set (tests) is kept.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn,h2=warn"));
    let in_pod = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if format.json(in_pod) {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::LogFormat;

    #[test]
    fn auto_is_json_only_in_a_pod() {
        assert!(LogFormat::Auto.json(true));
        assert!(!LogFormat::Auto.json(false));
        assert!(LogFormat::Json.json(false));
        assert!(!LogFormat::Text.json(true));
    }
}
