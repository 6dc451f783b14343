//! Running `iptables-save` / `iptables-restore` (and the ip6tables ones).
//!
//! The proxy image is built from scratch: no shell, no libc. It carries
//! Debian's `xtables-nft-multi` with its shared libraries, its extension
//! modules and the dynamic loader in one directory (the *bundle*, made by
//! `dataplane/image/iptables-bundle.sh`), and runs it through the loader
//! explicitly:
//!
//! ```text
//! <bundle>/ld.so --library-path <bundle>/lib <bundle>/xtables-multi iptables-restore …
//! ```
//!
//! with `XTABLES_LIBDIR=<bundle>/xtables`. Outside the image (a host, a
//! test) the tools are taken from `PATH`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::InitError;
use super::plan::Family;

/// Where the image carries the iptables bundle.
pub const DEFAULT_BUNDLE: &str = "/weft-iptables";

/// How to run the iptables tools.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tools {
    /// The bundle in the proxy image.
    Bundle(PathBuf),
    /// `iptables-restore` and friends from `PATH`.
    Path,
}

impl Tools {
    /// The bundle at `dir` when it holds a loader, else `PATH`.
    pub fn find(dir: &Path) -> Self {
        if dir.join("ld.so").is_file() && dir.join("xtables-multi").is_file() {
            Self::Bundle(dir.to_owned())
        } else {
            Self::Path
        }
    }

    /// The command for tool `name` (e.g. `ip6tables-restore`).
    fn command(&self, name: &str) -> Command {
        match self {
            Self::Bundle(dir) => {
                let mut c = Command::new(dir.join("ld.so"));
                c.arg("--library-path")
                    .arg(dir.join("lib"))
                    .arg(dir.join("xtables-multi"))
                    .arg(name)
                    .env("XTABLES_LIBDIR", dir.join("xtables"));
                c
            }
            Self::Path => Command::new(name),
        }
    }

    fn prefix(family: Family) -> &'static str {
        match family {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }

    /// The `nat` table as `iptables-save -t nat` prints it (empty when the
    /// table does not exist yet).
    pub fn save_nat(&self, family: Family) -> Result<String, InitError> {
        let tool = format!("{}-save", Self::prefix(family));
        let out = self
            .command(&tool)
            .args(["-t", "nat"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| self.spawn_error(&tool, e))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            return Ok(stdout);
        }
        if stderr.contains("does not exist") || stderr.contains("No such file") {
            return Ok(String::new());
        }
        Err(classify(&tool, &stderr, out.status.code()))
    }

    /// Feeds `input` to `iptables-restore --noflush`.
    pub fn restore(&self, family: Family, input: &str) -> Result<(), InitError> {
        let tool = format!("{}-restore", Self::prefix(family));
        let mut child = self
            .command(&tool)
            .arg("--noflush")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(&tool, e))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input.as_bytes())
                .map_err(|e| InitError::Io {
                    what: format!("writing the rules to {tool}"),
                    source: e,
                })?;
        }
        let out = child.wait_with_output().map_err(|e| InitError::Io {
            what: format!("waiting for {tool}"),
            source: e,
        })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(classify(
                &tool,
                &String::from_utf8_lossy(&out.stderr),
                out.status.code(),
            ))
        }
    }

    fn spawn_error(&self, tool: &str, e: std::io::Error) -> InitError {
        match (self, e.kind()) {
            (Self::Path, std::io::ErrorKind::NotFound) => InitError::ToolMissing {
                tool: tool.to_owned(),
            },
            _ => InitError::Io {
                what: format!("starting {tool} ({self:?})"),
                source: e,
            },
        }
    }
}

/// Turns a tool's failure into an error that says what to do.
pub fn classify(tool: &str, stderr: &str, code: Option<i32>) -> InitError {
    let stderr = stderr.trim();
    if stderr.contains("Permission denied") || stderr.contains("Operation not permitted") {
        InitError::NotPermitted {
            tool: tool.to_owned(),
            detail: stderr.to_owned(),
        }
    } else {
        InitError::Failed {
            tool: tool.to_owned(),
            code,
            stderr: stderr.to_owned(),
        }
    }
}

/// Whether the pod has a global IPv6 address, from `/proc/net/if_inet6`
/// (`<addr> <ifindex> <prefix> <scope> <flags> <name>`, scope 00 = global).
pub fn has_global_ipv6(if_inet6: &str) -> bool {
    if_inet6.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        matches!(fields.as_slice(), [_, _, _, scope, _, name] if *scope == "00" && *name != "lo")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_errors_ask_for_net_admin() {
        for stderr in [
            "iptables-restore v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)",
            "iptables-restore v1.8.9 (legacy): iptables-restore: unable to initialize table 'nat'\n\nError occurred at line: 1\nTry `iptables-restore -h' for more information.\nOperation not permitted",
        ] {
            let e = classify("iptables-restore", stderr, Some(4));
            let message = e.to_string();
            assert!(matches!(e, InitError::NotPermitted { .. }), "{message}");
            assert!(
                message.contains("NET_ADMIN") && message.contains("NET_RAW"),
                "{message}"
            );
        }
        let other = classify(
            "iptables-restore",
            "line 3: unknown option \"--bogus\"",
            Some(2),
        );
        assert!(matches!(other, InitError::Failed { .. }));
        assert!(other.to_string().contains("--bogus"), "{other}");
    }

    #[test]
    fn global_ipv6_addresses() {
        let v4_only = "00000000000000000000000000000001 01 80 10 80       lo\n\
                       fe80000000000000a8bbccfffe001122 02 40 20 80     eth0\n";
        assert!(!has_global_ipv6(v4_only));
        let dual = format!("{v4_only}fd000000000000000000000000000005 02 40 00 80     eth0\n");
        assert!(has_global_ipv6(&dual));
        assert!(!has_global_ipv6(""));
    }

    #[test]
    fn bundle_or_path() {
        let dir = std::env::temp_dir().join(format!("weft-bundle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        assert_eq!(Tools::find(&dir), Tools::Path);
        std::fs::write(dir.join("ld.so"), b"").expect("ld.so");
        std::fs::write(dir.join("xtables-multi"), b"").expect("multi");
        assert_eq!(Tools::find(&dir), Tools::Bundle(dir.clone()));
        let c = Tools::Bundle(dir.clone()).command("iptables-restore");
        let args: Vec<_> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args[0], "--library-path");
        assert_eq!(args[3], "iptables-restore");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
