//! Running kubectl against a cluster: the kubectl the harness built for the
//! pinned version when there is one, else `kubectl` on PATH.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// Default limit for one kubectl command.
pub const KUBECTL_TIMEOUT: Duration = Duration::from_secs(60);

/// Errors running kubectl.
#[derive(Debug, thiserror::Error)]
pub enum KubectlError {
    #[error("starting {bin} failed: {source}; set WEFT_KUBECTL or put kubectl on PATH")]
    Spawn {
        bin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`kubectl {args}` did not finish within {timeout:?}")]
    Timeout { args: String, timeout: Duration },
    #[error("`kubectl {args}` exited with {code:?}: {stderr}")]
    Failed {
        args: String,
        code: Option<i32>,
        stdout: String,
        stderr: String,
    },
}

/// What a kubectl command printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubectlOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// kubectl bound to one kubeconfig.
#[derive(Debug, Clone)]
pub struct Kubectl {
    pub bin: PathBuf,
    pub kubeconfig: PathBuf,
}

/// The kubectl to use: `$WEFT_KUBECTL`, else the harness's
/// (`e2e/cluster/build.sh --print`)/kubectl if built, else `kubectl`.
/// Looked up once per process.
pub fn find_kubectl() -> PathBuf {
    static FOUND: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    FOUND.get_or_init(look_up_kubectl).clone()
}

fn look_up_kubectl() -> PathBuf {
    if let Some(bin) = std::env::var_os("WEFT_KUBECTL").filter(|v| !v.is_empty()) {
        return PathBuf::from(bin);
    }
    let script = crate::cluster::e2e_dir().join("cluster/build.sh");
    if let Ok(out) = std::process::Command::new(&script)
        .arg("--print")
        .stderr(Stdio::null())
        .output()
        && out.status.success()
    {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let bin = Path::new(&dir).join("kubectl");
        if bin.is_file() {
            return bin;
        }
    }
    PathBuf::from("kubectl")
}

impl Kubectl {
    pub fn new(kubeconfig: &Path) -> Self {
        Self {
            bin: find_kubectl(),
            kubeconfig: kubeconfig.to_owned(),
        }
    }

    /// Runs `kubectl --kubeconfig … <args>`; returns its output whatever the
    /// exit code.
    pub async fn output(
        &self,
        args: &[&str],
        timeout: Duration,
    ) -> Result<KubectlOutput, KubectlError> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let child = cmd.output();
        let out = tokio::time::timeout(timeout, child)
            .await
            .map_err(|_| KubectlError::Timeout {
                args: args.join(" "),
                timeout,
            })?
            .map_err(|source| KubectlError::Spawn {
                bin: self.bin.display().to_string(),
                source,
            })?;
        Ok(KubectlOutput {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Runs kubectl and returns stdout; non-zero exit is an error.
    pub async fn run(&self, args: &[&str]) -> Result<String, KubectlError> {
        let out = self.output(args, KUBECTL_TIMEOUT).await?;
        if out.code == Some(0) {
            Ok(out.stdout)
        } else {
            Err(KubectlError::Failed {
                args: args.join(" "),
                code: out.code,
                stdout: out.stdout,
                stderr: out.stderr.trim().to_owned(),
            })
        }
    }

    /// `kubectl logs -n <ns> <pod> [-c container]`.
    pub async fn logs(
        &self,
        ns: &str,
        pod: &str,
        container: Option<&str>,
    ) -> Result<String, KubectlError> {
        let mut args = vec!["logs", "-n", ns, pod];
        if let Some(c) = container {
            args.extend(["-c", c]);
        }
        self.run(&args).await
    }

    /// `kubectl exec -n <ns> <pod> -- <cmd…>`; stdout on success.
    pub async fn exec(&self, ns: &str, pod: &str, cmd: &[&str]) -> Result<String, KubectlError> {
        let mut args = vec!["exec", "-n", ns, pod, "--"];
        args.extend_from_slice(cmd);
        self.run(&args).await
    }

    /// Blocking variant for `Drop`: runs with no runtime, output discarded.
    pub fn command_blocking(&self, args: &[&str]) -> std::io::Result<std::process::ExitStatus> {
        std::process::Command::new(&self.bin)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--request-timeout=10s")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
    }
}
