//! The `iptables-restore` input of a [`CapturePlan`], for one address
//! family. Pure: plan (+ what `iptables-save -t nat` shows today) in, text
//! out.
//!
//! The chains follow Istio's `istio-iptables` so that people who debug
//! Istio pods find their way, with Weft's names:
//!
//! | chain | job |
//! | --- | --- |
//! | `WEFT_INBOUND` | from `PREROUTING`: which inbound ports go to the proxy |
//! | `WEFT_IN_REDIRECT` | `REDIRECT` to the inbound capture port (15006) |
//! | `WEFT_OUTPUT` | from `OUTPUT`: which outbound traffic goes to the proxy |
//! | `WEFT_REDIRECT` | `REDIRECT` to the outbound capture port (15001) |
//!
//! `WEFT_OUTPUT`, in order: the proxy's inbound passthrough (source
//! 127.0.0.6 on `lo`) is left alone; excluded ports return; traffic of the
//! proxy's uid/gid to the pod's own address over `lo` goes to the inbound
//! side (a call to oneself through a Service); other loopback traffic of the
//! application and all other traffic of the proxy returns; 127.0.0.1
//! returns; included outbound ports are captured; excluded ranges return;
//! included ranges (or everything) are captured.
//!
//! Re-running is idempotent: declaring a chain in `iptables-restore` input
//! flushes it, and the jumps from `PREROUTING`/`OUTPUT` that an earlier run
//! left are deleted (read from `iptables-save`) before they are added again,
//! so the table ends up the same after any number of runs and other rules
//! in it are kept (`--noflush`).

use std::fmt::Write as _;

use super::plan::{CapturePlan, Cidr, Family, Scope};

pub const INBOUND_CHAIN: &str = "WEFT_INBOUND";
pub const IN_REDIRECT_CHAIN: &str = "WEFT_IN_REDIRECT";
pub const OUTPUT_CHAIN: &str = "WEFT_OUTPUT";
pub const REDIRECT_CHAIN: &str = "WEFT_REDIRECT";

/// Source address the proxy binds when it forwards inbound traffic to the
/// application, so that connection is not captured again (Istio's
/// `InboundPassthroughClusterIpv4`).
pub const INBOUND_PASSTHROUGH_V4: &str = "127.0.0.6/32";
/// IPv6 counterpart of [`INBOUND_PASSTHROUGH_V4`].
pub const INBOUND_PASSTHROUGH_V6: &str = "::6/128";

/// Our jumps from the built-in chains.
const JUMPS: [(&str, &str); 2] = [("PREROUTING", INBOUND_CHAIN), ("OUTPUT", OUTPUT_CHAIN)];

/// The rules that jump to our chains from `PREROUTING`/`OUTPUT` in the
/// output of `iptables-save -t nat` (as `-A …` lines).
pub fn existing_jumps(save: &str) -> Vec<String> {
    save.lines()
        .map(str::trim)
        .filter(|line| {
            JUMPS.iter().any(|(builtin, chain)| {
                line.starts_with(&format!("-A {builtin} "))
                    && line.split_whitespace().collect::<Vec<_>>().windows(2).any(
                        |w| matches!(w, [flag, target] if (*flag == "-j" || *flag == "-g") && target == chain),
                    )
            })
        })
        .map(str::to_owned)
        .collect()
}

/// The `iptables-restore --noflush` input for `family`; `existing` is the
/// current `iptables-save -t nat` output (empty for a fresh pod).
pub fn render(plan: &CapturePlan, family: Family, existing: &str) -> String {
    let (loopback, passthrough) = match family {
        Family::V4 => ("127.0.0.1/32", INBOUND_PASSTHROUGH_V4),
        Family::V6 => ("::1/128", INBOUND_PASSTHROUGH_V6),
    };
    let in_family = |c: &&Cidr| c.family() == family;
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line("*nat".into());
    for chain in [
        INBOUND_CHAIN,
        IN_REDIRECT_CHAIN,
        OUTPUT_CHAIN,
        REDIRECT_CHAIN,
    ] {
        line(format!(":{chain} - [0:0]"));
    }
    for old in existing_jumps(existing) {
        line(old.replacen("-A ", "-D ", 1));
    }
    for (builtin, chain) in JUMPS {
        line(format!("-A {builtin} -p tcp -j {chain}"));
    }
    line(format!(
        "-A {IN_REDIRECT_CHAIN} -p tcp -j REDIRECT --to-ports {}",
        plan.inbound_capture_port
    ));
    line(format!(
        "-A {REDIRECT_CHAIN} -p tcp -j REDIRECT --to-ports {}",
        plan.outbound_capture_port
    ));

    // Inbound.
    match &plan.include_inbound_ports {
        Scope::All => {
            for port in &plan.exclude_inbound_ports {
                line(format!(
                    "-A {INBOUND_CHAIN} -p tcp --dport {port} -j RETURN"
                ));
            }
            line(format!("-A {INBOUND_CHAIN} -p tcp -j {IN_REDIRECT_CHAIN}"));
        }
        Scope::Only(ports) => {
            for port in ports
                .iter()
                .filter(|p| !plan.exclude_inbound_ports.contains(p))
            {
                line(format!(
                    "-A {INBOUND_CHAIN} -p tcp --dport {port} -j {IN_REDIRECT_CHAIN}"
                ));
            }
        }
    }

    // Outbound.
    line(format!(
        "-A {OUTPUT_CHAIN} -s {passthrough} -o lo -j RETURN"
    ));
    for port in &plan.exclude_outbound_ports {
        line(format!("-A {OUTPUT_CHAIN} -p tcp --dport {port} -j RETURN"));
    }
    for (kind, id) in [("uid", plan.proxy_uid), ("gid", plan.proxy_gid)] {
        line(format!(
            "-A {OUTPUT_CHAIN} ! -d {loopback} -o lo -p tcp -m owner --{kind}-owner {id} -j {IN_REDIRECT_CHAIN}"
        ));
        line(format!(
            "-A {OUTPUT_CHAIN} -o lo -m owner ! --{kind}-owner {id} -j RETURN"
        ));
        line(format!(
            "-A {OUTPUT_CHAIN} -m owner --{kind}-owner {id} -j RETURN"
        ));
    }
    line(format!("-A {OUTPUT_CHAIN} -d {loopback} -j RETURN"));
    for port in &plan.include_outbound_ports {
        line(format!(
            "-A {OUTPUT_CHAIN} -p tcp --dport {port} -j {REDIRECT_CHAIN}"
        ));
    }
    for cidr in plan.exclude_outbound_ip_ranges.iter().filter(in_family) {
        line(format!("-A {OUTPUT_CHAIN} -d {cidr} -j RETURN"));
    }
    match &plan.include_outbound_ip_ranges {
        Scope::All => line(format!("-A {OUTPUT_CHAIN} -j {REDIRECT_CHAIN}")),
        Scope::Only(ranges) => {
            for cidr in ranges.iter().filter(in_family) {
                line(format!("-A {OUTPUT_CHAIN} -d {cidr} -j {REDIRECT_CHAIN}"));
            }
        }
    }
    line("COMMIT".into());
    out
}

/// A human summary of what the rules do (logged after applying).
pub fn summary(plan: &CapturePlan) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "inbound → :{} ({}), outbound → :{} ({}), proxy uid {} gid {} not captured",
        plan.inbound_capture_port,
        match &plan.include_inbound_ports {
            Scope::All => format!("all ports but {:?}", plan.exclude_inbound_ports),
            Scope::Only(p) => format!("ports {p:?}"),
        },
        plan.outbound_capture_port,
        match &plan.include_outbound_ip_ranges {
            Scope::All => "all destinations".to_owned(),
            Scope::Only(r) => r
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        },
        plan.proxy_uid,
        plan.proxy_gid,
    );
    s
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::super::plan::RawLists;
    use super::*;

    fn plan(raw: RawLists) -> CapturePlan {
        CapturePlan::new(15006, 15001, 1337, 1337, &raw).expect("valid plan")
    }

    /// What the injector passes for a pod without annotations.
    fn injector_default() -> CapturePlan {
        plan(RawLists {
            include_outbound_ip_ranges: "*".into(),
            include_inbound_ports: "*".into(),
            exclude_inbound_ports: "15008,15020,15021,15090".into(),
            ..RawLists::default()
        })
    }

    /// Every annotation of `traffic.sidecar.istio.io/*` set.
    fn annotated() -> CapturePlan {
        plan(RawLists {
            include_outbound_ip_ranges: "10.0.0.0/8,192.168.1.1,fd00:1::/64".into(),
            exclude_outbound_ip_ranges: "10.96.0.0/12,fd00::/8".into(),
            include_inbound_ports: "8080,9090,15021".into(),
            exclude_inbound_ports: "15008,15020,15021,15090".into(),
            include_outbound_ports: "443".into(),
            exclude_outbound_ports: "3306,5432".into(),
        })
    }

    fn testdata() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/init/testdata")
    }

    /// Compares with `testdata/<name>`; `UPDATE_GOLDEN=1` rewrites it.
    fn golden(name: &str, got: &str) {
        let path = testdata().join(name);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(testdata()).expect("testdata dir");
            std::fs::write(&path, got).expect("write golden");
            return;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{path:?}: {e}; run UPDATE_GOLDEN=1 and review"));
        assert_eq!(
            got, want,
            "{name}: rules differ from {path:?}; run UPDATE_GOLDEN=1 and review"
        );
    }

    #[test]
    fn golden_rules() {
        golden(
            "default.v4.rules",
            &render(&injector_default(), Family::V4, ""),
        );
        golden(
            "default.v6.rules",
            &render(&injector_default(), Family::V6, ""),
        );
        golden("annotated.v4.rules", &render(&annotated(), Family::V4, ""));
        golden("annotated.v6.rules", &render(&annotated(), Family::V6, ""));
    }

    #[test]
    fn what_the_rules_say() {
        let v4 = render(&injector_default(), Family::V4, "");
        for want in [
            "-A PREROUTING -p tcp -j WEFT_INBOUND",
            "-A OUTPUT -p tcp -j WEFT_OUTPUT",
            "-A WEFT_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006",
            "-A WEFT_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
            "-A WEFT_INBOUND -p tcp --dport 15021 -j RETURN",
            "-A WEFT_OUTPUT -m owner --uid-owner 1337 -j RETURN",
            "-A WEFT_OUTPUT -m owner --gid-owner 1337 -j RETURN",
            "-A WEFT_OUTPUT -d 127.0.0.1/32 -j RETURN",
        ] {
            assert!(v4.lines().any(|l| l == want), "missing {want:?} in\n{v4}");
        }
        // the catch-alls come last in their chains
        let last = |chain: &str| {
            v4.lines()
                .rfind(|l| l.starts_with(&format!("-A {chain} ")))
                .map(str::to_owned)
        };
        assert_eq!(
            last(INBOUND_CHAIN).as_deref(),
            Some("-A WEFT_INBOUND -p tcp -j WEFT_IN_REDIRECT")
        );
        assert_eq!(
            last(OUTPUT_CHAIN).as_deref(),
            Some("-A WEFT_OUTPUT -j WEFT_REDIRECT")
        );

        let a4 = render(&annotated(), Family::V4, "");
        let a6 = render(&annotated(), Family::V6, "");
        assert!(a4.contains("-d 10.0.0.0/8 -j WEFT_REDIRECT"), "{a4}");
        assert!(
            !a4.contains("fd00"),
            "IPv6 ranges stay out of iptables: {a4}"
        );
        assert!(a6.contains("-d fd00::/8 -j RETURN"), "{a6}");
        assert!(a6.contains("-d fd00:1::/64 -j WEFT_REDIRECT"), "{a6}");
        assert!(!a6.contains("10.0.0.0"), "{a6}");
        assert!(a4.contains("-A WEFT_INBOUND -p tcp --dport 8080 -j WEFT_IN_REDIRECT"));
        assert!(
            !a4.contains("--dport 15021 -j WEFT_IN_REDIRECT"),
            "an excluded port is not captured even when included: {a4}"
        );
        assert!(
            !a4.contains("-A WEFT_OUTPUT -j WEFT_REDIRECT"),
            "only the listed ranges are captured: {a4}"
        );
    }

    #[test]
    fn rerun_deletes_its_old_jumps_and_keeps_others() {
        // what iptables-save -t nat prints after one run (plus a foreign rule)
        let save = "\
# Generated by iptables-save v1.8.9 (nf_tables)
*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:WEFT_INBOUND - [0:0]
:WEFT_OUTPUT - [0:0]
-A PREROUTING -p tcp -j WEFT_INBOUND
-A PREROUTING -p udp --dport 53 -j DNAT --to-destination 10.0.0.10
-A OUTPUT -p tcp -j WEFT_OUTPUT
-A WEFT_INBOUND -p tcp -j WEFT_IN_REDIRECT
COMMIT
";
        assert_eq!(
            existing_jumps(save),
            [
                "-A PREROUTING -p tcp -j WEFT_INBOUND",
                "-A OUTPUT -p tcp -j WEFT_OUTPUT"
            ]
        );
        let again = render(&injector_default(), Family::V4, save);
        golden("rerun.v4.rules", &again);
        let deletes: Vec<&str> = again.lines().filter(|l| l.starts_with("-D ")).collect();
        assert_eq!(
            deletes,
            [
                "-D PREROUTING -p tcp -j WEFT_INBOUND",
                "-D OUTPUT -p tcp -j WEFT_OUTPUT"
            ]
        );
        assert!(!again.contains("DNAT"), "foreign rules are not touched");
        // the rest is what a first run writes
        let without: String = again
            .lines()
            .filter(|l| !l.starts_with("-D "))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(without, render(&injector_default(), Family::V4, ""));
    }

    #[test]
    fn summary_names_ports_and_ids() {
        let s = summary(&injector_default());
        assert!(
            s.contains(":15006") && s.contains(":15001") && s.contains("1337"),
            "{s}"
        );
    }
}
