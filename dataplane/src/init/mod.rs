//! `weft-proxy init`: the pod's traffic capture. Run by the injected
//! `weft-init` container (root, `NET_ADMIN` + `NET_RAW`) before the proxy
//! starts; programs the pod's network namespace so that inbound TCP goes
//! to the proxy's 15006 and outbound TCP to its 15001, the proxy's own
//! traffic (uid/gid 1337) excepted.
//!
//! - [`plan`]: the flags, checked ([`CapturePlan`]).
//! - [`rules`]: the `iptables-restore` input (pure, golden-tested).
//! - [`iptables`]: running the tools (from the image's bundle or `PATH`).
//!
//! Idempotent: a second run leaves the same rules (see [`rules`]).

pub mod iptables;
pub mod plan;
pub mod rules;

use std::path::PathBuf;

pub use plan::{CapturePlan, Family, RawLists};

/// Why the capture could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{flag} {value:?}: {reason}")]
    BadFlag {
        flag: String,
        value: String,
        reason: String,
    },
    #[error(
        "{tool} was refused ({detail}): the init container needs the NET_ADMIN and NET_RAW capabilities (securityContext.capabilities.add) and must run as root; check the pod's security policy (Pod Security Admission 'restricted' forbids them)"
    )]
    NotPermitted { tool: String, detail: String },
    #[error("{tool} failed (exit code {code:?}): {stderr}")]
    Failed {
        tool: String,
        code: Option<i32>,
        stderr: String,
    },
    #[error(
        "{tool} not found: run weft-proxy init from the weft-proxy image (it carries iptables under /weft-iptables) or install iptables"
    )]
    ToolMissing { tool: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl InitError {
    /// Stable short label (logs).
    pub fn label(&self) -> &'static str {
        match self {
            Self::BadFlag { .. } => "BadFlag",
            Self::NotPermitted { .. } => "NotPermitted",
            Self::Failed { .. } => "IptablesFailed",
            Self::ToolMissing { .. } => "ToolMissing",
            Self::Io { .. } => "Io",
        }
    }
}

/// The flags of `weft-proxy init` (what weftd's injector passes).
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct InitArgs {
    /// Port inbound TCP is redirected to.
    #[arg(long, default_value_t = 15006)]
    pub inbound_capture_port: u16,
    /// Port outbound TCP is redirected to.
    #[arg(long, default_value_t = 15001)]
    pub outbound_capture_port: u16,
    /// The proxy's uid: its traffic is never captured.
    #[arg(long, default_value_t = 1337)]
    pub proxy_uid: u32,
    /// The proxy's gid: its traffic is never captured.
    #[arg(long, default_value_t = 1337)]
    pub proxy_gid: u32,
    /// CIDRs whose outbound traffic is captured (`*`: all).
    #[arg(long, default_value = "*")]
    pub include_outbound_ip_ranges: String,
    /// CIDRs whose outbound traffic bypasses the proxy.
    #[arg(long, default_value = "")]
    pub exclude_outbound_ip_ranges: String,
    /// Inbound ports captured (`*`: all).
    #[arg(long, default_value = "*")]
    pub include_inbound_ports: String,
    /// Inbound ports that bypass the proxy.
    #[arg(long, default_value = "")]
    pub exclude_inbound_ports: String,
    /// Outbound ports captured even when their destination range is not.
    #[arg(long, default_value = "")]
    pub include_outbound_ports: String,
    /// Outbound destination ports that bypass the proxy.
    #[arg(long, default_value = "")]
    pub exclude_outbound_ports: String,
    /// Print the rules instead of applying them.
    #[arg(long)]
    pub dry_run: bool,
    /// Directory of the iptables bundle (see `init::iptables`); `PATH` is
    /// used when it does not exist.
    #[arg(long, env = "WEFT_IPTABLES_BUNDLE", default_value = iptables::DEFAULT_BUNDLE)]
    pub iptables_bundle: PathBuf,
}

impl InitArgs {
    /// The checked plan.
    pub fn plan(&self) -> Result<CapturePlan, InitError> {
        CapturePlan::new(
            self.inbound_capture_port,
            self.outbound_capture_port,
            self.proxy_uid,
            self.proxy_gid,
            &RawLists {
                include_outbound_ip_ranges: self.include_outbound_ip_ranges.clone(),
                exclude_outbound_ip_ranges: self.exclude_outbound_ip_ranges.clone(),
                include_inbound_ports: self.include_inbound_ports.clone(),
                exclude_inbound_ports: self.exclude_inbound_ports.clone(),
                include_outbound_ports: self.include_outbound_ports.clone(),
                exclude_outbound_ports: self.exclude_outbound_ports.clone(),
            },
        )
    }
}

/// The address families to program: IPv4 always; IPv6 when the pod has a
/// global IPv6 address or the flags name an IPv6 range.
pub fn families(plan: &CapturePlan, if_inet6: &str) -> Vec<Family> {
    let mut out = vec![Family::V4];
    if plan.names_ipv6() || iptables::has_global_ipv6(if_inet6) {
        out.push(Family::V6);
    }
    out
}

/// Runs `weft-proxy init`: prints the rules (`--dry-run`) or applies them.
/// Returns what was printed or applied, per family.
pub fn run(args: &InitArgs) -> Result<Vec<(Family, String)>, InitError> {
    let plan = args.plan()?;
    let if_inet6 = std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default();
    let families = families(&plan, &if_inet6);
    if args.dry_run {
        return Ok(families
            .into_iter()
            .map(|f| (f, rules::render(&plan, f, "")))
            .collect());
    }
    let tools = iptables::Tools::find(&args.iptables_bundle);
    tracing::debug!(?tools, "iptables tools");
    let mut applied = Vec::new();
    for family in families {
        let existing = tools.save_nat(family)?;
        let input = rules::render(&plan, family, &existing);
        tools.restore(family, &input)?;
        tracing::info!(?family, "traffic capture set: {}", rules::summary(&plan));
        applied.push((family, input));
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: Cmd,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Cmd {
        Init(InitArgs),
    }

    /// The exact arguments weftd's injector passes for a default pod
    /// (`controlplane/src/inject/traffic.rs`).
    const INJECTOR_ARGS: &str = "init --inbound-capture-port 15006 --outbound-capture-port 15001 \
        --proxy-uid 1337 --proxy-gid 1337 --include-outbound-ip-ranges * \
        --include-inbound-ports * --exclude-inbound-ports 15008,15020,15021,15090";

    fn parse(args: &str) -> InitArgs {
        let argv = std::iter::once("weft-proxy").chain(args.split_whitespace());
        match Cli::try_parse_from(argv).expect("flags parse").cmd {
            Cmd::Init(a) => a,
        }
    }

    #[test]
    fn accepts_the_injectors_flags() {
        let args = parse(INJECTOR_ARGS);
        let plan = args.plan().expect("plan");
        assert_eq!(plan.exclude_inbound_ports, vec![15008, 15020, 15021, 15090]);
        assert_eq!(plan.include_inbound_ports, plan::Scope::All);
        let annotated = parse(&format!(
            "{INJECTOR_ARGS} --exclude-outbound-ip-ranges 10.96.0.0/12,fd00::/8 \
             --include-outbound-ports 443 --exclude-outbound-ports 3306,5432"
        ));
        let plan = annotated.plan().expect("plan");
        assert_eq!(families(&plan, ""), vec![Family::V4, Family::V6]);
    }

    #[test]
    fn dry_run_prints_without_touching_anything() {
        let mut args = parse(INJECTOR_ARGS);
        args.dry_run = true;
        // a bundle path that does not exist and no iptables needed
        args.iptables_bundle = PathBuf::from("/nonexistent");
        let out = run(&args).expect("dry run");
        assert_eq!(out[0].0, Family::V4);
        assert!(
            out[0]
                .1
                .contains("-A WEFT_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006")
        );
    }
}
